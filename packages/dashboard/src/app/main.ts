/// <reference lib="dom" />
/**
 * The dashboard's entry: the page shell (header, navigation, theme, live status), hash routing,
 * sign-in gating and the views. Analytics, cost and the collaboration graph are loaded on demand
 * (their chart and layout libraries are not part of the first load).
 */
import { signal } from '@preact/signals';
import { html } from 'htm/preact';
import { render, type VNode } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { checkSession, live, session, signOut } from './api.js';
import { parseRoute, type Route } from './model.js';
import { applyTheme, theme, toggleTheme } from './theme.js';
import type { StatusInfo } from './types.js';
import { ConfirmDialog, Toasts, usePoll, useRefetchOn } from './ui.js';
import { Agent } from './views/agent.js';
import { Audit } from './views/audit.js';
import { Board } from './views/board.js';
import { Fleet } from './views/fleet.js';
import { Schedules } from './views/schedules.js';
import { SignIn } from './views/signin.js';
import { Task } from './views/task.js';

const route = signal<Route>(parseRoute(location.hash));
addEventListener('hashchange', () => {
  route.value = parseRoute(location.hash);
  document.getElementById('main')?.focus({ preventScroll: true });
});

applyTheme(theme.value);

/** A view from a module loaded on first use (a separate chunk of the bundle). */
function lazy(load: () => Promise<() => VNode>): () => VNode {
  let loaded: (() => VNode) | undefined;
  let failed: string | undefined;
  let pending: Promise<void> | undefined;
  return function Lazy(): VNode {
    const [, setReady] = useState(0);
    if (loaded !== undefined) return html`<${loaded} />`;
    if (failed !== undefined) return html`<p class="error" role="alert">Could not load this view: ${failed}</p>`;
    pending ??= load().then(
      (view) => void (loaded = view),
      (e: unknown) => void (failed = e instanceof Error ? e.message : String(e)),
    );
    pending.then(() => setReady((n) => n + 1), () => undefined);
    return html`<p class="muted">Loading…</p>`;
  };
}
const Analytics = lazy(async () => (await import('./views/analytics.js')).Analytics);
const Graph = lazy(async () => (await import('./views/graph.js')).Graph);
const Cost = lazy(async () => (await import('./views/cost.js')).Cost);

const NAV: readonly { readonly view: Route['view']; readonly href: string; readonly label: string; readonly also?: readonly Route['view'][] }[] = [
  { view: 'fleet', href: '#/fleet', label: 'Fleet', also: ['agent'] },
  { view: 'board', href: '#/board', label: 'Board', also: ['task'] },
  { view: 'analytics', href: '#/analytics', label: 'Analytics' },
  { view: 'cost', href: '#/cost', label: 'Cost' },
  { view: 'graph', href: '#/graph', label: 'Graph' },
  { view: 'schedules', href: '#/schedules', label: 'Schedules' },
  { view: 'audit', href: '#/audit', label: 'Audit' },
];

/** `1 agent`, `2 agents`. */
const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

function StatusBar(): VNode {
  const status = usePoll<StatusInfo>('/api/v1/status', 10_000);
  useRefetchOn((kind) => kind.startsWith('task.') || kind.startsWith('agent.'), status.reload, 3000);
  const s = status.data;
  const sum = (r: Readonly<Record<string, number>> | undefined, ...keys: string[]): number => keys.reduce((n, k) => n + (r?.[k] ?? 0), 0);
  return html`<div class="status" data-testid="status">
    <span class=${live.value ? 'dot on' : 'dot'} title=${live.value ? 'live: events stream in' : 'not connected to the event stream'}></span>
    ${s !== undefined &&
    html`<span title="agents running">${plural(sum(s.agents, 'running'), 'agent')}</span>
      <span title="tasks running or assigned">${plural(sum(s.tasks, 'running', 'assigned'), 'task')} running</span>
      <span title="tasks ready, waiting for an agent">${sum(s.tasks, 'ready')} ready</span>
      <span class="muted hide-s" title=${`${s.instance} ${s.version}`}>${s.instance}</span>`}
  </div>`;
}

function Shell({ children }: { children: VNode }): VNode {
  const [menu, setMenu] = useState(false);
  const current = route.value.view;
  const who = session.value;
  return html`<div class="shell">
    <a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <a class="brand" href="#/fleet"><span class="logo" aria-hidden="true"></span> Warren</a>
      <button class="btn small menu-toggle" type="button" aria-expanded=${menu} aria-controls="nav" onClick=${() => setMenu(!menu)}>Menu</button>
      <nav id="nav" class=${menu ? 'nav open' : 'nav'} aria-label="views">
        ${NAV.map(
          (n) => html`<a href=${n.href} data-testid=${`nav-${n.view}`} onClick=${() => setMenu(false)}
            aria-current=${n.view === current || n.also?.includes(current) === true ? 'page' : undefined}>${n.label}</a>`,
        )}
      </nav>
      <${StatusBar} />
      <div class="row gap-s">
        <button class="btn small icon" type="button" data-testid="theme-toggle" onClick=${toggleTheme} aria-label="switch light or dark theme" title="Light / dark">◐</button>
        ${who !== null && who !== undefined &&
        html`<span class="muted hide-s" data-testid="whoami" title=${who.role}>${who.name}</span>
          <button class="btn small" type="button" data-testid="signout" onClick=${() => { signOut().catch(() => undefined); }}>Sign out</button>`}
      </div>
    </header>
    <main id="main" tabindex="-1">${children}</main>
    <${ConfirmDialog} />
    <${Toasts} />
  </div>`;
}

function App(): VNode {
  useEffect(() => {
    checkSession().catch(() => undefined);
  }, []);
  const who = session.value;
  const r = route.value;
  if (who === undefined) return html`<p class="loading muted" data-testid="loading">Loading…</p>`;
  if (who === null) return html`<${SignIn} />`;
  let view: VNode;
  switch (r.view) {
    case 'agent':
      view = html`<${Agent} key=${r.name} name=${r.name} />`;
      break;
    case 'board':
      view = html`<${Board} />`;
      break;
    case 'task':
      view = html`<${Task} key=${r.id} id=${r.id} />`;
      break;
    case 'analytics':
      view = html`<${Analytics} />`;
      break;
    case 'cost':
      view = html`<${Cost} />`;
      break;
    case 'graph':
      view = html`<${Graph} />`;
      break;
    case 'schedules':
      view = html`<${Schedules} />`;
      break;
    case 'audit':
      view = html`<${Audit} />`;
      break;
    default:
      view = html`<${Fleet} />`;
  }
  return html`<${Shell}>${view}<//>`;
}

const root = document.getElementById('app');
if (root !== null) render(html`<${App} />`, root);

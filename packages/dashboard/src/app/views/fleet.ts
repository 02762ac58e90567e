/// <reference lib="dom" />
/**
 * The fleet: every agent with template, uid, state, capabilities, load against its WIP, CPU and
 * memory sparklines (samples kept here from periodic `GET /api/v1/agents`), uptime and last exit;
 * filters by template, state and capability; a start button per template.
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useMemo, useRef, useState } from 'preact/hooks';
import { agentFacets, describeExit, filterAgents, formatBytes, formatDuration, formatPercent, recordUsage, type AgentFilter, type AgentUsage } from '../model.js';
import type { AgentItem, TemplatesView } from '../types.js';
import { ActionButton, ErrorLine, Pill, Spark, formatTime, usePoll, useRefetchOn } from '../ui.js';

/** Usage samples outlive the view, so going back to the fleet keeps the lines. */
const history = new Map<string, AgentUsage>();
const POLL_MS = 3000;
/** Agent cards drawn at first; more on request (a fleet may have thousands). */
const PAGE = 120;

/** The fleet view. */
export function Fleet(): VNode {
  // A large fleet is polled less often (each answer lists every agent).
  const [pollMs, setPollMs] = useState(POLL_MS);
  const agents = usePoll<{ agents: AgentItem[] }>('/api/v1/agents', pollMs);
  const templates = usePoll<TemplatesView>('/api/v1/templates', 15_000);
  const [filter, setFilter] = useState<AgentFilter>({ template: '', state: '', capability: '' });
  const [limit, setLimit] = useState(PAGE);
  const lastData = useRef<unknown>(undefined);
  const list = agents.data?.agents;
  if (list !== undefined && lastData.current !== agents.data) {
    lastData.current = agents.data;
    recordUsage(history, list, Date.now());
  }
  useRefetchOn((kind) => kind.startsWith('agent.') || kind.startsWith('command.agent.'), agents.reload);
  const wantedPollMs = (list?.length ?? 0) > 1000 ? 5 * POLL_MS : POLL_MS;
  if (wantedPollMs !== pollMs) setPollMs(wantedPollMs);
  const facets = useMemo(() => agentFacets(list ?? []), [list]);
  const shown = useMemo(() => filterAgents(list ?? [], filter), [list, filter]);
  const select = (key: keyof AgentFilter, values: string[], label: string): VNode => html`<label class="field">
    <span>${label}</span>
    <select data-testid=${`filter-${key}`} value=${filter[key]} onChange=${(e: Event) => setFilter({ ...filter, [key]: (e.target as HTMLSelectElement).value })}>
      <option value="">all</option>
      ${values.map((v) => html`<option value=${v}>${v}</option>`)}
    </select>
  </label>`;
  return html`<section data-testid="fleet-view">
    <header class="view-head">
      <h1>Fleet ${list !== undefined && html`<span class="muted small">${shown.length} of ${list.length}</span>`}</h1>
      <div class="filters">
        ${select('template', facets.templates, 'Template')} ${select('state', facets.states, 'State')}
        ${select('capability', facets.capabilities, 'Capability')}
      </div>
    </header>
    <${ErrorLine} error=${agents.error} />
    ${templates.data !== undefined && templates.data.templates.length > 0 &&
    html`<div class="templates" data-testid="templates">
      ${templates.data.templates.map(
        (t) => html`<div class="template-chip" key=${t.name}>
          <strong>${t.name}</strong>
          <span class="muted">${t.instances} running · ${t.minInstances ?? 0}–${t.maxInstances} · WIP ${t.wip}</span>
          ${(t.errors?.length ?? 0) > 0 && html`<span class="error small" title=${t.errors?.join('\n')}>${t.errors?.length} error(s)</span>`}
          <${ActionButton} testid=${`template-start-${t.name}`} verb="Start" label="Start one" title=${`Start an agent of template ${t.name}?`}
            method="POST" path=${`/api/v1/agents/${encodeURIComponent(t.name)}/start`} onSettled=${agents.reload} />
        </div>`,
      )}
    </div>`}
    ${(templates.data?.errors?.length ?? 0) > 0 &&
    html`<div class="card held" data-testid="template-errors"><strong>Template files not loaded</strong>
      <ul>${templates.data?.errors?.map((e) => html`<li><code>${e}</code></li>`)}</ul></div>`}
    ${list === undefined
      ? html`<p class="muted">Loading agents…</p>`
      : shown.length === 0
        ? html`<p class="empty" data-testid="fleet-empty">${list.length === 0 ? 'No agents yet. Start one from a template, or let Warren start them for ready tasks.' : 'No agent matches these filters.'}</p>`
        : html`<div class="agent-grid">${shown.slice(0, limit).map((a) => html`<${AgentCard} key=${a.name} agent=${a} />`)}</div>
            ${shown.length > limit &&
            html`<p class="more"><button class="btn" type="button" data-testid="fleet-more" onClick=${() => setLimit(limit + PAGE)}>Show more (${shown.length - limit} not shown)</button></p>`}`}
  </section>`;
}

function AgentCard({ agent }: { agent: AgentItem }): VNode {
  const live = agent.live;
  const usage = history.get(agent.name);
  const load = live?.load ?? 0;
  const cpu = usage?.cpu.values() ?? [];
  const memory = usage?.memory.values() ?? [];
  const lastCpu = cpu.at(-1);
  return html`<article class="card agent" data-testid="agent-card" data-agent=${agent.name}>
    <header class="row between">
      <a class="agent-name" href=${`#/agents/${encodeURIComponent(agent.name)}`} data-testid="agent-link">${agent.name}</a>
      <span class="row gap-s"><${Pill} value=${agent.state} testid="agent-state" />${live !== null && html`<${Pill} value=${live.status} />`}</span>
    </header>
    <dl class="facts">
      <dt>Template</dt><dd>${agent.template}</dd>
      <dt>uid</dt><dd class="mono">${agent.uid}</dd>
      <dt>Load</dt><dd><span class="meter" role="meter" aria-valuemin="0" aria-valuemax=${agent.wip} aria-valuenow=${load} aria-label="load against WIP">
        <span style=${{ width: `${agent.wip > 0 ? Math.min(100, (load / agent.wip) * 100) : 0}%` }}></span></span> ${load}/${agent.wip}</dd>
      <dt>Uptime</dt><dd>${live?.uptimeMs != null ? formatDuration(live.uptimeMs) : agent.startedMs !== null && agent.state === 'running' ? formatDuration(Date.now() - agent.startedMs) : '–'}</dd>
      <dt>Done</dt><dd>${agent.tasksDone}</dd>
      <dt>Last exit</dt><dd title=${typeof agent.lastExit === 'object' && agent.lastExit?.atMs != null ? formatTime(agent.lastExit.atMs) : ''}>${describeExit(agent.lastExit)}</dd>
    </dl>
    <div class="caps">${agent.capabilities.map((c) => html`<span class="tag">${c}</span>`)}</div>
    <div class="usage">
      <div><span class="muted">CPU</span> <strong>${formatPercent(lastCpu)}</strong><${Spark} values=${cpu} max=${Math.max(1, ...cpu)} label=${`CPU of ${agent.name}`} /></div>
      <div><span class="muted">Memory</span> <strong>${formatBytes(live?.memoryBytes)}</strong><${Spark} values=${memory} max=${live?.memoryLimitBytes || undefined} label=${`memory of ${agent.name}`} /></div>
    </div>
  </article>`;
}

/// <reference lib="dom" />
/**
 * Shared pieces of the dashboard's views: polling, state pills, sparklines, the confirmation
 * dialog that runs operator actions and shows the command's outcome, toasts.
 */
import { signal } from '@preact/signals';
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, onEvents, waitForCommand } from './api.js';
import { sparkPath, throttle } from './model.js';

/** What a polled resource holds: its data once loaded, and the last error. */
export interface Polled<T> {
  readonly data: T | undefined;
  readonly error: string | null;
  /** Fetches again now. */
  readonly reload: () => void;
}

/**
 * Loads `path` at once and every `intervalMs` (0: once), again when `path` changes. Errors are
 * kept as text; the last data stays shown. The page being hidden skips ticks.
 */
export function usePoll<T>(path: string | null, intervalMs: number): Polled<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [nonce, setNonce] = useState(0);
  useEffect(() => {
    if (path === null) return undefined;
    let stopped = false;
    const load = (): void => {
      if (document.hidden && intervalMs > 0) return;
      api<T>(path).then(
        (d) => {
          if (stopped) return;
          setData(d);
          setError(null);
        },
        (e: unknown) => {
          if (!stopped) setError(e instanceof Error ? e.message : String(e));
        },
      );
    };
    load();
    const timer = intervalMs > 0 ? setInterval(load, intervalMs) : undefined;
    return () => {
      stopped = true;
      if (timer !== undefined) clearInterval(timer);
    };
  }, [path, intervalMs, nonce]);
  return { data, error, reload: () => setNonce((n) => n + 1) };
}

/**
 * Calls `reload` when an event whose kind `match` accepts arrives, at most once per `intervalMs`
 * (default 1000). `policy.decide` events never count: every API request makes one, so refetching
 * on them would loop.
 */
export function useRefetchOn(match: (kind: string) => boolean, reload: () => void, intervalMs = 1000): void {
  const latest = useRef(reload);
  latest.current = reload;
  useEffect(() => {
    const refetch = throttle(() => latest.current(), intervalMs);
    const stop = onEvents((e) => {
      if (e.kind !== 'policy.decide' && match(e.kind)) refetch();
    });
    return () => {
      refetch.cancel();
      stop();
    };
    // The predicate and interval are fixed for a view's lifetime.
  }, []);
}

/** A coloured pill for a state or outcome. */
export function Pill({ value, testid }: { value: string | null | undefined; testid?: string }): VNode {
  const v = value ?? '–';
  return html`<span class=${`pill pill-${v.replace(/[^a-z_]/gi, '')}`} data-testid=${testid}>${v}</span>`;
}

/** A small inline SVG line of the latest samples (`max` fixes the top of the scale). */
export function Spark({ values, max, label }: { values: readonly number[]; max?: number; label: string }): VNode {
  const d = sparkPath(values, 100, 24, max);
  return html`<svg class="spark" viewBox="0 0 100 24" preserveAspectRatio="none" role="img" aria-label=${label}>
    <path d=${d} vector-effect="non-scaling-stroke" />
  </svg>`;
}

/** A notice in the corner of the page (kept 8 s). */
export interface Toast {
  readonly id: number;
  readonly text: string;
  readonly kind: 'ok' | 'error' | 'info';
}

/** The notices shown now. */
export const toasts = signal<readonly Toast[]>([]);
let toastId = 0;

/** Shows a notice for 8 s. */
export function toast(text: string, kind: Toast['kind'] = 'info'): void {
  const id = ++toastId;
  toasts.value = [...toasts.value, { id, text, kind }];
  setTimeout(() => (toasts.value = toasts.value.filter((t) => t.id !== id)), 8000);
}

/** The notices, in a polite live region. */
export function Toasts(): VNode {
  return html`<div class="toasts" role="status" aria-live="polite">
    ${toasts.value.map((t) => html`<div key=${t.id} class=${`toast toast-${t.kind}`} data-testid="toast">${t.text}</div>`)}
  </div>`;
}

/** An operator action waiting for confirmation: what it says, and the request it makes. */
export interface PendingAction {
  /** What the dialog asks, e.g. `Stop agent shell-1?`. */
  readonly title: string;
  /** More words under the title. */
  readonly detail?: string;
  /** The button's label, e.g. `Stop`. */
  readonly verb: string;
  readonly method: 'POST' | 'DELETE';
  readonly path: string;
  /** Marks the confirm button as dangerous. */
  readonly danger?: boolean;
  /** Called when the command has settled (done or failed). */
  readonly onSettled?: () => void;
}

/** The action the dialog asks about, null when closed. */
export const pendingAction = signal<PendingAction | null>(null);
/** Where the dialog's command stands: idle, running (waiting for the supervisor), or its outcome. */
const actionStatus = signal<{ readonly phase: 'idle' | 'running' | 'done' | 'failed'; readonly text: string }>({ phase: 'idle', text: '' });

/** Opens the confirmation dialog for an action. */
export function confirmAction(action: PendingAction): void {
  actionStatus.value = { phase: 'idle', text: '' };
  pendingAction.value = action;
}

async function runAction(action: PendingAction): Promise<void> {
  actionStatus.value = { phase: 'running', text: 'Sent; waiting for the supervisor…' };
  try {
    const answer = await api<{ command?: string | number }>(action.path, { method: action.method });
    if (answer?.command === undefined) {
      actionStatus.value = { phase: 'done', text: 'Done.' };
    } else {
      const view = await waitForCommand(answer.command);
      const outcome = view.outcome ?? view.state;
      actionStatus.value = {
        phase: view.state === 'failed' ? 'failed' : view.state === 'done' ? 'done' : 'running',
        text: view.state === 'done' || view.state === 'failed' ? `Command ${view.id} ${view.state}: ${outcome}` : `Command ${view.id} still ${view.state}.`,
      };
      if (view.state === 'done' || view.state === 'failed') toast(`${action.verb} ${view.target}: ${outcome}`, view.state === 'failed' ? 'error' : 'ok');
    }
  } catch (e) {
    const text = e instanceof ApiError ? `${e.status} ${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
    actionStatus.value = { phase: 'failed', text };
    toast(text, 'error');
  }
  action.onSettled?.();
}

/** The one confirmation dialog (a native `<dialog>`, modal: focus stays inside, Escape closes). */
export function ConfirmDialog(): VNode {
  const ref = useRef<HTMLDialogElement>(null);
  const action = pendingAction.value;
  const status = actionStatus.value;
  useEffect(() => {
    const dialog = ref.current;
    if (dialog === null) return;
    if (action !== null && !dialog.open) dialog.showModal();
    if (action === null && dialog.open) dialog.close();
  }, [action]);
  const close = (): void => {
    pendingAction.value = null;
  };
  return html`<dialog ref=${ref} class="dialog" data-testid="confirm-dialog" onClose=${close} aria-labelledby="confirm-title">
    ${action !== null &&
    html`<form method="dialog" onSubmit=${(e: Event) => {
      e.preventDefault();
      if (status.phase === 'idle') runAction(action).catch(() => undefined);
      else close();
    }}>
      <h2 id="confirm-title">${action.title}</h2>
      ${action.detail !== undefined && html`<p class="muted">${action.detail}</p>`}
      ${status.phase !== 'idle' && html`<p class=${`outcome outcome-${status.phase}`} data-testid="command-outcome">${status.text}</p>`}
      <div class="row end">
        ${status.phase === 'idle'
          ? html`<button type="button" class="btn" data-testid="confirm-cancel" onClick=${close}>Cancel</button>
              <button type="submit" class=${action.danger === true ? 'btn danger' : 'btn primary'} data-testid="confirm-ok" autofocus>${action.verb}</button>`
          : html`<button type="submit" class="btn" data-testid="confirm-close" disabled=${status.phase === 'running'}>Close</button>`}
      </div>
    </form>`}
  </dialog>`;
}

/** A button that asks for confirmation, then runs the action. */
export function ActionButton(props: PendingAction & { label?: string; testid: string }): VNode {
  const { label, testid, ...action } = props;
  return html`<button type="button" class=${action.danger === true ? 'btn small danger' : 'btn small'} data-testid=${testid}
    onClick=${() => confirmAction(action)}>${label ?? action.verb}</button>`;
}

/** A time as local `HH:MM:SS`, with the date when it is not today. */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  const d = new Date(ms);
  const today = new Date();
  const time = d.toLocaleTimeString(undefined, { hour12: false });
  return d.toDateString() === today.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

/** An error line, when there is one. */
export function ErrorLine({ error }: { error: string | null }): VNode | null {
  return error === null ? null : html`<p class="error" role="alert" data-testid="error">${error}</p>`;
}

/// <reference lib="dom" />
/**
 * The dashboard's client of Warren's HTTP API v1: same-origin `fetch` with the session cookie,
 * a 401 anywhere signs the page out, and the server-sent event stream.
 */
import { signal } from '@preact/signals';
import type { CommandView, EventPayload, SessionInfo } from './types.js';

/** The signed-in operator; null when signed out, undefined while the first check runs. */
export const session = signal<SessionInfo | null | undefined>(undefined);

/** An API answer other than 2xx: the status and the server's `{ error, message }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/**
 * Calls the API at `path` (starting with `/api/v1`) with the session cookie, sending `body` as
 * JSON when given. Resolves to the parsed JSON answer (undefined for 204). Rejects with
 * {@link ApiError} for a non-2xx answer (and signs out on 401), or with the fetch error.
 */
export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const request: RequestInit = { method: init.method ?? 'GET', headers, credentials: 'same-origin' };
  if (init.body !== undefined) {
    headers['content-type'] = 'application/json';
    request.body = JSON.stringify(init.body);
  }
  const response = await fetch(path, request);
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let json: unknown = undefined;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!response.ok) {
    const body = (json ?? {}) as { error?: string; message?: string; rule?: string | null };
    if (response.status === 401 && !path.startsWith('/api/v1/session')) session.value = null;
    const rule = typeof body.rule === 'string' ? ` (rule: ${body.rule})` : '';
    throw new ApiError(response.status, body.error ?? `http_${response.status}`, `${body.message ?? response.statusText}${rule}`);
  }
  return json as T;
}

/** Encodes a path segment. */
export const seg = (s: string): string => encodeURIComponent(s);

/** A query string from the defined, non-empty values (`?a=1&b=x`), or '' when none. */
export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

/** Reads the current session (`GET /api/v1/session`) into {@link session}. */
export async function checkSession(): Promise<void> {
  try {
    session.value = await api<SessionInfo>('/api/v1/session');
  } catch {
    session.value = null;
  }
}

/** Signs in with a bearer token (`POST /api/v1/session`). Rejects with {@link ApiError} on a bad token. */
export async function signIn(token: string): Promise<void> {
  await api<undefined>('/api/v1/session', { method: 'POST', body: { token } });
  await checkSession();
}

/** Signs out (`DELETE /api/v1/session`), whatever the server answers. */
export async function signOut(): Promise<void> {
  try {
    await api<undefined>('/api/v1/session', { method: 'DELETE' });
  } finally {
    session.value = null;
  }
}

/**
 * Waits for an operator command to settle (`done` or `failed`), polling `GET /api/v1/commands/:id`
 * every `intervalMs` (default 500) for at most `timeoutMs` (default 60 000). Resolves to its last
 * view (still `queued` when the time ran out).
 */
export async function waitForCommand(id: string | number, timeoutMs = 60_000, intervalMs = 500): Promise<CommandView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await api<CommandView>(`/api/v1/commands/${seg(String(id))}`);
    if (view.state === 'done' || view.state === 'failed' || Date.now() >= deadline) return view;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Whether the event stream is connected; drawn in the header. */
export const live = signal(false);

type Listener = (event: EventPayload) => void;
const listeners = new Set<Listener>();
let source: EventSource | undefined;

/**
 * Listens to the event catalogue (`GET /api/v1/events?kinds=task.*,agent.*,board.*,command.*`),
 * one shared `EventSource` for all listeners (the browser reconnects it and resumes with
 * `Last-Event-ID`). Returns the function that stops listening; the stream closes with the last one.
 */
export function onEvents(listener: Listener): () => void {
  listeners.add(listener);
  if (source === undefined) {
    source = new EventSource('/api/v1/events?kinds=task.*,agent.*,board.*,command.*,supervisor.*');
    source.onopen = () => (live.value = true);
    source.onerror = () => (live.value = false);
    const deliver = (message: MessageEvent<string>): void => {
      let payload: EventPayload;
      try {
        payload = JSON.parse(message.data) as EventPayload;
      } catch {
        return;
      }
      for (const l of listeners) l(payload);
    };
    source.onmessage = deliver;
    // Named events (`event: <kind>`) are not delivered to onmessage; listen to the kinds' families.
    for (const kind of KINDS) source.addEventListener(kind, deliver as EventListener);
  }
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0 && source !== undefined) {
      source.close();
      source = undefined;
      live.value = false;
    }
  };
}

/** The event kinds the dashboard reacts to (the catalogue of services/supervisor/src/events.ts). */
const KINDS = [
  'task.assign', 'task.start', 'task.progress', 'task.complete', 'task.fail', 'task.retry', 'task.requeue', 'task.held', 'task.release',
  'task.cancelled', 'task.card_deleted', 'task.blocked', 'task.parent_done',
  'agent.start', 'agent.wake', 'agent.ready', 'agent.stop', 'agent.exit', 'agent.watchdog', 'agent.disk', 'agent.unresponsive',
  'agent.crash_loop', 'agent.spawn_failed', 'agent.protocol_error', 'agent.exec', 'agent.exec_exit',
  'board.write', 'board.refused', 'board.error', 'board.illegal_move', 'board.wip_over', 'board.write_dropped', 'board.stopped',
  'command.agent.start', 'command.agent.stop', 'command.agent.restart', 'command.agent.sleep', 'command.agent.wake',
  'command.agent.delete', 'command.task.cancel', 'command.task.retry',
  'supervisor.start', 'supervisor.recovered', 'supervisor.stop',
];

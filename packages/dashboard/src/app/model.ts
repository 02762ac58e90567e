/// <reference lib="dom" />
/**
 * The dashboard's view models: pure functions from API shapes to what the views draw (no DOM, no
 * fetch), so each is tested on its own.
 */
import type { AgentItem, AuditRecord, BoardView, Card, ExecutionView, LastExit, MessageEdge, ScheduleItem } from './types.js';

// ---------------------------------------------------------------------------------------------
// Routes

/** The dashboard's views, addressed by the URL fragment (`#/board`, `#/tasks/T-1`). */
export type Route =
  | { readonly view: 'signin' }
  | { readonly view: 'fleet' }
  | { readonly view: 'agent'; readonly name: string }
  | { readonly view: 'board' }
  | { readonly view: 'task'; readonly id: string }
  | { readonly view: 'analytics' }
  | { readonly view: 'cost' }
  | { readonly view: 'graph' }
  | { readonly view: 'schedules' }
  | { readonly view: 'audit' };

/**
 * The route a URL fragment names. An empty or unknown fragment is the fleet (the first view).
 * Path parameters are URI-decoded; a malformed escape falls back to the raw text.
 */
export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '');
  const param = (s: string | undefined): string => {
    if (s === undefined) return '';
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  switch (parts[0]) {
    case 'signin':
      return { view: 'signin' };
    case 'board':
      return { view: 'board' };
    case 'analytics':
      return { view: 'analytics' };
    case 'cost':
      return { view: 'cost' };
    case 'graph':
      return { view: 'graph' };
    case 'audit':
      return { view: 'audit' };
    case 'schedules':
      return { view: 'schedules' };
    case 'agents':
      return parts[1] === undefined ? { view: 'fleet' } : { view: 'agent', name: param(parts[1]) };
    case 'tasks':
      return parts[1] === undefined ? { view: 'board' } : { view: 'task', id: param(parts[1]) };
    default:
      return { view: 'fleet' };
  }
}

/** The fragment of a route: the inverse of {@link parseRoute}. */
export function routeHash(route: Route): string {
  switch (route.view) {
    case 'agent':
      return `#/agents/${encodeURIComponent(route.name)}`;
    case 'task':
      return `#/tasks/${encodeURIComponent(route.id)}`;
    default:
      return `#/${route.view}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Board

/** A board column as drawn: the column's facts and its cards in display order. */
export interface ColumnModel {
  /** What cards name as their `column`: the column's id, else its name. */
  readonly key: string;
  readonly name: string;
  readonly wip: number | null;
  readonly count: number;
  /** More cards than the WIP limit allows. */
  readonly over: boolean;
  readonly cards: readonly Card[];
}

const PRIORITY_RANK: Readonly<Record<string, number>> = { urgent: 0, high: 1, medium: 2, normal: 2, low: 3 };

/** Order of cards inside a column: priority (urgent first), then queue position, then id. */
export function compareCards(a: Card, b: Card): number {
  const pa = PRIORITY_RANK[a.priority ?? ''] ?? 4;
  const pb = PRIORITY_RANK[b.priority ?? ''] ?? 4;
  if (pa !== pb) return pa - pb;
  const qa = a.queuePosition ?? Number.POSITIVE_INFINITY;
  const qb = b.queuePosition ?? Number.POSITIVE_INFINITY;
  if (qa !== qb) return qa - qb;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Cards grouped into the board's columns, in the board's column order; a card belongs to the
 * column whose id (or, without an id, whose name) its `column` names. A card whose column the
 * board does not list gets a column of its own after the listed ones (in order of first
 * appearance), so no card is ever hidden. `count` and `over` are computed from the cards when a
 * column is not listed; otherwise the server's figures are kept.
 */
export function groupCards(board: Pick<BoardView, 'columns' | 'cards'>): ColumnModel[] {
  const byColumn = new Map<string, Card[]>();
  for (const column of board.columns) byColumn.set(column.id ?? column.name, []);
  const extra: string[] = [];
  for (const card of board.cards) {
    let list = byColumn.get(card.column);
    if (list === undefined) {
      list = [];
      byColumn.set(card.column, list);
      extra.push(card.column);
    }
    list.push(card);
  }
  const columns: ColumnModel[] = board.columns.map((c) => ({
    key: c.id ?? c.name,
    name: c.name,
    wip: c.wip,
    count: c.count,
    over: c.over,
    cards: (byColumn.get(c.id ?? c.name) ?? []).sort(compareCards),
  }));
  for (const name of extra) {
    const cards = (byColumn.get(name) ?? []).sort(compareCards);
    columns.push({ key: name, name, wip: null, count: cards.length, over: false, cards });
  }
  return columns;
}

/**
 * The cards that moved (another column or another state) between two fetches of the board, and
 * the positions to compare the next fetch with. On the first fetch (`previous` undefined) none
 * moved; a card that is new on a later fetch counts as moved.
 */
export function movedCards(previous: ReadonlyMap<string, string> | undefined, cards: readonly Card[]): { moved: Set<string>; positions: Map<string, string> } {
  const positions = new Map<string, string>();
  const moved = new Set<string>();
  for (const card of cards) {
    const position = `${card.column}\u0000${card.state ?? ''}`;
    positions.set(card.id, position);
    if (previous !== undefined && previous.get(card.id) !== position) moved.add(card.id);
  }
  return { moved, positions };
}

/**
 * Whether an event of this kind may change the board: `task.*` and `board.*` do.
 * `policy.decide` never does (every API request makes one; refetching on it would loop).
 */
export function changesBoard(kind: string): boolean {
  if (kind === 'policy.decide') return false;
  return kind.startsWith('task.') || kind.startsWith('board.') || kind === 'command.task.cancel' || kind === 'command.task.retry';
}

/**
 * A function that calls `fn` at most once per `intervalMs`: the first call runs at once, calls
 * inside the interval are merged into one call at its end (leading and trailing edge).
 * `cancel()` drops a pending trailing call. Timers come from `setTimeout` (browser or Node).
 */
export function throttle(fn: () => void, intervalMs: number, now: () => number = Date.now): { (): void; cancel(): void } {
  let lastMs = Number.NEGATIVE_INFINITY;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const run = (): void => {
    timer = undefined;
    lastMs = now();
    fn();
  };
  const call = (): void => {
    if (timer !== undefined) return;
    const waitMs = lastMs + intervalMs - now();
    if (waitMs <= 0) run();
    else timer = setTimeout(run, waitMs);
  };
  call.cancel = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  return call;
}

// ---------------------------------------------------------------------------------------------
// Task timeline

/** One phase of an attempt. `endMs` null: still going (duration counted to `nowMs`). */
export interface Phase {
  readonly name: 'queued' | 'assigned' | 'running';
  readonly startMs: number;
  readonly endMs: number | null;
  readonly durationMs: number;
}

/** One attempt of a task as a timeline row. */
export interface AttemptModel {
  readonly attempt: number;
  readonly agent: string;
  readonly template: string;
  readonly phases: readonly Phase[];
  /** When it finished (null while open). */
  readonly finishedMs: number | null;
  /** The outcome (`succeeded`, `failed`, …) or `open`. */
  readonly outcome: string;
  readonly exitCode: number | null;
  readonly summary: string | null;
  /** First phase start to finish (or `nowMs`), ms. */
  readonly totalMs: number;
}

/**
 * The attempts of a task as timeline rows, oldest first: queued (ready → assigned), assigned
 * (assigned → acknowledged by the agent), running (acknowledged → finished), then the finish.
 * A phase whose start is unknown is left out (rows older than the registry's migration 3 have no
 * `readySinceMs`/`ackedMs`); without `ackedMs`, running is counted from assignment. Open phases
 * end at `nowMs` for their duration.
 */
export function timeline(executions: readonly ExecutionView[], nowMs: number): AttemptModel[] {
  const rows = [...executions].sort((a, b) => a.attempt - b.attempt || a.assignedMs - b.assignedMs);
  return rows.map((e) => {
    const phases: Phase[] = [];
    const finished = e.finishedMs;
    const span = (name: Phase['name'], startMs: number, endMs: number | null): void => {
      phases.push({ name, startMs, endMs, durationMs: Math.max(0, (endMs ?? nowMs) - startMs) });
    };
    if (e.readySinceMs !== null) span('queued', e.readySinceMs, e.assignedMs);
    if (e.ackedMs !== null) {
      span('assigned', e.assignedMs, e.ackedMs);
      span('running', e.ackedMs, finished);
    } else if (finished !== null) {
      span('running', e.assignedMs, finished);
    } else {
      span('assigned', e.assignedMs, null);
    }
    const first = phases[0]?.startMs ?? e.assignedMs;
    return {
      attempt: e.attempt,
      agent: e.agent,
      template: e.template,
      phases,
      finishedMs: finished,
      outcome: finished === null ? 'open' : (e.outcome ?? 'finished'),
      exitCode: e.exitCode,
      summary: e.summary,
      totalMs: Math.max(0, (finished ?? nowMs) - first),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Fleet: filters and usage history

/** Fleet filters; an empty string matches every agent. */
export interface AgentFilter {
  readonly template: string;
  readonly state: string;
  readonly capability: string;
}

/** The agents matching every non-empty field of the filter, sorted by name. */
export function filterAgents(agents: readonly AgentItem[], filter: AgentFilter): AgentItem[] {
  return agents
    .filter(
      (a) =>
        (filter.template === '' || a.template === filter.template) &&
        (filter.state === '' || a.state === filter.state || a.live?.status === filter.state) &&
        (filter.capability === '' || a.capabilities.includes(filter.capability)),
    )
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The distinct templates, states (row states and live statuses) and capabilities, sorted. */
export function agentFacets(agents: readonly AgentItem[]): { templates: string[]; states: string[]; capabilities: string[] } {
  const templates = new Set<string>();
  const states = new Set<string>();
  const capabilities = new Set<string>();
  for (const a of agents) {
    templates.add(a.template);
    states.add(a.state);
    if (a.live !== null) states.add(a.live.status);
    for (const c of a.capabilities) capabilities.add(c);
  }
  const sorted = (s: Set<string>): string[] => [...s].sort();
  return { templates: sorted(templates), states: sorted(states), capabilities: sorted(capabilities) };
}

/**
 * How an agent's process last ended, in a few words: `signal SIGKILL (watchdog)`, `exit 1`; a
 * server that already gives words is shown as is; `–` when it never ended.
 */
export function describeExit(exit: LastExit | string | null): string {
  if (exit === null || exit === '') return '–';
  if (typeof exit === 'string') return exit;
  const how = exit.signal !== null ? `signal ${exit.signal}` : exit.code !== null ? `exit ${exit.code}` : 'ended';
  return exit.reason !== null && exit.reason !== '' ? `${how} (${exit.reason})` : how;
}

/** A fixed-size window of the latest samples (a ring buffer): the oldest drops when full. */
export class SampleBuffer {
  readonly #values: number[] = [];
  /** @param capacity samples kept, a positive integer; throws RangeError otherwise. */
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`SampleBuffer capacity must be a positive integer, got ${capacity}`);
  }
  push(value: number): void {
    this.#values.push(value);
    if (this.#values.length > this.capacity) this.#values.shift();
  }
  /** The samples, oldest first (a copy). */
  values(): number[] {
    return [...this.#values];
  }
  get length(): number {
    return this.#values.length;
  }
}

/** CPU and memory samples of one agent. `cpu` is a share of one core (1 = 100 %). */
export interface AgentUsage {
  readonly cpu: SampleBuffer;
  readonly memory: SampleBuffer;
  /** The previous cumulative CPU reading, to turn cumulative `cpuMs` into a rate. */
  lastCpuMs: number | null;
  lastAtMs: number | null;
}

/**
 * Adds one sample per running agent from a `GET /api/v1/agents` answer taken at `nowMs`, and
 * forgets agents no longer listed. CPU is `Δ cpuMs / Δ wall ms` between two readings (the first
 * reading only primes it; a counter that went backwards, an agent restarted, primes it again).
 * Agents without live usage get no sample.
 */
export function recordUsage(history: Map<string, AgentUsage>, agents: readonly AgentItem[], nowMs: number, capacity = 60): void {
  const seen = new Set<string>();
  for (const a of agents) {
    seen.add(a.name);
    const live = a.live;
    if (live === null) continue;
    let usage = history.get(a.name);
    if (usage === undefined) {
      usage = { cpu: new SampleBuffer(capacity), memory: new SampleBuffer(capacity), lastCpuMs: null, lastAtMs: null };
      history.set(a.name, usage);
    }
    if (live.memoryBytes !== null) usage.memory.push(live.memoryBytes);
    if (live.cpuMs !== null) {
      if (usage.lastCpuMs !== null && usage.lastAtMs !== null && nowMs > usage.lastAtMs && live.cpuMs >= usage.lastCpuMs) {
        usage.cpu.push((live.cpuMs - usage.lastCpuMs) / (nowMs - usage.lastAtMs));
      }
      usage.lastCpuMs = live.cpuMs;
      usage.lastAtMs = nowMs;
    }
  }
  for (const name of [...history.keys()]) if (!seen.has(name)) history.delete(name);
}

/**
 * An SVG path (`d`) drawing `values` as a line in a `width` × `height` box, y growing down, scaled
 * from 0 to `max` (default: the largest value, at least 1e-9). Empty for no values; one value is
 * a flat line.
 */
export function sparkPath(values: readonly number[], width: number, height: number, max?: number): string {
  if (values.length === 0) return '';
  const top = Math.max(max ?? Math.max(...values), 1e-9);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const y = (v: number): string => (height - (Math.min(Math.max(v, 0), top) / top) * height).toFixed(1);
  if (values.length === 1) return `M0,${y(values[0] ?? 0)}L${width},${y(values[0] ?? 0)}`;
  return values.map((v, i) => `${i === 0 ? 'M' : 'L'}${(i * step).toFixed(1)},${y(v)}`).join('');
}

// ---------------------------------------------------------------------------------------------
// Collaboration graph

/** The node id of topic `topic` in the collaboration graph (agent names never hold a colon). */
export const topicNodeId = (topic: string): string => `topic:${topic}`;

/**
 * A node of the collaboration graph: an agent (`id` its name; `user:<name>` for a person) with the
 * messages it sent and received, or a topic (`id` from {@link topicNodeId}, `label` its name) with
 * the messages published on it (`received`).
 */
export interface GraphNode {
  readonly id: string;
  readonly kind: 'agent' | 'topic';
  readonly label: string;
  readonly sent: number;
  readonly received: number;
}

/**
 * A directed link: `count` messages from `source` to `target` (an agent or a topic node), `denied`
 * of them refused, `bytes` let through; `lastMs` the newest, ms since the epoch (null if unknown).
 */
export interface GraphLink {
  readonly source: string;
  readonly target: string;
  readonly count: number;
  readonly denied: number;
  readonly bytes: number;
  readonly lastMs: number | null;
}

/**
 * Nodes and links of the collaboration graph from the message edges of `GET /api/v1/messages`: a
 * topic edge (`topic` set, `to` `*`) goes from its sender to the topic's node; edges with the same
 * source and target are merged (counts and bytes added, newest time kept), self-messages kept as
 * loops. Nodes sorted by kind (agents first) then id, with their sent and received totals; links
 * sorted by count descending, then by source and target.
 */
export function graphModel(edges: readonly MessageEdge[]): { nodes: GraphNode[]; links: GraphLink[] } {
  const links = new Map<string, { source: string; target: string; count: number; denied: number; bytes: number; lastMs: number | null }>();
  const nodes = new Map<string, { id: string; kind: 'agent' | 'topic'; label: string; sent: number; received: number }>();
  const node = (id: string, kind: 'agent' | 'topic', label: string) => {
    const found = nodes.get(id);
    if (found !== undefined) return found;
    const made = { id, kind, label, sent: 0, received: 0 };
    nodes.set(id, made);
    return made;
  };
  for (const e of edges) {
    const topic = e.topic ?? '';
    const target = topic === '' ? node(e.to, 'agent', e.to) : node(topicNodeId(topic), 'topic', topic);
    const source = node(e.from, 'agent', e.from);
    const key = `${source.id}\u0000${target.id}`;
    const link = links.get(key) ?? { source: source.id, target: target.id, count: 0, denied: 0, bytes: 0, lastMs: null };
    link.count += e.count;
    link.denied += e.denied;
    link.bytes += e.bytes ?? 0;
    if (e.lastMs !== undefined) link.lastMs = Math.max(link.lastMs ?? e.lastMs, e.lastMs);
    links.set(key, link);
    source.sent += e.count;
    target.received += e.count;
  }
  const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return {
    nodes: [...nodes.values()].sort((a, b) => (a.kind === b.kind ? byId(a.id, b.id) : a.kind === 'agent' ? -1 : 1)),
    links: [...links.values()].sort((a, b) => b.count - a.count || byId(a.source, b.source) || byId(a.target, b.target)),
  };
}

// ---------------------------------------------------------------------------------------------
// Agent transcripts

/**
 * One entry of a task's transcript: an agent event (the `event` of a `task.progress` row, the
 * runner's `AgentEvent`), or a plain progress message from a runner that sends no event.
 */
export type TranscriptEntry = { readonly seq: number; readonly timeMs: number; readonly attempt: number | null } & (
  | { readonly kind: 'session'; readonly sessionId: string; readonly model: string | null }
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'tool_call'; readonly id: string; readonly name: string; readonly input: string }
  | { readonly kind: 'tool_result'; readonly id: string; readonly output: string; readonly isError: boolean }
  | { readonly kind: 'usage'; readonly inputTokens: number; readonly outputTokens: number; readonly costUsd: number | null; readonly model: string | null }
  | { readonly kind: 'error'; readonly message: string }
  | { readonly kind: 'final'; readonly text: string; readonly isError: boolean }
  | { readonly kind: 'raw'; readonly source: string; readonly line: string }
  | { readonly kind: 'progress'; readonly message: string; readonly percent: number | null }
);

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
/** A value as readable text: strings as they are, the rest as indented JSON. */
const shown = (v: unknown): string => (typeof v === 'string' ? v : (JSON.stringify(v, null, 2) ?? String(v)));

/**
 * The transcript of a task from its `task.progress` audit rows (any order; sorted by seq): each
 * row's `details.event` (kinds session, text, tool_call, tool_result, usage, error, final, raw)
 * becomes one entry; a row without an event, or with one whose kind or fields are not known, is a
 * `progress` entry with the row's `message` or a `raw` entry with the event as JSON, never dropped.
 */
export function transcript(rows: readonly AuditRecord[]): TranscriptEntry[] {
  return [...rows]
    .filter((r) => r.action === 'task.progress')
    .sort((a, b) => a.seq - b.seq)
    .map((r): TranscriptEntry => {
      const d = r.details ?? {};
      const base = { seq: r.seq, timeMs: r.timeMs, attempt: num(d.attempt) ?? null };
      const e = d.event;
      if (e === undefined || e === null || typeof e !== 'object') return { ...base, kind: 'progress', message: str(d.message) ?? '', percent: num(d.percent) ?? null };
      const ev = e as Record<string, unknown>;
      switch (ev.kind) {
        case 'session':
          if (str(ev.sessionId) !== undefined) return { ...base, kind: 'session', sessionId: str(ev.sessionId)!, model: str(ev.model) ?? null };
          break;
        case 'text':
          if (str(ev.text) !== undefined) return { ...base, kind: 'text', text: str(ev.text)! };
          break;
        case 'tool_call':
          if (str(ev.name) !== undefined) return { ...base, kind: 'tool_call', id: str(ev.id) ?? '', name: str(ev.name)!, input: shown(ev.input ?? null) };
          break;
        case 'tool_result':
          return { ...base, kind: 'tool_result', id: str(ev.id) ?? '', output: shown(ev.output ?? ''), isError: ev.isError === true };
        case 'usage':
          if (num(ev.inputTokens) !== undefined && num(ev.outputTokens) !== undefined) {
            return { ...base, kind: 'usage', inputTokens: num(ev.inputTokens)!, outputTokens: num(ev.outputTokens)!, costUsd: num(ev.costUsd) ?? null, model: str(ev.model) ?? null };
          }
          break;
        case 'error':
          return { ...base, kind: 'error', message: str(ev.message) ?? shown(ev) };
        case 'final':
          return { ...base, kind: 'final', text: str(ev.text) ?? '', isError: ev.isError === true };
        case 'raw':
          return { ...base, kind: 'raw', source: str(ev.source) ?? 'unknown', line: shown(ev.line ?? null) };
      }
      return { ...base, kind: 'raw', source: typeof ev.kind === 'string' ? ev.kind : 'event', line: shown(ev) };
    });
}

// ---------------------------------------------------------------------------------------------
// Schedules

/**
 * Schedules in the order the view lists them: due ones first (a fire time has come that is not
 * run yet), then by next fire time (soonest first; one that fires no more last), then by name.
 */
export function sortSchedules(schedules: readonly ScheduleItem[]): ScheduleItem[] {
  const next = (s: ScheduleItem): number => s.nextFireMs ?? Number.POSITIVE_INFINITY;
  return [...schedules].sort((a, b) => Number(b.due) - Number(a.due) || next(a) - next(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * How far a time is from `nowMs`, for people: `in 4 m 05 s`, `12.3 s ago`, `now` within a second
 * (durations as {@link formatDuration}); `–` for null.
 */
export function formatRelative(ms: number | null | undefined, nowMs: number): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  const delta = ms - nowMs;
  if (Math.abs(delta) < 1000) return 'now';
  return delta > 0 ? `in ${formatDuration(delta)}` : `${formatDuration(-delta)} ago`;
}

/**
 * A time as `YYYY-MM-DD HH:MM:SS` on the wall clock of an IANA time zone (`timezone` null: UTC),
 * with the zone's name: `2026-03-08 09:00:00 America/New_York`. `–` for null; an unknown zone
 * falls back to UTC (named so).
 */
export function formatInZone(ms: number | null | undefined, timezone: string | null): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  let zone = timezone ?? 'UTC';
  let format: Intl.DateTimeFormat;
  const options: Intl.DateTimeFormatOptions = { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
  try {
    format = new Intl.DateTimeFormat('en-US', { ...options, timeZone: zone });
  } catch {
    zone = 'UTC';
    format = new Intl.DateTimeFormat('en-US', { ...options, timeZone: zone });
  }
  const part: Partial<Record<Intl.DateTimeFormatPartTypes, string>> = {};
  for (const p of format.formatToParts(new Date(ms))) part[p.type] = p.value;
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second} ${zone}`;
}

// ---------------------------------------------------------------------------------------------
// Formatting

/**
 * US dollars for people: cents from $0.10 up (`$0.75`, `$12.30`), two significant digits below
 * (`$0.039`, `$0.0042`: one LLM call often costs less than a cent), whole dollars from $1,000
 * (`$1,234`); `$0` for zero, `–` for null.
 */
export function formatUsd(usd: number | null | undefined): string {
  if (usd === null || usd === undefined || !Number.isFinite(usd)) return '–';
  if (usd === 0) return '$0';
  const abs = Math.abs(usd);
  if (abs < 0.1) return `$${usd.toPrecision(2).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '')}`;
  if (abs < 1000) return `$${usd.toFixed(2)}`;
  return `$${Math.round(usd).toLocaleString('en-US')}`;
}

/** A token count for people: `950`, `12.3 k`, `4.5 M`; `–` for null. */
export function formatTokens(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  if (Math.abs(n) < 1000) return String(Math.round(n));
  if (Math.abs(n) < 1_000_000) return `${(n / 1000).toFixed(1)} k`;
  return `${(n / 1_000_000).toFixed(1)} M`;
}

/** A duration for people: `850 ms`, `12.3 s`, `4 m 05 s`, `2 h 10 m`, `3 d 4 h`; `–` for null. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${String(m % 60).padStart(2, '0')} m`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** Bytes in binary units: `512 B`, `1.5 KiB`, `12.0 MiB`; `–` for null. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** A share as a percentage with no decimals: `0.257` → `26 %`; `–` for null. */
export function formatPercent(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '–';
  return `${Math.round(ratio * 100)} %`;
}

import { AssignmentState } from './state.js';
import type { Analytics, DurationStats, ExecutionFacts, ExecutionView } from './views.js';

/**
 * Count, total, mean, nearest-rank p50 and p95, and maximum of `values` (ms).
 * Nearest rank: the value at 1-based rank ⌈p/100 × n⌉ of the sorted values.
 */
export function durationStats(values: readonly number[]): DurationStats {
  if (values.length === 0) return { count: 0, totalMs: 0, meanMs: null, p50Ms: null, p95Ms: null, maxMs: null };
  const sorted = [...values].sort((a, b) => a - b);
  const totalMs = sorted.reduce((sum, v) => sum + v, 0);
  const rank = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
  return { count: sorted.length, totalMs, meanMs: totalMs / sorted.length, p50Ms: rank(50), p95Ms: rank(95), maxMs: sorted[sorted.length - 1]! };
}

/** The facts of a set of executions (see {@link ExecutionFacts}). */
export function executionFacts(executions: readonly ExecutionView[]): ExecutionFacts {
  const outcomes = new Map<string, number>();
  const done = new Set<string>();
  let open = 0;
  const waiting: number[] = [];
  const starting: number[] = [];
  const running: number[] = [];
  for (const e of executions) {
    if (e.state !== AssignmentState.finished) open += 1;
    else if (e.outcome !== null) outcomes.set(e.outcome, (outcomes.get(e.outcome) ?? 0) + 1);
    if (e.state === AssignmentState.finished && e.outcome === 'succeeded') done.add(e.taskId);
    if (e.waitingMs !== null) waiting.push(e.waitingMs);
    if (e.startingMs !== null) starting.push(e.startingMs);
    if (e.runningMs !== null) running.push(e.runningMs);
  }
  return {
    executions: executions.length,
    open,
    outcomes: Object.fromEntries([...outcomes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    tasksDone: done.size,
    waiting: durationStats(waiting),
    starting: durationStats(starting),
    running: durationStats(running),
  };
}

/** Groups executions by template and by agent (both sorted by name) and sums them up in total. */
export function analyticsOf(executions: readonly ExecutionView[]): Analytics {
  const byTemplate = new Map<string, ExecutionView[]>();
  const byAgent = new Map<string, ExecutionView[]>();
  for (const e of executions) {
    (byTemplate.get(e.template) ?? byTemplate.set(e.template, []).get(e.template)!).push(e);
    (byAgent.get(e.agent) ?? byAgent.set(e.agent, []).get(e.agent)!).push(e);
  }
  const byName = <T>(map: Map<string, T>) => [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    templates: byName(byTemplate).map(([template, list]) => ({ template, ...executionFacts(list) })),
    agents: byName(byAgent).map(([agent, list]) => ({ agent, template: list[list.length - 1]!.template, ...executionFacts(list) })),
    total: executionFacts(executions),
  };
}

/** One bucket of {@link timeSeries}: executions that finished in `[startMs, startMs + bucketMs)`. */
export interface SeriesBucket {
  readonly startMs: number;
  readonly finished: number;
  readonly succeeded: number;
  /** Finished with any other outcome than `succeeded` (failed, timed out, cancelled, lost ...). */
  readonly failed: number;
  /** Executions that were an attempt after the first (attempt > 1). */
  readonly retried: number;
  /** Nearest-rank percentiles of the bucket's waiting (ready → assigned) and running times, ms; null when none. */
  readonly p50WaitMs: number | null;
  readonly p95WaitMs: number | null;
  readonly p50RunMs: number | null;
  readonly p95RunMs: number | null;
}

/**
 * Buckets finished executions by finish time: throughput and latency over time. Buckets run from
 * the first finish's bucket to the last one's, or over `range` (executions finished outside it
 * left out), empty ones included, at most `maxBuckets` (the newest ones). `bucketMs` must be a
 * positive integer (ms).
 * @throws {RangeError} if `bucketMs` or `maxBuckets` is not a positive integer.
 */
export function timeSeries(
  executions: readonly ExecutionView[],
  bucketMs: number,
  maxBuckets = 500,
  range?: { readonly fromMs: number; readonly toMs: number },
): SeriesBucket[] {
  if (!Number.isInteger(bucketMs) || bucketMs <= 0) throw new RangeError(`bucketMs must be a positive integer, got ${bucketMs}`);
  if (!Number.isInteger(maxBuckets) || maxBuckets <= 0) throw new RangeError(`maxBuckets must be a positive integer, got ${maxBuckets}`);
  const bucketOf = (ms: number) => Math.floor(ms / bucketMs) * bucketMs;
  const finished = executions.filter((e) => e.finishedMs !== null && (range === undefined || (e.finishedMs >= range.fromMs && e.finishedMs <= range.toMs)));
  if (finished.length === 0 && range === undefined) return [];
  let first = range === undefined ? Number.POSITIVE_INFINITY : bucketOf(range.fromMs);
  let last = range === undefined ? Number.NEGATIVE_INFINITY : bucketOf(range.toMs);
  for (const e of finished) {
    first = Math.min(first, bucketOf(e.finishedMs!));
    last = Math.max(last, bucketOf(e.finishedMs!));
  }
  first = Math.max(first, last - (maxBuckets - 1) * bucketMs);
  const groups = new Map<number, ExecutionView[]>();
  for (let start = first; start <= last; start += bucketMs) groups.set(start, []);
  for (const e of finished) groups.get(bucketOf(e.finishedMs!))?.push(e);
  return [...groups].map(([startMs, list]) => {
    const wait = durationStats(list.flatMap((e) => (e.waitingMs === null ? [] : [e.waitingMs])));
    const run = durationStats(list.flatMap((e) => (e.runningMs === null ? [] : [e.runningMs])));
    const succeeded = list.filter((e) => e.outcome === 'succeeded').length;
    return {
      startMs,
      finished: list.length,
      succeeded,
      failed: list.length - succeeded,
      retried: list.filter((e) => e.attempt > 1).length,
      p50WaitMs: wait.p50Ms,
      p95WaitMs: wait.p95Ms,
      p50RunMs: run.p50Ms,
      p95RunMs: run.p95Ms,
    };
  });
}

/** Busy time of one template or agent over the window its executions span ({@link utilisation}). */
export interface Utilisation {
  readonly template: string;
  /** Absent for a template's line. */
  readonly agent?: string;
  /** Sum of the executions' assigned → finished (or → `nowMs` while open) times, ms. */
  readonly busyMs: number;
  /** From the first assignment to the last finish (or `nowMs`), ms. */
  readonly spanMs: number;
  /** `busyMs / (spanMs × agents)`: 1 is every agent of it busy all the time; 0 when `spanMs` is 0. */
  readonly ratio: number;
}

/**
 * Utilisation per template (over its agents) and per agent: how much of the time since their first
 * assignment they were holding work. Executions never assigned are skipped.
 */
export function utilisation(executions: readonly ExecutionView[], nowMs: number): Utilisation[] {
  interface Acc { template: string; busyMs: number; firstMs: number; lastMs: number; agents: Set<string> }
  const add = (map: Map<string, Acc>, key: string, template: string, e: ExecutionView): void => {
    const start = e.assignedMs;
    const end = e.finishedMs ?? nowMs;
    const acc = map.get(key) ?? map.set(key, { template, busyMs: 0, firstMs: start, lastMs: end, agents: new Set() }).get(key)!;
    acc.busyMs += Math.max(0, end - start);
    acc.firstMs = Math.min(acc.firstMs, start);
    acc.lastMs = Math.max(acc.lastMs, end);
    acc.agents.add(e.agent);
  };
  const templates = new Map<string, Acc>();
  const agents = new Map<string, Acc>();
  for (const e of executions) {
    if (e.assignedMs === null) continue;
    add(templates, e.template, e.template, e);
    add(agents, e.agent, e.template, e);
  }
  const line = (acc: Acc, agent?: string): Utilisation => {
    const spanMs = acc.lastMs - acc.firstMs;
    const ratio = spanMs <= 0 ? 0 : acc.busyMs / (spanMs * acc.agents.size);
    return { template: acc.template, ...(agent === undefined ? {} : { agent }), busyMs: acc.busyMs, spanMs, ratio: Math.round(ratio * 1000) / 1000 };
  };
  const byName = <T>(map: Map<string, T>) => [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return [...byName(templates).map(([, acc]) => line(acc)), ...byName(agents).map(([agent, acc]) => line(acc, agent))];
}

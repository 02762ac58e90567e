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

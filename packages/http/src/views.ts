/**
 * Views the supervisor may serve as its `messages` and `analytics` ports as they are: computed from
 * the registry's executions and the audit trail, so they read only SQLite.
 */
import type { ExecutionView, Registry } from '@warren/registry';
import type { AnalyticsBucket, AnalyticsView, MessagesView } from './ports.js';

/** Options of {@link messagesView}. */
export interface MessagesFilter {
  /** Only messages from or to this agent. */
  readonly agent?: string;
  /** Only messages at or after this time, ms since the epoch. */
  readonly sinceMs?: number;
  /** The newest messages listed, at most; edges count all. Default 1000. */
  readonly limit?: number;
}

/**
 * Who messaged whom, from the audit trail: each relayed message is decided by the policy as
 * `(sub: <from agent>, obj: agent:<to>, act: message)`, one `policy.decide` row each.
 * @returns the newest `limit` messages, oldest first, and per (from, to) the count and denials.
 */
export function messagesView(registry: Registry, filter: MessagesFilter = {}): MessagesView {
  const where = ["action = 'policy.decide'", "object LIKE 'agent:%'", "json_extract(details, '$.act') = 'message'"];
  const params: (string | number)[] = [];
  if (filter.sinceMs !== undefined) {
    where.push('time_ms >= ?');
    params.push(filter.sinceMs);
  }
  if (filter.agent !== undefined) {
    where.push('(actor = ? OR object = ?)');
    params.push(filter.agent, `agent:${filter.agent}`);
  }
  const sql = where.join(' AND ');
  const rows = registry.db
    .prepare<(string | number)[], { seq: number; time_ms: number; actor: string; object: string; decision: string | null }>(
      `SELECT seq, time_ms, actor, object, decision FROM audit WHERE ${sql} ORDER BY seq DESC LIMIT ?`,
    )
    .all(...params, filter.limit ?? 1000)
    .reverse();
  const edges = registry.db
    .prepare<(string | number)[], { actor: string; object: string; count: number; denied: number }>(
      `SELECT actor, object, COUNT(*) AS count, SUM(decision = 'deny') AS denied FROM audit WHERE ${sql} GROUP BY actor, object ORDER BY count DESC, actor, object`,
    )
    .all(...params);
  return {
    messages: rows.map((r) => ({ seq: r.seq, timeMs: r.time_ms, from: r.actor, to: r.object.slice('agent:'.length), allowed: r.decision === 'allow' })),
    edges: edges.map((e) => ({ from: e.actor, to: e.object.slice('agent:'.length), count: e.count, denied: e.denied })),
  };
}

/** Options of {@link analyticsView}. */
export interface AnalyticsFilter {
  /** Only executions assigned at or after this time, ms since the epoch. Default all. */
  readonly sinceMs?: number;
  /** The width of a series bucket, ms. Default: the covered time split into about 60 buckets, at least a minute. */
  readonly bucketMs?: number;
  /** The capabilities a task needs (from its card), for the busiest capabilities. Default none known. */
  readonly capabilitiesOf?: (taskId: string) => readonly string[];
  /** The clock, ms since the epoch. */
  readonly nowMs: number;
}

/** The nearest-rank percentile `p` (0..1) of sorted `values`; null when empty. */
function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

const numbers = (values: readonly (number | null)[]): number[] => values.filter((v): v is number => v !== null).sort((a, b) => a - b);

/**
 * The analytics the dashboard draws: the registry's facts per template and agent, plus
 *
 * - `series`: finished executions per bucket of `bucketMs` by finish time, with outcomes, retries
 *   (attempt > 1) and p50/p95 of queue wait and run time (nearest rank);
 * - `rates`: succeeded, failed (any other outcome) and retried shares of finished executions;
 * - `utilisation`: per template and per agent, running time over the covered span
 *   (`busyMs / spanMs`, span from the first assignment considered to now, per instance);
 * - `capabilities`: tasks per needed capability, most first;
 * - `incidents`: counts of audit rows since `sinceMs`: `supervisor.recovered` (crash recoveries),
 *   `agent.watchdog` (watchdog kills), `task.retry` (retries), `agent.spawn_failed`.
 */
export function analyticsView(registry: Registry, filter: AnalyticsFilter): AnalyticsView {
  const since = filter.sinceMs;
  const executions = registry.executions(since === undefined ? {} : { sinceMs: since });
  const facts = registry.analytics(since === undefined ? {} : { sinceMs: since });
  const finished = executions.filter((e) => e.finishedMs !== null);
  const firstMs = executions.reduce((min, e) => Math.min(min, e.assignedMs ?? min), since ?? filter.nowMs);
  const spanMs = Math.max(1, filter.nowMs - (since ?? firstMs));
  const bucketMs = filter.bucketMs ?? Math.max(60_000, Math.ceil(spanMs / 60 / 60_000) * 60_000);

  const buckets = new Map<number, ExecutionView[]>();
  for (const e of finished) {
    const start = Math.floor(e.finishedMs! / bucketMs) * bucketMs;
    let list = buckets.get(start);
    if (!list) buckets.set(start, (list = []));
    list.push(e);
  }
  const series: AnalyticsBucket[] = [...buckets.entries()]
    .sort(([a], [b]) => a - b)
    .map(([startMs, list]) => {
      const waits = numbers(list.map((e) => e.waitingMs));
      const runs = numbers(list.map((e) => e.runningMs));
      return {
        startMs,
        finished: list.length,
        succeeded: list.filter((e) => e.outcome === 'succeeded').length,
        failed: list.filter((e) => e.outcome !== 'succeeded').length,
        retried: list.filter((e) => e.attempt > 1).length,
        p50WaitMs: percentile(waits, 0.5),
        p95WaitMs: percentile(waits, 0.95),
        p50RunMs: percentile(runs, 0.5),
        p95RunMs: percentile(runs, 0.95),
      };
    });

  const share = (n: number) => (finished.length === 0 ? 0 : n / finished.length);
  const busy = (list: readonly ExecutionView[]) => list.reduce((sum, e) => sum + (e.runningMs ?? 0), 0);
  const utilisation: { template: string; agent?: string; busyMs: number; spanMs: number; ratio: number }[] = [];
  const byTemplate = new Map<string, ExecutionView[]>();
  const byAgent = new Map<string, ExecutionView[]>();
  for (const e of finished) {
    (byTemplate.get(e.template) ?? byTemplate.set(e.template, []).get(e.template)!).push(e);
    (byAgent.get(e.agent) ?? byAgent.set(e.agent, []).get(e.agent)!).push(e);
  }
  for (const [template, list] of byTemplate) {
    const instances = new Set(list.map((e) => e.agent)).size;
    const busyMs = busy(list);
    utilisation.push({ template, busyMs, spanMs: spanMs * instances, ratio: busyMs / (spanMs * instances) });
  }
  for (const [agent, list] of byAgent) {
    const busyMs = busy(list);
    utilisation.push({ template: list[0]!.template, agent, busyMs, spanMs, ratio: busyMs / spanMs });
  }

  const capabilityTasks = new Map<string, Set<string>>();
  if (filter.capabilitiesOf) {
    for (const e of executions) {
      for (const capability of filter.capabilitiesOf(e.taskId)) {
        (capabilityTasks.get(capability) ?? capabilityTasks.set(capability, new Set()).get(capability)!).add(e.taskId);
      }
    }
  }
  const capabilities = [...capabilityTasks.entries()]
    .map(([capability, tasks]) => ({ capability, tasks: tasks.size }))
    .sort((a, b) => b.tasks - a.tasks || (a.capability < b.capability ? -1 : 1));

  const count = registry.db.prepare<[string, number], { n: number }>('SELECT COUNT(*) AS n FROM audit WHERE action = ? AND time_ms >= ?');
  const incidents = (action: string) => count.get(action, since ?? 0)!.n;
  return {
    ...facts,
    series,
    rates: {
      success: share(finished.filter((e) => e.outcome === 'succeeded').length),
      failure: share(finished.filter((e) => e.outcome !== 'succeeded').length),
      retry: share(finished.filter((e) => e.attempt > 1).length),
    },
    utilisation,
    capabilities,
    incidents: {
      crashRecoveries: incidents('supervisor.recovered'),
      watchdogKills: incidents('agent.watchdog'),
      retries: incidents('task.retry'),
      spawnFailures: incidents('agent.spawn_failed'),
    },
  };
}

import type { SqliteDatabase } from '@warren/store';
import { RegistryError } from './errors.js';
import type { UsageTotals } from './usage.js';

/**
 * Reports over the `llm_usage` ledger (one row per LLM call an agent made through its gateway,
 * written by `UsageLedger`) and the gateway's refusals in the audit trail (`llm.refused` rows):
 * what operators read as the cost panel and a task's usage. Plain JSON, read-only: any process may
 * run them beside a running supervisor.
 */

/** Calls, tokens and cost (US dollars, rounded to a millionth) of a set of usage rows, and how many of the calls failed. */
export interface UsageLine extends UsageTotals {
  /** Calls the agent received an HTTP status ≥ 400 for (the provider's error or the gateway's refusal). */
  readonly failedCalls: number;
}

/** One agent's line of {@link UsageReport.agents}. */
export interface AgentUsage extends UsageLine {
  readonly agent: string;
  /** The template of its most recent call. */
  readonly template: string;
}

/** One template's line of {@link UsageReport.templates}. */
export interface TemplateUsage extends UsageLine {
  readonly template: string;
}

/** One task's line of {@link UsageReport.tasks}. */
export interface TaskUsageLine extends UsageLine {
  readonly taskId: string;
  /** Distinct attempts that made calls. */
  readonly attempts: number;
  /** The agent of its most recent call. */
  readonly agent: string;
  readonly template: string;
}

/** One provider and model's line of {@link UsageReport.models}. */
export interface ModelUsage extends UsageLine {
  readonly provider: string;
  readonly model: string;
}

/** One bucket of {@link UsageReport.series}: the calls that ended in `[startMs, startMs + bucketMs)`. */
export interface UsageBucket {
  /** ms since the Unix epoch, a multiple of the report's `bucketMs`. */
  readonly startMs: number;
  readonly calls: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** US dollars. */
  readonly costUsd: number;
}

/** Refusals of the gateway by reason (`budget_exceeded`, `provider_not_allowed`, …), from `llm.refused` audit rows. */
export interface UsageRefusals {
  readonly total: number;
  /** Sorted by count, most first, then by reason. */
  readonly byReason: readonly { readonly reason: string; readonly count: number }[];
}

/** What {@link usageReport} reads. */
export interface UsageReportRequest {
  /**
   * Calls that ended in `[fromMs, toMs]` (ms since the epoch, both inclusive); default every call.
   * The series then runs over the whole range, empty buckets included.
   */
  readonly range?: { readonly fromMs: number; readonly toMs: number };
  /**
   * The width of a series bucket, ms (a positive integer). Default: the span of the range (or of
   * the calls) divided into about 60 buckets, rounded up to whole seconds, at least 1,000.
   */
  readonly bucketMs?: number;
  /** How many tasks {@link UsageReport.tasks} lists, the most expensive first. Default 20. */
  readonly topTasks?: number;
}

/** Usage and cost for operators: totals, per agent, template, task and model, over time, and refusals. */
export interface UsageReport {
  /** The range asked for, or null for all calls. */
  readonly range: { readonly fromMs: number; readonly toMs: number } | null;
  readonly bucketMs: number;
  readonly total: UsageLine;
  /** Sorted by cost, most first, then by name. */
  readonly agents: readonly AgentUsage[];
  /** Sorted by cost, most first, then by name. */
  readonly templates: readonly TemplateUsage[];
  /** The `topTasks` tasks with the highest cost (then most tokens), calls made between tasks left out. */
  readonly tasks: readonly TaskUsageLine[];
  /** Sorted by cost, most first, then by provider and model. */
  readonly models: readonly ModelUsage[];
  /** Oldest first, at most {@link MAX_USAGE_BUCKETS} (the newest ones). */
  readonly series: readonly UsageBucket[];
  readonly refusals: UsageRefusals;
}

/** One attempt's line of {@link TaskUsage.attempts}. */
export interface AttemptUsage extends UsageLine {
  /** Null for calls recorded without an attempt. */
  readonly attempt: number | null;
  /** The agent of its most recent call. */
  readonly agent: string;
  /** `<provider>/<model>` of its calls, sorted. */
  readonly models: readonly string[];
  /** When its first and last calls ended, ms since the epoch. */
  readonly firstMs: number;
  readonly lastMs: number;
}

/** A task's LLM usage, in total and per attempt (oldest attempt first). */
export interface TaskUsage {
  readonly total: UsageLine;
  readonly attempts: readonly AttemptUsage[];
}

/** The most buckets a report's series holds. */
export const MAX_USAGE_BUCKETS = 500;
const DEFAULT_TOP_TASKS = 20;

const SUMS = `COUNT(*) AS calls, COALESCE(SUM(input_tokens), 0) AS inputTokens, COALESCE(SUM(output_tokens), 0) AS outputTokens,
  COALESCE(SUM(cost_usd), 0) AS costUsd, COALESCE(SUM(status >= 400), 0) AS failedCalls`;

type SumsRow = { calls: number; inputTokens: number; outputTokens: number; costUsd: number; failedCalls: number };

/** A sum of dollars rounded to a millionth (floating-point sums of prices carry noise below that). */
const dollars = (usd: number): number => Math.round(usd * 1e6) / 1e6;

const line = (r: SumsRow): UsageLine => ({ calls: r.calls, inputTokens: r.inputTokens, outputTokens: r.outputTokens, costUsd: dollars(r.costUsd), failedCalls: r.failedCalls });

const ZERO: UsageLine = { calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, failedCalls: 0 };

function hasTable(db: SqliteDatabase, name: string): boolean {
  return db.prepare<[string], { n: number }>("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?").get(name)!.n > 0;
}

function wholeNumber(value: number, field: string, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new RegistryError('WARREN_QUERY_INVALID', `'${field}' must be a whole number ≥ ${min}, got ${String(value)}`);
  return value;
}

const byCostThenName =
  <T extends UsageLine>(name: (x: T) => string) =>
  (a: T, b: T): number =>
    b.costUsd - a.costUsd || (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0);

/**
 * The usage report over `db`'s `llm_usage` table and audit trail (tables that do not exist yet
 * count as empty): totals; per agent, template, task (the most expensive `topTasks`) and
 * provider+model; tokens and cost per time bucket; and the gateway's refusals by reason (audit rows
 * with action `llm.refused` and details `{ reason }`; a row without a reason counts as `unknown`).
 * One indexed pass over the calls in range (the ledger's `(template, ts_ms)` index: a report of
 * the last hour reads only that hour's rows), summed per part in memory.
 * @throws {RegistryError} `WARREN_QUERY_INVALID` if the range is not two whole numbers with
 *   `fromMs ≤ toMs`, or `bucketMs` or `topTasks` is not a positive whole number.
 */
export function usageReport(db: SqliteDatabase, request: UsageReportRequest = {}): UsageReport {
  const range = request.range;
  if (range !== undefined) {
    wholeNumber(range.fromMs, 'range.fromMs', 0);
    wholeNumber(range.toMs, 'range.toMs', 0);
    if (range.fromMs > range.toMs) throw new RegistryError('WARREN_QUERY_INVALID', `'range.fromMs' (${range.fromMs}) must not be after 'range.toMs' (${range.toMs})`);
  }
  const topTasks = wholeNumber(request.topTasks ?? DEFAULT_TOP_TASKS, 'topTasks', 1);
  if (request.bucketMs !== undefined) wholeNumber(request.bucketMs, 'bucketMs', 1);
  const refusals = refusalsOf(db, range);
  if (!hasTable(db, 'llm_usage')) {
    const bucketMs = request.bucketMs ?? defaultBucketMs(range === undefined ? 0 : range.toMs - range.fromMs);
    return { range: range ?? null, bucketMs, total: ZERO, agents: [], templates: [], tasks: [], models: [], series: range === undefined ? [] : buckets(new Map(), bucketMs, range.fromMs, range.toMs), refusals };
  }

  // The templates, found by skipping through the (template, ts_ms) index: a few lookups, no scan.
  const templateNames = db
    .prepare<[], { name: string }>(
      `WITH RECURSIVE t(name) AS (SELECT MIN(template) FROM llm_usage UNION ALL SELECT (SELECT MIN(template) FROM llm_usage WHERE template > name) FROM t WHERE name IS NOT NULL)
       SELECT name FROM t WHERE name IS NOT NULL`,
    )
    .all()
    .map((r) => r.name);
  let fromMs = range?.fromMs;
  let toMs = range?.toMs;
  if (fromMs === undefined || toMs === undefined) {
    const first = db.prepare<[string], { ms: number }>('SELECT MIN(ts_ms) AS ms FROM llm_usage WHERE template = ?');
    const last = db.prepare<[string], { ms: number }>('SELECT MAX(ts_ms) AS ms FROM llm_usage WHERE template = ?');
    for (const name of templateNames) {
      fromMs = Math.min(fromMs ?? Infinity, first.get(name)!.ms);
      toMs = Math.max(toMs ?? -Infinity, last.get(name)!.ms);
    }
  }
  const bucketMs = request.bucketMs ?? defaultBucketMs(fromMs === undefined || toMs === undefined ? 0 : toMs - fromMs);
  if (fromMs === undefined || toMs === undefined) return { range: null, bucketMs, total: ZERO, agents: [], templates: [], tasks: [], models: [], series: [], refusals };

  // One pass over the calls in range (template IN (…) AND ts_ms BETWEEN: index range lookups),
  // grouped finely enough for every part of the report; the parts are summed here.
  // bucketMs is a validated whole number: integer division puts each call in its bucket.
  const groups = db
    .prepare<(string | number)[], SumsRow & { agent: string; template: string; taskId: string | null; attempt: number | null; provider: string; model: string; startMs: number; newest: number }>(
      `SELECT agent, template, task_id AS taskId, attempt, provider, model, (ts_ms / ${bucketMs}) * ${bucketMs} AS startMs, MAX(ts_ms) AS newest, ${SUMS}
       FROM llm_usage WHERE template IN (${templateNames.map(() => '?').join(', ') || 'NULL'}) AND ts_ms >= ? AND ts_ms <= ?
       GROUP BY agent, template, task_id, attempt, provider, model, startMs`,
    )
    .all(...templateNames, fromMs, toMs);

  type Acc = SumsRow & { newest: number; agent: string; template: string; attempts: Set<number | null> };
  const add = (map: Map<string, Acc>, key: string, g: (typeof groups)[number]): void => {
    let acc = map.get(key);
    if (acc === undefined) {
      acc = { calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, failedCalls: 0, newest: -Infinity, agent: g.agent, template: g.template, attempts: new Set() };
      map.set(key, acc);
    }
    acc.calls += g.calls;
    acc.inputTokens += g.inputTokens;
    acc.outputTokens += g.outputTokens;
    acc.costUsd += g.costUsd;
    acc.failedCalls += g.failedCalls;
    acc.attempts.add(g.attempt);
    if (g.newest > acc.newest) {
      acc.newest = g.newest;
      acc.agent = g.agent;
      acc.template = g.template;
    }
  };
  const total = new Map<string, Acc>();
  const byAgent = new Map<string, Acc>();
  const byTemplate = new Map<string, Acc>();
  const byTask = new Map<string, Acc>();
  const byModel = new Map<string, Acc & { provider: string; model: string }>();
  const byBucket = new Map<string, Acc>();
  for (const g of groups) {
    add(total, '', g);
    add(byAgent, g.agent, g);
    add(byTemplate, g.template, g);
    if (g.taskId !== null) add(byTask, g.taskId, g);
    const modelKey = JSON.stringify([g.provider, g.model]);
    if (!byModel.has(modelKey)) byModel.set(modelKey, { calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, failedCalls: 0, newest: -Infinity, agent: '', template: '', attempts: new Set(), provider: g.provider, model: g.model });
    add(byModel, modelKey, g);
    add(byBucket, String(g.startMs), g);
  }
  const tasks = [...byTask]
    .map(([taskId, a]): TaskUsageLine => ({ taskId, attempts: a.attempts.size, agent: a.agent, template: a.template, ...line(a) }))
    .sort((a, b) => b.costUsd - a.costUsd || b.inputTokens + b.outputTokens - (a.inputTokens + a.outputTokens) || (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0))
    .slice(0, topTasks);
  return {
    range: range ?? null,
    bucketMs,
    total: total.has('') ? line(total.get('')!) : ZERO,
    agents: [...byAgent].map(([agent, a]): AgentUsage => ({ agent, template: a.template, ...line(a) })).sort(byCostThenName((x) => x.agent)),
    templates: [...byTemplate].map(([template, a]): TemplateUsage => ({ template, ...line(a) })).sort(byCostThenName((x) => x.template)),
    tasks,
    models: [...byModel.values()].map((m): ModelUsage => ({ provider: m.provider, model: m.model, ...line(m) })).sort(byCostThenName((x) => `${x.provider}\u0000${x.model}`)),
    series: buckets(new Map([...byBucket].map(([startMs, a]) => [Number(startMs), { startMs: Number(startMs), ...line(a) }])), bucketMs, fromMs, toMs),
    refusals,
  };
}

/** About 60 buckets over `spanMs`, in whole seconds, at least one second. */
function defaultBucketMs(spanMs: number): number {
  return Math.max(1000, Math.ceil(Math.max(1, spanMs) / 60 / 1000) * 1000);
}

/** Every bucket from `fromMs`'s to `toMs`'s (the newest {@link MAX_USAGE_BUCKETS}), filled from `found`. */
function buckets(found: ReadonlyMap<number, UsageBucket>, bucketMs: number, fromMs: number, toMs: number): UsageBucket[] {
  const last = Math.floor(toMs / bucketMs) * bucketMs;
  const first = Math.max(Math.floor(fromMs / bucketMs) * bucketMs, last - (MAX_USAGE_BUCKETS - 1) * bucketMs);
  const out: UsageBucket[] = [];
  for (let startMs = first; startMs <= last; startMs += bucketMs) {
    const b = found.get(startMs);
    out.push({ startMs, calls: b?.calls ?? 0, inputTokens: b?.inputTokens ?? 0, outputTokens: b?.outputTokens ?? 0, costUsd: dollars(b?.costUsd ?? 0) });
  }
  return out;
}

function refusalsOf(db: SqliteDatabase, range: UsageReportRequest['range']): UsageRefusals {
  if (!hasTable(db, 'audit')) return { total: 0, byReason: [] };
  const rows = db
    .prepare<number[], { reason: string; count: number }>(
      `SELECT COALESCE(json_extract(details, '$.reason'), 'unknown') AS reason, COUNT(*) AS count FROM audit
       WHERE action = 'llm.refused'${range === undefined ? '' : ' AND time_ms >= ? AND time_ms <= ?'} GROUP BY reason`,
    )
    .all(...(range === undefined ? [] : [range.fromMs, range.toMs]));
  const byReason = rows.map((r) => ({ reason: String(r.reason), count: r.count })).sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0));
  return { total: byReason.reduce((n, r) => n + r.count, 0), byReason };
}

/**
 * The LLM usage of task `taskId`: its total and one line per attempt (attempt order, calls without
 * an attempt last), each with its agent, the models it called and when. All zero and no attempts
 * when the task made no call (or the ledger does not exist yet).
 */
export function taskUsage(db: SqliteDatabase, taskId: string): TaskUsage {
  if (!hasTable(db, 'llm_usage')) return { total: ZERO, attempts: [] };
  const rows = db
    .prepare<[string], SumsRow & { attempt: number | null; firstMs: number; lastMs: number }>(
      `SELECT attempt, MIN(ts_ms) AS firstMs, MAX(ts_ms) AS lastMs, ${SUMS} FROM llm_usage WHERE task_id = ? GROUP BY attempt ORDER BY attempt IS NULL, attempt`,
    )
    .all(taskId);
  const newestAgent = db.prepare<[string, number | null], { agent: string }>('SELECT agent FROM llm_usage WHERE task_id = ? AND attempt IS ? ORDER BY ts_ms DESC, id DESC LIMIT 1');
  const modelsOf = db.prepare<[string, number | null], { provider: string; model: string }>(
    'SELECT DISTINCT provider, model FROM llm_usage WHERE task_id = ? AND attempt IS ? ORDER BY provider, model',
  );
  const attempts = rows.map(
    (r): AttemptUsage => ({
      attempt: r.attempt,
      agent: newestAgent.get(taskId, r.attempt)!.agent,
      models: modelsOf.all(taskId, r.attempt).map((m) => `${m.provider}/${m.model}`),
      firstMs: r.firstMs,
      lastMs: r.lastMs,
      ...line(r),
    }),
  );
  const total = attempts.reduce<UsageLine>(
    (sum, a) => ({
      calls: sum.calls + a.calls,
      inputTokens: sum.inputTokens + a.inputTokens,
      outputTokens: sum.outputTokens + a.outputTokens,
      costUsd: dollars(sum.costUsd + a.costUsd),
      failedCalls: sum.failedCalls + a.failedCalls,
    }),
    ZERO,
  );
  return { total, attempts };
}

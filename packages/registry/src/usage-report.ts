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
 * One pass of SQL aggregates per part, using the ledger's `(agent|template, ts_ms)` indexes.
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
  const where = range === undefined ? '' : 'WHERE ts_ms >= ? AND ts_ms <= ?';
  const params: number[] = range === undefined ? [] : [range.fromMs, range.toMs];
  const refusals = refusalsOf(db, range);

  if (!hasTable(db, 'llm_usage')) {
    const bucketMs = request.bucketMs ?? defaultBucketMs(range === undefined ? 0 : range.toMs - range.fromMs);
    return { range: range ?? null, bucketMs, total: ZERO, agents: [], templates: [], tasks: [], models: [], series: range === undefined ? [] : buckets(new Map(), bucketMs, range.fromMs, range.toMs), refusals };
  }
  const all = <R>(sql: string, extra: number[] = []): R[] => db.prepare<number[], R>(sql).all(...params, ...extra);
  const total = line(db.prepare<number[], SumsRow>(`SELECT ${SUMS} FROM llm_usage ${where}`).get(...params)!);
  // The template (or agent) of the newest call in each group: SQLite takes the bare column from the MAX() row.
  const agents = all<SumsRow & { agent: string; template: string; newest: number }>(
    `SELECT agent, template, MAX(ts_ms) AS newest, ${SUMS} FROM llm_usage ${where} GROUP BY agent`,
  ).map((r): AgentUsage => ({ agent: r.agent, template: r.template, ...line(r) }));
  const templates = all<SumsRow & { template: string }>(`SELECT template, ${SUMS} FROM llm_usage ${where} GROUP BY template`).map(
    (r): TemplateUsage => ({ template: r.template, ...line(r) }),
  );
  const tasks = all<SumsRow & { taskId: string; attempts: number; agent: string; template: string; newest: number }>(
    `SELECT task_id AS taskId, COUNT(DISTINCT attempt) AS attempts, agent, template, MAX(ts_ms) AS newest, ${SUMS}
     FROM llm_usage ${where === '' ? 'WHERE' : `${where} AND`} task_id IS NOT NULL
     GROUP BY task_id ORDER BY costUsd DESC, inputTokens + outputTokens DESC, taskId LIMIT ?`,
    [topTasks],
  ).map((r): TaskUsageLine => ({ taskId: r.taskId, attempts: r.attempts, agent: r.agent, template: r.template, ...line(r) }));
  const models = all<SumsRow & { provider: string; model: string }>(`SELECT provider, model, ${SUMS} FROM llm_usage ${where} GROUP BY provider, model`).map(
    (r): ModelUsage => ({ provider: r.provider, model: r.model, ...line(r) }),
  );

  const span = all<{ first: number | null; last: number | null }>(`SELECT MIN(ts_ms) AS first, MAX(ts_ms) AS last FROM llm_usage ${where}`)[0]!;
  const fromMs = range?.fromMs ?? span.first;
  const toMs = range?.toMs ?? span.last;
  const bucketMs = request.bucketMs ?? defaultBucketMs(fromMs === null || toMs === null ? 0 : toMs - fromMs);
  let series: UsageBucket[] = [];
  if (fromMs !== null && toMs !== null) {
    const rows = all<{ startMs: number; calls: number; inputTokens: number; outputTokens: number; costUsd: number }>(
      // bucketMs is a validated whole number: integer division puts each call in its bucket.
      `SELECT (ts_ms / ${bucketMs}) * ${bucketMs} AS startMs, COUNT(*) AS calls, SUM(input_tokens) AS inputTokens, SUM(output_tokens) AS outputTokens,
         SUM(cost_usd) AS costUsd FROM llm_usage ${where} GROUP BY startMs`,
    );
    series = buckets(new Map(rows.map((r) => [r.startMs, r])), bucketMs, fromMs, toMs);
  }
  return {
    range: range ?? null,
    bucketMs,
    total,
    agents: agents.sort(byCostThenName((x) => x.agent)),
    templates: templates.sort(byCostThenName((x) => x.template)),
    tasks,
    models: models.sort(byCostThenName((x) => `${x.provider}\u0000${x.model}`)),
    series,
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

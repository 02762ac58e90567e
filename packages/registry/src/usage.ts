import { migrate, type SqliteDatabase } from '@warren/store';

/**
 * One LLM call that went through an agent's gateway, as recorded in the `llm_usage` table.
 * Token counts are the provider's own (its `usage` object); cost is computed by the gateway from
 * the provider's prices, 0 when none is configured for the model.
 */
export interface LlmUsageRow {
  /** When the call ended, in ms since the Unix epoch. */
  readonly tsMs: number;
  readonly agent: string;
  readonly template: string;
  /** The task the agent was running when it called, or null between tasks. */
  readonly taskId: string | null;
  readonly attempt: number | null;
  /** The provider's name, as its configuration file gives it. */
  readonly provider: string;
  /** The model name sent to the provider (after the provider's model mapping). */
  readonly model: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** US dollars. */
  readonly costUsd: number;
  /** The HTTP status the agent received (the provider's, or the gateway's own refusal). */
  readonly status: number;
  /** From the request's arrival at the gateway to the response's last byte, in ms. */
  readonly durationMs: number;
}

/** Sums over a set of usage rows. */
export interface UsageTotals {
  readonly calls: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly costUsd: number;
}

/** Which rows {@link UsageLedger.totals} sums; every field given narrows the set. */
export interface UsageFilter {
  readonly agent?: string;
  readonly template?: string;
  readonly taskId?: string;
  readonly attempt?: number;
  /** Rows with `tsMs >= sinceMs`. */
  readonly sinceMs?: number;
}

const MIGRATIONS = [
  {
    version: 1,
    sql: `
      CREATE TABLE llm_usage (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        agent TEXT NOT NULL,
        template TEXT NOT NULL,
        task_id TEXT,
        attempt INTEGER,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        status INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX llm_usage_task ON llm_usage (task_id, attempt);
      CREATE INDEX llm_usage_agent_ts ON llm_usage (agent, ts_ms);
      CREATE INDEX llm_usage_template_ts ON llm_usage (template, ts_ms);
    `,
  },
];

/**
 * Creates the `llm_usage` table (migration component `llm`). Idempotent.
 * @throws {StoreError} if the migration fails.
 */
export function migrateUsage(db: SqliteDatabase): void {
  migrate(db, 'llm', MIGRATIONS);
}

/**
 * The record of every LLM call agents make through their gateways, and the sums budgets are
 * checked against. Writes are synchronous SQLite inserts (one row per call).
 */
export class UsageLedger {
  private readonly insert;

  /** Migrates `db` ({@link migrateUsage}) and prepares the statements. Closing `db` is the caller's. */
  constructor(private readonly db: SqliteDatabase) {
    migrateUsage(db);
    this.insert = db.prepare(
      `INSERT INTO llm_usage (ts_ms, agent, template, task_id, attempt, provider, model, input_tokens, output_tokens, cost_usd, status, duration_ms)
       VALUES (@tsMs, @agent, @template, @taskId, @attempt, @provider, @model, @inputTokens, @outputTokens, @costUsd, @status, @durationMs)`,
    );
  }

  /** Appends one call. @returns the row's id. */
  record(row: LlmUsageRow): number {
    return Number(this.insert.run(row).lastInsertRowid);
  }

  /** Calls, tokens and cost of the rows `filter` selects (all zero when none). */
  totals(filter: UsageFilter = {}): UsageTotals {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const add = (column: string, op: string, value: string | number | undefined): void => {
      if (value === undefined) return;
      where.push(`${column} ${op} ?`);
      params.push(value);
    };
    add('agent', '=', filter.agent);
    add('template', '=', filter.template);
    add('task_id', '=', filter.taskId);
    add('attempt', '=', filter.attempt);
    add('ts_ms', '>=', filter.sinceMs);
    const row = this.db
      .prepare<(string | number)[], { calls: number; input: number | null; output: number | null; cost: number | null }>(
        `SELECT COUNT(*) AS calls, SUM(input_tokens) AS input, SUM(output_tokens) AS output, SUM(cost_usd) AS cost
         FROM llm_usage ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}`,
      )
      .get(...params)!;
    return { calls: row.calls, inputTokens: row.input ?? 0, outputTokens: row.output ?? 0, costUsd: row.cost ?? 0 };
  }
}

import type { ResultMessage } from '@warren/broker';
import { silentLogger, type Logger } from '@warren/core';
import { TaskState } from '@warren/registry';
import { migrate, type SqliteDatabase } from '@warren/store';
import {
  formatTraceparent,
  SpanKind,
  SpanStatusCode,
  TRACE_FLAG_SAMPLED,
  type Attributes,
  type SpanRecordStatus,
  type TraceContext,
  type Tracing,
} from '@warren/telemetry';

/**
 * One trace per task execution (task + attempt), from the board change Warren saw to the card that
 * shows how it ended. The supervisor's stages report what happens to an execution; this module
 * turns it into spans, all children of the execution's root span `task.execution`:
 *
 * ```
 * task.execution                      board change seen → settled card written
 * ├─ board.refresh                    the board read that saw the task ready (when recent)
 * ├─ plan                             the plan of the tick that assigned it
 * ├─ spawn                            an agent started for it: requested → agent ready
 * ├─ assign                           committed → the agent took it (or it ended untaken)
 * │  └─ publish (producer)            one per publish of the assignment on NATS
 * │     └─ agent.run (consumer)       the runner's own span, reported with the result
 * ├─ result                           the result left the agent's channel → settled
 * └─ board.write                      each write of its card (in progress, then the end)
 * ```
 *
 * Spans that outlive a tick (the root, `assign`) get their ids when the execution is assigned and
 * are recorded when they end, from the row kept in the state database (`execution_traces`,
 * migration component `tracing`): a supervisor restarted after a crash continues the same trace
 * for that execution, and the HTTP API reads a task's trace id from the same row. The
 * `traceparent` sent with the assignment names the publish span; the runner's span is its child,
 * and the task's process gets `TRACEPARENT` naming the runner's span.
 *
 * With tracing off (no OTLP endpoint) every method returns at once and nothing is written.
 * Methods never throw for a missing execution: an execution assigned while tracing was off has no
 * trace, and its reports are ignored.
 */

/** The tracing schema, under the migration component `tracing`. */
const MIGRATIONS = [
  {
    version: 1,
    sql: `CREATE TABLE execution_traces (
      task_id TEXT NOT NULL,
      attempt INTEGER NOT NULL,
      trace_id TEXT NOT NULL,
      root_span_id TEXT NOT NULL,
      assign_span_id TEXT NOT NULL,
      traceparent TEXT NOT NULL,
      agent TEXT NOT NULL,
      started_ms INTEGER NOT NULL,
      assigned_ms INTEGER NOT NULL,
      acked_ms INTEGER,
      settled_ms INTEGER,
      outcome TEXT,
      reason TEXT,
      ended_ms INTEGER,
      PRIMARY KEY (task_id, attempt)
    ) STRICT;
    CREATE INDEX execution_traces_trace ON execution_traces (trace_id);`,
  },
];

/**
 * Creates or updates the `execution_traces` table (migration component `tracing`). Idempotent.
 * @throws {StoreError} if a migration fails.
 */
export function migrateTracing(db: SqliteDatabase): void {
  migrate(db, 'tracing', MIGRATIONS);
}

/** The trace of one execution, as stored. */
export interface ExecutionTrace {
  readonly taskId: string;
  readonly attempt: number;
  /** 32 lowercase hex digits. */
  readonly traceId: string;
  /** The root span's W3C `traceparent` (`00-<trace id>-<root span id>-01`). */
  readonly traceparent: string;
  readonly agent: string;
  /** When the trace starts (the board change seen, or the task ready), in ms since the epoch. */
  readonly startedMs: number;
  /** When its card was written with the end, in ms since the epoch; null while the trace is open. */
  readonly endedMs: number | null;
}

interface TraceRow {
  task_id: string;
  attempt: number;
  trace_id: string;
  root_span_id: string;
  assign_span_id: string;
  traceparent: string;
  agent: string;
  started_ms: number;
  assigned_ms: number;
  acked_ms: number | null;
  settled_ms: number | null;
  outcome: string | null;
  reason: string | null;
  ended_ms: number | null;
}

function toTrace(row: TraceRow): ExecutionTrace {
  return {
    taskId: row.task_id,
    attempt: row.attempt,
    traceId: row.trace_id,
    traceparent: row.traceparent,
    agent: row.agent,
    startedMs: row.started_ms,
    endedMs: row.ended_ms,
  };
}

/**
 * The stored trace of attempt `attempt` of `taskId` (the latest attempt when omitted), read from a
 * state database; for readers that do not hold an {@link ExecutionTracing} (the HTTP API, the CLI).
 * @returns undefined when the execution has no trace (tracing was off) or the table does not exist yet.
 */
export function executionTraceOf(db: SqliteDatabase, taskId: string, attempt?: number): ExecutionTrace | undefined {
  const exists = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'execution_traces'`).get();
  if (!exists) return undefined;
  const row = (
    attempt === undefined
      ? db.prepare('SELECT * FROM execution_traces WHERE task_id = ? ORDER BY attempt DESC LIMIT 1').get(taskId)
      : db.prepare('SELECT * FROM execution_traces WHERE task_id = ? AND attempt = ?').get(taskId, attempt)
  ) as TraceRow | undefined;
  return row ? toTrace(row) : undefined;
}

/** A publish of an assignment being traced; see {@link ExecutionTracing.publishing}. */
export interface PublishTrace {
  /** The `traceparent` to send with the assignment (names the publish span). */
  readonly traceparent: string;
  /** Ends the publish span at `endMs` (default: now); with `error`, as failed. */
  end(error?: unknown, endMs?: number): void;
}

/** Options of {@link ExecutionTracing.open}. */
export interface ExecutionTracingOptions {
  /** The state database (migrated here under the component `tracing`). */
  readonly db: SqliteDatabase;
  /** Where spans go (`createTracing` from `@warren/telemetry`); disabled: this records nothing. */
  readonly tracing: Tracing;
  readonly logger?: Logger;
  /** The clock, in ms since the epoch. Default `Date.now`. */
  readonly now?: () => number;
}

/** A board read: when it started and ended, in ms since the epoch. */
interface Window {
  readonly startMs: number;
  readonly endMs: number;
}

/** Board reads remembered, newest last (for the `board.refresh` span of executions assigned later). */
const REFRESH_WINDOWS = 256;
/** A board read counts as the one that saw a task ready when it ended at most this long before, in ms. */
export const REFRESH_MATCH_MS = 5_000;
/** Tasks remembered as waiting for an agent started for them (oldest forgotten first). */
const SPAWN_WAITS = 10_000;

/**
 * The supervisor's side of execution tracing; see the module comment for the spans it makes.
 * Made by {@link ExecutionTracing.open}; each method is one call at one place of the supervisor.
 */
export class ExecutionTracing {
  private readonly refreshes: Window[] = [];
  private lastPlan: Window | undefined;
  /** Tasks an agent is being started for: the template and when the start was asked, by task id. */
  private readonly spawnWaits = new Map<string, { template: string; startMs: number }>();
  /** When each agent last became ready, by name. */
  private readonly readyAt = new Map<string, number>();
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly stmts: ReturnType<typeof prepare> | undefined;

  private constructor(
    readonly tracing: Tracing,
    options: ExecutionTracingOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.log = options.logger ?? silentLogger;
    this.stmts = tracing.enabled ? prepare(options.db) : undefined;
  }

  /**
   * Migrates the `execution_traces` table (always, so readers find it) and returns the tracing
   * of this supervisor. Close it with {@link close}.
   * @throws {StoreError} if the migration fails.
   */
  static open(options: ExecutionTracingOptions): ExecutionTracing {
    migrateTracing(options.db);
    return new ExecutionTracing(options.tracing, options);
  }

  /** Whether spans are recorded (an OTLP endpoint is configured). */
  get enabled(): boolean {
    return this.tracing.enabled;
  }

  /**
   * A board read ran from `startMs` to `endMs` (ms since the epoch). Call it after each
   * `mirror.refresh` (the tick's `nowMs` as start). The read that preceded an execution's
   * readiness becomes its `board.refresh` span.
   */
  boardRefreshed(startMs: number, endMs: number): void {
    if (!this.stmts) return;
    this.refreshes.push({ startMs, endMs: Math.max(startMs, endMs) });
    if (this.refreshes.length > REFRESH_WINDOWS) this.refreshes.shift();
  }

  /** The tick's plan ran from `startMs` to `endMs`; the executions it assigns get it as their `plan` span. Call it before their {@link assigned}. */
  planned(startMs: number, endMs: number): void {
    if (!this.stmts) return;
    this.lastPlan = { startMs, endMs: Math.max(startMs, endMs) };
  }

  /**
   * The plan asked for an agent of `template` to be started for `taskIds` at `nowMs`. When one of
   * them is assigned, its `spawn` span runs from here to when its agent became ready.
   */
  spawnRequested(template: string, taskIds: readonly string[], nowMs: number): void {
    if (!this.stmts) return;
    for (const taskId of taskIds) {
      if (this.spawnWaits.has(taskId)) continue;
      this.spawnWaits.set(taskId, { template, startMs: nowMs });
      if (this.spawnWaits.size > SPAWN_WAITS) this.spawnWaits.delete(this.spawnWaits.keys().next().value!);
    }
  }

  /** Agent `agent`'s runner said hello at `nowMs`: it takes work from now on. */
  agentReady(agent: string, nowMs: number): void {
    if (!this.stmts) return;
    this.readyAt.set(agent, nowMs);
  }

  /** Forgets an agent that is gone (deleted), so the ready times kept stay bounded by the agents that exist. */
  agentGone(agent: string): void {
    this.readyAt.delete(agent);
  }

  /**
   * Opens the trace of attempt `attempt` of `taskId`, just assigned to `agent` at `nowMs`: its ids
   * are stored (inside the caller's transaction, with the execution), and the spans already
   * known are recorded: `board.refresh` (the last board read before `readySinceMs`, if it ended at
   * most {@link REFRESH_MATCH_MS} before), `plan` (see {@link planned}) and `spawn` (see
   * {@link spawnRequested}). The root starts at the board read, else at `readySinceMs`.
   * A second call for the same execution changes nothing.
   * @param readySinceMs when the task last became ready (the task row's `readySinceMs`); null: `nowMs`.
   */
  assigned(execution: { taskId: string; attempt: number; agent: string; readySinceMs: number | null; nowMs: number }): void {
    const { stmts, tracing } = this;
    if (!stmts) return;
    const { taskId, attempt, agent, nowMs } = execution;
    if (stmts.get.get(taskId, attempt)) return;
    const readyMs = Math.min(execution.readySinceMs ?? nowMs, nowMs);
    const refresh = this.refreshBefore(readyMs);
    // The plan of this tick (planned() runs right before the tick's assignments); an older one is not this assignment's.
    const plan = this.lastPlan && this.lastPlan.endMs >= nowMs - REFRESH_MATCH_MS ? this.lastPlan : undefined;
    // The execution is committed once the plan has ended.
    const assignedMs = Math.max(nowMs, plan?.endMs ?? nowMs);
    const startedMs = Math.min(readyMs, refresh?.startMs ?? readyMs);
    const traceId = tracing.newTraceId();
    const rootSpanId = tracing.newSpanId();
    const root: TraceContext = { traceId, spanId: rootSpanId, traceFlags: TRACE_FLAG_SAMPLED };
    stmts.insert.run({
      task_id: taskId,
      attempt,
      trace_id: traceId,
      root_span_id: rootSpanId,
      assign_span_id: tracing.newSpanId(),
      traceparent: formatTraceparent(root),
      agent,
      started_ms: startedMs,
      assigned_ms: assignedMs,
    });
    const attributes = executionAttributes(taskId, attempt, agent);
    if (refresh) this.child(root, 'board.refresh', refresh.startMs, refresh.endMs, attributes);
    if (plan) this.child(root, 'plan', plan.startMs, plan.endMs, attributes);
    const spawn = this.spawnWaits.get(taskId);
    if (spawn) {
      this.spawnWaits.delete(taskId);
      const ready = this.readyAt.get(agent);
      const endMs = ready !== undefined && ready >= spawn.startMs ? ready : assignedMs;
      this.child(root, 'spawn', spawn.startMs, endMs, { ...attributes, 'warren.template': spawn.template });
    }
  }

  /**
   * Starts the span of one publish of the execution's assignment, a child of its `assign` span.
   * Send `traceparent` with the assignment and call `end` once the broker answered.
   * @param subject the NATS subject it is published on, for the span's attributes.
   * @returns undefined when tracing is off or the execution has no trace.
   */
  publishing(taskId: string, attempt: number, subject?: string): PublishTrace | undefined {
    const { stmts, tracing } = this;
    if (!stmts) return undefined;
    const row = stmts.get.get(taskId, attempt) as TraceRow | undefined;
    if (!row) return undefined;
    const span = tracing.startSpan('publish', {
      startTimeMs: this.now(),
      parent: { traceId: row.trace_id, spanId: row.assign_span_id, traceFlags: TRACE_FLAG_SAMPLED },
      kind: SpanKind.PRODUCER,
      attributes: {
        ...executionAttributes(taskId, attempt, row.agent),
        'messaging.system': 'nats',
        'messaging.operation.type': 'send',
        ...(subject === undefined ? {} : { 'messaging.destination.name': subject }),
      },
    });
    const context = tracing.contextOf(span);
    if (!context) {
      span.end();
      return undefined;
    }
    let ended = false;
    return {
      traceparent: formatTraceparent(context),
      end: (error?: unknown, endMs?: number) => {
        if (ended) return;
        ended = true;
        if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : JSON.stringify(error) });
        span.end(endMs ?? this.now());
      },
    };
  }

  /** The agent took the execution at `nowMs`: its `assign` span ends. */
  acked(taskId: string, attempt: number, nowMs: number): void {
    const { stmts } = this;
    if (!stmts) return;
    const row = stmts.get.get(taskId, attempt) as TraceRow | undefined;
    if (!row || row.acked_ms !== null) return;
    stmts.acked.run(nowMs, taskId, attempt);
    this.recordAssign(row, Math.max(nowMs, row.assigned_ms), { code: 'ok' });
  }

  /**
   * A result of the execution was applied at `nowMs`: records the runner's `agent.run` span (when
   * the result carries one of this trace) and the `result` span, from when the agent's channel
   * published the result to now.
   */
  resultReceived(result: ResultMessage, nowMs: number): void {
    const { stmts, tracing } = this;
    if (!stmts) return;
    const row = stmts.get.get(result.taskId, result.attempt) as TraceRow | undefined;
    if (!row) return;
    const attributes: Attributes = {
      ...executionAttributes(result.taskId, result.attempt, result.agent),
      'warren.outcome': result.outcome,
      ...(result.exitCode === null ? {} : { 'process.exit.code': result.exitCode }),
      ...(result.signal === null ? {} : { 'warren.signal': result.signal }),
    };
    const span = result.span;
    if (span && span.traceId === row.trace_id) {
      try {
        tracing.recordSpan({
          name: span.name,
          traceId: span.traceId,
          spanId: span.spanId,
          parentSpanId: span.parentSpanId,
          startTimeMs: span.startMs,
          endTimeMs: span.endMs,
          kind: SpanKind.CONSUMER,
          attributes,
          status: span.status === 'ok' ? { code: 'ok' } : { code: 'error', ...(span.message === undefined ? {} : { message: span.message }) },
        });
      } catch (error) {
        this.log.warn({ err: error, taskId: result.taskId, attempt: result.attempt }, "cannot record the agent's span; dropped");
      }
    } else if (span) {
      this.log.warn({ taskId: result.taskId, attempt: result.attempt, traceId: span.traceId }, "the agent's span names another trace; dropped");
    }
    // The tick's time may precede a result that arrived while the tick ran.
    const appliedMs = Math.max(nowMs, this.now());
    this.child(rootOf(row), 'result', Math.min(result.finishedAtMs, appliedMs), appliedMs, attributes, result.outcome === 'succeeded' ? { code: 'ok' } : { code: 'error', message: result.summary.split('\n')[0]!.slice(0, 200) });
  }

  /**
   * The execution was settled at `nowMs` (`outcome`: how it ended, `reason` why), inside the
   * caller's transaction. An `assign` span still open ends here, as untaken. The root ends with the
   * next write of the task's card ({@link boardWritten}), or here with `cardWritten: false`, for an
   * execution whose card Warren will not write (a person moved it, or it was cancelled by hand).
   */
  settled(taskId: string, attempt: number, outcome: string, reason: string, nowMs: number, options: { cardWritten?: boolean } = {}): void {
    const { stmts } = this;
    if (!stmts) return;
    const row = stmts.get.get(taskId, attempt) as TraceRow | undefined;
    if (!row || row.settled_ms !== null) return;
    const settled = { ...row, settled_ms: nowMs, outcome, reason: reason.slice(0, 2000) };
    stmts.settled.run(nowMs, settled.outcome, settled.reason, taskId, attempt);
    if (row.acked_ms === null) {
      stmts.acked.run(nowMs, taskId, attempt);
      this.recordAssign(row, Math.max(nowMs, row.assigned_ms), { code: 'error', message: `the agent never took it: ${outcome}` });
    }
    if (options.cardWritten === false) this.endRoot(settled, nowMs);
  }

  /**
   * The card of attempt `attempt` of `taskId` was written from `startMs` to `endMs` (`ok`) to show
   * task state `state` (the row's state the write was made from), or the write was given up
   * (`ok: false`, `message` says why: the board's rules refused the move, the card was deleted).
   * Records a `board.write` span; when the execution is settled and `state` is not `assigned` or
   * `running`, the card shows its end and the root span ends with this write.
   */
  boardWritten(taskId: string, attempt: number, write: { state: string; startMs: number; endMs: number; ok: boolean; message?: string; column?: string }): void {
    const { stmts } = this;
    if (!stmts) return;
    const row = stmts.get.get(taskId, attempt) as TraceRow | undefined;
    if (!row || row.ended_ms !== null) return;
    const root = rootOf(row);
    const endMs = Math.max(write.startMs, write.endMs);
    this.child(
      root,
      'board.write',
      write.startMs,
      endMs,
      { ...executionAttributes(taskId, attempt, row.agent), 'warren.task.state': write.state, ...(write.column === undefined ? {} : { 'warren.board.column': write.column }) },
      write.ok ? { code: 'ok' } : { code: 'error', ...(write.message === undefined ? {} : { message: write.message }) },
    );
    if (row.settled_ms === null || write.state === TaskState.assigned || write.state === TaskState.running) return;
    this.endRoot(row, endMs);
  }

  /** The trace id of attempt `attempt` of `taskId` (the latest attempt when omitted), or undefined without a trace. */
  traceIdOf(taskId: string, attempt?: number): string | undefined {
    const { stmts } = this;
    if (!stmts) return undefined;
    const row = (attempt === undefined ? stmts.latest.get(taskId) : stmts.get.get(taskId, attempt)) as TraceRow | undefined;
    return row?.trace_id;
  }

  /** The stored trace of an execution (see {@link executionTraceOf}). */
  traceOf(taskId: string, attempt?: number): ExecutionTrace | undefined {
    const { stmts } = this;
    if (!stmts) return undefined;
    const row = (attempt === undefined ? stmts.latest.get(taskId) : stmts.get.get(taskId, attempt)) as TraceRow | undefined;
    return row ? toTrace(row) : undefined;
  }

  /** Flushes the spans not yet exported and stops exporting. Idempotent; never rejects. */
  close(): Promise<void> {
    return this.tracing.shutdown();
  }

  /** The latest board read that started at or before `readyMs` and ended at most {@link REFRESH_MATCH_MS} before it. */
  private refreshBefore(readyMs: number): Window | undefined {
    for (let i = this.refreshes.length - 1; i >= 0; i--) {
      const w = this.refreshes[i]!;
      if (w.startMs > readyMs) continue;
      return readyMs - w.endMs <= REFRESH_MATCH_MS ? w : undefined;
    }
    return undefined;
  }

  /** Records the root span of a settled execution, ending at `endMs`, and marks its trace ended. */
  private endRoot(row: TraceRow, endMs: number): void {
    const { task_id: taskId, attempt } = row;
    this.stmts?.ended.run(endMs, taskId, attempt);
    try {
      this.tracing.recordSpan({
        name: 'task.execution',
        traceId: row.trace_id,
        spanId: row.root_span_id,
        startTimeMs: row.started_ms,
        endTimeMs: Math.max(endMs, row.started_ms),
        attributes: {
          ...executionAttributes(taskId, attempt, row.agent),
          'warren.outcome': row.outcome ?? 'unknown',
          ...(row.reason === null ? {} : { 'warren.reason': row.reason }),
        },
        status: row.outcome === 'succeeded' ? { code: 'ok' } : { code: 'error', message: row.reason ?? row.outcome ?? 'unknown' },
      });
    } catch (error) {
      this.log.warn({ err: error, taskId, attempt }, 'cannot record the execution span');
    }
  }

  private recordAssign(row: TraceRow, endMs: number, status: SpanRecordStatus): void {
    try {
      this.tracing.recordSpan({
        name: 'assign',
        traceId: row.trace_id,
        spanId: row.assign_span_id,
        parentSpanId: row.root_span_id,
        startTimeMs: row.assigned_ms,
        endTimeMs: endMs,
        attributes: executionAttributes(row.task_id, row.attempt, row.agent),
        status,
      });
    } catch (error) {
      this.log.warn({ err: error, taskId: row.task_id, attempt: row.attempt }, 'cannot record the assign span');
    }
  }

  /** Records a finished child of `parent`. */
  private child(parent: TraceContext, name: string, startMs: number, endMs: number, attributes: Attributes, status?: SpanRecordStatus): void {
    const span = this.tracing.startSpan(name, { startTimeMs: startMs, parent, attributes });
    if (status?.code === 'ok') span.setStatus({ code: SpanStatusCode.OK });
    else if (status?.code === 'error') span.setStatus({ code: SpanStatusCode.ERROR, ...(status.message === undefined ? {} : { message: status.message }) });
    span.end(Math.max(startMs, endMs));
  }
}

function executionAttributes(taskId: string, attempt: number, agent: string): Attributes {
  return { 'warren.task.id': taskId, 'warren.task.attempt': attempt, 'warren.agent.name': agent };
}

function rootOf(row: TraceRow): TraceContext {
  return { traceId: row.trace_id, spanId: row.root_span_id, traceFlags: TRACE_FLAG_SAMPLED };
}

function prepare(db: SqliteDatabase) {
  return {
    insert: db.prepare(
      `INSERT OR IGNORE INTO execution_traces (task_id, attempt, trace_id, root_span_id, assign_span_id, traceparent, agent, started_ms, assigned_ms)
       VALUES (@task_id, @attempt, @trace_id, @root_span_id, @assign_span_id, @traceparent, @agent, @started_ms, @assigned_ms)`,
    ),
    get: db.prepare('SELECT * FROM execution_traces WHERE task_id = ? AND attempt = ?'),
    latest: db.prepare('SELECT * FROM execution_traces WHERE task_id = ? ORDER BY attempt DESC LIMIT 1'),
    acked: db.prepare('UPDATE execution_traces SET acked_ms = ? WHERE task_id = ? AND attempt = ?'),
    settled: db.prepare('UPDATE execution_traces SET settled_ms = ?, outcome = ?, reason = ? WHERE task_id = ? AND attempt = ?'),
    ended: db.prepare('UPDATE execution_traces SET ended_ms = ? WHERE task_id = ? AND attempt = ?'),
  };
}

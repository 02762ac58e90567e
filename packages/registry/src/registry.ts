import { openAudit, type AuditTrail, type AuditVerification } from '@warren/audit';
import type { SqliteDatabase } from '@warren/store';
import { analyticsOf, timeSeries, utilisation } from './analytics.js';
import { CommandQueue } from './commands.js';
import { RegistryError } from './errors.js';
import { migrateMessages, TOPIC_RECIPIENT } from './messages.js';
import {
  agentRow,
  assignmentRow,
  migrateState,
  queuePositions,
  StateStore,
  taskRow,
  type AgentRecord,
  type AssignmentRecord,
  type TaskRecord,
  type TaskRow,
} from './state.js';
import { runningSupervisorPid } from './supervisor-pid.js';
import type {
  AgentsOptions,
  AgentView,
  Analytics,
  AnalyticsReport,
  AnalyticsReportFilter,
  AuditPage,
  AuditPageRequest,
  ExecutionFilter,
  ExecutionView,
  Incidents,
  MessageEdge,
  MessageFilter,
  MessagesView,
  StatusView,
  TaskDetail,
  TaskFilter,
  TaskView,
} from './views.js';

/** Options of {@link openRegistry}. */
export interface OpenRegistryOptions {
  /** The state directory (where `supervisor.pid` is), shown by {@link Registry.status}. */
  readonly stateDir: string;
  /**
   * The pid of the running supervisor, for an in-process caller that knows it. Default: read from
   * `<stateDir>/supervisor.pid` on each {@link Registry.status} (see `runningSupervisorPid`).
   */
  readonly supervisorPid?: number;
  /** The audit trail of `db`, when the caller has it open. Default: opened on first use. */
  readonly audit?: AuditTrail;
  /**
   * The state store over `db` the caller already writes through (the supervisor's), so that one
   * process keeps one task cache. Default: a new one.
   */
  readonly state?: StateStore;
}

const DEFAULT_AUDIT_LIMIT = 1000;

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** The template of an agent named `<template>-<n>` whose `agents` row is gone. */
function templateOfName(name: string): string {
  const dash = name.lastIndexOf('-');
  return dash > 0 ? name.slice(0, dash) : name;
}

function positiveInteger(value: number | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value <= 0) throw new RegistryError('WARREN_QUERY_INVALID', `'${field}' must be a positive whole number, got ${String(value)}`);
  return value;
}

function taskView(row: TaskRow, position: number | null): TaskView {
  return {
    id: row.id,
    path: row.path,
    state: row.state,
    attempt: row.attempt,
    agent: row.agent,
    reason: row.reason,
    queuePosition: position,
    queueReason: row.queueReason,
    readySinceMs: row.readySinceMs,
    notBeforeMs: row.notBeforeMs,
    updatedMs: row.updatedMs,
    boardSync: row.boardSync,
  };
}

const difference = (later: number | null, earlier: number | null): number | null =>
  later === null || earlier === null ? null : later - earlier;

function executionView(record: AssignmentRecord & { agent_template: string | null }): ExecutionView {
  const a = assignmentRow(record);
  return {
    taskId: a.taskId,
    attempt: a.attempt,
    agent: a.agent,
    template: record.agent_template ?? templateOfName(a.agent),
    state: a.state,
    outcome: a.outcome,
    exitCode: a.exitCode,
    summary: a.summary,
    outputs: a.outputs,
    readySinceMs: a.readySinceMs,
    assignedMs: a.assignedMs,
    ackedMs: a.ackedMs,
    finishedMs: a.finishedMs,
    waitingMs: difference(a.assignedMs, a.readySinceMs),
    startingMs: difference(a.ackedMs, a.assignedMs),
    runningMs: difference(a.finishedMs, a.ackedMs ?? a.assignedMs),
  };
}

/**
 * The read model of Warren's state database: named queries that return plain JSON (the shapes in
 * `views.ts`), the state tables ({@link StateStore}) and the operator-command queue. The CLI's read
 * commands use only these queries; an HTTP API or MCP server serves the same ones.
 *
 * Queries read the tables (not the supervisor's in-memory caches), so any process may run them
 * beside a running supervisor: SQLite's WAL gives each query the last committed state.
 */
export class Registry {
  /** The state tables (the supervisor writes through it). */
  readonly state: StateStore;
  /** The durable operator-command queue. */
  readonly commands: CommandQueue;
  private auditTrail: AuditTrail | undefined;
  private readonly stmts;

  /** Use {@link openRegistry}, which migrates the schema first. */
  constructor(
    readonly db: SqliteDatabase,
    private readonly options: OpenRegistryOptions,
  ) {
    if (options.state !== undefined && options.state.db !== db) {
      throw new RegistryError('WARREN_QUERY_INVALID', "'state' must be a StateStore over the registry's database");
    }
    this.state = options.state ?? new StateStore(db);
    this.commands = this.state.commands;
    this.auditTrail = options.audit;
    this.stmts = {
      tasks: db.prepare<[], TaskRecord>('SELECT * FROM tasks'),
      task: db.prepare<[string], TaskRecord>('SELECT * FROM tasks WHERE id = ?'),
      queueAhead: db.prepare<[number, number, string], { n: number }>(
        "SELECT COUNT(*) AS n FROM tasks WHERE state = 'ready' AND queue_position IS NOT NULL AND (queue_position < ? OR (queue_position = ? AND id < ?))",
      ),
      agents: db.prepare<[], AgentRecord>('SELECT * FROM agents ORDER BY name'),
      openExecutions: db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM assignments WHERE state != 'finished'"),
    };
  }

  /** The audit trail, opened on first use (creating its table in a database that has none). */
  private audit(): AuditTrail {
    this.auditTrail ??= openAudit(this.db);
    return this.auditTrail;
  }

  /** Every task row, sorted by id as the supervisor's state store sorts them. */
  private taskRows(): TaskRow[] {
    return this.stmts.tasks.all().map(taskRow).sort(byId);
  }

  /**
   * Whether a supervisor runs on the state directory, tasks and agents by state, open executions
   * and audit rows: what `warren status` shows.
   */
  status(): StatusView {
    const pid = this.options.supervisorPid ?? runningSupervisorPid(this.options.stateDir);
    const count = (values: readonly string[]) => {
      const counts: Record<string, number> = {};
      for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
      return counts;
    };
    return {
      supervisor: pid === undefined ? 'stopped' : 'running',
      pid: pid ?? null,
      stateDir: this.options.stateDir,
      tasks: count(this.taskRows().map((t) => t.state)),
      agents: count(this.stmts.agents.all().map((a) => a.state)),
      openExecutions: this.stmts.openExecutions.get()!.n,
      auditRows: this.audit().lastSeq(),
    };
  }

  /**
   * The tasks Warren knows (rows of `tasks`, not the board's cards) matching `filter`, sorted by id,
   * or by queue position with `waiting`. Queue positions are numbered 1, 2, 3 … over all waiting
   * tasks, whatever the filter.
   */
  tasks(filter: TaskFilter = {}): TaskView[] {
    const rows = this.taskRows();
    const positions = queuePositions(rows);
    const states = filter.state === undefined ? undefined : new Set<string>(typeof filter.state === 'string' ? [filter.state] : filter.state);
    const views = rows
      .filter((r) => (states === undefined || states.has(r.state)) && (filter.agent === undefined || r.agent === filter.agent))
      .filter((r) => !filter.waiting || positions.has(r.id))
      .map((r) => taskView(r, positions.get(r.id) ?? null));
    if (filter.waiting) views.sort((a, b) => a.queuePosition! - b.queuePosition!);
    return views;
  }

  /** The task `id` with its executions, oldest first; undefined when Warren does not know it. */
  task(id: string): TaskDetail | undefined {
    const record = this.stmts.task.get(id);
    if (!record) return undefined;
    const row = taskRow(record);
    const position =
      row.state === 'ready' && row.queuePosition !== null ? this.stmts.queueAhead.get(row.queuePosition, row.queuePosition, row.id)!.n + 1 : null;
    return { ...taskView(row, position), executions: this.executions({ taskId: id }) };
  }

  /**
   * The agent instances (rows of `agents`), sorted by name: name, template, uid, state, pid,
   * started and stopped times, last exit and tasks done; with `options.live`, each running agent's
   * live fields as `live`.
   */
  agents(options: AgentsOptions = {}): AgentView[] {
    return this.stmts.agents.all().map((r) => {
      const row = agentRow(r);
      const live = options.live?.(row.name);
      return live === undefined ? row : { ...row, live };
    });
  }

  /**
   * Executions (rows of `assignments`) matching `filter`, by assignment time, with their waits and
   * durations (see {@link ExecutionView}).
   * @throws {RegistryError} `WARREN_QUERY_INVALID` if `limit` is not a positive integer.
   */
  executions(filter: ExecutionFilter = {}): ExecutionView[] {
    const limit = positiveInteger(filter.limit, 'limit');
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.taskId !== undefined) {
      where.push('a.task_id = ?');
      params.push(filter.taskId);
    }
    if (filter.agent !== undefined) {
      where.push('a.agent = ?');
      params.push(filter.agent);
    }
    if (filter.outcome !== undefined) {
      where.push('a.outcome = ?');
      params.push(filter.outcome);
    }
    if (filter.sinceMs !== undefined) {
      where.push('a.assigned_ms >= ?');
      params.push(filter.sinceMs);
    }
    if (filter.state !== undefined) {
      const states = typeof filter.state === 'string' ? [filter.state] : [...filter.state];
      where.push(`a.state IN (${states.map(() => '?').join(', ') || 'NULL'})`);
      params.push(...states);
    }
    const direction = filter.order === 'desc' ? 'DESC' : 'ASC';
    const sql = `SELECT a.*, g.template AS agent_template FROM assignments a LEFT JOIN agents g ON g.name = a.agent
      ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY a.assigned_ms ${direction}, a.task_id ${direction}, a.attempt ${direction}`;
    let views = this.db
      .prepare<(string | number)[], AssignmentRecord & { agent_template: string | null }>(sql)
      .all(...params)
      .map(executionView);
    if (filter.template !== undefined) views = views.filter((e) => e.template === filter.template);
    return limit === undefined ? views : views.slice(0, limit);
  }

  /**
   * One page of the audit trail, rows by `seq` ascending: the oldest matching rows after the cursor
   * `after`, or with `newest` the newest ones (what `warren audit` lists). Page on with
   * `after: page.next`; tail by asking again with the last `next`.
   * @throws {RegistryError} `WARREN_QUERY_INVALID` if `limit` or `after` is out of range.
   * @throws {AuditError} if a filter value is invalid.
   */
  auditPage(request: AuditPageRequest = {}): AuditPage {
    const limit = positiveInteger(request.limit, 'limit') ?? DEFAULT_AUDIT_LIMIT;
    const after = request.after ?? 0;
    if (!Number.isInteger(after) || after < 0) throw new RegistryError('WARREN_QUERY_INVALID', `'after' must be a whole number ≥ 0, got ${String(after)}`);
    const filter = request.filter ?? {};
    const rows = this.audit().query({
      ...(filter.actor !== undefined ? { actor: filter.actor } : {}),
      ...(filter.action !== undefined ? { action: filter.action } : {}),
      ...(filter.object !== undefined ? { object: filter.object } : {}),
      ...(filter.decision !== undefined ? { decision: filter.decision } : {}),
      ...(filter.sinceMs !== undefined ? { sinceMs: filter.sinceMs } : {}),
      ...(filter.untilMs !== undefined ? { untilMs: filter.untilMs } : {}),
      ...(after > 0 ? { afterSeq: after } : {}),
      limit,
      order: request.newest ? 'desc' : 'asc',
    });
    if (request.newest) rows.reverse();
    return { rows, next: rows.length > 0 ? rows[rows.length - 1]!.seq : after, more: rows.length === limit };
  }

  /**
   * The message decisions agents asked for, newest first: `policy.decide` rows with act `message`
   * (actor the sender, object `agent:<recipient>`) or act `publish` on `topic:<topic>` (to `*`),
   * read from the newest audit row back until `limit` are found (a trail of millions of rows with
   * few messages costs a scan, about 0.3 s per million rows); and the collaboration graph's edges,
   * every (from, to, topic) row of the message ledger (`message_counts`) the filter selects.
   * @throws {RegistryError} `WARREN_QUERY_INVALID` if `limit` is not a positive integer.
   */
  messages(filter: MessageFilter = {}): MessagesView {
    const limit = positiveInteger(filter.limit, 'limit') ?? DEFAULT_AUDIT_LIMIT;
    const where = [
      "action = 'policy.decide'",
      `(details LIKE '%"act":"message"%' OR (object LIKE 'topic:%' AND details LIKE '%"act":"publish"%'))`,
    ];
    const params: (string | number)[] = [];
    if (filter.sinceMs !== undefined) {
      where.push('time_ms >= ?');
      params.push(filter.sinceMs);
    }
    if (filter.agent !== undefined) {
      where.push('(actor = ? OR object = ?)');
      params.push(filter.agent, `agent:${filter.agent}`);
    }
    const rows = this.db
      .prepare<(string | number)[], { seq: number; time_ms: number; actor: string; object: string; decision: string | null }>(
        `SELECT seq, time_ms, actor, object, decision FROM audit WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ?`,
      )
      .all(...params, limit);
    const messages = rows.map((r) => {
      const topic = r.object.startsWith('topic:') ? r.object.slice('topic:'.length) : '';
      const to = topic !== '' ? TOPIC_RECIPIENT : r.object.startsWith('agent:') ? r.object.slice('agent:'.length) : r.object;
      return { seq: r.seq, timeMs: r.time_ms, from: r.actor, to, topic, allowed: r.decision === 'allow' };
    });
    const edgeWhere: string[] = [];
    const edgeParams: (string | number)[] = [];
    if (filter.sinceMs !== undefined) {
      edgeWhere.push('last_ms >= ?');
      edgeParams.push(filter.sinceMs);
    }
    if (filter.agent !== undefined) {
      edgeWhere.push('(from_name = ? OR to_name = ?)');
      edgeParams.push(filter.agent, filter.agent);
    }
    const edges = this.db
      .prepare<(string | number)[], MessageEdge>(
        `SELECT from_name AS "from", to_name AS "to", topic, count, denied, bytes, first_ms AS firstMs, last_ms AS lastMs
         FROM message_counts ${edgeWhere.length > 0 ? `WHERE ${edgeWhere.join(' AND ')}` : ''}
         ORDER BY count DESC, from_name, to_name, topic`,
      )
      .all(...edgeParams);
    return { messages, edges };
  }

  /**
   * Counts of crash recoveries, watchdog kills, retries, spawn failures, unresponsive agents and
   * re-queued executions in the audit trail, since `sinceMs` (default all). One scan of the table.
   */
  incidents(sinceMs?: number): Incidents {
    const kinds = {
      crashRecoveries: 'supervisor.recovered',
      watchdogKills: 'agent.watchdog',
      retries: 'task.retry',
      spawnFailures: 'agent.spawn_failed',
      unresponsive: 'agent.unresponsive',
      requeues: 'task.requeue',
    } as const;
    const actions = Object.values(kinds);
    const rows = this.db
      .prepare<(string | number)[], { action: string; n: number }>(
        `SELECT action, COUNT(*) AS n FROM audit WHERE action IN (${actions.map(() => '?').join(', ')})${sinceMs === undefined ? '' : ' AND time_ms >= ?'} GROUP BY action`,
      )
      .all(...actions, ...(sinceMs === undefined ? [] : [sinceMs]));
    const count = new Map(rows.map((r) => [r.action, r.n]));
    // Every start records what its recovery did; a crash recovery is one that found something to do.
    count.set(
      kinds.crashRecoveries,
      this.db
        .prepare<(string | number)[], { n: number }>(
          `SELECT COUNT(*) AS n FROM audit WHERE action = 'supervisor.recovered'${sinceMs === undefined ? '' : ' AND time_ms >= ?'}
            AND (json_extract(details, '$.resultsApplied') > 0 OR json_array_length(json_extract(details, '$.lostExecutions')) > 0
              OR json_array_length(json_extract(details, '$.requeued')) > 0 OR json_array_length(json_extract(details, '$.failed')) > 0)`,
        )
        .get(...(sinceMs === undefined ? [] : [sinceMs]))!.n,
    );
    return Object.fromEntries(Object.entries(kinds).map(([name, action]) => [name, count.get(action) ?? 0])) as unknown as Incidents;
  }

  /** Re-checks the audit trail's hash chain (see `AuditTrail.verify`). */
  verifyAudit(): AuditVerification {
    return this.audit().verify();
  }

  /**
   * The analytics facts over the executions matching `filter` (default all): per template and per
   * agent, executions, open ones, outcomes, tasks done, and waiting (ready → assigned), starting
   * (assigned → acknowledged) and running (→ finished) times.
   */
  analytics(filter: Pick<ExecutionFilter, 'sinceMs' | 'template' | 'agent'> = {}): Analytics {
    return analyticsOf(this.executions(filter));
  }

  /**
   * {@link analytics} plus what the dashboard charts: throughput and latency per time bucket
   * ({@link timeSeries}), success, failure and retry rates, utilisation per template and agent
   * ({@link utilisation}), the busiest capabilities and the incident counts ({@link incidents}).
   * @throws {RangeError} if `bucketMs` is not a positive integer.
   */
  analyticsReport(filter: AnalyticsReportFilter): AnalyticsReport {
    const since = filter.sinceMs === undefined ? {} : { sinceMs: filter.sinceMs };
    const executions = this.executions(since);
    const firstMs = executions.reduce((min, e) => Math.min(min, e.assignedMs ?? min), filter.nowMs);
    const spanMs = Math.max(1, filter.nowMs - (filter.sinceMs ?? firstMs));
    const bucketMs = filter.bucketMs ?? Math.max(1000, Math.ceil(spanMs / 60 / 1000) * 1000);
    const finished = executions.filter((e) => e.finishedMs !== null);
    const share = (n: number) => (finished.length === 0 ? 0 : Math.round((n / finished.length) * 1000) / 1000);
    const succeeded = finished.filter((e) => e.outcome === 'succeeded').length;
    const tasksByCapability = new Map<string, Set<string>>();
    if (filter.capabilitiesOf) {
      for (const e of executions) {
        for (const capability of filter.capabilitiesOf(e.taskId)) {
          (tasksByCapability.get(capability) ?? tasksByCapability.set(capability, new Set()).get(capability)!).add(e.taskId);
        }
      }
    }
    return {
      ...analyticsOf(executions),
      bucketMs,
      series: timeSeries(executions, bucketMs, 500, { fromMs: filter.sinceMs ?? firstMs, toMs: filter.nowMs }),
      rates: { success: share(succeeded), failure: share(finished.length - succeeded), retry: share(finished.filter((e) => e.attempt > 1).length) },
      utilisation: utilisation(executions, filter.nowMs),
      capabilities: [...tasksByCapability]
        .map(([capability, tasks]) => ({ capability, tasks: tasks.size }))
        .sort((a, b) => b.tasks - a.tasks || (a.capability < b.capability ? -1 : 1)),
      incidents: this.incidents(filter.sinceMs),
    };
  }
}

/**
 * Opens the registry over the state database `db`: brings the state tables up to date
 * ({@link migrateState}) and the message ledger's ({@link migrateMessages}), and prepares the
 * queries. Closing `db` is the caller's.
 * @throws {StoreError} if a migration fails.
 */
export function openRegistry(db: SqliteDatabase, options: OpenRegistryOptions): Registry {
  migrateState(db);
  migrateMessages(db);
  return new Registry(db, options);
}

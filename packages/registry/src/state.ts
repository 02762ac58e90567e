import { migrate, type SqliteDatabase } from '@warren/store';
import { CommandQueue, type CommandKind, type CommandRow } from './commands.js';
import { OpenAssignmentIndex } from './open-index.js';

/**
 * A task's lifecycle inside Warren (the board shows columns; this is what Warren knows):
 * `ready → assigned → running → succeeded | failed | cancelled`. `held` marks a task whose file does
 * not parse; it is never assigned until the file parses again.
 */
export const TaskState = {
  ready: 'ready',
  assigned: 'assigned',
  running: 'running',
  succeeded: 'succeeded',
  failed: 'failed',
  timedOut: 'timed_out',
  cancelled: 'cancelled',
  held: 'held',
} as const;

/** True for the states a task ends in (until a person moves it back to ready). */
export function isTerminal(state: TaskState): boolean {
  return state === TaskState.succeeded || state === TaskState.failed || state === TaskState.timedOut || state === TaskState.cancelled;
}
export type TaskState = (typeof TaskState)[keyof typeof TaskState];

/** Where one execution (`taskId`, `attempt`) stands. `pending` = committed, not yet published. */
export const AssignmentState = {
  pending: 'pending',
  published: 'published',
  acked: 'acked',
  finished: 'finished',
} as const;
export type AssignmentState = (typeof AssignmentState)[keyof typeof AssignmentState];

/** A row of the `tasks` table. */
export interface TaskRow {
  readonly id: string;
  readonly path: string;
  readonly state: TaskState;
  readonly attempt: number;
  readonly agent: string | null;
  readonly reason: string | null;
  /** sha256 of the task file as Warren last wrote it (null before its first write). */
  readonly boardHash: string | null;
  /** `pending` while the board file does not yet show `state` (an outbox for board writes). */
  readonly boardSync: 'clean' | 'pending';
  readonly updatedMs: number;
  /** A retry waits until this time (ms since the epoch); null when it may run now. */
  readonly notBeforeMs: number | null;
  /** When the task last became ready (ms since the epoch): the start of its wait, for ageing. */
  readonly readySinceMs: number | null;
  /** 1-based place among the ready tasks nothing could take this tick; null when placed or not ready. */
  readonly queuePosition: number | null;
  /** Why it waits, when it does. */
  readonly queueReason: string | null;
}

/** A row of the `assignments` table: one execution of a task by an agent. */
export interface AssignmentRow {
  readonly taskId: string;
  readonly attempt: number;
  readonly agent: string;
  readonly state: AssignmentState;
  readonly outcome: string | null;
  readonly exitCode: number | null;
  readonly summary: string | null;
  readonly outputs: readonly string[];
  /** When the task last became ready before this execution (ms since the epoch); null on rows older than migration 3. */
  readonly readySinceMs: number | null;
  readonly assignedMs: number;
  /** When the agent acknowledged it (ms since the epoch); null until then, and on rows older than migration 3. */
  readonly ackedMs: number | null;
  readonly finishedMs: number | null;
}

/** A row of the `agents` table: an agent instance and its last known process state. */
export interface AgentRow {
  readonly name: string;
  readonly template: string;
  readonly uid: number;
  readonly state: string;
  readonly pid: number | null;
  readonly startedMs: number | null;
  readonly stoppedMs: number | null;
  readonly lastExit: string | null;
  readonly tasksDone: number;
}

const MIGRATIONS = [
  {
    version: 1,
    sql: `
      CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        state TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        agent TEXT,
        reason TEXT,
        board_hash TEXT,
        board_sync TEXT NOT NULL DEFAULT 'clean',
        updated_ms INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE assignments (
        task_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        agent TEXT NOT NULL,
        state TEXT NOT NULL,
        outcome TEXT,
        exit_code INTEGER,
        summary TEXT,
        outputs TEXT NOT NULL DEFAULT '[]',
        assigned_ms INTEGER NOT NULL,
        finished_ms INTEGER,
        PRIMARY KEY (task_id, attempt)
      ) STRICT;
      CREATE INDEX assignments_open ON assignments (state) WHERE state != 'finished';
      CREATE TABLE agents (
        name TEXT PRIMARY KEY,
        template TEXT NOT NULL,
        uid INTEGER NOT NULL,
        state TEXT NOT NULL,
        pid INTEGER,
        started_ms INTEGER,
        stopped_ms INTEGER,
        last_exit TEXT,
        tasks_done INTEGER NOT NULL DEFAULT 0
      ) STRICT;
    `,
  },
  {
    version: 2,
    sql: `
      ALTER TABLE tasks ADD COLUMN not_before_ms INTEGER;
      ALTER TABLE tasks ADD COLUMN ready_since_ms INTEGER;
      ALTER TABLE tasks ADD COLUMN queue_position INTEGER;
      ALTER TABLE tasks ADD COLUMN queue_reason TEXT;
      CREATE TABLE commands (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        requested_ms INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',
        outcome TEXT,
        done_ms INTEGER
      ) STRICT;
    `,
  },
  {
    // The facts the read queries derive waits from: when the task became ready before this
    // execution, and when the agent took it. Rows written before stay null.
    version: 3,
    sql: `
      ALTER TABLE assignments ADD COLUMN ready_since_ms INTEGER;
      ALTER TABLE assignments ADD COLUMN acked_ms INTEGER;
      CREATE INDEX commands_queued ON commands (id) WHERE state = 'queued';
    `,
  },
];

/**
 * The 1-based place in the admission queue of each waiting task (state `ready` with a stored
 * position), numbering the stored positions densely: the supervisor keeps them in queue order but
 * leaves gaps when tasks ahead leave, so that an assignment rewrites no other row.
 * @returns task id → position.
 */
export function queuePositions(rows: Iterable<TaskRow>): Map<string, number> {
  const waiting = [...rows].filter((r) => r.state === TaskState.ready && r.queuePosition !== null);
  waiting.sort((a, b) => a.queuePosition! - b.queuePosition!);
  return new Map(waiting.map((r, index) => [r.id, index + 1]));
}

/**
 * Applies the schema of the state tables (`tasks`, `assignments`, `agents`, `commands`) to `db`,
 * under the migration component `supervisor` (the name databases written before this package carry).
 * Idempotent; a database at an older version is migrated forward, additively.
 * @throws {StoreError} if a migration fails.
 */
export function migrateState(db: SqliteDatabase): void {
  migrate(db, 'supervisor', MIGRATIONS);
}

/** A record of the `tasks` table as SQLite returns it. */
export interface TaskRecord {
  id: string;
  path: string;
  state: TaskState;
  attempt: number;
  agent: string | null;
  reason: string | null;
  board_hash: string | null;
  board_sync: 'clean' | 'pending';
  updated_ms: number;
  not_before_ms: number | null;
  ready_since_ms: number | null;
  queue_position: number | null;
  queue_reason: string | null;
}
/** A record of the `assignments` table as SQLite returns it. */
export interface AssignmentRecord {
  task_id: string;
  attempt: number;
  agent: string;
  state: AssignmentState;
  outcome: string | null;
  exit_code: number | null;
  summary: string | null;
  outputs: string;
  ready_since_ms: number | null;
  assigned_ms: number;
  acked_ms: number | null;
  finished_ms: number | null;
}
/** A record of the `agents` table as SQLite returns it. */
export interface AgentRecord {
  name: string;
  template: string;
  uid: number;
  state: string;
  pid: number | null;
  started_ms: number | null;
  stopped_ms: number | null;
  last_exit: string | null;
  tasks_done: number;
}

/** Maps a `tasks` record (snake_case columns) to its row. */
export const taskRow = (r: TaskRecord): TaskRow => ({
  id: r.id,
  path: r.path,
  state: r.state,
  attempt: r.attempt,
  agent: r.agent,
  reason: r.reason,
  boardHash: r.board_hash,
  boardSync: r.board_sync,
  updatedMs: r.updated_ms,
  notBeforeMs: r.not_before_ms,
  readySinceMs: r.ready_since_ms,
  queuePosition: r.queue_position,
  queueReason: r.queue_reason,
});
/** Maps an `assignments` record (snake_case columns) to its row. */
export const assignmentRow = (r: AssignmentRecord): AssignmentRow => ({
  taskId: r.task_id,
  attempt: r.attempt,
  agent: r.agent,
  state: r.state,
  outcome: r.outcome,
  exitCode: r.exit_code,
  summary: r.summary,
  outputs: JSON.parse(r.outputs) as string[],
  readySinceMs: r.ready_since_ms,
  assignedMs: r.assigned_ms,
  ackedMs: r.acked_ms,
  finishedMs: r.finished_ms,
});
/** Maps an `agents` record (snake_case columns) to its row. */
export const agentRow = (r: AgentRecord): AgentRow => ({
  name: r.name,
  template: r.template,
  uid: r.uid,
  state: r.state,
  pid: r.pid,
  startedMs: r.started_ms,
  stoppedMs: r.stopped_ms,
  lastExit: r.last_exit,
  tasksDone: r.tasks_done,
});

/** At least how many of the last task writes {@link StateStore.taskChangesSince} can name. */
export const TASK_LOG_KEPT = 4096;

/**
 * The supervisor's durable state: tasks, assignments (executions) and agents, in SQLite.
 * Writers run inside the caller's transaction when there is one (better-sqlite3 nests them as
 * savepoints), so a state change and its audit row commit together.
 */
export class StateStore {
  private readonly stmts;

  /** Prepares the statements over `db`, whose schema {@link migrateState} has brought up to date. */
  constructor(readonly db: SqliteDatabase) {
    this.commands = new CommandQueue(db);
    this.open = new OpenAssignmentIndex(db, assignmentRow);
    this.stmts = {
      task: db.prepare<[string], TaskRecord>('SELECT * FROM tasks WHERE id = ?'),
      tasks: db.prepare<[], TaskRecord>('SELECT * FROM tasks ORDER BY id'),
      upsertTask: db.prepare(
        `INSERT INTO tasks (id, path, state, attempt, agent, reason, board_hash, board_sync, updated_ms,
           not_before_ms, ready_since_ms, queue_position, queue_reason)
         VALUES (@id, @path, @state, @attempt, @agent, @reason, @boardHash, @boardSync, @updatedMs,
           @notBeforeMs, @readySinceMs, @queuePosition, @queueReason)
         ON CONFLICT (id) DO UPDATE SET path = excluded.path, state = excluded.state,
           attempt = excluded.attempt, agent = excluded.agent, reason = excluded.reason,
           board_hash = excluded.board_hash, board_sync = excluded.board_sync,
           updated_ms = excluded.updated_ms, not_before_ms = excluded.not_before_ms,
           ready_since_ms = excluded.ready_since_ms, queue_position = excluded.queue_position,
           queue_reason = excluded.queue_reason`,
      ),
      insertAssignment: db.prepare(
        `INSERT INTO assignments (task_id, attempt, agent, state, assigned_ms, ready_since_ms)
         VALUES (@taskId, @attempt, @agent, 'pending', @nowMs,
           COALESCE(@readySinceMs, (SELECT ready_since_ms FROM tasks WHERE id = @taskId), @nowMs))`,
      ),
      assignment: db.prepare<[string, number], AssignmentRecord>(
        'SELECT * FROM assignments WHERE task_id = ? AND attempt = ?',
      ),
      markPublished: db.prepare("UPDATE assignments SET state = 'published' WHERE task_id = ? AND attempt = ? AND state = 'pending'"),
      setAssignmentState: db.prepare(
        `UPDATE assignments SET state = @state,
           acked_ms = CASE WHEN @state = 'acked' THEN COALESCE(acked_ms, @nowMs) ELSE acked_ms END
         WHERE task_id = @taskId AND attempt = @attempt AND state != 'finished'`,
      ),
      finishAssignment: db.prepare(
        `UPDATE assignments SET state = 'finished', outcome = ?, exit_code = ?, summary = ?, outputs = ?,
           finished_ms = ? WHERE task_id = ? AND attempt = ? AND state != 'finished'`,
      ),
      agent: db.prepare<[string], AgentRecord>('SELECT * FROM agents WHERE name = ?'),
      agents: db.prepare<[], AgentRecord>('SELECT * FROM agents ORDER BY name'),
      upsertAgent: db.prepare(
        `INSERT INTO agents (name, template, uid, state, pid, started_ms, stopped_ms, last_exit)
         VALUES (@name, @template, @uid, @state, @pid, @startedMs, @stoppedMs, @lastExit)
         ON CONFLICT (name) DO UPDATE SET template = excluded.template, uid = excluded.uid,
           state = excluded.state, pid = excluded.pid, started_ms = excluded.started_ms,
           stopped_ms = excluded.stopped_ms, last_exit = excluded.last_exit`,
      ),
      countDone: db.prepare('UPDATE agents SET tasks_done = tasks_done + 1 WHERE name = ?'),
      deleteAgent: db.prepare('DELETE FROM agents WHERE name = ?'),
    };
  }

  /**
   * Task rows, read once and then kept in memory write-through: the supervisor is the only writer
   * of `tasks`, and the tick reads rows for every ready task. A `putTask` inside a transaction that
   * rolls back leaves the cache ahead of the table, so callers treat an exception in a transaction
   * as fatal (the supervisor stops).
   */
  private taskCache: Map<string, TaskRow> | undefined;

  /** The unfinished executions in memory, kept by the writers below (rollback-safe; see its class). */
  private readonly open: OpenAssignmentIndex;

  /** Ids of cached rows with `boardSync = 'pending'` (kept with the cache). */
  private readonly pendingBoard = new Set<string>();

  private cache(): Map<string, TaskRow> {
    if (!this.taskCache) {
      this.taskCache = new Map(this.stmts.tasks.all().map((r) => [r.id, taskRow(r)]));
      for (const row of this.taskCache.values()) if (row.boardSync === 'pending') this.pendingBoard.add(row.id);
    }
    return this.taskCache;
  }

  task(id: string): TaskRow | undefined {
    return this.cache().get(id);
  }

  /** Every task row, ordered by id. */
  tasks(): TaskRow[] {
    return [...this.cache().values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Task rows whose board file does not yet show their state. */
  pendingBoardTasks(): TaskRow[] {
    const cache = this.cache();
    return [...this.pendingBoard].map((id) => cache.get(id)!);
  }

  /** Increases with every {@link putTask}: a reader that saw the same version saw the same rows. */
  get taskVersion(): number {
    return this.taskWrites;
  }

  private taskWrites = 0;

  /** Ids written by {@link putTask}, oldest first: entry `i` made version `taskLogStart + i + 1`. */
  private taskLog: string[] = [];
  private taskLogStart = 0;

  /**
   * The ids of the task rows written since {@link taskVersion} was `since` (in write order, with
   * repeats; a write may leave the row as it was), or undefined when that is too long ago to be
   * known (over {@link TASK_LOG_KEPT} writes): the caller then reads every row.
   */
  taskChangesSince(since: number): readonly string[] | undefined {
    if (since < this.taskLogStart || since > this.taskWrites) return undefined;
    return this.taskLog.slice(since - this.taskLogStart);
  }

  /** Writes `row` (insert or replace by id) and increases {@link taskVersion}. */
  putTask(row: TaskRow): void {
    this.taskWrites += 1;
    this.taskLog.push(row.id);
    if (this.taskLog.length >= 2 * TASK_LOG_KEPT) {
      this.taskLog = this.taskLog.slice(TASK_LOG_KEPT);
      this.taskLogStart += TASK_LOG_KEPT;
    }
    this.stmts.upsertTask.run(row);
    this.cache().set(row.id, row);
    if (row.boardSync === 'pending') this.pendingBoard.add(row.id);
    else this.pendingBoard.delete(row.id);
  }

  /**
   * Records a new execution in state `pending` (committed, not yet published).
   * @param nowMs the assignment time, ms since the epoch.
   * @param readySinceMs when the task became ready before this execution (ms since the epoch), the
   *   start of its wait. Default: the task row's `readySinceMs` as it stands before the caller
   *   rewrites it, else `nowMs`.
   */
  addAssignment(taskId: string, attempt: number, agent: string, nowMs: number, readySinceMs?: number | null): void {
    this.stmts.insertAssignment.run({ taskId, attempt, agent, nowMs, readySinceMs: readySinceMs ?? null });
    this.open.changed(taskId, attempt);
  }

  /** The execution (`taskId`, `attempt`); an unfinished one is read from memory. */
  assignment(taskId: string, attempt: number): AssignmentRow | undefined {
    const open = this.open.open(taskId, attempt);
    if (open) return open;
    const r = this.stmts.assignment.get(taskId, attempt);
    return r && assignmentRow(r);
  }

  /**
   * Executions not yet finished, oldest first (by assignment time, then in the order they were
   * recorded), from memory: a new array on each call, of rows the caller must not modify.
   */
  openAssignments(): AssignmentRow[] {
    return this.open.rows();
  }

  /** Records that a `pending` execution is on the broker; any other state is left as it is. */
  markPublished(taskId: string, attempt: number): void {
    // Only a pending row changed: it is now published.
    if (this.stmts.markPublished.run(taskId, attempt).changes > 0) this.open.changedTo(taskId, attempt, (row) => ({ ...row, state: AssignmentState.published }));
  }

  /**
   * Moves an unfinished execution to `state`; a finished one is left alone.
   * @param nowMs with `state = 'acked'`: the time of the acknowledgement (ms since the epoch),
   *   kept as `ackedMs` (the first one wins). Without it `ackedMs` stays as it is.
   */
  setAssignmentState(taskId: string, attempt: number, state: AssignmentState, nowMs?: number): void {
    if (this.stmts.setAssignmentState.run({ state, taskId, attempt, nowMs: nowMs ?? null }).changes > 0) {
      // What the statement did to the unfinished row, done to the row in memory.
      this.open.changedTo(taskId, attempt, (row) =>
        state === AssignmentState.finished ? undefined : { ...row, state, ackedMs: state === AssignmentState.acked ? (row.ackedMs ?? nowMs ?? null) : row.ackedMs },
      );
    }
  }

  /**
   * Finishes an execution once. @returns false if it was already finished (a redelivered result),
   * so callers apply each result exactly once.
   */
  finishAssignment(
    taskId: string,
    attempt: number,
    result: { outcome: string; exitCode: number | null; summary: string; outputs: readonly string[] },
    nowMs: number,
  ): boolean {
    const info = this.stmts.finishAssignment.run(
      result.outcome,
      result.exitCode,
      result.summary,
      JSON.stringify(result.outputs),
      nowMs,
      taskId,
      attempt,
    );
    if (info.changes === 0) return false;
    this.open.changedTo(taskId, attempt, () => undefined);
    return true;
  }

  agent(name: string): AgentRow | undefined {
    const r = this.stmts.agent.get(name);
    return r && agentRow(r);
  }

  agents(): AgentRow[] {
    return this.stmts.agents.all().map(agentRow);
  }

  putAgent(row: Omit<AgentRow, 'tasksDone'>): void {
    this.stmts.upsertAgent.run(row);
  }

  countTaskDone(name: string): void {
    this.stmts.countDone.run(name);
  }

  deleteAgent(name: string): void {
    this.stmts.deleteAgent.run(name);
  }

  /** The durable operator-command queue in the same database. */
  readonly commands: CommandQueue;

  /** Queues an operator command; see {@link CommandQueue.enqueue}. @returns its id. */
  enqueueCommand(kind: CommandKind, target: string, requestedBy: string, nowMs: number): number {
    return this.commands.enqueue(kind, target, requestedBy, nowMs);
  }

  /** Commands not yet executed, oldest first. */
  queuedCommands(): CommandRow[] {
    return this.commands.queued();
  }

  command(id: number): CommandRow | undefined {
    return this.commands.get(id);
  }

  /** Records a command's outcome: `done` with what happened, or `failed` with why. */
  finishCommand(id: number, state: 'done' | 'failed', outcome: string, nowMs: number): void {
    this.commands.finish(id, state, outcome, nowMs);
  }
}

import { migrate, type SqliteDatabase } from '@warren/store';

/**
 * What managers own: the workers each started (`start_worker`), the subtasks each created
 * (`create_subtask`, with their parent task), and the parents that wait for their subtasks after
 * the manager's own execution succeeded. Times are ms since the Unix epoch.
 */

const MIGRATIONS = [
  {
    version: 1,
    sql: `
      CREATE TABLE manager_workers (
        worker TEXT PRIMARY KEY,
        manager TEXT NOT NULL,
        template TEXT NOT NULL,
        started_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX manager_workers_manager ON manager_workers (manager);
      CREATE TABLE manager_subtasks (
        subtask TEXT PRIMARY KEY,
        parent TEXT NOT NULL,
        manager TEXT NOT NULL,
        title TEXT NOT NULL,
        created_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX manager_subtasks_parent ON manager_subtasks (parent);
      CREATE INDEX manager_subtasks_manager ON manager_subtasks (manager);
      CREATE TABLE manager_waiting_parents (
        parent TEXT PRIMARY KEY,
        manager TEXT NOT NULL,
        since_ms INTEGER NOT NULL
      ) STRICT;
    `,
  },
];

/** Applies the schema of the manager tables (`manager_workers`, `manager_subtasks`, `manager_waiting_parents`) to `db`. Idempotent. */
export function migrateManagers(db: SqliteDatabase): void {
  migrate(db, 'managers', MIGRATIONS);
}

/** A worker a manager started. */
export interface ManagerWorkerRow {
  readonly worker: string;
  readonly manager: string;
  readonly template: string;
  readonly startedMs: number;
}

/** A subtask a manager created under `parent`. */
export interface ManagerSubtaskRow {
  readonly subtask: string;
  readonly parent: string;
  readonly manager: string;
  readonly title: string;
  readonly createdMs: number;
}

/** A parent task whose manager's execution succeeded while subtasks were open. */
export interface WaitingParentRow {
  readonly parent: string;
  readonly manager: string;
  readonly sinceMs: number;
}

/**
 * The manager tables of the state database: synchronous SQLite reads and writes, called inside
 * the supervisor's transactions where it has one open.
 */
export class ManagerLedger {
  private readonly stmts;

  /** Migrates `db` ({@link migrateManagers}) and prepares the statements. Closing `db` is the caller's. */
  constructor(db: SqliteDatabase) {
    migrateManagers(db);
    this.stmts = {
      addWorker: db.prepare<[string, string, string, number]>('INSERT OR REPLACE INTO manager_workers (worker, manager, template, started_ms) VALUES (?, ?, ?, ?)'),
      workersOf: db.prepare<[string], { worker: string; manager: string; template: string; started_ms: number }>('SELECT * FROM manager_workers WHERE manager = ? ORDER BY worker'),
      workerRow: db.prepare<[string], { worker: string; manager: string; template: string; started_ms: number }>('SELECT * FROM manager_workers WHERE worker = ?'),
      addSubtask: db.prepare<[string, string, string, string, number]>('INSERT OR REPLACE INTO manager_subtasks (subtask, parent, manager, title, created_ms) VALUES (?, ?, ?, ?, ?)'),
      subtasksOf: db.prepare<[string], { subtask: string; parent: string; manager: string; title: string; created_ms: number }>('SELECT * FROM manager_subtasks WHERE parent = ? ORDER BY created_ms, subtask'),
      subtasksBy: db.prepare<[string], { subtask: string; parent: string; manager: string; title: string; created_ms: number }>('SELECT * FROM manager_subtasks WHERE manager = ? ORDER BY created_ms, subtask'),
      subtaskRow: db.prepare<[string], { subtask: string; parent: string; manager: string; title: string; created_ms: number }>('SELECT * FROM manager_subtasks WHERE subtask = ?'),
      wait: db.prepare<[string, string, number]>('INSERT OR REPLACE INTO manager_waiting_parents (parent, manager, since_ms) VALUES (?, ?, ?)'),
      waiting: db.prepare<[], { parent: string; manager: string; since_ms: number }>('SELECT * FROM manager_waiting_parents ORDER BY since_ms, parent'),
      unwait: db.prepare<[string]>('DELETE FROM manager_waiting_parents WHERE parent = ?'),
    };
  }

  /** Records `worker` (an agent name) as started by `manager` from `template`; a name used again is given to its latest manager. */
  addWorker(manager: string, worker: string, template: string, nowMs: number): void {
    this.stmts.addWorker.run(worker, manager, template, nowMs);
  }

  /** The workers `manager` ever started, by name. */
  workersOf(manager: string): ManagerWorkerRow[] {
    return this.stmts.workersOf.all(manager).map((r) => ({ worker: r.worker, manager: r.manager, template: r.template, startedMs: r.started_ms }));
  }

  /** The manager that started `worker`, or undefined. */
  managerOf(worker: string): string | undefined {
    return this.stmts.workerRow.get(worker)?.manager;
  }

  /** Records `subtask` (a task id) as created by `manager` under `parent`. */
  addSubtask(manager: string, parent: string, subtask: string, title: string, nowMs: number): void {
    this.stmts.addSubtask.run(subtask, parent, manager, title, nowMs);
  }

  /** The subtasks created under `parent`, oldest first. */
  subtasksOf(parent: string): ManagerSubtaskRow[] {
    return this.stmts.subtasksOf.all(parent).map(subtaskRow);
  }

  /** The subtasks `manager` created, oldest first. */
  subtasksBy(manager: string): ManagerSubtaskRow[] {
    return this.stmts.subtasksBy.all(manager).map(subtaskRow);
  }

  /** The subtask row of task `id`, or undefined when no manager created it. */
  subtask(id: string): ManagerSubtaskRow | undefined {
    const row = this.stmts.subtaskRow.get(id);
    return row ? subtaskRow(row) : undefined;
  }

  /** Records that `parent` waits for its subtasks (its manager's execution succeeded). */
  markWaiting(parent: string, manager: string, nowMs: number): void {
    this.stmts.wait.run(parent, manager, nowMs);
  }

  /** The parents waiting for their subtasks, oldest first. */
  waitingParents(): WaitingParentRow[] {
    return this.stmts.waiting.all().map((r) => ({ parent: r.parent, manager: r.manager, sinceMs: r.since_ms }));
  }

  /** `parent` no longer waits (it is done, or ended otherwise). */
  clearWaiting(parent: string): void {
    this.stmts.unwait.run(parent);
  }
}

function subtaskRow(r: { subtask: string; parent: string; manager: string; title: string; created_ms: number }): ManagerSubtaskRow {
  return { subtask: r.subtask, parent: r.parent, manager: r.manager, title: r.title, createdMs: r.created_ms };
}

import type { SqliteDatabase } from '@warren/store';
import type { AssignmentRecord, AssignmentRow } from './state.js';

/** Names each index's marker table apart when several stores share a connection. */
let instances = 0;

/** An open execution in memory, with the rowid that orders executions assigned in the same ms. */
interface Entry {
  readonly row: AssignmentRow;
  readonly rowid: number;
}

/** How to undo one change of the index: the entry `key` had before it (undefined: none). */
interface Undo {
  readonly mark: number;
  readonly key: string;
  readonly prev: Entry | undefined;
}

/**
 * The unfinished rows of `assignments` in memory, kept by the store's writers so that reading
 * them costs no query: every writer tells the index which row it changed ({@link changed}) and
 * the index reads that one row back by primary key.
 *
 * Rollbacks: a change made inside a transaction is recorded with a mark, an increasing number
 * also written to a one-row TEMP table in the same transaction (or savepoint). A rollback undoes
 * the table's mark with the changes, so before any later read or write the index compares its
 * marks with the table's and undoes, newest first, the changes the database no longer has (they
 * are always the newest: each write first brings the index in line). Outside a transaction
 * every change recorded so far has committed and the undo log is dropped.
 *
 * The index is loaded on first use outside a transaction (loaded inside one it would hold rows
 * that a rollback removes with no undo recorded); until then, and inside a transaction before
 * it is loaded, reads run the query. It assumes its store is the only writer of `assignments`
 * on this database (the supervisor's, as for the task cache); reads of other processes use the
 * tables.
 */
export class OpenAssignmentIndex {
  private entries: Map<string, Entry> | undefined;
  /** The open rows in order (see {@link rows}), made again after a change. */
  private sorted: AssignmentRow[] | undefined;
  private readonly undo: Undo[] = [];
  /** The last mark given; the table holds the last one that has not been rolled back. */
  private mark = 0;
  /** Set when the marker table could not be made: every read then runs the query. */
  private disabled = false;
  private readonly table = `warren_open_assignments_mark_${++instances}`;
  private readonly stmts;
  private markStmts: { get: { get(): unknown }; set: { run(mark: number): unknown } } | undefined;

  /**
   * @param toRow maps a record to its row.
   */
  constructor(
    private readonly db: SqliteDatabase,
    private readonly toRow: (record: AssignmentRecord) => AssignmentRow,
  ) {
    this.stmts = {
      open: db.prepare<[], AssignmentRecord & { rowid: number }>(
        "SELECT rowid, * FROM assignments WHERE state != 'finished' ORDER BY assigned_ms, rowid",
      ),
      byKey: db.prepare<[string, number], AssignmentRecord & { rowid: number }>(
        'SELECT rowid, * FROM assignments WHERE task_id = ? AND attempt = ?',
      ),
    };
  }

  /**
   * Executions not yet finished, ordered by assignment time then by insertion: a new array of
   * the same (frozen in practice, never mutated) row objects on each call.
   */
  rows(): AssignmentRow[] {
    const entries = this.load();
    if (!entries) return this.stmts.open.all().map((r) => this.toRow(r));
    this.reconcile(entries);
    if (!this.sorted) {
      this.sorted = [...entries.values()]
        .sort((a, b) => a.row.assignedMs - b.row.assignedMs || a.rowid - b.rowid)
        .map((e) => e.row);
    }
    return this.sorted.slice();
  }

  /**
   * The unfinished execution (`taskId`, `attempt`), or undefined when it is finished, absent, or
   * the index is not loaded (the caller then reads the table).
   * @returns the row, `null` when the index knows there is no open row (read the table for a
   *   finished one), undefined when it cannot tell.
   */
  open(taskId: string, attempt: number): AssignmentRow | null | undefined {
    const entries = this.load();
    if (!entries) return undefined;
    this.reconcile(entries);
    return entries.get(keyOf(taskId, attempt))?.row ?? null;
  }

  /**
   * Records that the row (`taskId`, `attempt`) of `assignments` may have changed (inserted,
   * updated, finished): reads it back. Call it after every write to the table, inside the
   * writer's transaction when there is one.
   */
  changed(taskId: string, attempt: number): void {
    this.changedTo(taskId, attempt, undefined);
  }

  /**
   * {@link changed} for a write of an open row whose effect the writer knows: `update` makes the
   * row as it now is from the row the index holds (undefined: now finished), so it is not read
   * back. A row the index does not hold open is read back.
   */
  changedTo(taskId: string, attempt: number, update: ((row: AssignmentRow) => AssignmentRow | undefined) | undefined): void {
    const entries = this.entries;
    if (!entries) return;
    try {
      this.reconcile(entries);
      const key = keyOf(taskId, attempt);
      const prev = entries.get(key);
      let next: Entry | undefined;
      if (prev !== undefined && update !== undefined) {
        const row = update(prev.row);
        next = row && { row, rowid: prev.rowid };
      } else {
        const record = this.stmts.byKey.get(taskId, attempt);
        next = record && record.state !== 'finished' ? { row: this.toRow(record), rowid: record.rowid } : undefined;
      }
      if (prev === undefined && next === undefined) return;
      if (this.db.inTransaction) {
        this.mark += 1;
        this.markers().set.run(this.mark);
        this.undo.push({ mark: this.mark, key, prev });
      }
      if (next) entries.set(key, next);
      else entries.delete(key);
      this.sorted = undefined;
    } catch (error) {
      // Whatever the index holds may now be wrong: read the table again when next possible.
      this.drop();
      throw error;
    }
  }

  private load(): Map<string, Entry> | undefined {
    if (this.entries) return this.entries;
    if (this.disabled || this.db.inTransaction) return undefined;
    try {
      this.db.exec(`CREATE TEMP TABLE IF NOT EXISTS ${this.table} (mark INTEGER NOT NULL)`);
      this.db.exec(`DELETE FROM temp.${this.table}; INSERT INTO temp.${this.table} (mark) VALUES (0)`);
      this.markStmts = {
        get: this.db.prepare(`SELECT mark FROM temp.${this.table}`).pluck(),
        set: this.db.prepare(`UPDATE temp.${this.table} SET mark = ?`),
      };
    } catch {
      this.disabled = true;
      return undefined;
    }
    this.mark = 0;
    this.undo.length = 0;
    this.sorted = undefined;
    this.entries = new Map(this.stmts.open.all().map((r) => [keyOf(r.task_id, r.attempt), { row: this.toRow(r), rowid: r.rowid }]));
    return this.entries;
  }

  private markers(): NonNullable<OpenAssignmentIndex['markStmts']> {
    if (!this.markStmts) throw new Error('open-assignment index used before it was loaded');
    return this.markStmts;
  }

  /** Undoes the changes a rollback took from the database; drops the log outside a transaction. */
  private reconcile(entries: Map<string, Entry>): void {
    if (this.undo.length === 0) return;
    const kept = this.markers().get.get() as number;
    for (let last = this.undo.at(-1); last !== undefined && last.mark > kept; last = this.undo.at(-1)) {
      this.undo.pop();
      if (last.prev) entries.set(last.key, last.prev);
      else entries.delete(last.key);
      this.sorted = undefined;
    }
    if (!this.db.inTransaction) this.undo.length = 0;
  }

  private drop(): void {
    this.entries = undefined;
    this.sorted = undefined;
    this.undo.length = 0;
  }
}

const keyOf = (taskId: string, attempt: number): string => `${taskId}\u0000${attempt}`;

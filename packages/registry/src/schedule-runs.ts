import { migrate, type SqliteDatabase } from '@warren/store';

/**
 * One run of a board schedule, as recorded in the `schedule_runs` table: the fire time it was for
 * and the task card written for it.
 */
export interface ScheduleRun {
  /** The schedule's name, as its schedules file gives it. */
  readonly name: string;
  /** The fire time the card was written for, in ms since the Unix epoch. */
  readonly fireMs: number;
  /** The id of the task written (or found, after a crash) for this fire time. */
  readonly taskId: string;
  /** When the run was recorded, in ms since the Unix epoch. */
  readonly writtenMs: number;
}

/**
 * What the registry knows of one schedule: the cron expression and time zone it was last seen
 * with, and since when. Fire times at or before `sinceMs` are the schedule's past, which it does
 * not run.
 */
export interface ScheduleBaseline {
  readonly name: string;
  readonly cron: string;
  /** An IANA time zone name, or '' for UTC. */
  readonly timezone: string;
  /** When the schedule was first seen with this cron expression and time zone (ms since the epoch). */
  readonly sinceMs: number;
}

const MIGRATIONS = [
  {
    version: 1,
    sql: `
      CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL,
        since_ms INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE schedule_runs (
        name TEXT NOT NULL,
        fire_ms INTEGER NOT NULL,
        task_id TEXT NOT NULL,
        written_ms INTEGER NOT NULL,
        PRIMARY KEY (name, fire_ms)
      ) STRICT;
    `,
  },
];

/**
 * Creates the `schedules` and `schedule_runs` tables (migration component `schedules`). Idempotent.
 * @throws {StoreError} if the migration fails.
 */
export function migrateSchedules(db: SqliteDatabase): void {
  migrate(db, 'schedules', MIGRATIONS);
}

/**
 * The durable state of board schedules: each schedule's baseline and the runs written. A run is
 * keyed by (name, fire time), so recording the same fire time twice keeps the first row.
 */
export class ScheduleLedger {
  private readonly selectBaseline;
  private readonly upsertBaseline;
  private readonly selectLast;
  private readonly insertRun;

  /** Migrates `db` ({@link migrateSchedules}) and prepares the statements. Closing `db` is the caller's. */
  constructor(private readonly db: SqliteDatabase) {
    migrateSchedules(db);
    this.selectBaseline = db.prepare<[string], { name: string; cron: string; timezone: string; since_ms: number }>(
      'SELECT name, cron, timezone, since_ms FROM schedules WHERE name = ?',
    );
    this.upsertBaseline = db.prepare(
      `INSERT INTO schedules (name, cron, timezone, since_ms) VALUES (@name, @cron, @timezone, @sinceMs)
       ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, since_ms = excluded.since_ms`,
    );
    this.selectLast = db.prepare<[string], { name: string; fire_ms: number; task_id: string; written_ms: number }>(
      'SELECT name, fire_ms, task_id, written_ms FROM schedule_runs WHERE name = ? ORDER BY fire_ms DESC LIMIT 1',
    );
    this.insertRun = db.prepare('INSERT OR IGNORE INTO schedule_runs (name, fire_ms, task_id, written_ms) VALUES (@name, @fireMs, @taskId, @writtenMs)');
  }

  /**
   * The baseline of schedule `name` with `cron` and `timezone`: the stored one when they are
   * unchanged, else a new one from `nowMs` (stored), so that a new or changed schedule does not
   * run its past.
   */
  baseline(name: string, cron: string, timezone: string, nowMs: number): ScheduleBaseline {
    const row = this.selectBaseline.get(name);
    if (row !== undefined && row.cron === cron && row.timezone === timezone) {
      return { name, cron, timezone, sinceMs: row.since_ms };
    }
    const made = { name, cron, timezone, sinceMs: nowMs };
    this.upsertBaseline.run(made);
    return made;
  }

  /** The stored baseline of schedule `name`, if it was ever seen. */
  storedBaseline(name: string): ScheduleBaseline | undefined {
    const row = this.selectBaseline.get(name);
    return row === undefined ? undefined : { name: row.name, cron: row.cron, timezone: row.timezone, sinceMs: row.since_ms };
  }

  /** The run of schedule `name` with the latest fire time, if any. */
  lastRun(name: string): ScheduleRun | undefined {
    const row = this.selectLast.get(name);
    return row === undefined ? undefined : { name: row.name, fireMs: row.fire_ms, taskId: row.task_id, writtenMs: row.written_ms };
  }

  /** Runs of schedule `name` (every schedule's when absent), latest fire time first, at most `limit` (default 100). */
  runs(name?: string, limit = 100): ScheduleRun[] {
    const rows = this.db
      .prepare<(string | number)[], { name: string; fire_ms: number; task_id: string; written_ms: number }>(
        `SELECT name, fire_ms, task_id, written_ms FROM schedule_runs ${name === undefined ? '' : 'WHERE name = ?'} ORDER BY fire_ms DESC, name LIMIT ?`,
      )
      .all(...(name === undefined ? [limit] : [name, limit]));
    return rows.map((r) => ({ name: r.name, fireMs: r.fire_ms, taskId: r.task_id, writtenMs: r.written_ms }));
  }

  /** Records a run. @returns false when a run of the same schedule and fire time was already recorded (the first one stays). */
  record(run: ScheduleRun): boolean {
    return this.insertRun.run(run).changes > 0;
  }
}

import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { WarrenError } from '@warren/core';

/** A better-sqlite3 connection, as every Warren package that keeps state takes it. */
export type SqliteDatabase = Database.Database;

/** The state database could not be opened or migrated. */
export class StoreError extends WarrenError {
  constructor(message: string, options?: ErrorOptions) {
    super('WARREN_STORE', message, options);
  }
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** Open without write access. Default false. */
  readonly readonly?: boolean;
  /** How long a writer waits for a lock held by another connection, in ms. Default 5000. */
  readonly busyTimeoutMs?: number;
}

/**
 * Opens (creating if needed) the SQLite database at `path` in WAL mode with `synchronous=FULL`,
 * so that a committed transaction survives a power loss, and foreign keys enforced.
 * The parent directory is created if missing (mode 0700). The database file is private: created
 * under umask 077 and set to mode 0600 (when this process owns it); SQLite gives its `-wal` and
 * `-shm` files the database file's mode. Close it with `db.close()`.
 * @param path a file path, or `:memory:` for a private in-memory database (tests).
 * @throws {StoreError} if the file cannot be opened (the cause is the SQLite error).
 */
export function openDatabase(path: string, options: OpenDatabaseOptions = {}): SqliteDatabase {
  try {
    const writable = path !== ':memory:' && !options.readonly;
    if (writable) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    }
    const db = privately(writable, () => {
      const opened = new Database(path, {
        readonly: options.readonly ?? false,
        fileMustExist: options.readonly ?? false,
        timeout: options.busyTimeoutMs ?? 5_000,
      });
      if (writable) {
        chmodPrivate(path);
        opened.pragma('journal_mode = WAL');
      }
      return opened;
    });
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    return db;
  } catch (error) {
    throw new StoreError(`cannot open the state database ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Runs `fn` under umask 077 when `on` (and the umask can be set: not in a worker thread). */
function privately<T>(on: boolean, fn: () => T): T {
  let previous: number | undefined;
  if (on) {
    try {
      previous = process.umask(0o077);
    } catch {
      previous = undefined;
    }
  }
  try {
    return fn();
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
}

/** Sets a database file to 0600; a file this process does not own (EPERM) keeps its mode. */
function chmodPrivate(path: string): void {
  try {
    chmodSync(path, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') throw error;
  }
}

/**
 * One step of a component's schema, applied once, in order, inside a transaction.
 * `sql` may hold several statements.
 */
export interface Migration {
  /** 1 for the first step of a component, then 2, 3, ... */
  readonly version: number;
  readonly sql: string;
}

/**
 * Brings the tables of `component` (for example `accounts` or `audit`) up to its newest migration.
 * Versions are kept per component in the `schema_migrations` table, so packages that share one
 * database file migrate independently. Running it again is a no-op.
 * @throws {StoreError} if a migration fails (nothing of that step is applied) or versions are not
 *   1, 2, 3, ... in order.
 */
export function migrate(db: SqliteDatabase, component: string, migrations: readonly Migration[]): void {
  migrations.forEach((m, index) => {
    if (m.version !== index + 1) {
      throw new StoreError(`${component}: migration ${index} has version ${m.version}, expected ${index + 1}`);
    }
  });
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL
  ) STRICT`);
  const versionOf = db.prepare('SELECT version FROM schema_migrations WHERE component = ?');
  const record = db.prepare(
    'INSERT INTO schema_migrations (component, version) VALUES (?, ?) ON CONFLICT (component) DO UPDATE SET version = excluded.version',
  );
  const upToDate = ((versionOf.get(component) as { version: number } | undefined)?.version ?? 0) >= migrations.length;
  for (const m of upToDate ? [] : migrations) {
    // The version is read again inside the step's write transaction (BEGIN IMMEDIATE): of two processes
    // opening one database at once, the second sees the step done and skips it.
    const apply = db.transaction(() => {
      const current = (versionOf.get(component) as { version: number } | undefined)?.version ?? 0;
      if (current >= m.version) return;
      db.exec(m.sql);
      record.run(component, m.version);
    });
    try {
      apply.immediate();
    } catch (error) {
      throw new StoreError(`${component}: migration ${m.version} failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
}

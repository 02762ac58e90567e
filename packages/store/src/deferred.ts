import { close, fdatasync, open } from 'node:fs';
import type { SqliteDatabase } from './database.js';

/**
 * Runs `work` (which commits one or more transactions on `db`) with `PRAGMA synchronous = NORMAL`,
 * then restores the connection's level (`FULL` for databases of {@link openDatabase}). In WAL mode
 * the commits are written to the `-wal` file without waiting for an fsync: a process that dies
 * loses nothing (the operating system has the pages), a power loss may lose them, and the next
 * durable commit (any commit at `synchronous = FULL`, or {@link syncWal}) syncs the same file and
 * so makes them durable too. SQLite's WAL frames carry cumulative checksums, so what survives a
 * power loss is a prefix of the commits, never a torn one; at `NORMAL` (unlike `OFF`) a checkpoint
 * still syncs the WAL before it copies frames into the database file and the database file after,
 * so a power loss never corrupts the database (https://www.sqlite.org/wal.html, "Durability";
 * https://www.sqlite.org/pragma.html#pragma_synchronous).
 *
 * Use it only for writes whose loss on power failure is repaired by what they record being done
 * again (a hint that an assignment is on the broker, which is published again under the same
 * message id), or whose effects on the outside world wait for a later {@link syncWal}. Must not be
 * called inside a transaction (SQLite ignores the pragma there).
 * @returns what `work` returns.
 * @throws what `work` throws (the level is restored either way).
 */
export function commitWithoutSync<T>(db: SqliteDatabase, work: () => T): T {
  if (db.inTransaction) return work();
  const pragmas = pragmasOf(db);
  const level = pragmas.read.get() as number;
  if (level === NORMAL) return work();
  pragmas.level(NORMAL).run();
  try {
    return work();
  } finally {
    pragmas.level(level).run();
  }
}

/** `PRAGMA synchronous = NORMAL`'s value. */
const NORMAL = 1;

/** The `synchronous` pragma's statements of one connection, prepared once (a tick commits several times). */
interface SyncPragmas {
  readonly read: { get(): unknown };
  level(value: number): { run(): unknown };
}

const prepared = new WeakMap<SqliteDatabase, SyncPragmas>();

function pragmasOf(db: SqliteDatabase): SyncPragmas {
  let pragmas = prepared.get(db);
  if (!pragmas) {
    const setters = new Map<number, { run(): unknown }>();
    pragmas = {
      read: db.prepare('PRAGMA synchronous').pluck(),
      level: (value) => {
        let setter = setters.get(value);
        if (!setter) {
          if (!Number.isInteger(value) || value < 0 || value > 3) throw new RangeError(`synchronous level ${value} is not 0 to 3`);
          setter = db.prepare(`PRAGMA synchronous = ${value}`);
          setters.set(value, setter);
        }
        return setter;
      },
    };
    prepared.set(db, pragmas);
  }
  return pragmas;
}

/**
 * Makes every commit made so far on `db` durable, off the event loop: `fdatasync(2)` of its `-wal`
 * file through a descriptor of its own, in libuv's thread pool (on Linux an fsync writes back the
 * file's dirty pages whoever wrote them, so it covers the frames SQLite wrote with
 * {@link commitWithoutSync}). Commits made after the call starts may or may not be covered. A
 * database without a `-wal` file (closed, or not in WAL mode) gets its main file synced instead;
 * an in-memory one is left alone.
 * @throws the file system's error (EIO, ENOSPC…) if the sync fails: the commits' durability is
 *   then unknown, as after a failed `FULL` commit.
 */
export async function syncWal(db: SqliteDatabase): Promise<void> {
  if (db.memory || db.name === '' || db.name === ':memory:') return;
  // The callback forms: a tick syncs once, and a FileHandle costs about twice the main thread's CPU.
  let fd: number;
  try {
    fd = await openReadOnly(`${db.name}-wal`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    fd = await openReadOnly(db.name);
  }
  try {
    await new Promise<void>((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())));
  } finally {
    await new Promise<void>((resolve, reject) => close(fd, (error) => (error ? reject(error) : resolve())));
  }
}

function openReadOnly(path: string): Promise<number> {
  return new Promise((resolve, reject) => open(path, 'r', (error, fd) => (error ? reject(error) : resolve(fd))));
}

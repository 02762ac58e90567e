import type { SqliteDatabase } from './database.js';

/**
 * Runs `work` (which commits one or more transactions on `db`) with `PRAGMA synchronous = OFF`,
 * then restores the connection's level (`FULL` for databases of {@link openDatabase}). In WAL mode
 * the commits are written to the `-wal` file without waiting for an fsync: a process that dies
 * loses nothing (the operating system has the pages), a power loss may lose them, and the next
 * durable commit (any commit at `synchronous = FULL`) syncs the same file and so makes them durable
 * too. SQLite's WAL frames carry cumulative checksums, so what survives a power loss is a prefix
 * of the commits, never a torn one (https://www.sqlite.org/wal.html, "Durability";
 * https://www.sqlite.org/pragma.html#pragma_synchronous).
 *
 * Use it only for writes whose loss on power failure is repaired by what they record being done
 * again (a hint that an assignment is on the broker, which is published again under the same
 * message id; the outcome of a board write, which is written again). Must not be called inside a
 * transaction (SQLite ignores the pragma there).
 * @returns what `work` returns.
 * @throws what `work` throws (the level is restored either way).
 */
export function commitWithoutSync<T>(db: SqliteDatabase, work: () => T): T {
  if (db.inTransaction) return work();
  const level = db.pragma('synchronous', { simple: true }) as number;
  db.pragma('synchronous = OFF');
  try {
    return work();
  } finally {
    db.pragma(`synchronous = ${level}`);
  }
}

import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { processExists, WarrenError, type Logger } from '@warren/core';

/** Name of the lock file a running supervisor keeps in its board folder (hidden: board loaders skip it). */
export const BOARD_LOCK_FILE = '.warren.lock';

/** Who holds a board: the content of its lock file (JSON). */
export interface BoardLockHolder {
  readonly pid: number;
  readonly hostname: string;
  /** The holder's state directory (absolute). */
  readonly stateDir: string;
  /** When it took the lock, ISO 8601. */
  readonly since: string;
}

/** A taken board lock; `release()` removes the file if it is still this process's (idempotent). */
export interface BoardLock {
  readonly path: string;
  release(): void;
}

/**
 * Takes the board folder `boardDir` for this process (`run`, `up`): creates `<boardDir>/.warren.lock`
 * exclusively (O_EXCL), holding {@link BoardLockHolder} as JSON. A lock left by a process that no
 * longer runs on this host is taken over, with a log line; an unreadable lock file counts as left
 * behind. The lock is also removed when the process exits.
 * @throws {WarrenError} `WARREN_BUSY` naming the holder's pid, host and state directory when a live
 *   supervisor (on this host, or any supervisor on another host sharing the folder) holds it.
 * @throws {WarrenError} `WARREN_NO_BOARD` if `boardDir` does not exist; `WARREN_BOARD_LOCK` naming
 *   the lock file if it cannot be written (a read-only board).
 */
export function lockBoard(boardDir: string, stateDir: string, log: Logger): BoardLock {
  const path = join(boardDir, BOARD_LOCK_FILE);
  const me: BoardLockHolder = { pid: process.pid, hostname: hostname(), stateDir, since: new Date().toISOString() };
  for (let attempt = 0; ; attempt += 1) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      try {
        writeSync(fd, `${JSON.stringify(me)}\n`);
      } finally {
        closeSync(fd);
      }
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new WarrenError('WARREN_NO_BOARD', `no board folder ${boardDir}`, { cause: error });
      if (code !== 'EEXIST' || attempt >= 2) {
        throw new WarrenError('WARREN_BOARD_LOCK', `cannot take the board lock ${path}: ${(error as Error).message}`, { cause: error });
      }
    }
    const holder = readHolder(path);
    if (holder && holder.hostname !== me.hostname) {
      throw new WarrenError(
        'WARREN_BUSY',
        `the board ${boardDir} is used by the supervisor pid ${holder.pid} on host ${holder.hostname} (state dir ${holder.stateDir}); remove ${path} if it is gone`,
      );
    }
    if (holder && holder.pid !== process.pid && processExists(holder.pid)) {
      throw new WarrenError('WARREN_BUSY', `the board ${boardDir} is used by another supervisor (pid ${holder.pid}, state dir ${holder.stateDir})`);
    }
    log.warn({ lock: path, holder: holder ?? null }, 'taking over a board lock left by a supervisor that is gone');
    rmSync(path, { force: true });
  }
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.removeListener('exit', release);
    if (readHolder(path)?.pid === process.pid) rmSync(path, { force: true });
  };
  process.on('exit', release);
  return { path, release };
}

/** The holder named by the lock file at `path`, or undefined if it is missing or unreadable. */
export function readHolder(path: string): BoardLockHolder | undefined {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as Partial<BoardLockHolder>;
    if (!Number.isInteger(value.pid) || (value.pid ?? 0) <= 0 || typeof value.hostname !== 'string' || typeof value.stateDir !== 'string') return undefined;
    return { pid: value.pid!, hostname: value.hostname, stateDir: value.stateDir, since: String(value.since ?? '') };
  } catch {
    return undefined;
  }
}


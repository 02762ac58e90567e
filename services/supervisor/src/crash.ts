import { readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { processExists } from '@warren/core';

/**
 * Fault-injection points: places in an assignment's life where a test can make the supervisor die
 * with SIGKILL, to prove that a restart loses nothing. They act only when the environment says
 * `WARREN_FAULT_INJECTION=1` and `WARREN_CRASH_AT=<point>` (read once, by the CLI).
 */
export const CrashPoint = {
  /** The execution is committed in SQLite, not yet published. */
  assignCommitted: 'assign.committed',
  /** The execution is on the broker. */
  assignPublished: 'assign.published',
  /** The agent acknowledged it; its start is committed. */
  taskAcked: 'task.acked',
  /** An execution has been running in its sandbox for a moment. */
  taskRunning: 'task.running',
  /** A tick's results are committed without an fsync; its barrier has not synced them, nothing is acknowledged. */
  barrierPending: 'barrier.pending',
  /** The tick's barrier has synced its results; their broker messages are not acknowledged yet. */
  barrierPassed: 'barrier.passed',
  /** A result is applied in SQLite; the board does not show it yet. */
  resultCommitted: 'result.committed',
  /** Half of a board file's new text is in its temporary file; the rename has not happened. */
  boardWriting: 'board.writing',
  /**
   * A deleted agent's storage and consumers are released and its home removed; the one commit of
   * its account's deletion (its account, placement and agent rows, `account.delete`, and the
   * exit of a per-task agent) is not made yet.
   */
  accountRemoving: 'account.removing',
} as const;
export type CrashPoint = (typeof CrashPoint)[keyof typeof CrashPoint];

/** True if `value` names a crash point. */
export function isCrashPoint(value: string): value is CrashPoint {
  return (Object.values(CrashPoint) as string[]).includes(value);
}

/** Kills this process with SIGKILL: no handler runs, nothing is flushed or closed. */
export function crashNow(): never {
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL is delivered before kill() returns for a process signalling itself; never reached.
  throw new Error('SIGKILL did not end the process');
}

/**
 * Leaves what a write interrupted between writing its temporary file and renaming it would leave
 * (the `@warren/kanban` naming: `.<file>.<pid>.<hex>.tmp` beside the file), then crashes.
 */
export function crashDuringWrite(path: string, newText: string): never {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${'0'.repeat(12)}.tmp`);
  writeFileSync(temp, newText.slice(0, Math.floor(newText.length / 2)));
  return crashNow();
}

const TEMP_FILE = /^\.(.+)\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/**
 * Removes temporary files that an interrupted atomic write left in `dir` (their writer's pid is
 * gone). The files they were meant to replace are intact: the rename never happened.
 * @returns the names removed.
 */
export function removeStaleTempFiles(dir: string, unlink: (path: string) => void): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const match = TEMP_FILE.exec(name);
    if (!match) continue;
    const pid = Number(match[2]);
    if (pid === process.pid || processExists(pid)) continue;
    unlink(join(dir, name));
    removed.push(name);
  }
  return removed;
}


import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One pipe for a task's stdout or stderr: the end the task writes, the end the runner reads. */
export interface TaskPipe {
  /** The write end's descriptor, for the child's stdio; close it in the runner once the child has it. */
  readonly writeFd: number;
  /** A stream over the read end (ends when every writer has closed it). */
  readonly reader: Socket;
}

/**
 * Makes `count` kernel pipes (FIFOs, made with `mkfifo` in a private directory under the temp
 * directory, opened and unlinked at once) for a task's stdout and stderr. Node's `stdio: 'pipe'`
 * gives a child a Unix socket instead, which `/dev/stdout` and `/dev/stderr` cannot be opened on
 * (ENXIO); a pipe can, so `echo x > /dev/stderr` works in a task as it does in a terminal.
 * @returns the pipes, or null when they cannot be made (no `mkfifo`, no writable temp directory):
 *   the caller then falls back to `stdio: 'pipe'`.
 */
export function openTaskPipes(count: number): TaskPipe[] | null {
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), 'warren-task-'));
  } catch {
    return null;
  }
  const opened: number[] = [];
  try {
    const paths = Array.from({ length: count }, (_, i) => join(dir, `fifo${i}`));
    const made = spawnSync('mkfifo', ['-m', '600', ...paths], { stdio: 'ignore' });
    if (made.status !== 0) return null;
    const ends: { readFd: number; writeFd: number }[] = [];
    for (const path of paths) {
      // The read end first, non-blocking (no writer yet); then the write end, which then opens at
      // once. Node opens every file with O_CLOEXEC: no other child inherits them.
      const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      opened.push(readFd);
      const writeFd = openSync(path, constants.O_WRONLY);
      opened.push(writeFd);
      ends.push({ readFd, writeFd });
    }
    return ends.map(({ readFd, writeFd }) => ({ writeFd, reader: new Socket({ fd: readFd, readable: true, writable: false }) }));
  } catch {
    for (const fd of opened) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Closes the write ends of `pipes` in this process (the child keeps its own copies). */
export function closeWriteEnds(pipes: readonly TaskPipe[]): void {
  for (const pipe of pipes) {
    try {
      closeSync(pipe.writeFd);
    } catch {
      // already closed
    }
  }
}

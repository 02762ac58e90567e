import { spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, fstatSync, mkdtempSync, openSync, rmSync, unlinkSync } from 'node:fs';
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

/** FIFOs one `mkfifo` run makes ahead. */
const FIFO_BATCH = 32;

/**
 * FIFOs made ahead of need, in a private directory (mode 0700) under the temp directory, so that
 * starting a task does not wait for an `mkfifo` process: one `mkfifo` run, started in the
 * background (never blocking the event loop), makes {@link FIFO_BATCH} of them whenever fewer than
 * half a batch are left. Each FIFO is used once: {@link take} hands out its path and forgets it,
 * and the caller unlinks it as soon as both ends are open. When none is left (the first task, or
 * a burst), `take` makes what it needs with a blocking `mkfifo` as before. The directory is removed
 * when the process exits.
 */
export class FifoPool {
  private dir: string | null | undefined;
  private readonly ready: string[] = [];
  private refilling = false;
  private made = 0;

  /**
   * @param batch FIFOs made by one background run (at least 2).
   * @param make runs `mkfifo` on `paths` off the event loop and resolves with whether it made them
   *   (default: a child `mkfifo -m 600`; tests count calls).
   */
  constructor(
    private readonly batch: number = FIFO_BATCH,
    private readonly make: (paths: string[]) => Promise<boolean> = mkfifoInBackground,
  ) {}

  /** FIFOs ready now. */
  get stock(): number {
    return this.ready.length;
  }

  /**
   * Paths of `count` new FIFOs, each for one use (unlink it once opened), and a background refill
   * started when the stock runs low. @returns null when no FIFO can be made (no writable temp
   * directory, no `mkfifo`).
   */
  take(count: number): string[] | null {
    const dir = this.directory();
    if (dir === null) return null;
    let paths: string[];
    if (this.ready.length >= count) {
      paths = this.ready.splice(0, count);
    } else {
      paths = this.names(dir, count);
      const made = spawnSync('mkfifo', ['-m', '600', ...paths], { stdio: 'ignore' });
      if (made.status !== 0) return null;
    }
    this.refill(dir);
    return paths;
  }

  /** Starts one background `mkfifo` run when fewer than half a batch are left and none runs. */
  refill(dir = this.directory()): void {
    if (dir === null || this.refilling || this.ready.length >= this.batch / 2) return;
    this.refilling = true;
    const paths = this.names(dir, this.batch);
    this.make(paths).then(
      (ok) => {
        this.refilling = false;
        if (ok) this.ready.push(...paths);
      },
      () => {
        this.refilling = false;
      },
    );
  }

  /** Removes the directory and whatever FIFOs are left in it. */
  close(): void {
    if (typeof this.dir === 'string') {
      try {
        rmSync(this.dir, { recursive: true, force: true });
      } catch {
        // a background run still making FIFOs there: the temp directory's cleaner takes the rest
      }
    }
    this.dir = null;
    this.ready.length = 0;
  }

  private names(dir: string, count: number): string[] {
    return Array.from({ length: count }, () => join(dir, `fifo${this.made++}`));
  }

  private directory(): string | null {
    if (this.dir !== undefined) return this.dir;
    try {
      this.dir = mkdtempSync(join(tmpdir(), 'warren-task-'));
    } catch {
      this.dir = null;
      return null;
    }
    process.once('exit', () => this.close());
    return this.dir;
  }
}

/** Runs `mkfifo -m 600 paths…` as a child; resolves with whether it exited 0. Never rejects. */
function mkfifoInBackground(paths: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('mkfifo', ['-m', '600', ...paths], { stdio: 'ignore' });
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
  });
}

/** The runner's pool of FIFOs (see {@link openTaskPipes}). */
const defaultPool = new FifoPool();

/**
 * Makes `count` kernel pipes (FIFOs from `pool`, see {@link FifoPool}, opened and unlinked at
 * once) for a task's stdout and stderr. Node's `stdio: 'pipe'` gives a child a Unix socket instead,
 * which `/dev/stdout` and `/dev/stderr` cannot be opened on (ENXIO); a pipe can, so
 * `echo x > /dev/stderr` works in a task as it does in a terminal.
 * @returns the pipes, or null when they cannot be made (no `mkfifo`, no writable temp directory,
 *   a path that is not a FIFO any more): the caller then falls back to `stdio: 'pipe'`.
 */
export function openTaskPipes(count: number, pool: FifoPool = defaultPool): TaskPipe[] | null {
  const paths = pool.take(count);
  if (paths === null) return null;
  const opened: number[] = [];
  try {
    const ends: { readFd: number; writeFd: number }[] = [];
    for (const path of paths) {
      // The read end first, non-blocking (no writer yet); then the write end, which then opens at
      // once. Node opens every file with O_CLOEXEC: no other child inherits them.
      const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
      opened.push(readFd);
      if (!fstatSync(readFd).isFIFO()) throw new Error(`${path} is not a FIFO`);
      const writeFd = openSync(path, constants.O_WRONLY | constants.O_NOFOLLOW);
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
    for (const path of paths) {
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    }
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

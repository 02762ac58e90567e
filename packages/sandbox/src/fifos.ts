/**
 * Kernel pipes for a sandbox's stdout and stderr. Node's `stdio: 'pipe'` gives a child a Unix
 * socket, on which `/dev/stdout` and `/dev/stderr` cannot be opened (ENXIO: they are
 * `/proc/self/fd/1` and `/proc/self/fd/2`, and a socket cannot be reopened through /proc), so a
 * shell script's `echo x > /dev/stderr` fails in the sandbox while it works in a terminal. A pipe
 * can be reopened. With `@warren/spawn`'s addon in use a pipe comes from its `pipe2`; else (Node
 * has no pipe(2) or mkfifo(3)) FIFOs are made with the `mkfifo` command in a private directory,
 * many per call, and each is opened (both ends) and unlinked when taken, so a spawn costs no extra
 * process.
 */
import { execFile, spawnSync } from 'node:child_process';
import { closeSync, constants, fchownSync, mkdtempSync, openSync, rmSync, unlinkSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPipe } from '@warren/spawn';

/** One kernel pipe: the end a child writes (for its stdio) and a stream over the end this process reads. */
export interface OutputPipe {
  /** The write end's descriptor (O_CLOEXEC): pass it in the child's stdio, then {@link closeWriteEnd}. */
  readonly writeFd: number;
  /** The read end; it ends once every copy of the write end is closed. */
  readonly reader: Socket;
}

/** FIFOs made per `mkfifo` call. */
const BATCH = 64;
/** Below this many made ahead, another batch is made in the background. */
const LOW_WATER = 32;

/**
 * FIFOs made ahead in a private directory (mode 0700 under the temp directory), taken one per
 * pipe. When none is left a batch is made at once (one `mkfifo`); below {@link LOW_WATER} the next
 * is made in the background.
 */
class FifoPool {
  private dir: string | null | undefined;
  private readonly ready: string[] = [];
  private serial = 0;
  private refilling = false;
  /** Set when there is no `mkfifo` or no private directory: the pool gives nothing from then on. */
  private broken = false;

  /** A FIFO's path, owned by the caller from now on, or null when none can be made now. */
  take(): string | null {
    if (this.broken) return null;
    if (this.ready.length === 0) {
      const batch = this.batch();
      if (batch === null) return null;
      const made = spawnSync('mkfifo', ['-m', '600', ...batch], { stdio: 'ignore' });
      if (made.error && 'code' in made.error && made.error.code === 'ENOENT') this.broken = true;
      if (made.status !== 0) return null;
      this.ready.push(...batch);
    }
    const path = this.ready.pop()!;
    if (this.ready.length < LOW_WATER) this.refill();
    return path;
  }

  private refill(): void {
    if (this.refilling) return;
    const batch = this.batch();
    if (batch === null) return;
    this.refilling = true;
    execFile('mkfifo', ['-m', '600', ...batch], (error) => {
      this.refilling = false;
      if (!error) this.ready.push(...batch);
    });
  }

  /** Fresh paths in the private directory, or null when it cannot be made. */
  private batch(): string[] | null {
    if (this.dir === undefined) {
      try {
        const dir = mkdtempSync(join(tmpdir(), 'warren-fifos-'));
        this.dir = dir;
        process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      } catch {
        this.dir = null;
      }
    }
    if (this.dir === null) {
      this.broken = true;
      return null;
    }
    const dir = this.dir;
    return Array.from({ length: BATCH }, () => join(dir, `p${this.serial++}`));
  }
}

const pool = new FifoPool();

/**
 * Opens a kernel pipe for a child's stdout or stderr: a `pipe2` pipe when `@warren/spawn`'s addon
 * is in use, else a FIFO from the pool, its read end opened non-blocking first (no writer yet),
 * then its write end, then unlinked. The pipe or FIFO is given to
 * `owner` (the sandbox's uid and gid): reopening `/proc/self/fd/N` checks the inode's mode against
 * the opener, so `/dev/stderr` opens for the agent only if the FIFO is its own. Unlinked, it is
 * reachable through these descriptors alone.
 * @returns the pipe, or null when none can be made (no `mkfifo`, no writable temp directory, too
 *   many open files): the caller then uses `stdio: 'pipe'`.
 */
export function openOutputPipe(owner: { readonly uid: number; readonly gid: number }): OutputPipe | null {
  const made = openOwnedPipe(owner);
  if (made !== undefined) return made;
  const path = pool.take();
  if (path === null) return null;
  let readFd: number | undefined;
  try {
    readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    fchownSync(readFd, owner.uid, owner.gid);
    const writeFd = openSync(path, constants.O_WRONLY);
    return { writeFd, reader: new Socket({ fd: readFd, readable: true, writable: false }) };
  } catch {
    if (readFd !== undefined) closeQuietly(readFd);
    return null;
  } finally {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}

/**
 * A `pipe2` pipe from `@warren/spawn` given to `owner` (`fchown` of a pipe changes its inode, which
 * `/proc/self/fd/N` checks as it does a FIFO's). Undefined when the addon is not in use (the FIFO
 * pool serves then); null when the kernel refuses a pipe or its owner.
 */
function openOwnedPipe(owner: { readonly uid: number; readonly gid: number }): OutputPipe | null | undefined {
  let ends: [number, number] | null;
  try {
    ends = openPipe();
  } catch {
    return null;
  }
  if (ends === null) return undefined;
  const [readFd, writeFd] = ends;
  try {
    fchownSync(writeFd, owner.uid, owner.gid);
    return { writeFd, reader: new Socket({ fd: readFd, readable: true, writable: false }) };
  } catch {
    closeQuietly(readFd);
    closeQuietly(writeFd);
    return null;
  }
}

/** Write ends already closed here: a descriptor number is never closed twice (it may be reused). */
const closed = new WeakSet<OutputPipe>();

/**
 * Closes a pipe's write end in this process once the child has its copy (spawn forks
 * synchronously). Idempotent.
 */
export function closeWriteEnd(pipe: OutputPipe): void {
  if (closed.has(pipe)) return;
  closed.add(pipe);
  closeQuietly(pipe.writeFd);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

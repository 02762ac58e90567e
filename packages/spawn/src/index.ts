/**
 * @warren/spawn: starts a child process without forking this one.
 *
 * Node's `child_process.spawn` runs libuv's `fork()` then `execve()` on Linux: the kernel copies
 * the parent's page tables while the event loop waits, and every page the parent writes until the
 * child's exec takes a copy-on-write fault. The cost grows with the parent's size (about 1–3 ms of
 * the main thread at 45 MiB of RSS, 15–30 ms at 245 MiB). glibc's `posix_spawn(3)` uses
 * `clone(CLONE_VM | CLONE_VFORK)`: no copy, about 0.1–0.2 ms whatever the parent's size.
 *
 * {@link spawnProcess} starts a program through a small Node-API addon (`native/spawn.c`, built by
 * `npm run build` with node-gyp into `build/Release/warren_spawn.node`): `posix_spawn` with file
 * actions for the child's descriptors and working directory, every signal's disposition reset to
 * its default and an empty signal mask (Node ignores SIGPIPE; its children must not), a new session
 * when `detached`, and the given environment only. The exit is watched through a pidfd
 * (`pidfd_open(2)`) polled on Node's event loop and reaped with `waitpid(pid, WNOHANG)`; signals go
 * through `pidfd_send_signal(2)`, so a recycled pid is never signalled. The returned object reads
 * like the `ChildProcess` our callers used: `pid`, `stdin`/`stdout`/`stderr`/`stdio[n]`,
 * `exitCode`, `signalCode`, `kill()`, events `exit` and `error`.
 *
 * When the addon cannot be loaded (not built: no C compiler or Node headers on the machine) or the
 * kernel has no pidfds (before Linux 5.3), it falls back to `child_process.spawn` with the same
 * options, and says so once (a process warning, code `WARREN_SPAWN_FALLBACK`).
 * {@link spawnImplementation} tells which is in use.
 *
 * ```ts
 * import { spawnProcess } from '@warren/spawn';
 * const child = spawnProcess('/bin/sh', ['-c', 'echo hi >&3'], { env: {}, stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
 * child.stdio[3]?.on('data', (chunk) => console.log(String(chunk)));
 * child.once('exit', (code, signal) => console.log(code, signal));
 * ```
 */
import { spawn as forkSpawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, existsSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';

/** What a child's descriptor n is: a new pipe to this process, /dev/null (0–2) or closed (3+), or a copy of one of ours. */
export type StdioEntry = 'ignore' | 'pipe' | number;

/** Options of {@link spawnProcess}: the subset of `child_process.spawn`'s that Warren uses. */
export interface SpawnProcessOptions {
  /** The child's whole environment (nothing is inherited). Its `PATH` is searched for a `file` without a slash (default `/usr/bin:/bin`). */
  readonly env: Readonly<Record<string, string>>;
  /** The child's working directory (default: ours). */
  readonly cwd?: string;
  /** Start the child in a new session (`setsid`), as `child_process`'s `detached`. Default false. */
  readonly detached?: boolean;
  /**
   * The child's descriptors 0, 1, 2, … in order (default `['ignore', 'ignore', 'ignore']`; fewer
   * than three are filled with 'ignore'). 'pipe' makes a kernel pipe (the child reads entry 0 and
   * writes the others; with the fallback, a Unix socket pair as `child_process` makes); a number
   * is a descriptor of this process the child gets a copy of. Descriptors past the list are closed
   * in the child.
   */
  readonly stdio?: readonly StdioEntry[];
}

/** A started child process: the part of `ChildProcess` Warren reads. */
export interface SpawnedProcess {
  /** The child's pid; undefined when it could not be started (an 'error' event follows). */
  readonly pid: number | undefined;
  /** Writes the child's fd 0 when stdio[0] was 'pipe', else null. */
  readonly stdin: Writable | null;
  /** Reads the child's fd 1 when stdio[1] was 'pipe', else null. */
  readonly stdout: Readable | null;
  /** Reads the child's fd 2 when stdio[2] was 'pipe', else null. */
  readonly stderr: Readable | null;
  /** The stream of each 'pipe' entry by child descriptor (null for the others). */
  readonly stdio: ReadonlyArray<Readable | Writable | null | undefined>;
  /** The exit status once it has exited normally, else null. */
  readonly exitCode: number | null;
  /** The signal that ended it (such as 'SIGKILL'), else null. */
  readonly signalCode: NodeJS.Signals | null;
  /**
   * Sends `signal` (default SIGTERM) to the child.
   * @returns true when sent; false when it was not started or has already been reaped.
   * @throws {TypeError} for an unknown signal name.
   */
  kill(signal?: NodeJS.Signals | number): boolean;
  on(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  once(event: 'error', listener: (error: Error) => void): this;
  off(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  off(event: 'error', listener: (error: Error) => void): this;
}

/** The addon's exports (`native/spawn.c`). */
interface NativeSpawn {
  spawn(
    file: string,
    searchPath: string | null,
    argv: readonly string[],
    envp: readonly string[],
    cwd: string | null,
    detached: boolean,
    fds: Int32Array,
    onExit: (code: number | null, signo: number | null) => void,
  ): [number, object | null];
  kill(handle: object, signo: number): number;
  pipe(): [number, number];
  probe(): number;
}

/** The addon's file name: next to a bundle that includes this module, or under the package's `build/Release`. */
export const SPAWN_ADDON_NAME = 'warren_spawn.node';

/**
 * The directory of this module's file: from `import.meta.url` in an ES module, from `__dirname` in
 * a CommonJS bundle (esbuild gives such a bundle an empty `import.meta`).
 */
function moduleDir(): string {
  const url = (import.meta as { url?: string }).url;
  return url !== undefined ? dirname(fileURLToPath(url)) : __dirname;
}

/**
 * Where the addon is looked for, in order: next to this module's file (a bundle such as the
 * agent runner's `dist/runner.cjs` has it copied there), then `<package>/build/Release/` (this
 * module is `<package>/src/index.ts` or `<package>/dist/index.js`).
 */
export function spawnAddonCandidates(): string[] {
  const here = moduleDir();
  return [join(here, SPAWN_ADDON_NAME), join(here, '..', 'build', 'Release', SPAWN_ADDON_NAME)];
}

/** The path of the built addon under this package, when there is one (for copying next to a bundle). */
export function spawnAddonPath(): string | undefined {
  return spawnAddonCandidates().find((path) => existsSync(path));
}

let native: NativeSpawn | null | undefined;
let fallbackReason = '';

function loadNative(): NativeSpawn | null {
  if (native !== undefined) return native;
  native = null;
  if (process.platform !== 'linux') {
    fallbackReason = `not on Linux (${process.platform})`;
  } else {
    const path = spawnAddonPath();
    if (path === undefined) {
      fallbackReason = `the addon ${SPAWN_ADDON_NAME} is not built (looked in ${spawnAddonCandidates().join(', ')})`;
    } else {
      try {
        const module = { exports: {} as NativeSpawn };
        process.dlopen(module, path);
        const probed = module.exports.probe();
        if (probed === 0) native = module.exports;
        else fallbackReason = `pidfd_open: ${getSystemErrorName(probed)}`;
      } catch (error) {
        fallbackReason = `cannot load ${path}: ${(error as Error).message}`;
      }
    }
  }
  if (native === null) {
    process.emitWarning(`@warren/spawn: starting processes with child_process.spawn (a fork of this process): ${fallbackReason}`, { code: 'WARREN_SPAWN_FALLBACK' });
  }
  return native;
}

/**
 * How {@link spawnProcess} starts processes here: 'posix_spawn' (the addon) or 'child_process'
 * (the fallback; the reason was given in a process warning). Loads the addon on the first call.
 */
export function spawnImplementation(): 'posix_spawn' | 'child_process' {
  return loadNative() ? 'posix_spawn' : 'child_process';
}

/**
 * A kernel pipe made with `pipe2(O_CLOEXEC)` by the addon: `[readFd, writeFd]`, both owned by the
 * caller (close them with `fs.closeSync` or hand them to a stream). Null when the addon is not in
 * use ({@link spawnImplementation} is 'child_process'): Node itself has no pipe(2).
 * @throws {Error} when the kernel refuses (EMFILE, ENFILE), with the errno number as `code`.
 */
export function openPipe(): [readFd: number, writeFd: number] | null {
  const addon = loadNative();
  return addon ? addon.pipe() : null;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(osConstants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));

function signalNumber(signal: NodeJS.Signals | number): number {
  if (typeof signal === 'number') return signal;
  const number = (osConstants.signals as Record<string, number | undefined>)[signal];
  if (number === undefined) throw new TypeError(`unknown signal: ${signal}`);
  return number;
}

/** The error `child_process` gives for a program that could not be started, such as `spawn /x ENOENT`. */
function spawnError(file: string, args: readonly string[], errno: number): Error {
  const code = getSystemErrorName(errno);
  return Object.assign(new Error(`spawn ${file} ${code}`), { errno, code, syscall: `spawn ${file}`, path: file, spawnargs: [...args] });
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** A child started by the addon. */
class NativeChild extends EventEmitter implements SpawnedProcess {
  pid: number | undefined;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** True once a signal has been sent. */
  killed = false;
  readonly stdio: (Socket | null)[];
  private handle: object | null = null;

  constructor(
    private readonly addon: NativeSpawn,
    file: string,
    args: readonly string[],
    options: SpawnProcessOptions,
  ) {
    super();
    const entries: StdioEntry[] = [...(options.stdio ?? [])];
    while (entries.length < 3) entries.push('ignore');
    const fds = new Int32Array(entries.length).fill(-1);
    /** The child's ends of the pipes, closed here once it has its copies. */
    const childEnds: number[] = [];
    this.stdio = entries.map(() => null);
    try {
      entries.forEach((entry, i) => {
        if (entry === 'ignore') return;
        if (typeof entry === 'number') {
          if (!Number.isInteger(entry) || entry < 0) throw new TypeError(`stdio[${i}]: not a file descriptor: ${entry}`);
          fds[i] = entry;
          return;
        }
        if (entry !== 'pipe') throw new TypeError(`stdio[${i}]: unsupported entry: ${String(entry)}`);
        const [readEnd, writeEnd] = addon.pipe();
        const childReads = i === 0;
        const childEnd = childReads ? readEnd : writeEnd;
        fds[i] = childEnd;
        childEnds.push(childEnd);
        this.stdio[i] = new Socket({ fd: childReads ? writeEnd : readEnd, readable: !childReads, writable: childReads });
      });
      const envp = Object.entries(options.env).map(([key, value]) => `${key}=${value}`);
      const searchPath = file.includes('/') ? null : (options.env.PATH ?? '/usr/bin:/bin');
      const [pid, handle] = addon.spawn(file, searchPath, [file, ...args], envp, options.cwd ?? null, options.detached === true, fds, (code, signo) =>
        this.onExit(code, signo),
      );
      if (pid > 0) {
        this.pid = pid;
        this.handle = handle;
      } else {
        for (const stream of this.stdio) stream?.destroy();
        const error = spawnError(file, args, pid);
        process.nextTick(() => this.emit('error', error));
      }
    } catch (error) {
      for (const stream of this.stdio) stream?.destroy();
      throw error;
    } finally {
      for (const fd of childEnds) closeQuietly(fd);
    }
  }

  get stdin(): Writable | null {
    return this.stdio[0] ?? null;
  }

  get stdout(): Readable | null {
    return this.stdio[1] ?? null;
  }

  get stderr(): Readable | null {
    return this.stdio[2] ?? null;
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    const signo = signalNumber(signal);
    if (this.handle === null) return false;
    const sent = this.addon.kill(this.handle, signo);
    if (sent === 0) {
      this.killed = true;
      return true;
    }
    if (-sent !== osConstants.errno.ESRCH) {
      const error = Object.assign(new Error(`kill ${getSystemErrorName(sent)}`), { errno: sent, code: getSystemErrorName(sent), syscall: 'kill' });
      this.emit('error', error);
    }
    return false;
  }

  private onExit(code: number | null, signo: number | null): void {
    this.handle = null;
    this.exitCode = code;
    this.signalCode = signo === null ? null : (SIGNAL_NAMES.get(signo) ?? null);
    this.emit('exit', this.exitCode, this.signalCode);
  }
}

/**
 * Starts `file` with `args` (argv[0] is `file`), as `child_process.spawn(file, args, options)`
 * would, without forking this process when the addon is in use (see the module's comment).
 * A program that cannot be started (ENOENT, EACCES, a missing `cwd`, …) gives a process with no
 * `pid` and an 'error' event on the next tick, like `child_process`: `spawn <file> <CODE>`, with
 * `code`, `errno`, `syscall`, `path` and `spawnargs`.
 * A running child keeps the event loop alive until its exit has been seen.
 * @throws {TypeError} for a stdio entry that is neither 'ignore', 'pipe' nor a descriptor number.
 * @throws {Error} when no pipe can be made (EMFILE, ENFILE).
 */
export function spawnProcess(file: string, args: readonly string[], options: SpawnProcessOptions): SpawnedProcess {
  const addon = loadNative();
  if (addon) return new NativeChild(addon, file, args, options);
  return forkSpawn(file, [...args], {
    env: { ...options.env },
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    detached: options.detached === true,
    stdio: [...(options.stdio ?? ['ignore', 'ignore', 'ignore'])],
  }) as unknown as SpawnedProcess;
}

import { closeSync, constants as fsConstants, fchmodSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { lazyChildLogger, silentLogger, type Logger } from '@warren/core';
import { spawnProcess, type SpawnedProcess } from '@warren/spawn';
import {
  createCgroups,
  freezeCgroups,
  killCgroups,
  oomKillCount,
  pidsMaxEvents,
  removeCgroups,
  removeNamedCgroups,
  removeWarrenCgroups,
  type OnBusyCgroup,
  sandboxPids,
  type SandboxCgroups,
} from './cgroups.js';
import { SandboxError, SandboxSpecError } from './errors.js';
import { classifyExit, type SandboxExit, type StopReason } from './exit.js';
import { closeWriteEnd, openOutputPipe, type OutputPipe } from './fifos.js';
import { assertIsolation, probeHost, type HostCapabilities } from './host.js';
import { CappedLog } from './log.js';
import { processesOfUid } from './procs.js';
import { prologueArgv, prologueShell } from './prologue.js';
import { buildSeccompProgram } from './seccomp.js';
import { validateSpec, type SandboxSpec } from './spec.js';
import { CgroupUsageReader, ProcUsageReader, type SandboxUsage, type UsageReader } from './usage.js';

/** A running sandbox, from {@link spawnSandbox}. */
export interface Sandbox {
  readonly name: string;
  /** The pid of bwrap on the host (the agent itself runs in a child pid namespace). */
  readonly pid: number;
  /**
   * Settles once the sandbox has ended and its cgroups are removed and its log flushed.
   * Never rejects.
   */
  readonly exited: Promise<SandboxExit>;
  /** Bytes of output lost to the log cap so far (see `SandboxSpec.logMaxBytes`). */
  readonly logDroppedBytes: number;
  /**
   * True when the sandbox runs in a weaker isolation mode than `full` (the spec asked for
   * `unsafe-no-cgroups`); show it wherever the agent appears.
   */
  readonly unsafe: boolean;
  /** The write end of a pipe to the first process's stdin when spawned with `stdin: 'pipe'`, else null (its stdin is /dev/null). */
  readonly stdin: Writable | null;
  /**
   * Current memory, task count and CPU time of the whole tree from its cgroups (see
   * {@link SandboxUsage}); a few microseconds, fine to call every tick. Without cgroups
   * (`unsafe-no-cgroups` on a host without them) it sums /proc over the agent's uid. After the end:
   * `memoryBytes` and `pids` are 0, `cpuMs` the last value read.
   */
  usage(): SandboxUsage;
  /**
   * Stops the sandbox: SIGTERM to every agent process, SIGKILL to the whole tree (cgroup kill,
   * which also reaches processes that double-forked or changed session) after `graceMs` (default
   * 5000), then removes its cgroups. With `stop.reason` (given before the sandbox ended) the exit
   * kind is that reason (`timeout` or `watchdog`) carrying `detail`. Idempotent: later calls return
   * the first call's promise (one with `graceMs` 0 during the grace kills at once) (a reason given by a later call is still recorded if the sandbox has
   * not ended yet); resolves with the exit.
   */
  stop(graceMs?: number, stop?: StopReason): Promise<SandboxExit>;
  /**
   * Freezes every process of the sandbox at once, synchronously (cgroup2 `cgroup.freeze`), so
   * it writes nothing more, e.g. before the space it was filling is handed to someone else. Frozen
   * processes do not act on SIGTERM: follow with `stop(0)`, which kills them.
   * @returns false when the sandbox ended, or has no cgroup2 freezer (nothing was frozen).
   */
  freeze(): boolean;
  /** Lets the processes frozen by {@link freeze} run again (nothing when none are). */
  thaw(): void;
  /** `stop()` with the default grace, resolving to nothing. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of {@link spawnSandbox}. */
export interface SpawnSandboxOptions {
  /** Receives debug lines (argv, exit) and warnings (cleanup failures). Default: silent. */
  readonly logger?: Logger;
  /** Host capabilities to use; default {@link probeHost}'s (cached) result. */
  readonly host?: HostCapabilities;
  /**
   * Where stdout and stderr go instead of `spec.logPath` (no log file is made then):
   * every byte is written to these streams in order, with backpressure (the sandbox's writes block
   * while a destination's buffer is full, nothing is dropped). When a destination fails (e.g.
   * EPIPE: its reader went away), the pipe from the sandbox is closed, so the writer there gets
   * EPIPE or SIGPIPE as in a shell pipeline; `exited` still settles.
   */
  readonly output?: { readonly stdout: Writable; readonly stderr: Writable };
  /** `pipe`: the first process's stdin is a pipe from this process ({@link Sandbox.stdin}). Default: /dev/null. */
  readonly stdin?: 'pipe';
}

/** Names of the sandboxes alive in this process: never removed as stale, never reused. */
const live = new Set<string>();

/** Host files under /etc the sandbox sees (when present): the dynamic loader cache, time zone, NSS. */
const ETC_FILES = ['/etc/ld.so.cache', '/etc/ld.so.conf', '/etc/ld.so.conf.d', '/etc/localtime', '/etc/nsswitch.conf', '/etc/hosts', '/etc/host.conf', '/etc/alternatives'];

let systemBindArgs: string[] | undefined;

/**
 * bwrap arguments exposing the host's system directories read-only: `/usr`, and `/bin`, `/sbin`,
 * `/lib*` as the host has them (a symlink into /usr is recreated as the same symlink, a real
 * directory is bound), plus {@link ETC_FILES}. Computed once per process.
 */
function systemBinds(): string[] {
  if (systemBindArgs) return systemBindArgs;
  const args = ['--ro-bind', '/usr', '/usr'];
  for (const path of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    try {
      const info = lstatSync(path);
      if (info.isSymbolicLink()) args.push('--symlink', readlinkSync(path), path);
      else if (info.isDirectory()) args.push('--ro-bind', path, path);
    } catch {
      // not on this host
    }
  }
  for (const path of ETC_FILES) args.push('--ro-bind-try', path, path);
  systemBindArgs = args;
  return args;
}

/**
 * bwrap arguments creating every ancestor directory of `targets` (and /etc) with mode 0755 before
 * anything is mounted: bwrap run as root would otherwise create them 0700, hiding the mounts
 * below them from the agent. Shallowest first.
 */
function parentDirs(targets: readonly string[]): string[] {
  const dirs = new Set<string>(['/etc']);
  for (const target of targets) {
    const parts = target.split('/').filter((p) => p.length > 0);
    for (let i = 1; i < parts.length; i++) dirs.add(`/${parts.slice(0, i).join('/')}`);
  }
  return [...dirs]
    .sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b))
    .flatMap((dir) => ['--perms', '0755', '--dir', dir]);
}

/** The real uid of `pid` from /proc/<pid>/status, or null if it is gone. */
function realUid(pid: number): number | null {
  try {
    const match = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** The signal name for bwrap's exit status 128+n (bwrap reports a signaled child that way). */
function signalOfStatus(code: number): string | null {
  if (code <= 128) return null;
  const entry = Object.entries(constants.signals).find(([, n]) => n === code - 128);
  return entry ? entry[0] : null;
}

/** Keeps the first `max` characters of text fed to it (bwrap's or setpriv's error, if any, comes first). */
class Head {
  private text = '';
  constructor(private readonly max: number) {}
  push(chunk: Buffer): void {
    if (this.text.length < this.max) this.text = (this.text + chunk.toString('utf8')).slice(0, this.max);
  }
  /** The first line if it is an error printed by one of the sandbox's own programs, else null. */
  setupError(): string | null {
    const first = this.text.split('\n')[0]?.trim() ?? '';
    return /^(bwrap|setpriv|prlimit|warren-sandbox): /.test(first) ? first : null;
  }
  firstLine(): string {
    return this.text.split('\n')[0]?.trim() ?? '';
  }
}

/** Mode bits that let someone other than the owner change a directory's entries. */
const GROUP_OTHER_WRITE = 0o022;

/**
 * Makes `runDir` (mode 0700) if missing and checks it is a real directory (not a symlink) owned by
 * this process's uid and not writable by group or others: the generated files in it are bound into
 * the sandbox, so nobody else may swap them.
 */
function prepareRunDir(spec: SandboxSpec): void {
  mkdirSync(spec.runDir, { recursive: true, mode: 0o700 });
  const info = lstatSync(spec.runDir);
  const euid = process.geteuid?.() ?? 0;
  if (!info.isDirectory()) throw new Error(`${spec.runDir} is not a directory (a symlink?)`);
  if (info.uid !== euid) throw new Error(`${spec.runDir} is owned by uid ${info.uid}, not ${euid}`);
  if ((info.mode & GROUP_OTHER_WRITE) !== 0) throw new Error(`${spec.runDir} is writable by group or others (mode ${(info.mode & 0o7777).toString(8)})`);
}

/**
 * Writes `content` to `path` (`mode`, default 0644) without following anything planted there:
 * whatever is at `path` (an earlier sandbox's file, a symlink, FIFO or hard link) is unlinked, never
 * followed, and the text goes to a new file made with O_CREAT|O_EXCL|O_NOFOLLOW (something planted
 * between the two calls makes it fail rather than be written through). Nothing reads the file
 * before the spawn that follows, and a sandbox already running keeps the file it bound: no atomic
 * replace is needed, and a rename over an existing file costs ext4 ~0.1 ms of forced writeback
 * (its `auto_da_alloc` flushes a file renamed over another; unlink then create costs ~15 µs).
 * Synchronous: a few small local file calls, cheaper in place than each waiting for the event
 * loop after the thread pool (see the preparation in {@link spawnSandbox}).
 * @throws {Error} (EEXIST) when something was made at `path` meanwhile; (EISDIR) when it is a directory.
 */
function writeGeneratedFile(path: string, content: string | Uint8Array, mode = 0o644): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
  const fd = openSync(path, flags, mode);
  try {
    writeFileSync(fd, content);
    fchmodSync(fd, mode);
  } catch (error) {
    closeSync(fd);
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
    throw error;
  }
  closeSync(fd);
}

/**
 * Starts `spec.argv` in a sandbox: bubblewrap (as root, no user namespace) with new pid, net
 * (loopback only), ipc, uts and cgroup namespaces, a fresh root holding read-only `/usr` (+ the
 * `/bin`/`/lib` links), a few `/etc` files and the generated `/etc/passwd` and `/etc/group`,
 * `/proc`, a minimal `/dev`, a sized tmpfs on `/tmp`, the home read-write and the spec's binds;
 * then `setpriv` drops to `uid`/`gid` with no supplementary groups, no capabilities and
 * no_new_privs. The seccomp filter of {@link buildSeccompProgram} is always installed (bwrap reads
 * it from a fresh pipe on fd 4 at each spawn). The process joins its cgroups (memory, pids, cpu,
 * plus cgroup2 for kill and CPU time) before exec and gets RLIMIT_NOFILE, RLIMIT_FSIZE and
 * RLIMIT_NPROC from the prologue shell's `ulimit` (or `prlimit`; see {@link prologueArgv}).
 * stdout and stderr go to `spec.logPath` (capped, streamed), or whole to `options.output` when
 * given. Host-side
 * files (`runDir/passwd`, `runDir/group`, the log) are written without following symlinks.
 * Resolves once the process is started (bwrap's pid known).
 * @throws {SandboxSpecError} if a spec field is invalid or the home is not a directory owned by
 *   `uid` (a symlink is refused).
 * @throws {SandboxUnavailableError} if the host cannot isolate in `spec.isolation` mode (see
 *   {@link assertIsolation}).
 * @throws {SandboxError} if the name is in use, the run dir is unsafe, a cgroup or file cannot be
 *   made, or bwrap cannot start.
 */
export async function spawnSandbox(spec: SandboxSpec, options: SpawnSandboxOptions = {}): Promise<Sandbox> {
  validateSpec(spec);
  const isolation = spec.isolation ?? 'full';
  const host = options.host ?? (await probeHost());
  assertIsolation(host, isolation);
  const log = lazyChildLogger(options.logger ?? silentLogger, { sandbox: spec.name });
  if (live.has(spec.name)) throw new SandboxError(spec.name, 'a sandbox of this name is already running');

  let home;
  try {
    // lstat: a symlink in place of the home is refused, never followed.
    home = lstatSync(spec.homeHostPath);
  } catch (error) {
    throw new SandboxSpecError(spec.name, 'homeHostPath', `${spec.homeHostPath} cannot be read: ${(error as Error).message}`);
  }
  if (!home.isDirectory()) throw new SandboxSpecError(spec.name, 'homeHostPath', `${spec.homeHostPath} is not a directory (symlinks are refused)`);
  if (home.uid !== spec.uid) {
    throw new SandboxSpecError(spec.name, 'homeHostPath', `${spec.homeHostPath} is owned by uid ${home.uid}, not ${spec.uid}`);
  }

  live.add(spec.name);
  let cgroups: SandboxCgroups | undefined;
  let output: CappedLog | undefined;
  let seccomp: number | undefined;
  let pipes: [OutputPipe, OutputPipe] | undefined;
  try {
    const passwdPath = join(spec.runDir, 'passwd');
    const groupPath = join(spec.runDir, 'group');
    const seccompPath = join(spec.runDir, 'seccomp.bpf');
    // The log (when the output goes to it) is opened through the thread pool meanwhile. The
    // generated files and the cgroups are made in place: some twenty small file-system calls, ~0.2 ms
    // (0.25 ms for the cgroups), where the same calls each through the thread pool took ~1 ms on
    // a quiet supervisor and ~10 ms on a busy one (every step waits for the event loop). Whatever
    // was made is undone below when one of them fails.
    const opened = options.output
      ? undefined
      : CappedLog.open(spec.logPath, spec.logMaxBytes).catch((error: unknown) => {
          throw new SandboxError(spec.name, `cannot open log ${spec.logPath}: ${(error as Error).message}`, spec.logPath, {
            cause: error,
          });
        });
    // Settled at once (nothing else is awaited first), so a failure below never leaves it unhandled.
    const [madeLog, madeFilesAndCgroups] = await Promise.allSettled([
      opened,
      (async () => {
        try {
          prepareRunDir(spec);
          writeGeneratedFile(passwdPath, spec.passwd);
          writeGeneratedFile(groupPath, spec.group);
          // bwrap reads the filter to EOF from fd 4: a fresh read-only descriptor of a root-only file per spawn.
          writeGeneratedFile(seccompPath, buildSeccompProgram(), 0o600);
          seccomp = openSync(seccompPath, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
        } catch (error) {
          throw new SandboxError(spec.name, `cannot write generated files in ${spec.runDir}: ${(error as Error).message}`, spec.runDir, {
            cause: error,
          });
        }
        cgroups = await createCgroups(host, spec.name, spec.limits);
      })(),
    ]);
    if (madeLog.status === 'fulfilled') output = madeLog.value;
    for (const made of [madeFilesAndCgroups, madeLog]) if (made.status === 'rejected') throw made.reason;
    if (seccomp === undefined || cgroups === undefined) throw new SandboxError(spec.name, 'the sandbox was not prepared', spec.runDir);

    const { limits } = spec;
    const extraBinds = [
      ...(spec.readOnlyBinds ?? []).flatMap((b) => ['--ro-bind', b.source, b.target]),
      ...(spec.binds ?? []).flatMap((b) => ['--bind', b.source, b.target]),
    ];
    const targets = ['/etc/passwd', spec.homePath, ...[...(spec.readOnlyBinds ?? []), ...(spec.binds ?? [])].map((b) => b.target)];
    const bwrapArgs = [
      '--unshare-pid',
      ...(spec.network === 'host' ? [] : ['--unshare-net']),
      '--unshare-ipc',
      '--unshare-uts',
      '--unshare-cgroup-try',
      '--die-with-parent',
      '--new-session',
      '--clearenv',
      '--json-status-fd',
      String(STATUS_FD),
      '--seccomp',
      String(SECCOMP_FD),
      '--hostname',
      spec.name,
      ...parentDirs(targets),
      ...systemBinds(),
      '--ro-bind',
      passwdPath,
      '/etc/passwd',
      '--ro-bind',
      groupPath,
      '/etc/group',
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--perms',
      '1777',
      '--size',
      String(limits.tmpfsBytes),
      '--tmpfs',
      '/tmp',
      '--bind',
      spec.homeHostPath,
      spec.homePath,
      ...extraBinds,
      '--remount-ro',
      '/',
      '--chdir',
      spec.cwd ?? spec.homePath,
      ...Object.entries(spec.env).flatMap(([k, v]) => ['--setenv', k, v]),
      '--',
      host.setprivPath!,
      `--reuid=${spec.uid}`,
      `--regid=${spec.gid}`,
      '--clear-groups',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--no-new-privs',
      '--',
      ...spec.argv,
    ];
    const shell = prologueShell();
    const argv = prologueArgv(shell, cgroups.procsFiles, { nofile: limits.nofile, fsizeBytes: limits.fsizeBytes, nproc: limits.pidsMax }, host.prlimitPath, [
      host.bwrapPath!,
      ...bwrapArgs,
    ]);
    log.debug({ argv: spec.argv, uid: spec.uid, cgroups: cgroups.dirs, isolation }, 'spawning sandbox');
    // An empty environment; fd 3: bwrap's JSON status (out); fd 4: the seccomp program file (in).
    // detached: the prologue starts a new session, so no terminal signal from ours reaches it.
    // stdout and stderr are kernel pipes when they can be made (see fifos.ts: `/dev/stderr` opens
    // on a pipe, not on the socket `stdio: 'pipe'` would give); else sockets.
    const owner = { uid: spec.uid, gid: spec.gid };
    const outPipe = openOutputPipe(owner);
    const errPipe = outPipe ? openOutputPipe(owner) : null;
    if (outPipe && !errPipe) {
      closeWriteEnd(outPipe);
      outPipe.reader.destroy();
    }
    pipes = outPipe && errPipe ? [outPipe, errPipe] : undefined;
    // posix_spawn (@warren/spawn), not child_process: a fork of the supervisor would copy its page
    // tables on the event loop's time (milliseconds at its size) for every sandbox.
    const child = spawnProcess(shell.path, argv, {
      env: {},
      stdio: [options.stdin ?? 'ignore', pipes ? pipes[0].writeFd : 'pipe', pipes ? pipes[1].writeFd : 'pipe', 'pipe', seccomp],
      detached: true,
    });
    // The child has its own copies of the descriptors now (the spawn is synchronous).
    closeSync(seccomp);
    seccomp = undefined;
    if (pipes) for (const pipe of pipes) closeWriteEnd(pipe);
    if (child.pid === undefined) {
      const error = await new Promise<Error>((resolve) => child.once('error', resolve));
      throw new SandboxError(spec.name, `cannot start ${shell.path} for bwrap: ${error.message}`, shell.path, { cause: error });
    }
    const usage: UsageReader = cgroups.dirs.length > 0 ? new CgroupUsageReader(cgroups.files) : new ProcUsageReader(spec.uid);
    const readers = pipes ? { stdout: pipes[0].reader, stderr: pipes[1].reader } : { stdout: child.stdout as Readable, stderr: child.stderr as Readable };
    return new RunningSandbox(spec, child.pid, child, readers, cgroups, output, usage, isolation !== 'full', log, options.output);
  } catch (error) {
    if (pipes) {
      for (const pipe of pipes) {
        closeWriteEnd(pipe);
        pipe.reader.destroy();
      }
    }
    if (seccomp !== undefined) closeSync(seccomp);
    if (cgroups) await removeCgroups(cgroups).catch(() => undefined);
    await output?.close();
    live.delete(spec.name);
    throw error;
  }
}

/** The descriptor bwrap writes its JSON status lines to (`--json-status-fd`). */
const STATUS_FD = 3;
/** The descriptor bwrap reads the seccomp program from (`--seccomp`). */
const SECCOMP_FD = 4;
/** Longest bwrap status line kept while waiting for its newline (they are ~50 bytes). */
const STATUS_LINE_MAX = 4096;

/** How the first process (the prologue, then prlimit if used, then bwrap: one pid) ended. */
interface ChildEnd {
  readonly exitCode: number | null;
  readonly signal: string | null;
}

/**
 * Copies `source` into `destination` chunk by chunk, pausing `source` while `destination` is over
 * its high-water mark (until 'drain'); `onChunk` sees each chunk first. A failing destination
 * destroys `source` (its writer then gets EPIPE). `destination` is never ended (it may be the
 * process's own stdout). Resolves when `source` ends, closes or fails; never rejects.
 */
function pipeWithBackpressure(source: Readable, destination: Writable, onChunk?: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve) => {
    let failed = false;
    const onDrain = (): void => {
      source.resume();
    };
    const onError = (): void => {
      failed = true;
      destination.off('drain', onDrain);
      source.destroy();
    };
    destination.on('error', onError);
    const finish = (): void => {
      destination.off('error', onError);
      destination.off('drain', onDrain);
      resolve();
    };
    source.on('data', (chunk: Buffer) => {
      onChunk?.(chunk);
      if (failed || destination.destroyed || destination.writableEnded) {
        if (!failed) onError();
        return;
      }
      if (!destination.write(chunk)) {
        source.pause();
        destination.once('drain', onDrain);
      }
    });
    source.once('end', finish);
    source.once('close', finish);
    source.once('error', finish);
  });
}

/** Resolves when `child` has exited (never rejects). */
function childEnd(child: SpawnedProcess): Promise<ChildEnd> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ exitCode: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once('exit', (exitCode, signal) => resolve({ exitCode, signal }));
  });
}

class RunningSandbox implements Sandbox {
  readonly exited: Promise<SandboxExit>;
  private stopping: Promise<SandboxExit> | undefined;
  private stopReason: StopReason | null = null;
  private done = false;
  readonly stdin: Writable | null;
  /** Ends the grace of a stop under way at once. */
  private hurry: (() => void) | undefined;

  constructor(
    private readonly spec: SandboxSpec,
    readonly pid: number,
    child: SpawnedProcess,
    private readonly readers: { readonly stdout: Readable; readonly stderr: Readable },
    private readonly cgroups: SandboxCgroups,
    /** The log the output goes to; undefined when it goes to `streams`. */
    private readonly output: CappedLog | undefined,
    private readonly usageReader: UsageReader,
    readonly unsafe: boolean,
    private readonly log: Logger,
    private readonly streams?: { readonly stdout: Writable; readonly stderr: Writable },
  ) {
    this.stdin = child.stdin;
    this.stdin?.on('error', () => undefined);
    this.exited = this.watch(child);
  }

  get name(): string {
    return this.spec.name;
  }

  get logDroppedBytes(): number {
    return this.output?.droppedBytes ?? 0;
  }

  usage(): SandboxUsage {
    return this.usageReader.read();
  }

  private async watch(child: SpawnedProcess): Promise<SandboxExit> {
    let started = false;
    let statusCode: number | null = null;
    const stderrHead = new Head(4096);
    const statusStream = child.stdio[STATUS_FD] as Readable;
    let statusText = '';
    statusStream.on('data', (chunk: Buffer) => {
      statusText += chunk.toString('utf8');
      let newline: number;
      while ((newline = statusText.indexOf('\n')) !== -1) {
        const line = statusText.slice(0, newline);
        statusText = statusText.slice(newline + 1);
        try {
          const status = JSON.parse(line) as { 'child-pid'?: number; 'exit-code'?: number };
          if (typeof status['child-pid'] === 'number') started = true;
          if (typeof status['exit-code'] === 'number') statusCode = status['exit-code'];
        } catch {
          // bwrap writes one JSON object per line; anything else is ignored
        }
      }
      if (statusText.length > STATUS_LINE_MAX) statusText = '';
    });
    const statusDone = new Promise<void>((resolve) => {
      statusStream.once('end', resolve);
      statusStream.once('close', resolve);
      statusStream.once('error', () => resolve());
    });
    child.on('error', (error) => this.log.warn({ err: error }, 'sandbox process error'));
    const pump = (source: Readable, destination: Writable | undefined, onChunk?: (chunk: Buffer) => void): Promise<void> => {
      if (destination) return pipeWithBackpressure(source, destination, onChunk);
      if (this.output) return this.output.pump(source, onChunk);
      source.resume();
      return new Promise((resolve) => source.once('close', () => resolve()));
    };
    const pumps = Promise.all([
      statusDone,
      pump(this.readers.stdout, this.streams?.stdout),
      pump(this.readers.stderr, this.streams?.stderr, (chunk) => stderrHead.push(chunk)),
    ]);
    let exit: SandboxExit;
    try {
      const result = await childEnd(child);
      await pumps;
      // bwrap reports the child's pid before it builds the mounts, so a failure to build them
      // shows as exit status 1 with bwrap's (or setpriv's) message as the first stderr line.
      const setupLine = stderrHead.setupError();
      let setupError: string | null = null;
      if (!started || (setupLine !== null && (statusCode ?? result.exitCode) === 1)) {
        setupError = setupLine ?? (stderrHead.firstLine() || `bwrap exited with ${result.exitCode ?? result.signal}`);
      }
      let exitCode: number | null = null;
      let signal: string | null = result.signal ?? null;
      if (signal === null) {
        const code = statusCode ?? result.exitCode ?? 255;
        signal = signalOfStatus(code);
        if (signal === null) exitCode = code;
      }
      exit = classifyExit({
        setupError,
        stopReason: this.stopReason,
        exitCode,
        signal,
        oomKills: await oomKillCount(this.cgroups),
        pidsMaxEvents: await pidsMaxEvents(this.cgroups),
      });
    } catch (error) {
      exit = { kind: 'setup_error', message: (error as Error).message };
    }
    this.usageReader.close();
    try {
      await removeCgroups(this.cgroups);
    } catch (error) {
      this.log.warn({ err: error, cgroups: this.cgroups.dirs }, 'cannot remove sandbox cgroups');
    }
    await this.output?.close();
    live.delete(this.spec.name);
    this.done = true;
    this.log.debug({ exit }, 'sandbox ended');
    return exit;
  }

  freeze(): boolean {
    return !this.done && freezeCgroups(this.cgroups);
  }

  thaw(): void {
    if (!this.done) freezeCgroups(this.cgroups, false);
  }

  stop(graceMs = 5000, stop?: StopReason): Promise<SandboxExit> {
    if (stop && !this.done) this.stopReason ??= { reason: stop.reason, detail: stop.detail };
    if (this.stopping) {
      if (graceMs <= 0) this.hurry?.();
      return this.stopping;
    }
    this.stopping = this.stopNow(graceMs);
    return this.stopping;
  }

  private async stopNow(graceMs: number): Promise<SandboxExit> {
    if (this.done) return this.exited;
    // SIGTERM the agent's processes only: bwrap's own (root) processes would tear the namespace down at once.
    const tracked = await sandboxPids(this.cgroups);
    const pids = tracked.length > 0 ? tracked.filter((p) => realUid(p) === this.spec.uid) : processesOfUid(this.spec.uid);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => {
      this.hurry = () => resolve('timeout');
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const first = await Promise.race([this.exited, graceOver]);
    clearTimeout(timer);
    if (first === 'timeout') {
      this.log.debug({ graceMs }, 'sandbox did not stop in time: killing it');
      await killCgroups(this.cgroups);
      try {
        // bwrap dies, so its pid-namespace init dies (--die-with-parent), which kills the namespace.
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    return this.exited;
  }

  async close(): Promise<void> {
    await this.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Removes the cgroups under `warren/` that a previous run left, killing their processes first.
 * Kept: those of sandboxes alive in this process, those holding a process whose spawner is still
 * alive (another live process's sandboxes, also while they start), and empty ones made in the last
 * 10 s (being set up).
 * Call it at supervisor start.
 * @returns the removed cgroup directories.
 * @throws {SandboxError} if a cgroup stays busy for ~10 s after its processes were killed and no
 *   `onBusy` is given; with `onBusy`, each such cgroup is passed to it and left, and the sweep goes on.
 */
export async function removeStaleCgroups(options?: { host?: HostCapabilities; onBusy?: OnBusyCgroup }): Promise<string[]> {
  const host = options?.host ?? (await probeHost());
  return removeWarrenCgroups(host, live, options?.onBusy);
}

/**
 * Removes the cgroups under `warren/` whose sandbox name satisfies `orphaned`, killing their
 * processes first, whether or not they look in use: for a caller that knows their owner is gone
 * (e.g. the `warren exec` process named in them has died). Sandboxes alive in this process are
 * never touched.
 * @returns the removed cgroup directories.
 * @throws {SandboxError} as {@link removeStaleCgroups}.
 */
export async function removeOrphanCgroups(orphaned: (name: string) => boolean, options?: { host?: HostCapabilities; onBusy?: OnBusyCgroup }): Promise<string[]> {
  const host = options?.host ?? (await probeHost());
  return removeNamedCgroups(host, (name) => !live.has(name) && orphaned(name), options?.onBusy);
}

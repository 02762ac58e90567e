import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { silentLogger, type Logger } from '@warren/core';
import { execa, type ResultPromise } from 'execa';
import {
  createCgroups,
  killCgroups,
  oomKillCount,
  removeCgroups,
  removeWarrenCgroups,
  sandboxPids,
  type SandboxCgroups,
} from './cgroups.js';
import { SandboxError, SandboxSpecError } from './errors.js';
import { assertIsolation, probeHost, type HostCapabilities } from './host.js';
import { CappedLog } from './log.js';
import { processesOfUid } from './procs.js';
import { validateSpec, type SandboxSpec } from './spec.js';

/**
 * How a sandbox ended.
 * - `exited`: the agent process exited with `exitCode`.
 * - `signaled`: it (or, when forced, the sandbox) was killed by `signal` (e.g. `SIGKILL`).
 * - `oom`: the kernel's OOM killer acted in its memory cgroup and it did not exit cleanly.
 * - `setup_error`: the sandbox never started the agent (bwrap or cgroup setup failed); `message`
 *   is the last error text bwrap or the prologue printed.
 * Consumers should handle unknown kinds too: more may be added.
 */
export type SandboxExit =
  | { readonly kind: 'exited'; readonly exitCode: number }
  | { readonly kind: 'signaled'; readonly signal: string }
  | { readonly kind: 'oom' }
  | { readonly kind: 'setup_error'; readonly message: string };

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
   * Stops the sandbox: SIGTERM to every agent process, SIGKILL to the whole tree (cgroup kill,
   * which also reaches processes that double-forked or changed session) after `graceMs` (default
   * 5000), then removes its cgroups. Idempotent; resolves with the exit.
   */
  stop(graceMs?: number): Promise<SandboxExit>;
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
}

/** Names of the sandboxes alive in this process: never removed as stale, never reused. */
const live = new Set<string>();

/**
 * The prologue runs as `/bin/sh -c PROLOGUE sh N cgroup.procs×N prlimit… -- bwrap…`: it moves
 * itself into each cgroup (so everything it execs starts inside them, without a race) and then
 * execs the rest. Paths arrive as positional arguments, never as shell text.
 */
const PROLOGUE = [
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do',
  '  echo $$ > "$1" || { echo "warren-sandbox: cannot join cgroup $1" >&2; exit 125; }',
  '  shift; n=$((n - 1))',
  'done',
  'exec "$@"',
].join('\n');

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

/**
 * Starts `spec.argv` in a sandbox: bubblewrap (as root, no user namespace) with new pid, net
 * (loopback only), ipc, uts and cgroup namespaces, a fresh root holding read-only `/usr` (+ the
 * `/bin`/`/lib` links), a few `/etc` files and the generated `/etc/passwd` and `/etc/group`,
 * `/proc`, a minimal `/dev`, a sized tmpfs on `/tmp`, the home read-write and the spec's binds;
 * then `setpriv` drops to `uid`/`gid` with no supplementary groups, no capabilities and
 * no_new_privs. The process joins its cgroups (memory, pids, cpu; plus cgroup2 for kill) before
 * exec and gets RLIMIT_NOFILE, RLIMIT_FSIZE and RLIMIT_NPROC via `prlimit`. stdout and stderr go to
 * `spec.logPath` (capped). Resolves once the process is started (bwrap's pid known).
 * @throws {SandboxSpecError} if a spec field is invalid or the home is not owned by `uid`.
 * @throws {SandboxUnavailableError} if the host cannot isolate (see {@link assertIsolation}).
 * @throws {SandboxError} if the name is in use, a cgroup or file cannot be made, or bwrap cannot start.
 */
export async function spawnSandbox(spec: SandboxSpec, options: SpawnSandboxOptions = {}): Promise<Sandbox> {
  validateSpec(spec);
  const host = options.host ?? (await probeHost());
  assertIsolation(host);
  const log = (options.logger ?? silentLogger).child({ sandbox: spec.name });
  if (live.has(spec.name)) throw new SandboxError(spec.name, 'a sandbox of this name is already running');

  let home;
  try {
    home = await stat(spec.homeHostPath);
  } catch (error) {
    throw new SandboxSpecError(spec.name, 'homeHostPath', `${spec.homeHostPath} cannot be read: ${(error as Error).message}`);
  }
  if (!home.isDirectory()) throw new SandboxSpecError(spec.name, 'homeHostPath', `${spec.homeHostPath} is not a directory`);
  if (home.uid !== spec.uid) {
    throw new SandboxSpecError(spec.name, 'homeHostPath', `${spec.homeHostPath} is owned by uid ${home.uid}, not ${spec.uid}`);
  }

  live.add(spec.name);
  let cgroups: SandboxCgroups | undefined;
  let output: CappedLog | undefined;
  try {
    const passwdPath = join(spec.runDir, 'passwd');
    const groupPath = join(spec.runDir, 'group');
    try {
      await mkdir(spec.runDir, { recursive: true, mode: 0o700 });
      await writeFile(passwdPath, spec.passwd, { mode: 0o644 });
      await writeFile(groupPath, spec.group, { mode: 0o644 });
    } catch (error) {
      throw new SandboxError(spec.name, `cannot write generated files in ${spec.runDir}: ${(error as Error).message}`, spec.runDir, {
        cause: error,
      });
    }
    try {
      output = await CappedLog.open(spec.logPath, spec.logMaxBytes);
    } catch (error) {
      throw new SandboxError(spec.name, `cannot open log ${spec.logPath}: ${(error as Error).message}`, spec.logPath, {
        cause: error,
      });
    }
    cgroups = await createCgroups(host, spec.name, spec.limits);

    const { limits } = spec;
    const extraBinds = [
      ...(spec.readOnlyBinds ?? []).flatMap((b) => ['--ro-bind', b.source, b.target]),
      ...(spec.binds ?? []).flatMap((b) => ['--bind', b.source, b.target]),
    ];
    const targets = ['/etc/passwd', spec.homePath, ...[...(spec.readOnlyBinds ?? []), ...(spec.binds ?? [])].map((b) => b.target)];
    const bwrapArgs = [
      '--unshare-pid',
      '--unshare-net',
      '--unshare-ipc',
      '--unshare-uts',
      '--unshare-cgroup-try',
      '--die-with-parent',
      '--new-session',
      '--clearenv',
      '--json-status-fd',
      '3',
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
    const prlimitArgs = [
      `--nofile=${limits.nofile}:${limits.nofile}`,
      `--fsize=${limits.fsizeBytes}:${limits.fsizeBytes}`,
      `--nproc=${limits.pidsMax}:${limits.pidsMax}`,
      '--',
    ];
    const argv = [
      '-c',
      PROLOGUE,
      'warren-sandbox',
      String(cgroups.procsFiles.length),
      ...cgroups.procsFiles,
      host.prlimitPath!,
      ...prlimitArgs,
      host.bwrapPath!,
      ...bwrapArgs,
    ];
    log.debug({ argv: spec.argv, uid: spec.uid, cgroups: cgroups.dirs }, 'spawning sandbox');
    const childOptions: ChildOptions = {
      extendEnv: false,
      env: {},
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      buffer: false,
      reject: false,
      detached: true,
      cleanup: false,
      forceKillAfterDelay: false,
      encoding: 'buffer',
    };
    const child = execa('/bin/sh', argv, childOptions);
    if (child.pid === undefined) {
      const result = await child;
      throw new SandboxError(spec.name, `cannot start /bin/sh for bwrap: ${result.message}`, '/bin/sh');
    }
    return new RunningSandbox(spec, child.pid, child, cgroups, output, log);
  } catch (error) {
    if (cgroups) await removeCgroups(cgroups).catch(() => undefined);
    await output?.close();
    live.delete(spec.name);
    throw error;
  }
}

interface ChildOptions {
  extendEnv: false;
  env: Record<string, string>;
  stdio: ['ignore', 'pipe', 'pipe', 'pipe'];
  buffer: false;
  reject: false;
  detached: true;
  cleanup: false;
  forceKillAfterDelay: false;
  encoding: 'buffer';
}
type Child = ResultPromise<ChildOptions>;

class RunningSandbox implements Sandbox {
  readonly exited: Promise<SandboxExit>;
  private stopping: Promise<SandboxExit> | undefined;
  private done = false;

  constructor(
    private readonly spec: SandboxSpec,
    readonly pid: number,
    child: Child,
    private readonly cgroups: SandboxCgroups,
    private readonly output: CappedLog,
    private readonly log: Logger,
  ) {
    this.exited = this.watch(child);
  }

  get name(): string {
    return this.spec.name;
  }

  get logDroppedBytes(): number {
    return this.output.droppedBytes;
  }

  private async watch(child: Child): Promise<SandboxExit> {
    let started = false;
    let statusCode: number | null = null;
    const stderrHead = new Head(4096);
    const statusStream = child.stdio[3] as Readable;
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
    });
    const pumps = Promise.all([
      this.output.pump(child.stdout as Readable),
      this.output.pump(child.stderr as Readable, (chunk) => stderrHead.push(chunk)),
    ]);
    let exit: SandboxExit;
    try {
      const result = await child;
      await pumps;
      const oomKills = await oomKillCount(this.cgroups);
      // bwrap reports the child's pid before it builds the mounts, so a failure to build them
      // shows as exit status 1 with bwrap's (or setpriv's) message as the first stderr line.
      const setupError = stderrHead.setupError();
      if (!started || (setupError !== null && (statusCode ?? result.exitCode) === 1)) {
        const detail = setupError ?? (stderrHead.firstLine() || result.shortMessage || `bwrap exited with ${result.exitCode ?? result.signal}`);
        exit = { kind: 'setup_error', message: detail };
      } else if (result.signal) {
        exit = oomKills > 0 ? { kind: 'oom' } : { kind: 'signaled', signal: result.signal };
      } else {
        const code = statusCode ?? result.exitCode ?? 255;
        const signal = signalOfStatus(code);
        if (oomKills > 0 && code !== 0) exit = { kind: 'oom' };
        else if (signal) exit = { kind: 'signaled', signal };
        else exit = { kind: 'exited', exitCode: code };
      }
    } catch (error) {
      exit = { kind: 'setup_error', message: (error as Error).message };
    }
    try {
      await removeCgroups(this.cgroups);
    } catch (error) {
      this.log.warn({ err: error, cgroups: this.cgroups.dirs }, 'cannot remove sandbox cgroups');
    }
    await this.output.close();
    live.delete(this.spec.name);
    this.done = true;
    this.log.debug({ exit }, 'sandbox ended');
    return exit;
  }

  stop(graceMs = 5000): Promise<SandboxExit> {
    this.stopping ??= this.stopNow(graceMs);
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
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const first = await Promise.race([this.exited, graceOver]);
    clearTimeout(timer);
    if (first === 'timeout') {
      this.log.debug({ graceMs }, 'sandbox did not stop in time: killing it');
      await killCgroups(this.cgroups);
      try {
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
 * Kept: those of sandboxes alive in this process, those holding a bwrap whose spawner is still
 * alive (another live process's sandboxes), and empty ones made in the last 10 s (being set up).
 * Call it at supervisor start.
 * @returns the removed cgroup directories.
 * @throws {SandboxError} if a cgroup stays busy.
 */
export async function removeStaleCgroups(options?: { host?: HostCapabilities }): Promise<string[]> {
  const host = options?.host ?? (await probeHost());
  return removeWarrenCgroups(host, live);
}

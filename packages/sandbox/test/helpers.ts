import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { assertIsolation, CGROUP_PARENT, probeHost, type HostCapabilities, type Sandbox, type SandboxSpec } from '@warren/sandbox';

/**
 * Fails (never skips) when the host cannot run sandboxes, with the install hint from
 * assertIsolation (e.g. `apt-get install -y bubblewrap util-linux`, or run as root).
 */
export async function requireSandboxHost(): Promise<void> {
  assertIsolation(await probeHost());
}

/** Test uids live in 1_900_900_000+ so they cannot collide with real accounts. */
let nextUid = 1_900_900_000 + (process.pid % 1000) * 100;
export function freshUid(): number {
  return nextUid++;
}

const cleanups: (() => Promise<void> | void)[] = [];

/** Runs registered cleanups (close sandboxes, remove temp dirs); call from afterEach. */
export async function cleanup(): Promise<void> {
  for (const fn of cleanups.splice(0).reverse()) await fn();
}

/** How long a tracked sandbox's close may take before its processes are described on stderr (ms). */
const SLOW_CLOSE_MS = 10_000;

/**
 * Registers a sandbox to be closed after the test. A close that takes over {@link SLOW_CLOSE_MS}
 * (a sandbox that does not die) writes its process tree's kernel states to stderr, so a hang in CI
 * says where each process waits.
 */
export function track(sandbox: Sandbox): Sandbox {
  cleanups.push(async () => {
    const slow = setTimeout(() => process.stderr.write(describeProcessTree(sandbox.pid)), SLOW_CLOSE_MS);
    try {
      await sandbox.close();
    } finally {
      clearTimeout(slow);
    }
  });
  return sandbox;
}

/** One line a process of the tree under `rootPid`: pid, state, wchan, command, and its kernel stack when readable. */
export function describeProcessTree(rootPid: number): string {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readOrEmpty(`/proc/${name}/stat`);
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const lines = [`sandbox ${rootPid} did not close within ${SLOW_CLOSE_MS} ms; its processes:`];
  const visit = (pid: number, depth: number): void => {
    const stat = readOrEmpty(`/proc/${pid}/stat`);
    const state = stat ? stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] : 'gone';
    const cmd = readOrEmpty(`/proc/${pid}/cmdline`).split('\0').join(' ').trim();
    const stack = readOrEmpty(`/proc/${pid}/stack`).trim().split('\n').slice(0, 8).join(' | ');
    lines.push(`${'  '.repeat(depth)}${pid} ${state} wchan=${readOrEmpty(`/proc/${pid}/wchan`) || '-'} ${cmd}${stack ? ` stack: ${stack}` : ''}`);
    for (const child of children.get(pid) ?? []) visit(child, depth + 1);
  };
  visit(rootPid, 1);
  return `${lines.join('\n')}\n`;
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** A temp directory removed after the test. */
export function tempDir(prefix = 'warren-sandbox-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let counter = 0;

/**
 * A spec for a fresh uid with its own temp home (owned by the uid, mode 0700), run dir and log.
 * `overrides` replace top-level fields; `limits` entries are merged.
 */
export function makeSpec(
  argv: string[],
  overrides: Partial<Omit<SandboxSpec, 'limits'>> & { limits?: Partial<SandboxSpec['limits']> } = {},
): SandboxSpec & { hostDir: string } {
  const uid = overrides.uid ?? freshUid();
  const hostDir = tempDir();
  const home = join(hostDir, 'home');
  mkdirSync(home);
  chownSync(home, uid, uid);
  chmodSync(home, 0o700);
  const name = `t${process.pid}-${counter++}`;
  const { limits, ...rest } = overrides;
  return {
    name,
    uid,
    gid: uid,
    homeHostPath: home,
    homePath: `/home/${name}`,
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\n${name}:x:${uid}:${uid}::/home/${name}:/bin/sh\n`,
    group: `root:x:0:\n${name}:x:${uid}:\n`,
    argv,
    env: { HOME: `/home/${name}`, PATH: '/usr/bin:/bin', WARREN_TEST: 'yes' },
    limits: {
      memoryMaxBytes: 256 * 1024 * 1024,
      pidsMax: 64,
      cpuWeight: 100,
      nofile: 256,
      fsizeBytes: 16 * 1024 * 1024,
      tmpfsBytes: 8 * 1024 * 1024,
      ...limits,
    },
    runDir: join(hostDir, 'run'),
    logPath: join(hostDir, 'logs', `${name}.log`),
    logMaxBytes: 1024 * 1024,
    ...rest,
    hostDir,
  };
}

/** The sandbox's log so far. */
export function readLog(spec: SandboxSpec): string {
  try {
    return readFileSync(spec.logPath, 'utf8');
  } catch {
    return '';
  }
}

/** Polls `check` every 20 ms until it returns true; fails after `timeoutMs` naming `what`. */
export async function waitUntil(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

/** The cgroup directories a sandbox named `name` would have on this host (one per hierarchy). */
export function cgroupDirsOf(host: HostCapabilities, name: string): string[] {
  const { paths } = host.cgroup;
  const roots = [paths.unified, paths.memory, paths.pids, paths.cpu, paths.unified === null ? (paths.cpuacct ?? null) : null].filter((p): p is string => p !== null);
  return [...new Set(roots)].map((root) => join(root, CGROUP_PARENT, name));
}

/** Runs a Perl program inside a fresh sandbox and returns its exit and log (perl is under /usr). */
export function perlArgv(program: string): string[] {
  return ['/usr/bin/perl', '-e', program];
}

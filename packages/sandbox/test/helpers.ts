import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

/** Registers a sandbox to be closed after the test. */
export function track(sandbox: Sandbox): Sandbox {
  cleanups.push(() => sandbox.close());
  return sandbox;
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

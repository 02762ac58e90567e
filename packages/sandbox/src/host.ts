import { constants } from 'node:fs';
import { access, readFile, realpath } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { SandboxUnavailableError } from './errors.js';
import { seccompSupported } from './seccomp.js';

/** Which cgroup interface Warren drives: unified v2 with controllers, legacy v1, or none at all. */
export type CgroupVersion = 'v2' | 'v1' | 'none';

/**
 * What the host offers for cgroups. `memory`, `pids`, `cpu` say whether that controller can be
 * used (on v2: listed in the root's `cgroup.controllers`; on v1: a hierarchy is mounted). `kill`
 * says whether a cgroup2 hierarchy with `cgroup.kill` (Linux 5.14+) is mounted, which kills a whole
 * process tree at once. `paths` are the mount points used (null when absent): on v2 `unified` is
 * the only one; on a v1 or hybrid host each controller has its own, and `unified` (if any) is the
 * controller-less cgroup2 mount used for `cgroup.kill`, `cgroup.events` and `cpu.stat`. `cpuacct` is
 * the v1 CPU accounting hierarchy (often co-mounted with `cpu`), used for CPU time when there is
 * no cgroup2 mount.
 */
export interface CgroupCapabilities {
  readonly version: CgroupVersion;
  readonly memory: boolean;
  readonly pids: boolean;
  readonly cpu: boolean;
  readonly kill: boolean;
  readonly paths: {
    readonly unified: string | null;
    readonly memory: string | null;
    readonly pids: string | null;
    readonly cpu: string | null;
    readonly cpuacct?: string | null;
  };
}

/**
 * How strongly a sandbox must be isolated.
 * - `full` (the default): root, bwrap, setpriv, prlimit, the seccomp filter and cgroup memory and
 *   pids controllers are all required.
 * - `unsafe-no-cgroups`: the same, except that cgroups may be missing (then memory, CPU and the
 *   process count of the tree are not capped by cgroups; RLIMIT_NPROC still caps the uid). Only for
 *   a template that asks for it by name; such a sandbox has `unsafe === true`.
 */
export type IsolationMode = 'full' | 'unsafe-no-cgroups';

/**
 * What the host can do for sandboxing, as found by {@link probeHost}. Paths are absolute paths of
 * the programs (`bwrap` from bubblewrap; `setpriv` and `prlimit` from util-linux), or null when
 * not found. `setpriv` runs inside the sandbox, where only `/usr` (and the `/bin`-style links into
 * it) is visible, so it counts as found only when it resolves to a file under `/usr`.
 */
export interface HostCapabilities {
  readonly isRoot: boolean;
  readonly bwrapPath: string | null;
  readonly setprivPath: string | null;
  readonly prlimitPath: string | null;
  /** Whether the sandbox's seccomp filter exists for this CPU architecture (x86_64 only). Default true. */
  readonly seccomp?: boolean;
  readonly cgroup: CgroupCapabilities;
}

const BIN_DIRS = ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin', '/usr/local/sbin'];

/**
 * The first executable `name` in the usual bin directories, or null. With `underUsr` it must
 * resolve to a file under /usr (for programs run inside the sandbox) and the real path is returned.
 */
export async function findProgram(name: string, underUsr: boolean): Promise<string | null> {
  for (const dir of BIN_DIRS) {
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      const real = await realpath(candidate);
      if (underUsr && !real.startsWith('/usr/')) continue;
      return underUsr ? real : candidate;
    } catch {
      // not here; try the next directory
    }
  }
  return null;
}

/** One line of /proc/self/mountinfo (proc(5)): the fields Warren needs. */
export interface MountEntry {
  readonly mountPoint: string;
  readonly fsType: string;
  /** The mount source, e.g. `/dev/loop3` (unescaped). */
  readonly source: string;
  readonly superOptions: readonly string[];
}

/** Undoes the octal escapes (`\040` for a space, …) mountinfo uses in paths. */
function unescapeMount(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses /proc/self/mountinfo text; format per proc(5): `... mountpoint ... - fstype source superopts`. */
export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    const mountPoint = fields[4];
    const fsType = fields[dash + 1];
    if (dash < 6 || mountPoint === undefined || fsType === undefined) continue;
    entries.push({
      mountPoint: unescapeMount(mountPoint),
      fsType,
      source: unescapeMount(fields[dash + 2] ?? ''),
      superOptions: (fields[dash + 3] ?? '').split(','),
    });
  }
  return entries;
}

/** Kernel release at least major.minor (from `uname -r`, e.g. `6.1.0-18-amd64`). */
function kernelAtLeast(major: number, minor: number): boolean {
  const match = /^(\d+)\.(\d+)/.exec(release());
  if (!match) return false;
  const [maj, min] = [Number(match[1]), Number(match[2])];
  return maj > major || (maj === major && min >= minor);
}

async function probeCgroups(): Promise<CgroupCapabilities> {
  let mounts: MountEntry[] = [];
  try {
    mounts = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  } catch {
    // no /proc: no cgroups we can find
  }
  const v2Mounts = mounts.filter((m) => m.fsType === 'cgroup2');
  // Prefer the conventional places when several cgroup2 mounts exist.
  const unified =
    v2Mounts.find((m) => m.mountPoint === '/sys/fs/cgroup') ??
    v2Mounts.find((m) => m.mountPoint === '/sys/fs/cgroup/unified') ??
    v2Mounts[0];
  const kill = unified !== undefined && kernelAtLeast(5, 14);
  let v2Controllers: string[] = [];
  if (unified) {
    try {
      v2Controllers = (await readFile(join(unified.mountPoint, 'cgroup.controllers'), 'utf8')).trim().split(/\s+/);
    } catch {
      v2Controllers = [];
    }
  }
  if (unified && v2Controllers.includes('memory') && v2Controllers.includes('pids')) {
    return {
      version: 'v2',
      memory: true,
      pids: true,
      cpu: v2Controllers.includes('cpu'),
      kill,
      paths: { unified: unified.mountPoint, memory: null, pids: null, cpu: null, cpuacct: null },
    };
  }
  const v1 = (controller: string): string | null =>
    mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.includes(controller))?.mountPoint ?? null;
  const paths = {
    unified: unified?.mountPoint ?? null,
    memory: v1('memory'),
    pids: v1('pids'),
    cpu: v1('cpu'),
    cpuacct: v1('cpuacct'),
  };
  const any = paths.memory !== null || paths.pids !== null || paths.cpu !== null;
  return {
    version: any ? 'v1' : 'none',
    memory: paths.memory !== null,
    pids: paths.pids !== null,
    cpu: paths.cpu !== null,
    kill,
    paths,
  };
}

let cached: Promise<HostCapabilities> | undefined;

/**
 * Finds what the host offers for sandboxing: root, the bwrap/setpriv/prlimit programs and the
 * cgroup interface (v2 with controllers, else v1 hierarchies, else none; plus `cgroup.kill`).
 * Reads /proc/self/mountinfo and the cgroup roots; changes nothing. The result is computed once
 * per process and shared (pass `{ fresh: true }` to probe again). Never throws.
 */
export function probeHost(options?: { fresh?: boolean }): Promise<HostCapabilities> {
  if (!cached || options?.fresh) {
    cached = (async () => {
      const [bwrapPath, setprivPath, prlimitPath, cgroup] = await Promise.all([
        findProgram('bwrap', false),
        findProgram('setpriv', true),
        findProgram('prlimit', false),
        probeCgroups(),
      ]);
      return { isRoot: process.getuid?.() === 0, bwrapPath, setprivPath, prlimitPath, seccomp: seccompSupported(), cgroup };
    })();
  }
  return cached;
}

/**
 * Checks that `caps` (from {@link probeHost}) allow running agents isolated: root, bwrap, setpriv
 * and prlimit, the seccomp filter (x86_64), and cgroup memory and pids controllers (memory and
 * process caps are part of the isolation). A missing cpu controller is tolerated (no CPU
 * weighting then). `mode` `unsafe-no-cgroups` (see {@link IsolationMode}) drops only the cgroup
 * requirement; the default `full` is strict.
 * @throws {SandboxUnavailableError} listing everything missing, with an apt-get install hint.
 */
export function assertIsolation(caps: HostCapabilities, mode: IsolationMode = 'full'): void {
  const missing: string[] = [];
  const packages = new Set<string>();
  const hints: string[] = [];
  if (!caps.isRoot) {
    missing.push('root privileges');
    hints.push('run the supervisor as root (it creates cgroups and switches to agent uids)');
  }
  if (!caps.bwrapPath) {
    missing.push('bwrap');
    packages.add('bubblewrap');
  }
  if (!caps.setprivPath) {
    missing.push('setpriv under /usr');
    packages.add('util-linux');
  }
  if (!caps.prlimitPath) {
    missing.push('prlimit');
    packages.add('util-linux');
  }
  if (!(caps.seccomp ?? seccompSupported())) {
    missing.push(`seccomp filter for ${process.arch} (only x86_64 is supported)`);
    hints.push('run agents on an x86_64 host');
  }
  if (mode === 'full' && (!caps.cgroup.memory || !caps.cgroup.pids)) {
    const which = [!caps.cgroup.memory && 'memory', !caps.cgroup.pids && 'pids'].filter(Boolean).join(' and ');
    missing.push(`cgroup ${which} controller`);
    hints.push(
      'mount the cgroup hierarchy with the memory and pids controllers (cgroup v2 at /sys/fs/cgroup, or v1 at /sys/fs/cgroup/<controller>); in a container, run it with cgroup access',
    );
  }
  if (missing.length === 0) return;
  if (packages.size > 0) hints.unshift(`apt-get install -y ${[...packages].join(' ')}`);
  throw new SandboxUnavailableError(missing, hints.join('; '));
}

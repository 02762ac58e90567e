import { readdir, readFile, rmdir, stat, writeFile, mkdir } from 'node:fs/promises';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { SandboxError } from './errors.js';
import type { HostCapabilities } from './host.js';

/** The parent directory Warren owns in each cgroup hierarchy; it never touches cgroups elsewhere. */
export const CGROUP_PARENT = 'warren';

/** Limits applied through cgroups (a subset of `SandboxSpec.limits`). */
export interface CgroupLimits {
  readonly memoryMaxBytes: number;
  readonly pidsMax: number;
  /** 1..10000, 100 = default (cgroup v2 `cpu.weight`; mapped to v1 `cpu.shares` as weight × 1024 / 100). */
  readonly cpuWeight: number;
}

/** The cgroups made for one sandbox. */
export interface SandboxCgroups {
  readonly name: string;
  /** Every directory made, one per hierarchy. */
  readonly dirs: readonly string[];
  /** The `cgroup.procs` files the sandbox's first process writes its pid to before exec. */
  readonly procsFiles: readonly string[];
  /** `cgroup.kill` of the cgroup2 directory, if the host has one. */
  readonly killFile: string | null;
  /** The directory holding the memory controller's files, and its version. */
  readonly memory: { readonly dir: string; readonly version: 'v1' | 'v2' } | null;
  /** A directory whose `cgroup.procs` lists every process of the sandbox. */
  readonly trackingDir: string | null;
  /** The files {@link CgroupUsageReader} and the exit classification read (null when absent). */
  readonly files: {
    /** v2 `memory.current` or v1 `memory.usage_in_bytes` (bytes). */
    readonly memoryUsage: string | null;
    /** `pids.current` (processes + threads). */
    readonly pidsCurrent: string | null;
    /** `pids.events` (`max N`: forks refused by `pids.max`). */
    readonly pidsEvents: string | null;
    /** v2 `memory.events` or v1 `memory.oom_control` (`oom_kill N`: processes the OOM killer killed). */
    readonly memoryEvents: string | null;
    /** CPU time: cgroup2 `cpu.stat` (`usage_usec`) or v1 `cpuacct.usage` (ns). */
    readonly cpu: { readonly path: string; readonly format: 'cpu.stat' | 'cpuacct.usage' } | null;
  };
}

/**
 * Writes `value` to the control file `path`. Synchronous, as every step of {@link createCgroups}'s
 * usual path: a cgroup file's write is a few microseconds in the kernel, while each step through
 * the thread pool waits for the event loop, which on a busy supervisor cost a sandbox's start
 * ~10 ms of waiting (about 1 ms when quiet, against 0.2 ms for all the steps done in place).
 */
function writeControl(sandbox: string, path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch (error) {
    throw new SandboxError(sandbox, `cannot write '${value.trim()}' to ${path}: ${(error as Error).message}`, path, {
      cause: error,
    });
  }
}

function exists(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false }) !== undefined;
}

/** Whether each control file exists in the cgroups of a hierarchy, by `<hierarchy>\0<file>` (a fact of the host's kernel). */
const controlFiles = new Map<string, boolean>();

/**
 * Whether the control file `file` exists in `dir`, a cgroup of `hierarchy`: looked up once per
 * hierarchy and file (every cgroup of a hierarchy has the same control files).
 */
function hasFile(hierarchy: string, dir: string, file: string): boolean {
  const key = `${hierarchy}\0${file}`;
  let known = controlFiles.get(key);
  if (known === undefined) {
    known = exists(join(dir, file));
    controlFiles.set(key, known);
  }
  return known;
}

/** The pids listed in a cgroup's `cgroup.procs`; [] if it is gone. */
export async function cgroupPids(dir: string): Promise<number[]> {
  try {
    const text = await readFile(join(dir, 'cgroup.procs'), 'utf8');
    return text
      .split('\n')
      .filter((l) => l.length > 0)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * Makes `<hierarchy>/warren/<name>` (creating `warren/` if needed). An existing directory of that
 * name with no processes is a leftover and is replaced; one with processes means the name is in use.
 * The usual case (the parent there, the name free) is one synchronous mkdir (see {@link writeControl}).
 */
async function makeDir(sandbox: string, hierarchy: string): Promise<string> {
  const parent = join(hierarchy, CGROUP_PARENT);
  const dir = join(parent, sandbox);
  try {
    mkdirSync(dir);
    return dir;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'EEXIST') {
      throw new SandboxError(sandbox, `cannot create cgroup ${dir}: ${(error as Error).message}`, dir, { cause: error });
    }
  }
  try {
    await mkdir(parent, { recursive: true });
    await mkdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new SandboxError(sandbox, `cannot create cgroup ${dir}: ${(error as Error).message}`, dir, { cause: error });
    }
    if ((await cgroupPids(dir)).length > 0) {
      throw new SandboxError(sandbox, `cgroup ${dir} already has processes: the name is in use`, dir);
    }
    await removeDir(sandbox, dir);
    await mkdir(dir);
  }
  return dir;
}

/** Attempts of {@link removeDir} 20 ms apart: ~2 s for a sandbox's own cgroups. */
const REMOVE_ATTEMPTS = 100;
/**
 * Attempts for a leftover's cgroups (~10 s): its processes were killed just before, and on a
 * loaded machine they can take seconds to leave the cgroup.
 */
const LEFTOVER_REMOVE_ATTEMPTS = 500;

/**
 * rmdir, retrying `attempts` times 20 ms apart while the kernel still reports EBUSY (exiting
 * processes). With `same`, each attempt first asks it whether `dir` is still the directory meant.
 * @returns true when it is gone (removed here or already), false when `same` said it is another.
 */
async function removeDir(sandbox: string, dir: string, attempts = REMOVE_ATTEMPTS, same?: () => Promise<boolean>): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    if (same && !(await same())) return false;
    try {
      await rmdir(dir);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      if (code !== 'EBUSY' || attempt >= attempts) {
        throw new SandboxError(sandbox, `cannot remove cgroup ${dir}: ${(error as Error).message}`, dir, { cause: error });
      }
      await delay(20);
    }
  }
}

/** Enables `controllers` for the children of `dir` (cgroup v2 `cgroup.subtree_control`). */
function enableControllers(sandbox: string, dir: string, controllers: string[]): void {
  const file = join(dir, 'cgroup.subtree_control');
  const enabled = readFileSync(file, 'utf8').trim().split(/\s+/);
  const wanted = controllers.filter((c) => !enabled.includes(c));
  if (wanted.length > 0) writeControl(sandbox, file, wanted.map((c) => `+${c}`).join(' '));
}

/**
 * Creates the cgroups of sandbox `name` under `warren/` in every hierarchy the host offers and
 * applies `limits`: v2 `memory.max` (+ `memory.swap.max` 0, `memory.oom.group` 1), `pids.max`,
 * `cpu.weight`; v1 `memory.limit_in_bytes` (+ `memory.memsw.limit_in_bytes` when swap accounting
 * exists), `pids.max`, `cpu.shares`. On a hybrid host the controller-less cgroup2 directory is made
 * too, for `cgroup.kill`. Undoes what it made if a step fails.
 * @throws {SandboxError} naming the cgroup file that could not be made or written.
 */
export async function createCgroups(caps: HostCapabilities, name: string, limits: CgroupLimits): Promise<SandboxCgroups> {
  const made: string[] = [];
  try {
    const { cgroup } = caps;
    if (cgroup.version === 'v2' && cgroup.paths.unified) {
      const root = cgroup.paths.unified;
      const controllers = ['memory', 'pids', ...(cgroup.cpu ? ['cpu'] : [])];
      enableControllers(name, root, controllers);
      mkdirSync(join(root, CGROUP_PARENT), { recursive: true });
      enableControllers(name, join(root, CGROUP_PARENT), controllers);
      const dir = await makeDir(name, root);
      made.push(dir);
      writeControl(name, join(dir, 'memory.max'), String(limits.memoryMaxBytes));
      if (exists(join(dir, 'memory.swap.max'))) writeControl(name, join(dir, 'memory.swap.max'), '0');
      if (exists(join(dir, 'memory.oom.group'))) writeControl(name, join(dir, 'memory.oom.group'), '1');
      writeControl(name, join(dir, 'pids.max'), String(limits.pidsMax));
      if (cgroup.cpu) writeControl(name, join(dir, 'cpu.weight'), String(limits.cpuWeight));
      return {
        name,
        dirs: made,
        procsFiles: [join(dir, 'cgroup.procs')],
        killFile: cgroup.kill ? join(dir, 'cgroup.kill') : null,
        memory: { dir, version: 'v2' },
        trackingDir: dir,
        files: {
          memoryUsage: join(dir, 'memory.current'),
          pidsCurrent: join(dir, 'pids.current'),
          pidsEvents: join(dir, 'pids.events'),
          memoryEvents: join(dir, 'memory.events'),
          cpu: { path: join(dir, 'cpu.stat'), format: 'cpu.stat' },
        },
      };
    }
    let memory: SandboxCgroups['memory'] = null;
    let trackingDir: string | null = null;
    let killFile: string | null = null;
    let cpu: SandboxCgroups['files']['cpu'] = null;
    let pidsDir: string | null = null;
    // The directories of the hierarchies every sandbox uses, made side by side; co-mounted v1
    // controllers share one hierarchy, so each directory is made once.
    const hierarchies = [...new Set([cgroup.paths.unified, cgroup.paths.memory, cgroup.paths.pids, cgroup.paths.cpu].filter((p): p is string => p !== null))];
    const settled = await Promise.allSettled(hierarchies.map((hierarchy) => makeDir(name, hierarchy)));
    for (const result of settled) if (result.status === 'fulfilled') made.push(result.value);
    for (const result of settled) if (result.status === 'rejected') throw result.reason;
    const dirOf = async (hierarchy: string): Promise<string> => {
      const existing = made.find((d) => d === join(hierarchy, CGROUP_PARENT, name));
      if (existing) return existing;
      const dir = await makeDir(name, hierarchy);
      made.push(dir);
      return dir;
    };
    if (cgroup.paths.unified) {
      const dir = await dirOf(cgroup.paths.unified);
      trackingDir = dir;
      if (cgroup.kill) killFile = join(dir, 'cgroup.kill');
      // cgroup2 keeps CPU time in cpu.stat even without the cpu controller enabled.
      if (hasFile(cgroup.paths.unified, dir, 'cpu.stat')) cpu = { path: join(dir, 'cpu.stat'), format: 'cpu.stat' };
    }
    if (cgroup.paths.memory) {
      const dir = await dirOf(cgroup.paths.memory);
      writeControl(name, join(dir, 'memory.limit_in_bytes'), String(limits.memoryMaxBytes));
      if (hasFile(cgroup.paths.memory, dir, 'memory.memsw.limit_in_bytes')) writeControl(name, join(dir, 'memory.memsw.limit_in_bytes'), String(limits.memoryMaxBytes));
      memory = { dir, version: 'v1' };
      trackingDir ??= dir;
    }
    if (cgroup.paths.pids) {
      const dir = await dirOf(cgroup.paths.pids);
      writeControl(name, join(dir, 'pids.max'), String(limits.pidsMax));
      trackingDir ??= dir;
      pidsDir = dir;
    }
    if (cgroup.paths.cpu) {
      const dir = await dirOf(cgroup.paths.cpu);
      const shares = Math.max(2, Math.round((limits.cpuWeight * 1024) / 100));
      writeControl(name, join(dir, 'cpu.shares'), String(shares));
    }
    if (cpu === null && cgroup.paths.cpuacct) {
      const dir = await dirOf(cgroup.paths.cpuacct);
      cpu = { path: join(dir, 'cpuacct.usage'), format: 'cpuacct.usage' };
    }
    return {
      name,
      dirs: made,
      procsFiles: made.map((d) => join(d, 'cgroup.procs')),
      killFile,
      memory,
      trackingDir,
      files: {
        memoryUsage: memory ? join(memory.dir, 'memory.usage_in_bytes') : null,
        pidsCurrent: pidsDir ? join(pidsDir, 'pids.current') : null,
        pidsEvents: pidsDir ? join(pidsDir, 'pids.events') : null,
        memoryEvents: memory ? join(memory.dir, 'memory.oom_control') : null,
        cpu,
      },
    };
  } catch (error) {
    for (const dir of made.reverse()) await removeDir(name, dir).catch(() => undefined);
    throw error;
  }
}

/** How many processes the kernel's OOM killer has killed in this sandbox's memory cgroup (0 if unknown). */
export async function oomKillCount(cgroups: SandboxCgroups): Promise<number> {
  if (!cgroups.memory) return 0;
  const file = cgroups.memory.version === 'v2' ? 'memory.events' : 'memory.oom_control';
  try {
    const text = await readFile(join(cgroups.memory.dir, file), 'utf8');
    const match = /^oom_kill (\d+)$/m.exec(text);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** How many forks `pids.max` refused in this sandbox (`max` in `pids.events`; 0 if unknown). */
export async function pidsMaxEvents(cgroups: SandboxCgroups): Promise<number> {
  if (!cgroups.files.pidsEvents) return 0;
  try {
    const match = /^max (\d+)$/m.exec(await readFile(cgroups.files.pidsEvents, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** SIGKILLs every process in `dir` (and its descendants), repeating until it is empty (~2 s at most). */
async function killByList(dirs: readonly string[]): Promise<void> {
  for (let round = 0; round < 100; round++) {
    let found = 0;
    for (const dir of dirs) {
      for (const pid of await cgroupPids(dir)) {
        found++;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    if (found === 0) return;
    await delay(20);
  }
}

/**
 * Kills every process in the sandbox's cgroups: one write to `cgroup.kill` when available (it
 * reaches processes forked meanwhile), else SIGKILL to each listed pid until none is left.
 */
export async function killCgroups(cgroups: SandboxCgroups): Promise<void> {
  if (cgroups.killFile) {
    try {
      await writeFile(cgroups.killFile, '1');
    } catch {
      // fall through to the list
    }
  }
  await killByList(cgroups.dirs);
}

/**
 * Freezes every process in the sandbox's cgroup2 directory (`cgroup.freeze`), synchronously: none
 * of them runs again until killed (a system call under way completes first). A frozen cgroup is
 * still killed by {@link killCgroups}. With `frozen` false, lets them run again.
 * @returns false when the sandbox has no cgroup2 directory with a freezer or the write failed.
 */
export function freezeCgroups(cgroups: SandboxCgroups, frozen = true): boolean {
  for (const dir of cgroups.dirs) {
    const file = join(dir, 'cgroup.freeze');
    if (!existsSync(file)) continue;
    try {
      writeFileSync(file, frozen ? '1' : '0');
      return true;
    } catch {
      return false;
    }
  }
  return false;
}

/** Lists the pids in the sandbox's cgroups (from its tracking hierarchy). */
export function sandboxPids(cgroups: SandboxCgroups): Promise<number[]> {
  return cgroups.trackingDir ? cgroupPids(cgroups.trackingDir) : Promise.resolve([]);
}

/**
 * Removes the sandbox's cgroup directories, killing anything still inside first.
 * @throws {SandboxError} if a directory stays busy.
 */
export async function removeCgroups(cgroups: SandboxCgroups): Promise<void> {
  await killCgroups(cgroups);
  for (const dir of cgroups.dirs) await removeDir(cgroups.name, dir);
}

/**
 * Removes `dir` and any sub-cgroups, deepest first, after killing their processes, trying each
 * rmdir `attempts` times (20 ms apart) while it is busy. With `found`, the top directory is the one
 * a sweep judged: before each step that kills or removes, it must still be that directory (same
 * inode); when another took its path meanwhile (its owner removed it and made a new sandbox of that
 * name), nothing more is done to it.
 * @returns false when `dir` turned out to be another directory than `found` (or gone) and was left.
 */
async function removeTree(name: string, dir: string, attempts = LEFTOVER_REMOVE_ATTEMPTS, found?: FoundDir): Promise<boolean> {
  const same = found === undefined ? () => Promise.resolve(true) : () => isSameDir(found);
  if (!(await same())) return false;
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (entry.isDirectory()) await removeTree(name, join(dir, entry.name), attempts);
  }
  const killFile = join(dir, 'cgroup.kill');
  if (!(await same())) return false;
  if (exists(killFile)) await writeFile(killFile, '1').catch(() => undefined);
  if (!(await same())) return false;
  await killByList([dir]);
  return removeDir(name, dir, attempts, same);
}

/** One directory of a sandbox's cgroups as a sweep found it: its path, inode number and mtime (ms) then. */
export interface FoundDir {
  readonly path: string;
  readonly ino: number;
  readonly mtimeMs: number;
}

/**
 * Those of `paths` that exist now, with their inode numbers and mtimes. cgroupfs gives a new
 * directory a new inode number (kernfs allocates them cyclically), so the number tells the
 * directory a sweep judged from one made later at the same path.
 */
export async function findDirs(paths: readonly string[]): Promise<FoundDir[]> {
  const dirs: FoundDir[] = [];
  for (const path of paths) {
    try {
      const stats = await stat(path);
      dirs.push({ path, ino: stats.ino, mtimeMs: stats.mtimeMs });
    } catch {
      // gone meanwhile
    }
  }
  return dirs;
}

/** Whether `found.path` is still the directory {@link findDirs} found there (same inode). */
async function isSameDir(found: FoundDir): Promise<boolean> {
  try {
    return (await stat(found.path)).ino === found.ino;
  } catch {
    return false;
  }
}

/**
 * Called for a leftover cgroup that stays busy (its killed processes do not leave it, e.g. frozen
 * or in uninterruptible sleep): it is left in place and the sweep goes on with the others.
 */
export type OnBusyCgroup = (error: SandboxError) => void;

/**
 * Removes every directory of `dirs` (one sandbox's, as {@link findDirs} found them) with
 * {@link removeTree}, appending each removed one to `removed`; one whose path another directory
 * has taken since is left. A directory that stays busy goes to `onBusy` when given, else is thrown.
 */
export async function removeLeftover(name: string, dirs: readonly FoundDir[], removed: string[], onBusy: OnBusyCgroup | undefined): Promise<void> {
  // The same processes are in each hierarchy: once one directory outlasted the whole wait, the
  // others get a single try.
  let attempts = LEFTOVER_REMOVE_ATTEMPTS;
  for (const dir of dirs) {
    try {
      if (await removeTree(name, dir.path, attempts, dir)) removed.push(dir.path);
    } catch (error) {
      if (!onBusy || !(error instanceof SandboxError)) throw error;
      attempts = 1;
      onBusy(error);
    }
  }
}

/** How long an empty cgroup is left alone: another process may be between mkdir and joining it. */
const YOUNG_EMPTY_MS = 10_000;

/** The parent pid and command name of `pid` (/proc/<pid>/status), or null if it is gone (or a zombie's parent is 0). */
async function processInfo(pid: number): Promise<{ ppid: number; name: string } | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const ppid = /^PPid:\s+(\d+)/m.exec(status);
    const name = /^Name:\s+(.*)$/m.exec(status);
    return ppid && name ? { ppid: Number(ppid[1]), name: name[1]!.trim() } : null;
  } catch {
    return null;
  }
}

/**
 * Whether the cgroups `dirs` (one sandbox's, across hierarchies) belong to a sandbox some live
 * process still manages: one holds a process whose parent is alive, outside the cgroup and not
 * pid 1 (the spawner: its prologue, prlimit or bwrap; bwrap runs with --die-with-parent, so it
 * cannot outlive the process that spawned it, and processes a dead run left are reparented to
 * pid 1), or all are empty and one was made in the last few seconds (another process may be
 * between mkdir and joining it). Under a child subreaper other than pid 1, leftovers count as in
 * use: they are never killed by mistake, only left.
 */
async function inUseElsewhere(dirs: readonly FoundDir[]): Promise<boolean> {
  let empty = true;
  let newestMs = 0;
  for (const dir of dirs) {
    const pids = await cgroupPids(dir.path);
    if (pids.length > 0) empty = false;
    for (const pid of pids) {
      const info = await processInfo(pid);
      if (info && info.ppid > 1 && !pids.includes(info.ppid)) return true;
    }
    newestMs = Math.max(newestMs, dir.mtimeMs);
  }
  return empty && Date.now() - newestMs < YOUNG_EMPTY_MS;
}

/**
 * Removes the cgroups under `warren/` in every hierarchy of `caps` that a previous run left:
 * not named in `keep` (sandboxes alive in this process) and not in use by another live process
 * (see {@link inUseElsewhere}). Kills their processes first. @returns the removed paths.
 * @throws {SandboxError} if one stays busy for ~10 s and no `onBusy` is given (with it, that one
 *   is reported there and left, and the others are still removed).
 */
export async function removeWarrenCgroups(caps: HostCapabilities, keep: ReadonlySet<string>, onBusy?: OnBusyCgroup): Promise<string[]> {
  const removed: string[] = [];
  for (const [name, paths] of await warrenCgroupsByName(caps)) {
    if (keep.has(name)) continue;
    // Judged on the directories there now: a name whose directories went meanwhile (their
    // sandbox ended) has nothing left to remove, and its path may soon hold a new sandbox's.
    const dirs = await findDirs(paths);
    if (dirs.length === 0 || (await inUseElsewhere(dirs))) continue;
    await removeLeftover(name, dirs, removed, onBusy);
  }
  return removed;
}

/**
 * Removes the cgroups under `warren/` (every hierarchy of `caps`) whose sandbox name satisfies
 * `match`, killing their processes first, in use or not. @returns the removed paths.
 * @throws {SandboxError} as {@link removeWarrenCgroups}.
 */
export async function removeNamedCgroups(caps: HostCapabilities, match: (name: string) => boolean, onBusy?: OnBusyCgroup): Promise<string[]> {
  const removed: string[] = [];
  for (const [name, paths] of await warrenCgroupsByName(caps)) {
    if (!match(name)) continue;
    await removeLeftover(name, await findDirs(paths), removed, onBusy);
  }
  return removed;
}

/** The directories under `warren/` in every hierarchy of `caps`, grouped by sandbox name. */
async function warrenCgroupsByName(caps: HostCapabilities): Promise<Map<string, string[]>> {
  const { paths } = caps.cgroup;
  const hierarchies = new Set(
    [paths.unified, paths.memory, paths.pids, paths.cpu, paths.cpuacct ?? null].filter(
      (p): p is string => p !== null,
    ),
  );
  const byName = new Map<string, string[]>();
  for (const hierarchy of hierarchies) {
    const parent = join(hierarchy, CGROUP_PARENT);
    const entries = await readdir(parent, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      byName.set(entry.name, [...(byName.get(entry.name) ?? []), join(parent, entry.name)]);
    }
  }
  return byName;
}

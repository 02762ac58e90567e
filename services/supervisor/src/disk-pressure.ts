import { statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { freeSpace, formatBytes, HOME_WALK_SPACING, homeUsage, type DiskReading, type HomeUsage, type WatchedHome } from './disk.js';

/** Free space at or under which a filesystem counts as full, in bytes. */
export const FULL_BYTES = 1024 * 1024;
/** Least growth of a home, in bytes, that makes its agent a writer worth stopping. */
export const MIN_OFFENDER_BYTES = 1024 * 1024;
/**
 * Least interval between two searches while the state directory's filesystem is below its reserve
 * but not full, and after a search that found no one to stop, in ms.
 */
export const LOW_SEARCH_MS = 1_000;
/**
 * How long a walk of a home stays the base of its agent's baselines, in ms (longer when the walk
 * was slow: {@link HOME_WALK_SPACING} times its duration): meanwhile an agent that takes a task
 * while idle gets as baseline that walk plus the workspaces of its results measured since
 * ({@link DiskPressure.workspaceMeasured}), not a new walk of a home that holds the workspaces of
 * every task it ran. What it wrote elsewhere in its home over that time counts as growth.
 */
export const BASELINE_WALK_MS = 5_000;

/** The agent {@link DiskPressure} found responsible for a filesystem running out of space. */
export interface DiskOffender {
  readonly agent: string;
  /** Which filesystem ran short: the state directory's (homes on it too) or the homes' own. */
  readonly filesystem: 'state' | 'homes';
  /** Why it is stopped, e.g. `the filesystem of the state directory is below its reserve (0 bytes free); shell-1 wrote 290 MiB to its home`. */
  readonly detail: string;
  /** Bytes its home uses now (the walk stops just past its limit). */
  readonly usedBytes: number;
  /** Bytes its home grew by since its task started. */
  readonly grownBytes: number;
  readonly limitBytes: number;
  /** Free bytes of that filesystem when it was read. */
  readonly freeBytes: number;
}

/** What {@link DiskPressure.check} calls. */
export interface DiskPressureHooks {
  /** The homes of agents running a task. */
  busy(): Iterable<WatchedHome>;
  /**
   * The state directory's filesystem is full (`freeBytes` free): keep `agents` (their homes are on
   * it) from writing and make room for Warren's own writes. Called synchronously.
   */
  full(agents: readonly string[], freeBytes: number): void;
  /** Stop `offender`, the agent that filled the filesystem. */
  stop(offender: DiskOffender): void;
  /** The search is over: `agents` given to {@link full} and not stopped may go on. */
  resume(agents: readonly string[]): void;
}

/** How {@link DiskPressure.taskStarted} may take a baseline. */
export interface BaselineOptions {
  /**
   * The running instance of the agent (any object that stands for it): a walk is reused only for
   * the instance it was taken for. Without it the home is walked.
   */
  readonly instance?: object;
  /** True when the home is a filesystem of its own (a home image): it is then not walked. */
  readonly ownFilesystem?: boolean;
}

/** Where {@link DiskPressure} looks. */
export interface DiskPressureOptions {
  /** The state directory. */
  readonly stateDir: string;
  /** The directory holding agent homes (`<homeRoot>/<template>/<agent>`). */
  readonly homeRoot: string;
  /** Least interval between two reads of the homes' filesystem, in ms. */
  readonly everyMs: number;
}

/**
 * Finds the agent to stop when a filesystem shared by agent homes runs out of space: the state
 * directory's filesystem once it is below its reserve (or full) while homes are on it, or the
 * filesystem of the home root, when it is another one, once it is full ({@link FULL_BYTES}). Homes
 * on a filesystem of their own (a home image) are left to their own limit. The agent chosen is the
 * busy one whose home grew the most since its task started, by at least {@link MIN_OFFENDER_BYTES}:
 * each home's baseline is taken when its agent takes a task while idle ({@link taskStarted}: a
 * walk with {@link homeUsage} at most every {@link BASELINE_WALK_MS}, the workspaces measured since
 * added in between) and it is walked again when space runs short. One search runs at a time, at most one per
 * reading of the state directory's filesystem, and none for {@link LOW_SEARCH_MS} after one that
 * found no one to stop (nor more often while it is below its reserve but not full).
 */
export class DiskPressure {
  /** Per agent, the baseline of its current task: what its home held when it took it, in bytes. */
  private readonly baselines = new Map<string, Promise<number>>();
  /** Per agent, its home's last walk for a baseline and the workspaces measured since. */
  private readonly totals = new Map<string, HomeTotal>();
  private searching: Promise<void> | undefined;
  private lastReadingMs = Number.NEGATIVE_INFINITY;
  private lowSearchAtMs = Number.NEGATIVE_INFINITY;
  private quietUntilMs = Number.NEGATIVE_INFINITY;
  private homesReadAtMs = Number.NEGATIVE_INFINITY;
  private walksValue = 0;

  constructor(private readonly options: DiskPressureOptions) {}

  /** Walks of homes started for baselines so far (the searches' walks are not counted). */
  get walks(): number {
    return this.walksValue;
  }

  /**
   * Takes the baseline of the home `dir` of `agent`, which is about to start a task while it had
   * none (at `nowMs`, ms since the epoch): what its home grows past this is what the task wrote.
   * The home is walked when its last walk is older than {@link BASELINE_WALK_MS} (or
   * {@link HOME_WALK_SPACING} times that walk's duration), when a workspace measured since was
   * not measured whole, when `nowMs` is earlier than that walk, and when it was taken for another
   * `instance` of the agent (or none is given: a new instance may have a new home); otherwise the
   * baseline is that walk plus the workspaces measured since. A home on a filesystem of its own
   * (`ownFilesystem`, checked against the devices of the state directory and the home root) is not
   * walked: no search measures it (its baseline is 0). Returns at once.
   * @returns the baseline, in bytes (0 when the walk failed); never rejects.
   */
  taskStarted(agent: string, dir: string, nowMs: number = Date.now(), options: BaselineOptions = {}): Promise<number> {
    const { instance, ownFilesystem = false } = options;
    const known = this.totals.get(agent);
    let bytes: Promise<number>;
    if (
      known !== undefined &&
      instance !== undefined &&
      known.instance === instance &&
      nowMs >= known.atMs &&
      nowMs - known.atMs < Math.max(BASELINE_WALK_MS, known.durationMs * HOME_WALK_SPACING)
    ) {
      const since = known.sinceBytes;
      bytes = since === 0 ? known.bytes : known.bytes.then((walked) => walked + since);
    } else {
      bytes = (ownFilesystem ? this.onSharedFilesystem(dir) : Promise.resolve(true)).then((shared) => (shared ? this.walk(agent, dir, nowMs, instance) : 0));
    }
    this.baselines.set(agent, bytes);
    return bytes;
  }

  /**
   * Counts the workspace of a result of `agent`, measured (`usage`) before the result is applied,
   * into the running total its next baselines start from. A walk of its home still running may
   * hold part of it: it is then not counted. A workspace not measured whole makes the next
   * baseline a walk.
   */
  workspaceMeasured(agent: string, usage: HomeUsage): void {
    const known = this.totals.get(agent);
    if (known === undefined) return;
    if (!usage.complete) this.totals.delete(agent);
    else if (known.done) known.sinceBytes += usage.bytes;
  }

  /** Walks the home `dir` of `agent` for its baselines (see {@link taskStarted}). */
  private walk(agent: string, dir: string, nowMs: number, instance: object | undefined): Promise<number> {
    this.walksValue += 1;
    const startedMs = Date.now();
    const total: HomeTotal = { bytes: Promise.resolve(0), atMs: nowMs, instance, durationMs: 0, done: false, sinceBytes: 0 };
    total.bytes = homeUsage(dir).then(
      (usage) => {
        total.durationMs = Date.now() - startedMs;
        total.done = true;
        if (!usage.complete && this.totals.get(agent) === total) this.totals.delete(agent);
        return usage.bytes;
      },
      () => {
        if (this.totals.get(agent) === total) this.totals.delete(agent);
        return 0;
      },
    );
    this.totals.set(agent, total);
    return total.bytes;
  }

  /** Whether `dir` is on the filesystem of the state directory or of the home root (true when a stat fails). */
  private async onSharedFilesystem(dir: string): Promise<boolean> {
    try {
      const [home, state, root] = await Promise.all([stat(dir), stat(this.options.stateDir), stat(this.options.homeRoot)]);
      return home.dev === state.dev || home.dev === root.dev;
    } catch {
      return true;
    }
  }

  /**
   * Looks for a filesystem short of space given the state directory's latest `reading` (see
   * DiskReserve.check; each reading is looked at once) and the homes' filesystem (statfs at most
   * once per `everyMs`). When one is, it lists `hooks.busy()`; when the state directory's
   * filesystem is full ({@link FULL_BYTES}) it first calls `hooks.full` with the busy agents whose
   * homes are on it, synchronously. It then measures the busy homes on the short filesystems in
   * the background, calls `hooks.stop` with the agent whose home grew the most (if any grew enough)
   * and `hooks.resume` with the other agents given to `hooks.full`. Returns at once.
   */
  check(reading: DiskReading, nowMs: number, hooks: DiskPressureHooks): void {
    if (this.searching || nowMs < this.quietUntilMs) return;
    const freshState = reading.atMs > this.lastReadingMs;
    this.lastReadingMs = reading.atMs;
    const stateFull = freshState && reading.freeBytes < FULL_BYTES;
    const stateIsShort = stateFull || (freshState && reading.low && nowMs - this.lowSearchAtMs >= LOW_SEARCH_MS);
    if (stateIsShort) this.lowSearchAtMs = nowMs;
    const homesDue = nowMs - this.homesReadAtMs >= this.options.everyMs;
    if (!stateIsShort && !homesDue) return;
    if (homesDue) this.homesReadAtMs = nowMs;
    let stateDev: number;
    let homesDev: number;
    try {
      stateDev = statSync(this.options.stateDir).dev;
      homesDev = statSync(this.options.homeRoot).dev;
    } catch {
      return;
    }
    let homesFree: number | undefined;
    if (homesDev !== stateDev && homesDue) {
      try {
        homesFree = freeSpace(this.options.homeRoot).freeBytes;
      } catch {
        homesFree = undefined;
      }
    }
    const homesShort = homesFree !== undefined && homesFree < FULL_BYTES;
    if (!stateIsShort && !homesShort) return;
    const pressed = new Map<number, { filesystem: 'state' | 'homes'; freeBytes: number }>();
    if (stateIsShort) pressed.set(stateDev, { filesystem: 'state', freeBytes: reading.freeBytes });
    if (homesShort) pressed.set(homesDev, { filesystem: 'homes', freeBytes: homesFree! });
    const homes = [...hooks.busy()];
    let held: string[] = [];
    if (stateFull) {
      held = homes.filter((home) => devOf(home.dir) === stateDev).map((home) => home.agent);
      hooks.full(held, reading.freeBytes);
    }
    const search = this.search(homes, pressed)
      .then((found) => {
        if (found) hooks.stop(found);
        else this.quietUntilMs = nowMs + LOW_SEARCH_MS;
        return found;
      })
      .then(
        (found) => hooks.resume(held.filter((agent) => agent !== found?.agent)),
        () => hooks.resume(held),
      )
      .finally(() => {
        if (this.searching === search) this.searching = undefined;
      });
    this.searching = search;
  }

  /** Resolves once the search running now (if any) has called its hooks; never rejects. */
  async settled(): Promise<void> {
    await this.searching;
  }

  /** The home among `homes` on a filesystem of `pressed` that grew the most, if by enough. */
  private async search(
    homes: readonly WatchedHome[],
    pressed: ReadonlyMap<number, { filesystem: 'state' | 'homes'; freeBytes: number }>,
  ): Promise<DiskOffender | undefined> {
    const measured = await Promise.all(
      homes.map(async (home) => {
        const fs = pressed.get(await stat(home.dir).then((s) => s.dev, () => -1));
        if (!fs) return undefined;
        const usage = await homeUsage(home.dir, 200_000, home.limitBytes + 1);
        const baseline = (await this.baselines.get(home.agent)) ?? 0;
        return { home, fs, usedBytes: usage.bytes, grownBytes: Math.max(0, usage.bytes - baseline) };
      }),
    );
    let best: (typeof measured)[number];
    for (const m of measured) if (m && (!best || m.grownBytes > best.grownBytes)) best = m;
    if (!best || best.grownBytes < MIN_OFFENDER_BYTES) return undefined;
    const where =
      best.fs.filesystem === 'state'
        ? `the filesystem of the state directory is below its reserve (${formatBytes(best.fs.freeBytes)} free)`
        : `the filesystem of the homes is full (${formatBytes(best.fs.freeBytes)} free)`;
    return {
      agent: best.home.agent,
      filesystem: best.fs.filesystem,
      detail: `${where}; ${best.home.agent} wrote ${formatBytes(best.grownBytes)} to its home`,
      usedBytes: best.usedBytes,
      grownBytes: best.grownBytes,
      limitBytes: best.home.limitBytes,
      freeBytes: best.fs.freeBytes,
    };
  }
}

/** The last walk of a home for baselines (see {@link DiskPressure.taskStarted}). */
interface HomeTotal {
  /** What the walk found, in bytes (0 when it failed). */
  bytes: Promise<number>;
  /** When it started (the `nowMs` of the task start that asked for it). */
  readonly atMs: number;
  /** The instance of the agent it was taken for. */
  readonly instance: object | undefined;
  /** How long it took, in ms (0 until it ended). */
  durationMs: number;
  /** Whether it ended. */
  done: boolean;
  /** Bytes in the workspaces measured since it ended. */
  sinceBytes: number;
}

/** The filesystem (st_dev) holding `path`, or -1 when it cannot be read. */
function devOf(path: string): number {
  try {
    return statSync(path).dev;
  } catch {
    return -1;
  }
}

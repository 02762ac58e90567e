import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, opendirSync, openSync, readdirSync, rmSync, statSync, statfsSync, writeSync, type Dir, type Stats } from 'node:fs';
import { ConfigError, parseBytes, silentLogger, type Logger } from '@warren/core';

/** The default free-space reserve: the smaller of 256 MiB and 5 % of the filesystem. */
export const DEFAULT_DISK_RESERVE = '256MiB,5%';
/** Default largest size of an agent's home (template key `resources.homeLimit`), as written. */
export const DEFAULT_HOME_LIMIT = '1GiB';

/** A free-space reserve: a size in bytes, a share of the filesystem in percent, or both (the smaller counts). */
export interface DiskReserveSpec {
  readonly bytes: number | undefined;
  readonly percent: number | undefined;
}

/**
 * Parses a reserve such as `256MiB`, `5%` or `256MiB,5%` (the smaller of the two), or `0` (none).
 * @throws {ConfigError} naming `source` when a part is neither a size nor a percentage in 0-50.
 */
export function parseDiskReserve(text: string, source: string): DiskReserveSpec {
  let bytes: number | undefined;
  let percent: number | undefined;
  for (const part of text.split(',').map((p) => p.trim())) {
    const share = /^(\d+(?:\.\d+)?)%$/.exec(part);
    if (share) {
      percent = Number(share[1]);
      if (percent > 50) throw new ConfigError(source, `'${part}' is over 50 %`);
    } else {
      bytes = parseBytes(part, source);
    }
  }
  return { bytes, percent };
}

/** Free and total bytes of a filesystem, as an unprivileged user sees them (statfs f_bavail). */
export interface FreeSpace {
  readonly freeBytes: number;
  readonly totalBytes: number;
}

/**
 * Free space of the filesystem holding `path`.
 * @throws the statfs error (ENOENT when `path` is missing).
 */
export function freeSpace(path: string): FreeSpace {
  const s = statfsSync(path);
  return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
}

/** The reserve `spec` comes to on a filesystem of `totalBytes`, in bytes. */
export function reserveBytes(spec: DiskReserveSpec, totalBytes: number): number {
  const parts = [spec.bytes, spec.percent === undefined ? undefined : Math.floor((totalBytes * spec.percent) / 100)].filter(
    (n): n is number => n !== undefined,
  );
  return parts.length === 0 ? 0 : Math.min(...parts);
}

/** Largest space Warren holds back in its reserve file (see {@link DiskReserve}), in bytes. */
export const MAX_HELD_BYTES = 32 * 1024 * 1024;

/**
 * Space Warren holds back for itself out of a reserve of `reserveBytes`: half of it, at most
 * {@link MAX_HELD_BYTES}. It is what Warren has left to store results, audit rows and the
 * database's write-ahead log once others filled the filesystem.
 */
export function heldBytesFor(reserveBytes: number): number {
  return Math.min(Math.floor(reserveBytes / 2), MAX_HELD_BYTES);
}

/** One reading of {@link DiskReserve.check}. */
export interface DiskReading {
  /** True while free space (counting what Warren holds) is below the reserve. */
  readonly low: boolean;
  /** True when `low` differs from the previous reading (the first reading counts as a change only when low). */
  readonly changed: boolean;
  /** Free bytes as others see them (statfs f_bavail; what Warren holds is not free). */
  readonly freeBytes: number;
  readonly reserveBytes: number;
  /** Bytes Warren holds back in its reserve file. */
  readonly heldBytes: number;
  /** When this reading was taken, in ms since the epoch (earlier than `nowMs` when it is reused). */
  readonly atMs: number;
}

/**
 * Watches the free space of the filesystem holding `path` (the state directory) against a
 * reserve, reading statfs at most once per `everyMs`. With `holdPath` (a file on that
 * filesystem) it also holds part of the reserve ({@link heldBytesFor}) in that file, written
 * while free space is at least the reserve plus that part, so that what others write cannot take
 * it; {@link release} deletes it when Warren needs the room. Free space counts the held bytes as
 * free when it is compared with the reserve.
 */
export class DiskReserve {
  private last: DiskReading = { low: false, changed: false, freeBytes: 0, reserveBytes: 0, heldBytes: 0, atMs: Number.NEGATIVE_INFINITY };
  private readAtMs = Number.NEGATIVE_INFINITY;
  private held = 0;

  constructor(
    private readonly path: string,
    private readonly spec: DiskReserveSpec,
    private readonly everyMs = 1_000,
    private readonly holdPath?: string,
  ) {
    if (holdPath) {
      try {
        this.held = statSync(holdPath).size;
      } catch {
        this.held = 0;
      }
    }
  }

  /** Bytes held back in the reserve file now. */
  get heldBytes(): number {
    return this.held;
  }

  /**
   * The current reading (statfs again if `everyMs` passed since the last one; `nowMs` in ms since
   * the epoch; `fresh`: statfs again whatever the interval). Calls with the `nowMs` of the last
   * read return that reading as it was. A statfs that fails leaves the previous reading (and says
   * no change).
   */
  check(nowMs: number, fresh = false): DiskReading {
    if (nowMs === this.readAtMs) return this.last;
    if (!fresh && nowMs - this.readAtMs < this.everyMs) return { ...this.last, changed: false };
    this.readAtMs = nowMs;
    let space: FreeSpace;
    try {
      space = freeSpace(this.path);
    } catch {
      return { ...this.last, changed: false };
    }
    const reserve = reserveBytes(this.spec, space.totalBytes);
    let free = space.freeBytes;
    const low = free + this.held < reserve;
    const toHold = heldBytesFor(reserve);
    if (!low && this.holdPath && this.held === 0 && toHold > 0 && free >= reserve + toHold) {
      this.held = holdSpace(this.holdPath, toHold);
      free -= this.held;
    }
    this.last = { low, changed: low !== this.last.low, freeBytes: free, reserveBytes: reserve, heldBytes: this.held, atMs: nowMs };
    return this.last;
  }

  /**
   * Deletes the reserve file, so its space is free for Warren's own writes; it is written again
   * once free space is back to the reserve plus its size.
   * @returns the bytes released (0 when nothing was held).
   */
  release(): number {
    const released = this.held;
    if (!this.holdPath || released === 0) return 0;
    rmSync(this.holdPath, { force: true });
    this.held = 0;
    return released;
  }
}

/** Bytes written per write() while filling a reserve file. */
const HOLD_CHUNK_BYTES = 1024 * 1024;

/**
 * Writes `bytes` of incompressible data to `path` (mode 0600, replacing it), so the filesystem
 * gives it real blocks (zeros could stay sparse or be compressed away).
 * @returns the bytes held: `bytes`, or 0 when writing failed (the file is then removed).
 */
function holdSpace(path: string, bytes: number): number {
  const chunk = randomBytes(HOLD_CHUNK_BYTES);
  let fd: number | undefined;
  try {
    fd = openSync(path, 'w', 0o600);
    for (let written = 0; written < bytes; ) {
      written += writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - written));
    }
    fsyncSync(fd);
    return bytes;
  } catch {
    rmSync(path, { force: true });
    return 0;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** What {@link homeUsage} found. */
export interface HomeUsage {
  /** Bytes allocated (sum of st_blocks × 512) to what was visited. */
  readonly bytes: number;
  /** False when the walk stopped at `maxEntries` (the true use is then at least `bytes`). */
  readonly complete: boolean;
}

/**
 * Entries {@link homeUsage} looks at in one slice. Its calls are synchronous (an asynchronous
 * lstat costs about ten times the CPU of a synchronous one, most of it in promises and the thread
 * pool); the walks going on take turns, one slice per turn of the event loop, so a slice (about a
 * millisecond) is the longest they hold the supervisor up, however many homes are walked at once.
 */
export const WALK_SLICE_ENTRIES = 256;

/** Walks waiting for their next slice, in order (see {@link nextSlice}). */
const waitingWalks: (() => void)[] = [];
let pumping = false;

/** Resolves when it is the caller's turn to walk a slice: one walk's slice per turn of the event loop, walks in turn. */
function nextSlice(): Promise<void> {
  return new Promise((resolve) => {
    waitingWalks.push(resolve);
    if (!pumping) {
      pumping = true;
      setImmediate(resumeNextWalk);
    }
  });
}

/** Lets the first waiting walk run a slice (after this callback, in this turn); the next one waits for the next turn. */
function resumeNextWalk(): void {
  waitingWalks.shift()?.();
  if (waitingWalks.length > 0) setImmediate(resumeNextWalk);
  else pumping = false;
}

/**
 * Largest size (st_size) of a directory that {@link homeUsage} lists in one call, in bytes; a
 * larger one, or one whose size says nothing (0), is read a slice at a time. 64 KiB holds a few
 * thousand names on ext4 and tmpfs.
 */
export const WALK_LIST_BYTES = 64 * 1024;

/**
 * Disk space used under `dir`: the allocated size (st_blocks × 512, so sparse files count what
 * they use) of every entry, found with lstat (symlinks are not followed; other filesystems mounted
 * inside are counted too), stopping after `maxEntries` entries or once `stopAtBytes` is reached.
 * Entries that vanish while it walks are skipped, as are directories it cannot read. It reads with
 * synchronous calls, {@link WALK_SLICE_ENTRIES} entries per slice, taking turns with the other
 * walks; a large directory is read in slices too. A small directory that shows no change since
 * a walk read it is not read again (see {@link listingOf}); every entry is looked at each time.
 * `startNow`: the first slice runs at once, in the call (for a walk expected to be small, awaited
 * by the caller), instead of at its turn.
 */
export async function homeUsage(dir: string, maxEntries = 200_000, stopAtBytes = Number.POSITIVE_INFINITY, startNow = false): Promise<HomeUsage> {
  if (!startNow) await nextSlice();
  const startedMs = Date.now();
  let bytes = 0;
  let seen = 0;
  let slice = WALK_SLICE_ENTRIES;
  // Paths are bytes: a name that is not UTF-8 must not hide what is under it.
  const root = Buffer.from(dir);
  let rootStats;
  try {
    rootStats = lstatSync(root, { throwIfNoEntry: false });
  } catch {
    rootStats = undefined;
  }
  const stack: { path: Buffer; stats: DirectoryStats | undefined }[] = [{ path: root, stats: rootStats }];
  while (stack.length > 0) {
    const current = stack.pop()!;
    const names = listingOf(current.path, current.stats, startedMs) ?? namesIn(current.path, current.stats?.size ?? 0);
    if (names === undefined) continue;
    try {
      for (let name = names.next(); name !== null; name = names.next()) {
        if ((seen += 1) > maxEntries || bytes >= stopAtBytes) return { bytes, complete: false };
        const path = Buffer.concat([current.path, SLASH, name]);
        let stats;
        try {
          stats = lstatSync(path, { throwIfNoEntry: false });
        } catch {
          stats = undefined;
        }
        if (stats !== undefined) {
          bytes += stats.blocks * 512;
          if (stats.isDirectory()) stack.push({ path, stats });
        }
        if ((slice -= 1) === 0) {
          slice = WALK_SLICE_ENTRIES;
          await nextSlice();
        }
      }
    } finally {
      names.close();
    }
  }
  return { bytes, complete: true };
}

const SLASH = Buffer.from('/');

/** What a walk keeps of a directory's lstat to know it unchanged (see {@link listingOf}). */
type DirectoryStats = Pick<Stats, 'dev' | 'ino' | 'size' | 'mtimeMs' | 'ctimeMs'>;

/** A directory's names as a walk read them, with its lstat then. */
interface Listing {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  /** When they were read, ms since the epoch. */
  readonly readMs: number;
  readonly names: readonly Buffer[];
}

/**
 * How long before a walk a directory must have last changed (its ctime) for the names the walk
 * reads to be kept, in ms: a change in the same tick of the filesystem's clock as the one before
 * (timestamps are coarse, a second on some filesystems) would leave the ctime as it was.
 */
export const LISTING_SETTLED_MS = 2_000;
/** How long kept names are used before the directory is read again however unchanged it looks, in ms. */
export const LISTING_MAX_AGE_MS = 10_000;
/** The most names kept over all directories; past it every kept listing is dropped. */
export const LISTING_MAX_NAMES = 50_000;

/** Names of directories walked, by path (latin1 of its bytes). */
const listings = new Map<string, Listing>();
let listedNames = 0;
let directoryReadsValue = 0;

/** Directories {@link homeUsage} has read so far (a listing, or a handle opened), in this process. */
export function directoryReads(): number {
  return directoryReadsValue;
}

/**
 * The names in directory `path` (lstat `stats`) for a walk started at `walkStartMs`: those a
 * walk read before, while its device, inode, size, mtime and ctime are as they were then and at
 * most {@link LISTING_MAX_AGE_MS} old; else read now, and kept when the directory is small (one
 * readdir) and its ctime at least {@link LISTING_SETTLED_MS} before the walk started. Adding,
 * removing or renaming an entry changes a directory's mtime and ctime, and no process can set a
 * ctime back, so the names kept are the directory's. Undefined for a directory read in slices or
 * not readable (the caller reads it itself). What the names hold is looked at on every walk.
 */
function listingOf(path: Buffer, stats: DirectoryStats | undefined, walkStartMs: number): DirectoryNames | undefined {
  if (stats === undefined || stats.size <= 0 || stats.size > WALK_LIST_BYTES) return undefined;
  const key = path.toString('latin1');
  const known = listings.get(key);
  let names: readonly Buffer[];
  if (
    known !== undefined &&
    known.dev === stats.dev &&
    known.ino === stats.ino &&
    known.size === stats.size &&
    known.mtimeMs === stats.mtimeMs &&
    known.ctimeMs === stats.ctimeMs &&
    walkStartMs - known.readMs <= LISTING_MAX_AGE_MS &&
    walkStartMs >= known.readMs
  ) {
    names = known.names;
  } else {
    if (known !== undefined) {
      listings.delete(key);
      listedNames -= known.names.length;
    }
    try {
      directoryReadsValue += 1;
      names = readdirSync(path, { encoding: 'buffer' });
    } catch {
      return undefined;
    }
    if (stats.ctimeMs <= walkStartMs - LISTING_SETTLED_MS) {
      if (listedNames + names.length > LISTING_MAX_NAMES) {
        listings.clear();
        listedNames = 0;
      }
      listings.set(key, { dev: stats.dev, ino: stats.ino, size: stats.size, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs, readMs: walkStartMs, names });
      listedNames += names.length;
    }
  }
  let at = 0;
  return { next: () => (at < names.length ? names[at++]! : null), close: () => undefined };
}

/** The names in a directory, one at a time (null after the last), and a close to call after them. */
interface DirectoryNames {
  next(): Buffer | null;
  close(): void;
}

/**
 * The names in the directory `path` of size `size` (st_size, 0 when unknown), as bytes: listed in
 * one readdir when it is at most {@link WALK_LIST_BYTES}, else read through a directory handle, so
 * that a directory of a million names is read a slice at a time. Undefined when it cannot be
 * opened; a read that fails later ends the names.
 */
function namesIn(path: Buffer, size: number): DirectoryNames | undefined {
  directoryReadsValue += 1;
  if (size > 0 && size <= WALK_LIST_BYTES) {
    let names: Buffer[];
    try {
      names = readdirSync(path, { encoding: 'buffer' });
    } catch {
      return undefined;
    }
    let at = 0;
    return { next: () => (at < names.length ? names[at++]! : null), close: () => undefined };
  }
  let handle: Dir;
  try {
    // Node reads names as bytes with encoding 'buffer' here too; its types allow only text encodings.
    handle = opendirSync(path, { bufferSize: 128, encoding: 'buffer' as BufferEncoding });
  } catch {
    return undefined;
  }
  let open = true;
  return {
    next: () => {
      if (!open) return null;
      try {
        const name: unknown = handle.readSync()?.name;
        return Buffer.isBuffer(name) ? name : typeof name === 'string' ? Buffer.from(name) : null;
      } catch {
        return null;
      }
    },
    close: () => {
      if (!open) return;
      open = false;
      try {
        handle.closeSync();
      } catch {
        // Closed already (a read that failed may close it): nothing to release.
      }
    },
  };
}

/** `bytes` in the largest binary unit that keeps it at least 1, e.g. `1 GiB`, `64 MiB`, `300.5 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

/** A home to measure: its agent, host path and limit in bytes. */
export interface WatchedHome {
  readonly agent: string;
  readonly dir: string;
  readonly limitBytes: number;
  /**
   * True when the home is a filesystem of its own (a home image mounted at `dir`): its statfs
   * then bounds what a walk can find, and a walk runs only when that bound is over the limit.
   */
  readonly ownFilesystem?: boolean;
}

/**
 * Bytes in use on the filesystem mounted at `dir` ((f_blocks − f_bfree) × f_bsize, metadata and
 * the journal included), or undefined when statfs fails. For a home image it is at least the
 * allocated size of every file in it (what {@link homeUsage} sums).
 */
export function filesystemUsedBytes(dir: string): number | undefined {
  try {
    const s = statfsSync(dir);
    return (s.blocks - s.bfree) * s.bsize;
  } catch {
    return undefined;
  }
}

/**
 * How much longer than its own last walk a home waits before it is walked again: a home whose
 * walk takes 50 ms is walked at most every second, one whose walk takes 500 ms every 10 s. Walks
 * take turns on the supervisor's thread ({@link homeUsage}), so a walk's duration counts the
 * slices of the walks beside it: walking homes takes at most about 1/20 of the supervisor's time.
 */
export const HOME_WALK_SPACING = 20;

/**
 * Measures agents' homes in the background against their limits: {@link scan} measures each home
 * given that is not already being walked and was last measured at least `everyMs` ago (and at
 * least {@link HOME_WALK_SPACING} times its last walk's duration ago): a home with a filesystem of
 * its own whose statfs shows no more than its limit in use is done with that one call; any other
 * is walked ({@link homeUsage}, stopping just past the limit). `over(home, usedBytes)` is called
 * when a walk finds a home past its limit. An error thrown by `over` is logged (as `home walk
 * failed`, with the agent) on `logger`, default silent.
 */
export class HomeWatch {
  private readonly walking = new Set<string>();
  /** Per agent, when its home may be measured again (ms since the epoch). */
  private readonly nextMs = new Map<string, number>();
  private roundAtMs = Number.NEGATIVE_INFINITY;
  private walksValue = 0;

  constructor(
    private readonly everyMs: number,
    private readonly over: (home: WatchedHome, usedBytes: number) => void,
    private readonly logger: Logger = silentLogger,
    private readonly usedBytesOf: (dir: string) => number | undefined = filesystemUsedBytes,
  ) {}

  /** Walks started so far (a home settled by its statfs alone is not counted). */
  get walks(): number {
    return this.walksValue;
  }

  /**
   * Starts the measurements that are due (`nowMs` in ms since the epoch); returns at once.
   * `homes` is iterated at most once per `everyMs`; homes not in it are forgotten.
   */
  scan(homes: Iterable<WatchedHome>, nowMs: number): void {
    if (nowMs - this.roundAtMs < this.everyMs) return;
    this.roundAtMs = nowMs;
    const seen = new Set<string>();
    for (const home of homes) {
      seen.add(home.agent);
      if (this.walking.has(home.agent) || nowMs < (this.nextMs.get(home.agent) ?? Number.NEGATIVE_INFINITY)) continue;
      if (home.ownFilesystem === true) {
        const used = this.usedBytesOf(home.dir);
        if (used !== undefined && used <= home.limitBytes) {
          this.nextMs.set(home.agent, nowMs + this.everyMs);
          continue;
        }
      }
      this.walking.add(home.agent);
      this.walksValue += 1;
      const startedMs = Date.now();
      homeUsage(home.dir, 200_000, home.limitBytes + 1)
        .then((usage) => {
          if (usage.bytes > home.limitBytes) this.over(home, usage.bytes);
        })
        .catch((error: unknown) => this.logger.error({ err: error, agent: home.agent, dir: home.dir }, 'home walk failed'))
        .finally(() => {
          this.walking.delete(home.agent);
          this.nextMs.set(home.agent, nowMs + Math.max(this.everyMs, (Date.now() - startedMs) * HOME_WALK_SPACING));
        });
    }
    for (const agent of this.nextMs.keys()) if (!seen.has(agent) && !this.walking.has(agent)) this.nextMs.delete(agent);
  }
}

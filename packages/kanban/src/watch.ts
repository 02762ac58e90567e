import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { silentLogger, type Logger } from '@warren/core';
import { isTaskFileName } from './load.js';
import type { BoardChangeEvent, BoardSnapshot, BoardWatcher, FileSignatureInfo } from './types.js';

/** Options of {@link watchBoard}. */
export interface WatchBoardOptions {
  /** Events are batched until none arrived for this long (ms); default 50. A burst is cut at 20× this. */
  readonly debounceMs?: number;
  /** Every this many ms the board is rescanned (file stats compared), catching events fs.watch missed; default 2000. */
  readonly rescanIntervalMs?: number;
  /** Where watch failures and errors thrown by `onChange` go; default silent. */
  readonly logger?: Logger;
  /**
   * More files and folders (absolute, or relative to the board folder) whose changes count, found by
   * the periodic rescan (a folder: its `*.md` files). For other formats pass `boardWatchPaths(snapshot)`:
   * the Obsidian board note, Backlog.md `config.yml` and `completed/`, a JSON-config file and its `tasksDir`.
   */
  readonly paths?: readonly string[];
}

type Signatures = Map<string, string>;

function signatureOf(info: FileSignatureInfo): string {
  return `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
}

/** A rescan stats files synchronously for at most about this long (ms) before letting the event loop run. */
const STAT_SLICE_MS = 2;
/** A stat slower than this (ms) is slow (a busy machine, or a slow file system). */
const SLOW_STAT_MS = 2;
/** After this many slow stats in one rescan the rest of it stats asynchronously. */
const MAX_SLOW_STATS = 3;

/**
 * The signatures of the files at `paths` (a missing file has none), in `paths` order. The stats
 * are made synchronously in slices of about {@link STAT_SLICE_MS}, the event loop running between
 * slices: on a local file system a stat whose inode is cached takes a few microseconds, several
 * times less CPU than a stat through the thread pool. Once {@link MAX_SLOW_STATS} have taken
 * longer than {@link SLOW_STAT_MS} each, the rest go through the thread pool, so a slow file
 * system never holds the event loop for long.
 */
export async function statSignatures(paths: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let i = 0;
  let slowStats = 0;
  while (i < paths.length) {
    const sliceStart = performance.now();
    let slow = false;
    while (i < paths.length) {
      const path = paths[i]!;
      i += 1;
      const before = performance.now();
      try {
        const info = statSync(path, { throwIfNoEntry: false });
        if (info) out.set(path, signatureOf(info));
      } catch {
        // Unreadable now: as if missing.
      }
      const after = performance.now();
      if (after - before > SLOW_STAT_MS) {
        slowStats += 1;
        slow = slowStats >= MAX_SLOW_STATS;
      }
      if (slow || after - sliceStart >= STAT_SLICE_MS) break;
    }
    if (slow) {
      for (; i < paths.length; i += 1) {
        try {
          out.set(paths[i]!, signatureOf(await stat(paths[i]!)));
        } catch {
          // Missing now.
        }
      }
      break;
    }
    if (i < paths.length) await new Promise<void>((resume) => setImmediate(resume));
  }
  return out;
}

class Watcher implements BoardWatcher {
  private readonly tasksDir: string;
  private readonly boardFile: string;
  private readonly debounceMs: number;
  private readonly extraPaths: string[];
  private readonly log: Logger;
  private dirWatcher: FSWatcher | undefined;
  private tasksWatcher: FSWatcher | undefined;
  private tasksIno: number | undefined;
  private readonly pending = new Set<string>();
  private debounceTimer: NodeJS.Timeout | undefined;
  private burstStartedMs: number | undefined;
  private readonly rescanTimer: NodeJS.Timeout;
  private rescanning: Promise<void> | undefined;
  private signatures: Signatures;
  private closed = false;
  private closing: Promise<void> | undefined;
  /**
   * Renames of task files by the caller's own writes ({@link beforeRename}) whose event has not
   * come yet: by path, how many, and since when (ms).
   */
  private readonly expected = new Map<string, { count: number; sinceMs: number }>();
  private readonly expectMs: number;

  constructor(
    private readonly dir: string,
    private readonly onChange: (event: BoardChangeEvent) => void | Promise<void>,
    options: WatchBoardOptions,
  ) {
    this.tasksDir = join(dir, 'tasks');
    this.boardFile = join(dir, 'board.yaml');
    this.debounceMs = options.debounceMs ?? 50;
    this.extraPaths = (options.paths ?? []).map((p) => resolve(dir, p));
    this.log = options.logger ?? silentLogger;
    this.expectMs = Math.max(1000, options.rescanIntervalMs ?? 2000);
    this.signatures = this.scanSync();
    this.ensureWatchers();
    this.rescanTimer = setInterval(() => {
      this.rescan().catch((error: unknown) => this.log.warn({ err: error, dir: this.dir }, 'board rescan failed'));
    }, options.rescanIntervalMs ?? 2000);
  }

  private ensureWatchers(): void {
    if (this.closed) return;
    if (!this.dirWatcher) {
      this.dirWatcher = this.start(this.dir, (name) => {
        if (name === 'board.yaml') this.note(this.boardFile);
        if (name === 'tasks' || name === null) {
          this.note(this.tasksDir);
          this.ensureWatchers();
        }
      }, () => {
        this.dirWatcher = undefined;
      });
    }
    let ino: number | undefined;
    try {
      ino = statSync(this.tasksDir).ino;
    } catch {
      ino = undefined;
    }
    if (this.tasksWatcher && ino !== this.tasksIno) {
      // The folder was removed or replaced: the old watch sees nothing any more.
      this.tasksWatcher.close();
      this.tasksWatcher = undefined;
    }
    if (!this.tasksWatcher && ino !== undefined) {
      this.tasksIno = ino;
      this.tasksWatcher = this.start(this.tasksDir, (name, eventType) => {
        if (name === null) this.note(this.tasksDir);
        else if (isTaskFileName(name)) {
          const path = join(this.tasksDir, name);
          // The rename of the caller's own write (announced by beforeRename) is not a change.
          if (eventType !== 'rename' || !this.unexpect(path)) this.note(path);
        }
      }, () => {
        this.tasksWatcher = undefined;
      });
    }
  }

  private start(path: string, onName: (name: string | null, eventType: string) => void, onDead: () => void): FSWatcher | undefined {
    try {
      const watcher = watch(path, { persistent: true }, (event, name) => onName(name === null ? null : String(name), event));
      watcher.on('error', (error) => {
        this.log.warn({ err: error, path }, 'board watch failed; relying on rescans until it can be restarted');
        watcher.close();
        onDead();
      });
      return watcher;
    } catch (error) {
      this.log.debug({ err: error, path }, 'cannot watch the path yet; rescans will retry');
      return undefined;
    }
  }

  private note(path: string): void {
    if (this.closed) return;
    this.pending.add(path);
    const nowMs = Date.now();
    this.burstStartedMs ??= nowMs;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    const remainingMs = Math.max(0, this.burstStartedMs + this.debounceMs * 20 - nowMs);
    this.debounceTimer = setTimeout(() => this.flush(), Math.min(this.debounceMs, remainingMs));
  }

  private flush(): void {
    this.debounceTimer = undefined;
    this.burstStartedMs = undefined;
    if (this.closed || this.pending.size === 0) return;
    const paths = [...this.pending].sort();
    this.pending.clear();
    try {
      const result = this.onChange({ paths });
      if (result && typeof result.then === 'function') {
        result.catch((error: unknown) => this.log.error({ err: error }, 'board change handler failed'));
      }
    } catch (error) {
      this.log.error({ err: error }, 'board change handler failed');
    }
  }

  private scanSync(): Signatures {
    const out: Signatures = new Map();
    const add = (path: string): void => {
      try {
        out.set(path, signatureOf(statSync(path)));
      } catch {
        // Missing now; a later appearance is a change.
      }
    };
    add(this.boardFile);
    let names: string[] = [];
    try {
      names = readdirSync(this.tasksDir);
    } catch {
      names = [];
    }
    for (const name of names) if (isTaskFileName(name)) add(join(this.tasksDir, name));
    for (const extra of this.extraPaths) {
      add(extra);
      try {
        for (const name of readdirSync(extra)) if (isTaskFileName(name)) add(join(extra, name));
      } catch {
        // a file, or missing
      }
    }
    return out;
  }

  private async scan(): Promise<Signatures> {
    const paths = [this.boardFile];
    try {
      for (const name of await readdir(this.tasksDir)) if (isTaskFileName(name)) paths.push(join(this.tasksDir, name));
    } catch {
      // No tasks folder (yet).
    }
    for (const extra of this.extraPaths) {
      paths.push(extra);
      try {
        for (const name of await readdir(extra)) if (isTaskFileName(name)) paths.push(join(extra, name));
      } catch {
        // a file, or missing
      }
    }
    return statSignatures(paths);
  }

  seen(path: string, info: { readonly ino: number; readonly size: number; readonly mtimeMs: number; readonly ctimeMs: number }): void {
    const absolute = resolve(path);
    if (this.closed || (!this.signatures.has(absolute) && !this.scans(absolute))) return;
    this.signatures.set(absolute, signatureOf(info));
  }

  beforeRename(path: string): { renamed(info: FileSignatureInfo | undefined): void; failed(): void } {
    const absolute = resolve(path);
    if (this.closed || !this.tasksWatcher || dirname(absolute) !== this.tasksDir || !isTaskFileName(basename(absolute))) {
      return { renamed: () => undefined, failed: () => undefined };
    }
    const entry = this.expected.get(absolute);
    if (entry) entry.count += 1;
    else this.expected.set(absolute, { count: 1, sinceMs: Date.now() });
    let settled = false;
    return {
      renamed: (info) => {
        if (settled) return;
        settled = true;
        // The rescan then reports the file only when it changes after this write.
        if (info) this.seen(absolute, info);
      },
      failed: () => {
        if (settled) return;
        settled = true;
        this.unexpect(absolute);
      },
    };
  }

  /** Takes back one expected own rename of `path`. @returns whether one was expected. */
  private unexpect(path: string): boolean {
    const entry = this.expected.get(path);
    if (!entry) return false;
    entry.count -= 1;
    if (entry.count === 0) this.expected.delete(path);
    return true;
  }

  /**
   * Reports the paths whose own rename was announced over `expectMs` ago and has not been seen
   * (the watch died, or missed it): they are read again, as for any change.
   */
  private expireExpected(nowMs: number): void {
    for (const [path, entry] of this.expected) {
      if (nowMs - entry.sinceMs < this.expectMs) continue;
      this.expected.delete(path);
      this.note(path);
    }
  }

  /** Whether a rescan looks at `path` (`board.yaml`, a task file, an extra path or a task file in one). */
  private scans(path: string): boolean {
    if (path === this.boardFile || this.extraPaths.includes(path)) return true;
    const dir = dirname(path);
    const name = path.slice(dir.length + 1);
    return isTaskFileName(name) && (dir === this.tasksDir || this.extraPaths.includes(dir));
  }

  private rescan(): Promise<void> {
    if (this.closed || this.rescanning) return this.rescanning ?? Promise.resolve();
    this.rescanning = (async () => {
      try {
        this.expireExpected(Date.now());
        this.ensureWatchers();
        const next = await this.scan();
        if (this.closed) return;
        for (const [path, signature] of next) if (this.signatures.get(path) !== signature) this.note(path);
        for (const path of this.signatures.keys()) if (!next.has(path)) this.note(path);
        this.signatures = next;
      } catch (error) {
        this.log.warn({ err: error, dir: this.dir }, 'board rescan failed');
      } finally {
        this.rescanning = undefined;
      }
    })();
    return this.rescanning;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      clearInterval(this.rescanTimer);
      if (this.debounceTimer) clearTimeout(this.debounceTimer);
      this.debounceTimer = undefined;
      this.pending.clear();
      this.expected.clear();
      this.dirWatcher?.close();
      this.tasksWatcher?.close();
      this.dirWatcher = undefined;
      this.tasksWatcher = undefined;
      await this.rescanning;
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Watches a board folder: `fs.watch` on the folder (for `board.yaml` and the `tasks` folder
 * itself) and on `tasks/` (for task files, see `isTaskFileName`), batched by `debounceMs`; plus a
 * rescan every `rescanIntervalMs` that compares file stats (inode, size, mtime, ctime) with the
 * previous scan, because fs.watch can miss events and dies when a folder is replaced. Watches that
 * die are restarted at the next rescan; a folder that does not exist yet is picked up when it appears.
 *
 * A caller that writes task files itself passes the watcher as the write's `replaceObserver`
 * (`UpdateTaskOptions`): the one rename event its write makes is then not reported (any other
 * event for that file is, and a rename whose event has not come within the rescan interval, or
 * 1 s, is reported then), and the new file's fstat becomes its signature for the rescan.
 *
 * Events can be spurious or repeated (the caller should compare content hashes); an edit is
 * reported within about `debounceMs`, or `rescanIntervalMs` when fs.watch misses it. `onChange` is
 * never called after `close()` starts; errors it throws (or rejects with) go to the logger.
 *
 * @param dir the board folder.
 * @param onChange called with the absolute paths that changed.
 * @returns the watcher; close it (it keeps the process alive until then).
 */
export function watchBoard(
  dir: string,
  onChange: (event: BoardChangeEvent) => void | Promise<void>,
  options: WatchBoardOptions = {},
): BoardWatcher {
  return new Watcher(resolve(dir), onChange, options);
}

/**
 * The paths besides `board.yaml` and `tasks/` whose changes matter for a snapshot's format, for
 * {@link WatchBoardOptions.paths}: the config file (`configPath`) and every folder holding task
 * files or notes of the snapshot.
 */
export function boardWatchPaths(snapshot: Pick<BoardSnapshot, 'configPath' | 'tasks'>): string[] {
  const out = new Set<string>();
  if (snapshot.configPath !== undefined) out.add(snapshot.configPath);
  for (const task of snapshot.tasks) out.add(dirname(task.path));
  return [...out].sort();
}

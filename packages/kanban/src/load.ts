import { constants as fsConstants, open as openFd, type Dirent, type Stats } from 'node:fs';
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { loadBoardConfig } from './config.js';
import { BoardConfigError, TaskFileError } from './errors.js';
import { taskParser } from './task.js';
import { closeOf, fstatOf, openNoFollow, readToEnd } from './fd-io.js';
import { rememberFile } from './recent-files.js';
import { displayPath, MAX_TASK_FILE_BYTES, sha256Hex } from './text.js';
import type { BoardSnapshot, LoadBoardOptions, Task } from './types.js';

/** How many task files are read at once. */
const READ_CONCURRENCY = 16;

/** Code-unit order, the same on every machine (no locale). */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Whether `path` lies strictly below the directory `root` (both absolute; compared as written, no
 * symlinks resolved): false for `root` itself, for `..`-escapes and for another drive or root.
 */
export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep);
}

/**
 * The names `loadBoard` reads in `<board>/tasks`: `*.md`, not starting with `.` (editor lock and
 * swap files), sorted by code unit.
 */
export function isTaskFileName(name: string): boolean {
  return name.endsWith('.md') && !name.startsWith('.');
}

/**
 * Reads a board: `<dir>/board.yaml` and every task file in `<dir>/tasks` (see
 * {@link isTaskFileName}). A missing `tasks` folder is an empty board.
 *
 * Each file that cannot be used gives exactly one {@link TaskFileError} and is left out of
 * `tasks`; the rest load. Besides parse problems (see `parseTaskFile`): a file over 1 MiB (checked
 * before reading), a symlink (or any path) that resolves outside the board folder, a dangling
 * symlink, something that is not a regular file, a file that cannot be read (line 0 for these),
 * and an id already used by an earlier file in name order (the later file is the error, on its
 * `id` line, naming the first file).
 *
 * @param dir the board folder.
 * @param options `displayRoot`: paths in messages are relative to it (default: the board's parent).
 * @throws {BoardConfigError} when `board.yaml` is unusable or `tasks` exists but cannot be listed.
 */
export async function loadWarrenBoard(dir: string, options: LoadBoardOptions = {}): Promise<BoardSnapshot> {
  const boardDir = resolve(dir);
  const root = options.displayRoot === undefined ? dirname(boardDir) : resolve(options.displayRoot);
  const config = await loadBoardConfig(boardDir, { displayRoot: root });
  const tasksDir = join(boardDir, 'tasks');
  let entries: Dirent[];
  try {
    entries = await readdir(tasksDir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { dir: boardDir, format: 'warren', configPath: join(boardDir, 'board.yaml'), config, tasks: [], errors: [] };
    throw new BoardConfigError(
      { path: tasksDir, line: 0, reason: `cannot list the task folder: ${(error as Error).message}`, displayPath: displayPath(root, tasksDir) },
      { cause: error },
    );
  }
  const realBoard = await realpath(boardDir);
  const realTasksDir = await realpath(tasksDir);
  const names = entries.map((e) => e.name).filter(isTaskFileName).sort(byName);

  const results = await readAndParse(
    names.map((name) => join(tasksDir, name)),
    realBoard,
    root,
    taskParser(config, boardDir, { displayRoot: root }),
    { realDir: realTasksDir },
  );
  const { parsed, errors } = keepFirstById(results, root, options.keepPathOf ? { keepPathOf: options.keepPathOf } : {});
  const tasks = parsed.map((p) => p.task);
  return { dir: boardDir, format: 'warren', configPath: join(boardDir, 'board.yaml'), config, tasks, errors };
}

/**
 * Reads one board file safely: refuses (as a {@link TaskFileError} on line 0) a path that resolves
 * outside `realBoard`, a dangling symlink, something that is not a regular file, a file over
 * {@link MAX_TASK_FILE_BYTES} (checked before reading) and a file that cannot be read.
 *
 * @param path the file as listed; @param realBoard the board folder resolved through symlinks;
 * @param root paths in messages are relative to it.
 */
export async function readBoardFile(path: string, realBoard: string, root: string, options: ReadBoardFileOptions = {}): Promise<Buffer | TaskFileError> {
  return readInBoard(path, realBoard, root, options.realDir !== undefined && isInside(realBoard, options.realDir));
}

/** {@link readBoardFile}; `inRealDir`: the file's folder is known to be inside `realBoard`. */
async function readInBoard(path: string, realBoard: string, root: string, inRealDir: boolean): Promise<Buffer | TaskFileError> {
  const read = await readInBoardWithInfo(path, realBoard, root, inRealDir);
  if (read instanceof TaskFileError) return read;
  if ('missing' in read) {
    return new TaskFileError({ path, line: 0, reason: `cannot read the file: ${read.missing.message}`, displayPath: displayPath(root, path) }, { cause: read.missing });
  }
  return read.bytes;
}

/** The file's bytes and, when it was read through one descriptor, that descriptor's fstat. */
interface BoardFileRead {
  readonly bytes: Buffer;
  readonly info: Stats | undefined;
}

/**
 * {@link readInBoard} that also returns the fstat of a plain file's read (for a watcher's
 * signature), and `{ missing }` (lstat's ENOENT) when nothing is at `path` (not even a dangling symlink).
 */
async function readInBoardWithInfo(path: string, realBoard: string, root: string, inRealDir: boolean): Promise<BoardFileRead | TaskFileError | { missing: Error }> {
  const problem = (reason: string, cause?: unknown): TaskFileError =>
    new TaskFileError({ path, line: 0, reason, displayPath: displayPath(root, path) }, cause === undefined ? undefined : { cause });
  if (inRealDir) {
    const read = await readPlainFile(path);
    if (read !== 'not plain' && 'bytes' in read) return read;
    // Anything but a plain file (a symlink, a missing file): the checks below say what it is.
    if (read !== 'not plain') return problem(read.reason, read.cause);
  }
  try {
    let link: Stats;
    try {
      link = await lstat(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { missing: error as Error };
      throw error;
    }
    let target: string;
    try {
      target = await realpath(path);
    } catch (error) {
      if (link.isSymbolicLink()) return problem('a symlink to a file that does not exist', error);
      throw error;
    }
    if (!isInside(realBoard, target)) {
      return problem(`${link.isSymbolicLink() ? 'a symlink' : 'a path'} that leads outside the board (to ${target})`);
    }
    const info = await stat(target);
    if (!info.isFile()) return problem('not a regular file');
    if (info.size > MAX_TASK_FILE_BYTES) {
      return problem(`the file is ${info.size} bytes; task files may be at most ${MAX_TASK_FILE_BYTES} bytes (1 MiB)`);
    }
    return { bytes: await readFile(target), info: undefined };
  } catch (error) {
    return problem(`cannot read the file: ${(error as Error).message}`, error);
  }
}

/** Options of {@link readBoardFile}. */
export interface ReadBoardFileOptions {
  /**
   * The folder holding the file, resolved through symlinks, when the caller knows it. A file there
   * that is not a symlink then needs no per-file path resolution: it is opened without following
   * links (and without blocking, should it be a FIFO) and checked on its descriptor, four calls
   * instead of seven.
   */
  readonly realDir?: string;
}

/**
 * Opens `path` with O_NOFOLLOW | O_NONBLOCK and reads it if it is a regular file within
 * {@link MAX_TASK_FILE_BYTES}. @returns its bytes with the descriptor's fstat, a problem to report,
 * or `'not plain'` when the path is a symlink or missing (for the careful path to describe).
 */
async function readPlainFile(path: string): Promise<BoardFileRead | 'not plain' | { reason: string; cause?: unknown }> {
  let fd: number;
  try {
    fd = await openNoFollow(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOENT') return 'not plain';
    return { reason: `cannot read the file: ${(error as Error).message}`, cause: error };
  }
  let result: BoardFileRead | { reason: string; cause?: unknown };
  try {
    const info = await fstatOf(fd);
    if (!info.isFile()) result = { reason: 'not a regular file' };
    else if (info.size > MAX_TASK_FILE_BYTES) {
      result = { reason: `the file is ${info.size} bytes; task files may be at most ${MAX_TASK_FILE_BYTES} bytes (1 MiB)` };
    } else {
      result = { bytes: await readToEnd(fd, info.size), info };
      // For a card write of these bytes (which then needs no read of its own).
      rememberFile(path, result.bytes, info);
    }
  } catch (error) {
    result = { reason: `cannot read the file: ${(error as Error).message}`, cause: error };
  }
  await closeOf(fd);
  return result;
}

/**
 * Reads a small file a person names on the command line (a mapping file): opened with O_NONBLOCK,
 * so a FIFO does not hang, and checked on its descriptor to be a regular file of at most
 * {@link MAX_TASK_FILE_BYTES} before it is read, so `/dev/zero` is not read without end. Symlinks
 * are followed.
 * @returns the file's bytes.
 * @throws {Error} `not a regular file (a FIFO)`, `the file is N bytes; at most … (1 MiB) are read`,
 *   or the system's error from open or read.
 */
export async function readSmallFile(path: string): Promise<Buffer> {
  const fd = await new Promise<number>((done, fail) => {
    openFd(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK, (error, opened) => (error ? fail(error) : done(opened)));
  });
  try {
    const info = await fstatOf(fd);
    if (!info.isFile()) throw new Error(`not a regular file (${kindOf(info)})`);
    if (info.size > MAX_TASK_FILE_BYTES) throw new Error(`the file is ${info.size} bytes; at most ${MAX_TASK_FILE_BYTES} bytes (1 MiB) are read`);
    return await readToEnd(fd, info.size);
  } finally {
    await closeOf(fd).catch(() => undefined);
  }
}

function kindOf(info: Stats): string {
  if (info.isFIFO()) return 'a FIFO';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isDirectory()) return 'a directory';
  if (info.isSocket()) return 'a socket';
  return 'not a plain file';
}

/** Runs `fn` over `items` with at most {@link READ_CONCURRENCY} at once; results keep the input order. */
export async function mapConcurrent<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let nextIndex = 0;
  const worker = async (): Promise<void> => {
    while (nextIndex < items.length) {
      const index = nextIndex;
      nextIndex += 1;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, items.length) }, worker));
  return results;
}

/**
 * Reads board files safely ({@link readBoardFile}) with bounded concurrency and parses each with
 * `parse`; a file that cannot be read, or whose `parse` throws a {@link TaskFileError}, becomes that
 * error. Results keep the order of `paths`. `options.realDir`: see {@link ReadBoardFileOptions}
 * (every path must then be in that folder).
 */
export async function readAndParse<P>(
  paths: readonly string[],
  realBoard: string,
  root: string,
  parse: (path: string, bytes: Buffer) => P,
  options: ReadBoardFileOptions = {},
): Promise<(P | TaskFileError)[]> {
  const inRealDir = options.realDir !== undefined && isInside(realBoard, options.realDir);
  return mapConcurrent(paths, async (path) => {
    const bytes = await readInBoard(path, realBoard, root, inRealDir);
    if (bytes instanceof TaskFileError) return bytes;
    try {
      return parse(path, bytes);
    } catch (error) {
      if (error instanceof TaskFileError) return error;
      throw error;
    }
  });
}

/**
 * Splits parse results into the parsed tasks and the errors, in order; a task whose id (compared by
 * `key`) another file already uses becomes one error on its id line naming that file, so no task
 * is loaded twice. The file that keeps the id is the one `keepPathOf(id)` names when it is among
 * them, else the first in order.
 * @param field the id's field name in this format, for the error.
 */
export function keepFirstById<P extends { readonly task: Task; readonly idLine: number }>(
  results: readonly (P | TaskFileError)[],
  root: string,
  options: { readonly key?: (id: string) => string; readonly field?: string; readonly keepPathOf?: ((id: string) => string | undefined) | undefined } = {},
): { parsed: P[]; errors: TaskFileError[] } {
  const key = options.key ?? ((id: string) => id);
  const parsed: P[] = [];
  const errors: TaskFileError[] = [];
  const first = new Map<string, Task>();
  const keeper = new Map<string, Task>();
  if (options.keepPathOf) {
    const seen = new Set<string>();
    for (const result of results) {
      if (result instanceof TaskFileError) continue;
      const k = key(result.task.id);
      if (!seen.has(k)) {
        seen.add(k);
        continue;
      }
      if (keeper.has(k)) continue;
      const path = options.keepPathOf(result.task.id);
      const kept = path === undefined ? undefined : results.find((r): r is P => !(r instanceof TaskFileError) && key(r.task.id) === k && r.task.path === path);
      if (kept) keeper.set(k, kept.task);
    }
  }
  for (const result of results) {
    if (result instanceof TaskFileError) {
      errors.push(result);
      continue;
    }
    const k = key(result.task.id);
    const kept = keeper.get(k);
    const earlier = kept ? (kept === result.task ? undefined : kept) : first.get(k);
    if (earlier) {
      errors.push(
        new TaskFileError({
          path: result.task.path,
          line: result.idLine,
          field: options.field ?? 'id',
          reason: `id '${result.task.id}' is already used by ${displayPath(root, earlier.path)}`,
          displayPath: displayPath(root, result.task.path),
        }),
      );
      continue;
    }
    first.set(k, result.task);
    parsed.push(result);
  }
  return { parsed, errors };
}

/** Position of each task in a snapshot's `tasks`, by path; built once per array. */
const pathIndexes = new WeakMap<readonly Task[], Map<string, number>>();

/**
 * The index of `tasks` by path. A caller may replace a task in place with a newer version of the
 * same file (the supervisor does after its own writes), so a lookup must check the path of the
 * task it finds.
 */
function taskPathIndex(tasks: readonly Task[]): Map<string, number> {
  let index = pathIndexes.get(tasks);
  if (index === undefined) {
    index = new Map(tasks.map((task, i) => [task.path, i]));
    pathIndexes.set(tasks, index);
  }
  return index;
}

/** Options of {@link refreshWarrenBoard}: those of a load, and two hooks for the supervisor. */
export interface RefreshBoardOptions extends LoadBoardOptions {
  /**
   * The task Warren itself has just written to `path` with bytes of sha256 `hash` (hex), as
   * `applyOwnedChanges` gives it, when the snapshot does not have it yet: used instead of parsing
   * those bytes (parsing them gives an equal task). Undefined to parse.
   */
  readonly writtenTask?: ((path: string, hash: string) => Task | undefined) | undefined;
  /**
   * Called with the fstat of each file read through one descriptor (a plain file in the tasks
   * folder), taken before its bytes were read: a watcher can take it as the file's signature.
   */
  readonly onRead?: ((path: string, info: Stats) => void) | undefined;
}

/**
 * Brings a Warren board snapshot up to date after some of its files changed, reading only those
 * files (a board of N tasks costs O(changed) per edit instead of O(N)). Falls back to a full
 * {@link loadWarrenBoard} when the result could differ from one: `board.yaml` or a path outside
 * `tasks/` changed, an id now collides with another file's, or the previous snapshot held a
 * duplicate-id error (which depends on other files).
 * @param previous a snapshot of the same board made by {@link loadWarrenBoard} or this function.
 * @param changedPaths absolute paths reported by the watcher (missing files are removals).
 * @returns a new snapshot, or `previous` itself when every changed file still has the bytes it had
 *   (nothing to re-read); `previous` is not modified.
 * @throws {BoardConfigError} as {@link loadWarrenBoard} does, on the full-reload path.
 */
export async function refreshWarrenBoard(
  previous: BoardSnapshot,
  changedPaths: readonly string[],
  options: RefreshBoardOptions = {},
): Promise<BoardSnapshot> {
  const boardDir = previous.dir;
  const tasksDir = join(boardDir, 'tasks');
  const full = () => loadWarrenBoard(boardDir, options);
  const changed = [...new Set(changedPaths.map((p) => resolve(p)))];
  if (previous.format !== undefined && previous.format !== 'warren') return full();
  if (changed.some((p) => dirname(p) !== tasksDir)) return full();
  if (previous.errors.some((e) => e.field === 'id' && /is already used by/.test(e.reason))) return full();
  const root = options.displayRoot === undefined ? dirname(boardDir) : resolve(options.displayRoot);
  const realBoard = await realpath(boardDir);
  const realTasksDir = await realpath(tasksDir).catch(() => undefined);
  const index = taskPathIndex(previous.tasks);
  const knownTask = (path: string): Task | undefined => {
    const at = index.get(path);
    const task = at === undefined ? undefined : previous.tasks[at];
    return task?.path === path ? task : undefined;
  };
  const names = changed.filter((p) => isTaskFileName(p.slice(tasksDir.length + 1)));
  const parse = taskParser(previous.config, boardDir, { displayRoot: root });
  const inRealDir = realTasksDir !== undefined && isInside(realBoard, realTasksDir);
  const fresh = await mapConcurrent(names, async (path): Promise<{ task: Task; idLine: number } | TaskFileError | undefined> => {
    const read = await readInBoardWithInfo(path, realBoard, root, inRealDir);
    if (read instanceof TaskFileError) return read;
    if ('missing' in read) return undefined;
    if (read.info) options.onRead?.(path, read.info);
    // A file whose bytes are the ones already parsed (often Warren's own write, echoed by the
    // watcher), or that Warren just wrote itself, keeps its task: same bytes, same task.
    const unchanged = knownTask(path);
    const hash = sha256Hex(read.bytes);
    if (unchanged && hash === unchanged.hash) return { task: unchanged, idLine: 0 };
    const written = options.writtenTask?.(path, hash);
    if (written) return { task: written, idLine: 0 };
    try {
      return parse(path, read.bytes);
    } catch (error) {
      if (error instanceof TaskFileError) return error;
      throw error;
    }
  });
  // Nothing new read (every reported file had the bytes already parsed): the same snapshot.
  if (names.length === changed.length && names.every((path, i) => {
    const known = knownTask(path);
    const result = fresh[i];
    return known !== undefined && result !== undefined && !(result instanceof TaskFileError) && result.task === known;
  })) {
    return previous;
  }
  const byPath = new Map<string, { task: Task } | TaskFileError>();
  for (const task of previous.tasks) byPath.set(task.path, { task });
  for (const error of previous.errors) byPath.set(error.path, error);
  names.forEach((path, index) => {
    const result = fresh[index];
    if (result === undefined) byPath.delete(path);
    else byPath.set(path, result);
  });
  const tasks: Task[] = [];
  const errors: TaskFileError[] = [];
  const ids = new Set<string>();
  for (const path of [...byPath.keys()].sort((a, b) => byName(a, b))) {
    const entry = byPath.get(path)!;
    if (entry instanceof TaskFileError) {
      errors.push(entry);
      continue;
    }
    if (ids.has(entry.task.id)) return full();
    ids.add(entry.task.id);
    tasks.push(entry.task);
  }
  return { ...previous, tasks, errors };
}

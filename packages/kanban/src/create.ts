/**
 * Creating tasks: checking a draft against a board, making ids, the board's create lock, and
 * writing a new file without ever replacing one. Each format's `create` (`format.ts`,
 * `formats/*.ts`) builds on these; `createTask` in `board.ts` is the one call for callers.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, mkdir, open, rmdir, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { TaskCreateError } from './errors.js';
import { MAPPED_PRIORITIES, mapPriority, statusKey } from './mapping.js';
import { syncDirectories } from './update.js';
import type { BoardColumn, BoardSnapshot, CreateTaskOptions, TaskDraft } from './types.js';

/** The longest title a draft may have, in characters (Unicode code points). */
export const MAX_TITLE_CHARS = 200;

/** How long a create waits for the board's create lock by default (ms). */
export const DEFAULT_CREATE_LOCK_TIMEOUT_MS = 30_000;

/** A create lock older than this (ms, by its mtime) was left by a process that died; it is removed. */
const STALE_LOCK_MS = 120_000;

/** How often a create waiting for another process's lock looks again (ms). */
const LOCK_POLL_MS = 20;

/** The folder, inside the board folder, whose existence is the create lock. */
export const CREATE_LOCK_NAME = '.warren-create.lock';

/** The draft keys `checkDraft` knows; any other key is an error naming it. */
const DRAFT_KEYS = new Set(['title', 'body', 'column', 'priority', 'capabilities', 'dependsOn', 'labels', 'parent', 'command']);

/** The longest `command` a draft may carry, in characters. */
const MAX_COMMAND_CHARS = 65_536;

/** Capabilities: letters, digits and `. _ : / @ + -` (`tool:codex`, `env:no-egress`). */
const CAPABILITY = /^[\p{L}\p{N}._:/@+-]+$/u;

/** Characters no title or label may hold: controls, line and paragraph separators, lone surrogates. */
const NOT_ONE_LINE = /[\p{Cc}\p{Zl}\p{Zp}\p{Cs}]/u;

/** A draft that passed {@link checkDraft}: trimmed, the column resolved, dependencies as the board's ids. */
export interface CheckedDraft {
  readonly title: string;
  /** The body as given (empty when none). */
  readonly body: string;
  readonly column: BoardColumn;
  /** The priority as given and as one of the board's priorities (Warren) or {@link MAPPED_PRIORITIES}. */
  readonly priority: { readonly given: string; readonly value: string } | undefined;
  /** Without duplicates, in the order given. */
  readonly capabilities: string[];
  /** The ids of the board's tasks, as the board spells them; without duplicates. */
  readonly dependsOn: string[];
  /** Trimmed, without duplicates. */
  readonly labels: string[];
  /** The parent task's id as the board spells it; undefined when none. */
  readonly parent: string | undefined;
  /** The shell command the task runs (Warren boards only); undefined when none. */
  readonly command: string | undefined;
}

/** Options of {@link checkDraft}. */
export interface CheckDraftOptions {
  /** How ids are compared (Backlog.md: `backlogIdKey`, so `back-7` names `BACK-7`); default exact. */
  readonly idKey?: (id: string) => string;
}

/**
 * Checks a draft against a board (see {@link TaskDraft} for the rules) and normalizes it. Pure.
 *
 * @param where the board path shown in errors.
 * @throws {TaskCreateError} naming the first bad field: `title` (empty, only punctuation, over
 *   {@link MAX_TITLE_CHARS} characters, a control character or line break), `body` (not a string,
 *   a lone surrogate), `column` (no such column), `priority` (not one of the board's),
 *   `capabilities` (not a list, a capability with spaces or other characters), `labels`,
 *   `dependsOn` (not a list, a task not on the board), `parent` (not a string, a task not on the
 *   board), `command` (empty, NUL, too long, or on a
 *   board whose format stores none), or an unknown key.
 */
export function checkDraft(snapshot: BoardSnapshot, draft: TaskDraft, where: string, options: CheckDraftOptions = {}): CheckedDraft {
  const fail = (field: string, reason: string): never => {
    throw new TaskCreateError(where, reason, field);
  };
  if (draft === null || typeof draft !== 'object' || Array.isArray(draft)) return fail('draft', 'the draft must be an object with at least a title');
  for (const key of Object.keys(draft)) if (!DRAFT_KEYS.has(key)) fail(key, `'${key}' is not a draft field (${[...DRAFT_KEYS].join(', ')})`);

  if (typeof draft.title !== 'string') return fail('title', "'title' must be a string");
  const title = draft.title.trim();
  if (title === '') fail('title', "'title' must not be empty");
  if (NOT_ONE_LINE.test(title)) fail('title', "'title' must be one line of text, without control characters or line breaks");
  const length = [...title].length;
  if (length > MAX_TITLE_CHARS) fail('title', `'title' is ${length} characters; at most ${MAX_TITLE_CHARS} are allowed`);
  if (!/[\p{L}\p{N}\p{S}]/u.test(title)) fail('title', "'title' must hold a letter, digit or symbol, not only punctuation");

  let command: string | undefined;
  if (draft.command !== undefined) {
    if (typeof draft.command !== 'string' || draft.command.trim() === '') return fail('command', "'command' must be a non-empty string");
    if ((snapshot.format ?? 'warren') !== 'warren') return fail('command', `a ${snapshot.format} board stores no command: give the task's work in its body, for an agent whose template runs it`);
    if (draft.command.includes('\0') || /\p{Cs}/u.test(draft.command)) return fail('command', "'command' must be text without NUL characters");
    if (draft.command.length > MAX_COMMAND_CHARS) return fail('command', `'command' is ${draft.command.length} characters; at most ${MAX_COMMAND_CHARS}`);
    command = draft.command;
  }

  const body = draft.body ?? '';
  if (typeof body !== 'string') fail('body', "'body' must be a string");
  if (/\p{Cs}/u.test(body)) fail('body', "'body' must be valid Unicode text (it holds a lone surrogate)");

  const columns = snapshot.config.columns;
  let column = columns.find((c) => c.id === snapshot.config.roles.ready) ?? columns[0]!;
  if (draft.column !== undefined) {
    if (typeof draft.column !== 'string') return fail('column', "'column' must be a string");
    const key = statusKey(draft.column);
    const found = columns.find((c) => c.id === draft.column) ?? columns.find((c) => [c.id, c.value ?? c.id, c.name].some((n) => key !== '' && statusKey(n) === key));
    if (!found) return fail('column', `'column' names no column of the board: '${draft.column}' (columns: ${columns.map((c) => c.id).join(', ')})`);
    column = found;
  }

  let priority: CheckedDraft['priority'];
  if (draft.priority !== undefined) {
    if (typeof draft.priority !== 'string' || draft.priority.trim() === '') return fail('priority', "'priority' must be a non-empty string");
    const given = draft.priority.trim();
    let value: string | undefined;
    if ((snapshot.format ?? 'warren') === 'warren') value = snapshot.config.priorities.includes(given) ? given : undefined;
    else value = MAPPED_PRIORITIES.includes(given) ? given : mapPriority(given, snapshot.mapping);
    if (value === undefined) return fail('priority', `'priority' must be one of ${snapshot.config.priorities.join(', ')} (got '${given}')`);
    priority = { given, value };
  }

  const list = (field: 'capabilities' | 'labels' | 'dependsOn'): string[] => {
    const value: unknown = draft[field];
    if (value === undefined) return [];
    if (!Array.isArray(value)) return fail(field, `'${field}' must be a list of strings`);
    const out: string[] = [];
    for (const item of value as unknown[]) {
      if (typeof item !== 'string') return fail(field, `'${field}' must be a list of strings`);
      const text = item.trim();
      if (!out.includes(text)) out.push(text);
    }
    return out;
  };
  const capabilities = list('capabilities');
  for (const capability of capabilities) {
    if (!CAPABILITY.test(capability)) {
      fail('capabilities', `capability '${capability}' must be letters, digits and '. _ : / @ + -' only, no spaces`);
    }
  }
  const labels = list('labels');
  for (const label of labels) {
    if (label === '' || NOT_ONE_LINE.test(label)) fail('labels', `label ${JSON.stringify(label)} must be one line of text, not empty`);
  }
  const key = options.idKey ?? ((id: string) => id);
  const byKey = new Map(snapshot.tasks.map((t) => [key(t.id), t.id]));
  const dependsOn: string[] = [];
  for (const dependency of list('dependsOn')) {
    const id = byKey.get(key(dependency));
    if (id === undefined) return fail('dependsOn', `'dependsOn' names a task that is not on the board: '${dependency}'`);
    if (!dependsOn.includes(id)) dependsOn.push(id);
  }
  let parent: string | undefined;
  if (draft.parent !== undefined) {
    if (typeof draft.parent !== 'string' || draft.parent.trim() === '') return fail('parent', "'parent' must be the id of a task on the board");
    parent = byKey.get(key(draft.parent.trim()));
    if (parent === undefined) return fail('parent', `'parent' names a task that is not on the board: '${draft.parent.trim()}'`);
  }
  return { title, body, column, priority, capabilities, dependsOn, labels, parent, command };
}

/**
 * The board's own spelling of a priority for a new task: `given` itself when the board lists it,
 * else the first of `spellings` that means the same priority (through `snapshot.mapping` and the
 * built-in spellings, see `mapPriority`).
 * @throws {TaskCreateError} (field `priority`) when the board has no spelling for it.
 */
export function prioritySpelling(
  snapshot: BoardSnapshot,
  priority: NonNullable<CheckedDraft['priority']>,
  spellings: readonly string[],
  where: string,
): string {
  if (spellings.includes(priority.given)) return priority.given;
  const same = (value: string): boolean => (MAPPED_PRIORITIES.includes(value) ? value : mapPriority(value, snapshot.mapping)) === priority.value;
  const found = spellings.find(same) ?? Object.keys(snapshot.mapping?.priorities ?? {}).find(same);
  if (found === undefined) {
    throw new TaskCreateError(where, `the board has no priority for '${priority.given}' (its priorities: ${spellings.join(', ')})`, 'priority');
  }
  return found;
}

/**
 * An ASCII id made from a title: NFKD, runs of anything but letters and digits become `-`, lower
 * case, trimmed of `-`, cut at a `-` to at most `maxLength` characters; empty when the title has no
 * ASCII letter or digit. `Fix the login form!` → `fix-the-login-form`.
 */
export function slugOf(text: string, maxLength = 60): string {
  const slug = text
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .toLowerCase();
  if (slug.length <= maxLength) return slug;
  const cut = slug.slice(0, maxLength);
  const dash = cut.lastIndexOf('-');
  return (dash >= maxLength / 2 ? cut.slice(0, dash) : cut).replace(/-+$/, '');
}

/** `base`, then `base-2`, `base-3`, … : the first that `taken` refuses. */
export function firstFree(base: string, taken: (candidate: string) => boolean, separator = '-'): string {
  if (!taken(base)) return base;
  for (let n = 2; ; n += 1) {
    const candidate = `${base}${separator}${n}`;
    if (!taken(candidate)) return candidate;
  }
}

/**
 * `text` cut to at most `maxBytes` bytes of UTF-8 on a character boundary (file names: most file
 * systems allow 255 bytes).
 */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const size = Buffer.byteLength(ch, 'utf8');
    if (bytes + size > maxBytes) break;
    out += ch;
    bytes += size;
  }
  return out;
}

/** The time a new task records: `options.now` or the current time. */
export function creationTime(options: CreateTaskOptions): Date {
  return options.now ?? new Date();
}

const chains = new Map<string, Promise<void>>();

/** The board folders whose create lock the current async call chain holds (so that taking it again is a no-op). */
const held = new AsyncLocalStorage<ReadonlySet<string>>();

/**
 * Runs `fn` holding the board's create lock, so that creates on one board never pick the same id
 * or edit a shared board file at once: within the process, creates on a folder run one after the
 * other; across processes, the lock is the folder `<dir>/.warren-create.lock` (made with mkdir,
 * which is atomic; removed afterwards; one older than 2 minutes is taken as left by a dead process
 * and removed). Reentrant: a call made while the same chain already holds the lock runs at once.
 *
 * @param dir the board folder (`BoardSnapshot.dir`).
 * @throws {TaskCreateError} when the lock is not free within `options.lockTimeoutMs` (default
 *   30000 ms) or cannot be made; and whatever `fn` throws.
 */
export async function withCreateLock<T>(dir: string, options: CreateTaskOptions, fn: () => Promise<T>): Promise<T> {
  const key = resolve(dir);
  const holding = held.getStore();
  if (holding?.has(key)) return fn();
  const previous = chains.get(key) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((done) => {
    release = done;
  });
  const tail = previous.then(() => mine);
  chains.set(key, tail);
  await previous;
  try {
    const lockPath = join(key, CREATE_LOCK_NAME);
    await acquireLockFolder(key, lockPath, options.lockTimeoutMs ?? DEFAULT_CREATE_LOCK_TIMEOUT_MS);
    try {
      return await held.run(new Set([...(holding ?? []), key]), fn);
    } finally {
      await rmdir(lockPath).catch(() => undefined);
    }
  } finally {
    release();
    if (chains.get(key) === tail) chains.delete(key);
  }
}

async function acquireLockFolder(dir: string, lockPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(lockPath);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new TaskCreateError(dir, `cannot take the board's create lock ${lockPath}: ${(error as Error).message}`, undefined, { cause: error });
      }
    }
    const info = await stat(lockPath).catch(() => undefined);
    if (info !== undefined && Date.now() - info.mtimeMs > STALE_LOCK_MS) {
      await rmdir(lockPath).catch(() => undefined);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new TaskCreateError(dir, `another create has held the board's create lock ${lockPath} for over ${timeoutMs} ms; try again (remove the folder if no create is running)`);
    }
    await new Promise((done) => setTimeout(done, LOCK_POLL_MS));
  }
}

/**
 * Writes `bytes` as a new file at `path`, never replacing an existing one: a temporary file in the
 * same folder is written and fsynced, then hard-linked to `path` (which fails when the name is
 * taken, atomically), the temporary name removed and the folder fsynced; readers see the whole file
 * or none. On a file system without hard links the file is opened with O_EXCL and written in place.
 * The mode is 0666 less the umask.
 *
 * @returns false (nothing written) when `path` already exists.
 * @throws {TaskCreateError} when writing fails (with `cause`); no temporary file is left.
 */
export async function writeNewFile(path: string, bytes: Buffer, where: string): Promise<boolean> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path).slice(0, 64)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fail = (error: unknown): never => {
    throw new TaskCreateError(where, `cannot write ${path}: ${(error as Error).message}`, undefined, { cause: error });
  };
  try {
    const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    fail(error);
  }
  try {
    await link(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') fail(error);
    return writeExclusive(path, bytes, fail);
  }
  await unlink(temp).catch(() => undefined);
  await syncDirectories([dir]);
  return true;
}

async function writeExclusive(path: string, bytes: Buffer, fail: (error: unknown) => never): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    return fail(error);
  }
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    return fail(error);
  }
  await handle.close();
  await syncDirectories([dirname(path)]);
  return true;
}

/** What a new task must read back as; each key given is compared (lists as sets for `capabilities` and `labels`). */
export interface ExpectedTask {
  readonly id: string;
  readonly title: string;
  readonly status: string;
  readonly priority?: string | undefined;
  readonly capabilities: readonly string[];
  readonly labels?: readonly string[] | undefined;
  readonly dependsOn: readonly string[];
  /** The parent's id (`Task.parentTaskId`); undefined: the task must read back without one. */
  readonly parent?: string | undefined;
}

/**
 * Checks that a task parsed from the bytes about to be written reads back as intended, so that a
 * create never leaves a task the board reads differently (or not at all).
 * @param parse parses the new file (throws a `TaskFileError` when it cannot).
 * @throws {TaskCreateError} naming the field that would not read back.
 */
export function checkReadsBack(
  where: string,
  parse: () => { id: string; title: string; status: string; priority: string; capabilities: readonly string[]; labels: readonly string[]; dependsOn: readonly string[]; parentTaskId?: string | undefined },
  expected: ExpectedTask,
): void {
  let task;
  try {
    task = parse();
  } catch (error) {
    throw new TaskCreateError(where, `the new task would not read back: ${(error as Error).message}`, (error as { field?: string }).field, { cause: error });
  }
  const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));
  const problems: [string, boolean][] = [
    ['id', task.id === expected.id],
    ['title', task.title === expected.title],
    ['column', task.status === expected.status],
    ['priority', expected.priority === undefined || task.priority === expected.priority],
    ['capabilities', sameSet(task.capabilities, expected.capabilities)],
    ['labels', expected.labels === undefined || sameSet(task.labels, expected.labels)],
    ['dependsOn', sameSet(task.dependsOn, expected.dependsOn)],
    ['parent', task.parentTaskId === expected.parent],
  ];
  const bad = problems.find(([, ok]) => !ok);
  if (bad) throw new TaskCreateError(where, `the new task would not read back with the same '${bad[0]}'; nothing was written`, bad[0]);
}

/** `body` with a final line break when it has text and lacks one. */
export function withFinalNewline(body: string): string {
  return body === '' || body.endsWith('\n') ? body : `${body}\n`;
}

/**
 * A task file name made from a title, as Promethean names its task notes (`Parent task.md`): the
 * characters file systems or Obsidian links refuse (`\ / : * ? " < > | # ^ [ ]`) become blanks,
 * blanks are collapsed, leading dots dropped, cut to 200 bytes of UTF-8; empty when nothing is left.
 */
export function titleFileName(title: string): string {
  const name = title
    .replace(/[\\/:*?"<>|#^[\]]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/^\.+/, '');
  return truncateUtf8(name, 200).trim();
}

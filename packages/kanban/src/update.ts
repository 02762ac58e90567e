import { randomBytes } from 'node:crypto';
import { readFile, realpath, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { isAlias, isCollection, isMap, isScalar, parse, Scalar, type Node, type Pair } from 'yaml';
import { TaskConflictError, TaskUpdateError } from './errors.js';
import { forgetFile, recallFile, rememberFile, type FileOwner } from './recent-files.js';
import { closeOf, createExclusive, fstatOf, fchmodOf, fchownOf, fsyncOf, openDirectory, readPlainFileAt, renameOf, writeAll } from './fd-io.js';
import { decodeUtf8, findFrontmatter, firstInvalidUtf8, isFrontmatterProblem, parseTimestampMs, sha256Hex } from './text.js';
import { OWNED_FIELDS, type OwnedField, type OwnedFieldChanges, type ReplaceObserver, type Task, type UpdateTaskOptions, type UpdateTaskResult } from './types.js';
import { forgetPlan, recalledPlan, rememberParsed, rememberPlan, splicePlan, type ValueQuote } from './frontmatter-plan.js';
import { isYamlProblem, parseYamlSource, type YamlSource } from './yaml-source.js';

const TIMESTAMP_FIELDS: ReadonlySet<OwnedField> = new Set(['started', 'completed', 'updated']);

/** Characters a plain scalar written by us may contain; anything else is double-quoted. */
const PLAIN_SAFE = /^[A-Za-z0-9_./][A-Za-z0-9_./:+@ -]*$/;

function hex(cp: number, width: number): string {
  return cp.toString(16).toUpperCase().padStart(width, '0');
}

/**
 * A YAML double-quoted scalar for `value` (YAML 1.2 §7.3.1 escapes): `"`, `\`, line breaks, tabs
 * and every character outside YAML's printable set (controls, C1, surrogates, U+FEFF, U+FFFE/F,
 * U+2028/9) are escaped, so the result is one line.
 */
export function doubleQuoted(value: string): string {
  let out = '"';
  for (const ch of value) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) out += `\\x${hex(cp, 2)}`;
    else if ((cp >= 0xd800 && cp <= 0xdfff) || cp === 0xfeff || cp === 0xfffe || cp === 0xffff || cp === 0x2028 || cp === 0x2029) {
      out += `\\u${hex(cp, 4)}`;
    } else out += ch;
  }
  return `${out}"`;
}

/**
 * A YAML single-quoted scalar for `value` (`'` doubled), or undefined when single quotes cannot
 * hold it on one line (a character {@link doubleQuoted} would escape other than `"` and `\`).
 */
export function singleQuoted(value: string): string | undefined {
  for (const ch of value) {
    if (ch !== '"' && ch !== '\\' && doubleQuoted(ch) !== `"${ch}"`) return undefined;
  }
  return `'${value.replaceAll("'", "''")}'`;
}

/**
 * How a string value replacing a scalar is written so that the file keeps its style: in double
 * quotes when the old value was double-quoted, in single quotes when it was single-quoted (double
 * quotes when single ones cannot hold it), else `written` (the writer's own choice, plain when
 * safe). `status: "todo"` becomes `status: "in_progress"`, not `status: in_progress`.
 * @param old the value node being replaced; @param value the new value; @param written its default YAML.
 */
export function keepQuoting(old: unknown, value: unknown, written: string): string {
  if (typeof value !== 'string' || !isScalar(old)) return written;
  if (old.type === Scalar.QUOTE_DOUBLE) return doubleQuoted(value);
  if (old.type === Scalar.QUOTE_SINGLE) return singleQuoted(value) ?? doubleQuoted(value);
  return written;
}

/**
 * How an owned value is written: `null` for null; a plain scalar when that is safe (only letters,
 * digits, `_./:+@-` and inner spaces, not starting with a space or `-`, no `: ` or ` #`, and YAML
 * reads it back as the same string — so `null`, `true`, `42` are quoted); otherwise one
 * double-quoted line ({@link doubleQuoted}).
 */
export function formatOwnedValue(value: string | null): string {
  if (value === null) return 'null';
  if (
    PLAIN_SAFE.test(value) &&
    !value.endsWith(' ') &&
    !value.endsWith(':') &&
    !value.includes(': ') &&
    !value.includes(' #') &&
    readsAsItself(value)
  ) {
    return value;
  }
  return doubleQuoted(value);
}

/** A word (a column id, an agent name) that YAML 1.2's core schema reads as a string: not null or a boolean. */
const PLAIN_WORD = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const CORE_KEYWORD = /^(?:null|Null|NULL|true|True|TRUE|false|False|FALSE)$/;
/** An ISO 8601 timestamp as `toISOString` writes it: a string in YAML 1.2's core schema (no timestamp type there). */
const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

/**
 * Whether YAML reads the plain scalar `value` back as the same string. The values Warren writes
 * most (column ids, agent names, timestamps) are recognized without parsing; anything else is parsed.
 */
export function readsAsItself(value: string): boolean {
  if ((PLAIN_WORD.test(value) && !CORE_KEYWORD.test(value)) || ISO_TIMESTAMP.test(value)) return true;
  return parse(value) === value;
}

/** Validates owned-field changes (see {@link OwnedFieldChanges}) and returns them in `OWNED_FIELDS` order. @throws {TaskUpdateError} */
export function checkChanges(path: string, changes: OwnedFieldChanges): [OwnedField, string | null][] {
  const owned = new Set<string>(OWNED_FIELDS);
  for (const key of Object.keys(changes)) {
    if (!owned.has(key)) throw new TaskUpdateError(path, `'${key}' is not a field the supervisor owns (${OWNED_FIELDS.join(', ')})`, key);
  }
  const out: [OwnedField, string | null][] = [];
  for (const field of OWNED_FIELDS) {
    const value = changes[field];
    if (value === undefined) continue;
    if (value !== null && typeof value !== 'string') {
      throw new TaskUpdateError(path, `'${field}' must be a string or null`, field);
    }
    if (field === 'status' && (value === null || value.trim() === '')) {
      throw new TaskUpdateError(path, "'status' must be a column id", field);
    }
    if (TIMESTAMP_FIELDS.has(field) && value !== null && parseTimestampMs(value) === undefined) {
      throw new TaskUpdateError(path, `'${field}' must be an ISO 8601 timestamp, got ${JSON.stringify(value)}`, field);
    }
    out.push([field, value]);
  }
  return out;
}

interface Edit {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

/**
 * Rewrites the owned fields of a task file's text and returns the new text; every other character
 * stays as it was. Pure.
 *
 * An owned key that exists keeps its line: only its value is replaced (found through the YAML
 * parser's node ranges and source tokens), so a trailing comment stays; a tag or anchor on the old
 * value goes with it. A missing owned key is appended as `key: value` on a new line at the end of
 * the frontmatter, with the file's line ending and the indentation of the first key. Values are
 * written by {@link formatOwnedValue}.
 *
 * @param text the whole file (BOM and CRLF are kept).
 * @param changes `undefined` leaves a field alone; `null` writes `null`.
 * @param path used in error messages only.
 * @throws {TaskUpdateError} when the text has no frontmatter, the frontmatter is not valid YAML or
 *   not a block mapping, a value is invalid, or the result would not read back with exactly the new
 *   owned values and the old other values.
 */
export function rewriteOwnedFields(text: string, changes: OwnedFieldChanges, path = '<text>'): string {
  const wanted = checkChanges(path, changes);
  return rewriteFrontmatter(
    text,
    wanted.map(([key, value]) => ({ key, value, yaml: formatOwnedValue(value) })),
    path,
    true,
  );
}

/**
 * One frontmatter value to write with {@link rewriteFields}: `key` gets `yaml` (an inline YAML
 * value such as `In Progress`, `"a: b"`, `[]`) or, when `blockLines` is given, a block value written
 * on the lines after the key, each indented two spaces more than the key (`["- '@codex'"]`).
 * `value` is what the key must read back as (compared with `isDeepStrictEqual`).
 */
export interface FieldWrite {
  readonly key: string;
  readonly value: unknown;
  readonly yaml: string;
  readonly blockLines?: readonly string[] | undefined;
}

/**
 * Rewrites frontmatter values in a file's text, keeping every other character: the format-neutral
 * core of {@link rewriteOwnedFields}, used by every board format that keeps YAML frontmatter
 * (Warren, Backlog.md, JSON-config boards). An existing key keeps its line and only its value
 * (scalar, flow or block collection) is replaced, a string replacing a quoted scalar in the same
 * quotes ({@link keepQuoting}); a missing key is appended at the end of the frontmatter with the
 * file's line ending and the first key's indentation. Pure.
 *
 * @throws {TaskUpdateError} when the text has no frontmatter, the frontmatter is not valid YAML or
 *   not a block mapping, or the result would not read back with exactly the new values and the old
 *   other values.
 */
export function rewriteFields(text: string, writes: readonly FieldWrite[], path = '<text>'): string {
  return rewriteFrontmatter(text, writes, path, false);
}

/**
 * {@link rewriteFields}; `owned`: every write is an owned value written by
 * {@link formatOwnedValue} (one line that reads back as the value), so that a frontmatter whose
 * layout is remembered ({@link recalledPlan}: parsed before by the loader or by an earlier
 * rewrite) is rewritten by splicing the values in, without parsing, and the result's layout is
 * remembered for the next rewrite.
 */
function rewriteFrontmatter(text: string, writes: readonly FieldWrite[], path: string, owned: boolean): string {
  if (writes.length === 0) return text;
  const span = findFrontmatter(text);
  if (isFrontmatterProblem(span)) throw new TaskUpdateError(path, `cannot update: ${span.reason}`);
  const yamlText = text.slice(span.yamlStart, span.yamlEnd);
  const plan = owned ? recalledPlan(yamlText) : undefined;
  if (plan) {
    const spliced = splicePlan(yamlText, plan, writes.map((w) => ({ key: w.key, text: splicedValue(plan.keys.get(w.key)?.quote, w) })), span.eol);
    if (spliced) {
      const result = text.slice(0, span.yamlStart) + spliced.text + text.slice(span.yamlEnd);
      forgetPlan(yamlText);
      rememberPlan(spliced.text, spliced.plan, result.length);
      return result;
    }
  }
  const before = parseYamlSource(yamlText);
  if (isYamlProblem(before)) {
    throw new TaskUpdateError(path, `cannot update: the frontmatter is not valid YAML (line ${before.line + 1}: ${before.message})`);
  }
  const contents = before.doc.contents;
  if (contents !== null && !(isMap(contents) && !contents.flow)) {
    throw new TaskUpdateError(path, 'cannot update: the frontmatter must be a block mapping of fields');
  }
  const pairs = new Map<string, Pair>();
  for (const pair of contents?.items ?? []) {
    if (isScalar(pair.key) && typeof pair.key.value === 'string') pairs.set(pair.key.value, pair);
  }
  const indent = firstKeyIndent(yamlText, contents?.items[0]?.key);
  const block = (lines: readonly string[]): string => lines.map((line) => `${span.eol}${indent}  ${line}`).join('');

  const edits: Edit[] = [];
  const appended: string[] = [];
  for (const write of writes) {
    const pair = pairs.get(write.key);
    if (!pair) {
      appended.push(write.blockLines ? `${write.key}:${block(write.blockLines)}` : `${write.key}: ${write.yaml}`);
      continue;
    }
    const edit = valueEdit(path, write.key, yamlText, pair, write.blockLines ? write.yaml : keepQuoting(pair.value, write.value, write.yaml));
    if (write.blockLines) {
      const colon = (pair.srcToken?.sep ?? []).find((token) => token.type === 'map-value-ind')!;
      edits.push({ start: colon.offset + 1, end: edit.end, text: block(write.blockLines) });
    } else {
      edits.push(edit);
    }
  }

  let next = yamlText;
  for (const edit of edits.sort((a, b) => b.start - a.start)) {
    next = next.slice(0, edit.start) + edit.text + next.slice(edit.end);
  }
  if (appended.length > 0) {
    const prefix = next === '' || next.endsWith('\n') ? '' : span.eol;
    next += prefix + appended.map((line) => `${indent}${line}${span.eol}`).join('');
  }
  const result = text.slice(0, span.yamlStart) + next + text.slice(span.yamlEnd);
  const after = verify(path, result, before.value, writes.map((w) => [w.key, w.value] as const));
  if (owned) {
    forgetPlan(yamlText);
    rememberParsed(next, after.doc, result.length);
  }
  return result;
}

/** The text an owned value is spliced in as, in the quotes of the value it replaces ({@link keepQuoting}). */
function splicedValue(quote: ValueQuote | undefined, write: FieldWrite): string {
  if (typeof write.value !== 'string' || quote === undefined || quote === 'plain') return write.yaml;
  if (quote === 'double') return doubleQuoted(write.value);
  return singleQuoted(write.value) ?? doubleQuoted(write.value);
}

/** The edit that replaces the value of `pair` with `written`. */
function valueEdit(path: string, field: string, yamlText: string, pair: Pair, written: string): Edit {
  const sep = pair.srcToken?.sep ?? [];
  const colon = sep.find((token) => token.type === 'map-value-ind');
  if (!colon) throw new TaskUpdateError(path, `cannot update '${field}': its key is not written as 'key: value'`, field);
  const colonEnd = colon.offset + 1;
  const props = sep.filter((token) => (token.type === 'anchor' || token.type === 'tag') && token.offset > colon.offset);
  const firstProp = props[0];
  const lastProp = props[props.length - 1];
  const node = pair.value as Node | null;
  const range = node?.range;
  if (!node || !range || range[0] === range[1]) {
    // `key:` with no value (maybe a comment after it): write the value right after the colon.
    const end = lastProp ? lastProp.offset + lastProp.source.length : colonEnd;
    return { start: colonEnd, end, text: ` ${written}` };
  }
  const trimmedEnd = (end: number, start: number): number => {
    let e = end;
    while (e > start && /[ \t\r\n]/.test(yamlText[e - 1]!)) e -= 1;
    return e;
  };
  if (isScalar(node) || isAlias(node) || (isCollection(node) && node.flow)) {
    const start = firstProp ? Math.min(firstProp.offset, range[0]) : range[0];
    return { start, end: trimmedEnd(range[1], start), text: written };
  }
  // A block collection: replace everything from the colon to its end.
  return { start: colonEnd, end: trimmedEnd(range[1], colonEnd), text: ` ${written}` };
}

function firstKeyIndent(yamlText: string, key: Node | null | undefined): string {
  const start = key?.range?.[0];
  if (start === undefined) return '';
  const lineStart = yamlText.lastIndexOf('\n', start - 1) + 1;
  const indent = yamlText.slice(lineStart, start);
  return /^[ ]*$/.test(indent) ? indent : '';
}

/** Checks that `text` reads back with the new owned values and every other value unchanged. @returns its parsed frontmatter. */
function verify(path: string, text: string, oldValue: unknown, wanted: readonly (readonly [string, unknown])[]): YamlSource {
  const fail = (detail: string): never => {
    throw new TaskUpdateError(path, `cannot update: the rewritten file would not read back as intended (${detail}); the file was left as it was`);
  };
  const span = findFrontmatter(text);
  if (isFrontmatterProblem(span)) return fail(span.reason);
  const after = parseYamlSource(text.slice(span.yamlStart, span.yamlEnd));
  if (isYamlProblem(after)) return fail(`line ${after.line + 1}: ${after.message}`);
  const newFields = (after.value ?? {}) as Record<string, unknown>;
  const oldFields = (oldValue ?? {}) as Record<string, unknown>;
  if (typeof newFields !== 'object' || Array.isArray(newFields)) return fail('the frontmatter is no longer a mapping');
  const changed = new Set<string>(wanted.map(([field]) => field));
  for (const [field, value] of wanted) {
    if (!isDeepStrictEqual(newFields[field], value)) fail(`'${field}' reads back as ${JSON.stringify(newFields[field])}`);
  }
  const oldKeys = Object.keys(oldFields).filter((k) => !changed.has(k));
  const newKeys = Object.keys(newFields).filter((k) => !changed.has(k));
  if (!isDeepStrictEqual(oldKeys, newKeys)) return fail('the other keys changed');
  for (const key of oldKeys) {
    if (!isDeepStrictEqual(oldFields[key], newFields[key])) fail(`'${key}' changed`);
  }
  return after;
}

/**
 * Rewrites the owned fields of a task file in place, keeping every other byte (key order,
 * comments, quoting, unknown fields, body, CRLF, BOM, trailing whitespace); see
 * {@link rewriteOwnedFields} for how values are placed and written.
 *
 * Atomic: the new bytes go to a temporary file in the same folder (same mode and, where allowed,
 * owner), which is fsynced and renamed over the file; the folder is fsynced. A symlinked task file
 * is written at its target. When nothing changes, nothing is written.
 *
 * @param path the task file.
 * @param changes new owned values; `undefined` leaves a field alone, `null` writes `null`.
 * @param options `expectedHash`: the sha256 (hex) the caller read (`Task.hash`).
 * @returns the sha256 (hex) of the file as it now is.
 * @throws {TaskConflictError} when `expectedHash` is given and the file's hash differs (also
 *   checked again just before the rename); nothing is written.
 * @throws {TaskUpdateError} when the file cannot be read or written (with `cause`), is not UTF-8,
 *   or cannot be rewritten (see {@link rewriteOwnedFields}); the original is kept.
 */
export async function updateTaskFile(path: string, changes: OwnedFieldChanges, options: UpdateTaskOptions = {}): Promise<UpdateTaskResult> {
  checkChanges(path, changes);
  return rewriteFileAtomically(path, (text) => rewriteOwnedFields(text, changes, path), options);
}

/**
 * The shared read → conflict check → rewrite → atomic replace of {@link updateTaskFile} and
 * {@link updateFrontmatterFile}: reads `path` (through a symlink to its target), refuses it when
 * its sha256 is not `options.expectedHash` or it is not UTF-8, applies `rewrite` to its text, and
 * replaces it atomically only when the text changed.
 * @returns the sha256 (hex) of the file as it now is.
 * @throws {TaskConflictError} / {TaskUpdateError} as the two callers document.
 */
async function rewriteFileAtomically(path: string, rewrite: (text: string) => string, options: UpdateTaskOptions): Promise<UpdateTaskResult> {
  let target: string;
  let bytes: Buffer;
  let owner: FileOwner | undefined;
  // The bytes this process last read or wrote there, when they are the ones the caller expects:
  // no read now (the check just before the rename reads the file whole anyway).
  const recent = options.expectedHash === undefined ? undefined : recallFile(path, options.expectedHash);
  if (recent) {
    target = path;
    bytes = recent.bytes;
    owner = recent.owner;
  } else {
    try {
      // A plain file is read through one descriptor (its mode and owner from the same fstat); a
      // symlink, or anything else, is resolved to its target first.
      const plain = await readPlainFileAt(path);
      if (plain === 'not plain') {
        target = await realpath(path);
        bytes = await readFile(target);
      } else {
        target = path;
        bytes = plain.bytes;
        owner = { mode: plain.info.mode, uid: plain.info.uid, gid: plain.info.gid };
      }
    } catch (error) {
      throw new TaskUpdateError(path, `cannot read the file: ${(error as Error).message}`, undefined, { cause: error });
    }
  }
  const actualHash = sha256Hex(bytes);
  if (options.expectedHash !== undefined && options.expectedHash !== actualHash) {
    throw new TaskConflictError(path, options.expectedHash, actualHash);
  }
  if (firstInvalidUtf8(bytes) !== -1) throw new TaskUpdateError(path, 'cannot update: the file is not valid UTF-8');
  const text = decodeUtf8(bytes);
  const next = rewrite(text);
  if (next === text) return { hash: actualHash };
  const out = Buffer.from(next, 'utf8');
  try {
    const written = await replaceAtomically(path, target, out, actualHash, options.syncDirectory ?? true, owner, options.replaceObserver);
    if (target === path && written.plain) rememberFile(path, out, written.owner);
    else forgetFile(path);
  } catch (error) {
    forgetFile(path);
    throw error;
  }
  return { hash: sha256Hex(out) };
}

export type { FileOwner } from './recent-files.js';

/**
 * Replaces `target` with `out` atomically: a temporary file in the same folder (same mode and, as
 * root, owner) is written and fsynced; then the file is read again whole and, if it still hashes
 * to `basedOnHash`, the temporary file is renamed over it; then (unless `syncFolder` is false) the
 * folder is fsynced. When that last read shows a mode or owner other than the ones written, the
 * temporary file takes them (and is fsynced again) before the rename.
 *
 * @param path the path shown in errors (`target` is `path` resolved through symlinks, or `path`
 *   itself when it is a regular file).
 * @param owner the mode and owner of `target` when the caller knows them (from the fstat of its
 *   read of `target` as a regular file, which it must then still be); else `target` is stat'ed.
 * @param observer told of the rename (see {@link ReplaceObserver}): just before it, and after it
 *   with the new file's fstat (the temporary file's descriptor is then closed after the rename).
 * @returns the mode and owner the file now has, and whether `target` was a regular file when
 *   read again (rather than a symlink or something else).
 * @throws {TaskConflictError} when the file changed since it was read.
 * @throws {TaskUpdateError} when writing fails (with `cause`); no temporary file is left behind.
 */
export async function replaceAtomically(
  path: string,
  target: string,
  out: Buffer,
  basedOnHash: string,
  syncFolder = true,
  owner?: FileOwner,
  observer?: ReplaceObserver,
): Promise<{ owner: FileOwner; plain: boolean }> {
  const dir = dirname(target);
  const temp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let renamed = false;
  try {
    let info: FileOwner = owner ?? (await stat(target));
    let plain: boolean;
    const fd = await createExclusive(temp, 0o600);
    let open = true;
    try {
      await writeAll(fd, out);
      await takeOwner(fd, info);
      await fsyncOf(fd);
      const current = await readPlainFileAt(target);
      plain = current !== 'not plain';
      const currentHash = sha256Hex(current === 'not plain' ? await readFile(target) : current.bytes);
      // A file read as a plain one (`owner` came from its fstat) that is now a symlink is a change too.
      if (currentHash !== basedOnHash || (owner !== undefined && !plain)) throw new TaskConflictError(path, basedOnHash, currentHash);
      if (current !== 'not plain' && (current.info.mode !== info.mode || current.info.uid !== info.uid || current.info.gid !== info.gid)) {
        info = { mode: current.info.mode, uid: current.info.uid, gid: current.info.gid };
        await takeOwner(fd, info);
        await fsyncOf(fd);
      }
      if (observer === undefined) {
        open = false;
        await closeOf(fd);
      }
      // With an observer the descriptor stays open through the rename: its fstat then is the new file's.
      const told = observer?.beforeRename(target);
      try {
        await renameOf(temp, target);
      } catch (error) {
        told?.failed();
        throw error;
      }
      renamed = true;
      if (told) told.renamed(await fstatOf(fd).catch(() => undefined));
    } finally {
      if (open) await closeOf(fd);
    }
    if (syncFolder) await syncDirectory(dir);
    return { owner: info, plain };
  } catch (error) {
    if (!renamed) await unlink(temp).catch(() => undefined);
    if (error instanceof TaskConflictError) throw error;
    throw new TaskUpdateError(path, `cannot write the file: ${(error as Error).message}`, undefined, { cause: error });
  }
}

/** Gives the open file `fd` the mode of `info` and, as root, its owner. */
async function takeOwner(fd: number, info: FileOwner): Promise<void> {
  await fchmodOf(fd, info.mode & 0o7777);
  if (process.getuid?.() === 0 && (info.uid !== 0 || info.gid !== 0)) await fchownOf(fd, info.uid, info.gid);
}

/**
 * Syncs each folder in `dirs` (at once), making renames into them durable: what a caller that
 * wrote with `syncDirectory: false` calls before relying on the writes. Best effort, as
 * {@link updateTaskFile}'s own folder sync: a file system that refuses fsync on a folder is skipped.
 */
export async function syncDirectories(dirs: Iterable<string>): Promise<void> {
  await Promise.all([...dirs].map((dir) => syncDirectory(dir)));
}

/** Makes the rename durable. Best effort: some file systems refuse fsync on a folder. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const fd = await openDirectory(dir);
    try {
      await fsyncOf(fd);
    } finally {
      await closeOf(fd);
    }
  } catch {
    // The file is already in place; only its durability across a crash is less certain.
  }
}

/**
 * Writes frontmatter values into a task file in place ({@link rewriteFields}), atomically and with
 * the same conflict check as {@link updateTaskFile}. Used by the formats other than Warren's.
 * `rewriteBody`, when given, then rewrites the whole text (a format that keeps a field in the body).
 *
 * @returns the sha256 (hex) of the file as it now is.
 * @throws {TaskConflictError} when `options.expectedHash` is given and the file's hash differs.
 * @throws {TaskUpdateError} when the file cannot be read, written or rewritten; it is left as it was.
 */
export async function updateFrontmatterFile(
  path: string,
  writes: readonly FieldWrite[],
  options: UpdateTaskOptions = {},
  rewriteBody?: (text: string) => string,
): Promise<UpdateTaskResult> {
  return rewriteFileAtomically(path, (text) => (rewriteBody ? rewriteBody(rewriteFields(text, writes, path)) : rewriteFields(text, writes, path)), options);
}

/**
 * The task as a Warren task file reads after {@link updateTaskFile} wrote `changes` and the file
 * now hashes to `hash`: `task` with the owned fields (status, assignee, result, started, completed,
 * updated) and their `fields` entries replaced, so a caller can keep its snapshot current without
 * parsing the file again (re-reading those bytes gives an equal task). Pure.
 * @param changes as given to the write (`undefined` leaves a field, `null` clears it).
 * @param hash the sha256 (hex) the write returned.
 */
export function applyOwnedChanges(task: Task, changes: OwnedFieldChanges, hash: string): Task {
  const next: Record<string, unknown> = { ...task, fields: { ...task.fields }, hash };
  const fields = next.fields as Record<string, unknown>;
  const timestamps = { started: 'startedMs', completed: 'completedMs', updated: 'updatedMs' } as const;
  for (const field of OWNED_FIELDS) {
    const value = changes[field];
    if (value === undefined) continue;
    fields[field] = value;
    if (field === 'status') next.status = value;
    else if (field === 'assignee') next.assignee = value === '' ? null : value;
    else if (field === 'result') {
      if (value === null) delete next.result;
      else next.result = value;
    } else {
      const ms = value === null ? undefined : parseTimestampMs(value);
      if (ms === undefined) delete next[timestamps[field]];
      else next[timestamps[field]] = ms;
    }
  }
  return next as unknown as Task;
}

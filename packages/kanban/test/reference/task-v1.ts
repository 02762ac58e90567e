/**
 * The task parser as it was before parsing was made faster (byte-by-byte UTF-8 check, a new
 * decoder and Hash per file, days of the month from `Date`), kept as the oracle that
 * task-equivalence.property.test.ts compares `parseTaskFile` with.
 */
import { dirname, resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, type Node, type Pair, type Scalar } from 'yaml';
import { TaskFileError } from '../../src/errors.js';
import { createHash } from 'node:crypto';
import { displayPath, findFrontmatter, ID_PATTERN, isFrontmatterProblem, lineOfByte, MAX_TASK_FILE_BYTES, scanUtf8 as firstInvalidUtf8 } from '../../src/text.js';
import type { BoardConfig, ParseTaskOptions, Task } from '../../src/types.js';
import { isYamlProblem, parseYamlSource, type YamlSource } from '../../src/yaml-source.js';

const decodeUtf8 = (bytes: Uint8Array): string => new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const TIMESTAMP =
  /^(\d{4})-(\d{1,2})-(\d{1,2})(?:(?:[Tt]|[ \t]+)(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:[ \t]*(Z|z|[+-]\d{1,2}(?::?\d{2})?))?)?$/;

/**
 * Milliseconds since the epoch for an ISO 8601 extended-format timestamp or a YAML 1.1 timestamp
 * (https://yaml.org/type/timestamp.html): `2026-11-20`, `2026-11-20T09:00:00Z`,
 * `2026-11-20T09:00:00.123+02:00`, `2001-12-14 21:59:43.10 -5`. Without a zone the time is UTC.
 * Returns `undefined` when the text is not such a timestamp or names an impossible date.
 */
function parseTimestampMs(text: string): number | undefined {
  const m = TIMESTAMP.exec(text.trim());
  if (!m) return undefined;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = m[4] === undefined ? 0 : Number(m[4]);
  const minute = m[5] === undefined ? 0 : Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) return undefined;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day > daysInMonth) return undefined;
  let offsetMinutes = 0;
  const zone = m[8];
  if (zone !== undefined && zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const hours = Number(digits.length <= 2 ? digits : digits.slice(0, digits.length - 2));
    const minutes = digits.length <= 2 ? 0 : Number(digits.slice(-2));
    if (hours > 23 || minutes > 59) return undefined;
    offsetMinutes = sign * (hours * 60 + minutes);
  }
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  // Date.UTC maps years 0-99 to 1900-1999; fix that up.
  const fixed = year < 100 ? new Date(utc).setUTCFullYear(year) : utc;
  return fixed - offsetMinutes * 60_000;
}


/** A parsed task and the file line of its `id` key (for duplicate-id reports). */
export interface ParsedTask {
  readonly task: Task;
  readonly idLine: number;
}

type Text = { ok: true; value: string | null } | { ok: false };

/**
 * A scalar as text: strings as they are, `null` (or an empty value) as null, and a plain scalar
 * that YAML reads as a number or boolean (`id: 42`) as its source text.
 */
function textOf(node: unknown, value: unknown): Text {
  if (typeof value === 'string') return { ok: true, value };
  if (value === null || value === undefined) return { ok: true, value: null };
  if ((typeof value === 'number' || typeof value === 'boolean') && isScalar(node) && node.type === 'PLAIN') {
    const source = (node as Scalar & { source?: unknown }).source;
    return { ok: true, value: typeof source === 'string' ? source : String(value) };
  }
  return { ok: false };
}

/**
 * Parses one task file. Pure: it reads nothing from disk (it only resolves `path`).
 *
 * The file must be UTF-8 (a leading BOM is allowed), at most 1 MiB, and start with YAML
 * frontmatter between `---` lines (LF or CRLF). Frontmatter fields are described in the package
 * README; unknown fields are kept in `Task.fields`.
 *
 * @param path the file's path (absolute, or resolved against the working directory).
 * @param bytes the file's bytes (`Task.hash` is their sha256).
 * @param config the board's config: columns and priorities are checked against it.
 * @param boardDir the board folder, for `Task.relativePath` and for messages.
 * @param options `displayRoot` for messages (default: the board folder's parent).
 * @throws {TaskFileError} with the line and field at fault, one per file.
 */
export function parseTaskFile(path: string, bytes: Buffer, config: BoardConfig, boardDir: string, options: ParseTaskOptions = {}): Task {
  return parseTask(path, bytes, config, boardDir, options).task;
}

/** {@link parseTaskFile}, also returning the line of the `id` key. */
export function parseTask(path: string, bytes: Buffer, config: BoardConfig, boardDir: string, options: ParseTaskOptions = {}): ParsedTask {
  const absolute = resolve(path);
  const board = resolve(boardDir);
  const root = options.displayRoot === undefined ? dirname(board) : resolve(options.displayRoot);
  const shown = displayPath(root, absolute);
  const fail = (line: number, reason: string, field?: string): never => {
    throw new TaskFileError({ path: absolute, line, field, reason, displayPath: shown });
  };

  if (bytes.length > MAX_TASK_FILE_BYTES) {
    fail(0, `the file is ${bytes.length} bytes; task files may be at most ${MAX_TASK_FILE_BYTES} bytes (1 MiB)`);
  }
  const invalid = firstInvalidUtf8(bytes);
  if (invalid !== -1) {
    fail(lineOfByte(bytes, invalid), `not valid UTF-8: byte 0x${bytes[invalid]!.toString(16).padStart(2, '0')} at offset ${invalid}`);
  }
  const text = decodeUtf8(bytes);
  const span = findFrontmatter(text);
  if (isFrontmatterProblem(span)) return fail(span.line, span.reason);

  // The YAML starts on line 2 of the file.
  const parsed = parseYamlSource(text.slice(span.yamlStart, span.yamlEnd));
  if (isYamlProblem(parsed)) return fail(parsed.line + 1, `invalid YAML in the frontmatter: ${parsed.message}`);
  const source: YamlSource = parsed;
  const contents = source.doc.contents;
  if (!isMap(contents) || source.value === null || typeof source.value !== 'object' || Array.isArray(source.value)) {
    return fail(1, 'the frontmatter must be a YAML mapping of fields (id, title, status, capabilities, …)');
  }
  const fields = source.value as Record<string, unknown>;
  const pairs = new Map<string, Pair>();
  for (const pair of contents.items) {
    if (isScalar(pair.key)) pairs.set(String(pair.key.value), pair);
  }
  const lineAt = (node: unknown): number | undefined => {
    const start = (node as Node | null | undefined)?.range?.[0];
    return start === undefined ? undefined : source.lineCounter.linePos(start).line + 1;
  };
  const keyLine = (name: string): number => lineAt(pairs.get(name)?.key) ?? 1;
  const valueLine = (name: string): number => {
    const pair = pairs.get(name);
    const value = pair?.value as Node | null | undefined;
    // An empty value sits after the key; report the key's line.
    if (value && value.range && value.range[0] !== value.range[1]) return lineAt(value) ?? keyLine(name);
    return keyLine(name);
  };
  const has = (name: string): boolean => Object.prototype.hasOwnProperty.call(fields, name);
  const text_ = (name: string): Text => textOf(pairs.get(name)?.value, fields[name]);

  const requireText = (name: string, check: (value: string) => boolean, must: string): string => {
    if (!has(name)) return fail(1, `'${name}' is required`, name);
    const t = text_(name);
    if (!t.ok || t.value === null || !check(t.value)) return fail(valueLine(name), `'${name}' ${must}`, name);
    return t.value;
  };
  const optionalText = (name: string): string | undefined => {
    if (!has(name)) return undefined;
    const t = text_(name);
    if (!t.ok) return fail(valueLine(name), `'${name}' must be a string`, name);
    return t.value ?? undefined;
  };
  const list = (name: string, required: boolean, itemCheck: (value: string) => boolean, must: string): string[] => {
    if (!has(name)) return required ? fail(1, `'${name}' is required (use [] for none)`, name) : [];
    const value = fields[name];
    if (value === null && !required) return [];
    if (!Array.isArray(value)) return fail(valueLine(name), `'${name}' ${must}`, name);
    const node = pairs.get(name)?.value;
    const items = isSeq(node) ? node.items : [];
    return value.map((item: unknown, index) => {
      const itemNode = isAlias(node) ? undefined : items[index];
      const t = textOf(itemNode, item);
      if (!t.ok || t.value === null || !itemCheck(t.value)) {
        return fail(lineAt(itemNode) ?? valueLine(name), `'${name}' ${must}`, name);
      }
      return t.value;
    });
  };
  const timestamp = (name: string): number | undefined => {
    if (!has(name)) return undefined;
    const value = fields[name];
    if (value === null) return undefined;
    if (value instanceof Date && !Number.isNaN(value.getTime())) return value.getTime();
    const ms = typeof value === 'string' ? parseTimestampMs(value) : undefined;
    if (ms === undefined) {
      return fail(valueLine(name), `'${name}' must be an ISO 8601 timestamp or a YAML date (such as 2026-11-20T09:00:00Z)`, name);
    }
    return ms;
  };

  const id = requireText('id', (v) => ID_PATTERN.test(v), "must be letters, digits, '.', '_' or '-'");
  const title = requireText('title', (v) => v.trim() !== '', 'must be a non-empty string');
  const columnIds = config.columns.map((c) => c.id);
  const status = requireText('status', (v) => columnIds.includes(v), `must be one of ${columnIds.join(', ')}`);
  const capabilities = list('capabilities', true, (v) => v !== '', 'must be a list of strings');

  let priority = config.defaultPriority;
  if (has('priority')) {
    const t = text_('priority');
    if (!t.ok || (t.value !== null && t.value !== '' && !config.priorities.includes(t.value))) {
      fail(valueLine('priority'), `'priority' must be one of ${config.priorities.join(', ')}`, 'priority');
    }
    if (t.ok && t.value !== null && t.value !== '') priority = t.value;
  }
  const labels = list('labels', false, () => true, 'must be a list of strings');
  let assignee: string | null = null;
  if (has('assignee')) {
    const t = text_('assignee');
    if (!t.ok) fail(valueLine('assignee'), "'assignee' must be a string or null", 'assignee');
    else assignee = t.value === '' ? null : t.value;
  }
  const dependsOn = list('depends_on', false, (v) => ID_PATTERN.test(v), 'must be a list of task ids');
  const createdMs = timestamp('created');
  const updatedMs = timestamp('updated');
  const startedMs = timestamp('started');
  const completedMs = timestamp('completed');
  const parent = optionalText('parent');
  const command = optionalText('command');
  const result = optionalText('result');

  const task: Task = {
    id,
    title,
    status,
    priority,
    priorityRank: config.priorities.indexOf(priority),
    labels,
    capabilities,
    assignee,
    dependsOn,
    ...(createdMs === undefined ? {} : { createdMs }),
    ...(updatedMs === undefined ? {} : { updatedMs }),
    ...(startedMs === undefined ? {} : { startedMs }),
    ...(completedMs === undefined ? {} : { completedMs }),
    ...(parent === undefined || parent === '' ? {} : { parentTaskId: parent }),
    ...(command === undefined ? {} : { command }),
    ...(result === undefined ? {} : { result }),
    body: text.slice(span.bodyStart),
    fields,
    path: absolute,
    relativePath: displayPath(board, absolute),
    hash: sha256Hex(bytes),
  };
  return { task, idLine: keyLine('id') };
}

import { dirname, resolve, sep } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, type Node, type Pair, type Scalar } from 'yaml';
import { TaskFileError } from './errors.js';
import { readFrontmatter } from './fields.js';
import { rememberParsed } from './frontmatter-plan.js';
import { displayPath, ID_PATTERN, parseTimestampMs, sha256Hex } from './text.js';
import type { BoardConfig, ParseTaskOptions, Task } from './types.js';
import { isYamlProblem, type YamlSource } from './yaml-source.js';

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
  return taskParser(config, boardDir, options)(path, bytes);
}

/**
 * {@link parseTask} for many files of one board: resolves the folders and reads the config once.
 * @returns a function of (path, bytes) that behaves as `parseTask(path, bytes, config, boardDir,
 *   options)` and throws the same {@link TaskFileError}s.
 */
export function taskParser(config: BoardConfig, boardDir: string, options: ParseTaskOptions = {}): (path: string, bytes: Buffer) => ParsedTask {
  const board = resolve(boardDir);
  const root = options.displayRoot === undefined ? dirname(board) : resolve(options.displayRoot);
  const boardPrefix = board + sep;
  const columnIds = config.columns.map((c) => c.id);
  const columns = new Set(columnIds);
  const priorities = new Set(config.priorities);
  return (path, bytes) => {
    const absolute = resolve(path);
    // A file below the board (the usual case) is named by the rest of its path.
    const relativePath =
      absolute.startsWith(boardPrefix) && sep === '/' ? absolute.slice(boardPrefix.length) : displayPath(board, absolute);
    return parseOne(absolute, relativePath, bytes, config, columnIds, columns, priorities, root);
  };
}

function parseOne(
  absolute: string,
  relativePath: string,
  bytes: Buffer,
  config: BoardConfig,
  columnIds: readonly string[],
  columns: ReadonlySet<string>,
  priorities: ReadonlySet<string>,
  root: string,
): ParsedTask {
  const fail = (line: number, reason: string, field?: string): never => {
    throw new TaskFileError({ path: absolute, line, field, reason, displayPath: displayPath(root, absolute) });
  };

  const { text, span, yaml: parsed } = readFrontmatter(bytes, fail);
  // The YAML starts on line 2 of the file.
  if (isYamlProblem(parsed)) return fail(parsed.line + 1, `invalid YAML in the frontmatter: ${parsed.message}`);
  const source: YamlSource = parsed;
  const contents = source.doc.contents;
  if (!isMap(contents) || source.value === null || typeof source.value !== 'object' || Array.isArray(source.value)) {
    return fail(1, 'the frontmatter must be a YAML mapping of fields (id, title, status, capabilities, …)');
  }
  // Where its values sit, for Warren's next write of this file's owned fields (no second parse).
  rememberParsed(text.slice(span.yamlStart, span.yamlEnd), source.doc, text.length);
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

  const requireText = (name: string, check: (value: string) => boolean, must: () => string): string => {
    if (!has(name)) return fail(1, `'${name}' is required`, name);
    const t = text_(name);
    if (!t.ok || t.value === null || !check(t.value)) return fail(valueLine(name), `'${name}' ${must()}`, name);
    return t.value;
  };
  const optionalText = (name: string): string | undefined => {
    if (!has(name)) return undefined;
    const t = text_(name);
    if (!t.ok) return fail(valueLine(name), `'${name}' must be a string`, name);
    return t.value ?? undefined;
  };
  const list = (name: string, required: boolean, itemCheck: ((value: string) => boolean) | null, must: string): string[] => {
    if (!has(name)) return required ? fail(1, `'${name}' is required (use [] for none)`, name) : [];
    const value = fields[name];
    if (value === null && !required) return [];
    if (!Array.isArray(value)) return fail(valueLine(name), `'${name}' ${must}`, name);
    if (value.length === 0) return [];
    const node = pairs.get(name)?.value;
    const items = isSeq(node) ? node.items : [];
    const out = new Array<string>(value.length);
    for (let index = 0; index < value.length; index += 1) {
      const item: unknown = value[index];
      // Strings (the usual case) need no look at their node.
      if (typeof item === 'string' && (itemCheck === null || itemCheck(item))) {
        out[index] = item;
        continue;
      }
      const itemNode = isAlias(node) ? undefined : items[index];
      const t = textOf(itemNode, item);
      if (!t.ok || t.value === null || (itemCheck !== null && !itemCheck(t.value))) {
        return fail(lineAt(itemNode) ?? valueLine(name), `'${name}' ${must}`, name);
      }
      out[index] = t.value;
    }
    return out;
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

  const id = requireText('id', (v) => ID_PATTERN.test(v), () => "must be letters, digits, '.', '_' or '-'");
  const title = requireText('title', (v) => v.trim() !== '', () => 'must be a non-empty string');
  const status = requireText('status', (v) => columns.has(v), () => `must be one of ${columnIds.join(', ')}`);
  const capabilities = list('capabilities', true, (v) => v !== '', 'must be a list of strings');

  let priority = config.defaultPriority;
  if (has('priority')) {
    const t = text_('priority');
    if (!t.ok || (t.value !== null && t.value !== '' && !priorities.has(t.value))) {
      fail(valueLine('priority'), `'priority' must be one of ${config.priorities.join(', ')}`, 'priority');
    }
    if (t.ok && t.value !== null && t.value !== '') priority = t.value;
  }
  const labels = list('labels', false, null, 'must be a list of strings');
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
    relativePath,
    hash: sha256Hex(bytes),
  };
  return { task, idLine: keyLine('id') };
}

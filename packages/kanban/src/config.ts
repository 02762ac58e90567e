import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { BoardConfigError } from './errors.js';
import { displayPath, ID_PATTERN } from './text.js';
import type { BoardConfig, LoadBoardOptions } from './types.js';
import { fieldName, isYamlProblem, lineOf, parseYamlSource, valueLineOf, type YamlSource } from './yaml-source.js';

/** The priorities a board gets when `board.yaml` names none, lowest first. */
export const DEFAULT_PRIORITIES: readonly string[] = ['low', 'normal', 'high', 'urgent'];

const columnId = z
  .string({ error: 'must be a string' })
  .regex(ID_PATTERN, { error: "must be letters, digits, '.', '_' or '-'" });

const columnSchema = z.strictObject(
  {
    id: columnId,
    name: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }),
    wip: z
      .number({ error: 'must be a whole number' })
      .int({ error: 'must be a whole number' })
      .positive({ error: 'must be at least 1' })
      .optional(),
  },
  { error: 'must be a mapping such as { id: ready, name: Ready }' },
);

const rolesSchema = z.strictObject(
  {
    ready: z.string({ error: 'must be a column id' }),
    in_progress: z.string({ error: 'must be a column id' }),
    done: z.string({ error: 'must be a column id' }),
    failed: z.string({ error: 'must be a column id' }),
  },
  { error: 'must be a mapping of ready, in_progress, done and failed to column ids' },
);

const boardSchema = z.strictObject(
  {
    name: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }),
    columns: z.array(columnSchema, { error: 'must be a list of columns' }).min(1, { error: 'must name at least one column' }),
    roles: rolesSchema,
    priorities: z
      .array(z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }), {
        error: 'must be a list of names, lowest first',
      })
      .min(1, { error: 'must name at least one priority' })
      .optional(),
    default_priority: z.string({ error: 'must be a string' }).optional(),
    transitions: z
      .record(z.string(), z.array(z.string({ error: 'must be a column id' }), { error: 'must be a list of column ids' }), {
        error: 'must map each column id to the column ids a task may move to from it',
      })
      .optional(),
    wip_per_agent: z
      .number({ error: 'must be a whole number' })
      .int({ error: 'must be a whole number' })
      .positive({ error: 'must be at least 1' })
      .optional(),
  },
  { error: 'must be a mapping with name, columns and roles' },
);

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/**
 * Validates the text of a `board.yaml` (schema in the package README; unknown keys are errors).
 * Pure apart from resolving `path`.
 *
 * @param text the file's text.
 * @param path the file's path (absolute, or resolved against the working directory).
 * @param options `displayRoot` for messages (default: the board folder's parent).
 * @throws {BoardConfigError} naming the line and key: invalid YAML, unknown or missing keys, wrong
 *   types, duplicate column ids, roles naming no column, duplicate priorities, a default priority
 *   that is not one of the priorities.
 */
export function parseBoardConfig(text: string, path: string, options: LoadBoardOptions = {}): BoardConfig {
  const absolute = resolve(path);
  const root = options.displayRoot === undefined ? dirname(dirname(absolute)) : resolve(options.displayRoot);
  const shown = displayPath(root, absolute);
  const fail = (line: number, reason: string, field?: string, cause?: unknown): never => {
    throw new BoardConfigError({ path: absolute, line, field, reason, displayPath: shown }, cause === undefined ? undefined : { cause });
  };

  const parsed = parseYamlSource(text);
  if (isYamlProblem(parsed)) return fail(parsed.line, `invalid YAML: ${parsed.message}`);
  const source: YamlSource = parsed;

  const result = boardSchema.safeParse(source.value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0] ?? '';
      const at = [...issue.path, key];
      return fail(lineOf(source, at), `unknown key '${key}'`, fieldName(at));
    }
    const field = fieldName(issue.path);
    if (issue.path.length === 0) return fail(1, `board.yaml ${issue.message}`);
    const missing = valueAt(source.value, issue.path) === undefined;
    const reason = missing ? `'${field}' is required` : `'${field}' ${issue.message}`;
    return fail(missing ? lineOf(source, issue.path) : valueLineOf(source, issue.path), reason, field);
  }
  const raw = result.data;

  const seen = new Map<string, number>();
  raw.columns.forEach((column, index) => {
    const first = seen.get(column.id);
    if (first !== undefined) {
      const at = ['columns', index, 'id'];
      fail(valueLineOf(source, at), `column id '${column.id}' is used twice (also columns[${first}])`, fieldName(at));
    }
    seen.set(column.id, index);
  });
  for (const role of ['ready', 'in_progress', 'done', 'failed'] as const) {
    const id = raw.roles[role];
    if (!seen.has(id)) {
      const at = ['roles', role];
      fail(valueLineOf(source, at), `'roles.${role}' names no column: '${id}' (columns: ${[...seen.keys()].join(', ')})`, fieldName(at));
    }
  }
  const priorities = raw.priorities ?? [...DEFAULT_PRIORITIES];
  priorities.forEach((priority, index) => {
    if (priorities.indexOf(priority) !== index) {
      const at = ['priorities', index];
      fail(valueLineOf(source, at), `priority '${priority}' is listed twice`, fieldName(at));
    }
  });
  let defaultPriority = raw.default_priority;
  if (defaultPriority === undefined) {
    if (!priorities.includes('normal')) {
      fail(lineOf(source, ['priorities']), "'default_priority' is required when the priorities do not include 'normal'", 'default_priority');
    }
    defaultPriority = 'normal';
  } else if (!priorities.includes(defaultPriority)) {
    fail(valueLineOf(source, ['default_priority']), `'default_priority' must be one of ${priorities.join(', ')}`, 'default_priority');
  }

  let transitions: BoardConfig['transitions'];
  if (raw.transitions !== undefined) {
    const rules = [];
    for (const [from, targets] of Object.entries(raw.transitions)) {
      if (!seen.has(from)) fail(lineOf(source, ['transitions', from]), `'transitions' names no column: '${from}'`, `transitions.${from}`);
      targets.forEach((to, index) => {
        if (!seen.has(to)) fail(valueLineOf(source, ['transitions', from, index]), `'transitions.${from}' names no column: '${to}'`, `transitions.${from}[${index}]`);
      });
      rules.push({ from: [from], to: [...targets] });
    }
    transitions = { enabled: true, rules };
  }

  return {
    ...(transitions === undefined ? {} : { transitions }),
    ...(raw.wip_per_agent === undefined ? {} : { wipPerAgent: raw.wip_per_agent }),
    name: raw.name,
    columns: raw.columns.map((c) => (c.wip === undefined ? { id: c.id, name: c.name } : { id: c.id, name: c.name, wip: c.wip })),
    roles: { ...raw.roles },
    priorities,
    defaultPriority,
  };
}

/**
 * Reads and validates `<dir>/board.yaml`.
 *
 * @param dir the board folder.
 * @param options `displayRoot` for messages (default: the board folder's parent).
 * @throws {BoardConfigError} when the file cannot be read (line 0, with `cause`) or is invalid
 *   (see {@link parseBoardConfig}).
 */
export async function loadBoardConfig(dir: string, options: LoadBoardOptions = {}): Promise<BoardConfig> {
  const boardDir = resolve(dir);
  const path = join(boardDir, 'board.yaml');
  const root = options.displayRoot === undefined ? dirname(boardDir) : resolve(options.displayRoot);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new BoardConfigError(
      { path, line: 0, reason: `cannot read the board config: ${(error as Error).message}`, displayPath: displayPath(root, path) },
      { cause: error },
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw new BoardConfigError({ path, line: 0, reason: 'not valid UTF-8', displayPath: displayPath(root, path) }, { cause: error });
  }
  return parseBoardConfig(text, path, { displayRoot: root });
}

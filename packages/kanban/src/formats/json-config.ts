/**
 * Task files with a board config in JSON, as Promethean keeps them (`promethean.kanban.json`): a
 * `*.kanban.json` file in the board folder with `tasksDir` (relative to it), `statusValues` (the
 * columns, in order), `priorityValues`, `requiredFields`, `wipLimits` (status → limit) and
 * `transitionRules` (`{ enabled, rules: [{ from: [..], to: [..], description }] }`). Each task is a
 * markdown file in `tasksDir` with YAML frontmatter: `uuid` (or `id`), `title`, `status`,
 * `priority`, `labels`/`tags`, `capabilities`, `depends_on`/`dependencies`, `parent`, `assignee`,
 * `created_at`. Keys starting with `_` and unknown keys of the config are ignored.
 */
import type { Dirent } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { checkDraft, checkReadsBack, creationTime, firstFree, prioritySpelling, titleFileName, withCreateLock, withFinalNewline, writeNewFile } from '../create.js';
import { BoardConfigError, TaskCreateError, TaskUpdateError } from '../errors.js';
import { FrontmatterFields } from '../fields.js';
import { isInside, keepFirstById, readAndParse } from '../load.js';
import { capabilitiesFromTags, columnIdOf, isMappingProblem, mappingFileError, mapPriority, MAPPED_PRIORITIES, statusKey, statusResolver } from '../mapping.js';
import { decodeUtf8, displayPath, firstInvalidUtf8, ID_PATTERN, MAX_TASK_FILE_BYTES } from '../text.js';
import type {
  BoardColumn,
  BoardConfig,
  BoardFormat,
  BoardSnapshot,
  CreateTaskOptions,
  CreateTaskResult,
  LoadBoardOptions,
  OwnedFieldChanges,
  Task,
  TaskDraft,
  TransitionRule,
  UpdateTaskOptions,
  UpdateTaskResult,
} from '../types.js';
import { checkChanges, doubleQuoted, formatOwnedValue, updateFrontmatterFile, type FieldWrite } from '../update.js';
import { isYamlProblem, lineOf, parseYamlSource, valueLineOf, type YamlSource } from '../yaml-source.js';
import { uniqueColumnIds } from './common.js';

async function configFile(dir: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  const found = names.filter((n) => n.endsWith('.kanban.json')).sort();
  for (const name of found) {
    try {
      if (/"statusValues"\s*:/.test(await readFile(join(dir, name), 'utf8'))) return join(dir, name);
    } catch {
      // unreadable: not this one
    }
  }
  return undefined;
}

interface JsonBoard {
  readonly config: BoardConfig;
  readonly tasksDir: string;
  readonly exts: string[];
  readonly requiredFields: string[];
  readonly priorityValues: string[] | undefined;
  readonly resolve: (value: string) => string | undefined;
}

async function loadJsonConfig(path: string, dir: string, root: string, options: LoadBoardOptions): Promise<JsonBoard> {
  const shown = displayPath(root, path);
  const fail = (line: number, reason: string, field?: string, cause?: unknown): never => {
    throw new BoardConfigError({ path, line, field, reason, displayPath: shown }, cause === undefined ? undefined : { cause });
  };
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    return fail(0, `cannot read the board config: ${(error as Error).message}`, undefined, error);
  }
  if (firstInvalidUtf8(bytes) !== -1) return fail(0, 'not valid UTF-8');
  const text = decodeUtf8(bytes).replace(/^\uFEFF/, '');
  try {
    JSON.parse(text);
  } catch (error) {
    const position = /position (\d+)/.exec((error as Error).message);
    const line = position ? text.slice(0, Number(position[1])).split('\n').length : 1;
    return fail(line, `invalid JSON: ${(error as Error).message}`, undefined, error);
  }
  // JSON is YAML 1.2: parse it again as YAML to know the line of every key.
  const parsed = parseYamlSource(text);
  if (isYamlProblem(parsed)) return fail(parsed.line, `invalid JSON: ${parsed.message}`);
  const source: YamlSource = parsed;
  const raw = (source.value ?? {}) as Record<string, unknown>;
  const stringList = (key: string, required: boolean): string[] | undefined => {
    const value = raw[key];
    if (value === undefined && !required) return undefined;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v.trim() !== '')) {
      return fail(value === undefined ? 1 : valueLineOf(source, [key]), `'${key}' must be a list of non-empty strings`, key);
    }
    return value as string[];
  };
  const tasksDirValue = raw['tasksDir'];
  if (typeof tasksDirValue !== 'string' || tasksDirValue.trim() === '') return fail(lineOf(source, ['tasksDir']), "'tasksDir' must be a folder path", 'tasksDir');
  const tasksDir = resolve(dir, tasksDirValue);
  if (tasksDir !== dir && !isInside(dir, tasksDir)) return fail(valueLineOf(source, ['tasksDir']), "'tasksDir' must be inside the board folder", 'tasksDir');
  const statusValues = stringList('statusValues', true)!;
  if (statusValues.length === 0) return fail(valueLineOf(source, ['statusValues']), "'statusValues' must name at least one status", 'statusValues');
  const ids = uniqueColumnIds(statusValues.map(columnIdOf));
  let columns: BoardColumn[] = statusValues.map((value, index) => ({ id: ids[index]!, name: value, value }));
  const resolver = statusResolver(columns, options.mapping);
  if (isMappingProblem(resolver)) {
    const inMapping = mappingFileError(resolver, options.mapping);
    if (inMapping) throw inMapping;
    return fail(lineOf(source, ['statusValues']), resolver.reason, resolver.field);
  }

  const wipLimits = raw['wipLimits'];
  if (wipLimits !== undefined) {
    if (wipLimits === null || typeof wipLimits !== 'object' || Array.isArray(wipLimits)) return fail(lineOf(source, ['wipLimits']), "'wipLimits' must map statuses to limits", 'wipLimits');
    const limits = new Map<string, number>();
    for (const [status, limit] of Object.entries(wipLimits)) {
      const id = resolver.resolve(status);
      if (id === undefined) return fail(lineOf(source, ['wipLimits', status]), `'wipLimits' names no status: '${status}'`, `wipLimits.${status}`);
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0) {
        return fail(valueLineOf(source, ['wipLimits', status]), `'wipLimits.${status}' must be a whole number`, `wipLimits.${status}`);
      }
      limits.set(id, limit);
    }
    columns = columns.map((c) => (limits.has(c.id) ? { ...c, wip: limits.get(c.id)! } : c));
  }

  let transitions: BoardConfig['transitions'];
  const tr = raw['transitionRules'] as Record<string, unknown> | undefined;
  if (tr !== undefined) {
    if (tr === null || typeof tr !== 'object' || !Array.isArray(tr['rules'])) return fail(lineOf(source, ['transitionRules']), "'transitionRules' must have a list of 'rules'", 'transitionRules');
    const rules: TransitionRule[] = [];
    (tr['rules'] as unknown[]).forEach((rule, index) => {
      const at = ['transitionRules', 'rules', index];
      const r = rule as Record<string, unknown>;
      const side = (key: 'from' | 'to'): string[] => {
        const list = r?.[key];
        if (!Array.isArray(list)) return fail(lineOf(source, [...at, key]), `'transitionRules.rules[${index}].${key}' must be a list of statuses`, `transitionRules.rules[${index}].${key}`);
        return list.map((value: unknown, i) => {
          const id = typeof value === 'string' ? resolver.resolve(value) : undefined;
          if (id === undefined) return fail(valueLineOf(source, [...at, key, i]), `'transitionRules.rules[${index}].${key}' names no status: ${JSON.stringify(value)}`, `transitionRules.rules[${index}].${key}`);
          return id;
        });
      };
      const description = typeof r?.['description'] === 'string' ? r['description'] : undefined;
      rules.push({ from: side('from'), to: side('to'), ...(description === undefined ? {} : { description }) });
    });
    transitions = { enabled: tr['enabled'] !== false, rules };
  }

  const priorityValues = stringList('priorityValues', false);
  for (const [index, value] of (priorityValues ?? []).entries()) {
    if (mapPriority(value, options.mapping) === undefined) {
      fail(valueLineOf(source, ['priorityValues', index]), `priority '${value}' maps to none of ${MAPPED_PRIORITIES.join(', ')}; add it to mapping.priorities`, `priorityValues[${index}]`);
    }
  }
  const mapping = options.mapping ?? {};
  const config: BoardConfig = {
    name: typeof raw['name'] === 'string' ? raw['name'] : basename(dir),
    columns,
    roles: resolver.roles,
    priorities: MAPPED_PRIORITIES,
    defaultPriority: 'normal',
    ...(transitions === undefined ? {} : { transitions }),
    ...(mapping.wipPerAgent === undefined ? {} : { wipPerAgent: mapping.wipPerAgent }),
    parentDoneWhenSubtasksDone: mapping.parentDoneWhenSubtasksDone ?? true,
  };
  return {
    config,
    tasksDir,
    exts: stringList('exts', false) ?? ['.md'],
    requiredFields: stringList('requiredFields', false) ?? ['title', 'status'],
    priorityValues,
    resolve: resolver.resolve,
  };
}

function parseJsonTask(path: string, bytes: Buffer, dir: string, root: string, board: JsonBoard, options: LoadBoardOptions): { task: Task; idLine: number } {
  const f = FrontmatterFields.parse(path, bytes, displayPath(root, path));
  for (const field of board.requiredFields) {
    if (!f.has(field)) f.fail(2, `'${field}' is required (requiredFields)`, field);
    const value = f.fields[field];
    if (value === null || (typeof value === 'string' && value.trim() === '')) f.fail(f.valueLine(field), `'${field}' is required (requiredFields) but empty`, field);
  }
  const idField = f.has('uuid') ? 'uuid' : 'id';
  const id = f.text(idField)?.trim();
  if (id === undefined || id === '') return f.fail(f.has(idField) ? f.valueLine(idField) : 2, "'uuid' (or 'id') is required", idField);
  if (!ID_PATTERN.test(id)) f.fail(f.valueLine(idField), `'${idField}' must be letters, digits, '.', '_' or '-'`, idField);
  const title = f.text('title');
  if (title === undefined || title === null || title.trim() === '') return f.fail(f.has('title') ? f.valueLine('title') : 2, "'title' is required", 'title');
  const statusValue = f.text('status');
  if (statusValue === undefined || statusValue === null || statusValue.trim() === '') return f.fail(f.has('status') ? f.valueLine('status') : 2, "'status' is required", 'status');
  const status = board.resolve(statusValue);
  if (status === undefined) {
    return f.fail(f.valueLine('status'), `'status' must be one of ${board.config.columns.map((c) => c.value ?? c.id).join(', ')} (got '${statusValue}')`, 'status');
  }
  let priority = board.config.defaultPriority;
  const priorityValue = f.text('priority');
  if (priorityValue !== undefined && priorityValue !== null && priorityValue.trim() !== '') {
    const listed = board.priorityValues === undefined || board.priorityValues.some((p) => p === priorityValue || statusKey(p) === statusKey(priorityValue));
    const mapped = mapPriority(priorityValue, options.mapping);
    if (!listed || mapped === undefined) {
      return f.fail(f.valueLine('priority'), `'priority' must be one of ${(board.priorityValues ?? ['P0', 'P1', 'P2', 'P3']).join(', ')} (got '${priorityValue}')`, 'priority');
    }
    priority = mapped;
  }
  const labels = [...new Set([...f.list('labels'), ...f.list('tags')])];
  const capabilities = [...new Set([...f.list('capabilities'), ...capabilitiesFromTags(labels, options.mapping)])];
  const dependsOn = [...new Set([...f.list('depends_on'), ...f.list('dependencies')])];
  const parent = f.text('parent') ?? f.text('parent_task_id');
  const assignee = f.text('assignee');
  const createdMs = f.timestampMs(f.has('created_at') ? 'created_at' : 'created');
  const updatedMs = f.timestampMs(f.has('updated_at') ? 'updated_at' : 'updated');
  const result = f.text('result');
  const task: Task = {
    id,
    title,
    status,
    priority,
    priorityRank: MAPPED_PRIORITIES.indexOf(priority),
    labels,
    capabilities,
    assignee: assignee === undefined || assignee === null || assignee.trim() === '' ? null : assignee.replace(/^@/, ''),
    dependsOn,
    ...(createdMs === undefined ? {} : { createdMs }),
    ...(updatedMs === undefined ? {} : { updatedMs }),
    ...(result === undefined || result === null ? {} : { result }),
    ...(parent === undefined || parent === null || parent.trim() === '' ? {} : { parentTaskId: parent.trim() }),
    body: f.body,
    fields: f.fields,
    path,
    relativePath: displayPath(dir, path),
    hash: f.hash,
  };
  return { task, idLine: f.keyLine(idField) };
}

async function load(dirArg: string, options: LoadBoardOptions = {}): Promise<BoardSnapshot> {
  const dir = resolve(dirArg);
  const root = options.displayRoot === undefined ? dirname(dir) : resolve(options.displayRoot);
  const path = await configFile(dir);
  if (path === undefined) {
    throw new BoardConfigError({ path: dir, line: 0, reason: 'no *.kanban.json board config with statusValues in the folder', displayPath: displayPath(root, dir) });
  }
  const board = await loadJsonConfig(path, dir, root, options);
  let entries: Dirent[];
  try {
    entries = await readdir(board.tasksDir, { withFileTypes: true });
  } catch (error) {
    throw new BoardConfigError(
      { path: board.tasksDir, line: 0, reason: `cannot list tasksDir: ${(error as Error).message}`, displayPath: displayPath(root, board.tasksDir) },
      { cause: error },
    );
  }
  const names = entries
    .map((e) => e.name)
    .filter((n) => !n.startsWith('.') && board.exts.some((ext) => n.endsWith(ext)))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const realBoard = await realpath(dir);
  const results = await readAndParse(names.map((name) => join(board.tasksDir, name)), realBoard, root, (file, bytes) =>
    parseJsonTask(file, bytes, dir, root, board, options),
  );
  const { parsed, errors } = keepFirstById(results, root, { field: 'uuid', keepPathOf: options.keepPathOf });
  const tasks = parsed.map((p) => p.task);
  return { dir, format: 'json-config', configPath: path, config: board.config, tasks, errors, ...(options.mapping ? { mapping: options.mapping } : {}) };
}

/**
 * The frontmatter writes for owned-field changes on a JSON-config task: `status` as the column's
 * status value, `assignee`, `result`, and the timestamps as `started_at`, `completed_at`,
 * `updated_at` (ISO 8601).
 */
export function jsonConfigWrites(config: BoardConfig, changes: OwnedFieldChanges, path: string): FieldWrite[] {
  const keys: Record<string, string> = { status: 'status', assignee: 'assignee', result: 'result', started: 'started_at', completed: 'completed_at', updated: 'updated_at' };
  return checkChanges(path, changes).map(([field, value]) => {
    let written = value;
    if (field === 'status') {
      const column = config.columns.find((c) => c.id === value);
      if (!column) throw new TaskUpdateError(path, `'status' names no column: '${String(value)}'`, 'status');
      written = column.value ?? column.id;
    }
    return { key: keys[field]!, value: written, yaml: formatOwnedValue(written) };
  });
}

async function update(snapshot: BoardSnapshot, task: Task, changes: OwnedFieldChanges, options: UpdateTaskOptions = {}): Promise<UpdateTaskResult> {
  return updateFrontmatterFile(task.path, jsonConfigWrites(snapshot.config, changes, task.path), options);
}

/** The frontmatter fields a new task file can fill; a `requiredFields` entry outside these cannot be met. */
const WRITTEN_FIELDS = new Set(['uuid', 'id', 'title', 'status', 'priority', 'labels', 'tags', 'capabilities', 'depends_on', 'dependencies', 'created_at']);

/**
 * Creates a task on a JSON-config board: a markdown file in `tasksDir` named after the title
 * (`Fix the login form.md`, ` 2` added when taken), its frontmatter in the board's style (double
 * quoted): a new `uuid` (RFC 4122 version 4), `title`, `status` as the column's status value,
 * `priority` as the board's `priorityValues` spell it (written when given or when `requiredFields`
 * names it), `labels`, `capabilities`, `depends_on`, `parent` when given, `created_at`.
 */
async function create(snapshot: BoardSnapshot, draft: TaskDraft, options: CreateTaskOptions = {}): Promise<CreateTaskResult> {
  const where = snapshot.dir;
  const checked = checkDraft(snapshot, draft, where);
  const configPath = snapshot.configPath ?? (await configFile(snapshot.dir));
  if (configPath === undefined) throw new TaskCreateError(where, 'no *.kanban.json board config with statusValues in the folder');
  const mapping = snapshot.mapping;
  return withCreateLock(snapshot.dir, options, async () => {
    const board = await loadJsonConfig(configPath, snapshot.dir, dirname(snapshot.dir), mapping ? { mapping } : {});
    const missing = board.requiredFields.find((field) => !WRITTEN_FIELDS.has(field) && !(field === 'parent' && checked.parent !== undefined));
    if (missing !== undefined) throw new TaskCreateError(where, `the board requires '${missing}' (requiredFields), which a draft cannot give`, missing);
    const spellings = board.priorityValues ?? ['P0', 'P1', 'P2', 'P3'];
    const wanted = checked.priority ?? (board.requiredFields.includes('priority') ? { given: board.config.defaultPriority, value: board.config.defaultPriority } : undefined);
    const priority = wanted && prioritySpelling(snapshot, wanted, spellings, where);
    const required = (field: string): boolean => board.requiredFields.includes(field);
    const list = (values: readonly string[]): string => `[${values.map(doubleQuoted).join(', ')}]`;
    const id = firstFree(randomUUID(), (candidate) => snapshot.tasks.some((t) => t.id === candidate));
    const created = creationTime(options);
    const lines = [
      '---',
      `uuid: ${doubleQuoted(id)}`,
      `title: ${doubleQuoted(checked.title)}`,
      `status: ${doubleQuoted(checked.column.value ?? checked.column.id)}`,
      ...(priority === undefined ? [] : [`priority: ${doubleQuoted(priority)}`]),
      ...(checked.labels.length > 0 || required('labels') ? [`labels: ${list(checked.labels)}`] : []),
      ...(required('tags') ? ['tags: []'] : []),
      ...(checked.capabilities.length > 0 || required('capabilities') ? [`capabilities: ${list(checked.capabilities)}`] : []),
      ...(checked.dependsOn.length > 0 || required('depends_on') ? [`depends_on: ${list(checked.dependsOn)}`] : []),
      ...(required('dependencies') ? ['dependencies: []'] : []),
      ...(checked.parent === undefined ? [] : [`parent: ${doubleQuoted(checked.parent)}`]),
      ...(required('id') ? [`id: ${doubleQuoted(id)}`] : []),
      `created_at: ${doubleQuoted(created.toISOString())}`,
      '---',
    ];
    const bytes = Buffer.from(`${lines.join('\n')}\n${withFinalNewline(checked.body)}`, 'utf8');
    if (bytes.length > MAX_TASK_FILE_BYTES) throw new TaskCreateError(where, `the task file would be ${bytes.length} bytes; at most ${MAX_TASK_FILE_BYTES} (1 MiB) are read`, 'body');
    try {
      await mkdir(board.tasksDir, { recursive: true });
    } catch (error) {
      throw new TaskCreateError(where, `cannot make tasksDir: ${(error as Error).message}`, undefined, { cause: error });
    }
    const names = new Set(await readdir(board.tasksDir));
    const ext = board.exts[0] ?? '.md';
    const base = titleFileName(checked.title) || id;
    const expected = {
      id,
      title: checked.title,
      status: checked.column.id,
      priority: wanted?.value,
      capabilities: [...new Set([...checked.capabilities, ...capabilitiesFromTags(checked.labels, mapping)])],
      labels: checked.labels,
      dependsOn: checked.dependsOn,
      parent: checked.parent,
    };
    for (;;) {
      const name = firstFree(base, (candidate) => names.has(`${candidate}${ext}`), ' ');
      const path = join(board.tasksDir, `${name}${ext}`);
      checkReadsBack(where, () => parseJsonTask(path, bytes, snapshot.dir, dirname(snapshot.dir), board, mapping ? { mapping } : {}).task, expected);
      if (await writeNewFile(path, bytes, where)) return { id, path };
      names.add(`${name}${ext}`);
    }
  });
}

/** The JSON-config format (see the module comment). */
export const jsonConfigFormat: BoardFormat = {
  name: 'json-config',
  detect: async (dir) => (await configFile(resolve(dir))) !== undefined,
  load,
  update,
  create,
};

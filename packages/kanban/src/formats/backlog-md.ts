/**
 * Backlog.md boards (https://github.com/MrLesk/Backlog.md): `backlog/config.yml` (`statuses`,
 * `default_status`, `task_prefix`, `project_name`) and one markdown file per task in `tasks/`
 * (active) and `completed/`, named `<prefix>-<n> - <Title>.md`, with frontmatter `id`, `title`,
 * `status`, `assignee` (a list; agents as `@name`), `labels`, `dependencies`, `parent_task_id`,
 * `priority`, `created_date`, `updated_date`. `drafts/` and `archive/` are not on the board.
 */
import type { Dirent } from 'node:fs';
import { mkdir, readdir, readFile, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { checkDraft, checkReadsBack, creationTime, prioritySpelling, truncateUtf8, withCreateLock, writeNewFile, type CheckedDraft } from '../create.js';
import { BoardConfigError, TaskCreateError, TaskUpdateError } from '../errors.js';
import { FrontmatterFields } from '../fields.js';
import { keepFirstById, readAndParse } from '../load.js';
import { capabilitiesFromTags, columnIdOf, isMappingProblem, mappingFileError, mapPriority, MAPPED_PRIORITIES, statusResolver } from '../mapping.js';
import { decodeUtf8, displayPath, firstInvalidUtf8, ID_PATTERN, MAX_TASK_FILE_BYTES } from '../text.js';
import type {
  BoardColumn,
  BoardConfig,
  BoardFormat,
  BoardMapping,
  BoardSnapshot,
  CreateTaskOptions,
  CreateTaskResult,
  LoadBoardOptions,
  OwnedFieldChanges,
  Task,
  TaskDraft,
  UpdateTaskOptions,
  UpdateTaskResult,
} from '../types.js';
import { checkChanges, doubleQuoted, formatOwnedValue, singleQuoted, updateFrontmatterFile, type FieldWrite } from '../update.js';
import { isYamlProblem, lineOf, parseYamlSource, valueLineOf } from '../yaml-source.js';
import { uniqueColumnIds } from './common.js';

/** The backlog folder for `dir`: `dir` itself when it holds `config.yml`, else `dir/backlog`. */
async function backlogDir(dir: string): Promise<string | undefined> {
  for (const candidate of [resolve(dir), join(resolve(dir), 'backlog')]) {
    try {
      const text = await readFile(join(candidate, 'config.yml'), 'utf8');
      if (/^statuses\s*:/m.test(text)) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * The key Backlog.md ids are compared by: lower case, the prefix (`back-`, `task-`, `draft-`)
 * dropped, so `task-355.01`, `BACK-355.01` and `355.01` are one task.
 */
export function backlogIdKey(id: string): string {
  return id.trim().toLowerCase().replace(/^[a-z]+-/, '');
}

/** `yyyy-mm-dd hh:mm` in UTC, as Backlog.md's default `date_format` writes dates. */
export function backlogDate(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

interface BacklogConfig {
  readonly config: BoardConfig;
  readonly defaultStatus: string | undefined;
  readonly prefix: string;
  /** `priorities` from config.yml, when it lists them. */
  readonly priorities: string[] | undefined;
  readonly resolve: (value: string) => string | undefined;
}

async function loadBacklogConfig(dir: string, root: string, options: LoadBoardOptions): Promise<BacklogConfig> {
  const path = join(dir, 'config.yml');
  const shown = displayPath(root, path);
  const fail = (line: number, reason: string, field?: string, cause?: unknown): never => {
    throw new BoardConfigError({ path, line, field, reason, displayPath: shown }, cause === undefined ? undefined : { cause });
  };
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    return fail(0, `cannot read the Backlog.md config: ${(error as Error).message}`, undefined, error);
  }
  if (firstInvalidUtf8(bytes) !== -1) return fail(0, 'not valid UTF-8');
  const parsed = parseYamlSource(decodeUtf8(bytes).replace(/^\uFEFF/, ''));
  if (isYamlProblem(parsed)) return fail(parsed.line, `invalid YAML: ${parsed.message}`);
  const raw = (parsed.value ?? {}) as Record<string, unknown>;
  const statuses = raw['statuses'];
  if (!Array.isArray(statuses) || statuses.length === 0 || !statuses.every((s) => typeof s === 'string' && s.trim() !== '')) {
    return fail(lineOf(parsed, ['statuses']), "'statuses' must be a non-empty list of status names", 'statuses');
  }
  const names = statuses as string[];
  const ids = uniqueColumnIds(names.map(columnIdOf));
  const columns: BoardColumn[] = names.map((status, index) => ({ id: ids[index]!, name: status, value: status }));
  const resolver = statusResolver(columns, options.mapping);
  if (isMappingProblem(resolver)) {
    const inMapping = mappingFileError(resolver, options.mapping);
    if (inMapping) throw inMapping;
    return fail(lineOf(parsed, ['statuses']), resolver.reason, resolver.field);
  }
  const defaultStatus = typeof raw['default_status'] === 'string' ? raw['default_status'] : undefined;
  if (defaultStatus !== undefined && resolver.resolve(defaultStatus) === undefined) {
    fail(valueLineOf(parsed, ['default_status']), `'default_status' must be one of ${statuses.join(', ')}`, 'default_status');
  }
  const prefix = typeof raw['task_prefix'] === 'string' && raw['task_prefix'] !== '' ? raw['task_prefix'] : 'task';
  const mapping = options.mapping ?? {};
  const config: BoardConfig = {
    name: typeof raw['project_name'] === 'string' ? raw['project_name'] : basename(dir),
    columns,
    roles: resolver.roles,
    priorities: MAPPED_PRIORITIES,
    defaultPriority: 'normal',
    ...(mapping.wipPerAgent === undefined ? {} : { wipPerAgent: mapping.wipPerAgent }),
    parentDoneWhenSubtasksDone: mapping.parentDoneWhenSubtasksDone ?? true,
  };
  const listed = raw['priorities'];
  const priorities = Array.isArray(listed) && listed.every((p) => typeof p === 'string') ? listed : undefined;
  return { config, defaultStatus, prefix, priorities, resolve: resolver.resolve };
}

interface Parsed {
  readonly task: Task;
  readonly idLine: number;
  readonly rawDependencies: string[];
  readonly rawParent: string | undefined;
}

function parseBacklogTask(path: string, bytes: Buffer, dir: string, root: string, backlog: BacklogConfig, options: LoadBoardOptions): Parsed {
  const f = FrontmatterFields.parse(path, bytes, displayPath(root, path));
  const required = (name: string): string => {
    const value = f.text(name);
    if (value === undefined) return f.fail(2, `'${name}' is required`, name);
    if (value === null || value.trim() === '') return f.fail(f.valueLine(name), `'${name}' must not be empty`, name);
    return value;
  };
  const id = required('id').trim();
  if (!ID_PATTERN.test(id)) f.fail(f.valueLine('id'), "'id' must be letters, digits, '.', '_' or '-'", 'id');
  const title = required('title');
  const statusValue = f.text('status') ?? backlog.defaultStatus;
  if (statusValue === undefined || statusValue === null || statusValue.trim() === '') {
    return f.fail(f.has('status') ? f.valueLine('status') : 2, "'status' is required (the config has no default_status)", 'status');
  }
  const status = backlog.resolve(statusValue);
  if (status === undefined) {
    return f.fail(
      f.valueLine('status'),
      `'status' must be one of ${backlog.config.columns.map((c) => c.value ?? c.id).join(', ')} (got '${statusValue}')`,
      'status',
    );
  }
  let priority = backlog.config.defaultPriority;
  const priorityValue = f.text('priority');
  if (priorityValue !== undefined && priorityValue !== null && priorityValue.trim() !== '') {
    const mapped = mapPriority(priorityValue, options.mapping);
    if (mapped === undefined) return f.fail(f.valueLine('priority'), `'priority' must be one of low, medium, high (got '${priorityValue}')`, 'priority');
    priority = mapped;
  }
  const assignees = f.list('assignee').map((a) => a.replace(/^@/, '').trim()).filter((a) => a !== '');
  const labels = f.list('labels');
  const rawDependencies = f.list('dependencies');
  const parent = f.text('parent_task_id');
  const createdMs = f.timestampMs('created_date');
  const updatedMs = f.timestampMs('updated_date');
  const completedMs = f.timestampMs('completed_date');
  const task: Task = {
    id,
    title,
    status,
    priority,
    priorityRank: MAPPED_PRIORITIES.indexOf(priority),
    labels,
    capabilities: capabilitiesFromTags(labels, options.mapping),
    assignee: assignees[0] ?? null,
    dependsOn: rawDependencies,
    ...(createdMs === undefined ? {} : { createdMs }),
    ...(updatedMs === undefined ? {} : { updatedMs }),
    ...(completedMs === undefined ? {} : { completedMs }),
    ...(parent === undefined || parent === null || parent.trim() === '' ? {} : { parentTaskId: parent.trim() }),
    body: f.body,
    fields: f.fields,
    path,
    relativePath: displayPath(dir, path),
    hash: f.hash,
  };
  return { task, idLine: f.keyLine('id'), rawDependencies, rawParent: parent ?? undefined };
}

async function load(dirArg: string, options: LoadBoardOptions = {}): Promise<BoardSnapshot> {
  const dir = (await backlogDir(dirArg)) ?? resolve(dirArg);
  const root = options.displayRoot === undefined ? dirname(dir) : resolve(options.displayRoot);
  const backlog = await loadBacklogConfig(dir, root, options);
  const realBoard = await realpath(dir);
  const folders = options.mapping?.taskFolders ?? ['tasks', 'completed'];
  const paths: string[] = [];
  const prefixes = [...new Set([backlog.prefix.toLowerCase(), 'task'])];
  for (const folder of folders) {
    const folderPath = join(dir, folder);
    let entries: Dirent[];
    try {
      entries = await readdir(folderPath, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new BoardConfigError(
        { path: folderPath, line: 0, reason: `cannot list the task folder: ${(error as Error).message}`, displayPath: displayPath(root, folderPath) },
        { cause: error },
      );
    }
    const names = entries
      .map((e) => e.name)
      .filter((name) => name.endsWith('.md') && !name.startsWith('.') && prefixes.some((p) => name.toLowerCase().startsWith(`${p}-`)))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) paths.push(join(folderPath, name));
  }
  const results = await readAndParse(paths, realBoard, root, (path, bytes) => parseBacklogTask(path, bytes, dir, root, backlog, options));
  const { parsed, errors } = keepFirstById(results, root, { key: backlogIdKey, keepPathOf: options.keepPathOf });
  const byKey = new Map(parsed.map((p) => [backlogIdKey(p.task.id), p.task]));
  const canonical = (raw: string): string => byKey.get(backlogIdKey(raw))?.id ?? raw.trim();
  const tasks = parsed.map(({ task, rawDependencies, rawParent }) => ({
    ...task,
    dependsOn: [...new Set(rawDependencies.map(canonical))],
    ...(rawParent === undefined || rawParent.trim() === '' ? {} : { parentTaskId: canonical(rawParent) }),
  }));
  return { dir, format: 'backlog-md', configPath: join(dir, 'config.yml'), config: backlog.config, tasks, errors, ...(options.mapping ? { mapping: options.mapping } : {}) };
}

/**
 * The frontmatter writes for Warren's owned-field changes on a Backlog.md task: `status` as the
 * column's Backlog status (`In Progress`), `assignee` as a block list of `@name` (`[]` for none),
 * `updated` as `updated_date: 'yyyy-mm-dd hh:mm'` (UTC). Backlog.md has no fields for `result`,
 * `started` and `completed`: `result` goes into the body's Implementation Notes instead
 * ({@link withResultNote}); the times are not written (the audit trail keeps them).
 */
export function backlogWrites(config: BoardConfig, changes: OwnedFieldChanges, path: string): FieldWrite[] {
  const writes: FieldWrite[] = [];
  for (const [field, value] of checkChanges(path, changes)) {
    if (field === 'status') {
      const column = config.columns.find((c) => c.id === value);
      if (!column) throw new TaskUpdateError(path, `'status' names no column: '${String(value)}'`, 'status');
      const status = column.value ?? column.id;
      writes.push({ key: 'status', value: status, yaml: formatOwnedValue(status) });
    } else if (field === 'assignee') {
      if (value === null) writes.push({ key: 'assignee', value: [], yaml: '[]' });
      else {
        const name = `@${value.replace(/^@/, '')}`;
        writes.push({ key: 'assignee', value: [name], yaml: '', blockLines: [`- '${name.replace(/'/g, "''")}'`] });
      }
    } else if (field === 'updated' && value !== null) {
      const date = backlogDate(value);
      writes.push({ key: 'updated_date', value: date, yaml: `'${date}'` });
    }
  }
  return writes;
}

async function update(snapshot: BoardSnapshot, task: Task, changes: OwnedFieldChanges, options: UpdateTaskOptions = {}): Promise<UpdateTaskResult> {
  const result = changes.result;
  return updateFrontmatterFile(task.path, backlogWrites(snapshot.config, changes, task.path), options, result === undefined ? undefined : (text) => withResultNote(text, result));
}

/** Where Backlog.md keeps a task's implementation notes (`backlog task edit --notes`), and Warren's block inside them. */
const NOTES_BEGIN = '<!-- SECTION:NOTES:BEGIN -->';
const NOTES_END = '<!-- SECTION:NOTES:END -->';
const RESULT_BEGIN = '<!-- WARREN:RESULT:BEGIN -->';
const RESULT_END = '<!-- WARREN:RESULT:END -->';

/**
 * A Backlog.md task file's text with Warren's result in its Implementation Notes: the block
 * between `<!-- WARREN:RESULT:BEGIN -->` and `<!-- WARREN:RESULT:END -->` is replaced (or removed
 * for `null`); without one, it is put first inside the notes section
 * (`<!-- SECTION:NOTES:BEGIN -->`, Backlog.md's own markers), and without notes, a `##
 * Implementation Notes` section is appended. What people wrote in the notes stays. Comment
 * markers inside the result are defused. Pure.
 */
export function withResultNote(text: string, result: string | null): string {
  const newline = text.includes('\r\n') ? '\r\n' : '\n';
  const block = result === null ? '' : [RESULT_BEGIN, `Warren: ${result.replace(/<!--/g, '<!—').replace(/-->/g, '—>').trim()}`, RESULT_END].join(newline);
  const start = text.indexOf(RESULT_BEGIN);
  const end = start < 0 ? -1 : text.indexOf(RESULT_END, start);
  if (start >= 0 && end >= 0) {
    let after = end + RESULT_END.length;
    // Removing the block takes its line ending with it.
    if (block === '' && text.startsWith(newline, after)) after += newline.length;
    return text.slice(0, start) + block + text.slice(after);
  }
  if (block === '') return text;
  const notes = text.indexOf(NOTES_BEGIN);
  if (notes >= 0 && text.indexOf(NOTES_END, notes) > notes) {
    const at = notes + NOTES_BEGIN.length;
    return `${text.slice(0, at)}${newline}${block}${text.slice(at)}`;
  }
  const ending = text.endsWith(newline) ? '' : newline;
  return `${text}${ending}${newline}## Implementation Notes${newline}${newline}${NOTES_BEGIN}${newline}${block}${newline}${NOTES_END}${newline}`;
}

/** A YAML scalar as Backlog.md writes one: plain when safe, else in single quotes (double when single ones cannot hold it). */
function backlogScalar(value: string): string {
  const written = formatOwnedValue(value);
  return written.startsWith('"') ? (singleQuoted(value) ?? doubleQuoted(value)) : written;
}

/** A Backlog.md list value: `[]` when empty, else a block list (`\n  - bug`). */
function backlogList(values: readonly string[]): string {
  return values.length === 0 ? ' []' : values.map((v) => `\n  - ${backlogScalar(v)}`).join('');
}

/**
 * The title part of a Backlog.md task file name, as Backlog.md makes it: characters unsafe in paths
 * (`<>:"/\|?*`) become `-`, the punctuation `'(),!@#$%^&+=[]{};` is dropped, runs of blanks become
 * `-`, runs of `-` one, no `-` at either end; cut to 200 bytes of UTF-8; `task` when nothing is left.
 */
export function backlogFileTitle(title: string): string {
  const name = title
    .replace(/[<>:"/\\|?*]/g, '-')
    .replace(/['(),!@#$%^&+=[\]{};]/g, '')
    .replace(/\s+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
  const cut = truncateUtf8(name, 200).replace(/-$/, '');
  return cut === '' ? 'task' : cut;
}

/** Each capability as the label that requires it on this board (a prefixed label, or a `mapping.capabilities` label). */
function capabilityLabels(capabilities: readonly string[], mapping: BoardMapping | undefined, where: string): string[] {
  return capabilities.map((capability) => {
    if (capabilitiesFromTags([capability], mapping).includes(capability)) return capability;
    const named = Object.entries(mapping?.capabilities ?? {}).find(([, list]) => list.includes(capability));
    if (named) return named[0];
    const prefixes = (mapping?.capabilityPrefixes ?? ['cap:', 'tool:', 'env:', 'role:']).join(', ');
    throw new TaskCreateError(where, `capability '${capability}' has no label on this board: give it a prefix (${prefixes}) or name a label for it in mapping.capabilities`, 'capabilities');
  });
}

/** The highest task number used in the backlog's task folders (files named `<prefix>-<n>…`), and in `ids`. */
async function highestTaskNumber(dir: string, prefixes: readonly string[], folders: readonly string[], ids: readonly string[]): Promise<number> {
  let highest = 0;
  const consider = (name: string): void => {
    const lower = name.toLowerCase();
    for (const prefix of prefixes) {
      const m = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)`).exec(lower);
      if (m) highest = Math.max(highest, Number(m[1]));
    }
  };
  for (const folder of folders) {
    const names = await readdir(join(dir, folder)).catch(() => [] as string[]);
    names.forEach(consider);
  }
  ids.forEach(consider);
  return highest;
}

/** The text of a new Backlog.md task file, fields in Backlog.md's order, the body in its Description section. */
function backlogNewTaskText(id: string, draft: CheckedDraft, status: string, labels: readonly string[], priority: string | undefined, created: Date): string {
  const lines = [
    '---',
    `id: ${id}`,
    `title: ${backlogScalar(draft.title)}`,
    `status: ${backlogScalar(status)}`,
    'assignee: []',
    `created_date: '${backlogDate(created.toISOString())}'`,
    `labels:${backlogList(labels)}`,
    `dependencies:${backlogList(draft.dependsOn)}`,
    ...(draft.parent === undefined ? [] : [`parent_task_id: ${backlogScalar(draft.parent)}`]),
    ...(priority === undefined ? [] : [`priority: ${backlogScalar(priority)}`]),
    '---',
    '',
  ];
  const body = draft.body.replace(/\n+$/, '');
  const description = body === '' ? [] : ['## Description', '', '<!-- SECTION:DESCRIPTION:BEGIN -->', body, '<!-- SECTION:DESCRIPTION:END -->', ''];
  return [...lines, ...description].join('\n');
}

/**
 * Creates a Backlog.md task: `tasks/<prefix>-<n> - <Title>.md` with the next free number (one more
 * than the highest in `tasks/`, `completed/`, `drafts/`, `archive/tasks/` and the board), the id
 * spelled as the board spells its ids (`BACK-637`; upper case by default), the status as the
 * column's Backlog status, capabilities as labels, the priority as the board's `priorities` name it
 * (default `high`, `medium`, `low`), a parent as `parent_task_id` (after `dependencies`, where
 * Backlog.md writes it), the body in the Description section.
 */
async function create(snapshot: BoardSnapshot, draft: TaskDraft, options: CreateTaskOptions = {}): Promise<CreateTaskResult> {
  const where = snapshot.dir;
  const checked = checkDraft(snapshot, draft, where, { idKey: backlogIdKey });
  const mapping = snapshot.mapping;
  const labels = [...checked.labels];
  for (const label of capabilityLabels(checked.capabilities, mapping, where)) if (!labels.includes(label)) labels.push(label);
  const capabilities = capabilitiesFromTags(labels, mapping);
  return withCreateLock(snapshot.dir, options, async () => {
    const backlog = await loadBacklogConfig(snapshot.dir, dirname(snapshot.dir), mapping ? { mapping } : {});
    const priority = checked.priority && prioritySpelling(snapshot, checked.priority, backlog.priorities ?? ['high', 'medium', 'low'], where);
    const prefix = backlog.prefix;
    const lowerPrefix = prefix.toLowerCase();
    const upper = !snapshot.tasks.some((t) => t.id.startsWith(`${lowerPrefix}-`)) || snapshot.tasks.some((t) => t.id.startsWith(`${prefix.toUpperCase()}-`));
    const folders = [...new Set([...(mapping?.taskFolders ?? ['tasks', 'completed']), 'tasks', 'completed', 'drafts', join('archive', 'tasks')])];
    let number = (await highestTaskNumber(snapshot.dir, [...new Set([lowerPrefix, 'task'])], folders, snapshot.tasks.map((t) => t.id))) + 1;
    const tasksDir = join(snapshot.dir, 'tasks');
    try {
      await mkdir(tasksDir, { recursive: true });
    } catch (error) {
      throw new TaskCreateError(where, `cannot make the task folder: ${(error as Error).message}`, undefined, { cause: error });
    }
    const status = checked.column.value ?? checked.column.name;
    const created = creationTime(options);
    for (;; number += 1) {
      const id = `${upper ? prefix.toUpperCase() : lowerPrefix}-${number}`;
      const path = join(tasksDir, `${id.toLowerCase()} - ${backlogFileTitle(checked.title)}.md`);
      const bytes = Buffer.from(backlogNewTaskText(id, checked, status, labels, priority, created), 'utf8');
      if (bytes.length > MAX_TASK_FILE_BYTES) throw new TaskCreateError(where, `the task file would be ${bytes.length} bytes; at most ${MAX_TASK_FILE_BYTES} (1 MiB) are read`, 'body');
      checkReadsBack(where, () => parseBacklogTask(path, bytes, snapshot.dir, dirname(snapshot.dir), backlog, mapping ? { mapping } : {}).task, {
        id,
        title: checked.title,
        status: checked.column.id,
        priority: checked.priority?.value,
        capabilities,
        labels,
        dependsOn: checked.dependsOn,
        parent: checked.parent,
      });
      if (await writeNewFile(path, bytes, where)) return { id, path };
    }
  });
}

/** The Backlog.md format (see the module comment). */
export const backlogMdFormat: BoardFormat = {
  name: 'backlog-md',
  detect: async (dir) => (await backlogDir(dir)) !== undefined,
  load,
  update,
  create,
};

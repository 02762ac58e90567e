import { access, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { checkDraft, checkReadsBack, creationTime, firstFree, slugOf, withCreateLock, withFinalNewline, writeNewFile, type CheckedDraft } from './create.js';
import { TaskCreateError } from './errors.js';
import { loadWarrenBoard } from './load.js';
import { taskParser } from './task.js';
import { MAX_TASK_FILE_BYTES } from './text.js';
import type { BoardFormat, BoardSnapshot, CreateTaskOptions, CreateTaskResult, TaskDraft } from './types.js';
import { formatOwnedValue, updateTaskFile } from './update.js';

/** A YAML flow list of strings, each plain when safe (`[shell, cap:codegen]`). */
function flowList(values: readonly string[]): string {
  return `[${values.map((v) => formatOwnedValue(v)).join(', ')}]`;
}

/**
 * The text of a new Warren task file: the frontmatter keys in the order the demo board's tasks use
 * (`id`, `title`, `status`, `priority` when given, `labels` when any, `capabilities`, `assignee: null`,
 * `depends_on`, `parent` when given, `command` when given, `created`), then the body. The command is written as a
 * double-quoted string (JSON's escapes are YAML's).
 */
export function warrenNewTaskText(id: string, draft: CheckedDraft, created: Date): string {
  const lines = [
    '---',
    `id: ${id}`,
    `title: ${formatOwnedValue(draft.title)}`,
    `status: ${formatOwnedValue(draft.column.id)}`,
    ...(draft.priority === undefined ? [] : [`priority: ${formatOwnedValue(draft.priority.value)}`]),
    ...(draft.labels.length === 0 ? [] : [`labels: ${flowList(draft.labels)}`]),
    `capabilities: ${flowList(draft.capabilities)}`,
    'assignee: null',
    `depends_on: ${flowList(draft.dependsOn)}`,
    ...(draft.parent === undefined ? [] : [`parent: ${formatOwnedValue(draft.parent)}`]),
    ...(draft.command === undefined ? [] : [`command: ${JSON.stringify(draft.command)}`]),
    `created: ${created.toISOString()}`,
    '---',
  ];
  return `${lines.join('\n')}\n${withFinalNewline(draft.body)}`;
}

/**
 * Creates a task on a Warren board: `tasks/<id>.md`, the id a slug of the title (`Fix the login
 * form` → `fix-the-login-form`, `task` when the title has no ASCII letter or digit), made unique
 * with `-2`, `-3`, … against the board's ids and the files in `tasks/`.
 */
async function create(snapshot: BoardSnapshot, draft: TaskDraft, options: CreateTaskOptions = {}): Promise<CreateTaskResult> {
  const where = snapshot.dir;
  const checked = checkDraft(snapshot, draft, where);
  return withCreateLock(snapshot.dir, options, async () => {
    const tasksDir = join(snapshot.dir, 'tasks');
    try {
      await mkdir(tasksDir, { recursive: true });
    } catch (error) {
      throw new TaskCreateError(where, `cannot make the task folder: ${(error as Error).message}`, undefined, { cause: error });
    }
    const names = new Set(await readdir(tasksDir));
    const ids = new Set(snapshot.tasks.map((t) => t.id));
    const parse = taskParser(snapshot.config, snapshot.dir);
    const created = creationTime(options);
    const base = slugOf(checked.title) || 'task';
    for (;;) {
      const id = firstFree(base, (candidate) => ids.has(candidate) || names.has(`${candidate}.md`));
      const path = join(tasksDir, `${id}.md`);
      const bytes = Buffer.from(warrenNewTaskText(id, checked, created), 'utf8');
      if (bytes.length > MAX_TASK_FILE_BYTES) throw new TaskCreateError(where, `the task file would be ${bytes.length} bytes; at most ${MAX_TASK_FILE_BYTES} (1 MiB) are read`, 'body');
      checkReadsBack(where, () => parse(path, bytes).task, {
        id,
        title: checked.title,
        status: checked.column.id,
        priority: checked.priority?.value,
        capabilities: checked.capabilities,
        labels: checked.labels,
        dependsOn: checked.dependsOn,
        parent: checked.parent,
      });
      if (checked.command !== undefined && parse(path, bytes).task?.command !== checked.command) {
        throw new TaskCreateError(where, "the new task file would not read back with the same 'command'", 'command');
      }
      if (await writeNewFile(path, bytes, where)) return { id, path };
      names.add(`${id}.md`);
    }
  });
}

/**
 * Warren's own board format: `<board>/board.yaml` plus `<board>/tasks/*.md` with YAML frontmatter
 * (see the package README). Writes go through `updateTaskFile`.
 */
export const warrenBoardFormat: BoardFormat = {
  name: 'warren',
  detect: async (dir) =>
    access(join(dir, 'board.yaml')).then(
      () => true,
      () => false,
    ),
  load: loadWarrenBoard,
  update: (_snapshot, task, changes, options) => updateTaskFile(task.path, changes, options),
  create,
};

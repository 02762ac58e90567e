import { resolve } from 'node:path';
import { BoardConfigError, TaskConflictError, TaskUpdateError } from './errors.js';
import { warrenBoardFormat } from './format.js';
import { backlogIdKey, backlogMdFormat } from './formats/backlog-md.js';
import { jsonConfigFormat } from './formats/json-config.js';
import { obsidianFormat } from './formats/obsidian.js';
import { checkMove } from './process.js';
import { MoveRefusedError } from './errors.js';
import { checkDraft, withCreateLock } from './create.js';
import type {
  BoardFormat,
  BoardFormatName,
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
} from './types.js';

/** Every format, in detection order: Warren, Backlog.md, JSON-config, Obsidian Kanban. */
export const BOARD_FORMATS: readonly BoardFormat[] = [warrenBoardFormat, backlogMdFormat, jsonConfigFormat, obsidianFormat];

/** The format named `name`. @throws {BoardConfigError} for an unknown name. */
export function boardFormat(name: string): BoardFormat {
  const format = BOARD_FORMATS.find((f) => f.name === name);
  if (!format) {
    throw new BoardConfigError({ path: name, line: 0, field: 'format', reason: `unknown board format '${name}' (known: ${BOARD_FORMATS.map((f) => f.name).join(', ')})` });
  }
  return format;
}

/**
 * Detects the format of the board in `dir`, trying in order: Warren (`board.yaml`), Backlog.md
 * (`config.yml` with `statuses`, in `dir` or `dir/backlog`), JSON-config (`*.kanban.json` with
 * `statusValues`), Obsidian Kanban (a note with `kanban-plugin: board` frontmatter in `dir` or
 * `dir/boards`, or `dir` is that note).
 *
 * @throws {BoardConfigError} when no format matches.
 */
export async function detectBoardFormat(dir: string): Promise<BoardFormatName> {
  for (const format of BOARD_FORMATS) if (await format.detect(dir)) return format.name;
  const path = resolve(dir);
  throw new BoardConfigError({
    path,
    line: 0,
    reason: 'no board found: expected board.yaml (Warren), config.yml (Backlog.md), *.kanban.json (JSON-config) or an Obsidian Kanban note',
  });
}

/**
 * Reads a board of any supported format: `options.format` or the detected one (see
 * {@link detectBoardFormat}); `options.mapping` maps its statuses, priorities and tags. Each task
 * file (or card) that cannot be used gives exactly one `TaskFileError` in `errors` and is left out
 * of `tasks`; `format` on the snapshot names the format.
 *
 * @throws {BoardConfigError} when no board is found or its config is unusable, or a mapping is given
 *   for a Warren board (its board.yaml already names its columns, roles and priorities).
 */
export async function loadBoard(dir: string, options: LoadBoardOptions = {}): Promise<BoardSnapshot> {
  const name = options.format ?? (await detectBoardFormat(dir));
  if (name === 'warren' && options.mapping !== undefined) throw mappingOnWarrenBoard(dir, options.mapping);
  return boardFormat(name).load(dir, options);
}

/**
 * Writes owned-field changes of `task` the way its board's format stores them, keeping every other
 * byte: Warren files through `updateTaskFile`; Backlog.md `status` as its status name and
 * `assignee` as `['@name']`; JSON-config boards their status value; Obsidian cards moved to the
 * target column's heading (ticked `[x]` in the done column). Before a status change the move is
 * checked ({@link checkMove}: transition FSM, WIP of the target column, WIP per assignee) unless
 * `options.force`.
 *
 * @param snapshot the board as read (its `format` picks the writer).
 * @param task a task of that snapshot; `options.expectedHash` is normally `task.hash`.
 * @throws {MoveRefusedError} when the move breaks a rule (nothing written).
 * @throws {TaskConflictError} when the task changed since it was read (nothing written).
 * @throws {TaskUpdateError} when it cannot be written.
 */
export async function updateTask(snapshot: BoardSnapshot, task: Task, changes: OwnedFieldChanges, options: UpdateTaskOptions = {}): Promise<UpdateTaskResult> {
  if (changes.status !== undefined && changes.status !== task.status && options.force !== true) {
    const refusal = checkMove(snapshot, task, changes.status, { assignee: changes.assignee === undefined ? task.assignee : changes.assignee });
    if (refusal) throw new MoveRefusedError(task.path, task.id, refusal);
  }
  if (changes.status !== undefined && !snapshot.config.columns.some((c) => c.id === changes.status)) {
    throw new TaskUpdateError(task.path, `'status' names no column: '${changes.status}'`, 'status');
  }
  return boardFormat(snapshot.format ?? 'warren').update(snapshot, task, changes, options);
}

/**
 * Creates a task on the board in `dir`, written as a file in the board's own format: reads the board
 * (`options.format` or the detected one, `options.mapping`), then, holding the board's create lock,
 * reads it again and writes the new task, so that concurrent creates on one board each get their
 * own id and none is refused for another's change.
 *
 * - Warren: `tasks/<id>.md` with YAML frontmatter; the id a slug of the title (`fix-the-login-form`),
 *   `-2`, `-3`… when taken.
 * - Backlog.md: `tasks/<prefix>-<n> - <Title>.md` (`back-637 - Fix-the-login-form.md`), id
 *   `BACK-637`, the next number after every task in `tasks/`, `completed/`, `drafts/` and
 *   `archive/tasks/`; capabilities as labels, the body in the Description section.
 * - Obsidian Kanban: a `- [ ] ` card line appended to the column, labels and capabilities as
 *   `#tags`, `prio:`, `dep:`; a linked note for a body or a title the card line cannot hold; the id
 *   a slug of the title (an `id:` token when that is not what the card reads as).
 * - JSON-config (Promethean): a markdown file named after the title in `tasksDir`, `uuid` a new
 *   UUID, fields double-quoted as the board's files are.
 *
 * The column defaults to the board's ready column; a priority and capabilities are written as the
 * board (and its mapping) spells them. Files are written atomically and never replace an existing
 * file; a shared board file (Obsidian) keeps every other byte. The new task is parsed with the
 * board's own reader before anything is written and must read back with the draft's title, column,
 * priority, capabilities, dependencies and parent.
 *
 * @param dir the board folder (as `loadBoard` takes it).
 * @param draft the task; see {@link TaskDraft} for what is accepted.
 * @param options how to read the board (`format`, `mapping`, `displayRoot`), `now` for the creation
 *   time, `lockTimeoutMs` (default 30000 ms).
 * @returns the new task's id and the absolute path of the file that holds it.
 * @throws {TaskCreateError} for a bad draft (`field`: `title`, `body`, `column`, `priority`,
 *   `capabilities`, `labels`, `dependsOn`, `parent`) or a board that cannot be written; nothing is written.
 * @throws {BoardConfigError} when no board is found or its config is unusable.
 * @throws {TaskConflictError} only when the board file changed between the read and the write, by
 *   someone not taking the create lock (a person editing an Obsidian board, a card move), five
 *   times in a row (each time the board is read again).
 */
export async function createTask(dir: string, draft: TaskDraft, options: LoadBoardOptions & CreateTaskOptions = {}): Promise<CreateTaskResult> {
  const first = await loadBoard(dir, options);
  const format = boardFormat(first.format ?? 'warren');
  // A bad draft is refused before the board is read a second time.
  checkDraft(first, draft, first.dir, first.format === 'backlog-md' ? { idKey: backlogIdKey } : {});
  return withCreateLock(first.dir, options, async () => {
    for (let attempt = 1; ; attempt += 1) {
      const snapshot = await format.load(dir, options);
      try {
        return await format.create(snapshot, draft, options);
      } catch (error) {
        // The board file changed between this read and the write (Warren's own card moves take no create lock): read it again.
        if (!(error instanceof TaskConflictError) || attempt >= CREATE_ATTEMPTS) throw error;
      }
    }
  });
}

/** How many times `createTask` reads the board again when its file changed under a create. */
const CREATE_ATTEMPTS = 5;

/**
 * The error for a mapping given with a Warren board: a mapping translates another tool's statuses,
 * priorities and tags, while a Warren board's board.yaml names its own; applying one would be a
 * guess and ignoring it would hide the mistake. At the mapping file when it came from one.
 */
export function mappingOnWarrenBoard(dir: string, mapping: BoardMapping): BoardConfigError {
  const reason = `a mapping applies to Backlog.md, Obsidian Kanban and JSON-config boards; ${dir} is a Warren board (its board.yaml sets the columns, roles and priorities): drop --mapping or edit board.yaml`;
  return new BoardConfigError({ path: mapping.source?.path ?? resolve(dir), line: 0, reason });
}

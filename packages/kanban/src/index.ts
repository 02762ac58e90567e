/**
 * @warren/kanban: Warren's markdown kanban board. A board is a folder with `board.yaml` (columns,
 * roles, priorities) and `tasks/*.md`, one task per file with YAML frontmatter. People move work by
 * editing `status`; the supervisor rewrites only the fields it owns and leaves every other byte.
 *
 * ```ts
 * import { loadBoard, isReady, updateTaskFile, watchBoard, TaskConflictError } from '@warren/kanban';
 *
 * const board = await loadBoard('kanban');
 * for (const error of board.errors) console.warn(error.message); // kanban/tasks/x.md:4: 'priority' must be one of …
 * const byId = new Map(board.tasks.map((t) => [t.id, t]));
 * const next = board.tasks.find((t) => isReady(t, byId, board.config));
 * if (next) {
 *   try {
 *     await updateTaskFile(next.path, { status: board.config.roles.in_progress, assignee: 'shell-1',
 *       started: new Date().toISOString() }, { expectedHash: next.hash });
 *   } catch (error) {
 *     if (!(error instanceof TaskConflictError)) throw error; // someone edited it: re-read first
 *   }
 * }
 * await using watcher = watchBoard('kanban', ({ paths }) => console.log('changed', paths));
 * ```
 */
export { loadBoard, isTaskFileName } from './load.js';
export { loadBoardConfig, parseBoardConfig, DEFAULT_PRIORITIES } from './config.js';
export { parseTaskFile } from './task.js';
export { updateTaskFile, rewriteOwnedFields, formatOwnedValue } from './update.js';
export { checkDependencies, isReady } from './dependencies.js';
export { watchBoard } from './watch.js';
export type { WatchBoardOptions } from './watch.js';
export { warrenBoardFormat } from './format.js';
export { OWNED_FIELDS } from './types.js';
export { MAX_TASK_FILE_BYTES, parseTimestampMs } from './text.js';
export { TaskFileError, BoardConfigError, TaskConflictError, TaskUpdateError } from './errors.js';
export type { FileProblemInit } from './errors.js';
export type {
  BoardColumn,
  BoardRoles,
  BoardConfig,
  Task,
  BoardSnapshot,
  LoadBoardOptions,
  ParseTaskOptions,
  OwnedField,
  OwnedFieldChanges,
  UpdateTaskOptions,
  UpdateTaskResult,
  DependencyProblem,
  BoardChangeEvent,
  BoardWatcher,
  BoardFormat,
} from './types.js';

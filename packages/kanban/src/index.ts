/**
 * @warren/kanban: Warren's markdown kanban board. A board is a folder with `board.yaml` (columns,
 * roles, priorities) and `tasks/*.md`, one task per file with YAML frontmatter. People move work by
 * editing `status`; the supervisor rewrites only the fields it owns and leaves every other byte.
 *
 * ```ts
 * import { loadBoard, isReady, updateTaskFile, updateTask, checkBoard, formatBoardReport, watchBoard, TaskConflictError } from '@warren/kanban';
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
 *
 * // Other formats: Backlog.md, Obsidian Kanban, JSON-config boards (detected, or `format`).
 * const backlog = await loadBoard('backlog', { mapping: { statuses: { "Won't Do": 'Done' } } });
 * const todo = backlog.tasks.find((t) => isReady(t, new Map(backlog.tasks.map((x) => [x.id, x])), backlog.config));
 * if (todo) await updateTask(backlog, todo, { status: backlog.config.roles.in_progress, assignee: 'codex-1' }, { expectedHash: todo.hash });
 * console.log(formatBoardReport(await checkBoard('backlog')));
 *
 * // A new task, in the board's own format (a file, a Backlog.md task, an Obsidian card).
 * const { id, path } = await createTask('kanban', { title: 'Fix the login form', capabilities: ['shell'], priority: 'high' });
 * ```
 */
export { loadBoard, updateTask, createTask, detectBoardFormat, boardFormat, BOARD_FORMATS, mappingOnWarrenBoard } from './board.js';
export { loadWarrenBoard, refreshWarrenBoard, isTaskFileName, readSmallFile } from './load.js';
export type { RefreshBoardOptions } from './load.js';
export { loadBoardConfig, parseBoardConfig, DEFAULT_PRIORITIES } from './config.js';
export { parseTaskFile } from './task.js';
export { updateTaskFile, rewriteOwnedFields, rewriteFields, formatOwnedValue, keepQuoting, applyOwnedChanges, syncDirectories } from './update.js';
export type { FieldWrite } from './update.js';
export { blockedTasks, checkDependencies, isReady } from './dependencies.js';
export type { BlockedTask } from './dependencies.js';
export { checkTransition, checkMove, transitionPath, wipStatus, illegalMoves, parentsToComplete, parentCompletion, subtasksByParent } from './process.js';
export type {
  TransitionRefusal,
  WipRefusal,
  AgentWipRefusal,
  MoveRefusal,
  WipEntry,
  CheckMoveOptions,
  IllegalMove,
  ParentCompletion,
} from './process.js';
export { checkBoard, formatBoardReport, reportOf } from './report.js';
export type { BoardReport, TaskSummary, ReportedError } from './report.js';
export { normalizedTasks, importToWarrenBoard, warrenBoardYaml, warrenTaskText } from './import.js';
export type { NormalizedTask } from './import.js';
export { DEFAULT_MAPPING, MAPPED_PRIORITIES, statusKey, columnIdOf, mapPriority, capabilitiesFromTags } from './mapping.js';
export { watchBoard, boardWatchPaths } from './watch.js';
export type { WatchBoardOptions } from './watch.js';
export { warrenBoardFormat } from './format.js';
export { backlogMdFormat, backlogIdKey } from './formats/backlog-md.js';
export { obsidianFormat } from './formats/obsidian.js';
export { jsonConfigFormat } from './formats/json-config.js';
export { OWNED_FIELDS } from './types.js';
export { MAX_TASK_FILE_BYTES, parseTimestampMs } from './text.js';
export {
  TaskFileError,
  BoardConfigError,
  TaskConflictError,
  TaskUpdateError,
  MoveRefusedError,
  BoardImportError,
  TaskCreateError,
} from './errors.js';
export { checkDraft, slugOf, MAX_TITLE_CHARS, CREATE_LOCK_NAME } from './create.js';
export type { CheckedDraft } from './create.js';
export { backlogFileTitle } from './formats/backlog-md.js';
export type { FileProblemInit } from './errors.js';
export type {
  BoardColumn,
  BoardRoles,
  BoardConfig,
  BoardTransitions,
  TransitionRule,
  BoardMapping,
  MappingSource,
  BoardFormatName,
  CardLocation,
  Task,
  BoardSnapshot,
  LoadBoardOptions,
  ParseTaskOptions,
  OwnedField,
  OwnedFieldChanges,
  UpdateTaskOptions,
  ReplaceObserver,
  FileSignatureInfo,
  UpdateTaskResult,
  DependencyProblem,
  BoardChangeEvent,
  BoardWatcher,
  BoardFormat,
  TaskDraft,
  CreateTaskOptions,
  CreateTaskResult,
} from './types.js';
export { parseYamlSource, lineOf } from './yaml-source.js';
export type { YamlSource, YamlSyntaxProblem } from './yaml-source.js';

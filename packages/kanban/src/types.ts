import type { BoardConfigError, TaskFileError } from './errors.js';

/** One column of the board, in board order. */
export interface BoardColumn {
  /** The value a task's `status` takes to sit in this column: `[A-Za-z0-9._-]+`. */
  readonly id: string;
  /** The display name. */
  readonly name: string;
  /** Optional WIP limit: the most tasks the column should hold. */
  readonly wip?: number;
}

/** Which column plays which part for the supervisor; each value is a column id. */
export interface BoardRoles {
  /** Tasks here (with every dependency done) may be assigned. */
  readonly ready: string;
  /** The supervisor moves a task here when it assigns it. */
  readonly in_progress: string;
  /** The supervisor moves a task here when it succeeds; dependencies count as met here. */
  readonly done: string;
  /** The supervisor moves a task here when it fails or is cancelled. */
  readonly failed: string;
}

/** A validated `board.yaml`. */
export interface BoardConfig {
  /** The board's display name. */
  readonly name: string;
  /** Columns in board order; ids are unique. */
  readonly columns: readonly BoardColumn[];
  /** Column ids by role; each names an existing column. */
  readonly roles: BoardRoles;
  /** Priority names, lowest first (default `[low, normal, high, urgent]`). */
  readonly priorities: readonly string[];
  /** The priority of a task that names none (`default_priority`; default `normal`). */
  readonly defaultPriority: string;
}

/**
 * One task, read from `<board>/tasks/<name>.md`. Timestamps are milliseconds since the Unix epoch
 * (UTC); a timestamp without a zone is read as UTC, as YAML does.
 */
export interface Task {
  /** `id` from the frontmatter: `[A-Za-z0-9._-]+`, unique on the board. */
  readonly id: string;
  readonly title: string;
  /** A column id. */
  readonly status: string;
  /** One of the board's priorities (the default when the file names none). */
  readonly priority: string;
  /** Index of `priority` in the board's priorities: higher is more urgent. */
  readonly priorityRank: number;
  readonly labels: string[];
  /** What an agent must offer to take the task; may be empty. */
  readonly capabilities: string[];
  readonly assignee: string | null;
  /** Ids of tasks that must be done first (`depends_on`). */
  readonly dependsOn: string[];
  readonly createdMs?: number;
  readonly updatedMs?: number;
  readonly startedMs?: number;
  readonly completedMs?: number;
  readonly command?: string;
  readonly result?: string;
  /** The markdown after the frontmatter, exactly as in the file. */
  readonly body: string;
  /** Every frontmatter field as parsed (YAML 1.2 core schema), unknown fields included. */
  readonly fields: Record<string, unknown>;
  /** Absolute path of the file (as listed in `tasks/`, not resolved through symlinks). */
  readonly path: string;
  /** Path relative to the board folder, `/`-separated: `tasks/fix-login.md`. */
  readonly relativePath: string;
  /** sha256 (hex) of the file's bytes; pass it to `updateTaskFile` as `expectedHash`. */
  readonly hash: string;
}

/** The board as read at one moment. */
export interface BoardSnapshot {
  /** Absolute path of the board folder. */
  readonly dir: string;
  readonly config: BoardConfig;
  /** The tasks that parsed, in file-name order. */
  readonly tasks: Task[];
  /** One error per task file that did not parse (those files are not in `tasks`), in file-name order. */
  readonly errors: TaskFileError[];
}

/** Options of `loadBoard` and `loadBoardConfig`. */
export interface LoadBoardOptions {
  /**
   * Paths in error messages are shown relative to this folder. Default: the board folder's parent,
   * so messages read `kanban/tasks/fix-login.md:4: …`.
   */
  readonly displayRoot?: string;
}

/** Options of `parseTaskFile`. */
export interface ParseTaskOptions {
  /** As in {@link LoadBoardOptions.displayRoot}; default the board folder's parent. */
  readonly displayRoot?: string;
}

/**
 * The frontmatter fields the supervisor owns and may rewrite; every other byte of a task file
 * belongs to people. In this order missing keys are appended.
 */
export const OWNED_FIELDS = ['status', 'assignee', 'result', 'started', 'completed', 'updated'] as const;

/** The name of an owned field. */
export type OwnedField = (typeof OWNED_FIELDS)[number];

/**
 * New values for owned fields. `undefined` (or absent) leaves a field untouched; `null` writes
 * `null`. `started`, `completed` and `updated` must be ISO 8601 timestamps (as
 * `new Date().toISOString()` gives). `status` must be a non-empty string (a column id).
 */
export interface OwnedFieldChanges {
  readonly status?: string | undefined;
  readonly assignee?: string | null | undefined;
  readonly result?: string | null | undefined;
  readonly started?: string | null | undefined;
  readonly completed?: string | null | undefined;
  readonly updated?: string | null | undefined;
}

/** Options of `updateTaskFile`. */
export interface UpdateTaskOptions {
  /**
   * sha256 (hex) of the file as the caller last read it (`Task.hash`). When given and the file's
   * bytes hash differently, `TaskConflictError` is thrown and nothing is written.
   */
  readonly expectedHash?: string | undefined;
}

/** What `updateTaskFile` returns. */
export interface UpdateTaskResult {
  /** sha256 (hex) of the file as written (or as found, when nothing changed). */
  readonly hash: string;
}

/** A problem `checkDependencies` finds. */
export type DependencyProblem =
  | {
      readonly kind: 'unknown';
      /** The task that names dependencies that are not on the board. */
      readonly taskId: string;
      /** The unknown ids, in the order the task lists them. */
      readonly missing: string[];
      /** `task 'b' depends on unknown task(s) x, y`. */
      readonly message: string;
    }
  | {
      readonly kind: 'cycle';
      /** One cycle, first id repeated at the end: `['a', 'b', 'c', 'a']`; `['a', 'a']` for a self-dependency. */
      readonly chain: string[];
      /** `dependency cycle: a -> b -> c -> a`. */
      readonly message: string;
    };

/** The event `watchBoard` reports. */
export interface BoardChangeEvent {
  /** Absolute paths that changed (`board.yaml`, task files, or the `tasks` folder itself), sorted. */
  readonly paths: string[];
}

/** A running board watcher. */
export interface BoardWatcher {
  /** Stops watching; no `onChange` call starts afterwards. Idempotent: every call returns the same promise. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * The seam between the supervisor and one on-disk board format. Warren's own format (a folder with
 * `board.yaml` and `tasks/*.md`) is the only implementation for now.
 */
export interface BoardFormat {
  /** A short name: `warren`. */
  readonly name: string;
  /** Reads the whole board; throws {@link BoardConfigError} when the config is unusable. */
  load(dir: string, options?: LoadBoardOptions): Promise<BoardSnapshot>;
  /** Parses one task from its bytes; throws {@link TaskFileError}. Pure. */
  parse(path: string, bytes: Buffer, config: BoardConfig, boardDir: string, options?: ParseTaskOptions): Task;
  /** Rewrites the owned fields of one task in place. */
  update(path: string, changes: OwnedFieldChanges, options?: UpdateTaskOptions): Promise<UpdateTaskResult>;
}

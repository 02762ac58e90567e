import type { TaskFileError } from './errors.js';

/** One column of the board, in board order. */
export interface BoardColumn {
  /** The value a task's `status` takes to sit in this column: `[A-Za-z0-9._-]+`. */
  readonly id: string;
  /** The display name. */
  readonly name: string;
  /** Optional WIP limit: the most tasks the column should hold. */
  readonly wip?: number;
  /**
   * The status value this column has in the board's own files when that differs from `id`
   * (Backlog.md `In Progress`, a JSON-config `in_progress`, an Obsidian heading `🟡 In Progress (4)`).
   * Writes use it; absent for Warren boards (the value is `id`).
   */
  readonly value?: string;
}

/**
 * One allowed move of the board's transition FSM: a task in any of `from` may move to any of `to`
 * (column ids). Moves within a column are always allowed.
 */
export interface TransitionRule {
  readonly from: readonly string[];
  readonly to: readonly string[];
  /** What the rule is for, from the board config (`Submit for review, pause, …`). */
  readonly description?: string;
}

/**
 * The board's transition FSM (Warren `board.yaml` key `transitions`, JSON-config
 * `transitionRules`). When present and enabled, a move is legal only if some rule allows it.
 */
export interface BoardTransitions {
  readonly enabled: boolean;
  readonly rules: readonly TransitionRule[];
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
  /** The allowed moves between columns; absent means every move is allowed. */
  readonly transitions?: BoardTransitions;
  /** The most tasks one assignee may hold in the in-progress column (`wip_per_agent`); absent: no limit. */
  readonly wipPerAgent?: number;
  /**
   * Whether a parent task counts as done once all its subtasks are in the done column
   * (`parentsToComplete` proposes moving it); default true.
   */
  readonly parentDoneWhenSubtasksDone?: boolean;
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
  /** The id of the parent task (Backlog.md `parent_task_id`, `parent`), resolved to a task id when it is on the board. */
  readonly parentTaskId?: string;
  /**
   * Set for a task that is an Obsidian Kanban card: the board file holds its status (the card's
   * column) and `updateTask` edits the card there. `path` is then the linked note, or the board
   * file for a card without a note.
   */
  readonly card?: CardLocation;
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

/** Where an Obsidian Kanban card sits. */
export interface CardLocation {
  /** Absolute path of the board file. */
  readonly boardPath: string;
  /** 1-based line of the card's first line when the board was read. */
  readonly line: number;
  /** Whether the checkbox was ticked (`- [x]`). */
  readonly checked: boolean;
}

/** The board formats Warren reads and writes back. */
export type BoardFormatName = 'warren' | 'backlog-md' | 'obsidian' | 'json-config';

/** The board as read at one moment. */
export interface BoardSnapshot {
  /** Absolute path of the board folder. */
  readonly dir: string;
  /**
   * The format the board was read as. Optional only so that snapshots built before formats existed
   * still type-check; every loader sets it (absent reads as `warren`).
   */
  readonly format?: BoardFormatName;
  /** The file holding the board config (`board.yaml`, `config.yml`, the JSON config, the Obsidian board file). */
  readonly configPath?: string;
  readonly config: BoardConfig;
  /** The tasks that parsed, in file-name order. */
  readonly tasks: Task[];
  /** One error per task file that did not parse (those files are not in `tasks`), in file-name order. */
  readonly errors: TaskFileError[];
  /**
   * The mapping the board was read with (`LoadBoardOptions.mapping`), set by the Backlog.md,
   * Obsidian and JSON-config readers when one was given: `createTask` maps a draft's priority and
   * capabilities back through it.
   */
  readonly mapping?: BoardMapping;
  /**
   * sha256 (hex) of the config file's bytes as read (`configPath`). Set by the Obsidian reader,
   * whose board file also holds the cards: a create based on this snapshot is refused with
   * `TaskConflictError` when the board file no longer hashes to it.
   */
  readonly configHash?: string;
}

/** Options of `loadBoard` and `loadBoardConfig`. */
export interface LoadBoardOptions {
  /**
   * Paths in error messages are shown relative to this folder. Default: the board folder's parent,
   * so messages read `kanban/tasks/fix-login.md:4: …`.
   */
  readonly displayRoot?: string;
  /** The format to read the board as (`--format`); default: detected (see `detectBoardFormat`). */
  readonly format?: BoardFormatName | undefined;
  /** How the board's statuses, priorities, tags and labels map to Warren's (see `BoardMapping`). */
  readonly mapping?: BoardMapping | undefined;
  /**
   * The file that keeps an id when several files use it: `keepPathOf(id)` returns an absolute
   * path (or undefined for the default, the first file in name order). The supervisor names the
   * file of a task it is running, so a file added later with the same id is the duplicate whatever
   * its name. Called only for ids that more than one file uses.
   */
  readonly keepPathOf?: ((id: string) => string | undefined) | undefined;
}

/**
 * How another board format maps onto Warren's columns, roles, priorities and capabilities. Every
 * key is optional; the defaults are in `DEFAULT_MAPPING` and the package README.
 *
 * Statuses are compared by their key: lower case, with emoji, punctuation, spaces, `_` and `-`
 * removed and a trailing `(n)` WIP count dropped, so `In Progress`, `in_progress`, `in-progress`
 * and `🟡 In Progress (4)` are one column. Two columns with the same key are a config error. A
 * status that is no column (after `statuses` aliases) is an error for that task, never a guess.
 */
export interface BoardMapping {
  /** Extra status spellings: the board's status value → a column (its id or value). `{ "Won't Do": "Done" }`. */
  readonly statuses?: Readonly<Record<string, string>>;
  /** Which column plays which role (column id or value). Default: the first column matching the role's candidates. */
  readonly roles?: Readonly<Partial<Record<keyof BoardRoles, string>>>;
  /** Extra priority spellings: the board's value → one of `low`, `normal`, `high`, `urgent`. */
  readonly priorities?: Readonly<Record<string, string>>;
  /**
   * Tag/label prefixes that become required capabilities, prefix kept: `#cap:codegen` → `cap:codegen`.
   * Default `['cap:', 'tool:', 'env:', 'role:']`.
   */
  readonly capabilityPrefixes?: readonly string[];
  /** Plain tags/labels that stand for capabilities: `{ "codex-task": ["tool:codex"] }`. Default none. */
  readonly capabilities?: Readonly<Record<string, readonly string[]>>;
  /** See {@link BoardConfig.parentDoneWhenSubtasksDone}; default true. */
  readonly parentDoneWhenSubtasksDone?: boolean;
  /** The most tasks one assignee may hold in the in-progress column; default none. */
  readonly wipPerAgent?: number;
  /** Obsidian: the board file, relative to the board folder; default the first `kanban-plugin: board` note found. */
  readonly boardFile?: string;
  /** Backlog.md: folders (relative to the backlog folder) read as tasks; default `['tasks', 'completed']`. */
  readonly taskFolders?: readonly string[];
  /**
   * Where the mapping was read from (a `--mapping` file), so that a problem with its content is
   * reported at that file and line rather than at the board's config. Absent for a mapping made in code.
   */
  readonly source?: MappingSource;
}

/** The file a {@link BoardMapping} came from, and the line of each of its keys. */
export interface MappingSource {
  /** The file as given (shown in messages). */
  readonly path: string;
  /** 1-based line of each key by its dotted path (`statuses`, `statuses.Doing`, `roles.done`). */
  readonly lines: Readonly<Record<string, number>>;
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
  /**
   * `updateTask` only: skip the checks a move must pass (the transition FSM, the WIP limit of the
   * target column, the per-assignee WIP limit). Default false.
   */
  readonly force?: boolean | undefined;
  /**
   * Sync the folder after the rename (default true). A caller writing many files at once passes
   * false and calls `syncDirectories` once for all of them before it relies on the writes.
   */
  readonly syncDirectory?: boolean | undefined;
  /**
   * Told of the rename by which the write puts the new file in place (a board watcher, so that it
   * knows the event the rename makes for its own write; see {@link ReplaceObserver}). Default none.
   */
  readonly replaceObserver?: ReplaceObserver | undefined;
}

/** The fields of a file's stat that make its signature (what a board watcher compares). */
export interface FileSignatureInfo {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

/**
 * Told of the rename by which a task file write replaces a file (`UpdateTaskOptions.replaceObserver`).
 */
export interface ReplaceObserver {
  /**
   * Called just before the temporary file is renamed over `path` (the file replaced, as the write
   * names it after resolving symlinks).
   * @returns what to call once the rename is done: `renamed` with the fstat of the new file taken
   *   through the temporary file's descriptor after the rename (undefined when that fstat failed),
   *   or `failed` when the rename did not happen.
   */
  beforeRename(path: string): { renamed(info: FileSignatureInfo | undefined): void; failed(): void };
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
export interface BoardWatcher extends ReplaceObserver {
  /**
   * Takes `info` (the fstat of a read of `path`, made before its bytes were read) as the file's
   * signature, so that the next rescan reports the file only when it changed after that read: a
   * file the caller has just read (often after writing it) is not reported again by the rescan.
   * Ignored for a path outside what the watcher scans.
   */
  seen(path: string, info: FileSignatureInfo): void;
  /** Stops watching; no `onChange` call starts afterwards. Idempotent: every call returns the same promise. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * The seam between the supervisor and one on-disk board format: Warren's own (`board.yaml` +
 * `tasks/*.md`), Backlog.md, Obsidian Kanban and JSON-config boards each implement it.
 */
export interface BoardFormat {
  /** The format's name, as `BoardSnapshot.format` and `--format` give it. */
  readonly name: BoardFormatName;
  /** Whether `dir` holds a board of this format (cheap: looks for the config file only). */
  detect(dir: string): Promise<boolean>;
  /** Reads the whole board; throws a `BoardConfigError` when the config is unusable. */
  load(dir: string, options?: LoadBoardOptions): Promise<BoardSnapshot>;
  /**
   * Writes owned-field changes of one task the way the format stores them, keeping every other
   * byte; `options.expectedHash` is `task.hash` as read. Throws `TaskConflictError` when the task
   * changed since, `TaskUpdateError` when it cannot be written.
   */
  update(snapshot: BoardSnapshot, task: Task, changes: OwnedFieldChanges, options?: UpdateTaskOptions): Promise<UpdateTaskResult>;
  /**
   * Writes a new task the way the format stores one (see `createTask` for each format's file and
   * id scheme), based on `snapshot`. Nothing is written when it throws.
   * @throws {TaskCreateError} for a bad draft (`field` names it) or when the board cannot be written.
   * @throws {TaskConflictError} when a shared board file (Obsidian) changed since `snapshot` was read.
   */
  create(snapshot: BoardSnapshot, draft: TaskDraft, options?: CreateTaskOptions): Promise<CreateTaskResult>;
}

/**
 * A task to create (`createTask`, `BoardFormat.create`): what a person or the operator API gives.
 * Every field but `title` is optional; strings are UTF-8 text (no lone surrogates).
 */
export interface TaskDraft {
  /**
   * One line of text, trimmed: 1 to 200 characters (code points), no control characters or line
   * separators, at least one letter, digit or symbol (not only punctuation).
   */
  readonly title: string;
  /** The description, in markdown; any number of lines. Default empty. */
  readonly body?: string | undefined;
  /** A column by its id, its value in the board's own files or its name (`In Progress`); default the ready column. */
  readonly column?: string | undefined;
  /**
   * A priority: on a Warren board one of `board.yaml`'s priorities; on the other formats one of
   * `low`, `normal`, `high`, `urgent` or a spelling the board or mapping knows (`P1`, `medium`).
   * Default: none written (the board's default applies).
   */
  readonly priority?: string | undefined;
  /** Capabilities an agent must offer: letters, digits and `. _ : / @ + -`, no spaces (`tool:codex`). */
  readonly capabilities?: readonly string[] | undefined;
  /** Ids of tasks on the board that must be done first. */
  readonly dependsOn?: readonly string[] | undefined;
  /** Labels (tags): one line each, not empty; Obsidian tags also without spaces or `#`. */
  readonly labels?: readonly string[] | undefined;
  /**
   * The id of the parent task, a task on the board (this one is its subtask), written as the format
   * stores a parent: Warren `parent`, Backlog.md `parent_task_id`, Obsidian the card token
   * `parent:<id>` (a card linking a note: the note's frontmatter `parent`), JSON-config `parent`.
   * Default none.
   */
  readonly parent?: string | undefined;
  /**
   * The shell command the task runs (its `command` field, what the `shell` template runs); Warren
   * boards only, at most 64 Ki characters. Default none.
   */
  readonly command?: string | undefined;
}

/** Options of `createTask` and `BoardFormat.create`. */
export interface CreateTaskOptions {
  /** The creation time written to the task (`created`, `created_date`, `created_at`); default now. */
  readonly now?: Date | undefined;
  /**
   * How long to wait for another create on the same board (the board's create lock) before giving
   * up with `TaskCreateError`, in ms; default 30000.
   */
  readonly lockTimeoutMs?: number | undefined;
}

/** What `createTask` returns. */
export interface CreateTaskResult {
  /** The new task's id, as `loadBoard` will read it (`fix-login`, `BACK-637`, a UUID, a card slug). */
  readonly id: string;
  /**
   * Absolute path of the file that holds the task, as `Task.path` will read: the new task file, or
   * for an Obsidian card its new linked note, or the board file for a card without one.
   */
  readonly path: string;
}

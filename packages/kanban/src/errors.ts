import { WarrenError } from '@warren/core';
import type { MoveRefusal } from './process.js';

/** `path:line: reason`, or `path: reason` when `line` is 0 (a problem with the whole file). */
function located(displayPath: string, line: number, reason: string): string {
  return line > 0 ? `${displayPath}:${line}: ${reason}` : `${displayPath}: ${reason}`;
}

/** What a {@link TaskFileError} or {@link BoardConfigError} is built from. */
export interface FileProblemInit {
  /** Absolute path of the file. */
  readonly path: string;
  /** 1-based line of the problem, or 0 when it is about the whole file (size, permissions, symlink). */
  readonly line: number;
  /** The frontmatter field or config key at fault (`priority`, `columns[2].wip`), when there is one. */
  readonly field?: string | undefined;
  /** What is wrong, without the location: `'priority' must be one of low, normal, high, urgent`. */
  readonly reason: string;
  /** How the path is shown in the message (usually relative to the board's parent); default `path`. */
  readonly displayPath?: string | undefined;
}

/**
 * A board file that cannot be read, at a path and line (code `WARREN_TASK_PARSE`); the message is
 * `path:line: reason`. {@link TaskFileError} and {@link BoardConfigError} are the two kinds.
 */
export abstract class FileProblemError extends WarrenError {
  /** Absolute path of the file. */
  readonly path: string;
  /** 1-based line, or 0 when the problem is about the whole file. */
  readonly line: number;
  /** The field or config key at fault (`priority`, `roles.done`), if any. */
  readonly field?: string;
  /** The message without its `path:line:` prefix. */
  readonly reason: string;

  constructor(init: FileProblemInit, options?: ErrorOptions) {
    super('WARREN_TASK_PARSE', located(init.displayPath ?? init.path, init.line, init.reason), options);
    this.path = init.path;
    this.line = init.line;
    if (init.field !== undefined) this.field = init.field;
    this.reason = init.reason;
  }
}

/**
 * A task file cannot be used (code `WARREN_TASK_PARSE`). The message reads
 * `kanban/tasks/fix-login.md:4: 'priority' must be one of low, normal, high, urgent`; the same data
 * is on the fields. The board holds the task until its file parses again.
 */
export class TaskFileError extends FileProblemError {}

/**
 * `board.yaml` is missing, is not valid YAML, or breaks the schema (code `WARREN_TASK_PARSE`,
 * the catalogue's code for a task file or board config that cannot be read). Message:
 * `kanban/board.yaml:7: unknown key 'colour'`.
 */
export class BoardConfigError extends FileProblemError {}

/**
 * The task file changed since it was read (code `WARREN_TASK_CONFLICT`): its sha256 is not the
 * `expectedHash` the caller passed to `updateTaskFile`. Nothing was written; re-read and retry.
 */
export class TaskConflictError extends WarrenError {
  constructor(
    /** Path of the task file. */
    readonly path: string,
    /** The sha256 (hex) the caller expected. */
    readonly expectedHash: string,
    /** The sha256 (hex) of the file as found. */
    readonly actualHash: string,
  ) {
    super(
      'WARREN_TASK_CONFLICT',
      `${path}: the file changed since it was read (expected sha256 ${expectedHash.slice(0, 12)}…, found ${actualHash.slice(0, 12)}…)`,
    );
  }
}

/**
 * `updateTaskFile` cannot apply the changes (code `WARREN_TASK_UPDATE`): the file cannot be read or
 * written, it has no frontmatter or its frontmatter is not a block mapping, a new value is invalid
 * (`field` names it), or the rewritten file would not read back as intended. The file is left as it was.
 */
export class TaskUpdateError extends WarrenError {
  /** Path of the task file. */
  readonly path: string;
  /** The owned field at fault, if any. */
  readonly field?: string;
  /** The message without its `path:` prefix. */
  readonly reason: string;

  constructor(path: string, reason: string, field?: string, options?: ErrorOptions) {
    super('WARREN_TASK_UPDATE', `${path}: ${reason}`, options);
    this.path = path;
    if (field !== undefined) this.field = field;
    this.reason = reason;
  }
}

/**
 * A move Warren was asked to make breaks one of the board's process rules (code
 * `WARREN_TASK_MOVE_REFUSED`): the transition FSM does not allow it, the target column is at or
 * over its WIP limit, or the assignee holds as many in-progress tasks as allowed. `refusal` names
 * the rule. Nothing was written.
 */
export class MoveRefusedError extends WarrenError {
  constructor(
    /** Path of the task file (or board file, for an Obsidian card). */
    readonly path: string,
    /** The task's id. */
    readonly taskId: string,
    /** The rule that forbids the move. */
    readonly refusal: MoveRefusal,
  ) {
    super('WARREN_TASK_MOVE_REFUSED', `task '${taskId}' (${path}): ${refusal.message}`);
  }
}

/** `importToWarrenBoard` cannot write the new board (code `WARREN_BOARD_IMPORT`): the target exists or a write failed. */
export class BoardImportError extends WarrenError {
  constructor(
    /** The path at fault. */
    readonly path: string,
    /** The message without its `path:` prefix. */
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super('WARREN_BOARD_IMPORT', `${path}: ${reason}`, options);
  }
}

/**
 * A task cannot be created (code `WARREN_TASK_CREATE`). `field` names the draft field at fault
 * (`title`, `body`, `column`, `priority`, `capabilities`, `dependsOn`, `labels`) when the draft is
 * bad; it is absent when the board cannot be written (then `cause` holds the system's error). In
 * either case nothing was written. The message reads `kanban: 'title' must not be empty`.
 */
export class TaskCreateError extends WarrenError {
  /** The board folder (or file) the task was to be created on. */
  readonly path: string;
  /** The draft field at fault, if any. */
  readonly field?: string;
  /** The message without its `path:` prefix. */
  readonly reason: string;

  constructor(path: string, reason: string, field?: string, options?: ErrorOptions) {
    super('WARREN_TASK_CREATE', `${path}: ${reason}`, options);
    this.path = path;
    if (field !== undefined) this.field = field;
    this.reason = reason;
  }
}

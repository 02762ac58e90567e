import { relative, resolve } from 'node:path';
import {
  boardWatchPaths,
  illegalMoves,
  loadBoard,
  refreshWarrenBoard,
  updateTask,
  watchBoard,
  wipStatus,
  TaskConflictError,
  type BoardSnapshot,
  type BoardWatcher,
  type ReplaceObserver,
  type Task,
  type TaskFileError,
} from '@warren/kanban';
import { BlockedTaskReport } from '../blocked-tasks.js';
import { BoardAvailability } from '../board-availability.js';
import type { BoardEdits } from '../board-edits.js';
import { SUPERVISOR, type SupervisorContext } from '../context.js';
import { inputRejected } from '../input-rejections.js';
import { isTerminal, TaskState } from '@warren/registry';
import { ParentChecks } from './parents.js';

/**
 * The supervisor's copy of the board: the last good snapshot, its tasks by id, and what changed
 * since it was read. Reads only the files the watcher reported when it can, reports what people do
 * against the board's process (held files, illegal moves, columns over their WIP limit, dependency
 * cycles) once each, applies people's moves of cards (see BoardEdits), and marks parents done when
 * their subtasks are. The board writer (writer.ts) writes Warren's side back.
 */
export class BoardMirror {
  /** The last good snapshot, undefined until the board could be read once. */
  board: BoardSnapshot | undefined;
  /** Whether files changed since the last refresh (the tick refreshes first when set). */
  dirty = true;
  /** Increases with every change of `board` or of a task in it (a new snapshot, Warren's own writes). */
  version = 0;
  /** The parents to check for completion: every one after a new snapshot, else those whose cards or rows changed. */
  private readonly parents = new ParentChecks();
  /** The board's tasks by id (rebuilt with each snapshot). */
  taskById = new Map<string, Task>();
  /** Ready tasks blocked by their dependencies (made with the first board). */
  blocked: BlockedTaskReport | undefined;
  /** When the board was last read whole or in part, ms since the epoch; undefined before. */
  readMs: number | undefined;
  /** Set once start-up recovery has applied the moves made while Warren was stopped. */
  recovered = false;
  /** Index of each task in `board.tasks`, by id. */
  private taskIndex = new Map<string, number>();
  /** Files the watcher reported since the last refresh; a refresh reads only these when it can. */
  private readonly changedPaths = new Set<string>();
  private fullReload = true;
  private readonly reportedErrors = new Set<string>();
  private availabilityValue: BoardAvailability | undefined;
  /**
   * Cards of a Warren board the board writer has written in its running flush, by path, as they
   * now read (see {@link noteWritten}); a refresh that reads those bytes before the flush's
   * outcomes are committed takes these tasks instead of parsing the files.
   */
  private readonly written = new Map<string, Task>();
  private watcher: BoardWatcher | undefined;

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly edits: BoardEdits,
  ) {}

  /** Starts watching the board's files; each change marks the board dirty and asks for a tick. */
  watch(): void {
    this.watcher ??= watchBoard(
      this.ctx.config.boardDir,
      (event) => {
        for (const path of event.paths) this.changedPaths.add(path);
        if (event.paths.length === 0) this.fullReload = true;
        this.dirty = true;
        this.ctx.requestTick();
      },
      {
        rescanIntervalMs: this.ctx.config.boardRescanMs,
        debounceMs: 5,
        ...(this.board ? { paths: extraWatchPaths(this.board, this.ctx.config.boardDir) } : {}),
      },
    );
  }

  /** Stops the watcher. Idempotent. */
  async close(): Promise<void> {
    const watcher = this.watcher;
    this.watcher = undefined;
    await watcher?.close();
  }

  /**
   * The board watcher, to be told of Warren's own card writes (`UpdateTaskOptions.replaceObserver`):
   * it then does not report them back as changes. Undefined until {@link watch}.
   */
  get replaceObserver(): ReplaceObserver | undefined {
    return this.watcher;
  }

  /** Marks `path` changed (a write found it edited under us): the next tick re-reads it. */
  markChanged(path: string): void {
    this.changedPaths.add(path);
    this.dirty = true;
  }

  /** Whether the board folder is there (made on first use); see {@link BoardAvailability}. */
  availability(): BoardAvailability {
    return (this.availabilityValue ??= new BoardAvailability(this.ctx.config.boardDir, this.ctx.log));
  }

  /**
   * Reads the board again (the changed files only, for a Warren board whose folder layout did not
   * change), keeps the last good snapshot when the config cannot be read, and applies what the new
   * snapshot says: held files, released ones, finished tasks a person moved back to ready,
   * people's moves of cards in flight.
   */
  async refresh(nowMs: number): Promise<void> {
    const { ctx } = this;
    this.dirty = false;
    const changed = [...this.changedPaths];
    this.changedPaths.clear();
    const full = this.fullReload || !this.board || (this.board.format ?? 'warren') !== 'warren';
    this.fullReload = false;
    let snapshot: BoardSnapshot;
    try {
      snapshot = full
        ? await loadBoard(ctx.config.boardDir, {
            ...(ctx.config.boardFormat ? { format: ctx.config.boardFormat } : {}),
            ...(ctx.mapping ? { mapping: ctx.mapping } : {}),
            keepPathOf: this.keepPathOf,
          })
        : await refreshWarrenBoard(this.board!, changed, {
            keepPathOf: this.keepPathOf,
            writtenTask: (path, hash) => {
              const task = this.written.get(path);
              return task?.hash === hash ? task : undefined;
            },
            // The rescan then reports a file only when it changed after this read (not Warren's own write again).
            onRead: (path, info) => this.watcher?.seen(path, info),
          });
    } catch (error) {
      if (this.availability().noteFailure(nowMs)) return;
      const key = `config:${(error as Error).message}`;
      if (!this.reportedErrors.has(key)) {
        this.reportedErrors.add(key);
        ctx.emit({ actor: SUPERVISOR, action: 'board.error', object: 'board', details: { message: (error as Error).message } }, { fields: { err: error } });
      }
      return;
    }
    this.availability().noteBack(nowMs);
    this.readMs = nowMs;
    const previous = this.board;
    if (snapshot === previous) return;
    const previousById = this.taskById;
    this.setBoard(snapshot);
    for (const error of snapshot.errors) this.reportHeld(error);
    (this.blocked ??= new BlockedTaskReport((event, line) => ctx.emit(event, line))).update(snapshot);
    this.reportProcessRules(previous, snapshot);
    const done = snapshot.config.roles.done;
    const changedSet = new Set(changed);
    const examined = full ? snapshot.tasks : snapshot.tasks.filter((t) => changedSet.has(t.path));
    for (const task of examined) {
      const row = ctx.state.task(task.id);
      if (!row) continue;
      // A person moved a finished task back to ready: run it again.
      if (isTerminal(row.state) && row.boardSync === 'clean' && task.status === snapshot.config.roles.ready && task.hash !== row.boardHash) {
        ctx.transaction(() => {
          ctx.state.putTask({ ...row, state: TaskState.ready, agent: null, reason: null, updatedMs: nowMs, notBeforeMs: null, readySinceMs: nowMs });
          ctx.emit({ actor: 'board', action: 'task.requeue', object: `task:${task.id}`, details: { from: row.state, attempt: row.attempt } });
        });
      }
      if (row.state === TaskState.held) {
        ctx.transaction(() => {
          ctx.state.putTask({ ...row, state: task.status === done ? TaskState.succeeded : TaskState.ready, reason: null, updatedMs: nowMs });
          ctx.emit({ actor: 'board', action: 'task.release', object: `task:${task.id}`, details: { path: task.relativePath } });
        });
      }
    }
    // After start-up recovery (which applies the moves made while Warren was stopped itself).
    if (this.recovered) {
      ctx.transaction(() => this.edits.applyMoves(examined, snapshot.config.roles, previousById, nowMs));
      this.edits.reportDeletedCards(this.taskById, snapshot.errors);
    }
  }

  /**
   * The file that keeps an id several files use: the file of the task Warren knows by that id (the
   * one it ran or runs), so a file added later with that id is the duplicate whatever its name.
   */
  private readonly keepPathOf = (id: string): string | undefined => this.ctx.state.task(id)?.path;

  /**
   * Reports what people did against the board's process: moves its transition rules forbid (Warren
   * cannot undo an edit; it records the rule that forbids it) and columns already over their WIP
   * limit (nothing more is pulled into them until they are under). Each is audited once.
   */
  private reportProcessRules(previous: BoardSnapshot | undefined, snapshot: BoardSnapshot): void {
    if (previous) {
      for (const move of illegalMoves(previous, snapshot)) {
        this.ctx.emit({ actor: 'board', action: 'board.illegal_move', object: `task:${move.taskId}`, details: { message: move.message } });
      }
    }
    this.reportWip(snapshot);
  }

  /** Audits, once per count, each column (or assignee) over its WIP limit. */
  reportWip(snapshot: BoardSnapshot): void {
    for (const wip of wipStatus(snapshot)) {
      const key = `wip:${wip.kind}:${wip.name}:${wip.count}`;
      if (!wip.over || this.reportedErrors.has(key)) continue;
      this.reportedErrors.add(key);
      this.ctx.emit({ actor: 'board', action: 'board.wip_over', object: `${wip.kind}:${wip.name}`, details: { count: wip.count, limit: wip.limit, message: wip.message } });
    }
  }

  /**
   * Marks parents done whose subtasks are all done (unless the board config turns that off). A
   * manager's task waiting for the subtasks it created ({@link completeWaitingParents}) is settled
   * through its row instead, with the sub-results gathered on its card.
   */
  async completeParents(nowMs: number): Promise<void> {
    this.completeWaitingParents(nowMs);
    if (!this.board || !this.parents.dirty) return;
    const board = this.board;
    for (const { parentId, subtaskIds } of this.parents.take(board, this.taskById)) {
      const parent = this.taskById.get(parentId);
      if (!parent || parent.status === board.config.roles.done) continue;
      // Warren works this task, or its card is about to show its end: its row decides.
      const row = this.ctx.state.task(parentId);
      if (row && (row.boardSync === 'pending' || row.state === TaskState.assigned || row.state === TaskState.running)) continue;
      const now = new Date(nowMs).toISOString();
      try {
        const { hash } = await updateTask(board, parent, { status: board.config.roles.done, completed: now, updated: now, result: `all ${subtaskIds.length} subtasks done` }, { expectedHash: parent.hash });
        const updated = { ...parent, hash, status: board.config.roles.done };
        this.taskById.set(parentId, updated);
        const index = board.tasks.indexOf(parent);
        if (index !== -1) board.tasks[index] = updated;
        this.version += 1;
        // Its own parent may be done now.
        this.parents.note(updated);
        this.ctx.emit({ actor: SUPERVISOR, action: 'task.parent_done', object: `task:${parentId}`, details: { subtasks: subtaskIds } });
      } catch (error) {
        if (error instanceof TaskConflictError) {
          this.markChanged(parent.path);
        } else {
          this.parents.retry(parentId);
          this.ctx.log.warn({ taskId: parentId, err: error }, 'cannot mark the parent done');
        }
      }
    }
  }

  /**
   * The parents a manager's succeeded execution left waiting for its subtasks: once every subtask
   * succeeded, the parent's row succeeds with the sub-results as its result (each subtask's id,
   * title, agent and the first lines of its last execution's result), written to the card in the
   * board's own format by the board writer (Warren `result:`, Backlog.md Implementation Notes), and
   * `task.parent_done` is recorded. While one is open the reason lists them; a failed one is named
   * with its reason, and the parent keeps waiting (a person may retry the subtask). A parent no
   * longer running (a person moved it) stops waiting.
   */
  private completeWaitingParents(nowMs: number): void {
    const { ctx } = this;
    for (const { parent } of ctx.managers.waitingParents()) {
      const row = ctx.state.task(parent);
      if (!row || row.state !== TaskState.running) {
        ctx.managers.clearWaiting(parent);
        continue;
      }
      const subtasks = ctx.managers.subtasksOf(parent).map((s) => ({ ...s, row: ctx.state.task(s.subtask) }));
      const failed = subtasks.filter((s) => s.row && isTerminal(s.row.state) && s.row.state !== TaskState.succeeded);
      const open = subtasks.filter((s) => s.row?.state !== TaskState.succeeded);
      if (open.length > 0) {
        const reason =
          failed.length > 0
            ? `waiting for subtasks: ${failed.map((s) => `${s.subtask} ${s.row!.state}${s.row!.reason ? ` (${firstLine(s.row!.reason, 120)})` : ''}`).join('; ')}`
            : `waiting for subtasks: ${open.map((s) => s.subtask).join(', ')}`;
        if (row.reason !== reason) ctx.state.putTask({ ...row, reason, updatedMs: nowMs });
        continue;
      }
      const lines = subtasks.map((s) => {
        const last = ctx.registry.executions({ taskId: s.subtask, order: 'desc', limit: 1 })[0];
        const result = (last?.summary ?? s.row?.reason ?? '')
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l !== '')
          .slice(0, 2)
          .map((l) => firstLine(l, 120))
          .join(' / ');
        return `- ${s.subtask} "${firstLine(s.title, 60)}" by ${s.row?.agent ?? 'nobody'}: ${result || 'succeeded'}`;
      });
      ctx.transaction(() => {
        ctx.state.putTask({ ...row, state: TaskState.succeeded, reason: [`all ${subtasks.length} subtasks done:`, ...lines].join('\n'), boardSync: 'pending', updatedMs: nowMs, queuePosition: null, queueReason: null });
        ctx.managers.clearWaiting(parent);
        ctx.emit({ actor: SUPERVISOR, action: 'task.parent_done', object: `task:${parent}`, details: { subtasks: subtasks.map((s) => s.subtask) } });
      });
    }
  }

  private setBoard(snapshot: BoardSnapshot): void {
    this.board = snapshot;
    this.version += 1;
    this.parents.reset();
    this.taskById = new Map(snapshot.tasks.map((t) => [t.id, t]));
    this.taskIndex = new Map(snapshot.tasks.map((t, i) => [t.id, i]));
  }

  /**
   * Puts `updated` (the task as Warren just wrote it over `base`) into the current snapshot, unless
   * the snapshot has since read another version of that task: then its file is read again at the
   * next refresh.
   */
  replaceTask(base: Task, updated: Task): void {
    if (this.taskById.get(base.id)?.hash !== base.hash) {
      // Its file is read again (the watcher does not report Warren's own writes).
      this.markChanged(updated.path);
      return;
    }
    this.taskById.set(base.id, updated);
    this.version += 1;
    this.parents.note(updated);
    const index = this.taskIndex.get(base.id);
    if (this.board && index !== undefined && this.board.tasks[index]?.id === base.id) this.board.tasks[index] = updated;
  }

  /**
   * Checks the parent of task `id`, and the task itself as a parent, for completion at the next
   * {@link completeParents}: its row settled (its card written, or found to need no write), which
   * may let a parent held back by that row, or waiting for that card, be completed.
   */
  checkParentsOf(id: string): void {
    const task = this.taskById.get(id);
    if (task) this.parents.note(task);
  }

  /**
   * Notes `task` as the board writer has just written it to a Warren board's card (the task
   * `applyOwnedChanges` gives, equal to what parsing the written bytes gives), until
   * {@link clearWritten}.
   */
  noteWritten(task: Task): void {
    this.written.set(task.path, task);
  }

  /**
   * Forgets the tasks noted by {@link noteWritten} (the writer's flush has committed or failed).
   * `reread`: the flush failed before its outcomes were taken into the snapshot, so those files
   * are read again at the next refresh (the watcher does not report Warren's own writes).
   */
  clearWritten(reread = false): void {
    if (reread) for (const path of this.written.keys()) this.markChanged(path);
    this.written.clear();
  }

  /** Reports, once per file and message, a task file that cannot be read (held until it parses). */
  private reportHeld(error: TaskFileError): void {
    const key = `${error.path}:${error.message}`;
    if (this.reportedErrors.has(key)) return;
    this.reportedErrors.add(key);
    this.ctx.emit(
      {
        actor: 'board',
        action: 'task.held',
        object: `file:${relative(this.ctx.config.boardDir, error.path)}`,
        details: { message: error.message, line: error.line, field: error.field ?? null },
      },
      { message: error.message, fields: { path: error.path, line: error.line, field: error.field } },
    );
    this.ctx.emit(inputRejected({ kind: 'task', path: relative(this.ctx.config.boardDir, error.path), line: error.line, message: error.message }));
  }
}

/** The first line of `text`, at most `max` characters (an ellipsis marks a cut). */
function firstLine(text: string, max: number): string {
  const line = text.split('\n', 1)[0]!.trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/**
 * The paths the board watcher scans besides its own (`board.yaml` and the task files of `tasks/`):
 * {@link boardWatchPaths} of the snapshot, without `board.yaml` and the `tasks/` folder of a Warren
 * board. The watcher scans that folder's files anyway, and the folder's own signature (its mtime)
 * changes with every card Warren writes (a rename), which would report it as changed and make the
 * next refresh a full reload of every task file, every rescan while cards are written.
 */
export function extraWatchPaths(snapshot: BoardSnapshot, boardDir: string): string[] {
  const paths = boardWatchPaths(snapshot);
  if ((snapshot.format ?? 'warren') !== 'warren') return paths;
  const own = new Set([resolve(boardDir, 'board.yaml'), resolve(boardDir, 'tasks')]);
  return paths.filter((path) => !own.has(resolve(path)));
}

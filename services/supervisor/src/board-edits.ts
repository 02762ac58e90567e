/**
 * People's edits to the board while Warren works on it: a card moved away from a running task's
 * column, a card deleted during its run, and the path a finished task's card takes to its end
 * column on a board whose transition rules forbid the direct move.
 *
 * The rule is that a person's edit wins. Warren does not write over a column a person chose: the
 * execution is cancelled (or, once it has ended, the pending board write is dropped) and the late
 * result, if any, is kept in the audit trail only.
 */
import { existsSync } from 'node:fs';
import {
  applyOwnedChanges,
  checkTransition,
  MoveRefusedError,
  transitionPath,
  updateTask,
  type BoardConfig,
  type BoardSnapshot,
  type OwnedFieldChanges,
  type ReplaceObserver,
  type Task,
  type TaskFileError,
} from '@warren/kanban';
import { isTerminal, TaskState, type AssignmentRow, type StateStore, type TaskRow } from '@warren/registry';
import type { EmitEvent } from './event-bus.js';

/** The columns that play Warren's roles on a board. */
type Roles = BoardConfig['roles'];

/** One board write of a flush: owned-field changes with the column they move the card to. */
export type BoardStep = OwnedFieldChanges & { status: string };

/** Something about a task's card the run's summary reports (a person's move, where a card stopped). */
export interface BoardNote {
  readonly taskId: string;
  readonly message: string;
}

/** What {@link BoardEdits} needs from the supervisor. */
export interface BoardEditsContext {
  readonly state: StateStore;
  /** Records an event (`EventBus.emit`: inside the caller's transaction when there is one). */
  emit: EmitEvent;
  /**
   * Asks the agent that holds execution (`taskId`, `attempt`) to cancel it, the way
   * `warren task cancel` does. @returns false when no agent can be told (it is not running or not
   * connected): the caller then ends the execution itself.
   */
  cancelExecution(taskId: string, attempt: number, agent: string, reason: string): boolean;
  /** An open execution ended by a person's move of its card (Warren does not write that card): its trace ends here. */
  executionMoved?(taskId: string, attempt: number, reason: string, nowMs: number): void;
}

/** True while an execution of the task is open: assigned to an agent or running there. */
export function isInFlight(state: TaskState): boolean {
  return state === TaskState.assigned || state === TaskState.running;
}

/** The column Warren writes for a task row's state (done, failed, in progress or ready). */
export function columnOfState(state: TaskState, roles: Roles): string {
  if (state === TaskState.succeeded) return roles.done;
  if (isTerminal(state)) return roles.failed;
  if (isInFlight(state)) return roles.in_progress;
  return roles.ready;
}

/**
 * The column a person moved a task's card to, against what Warren holds for the task, or
 * undefined when the card shows nothing Warren did not write or means to write.
 *
 * - While an execution is open (row `assigned` or `running`): a card in any column other than the
 *   in-progress one and the ready one is a person's move; a card in the ready column is one when
 *   it was in progress before (`previousStatus`), since before Warren's first write a card that
 *   was just assigned still shows ready.
 * - Once the execution has ended but its board write is pending (row terminal, `boardSync`
 *   pending): a card in a column other than in progress, ready and the end column Warren is about
 *   to write.
 * - Otherwise never. A file whose bytes are the ones Warren last wrote (`row.boardHash`) is never
 *   a person's move.
 * @param previousStatus the card's column in the board as read before, when known.
 */
export function personMove(row: TaskRow, task: Task, roles: Roles, previousStatus?: string): string | undefined {
  if (row.boardHash !== null && task.hash === row.boardHash) return undefined;
  const status = task.status;
  if (status === roles.in_progress) return undefined;
  if (isInFlight(row.state)) {
    if (status === roles.ready) return previousStatus === roles.in_progress ? status : undefined;
    return status;
  }
  if (isTerminal(row.state) && row.boardSync === 'pending') {
    if (status === roles.ready || status === columnOfState(row.state, roles)) return undefined;
    return status;
  }
  return undefined;
}

/**
 * Applies people's edits of the board to Warren's state and reports what the board cannot show;
 * see the module's description. Keeps the notes for the run's summary.
 */
export class BoardEdits {
  /** Notes for the run's summary, in the order they happened. */
  readonly notes: BoardNote[] = [];
  /** Executions (`taskId:attempt`) whose deleted card, or card stopped short, has been reported. */
  private readonly reported = new Set<string>();

  constructor(private readonly context: BoardEditsContext) {}

  /**
   * Checks each task's card against its row ({@link personMove}) and applies the moves, inside the
   * caller's transaction. For an open execution: the task row takes the person's column (state
   * `cancelled`, or `ready` for a new attempt when the card went to the ready column), the board
   * write is dropped (the row is marked clean at the card's hash), a `task.cancelled` audit row
   * names the move, and the execution is cancelled through its agent, or ended as `cancelled` at
   * once when no agent can be told (or it was never published). For an ended execution: the
   * pending board write is dropped, with a `board.write_dropped` audit row.
   *
   * @param tasks cards to check (those just read); @param previous the board's tasks by id as read
   *   before (for moves back to ready); @param whileStopped the moves were found at start-up.
   * @returns the executions that were cancelled.
   */
  applyMoves(tasks: Iterable<Task>, roles: Roles, previous: ReadonlyMap<string, Task>, nowMs: number, whileStopped = false): AssignmentRow[] {
    const { state, emit } = this.context;
    const cancelled: AssignmentRow[] = [];
    for (const task of tasks) {
      const row = state.task(task.id);
      if (!row) continue;
      const column = personMove(row, task, roles, previous.get(task.id)?.status);
      if (column === undefined) continue;
      const reason = `moved to ${column} on the board${whileStopped ? ' while the supervisor was stopped' : ''}`;
      if (!isInFlight(row.state)) {
        state.putTask({ ...row, boardSync: 'clean', boardHash: task.hash });
        emit(
          { actor: 'board', action: 'board.write_dropped', object: `task:${task.id}`, details: { attempt: row.attempt, state: row.state, column, reason } },
          { fields: { taskId: task.id, column }, message: `task ${task.id} ${reason} after it ended (${row.state}); the card keeps that column` },
        );
        this.notes.push({ taskId: task.id, message: `${reason} after it ended (${row.state}); the card keeps that column` });
        continue;
      }
      const toReady = column === roles.ready;
      state.putTask({
        ...row,
        state: toReady ? TaskState.ready : TaskState.cancelled,
        reason,
        boardSync: 'clean',
        boardHash: task.hash,
        updatedMs: nowMs,
        notBeforeMs: null,
        readySinceMs: toReady ? nowMs : row.readySinceMs,
        queuePosition: null,
        queueReason: null,
      });
      emit(
        {
          actor: 'board',
          action: 'task.cancelled',
          object: `task:${task.id}`,
          details: { attempt: row.attempt, agent: row.agent, column, reason, requeued: toReady },
        },
        { fields: { taskId: task.id, attempt: row.attempt, column }, message: `task ${task.id} ${reason}: execution cancelled${toReady ? '; it runs again' : ''}` },
      );
      const open = state.assignment(task.id, row.attempt);
      if (open && open.state !== 'finished') {
        const told = open.state !== 'pending' && this.context.cancelExecution(task.id, row.attempt, open.agent, reason);
        if (!told) state.finishAssignment(task.id, row.attempt, { outcome: 'cancelled', exitCode: null, summary: reason, outputs: [] }, nowMs);
        this.context.executionMoved?.(task.id, row.attempt, reason, nowMs);
        cancelled.push(open);
      }
      this.notes.push({ taskId: task.id, message: `${reason}: attempt ${row.attempt} cancelled${toReady ? ', queued again' : ''}` });
    }
    return cancelled;
  }

  /**
   * Reports, once per execution, an open execution whose card is gone from the board (deleted, not
   * merely unreadable: a file that no longer parses is held and reported as such). The execution
   * runs to its end; its result is kept in the database and the audit trail, and its board write
   * is dropped ({@link isDeletedCard}). Emits a `task.card_deleted` event, logged as a warning.
   */
  reportDeletedCards(taskById: ReadonlyMap<string, Task>, errors: readonly TaskFileError[]): void {
    const { state, emit } = this.context;
    let held: Set<string> | undefined;
    for (const open of state.openAssignments()) {
      if (taskById.has(open.taskId)) continue;
      const key = `${open.taskId}:${open.attempt}`;
      if (this.reported.has(`deleted:${key}`)) continue;
      const row = state.task(open.taskId);
      if (!row || row.attempt !== open.attempt) continue;
      held ??= new Set(errors.map((e) => e.path));
      if (held.has(row.path)) continue;
      this.reported.add(`deleted:${key}`);
      const message = `the card of task ${open.taskId} (${row.path}) was deleted during attempt ${open.attempt} on ${open.agent}; the execution runs to its end and its result is kept in the audit trail only`;
      emit(
        { actor: 'board', action: 'task.card_deleted', object: `task:${open.taskId}`, details: { attempt: open.attempt, agent: open.agent, path: row.path } },
        { fields: { taskId: open.taskId, attempt: open.attempt, path: row.path }, message },
      );
      this.notes.push({ taskId: open.taskId, message: 'card deleted during its run; the result is in the audit trail only' });
    }
  }

  /**
   * True when a pending board write has no card to go to because the card was deleted (not held:
   * no file error at its path). The caller then marks the row clean: the write is dropped.
   */
  isDeletedCard(row: TaskRow, taskById: ReadonlyMap<string, Task>, errors: readonly TaskFileError[]): boolean {
    return !taskById.has(row.id) && !errors.some((e) => e.path === row.path) && !existsSync(row.path);
  }

  /**
   * The board writes that take a task's card from its column to the column of `changes`:
   * the direct move when the board allows it, else the shortest way its transition rules allow
   * ({@link transitionPath}; the in-progress step carries the assignee and start). A final write
   * (done or failed) also carries `assignee` and, when the card never showed the task in
   * progress, `started` (the time of the assignment), so a fast task's card is complete even when
   * its in-progress write was folded into the last one. When no allowed way leads there, one
   * write of the result alone, saying where the card stopped and why, and a note for the summary.
   *
   * @param startedIso when the execution was assigned (ISO 8601), for `started`.
   */
  steps(board: BoardSnapshot, row: TaskRow, task: Task, changes: BoardStep, startedIso: string): BoardStep[] | OwnedFieldChanges[] {
    const roles = board.config.roles;
    const final = changes.status === roles.done || changes.status === roles.failed;
    if (!final) {
      if (changes.status === roles.in_progress || task.status === roles.in_progress || checkTransition(board.config, task.status, changes.status) === null) return [changes];
      return [{ status: roles.in_progress, assignee: row.agent, started: startedIso, updated: changes.updated ?? null }, { ...changes, assignee: row.agent }];
    }
    const last: BoardStep = row.agent === null ? changes : { ...changes, assignee: row.agent, ...(task.status === roles.in_progress ? {} : { started: startedIso }) };
    const path = transitionPath(board.config, task.status, changes.status);
    if (path === null) {
      const refusal = checkTransition(board.config, task.status, changes.status);
      const why = `stopped in ${task.status}: ${refusal?.message ?? `no allowed moves lead from ${task.status} to ${changes.status}`}`;
      const key = `stopped:${task.id}:${row.attempt}`;
      if (!this.reported.has(key)) {
        this.reported.add(key);
        this.notes.push({ taskId: task.id, message: `${row.state}, but the card ${why}` });
        this.context.emit(
          { actor: 'supervisor', action: 'board.stopped', object: `task:${task.id}`, details: { attempt: row.attempt, column: task.status, target: changes.status, reason: why } },
          { fields: { taskId: task.id, column: task.status }, message: `card of ${task.id} ${why}` },
        );
      }
      const { status: _unused, ...rest } = last;
      return [{ ...rest, result: `${changes.result ?? row.state}; ${why}` }];
    }
    if (path.length <= 1) return [last];
    return path.map((column, i): BoardStep => {
      if (i === path.length - 1) return last;
      if (column === roles.in_progress) return { status: column, assignee: row.agent, started: startedIso, updated: changes.updated ?? null };
      return { status: column, updated: changes.updated ?? null };
    });
  }

  /**
   * Writes `steps` to `task`'s card in order, each checked against the board's rules by
   * `updateTask`. When a step is refused (a WIP limit on the way), the card stays where it got to
   * and a last write of the result says where it stopped and why; the refusal is returned for the
   * caller to report.
   * @param replaceObserver told of each write's rename (the board watcher of a Warren board, so
   *   that Warren's own writes are not reported back as changes); none by default.
   * @returns `ok` with the task as now written, or the error and the task as far as it got.
   */
  async write(
    board: BoardSnapshot,
    task: Task,
    steps: readonly OwnedFieldChanges[],
    replaceObserver?: ReplaceObserver,
  ): Promise<{ ok: true; updated: Task } | { ok: false; error: unknown; updated: Task }> {
    const warren = (board.format ?? 'warren') === 'warren';
    let current = task;
    const apply = async (changes: OwnedFieldChanges): Promise<void> => {
      const { hash } = await updateTask(board, current, changes, { expectedHash: current.hash, syncDirectory: false, replaceObserver });
      // Other formats are re-read by the watcher; until then the task shows the status and
      // assignee just written, so that the next flush does not write them again.
      current = warren
        ? applyOwnedChanges(current, changes, hash)
        : {
            ...current,
            hash,
            ...(changes.status === undefined ? {} : { status: changes.status }),
            ...(changes.assignee === undefined ? {} : { assignee: changes.assignee }),
          };
    };
    try {
      for (const changes of steps) await apply(changes);
      return { ok: true, updated: current };
    } catch (error) {
      const last = steps[steps.length - 1]!;
      if (error instanceof MoveRefusedError && last.result && current.status !== last.status) {
        const why = `stopped in ${current.status}: ${error.refusal.message}`;
        this.notes.push({ taskId: task.id, message: `the card ${why}` });
        await apply({ result: `${last.result}; ${why}`, updated: last.updated ?? null }).catch(() => undefined);
      }
      return { ok: false, error, updated: current };
    }
  }
}

import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  rewriteOwnedFields,
  syncDirectories,
  MoveRefusedError,
  TaskConflictError,
  type BoardRoles,
  type OwnedFieldChanges,
  type Task,
} from '@warren/kanban';
import type { BoardEdits } from '../board-edits.js';
import { mapLimit, SUPERVISOR, type SupervisorContext } from '../context.js';
import { crashDuringWrite, CrashPoint } from '../crash.js';
import { isTerminal, TaskState, type TaskRow } from '@warren/registry';
import type { CommitBarrier } from '../executions/barrier.js';
import type { BoardMirror } from './mirror.js';

/** Board files written at once by a flush. */
const BOARD_WRITE_CONCURRENCY = 16;

/**
 * How long after its assignment (ms) a task's card is first moved to in progress. A task that ends
 * sooner gets one write, to its end column, instead of two (a file write, its fsync and the folder
 * sync each); a longer one shows in progress this much later.
 */
export const IN_PROGRESS_DELAY_MS = 200;

/**
 * The fields Warren owns on a task's card for the state of its row: in progress with the assignee
 * while assigned or running; done with the result; the failed column with the reason once it
 * ended otherwise; back to ready (with the last attempt's reason, if any) while it waits.
 * `nowIso` stamps `started`, `completed` and `updated` (ISO 8601).
 */
export function boardFields(row: Pick<TaskRow, 'state' | 'agent' | 'reason' | 'attempt'>, roles: BoardRoles, nowIso: string): OwnedFieldChanges & { readonly status: string } {
  if (row.state === TaskState.assigned || row.state === TaskState.running) return { status: roles.in_progress, assignee: row.agent, started: nowIso, updated: nowIso };
  if (row.state === TaskState.succeeded) return { status: roles.done, result: row.reason ?? 'succeeded', completed: nowIso, updated: nowIso };
  if (isTerminal(row.state)) return { status: roles.failed, result: row.reason ?? row.state, completed: nowIso, updated: nowIso };
  if (row.reason) return { status: roles.ready, assignee: null, result: `attempt ${row.attempt}: ${row.reason}`, updated: nowIso };
  return { status: roles.ready, assignee: null, updated: nowIso };
}

/**
 * The board outbox: task rows whose card does not yet show their state are `pending` in SQLite
 * (committed with the state change) and written here, off the tick's path, one flush at a time,
 * so a slow disk delays the board and never the assignments.
 */
export class BoardWriter {
  /** The board write running in the background, if any (see {@link start}). */
  private flush: Promise<void> | undefined;
  /** The timer of the tick that writes the in-progress cards held back (see {@link IN_PROGRESS_DELAY_MS}), and when it fires (ms). */
  private deferred: { timer: NodeJS.Timeout; atMs: number } | undefined;
  /**
   * The tick's commit barrier, once the supervisor has given it ({@link commitThrough}): the
   * outcomes then commit without an fsync and their events wait for the barrier's next pass.
   */
  private barrier: CommitBarrier | undefined;

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly mirror: BoardMirror,
    private readonly edits: BoardEdits,
  ) {}

  /**
   * Commits the outcomes through `barrier` from now on: at `synchronous = NORMAL`, their events
   * (`board.write`, `board.refused`) held until the barrier's next pass has synced the WAL, and a
   * tick asked for so that the pass comes. Until then each outcome commit is durable on its own
   * (`synchronous = FULL`, an fsync on the event loop).
   */
  commitThrough(barrier: CommitBarrier): void {
    this.barrier = barrier;
  }

  /** Whether a background write is running. */
  get running(): boolean {
    return this.flush !== undefined;
  }

  /**
   * Starts writing the board rows that are pending, in the background, unless a write is already
   * running. A task whose row changes again while a write runs is written once more by the next
   * flush, and one that went from ready to done while the writer was busy gets a single write.
   * When a flush wrote something and more is pending, a tick follows.
   */
  start(): void {
    const { ctx, mirror } = this;
    if (this.flush || !mirror.board || ctx.state.pendingBoardTasks().length === 0) return;
    if (!mirror.availability().mayWrite(Date.now())) return;
    this.flush = this.write(false).then(
      (wrote) => {
        this.flush = undefined;
        if (mirror.dirty || this.barrier?.waiting || (wrote > 0 && ctx.state.pendingBoardTasks().length > 0)) ctx.requestTick();
      },
      (error: unknown) => {
        this.flush = undefined;
        mirror.clearWritten(true);
        if (!mirror.availability().noteFailure(Date.now())) ctx.log.error({ err: error }, 'cannot write the board; will retry');
      },
    );
  }

  /**
   * Waits for the background board write, then (when `writePending`) writes whatever is still
   * pending. Its outcomes may be left for the barrier's next pass (the caller passes it).
   */
  async drain(writePending = true): Promise<void> {
    await this.flush;
    if (this.deferred) clearTimeout(this.deferred.timer);
    this.deferred = undefined;
    if (writePending) await this.write(true);
  }

  /**
   * Writes each pending task row's state to its board file (owned fields only) and records the
   * outcomes. Files are independent: up to {@link BOARD_WRITE_CONCURRENCY} are written at once, each
   * synced, then the board folder is synced once and every outcome is committed in one transaction
   * (a row is marked clean only once its file is durable). Unless `all`, or the board has WIP
   * limits on the in-progress column or transition rules, a task in flight whose card does not
   * show it yet waits until {@link IN_PROGRESS_DELAY_MS} after its assignment (a tick is asked for
   * then), so that a short task's card is written once.
   * @returns how many files were written.
   */
  private async write(all: boolean): Promise<number> {
    const { ctx, mirror, edits } = this;
    if (!mirror.board) return 0;
    const board = mirror.board;
    const roles = board.config.roles;
    const writes: { row: TaskRow; task: Task; steps: OwnedFieldChanges[] }[] = [];
    // Rows whose card needs no write, marked clean together with the outcomes (one commit, not one each).
    const clean: { row: TaskRow; boardHash?: string }[] = [];
    const nowMs = Date.now();
    let deferUntilMs = Infinity;
    // None is held back on a board with process rules: WIP limits of the in-progress column are
    // counted on the cards, and transition rules may allow the end column only from in progress.
    const { config } = board;
    const holdBack = !all && !config.transitions?.enabled && config.wipPerAgent === undefined && config.columns.find((c) => c.id === roles.in_progress)?.wip === undefined;
    for (const row of ctx.state.pendingBoardTasks()) {
      const task = mirror.taskById.get(row.id);
      if (!task) {
        // A deleted card: its write has nowhere to go (the result stays in the audit trail).
        if (edits.isDeletedCard(row, mirror.taskById, board.errors)) {
          clean.push({ row });
          const atMs = Date.now();
          ctx.tracing.boardWritten(row.id, row.attempt, { state: row.state, startMs: atMs, endMs: atMs, ok: false, message: 'the card was deleted' });
        }
        continue;
      }
      const now = new Date().toISOString();
      const changes = boardFields(row, roles, now);
      if (row.state === TaskState.running && task.status === roles.in_progress && task.assignee === row.agent) {
        clean.push({ row, boardHash: task.hash });
        continue;
      }
      const assignedMs = ctx.state.assignment(row.id, row.attempt)?.assignedMs;
      if (holdBack && (row.state === TaskState.assigned || row.state === TaskState.running) && task.status !== roles.in_progress) {
        const dueMs = (assignedMs ?? row.updatedMs) + IN_PROGRESS_DELAY_MS;
        if (dueMs > nowMs) {
          deferUntilMs = Math.min(deferUntilMs, dueMs);
          continue;
        }
      }
      if (ctx.config.crashAt === CrashPoint.boardWriting && (board.format ?? 'warren') === 'warren') {
        crashDuringWrite(task.path, rewriteOwnedFields(await readFile(task.path, 'utf8'), changes));
      }
      // A task that finished before its card ever showed it in progress moves straight to its end
      // column, unless the board's transitions forbid that: then it goes through in progress.
      const steps = edits.steps(board, row, task, changes, assignedMs === undefined ? now : new Date(assignedMs).toISOString());
      writes.push({ row, task, steps });
    }
    if (deferUntilMs !== Infinity) this.tickAt(deferUntilMs, nowMs);
    // A row that moved on since it was read stays pending.
    const markClean = (): void => {
      for (const { row, boardHash } of clean) {
        mirror.checkParentsOf(row.id);
        const latest = ctx.state.task(row.id);
        if (latest && latest.state === row.state && latest.updatedMs === row.updatedMs && latest.attempt === row.attempt) ctx.state.putTask({ ...latest, boardSync: 'clean', ...(boardHash === undefined ? {} : { boardHash }) });
      }
    };
    if (writes.length === 0) {
      if (clean.length > 0) this.commit(markClean);
      return 0;
    }
    const writeStartMs = Date.now();
    // A Warren card now reads as the task with the changes applied: a refresh that reads it before
    // the outcomes are committed below takes that task instead of parsing the file.
    const warren = (board.format ?? 'warren') === 'warren';
    // The watcher of a Warren board does not report these writes back (the mirror takes the tasks
    // written below); other formats are read again after their writes.
    const observer = warren ? mirror.replaceObserver : undefined;
    const outcomes = await mapLimit(writes, BOARD_WRITE_CONCURRENCY, async ({ task, steps }) => {
      const outcome = await edits.write(board, task, steps, observer);
      if (warren && outcome.updated !== task) mirror.noteWritten(outcome.updated);
      return outcome;
    });
    // One folder sync makes every rename above durable.
    await syncDirectories(new Set(writes.map(({ task }) => dirname(task.path))));
    const writtenMs = Date.now();
    let wrote = 0;
    this.commit(() => {
      markClean();
      writes.forEach(({ row, task, steps }, i) => {
        const outcome = outcomes[i]!;
        mirror.checkParentsOf(row.id);
        // A Warren file now reads as the task with the changes applied (re-reading it gives the
        // same task, so the watcher's echo of this write costs no parse).
        if (outcome.updated !== task) mirror.replaceTask(task, outcome.updated);
        // The row may have moved on while the file was written: then it stays pending.
        const latest = ctx.state.task(row.id) ?? row;
        const unchanged = latest.state === row.state && latest.updatedMs === row.updatedMs && latest.attempt === row.attempt;
        if (outcome.ok) {
          wrote += 1;
          ctx.state.putTask({ ...latest, boardSync: unchanged ? 'clean' : latest.boardSync, boardHash: outcome.updated.hash });
          for (const changes of steps) ctx.emit({ actor: SUPERVISOR, action: 'board.write', object: `task:${row.id}`, details: { ...changes } });
          ctx.tracing.boardWritten(row.id, row.attempt, { state: row.state, startMs: writeStartMs, endMs: writtenMs, ok: true, column: String(steps[steps.length - 1]?.status ?? '') });
          return;
        }
        const error = outcome.error;
        if (error instanceof MoveRefusedError) {
          // The board's process rules (transitions, WIP) forbid this move: say so once, keep the
          // state in SQLite, and do not retry it every tick.
          if (unchanged) ctx.state.putTask({ ...latest, boardSync: 'clean' });
          ctx.tracing.boardWritten(row.id, row.attempt, { state: row.state, startMs: writeStartMs, endMs: writtenMs, ok: false, message: error.message });
          ctx.emit({ actor: SUPERVISOR, action: 'board.refused', object: `task:${row.id}`, details: { ...steps[steps.length - 1]!, message: error.message } });
        } else if (error instanceof TaskConflictError) {
          // A person edited the file since we read it: re-read it, then write over the fresh copy.
          ctx.log.info({ taskId: row.id }, 'task file changed under us; re-reading before writing');
          mirror.markChanged(task.path);
          ctx.requestTick();
        } else if (!mirror.availability().noteFailure(Date.now())) {
          ctx.log.error({ err: error, taskId: row.id }, 'cannot write the task file; will retry');
        }
      });
    });
    mirror.clearWritten();
    // Warren's own moves change the columns' counts too.
    if (wrote > 0 && mirror.board) mirror.reportWip(mirror.board);
    return wrote;
  }

  /** Asks for a tick at `atMs` (unless one is already asked for by then), when held-back cards are due. */
  private tickAt(atMs: number, nowMs: number): void {
    if (this.deferred && this.deferred.atMs <= atMs) return;
    if (this.deferred) clearTimeout(this.deferred.timer);
    const timer = setTimeout(() => {
      this.deferred = undefined;
      this.ctx.requestTick();
    }, Math.max(0, atMs - nowMs));
    timer.unref();
    this.deferred = { timer, atMs };
  }

  /**
   * One transaction of outcomes: through the barrier when there is one (no fsync here; the card
   * files are already durable, and a power loss that takes the commit back only leaves the rows
   * pending, so the cards are written again with the same fields), else durable at once.
   */
  private commit(work: () => void): void {
    const { ctx, barrier } = this;
    if (barrier) barrier.commit(() => ctx.transaction(work));
    else ctx.transaction(work);
  }
}

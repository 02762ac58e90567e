import { SUPERVISOR, type SupervisorContext } from '../context.js';
import { TaskState } from '@warren/registry';
import type { AgentTemplate } from '../templates.js';
import { decideSettlement, type ExecutionOutcome } from './decisions.js';

/** What a run settled: the tasks that succeeded and those that ended otherwise, with the reason. */
export class RunTally {
  readonly succeeded: string[] = [];
  readonly failed: { taskId: string; reason: string }[] = [];
}

/**
 * Settlement: carries out {@link decideSettlement} inside the caller's transaction. Writes the task
 * row (with its board write pending) and its audit row, and tallies the run.
 */
export class Settler {
  constructor(
    private readonly ctx: SupervisorContext,
    readonly tally: RunTally,
  ) {}

  /**
   * Settles attempt `attempt` of `taskId`, which ended with `outcome`, for the reason given.
   * `template`: the template of the agent that ran it (its retry policy); none: not retried.
   * A success of a task with subtasks a manager created that are not all done leaves it running
   * (waiting for them: see {@link openSubtasks}).
   * @returns 'retry', the final state (`running` for a parent that waits), or undefined if nothing changed.
   */
  settle(taskId: string, attempt: number, outcome: ExecutionOutcome, reason: string, nowMs: number, template: AgentTemplate | undefined): 'retry' | TaskState | undefined {
    const { state, config } = this.ctx;
    const row = state.task(taskId);
    const decision = decideSettlement({ row, attempt, outcome, retry: template?.retry, maxLostAttempts: config.maxAttempts });
    if (decision.kind === 'none' || !row) return undefined;
    this.ctx.tracing.settled(taskId, attempt, outcome, reason, nowMs);
    const base = { ...row, reason, boardSync: 'pending' as const, updatedMs: nowMs, queuePosition: null, queueReason: null };
    switch (decision.kind) {
      case 'succeeded': {
        // A manager's task with subtasks still open waits for them (in progress, the reason naming
        // them); the board mirror completes it when the last one is done.
        const open = openSubtasks(this.ctx, taskId);
        if (open.length > 0 && row.agent !== null) {
          state.putTask({ ...base, state: TaskState.running, reason: `waiting for subtasks: ${open.join(', ')}`, notBeforeMs: null });
          this.ctx.managers.markWaiting(taskId, row.agent, nowMs);
          return TaskState.running;
        }
        state.putTask({ ...base, state: TaskState.succeeded, notBeforeMs: null });
        this.tally.succeeded.push(taskId);
        return TaskState.succeeded;
      }
      case 'retry':
        state.putTask({ ...base, state: TaskState.ready, agent: null, notBeforeMs: nowMs + decision.delayMs, readySinceMs: nowMs });
        this.ctx.emit({
          actor: SUPERVISOR,
          action: outcome === 'lost' ? 'task.requeue' : 'task.retry',
          object: `task:${taskId}`,
          details: { attempt, outcome, reason, retryInMs: decision.delayMs, maxAttempts: decision.maxAttempts },
        });
        return 'retry';
      case 'final':
        state.putTask({ ...base, state: decision.state, notBeforeMs: null });
        if (outcome === 'lost') {
          this.ctx.emit({ actor: SUPERVISOR, action: 'task.fail', object: `task:${taskId}`, details: { attempt, outcome, reason } });
        }
        this.tally.failed.push({ taskId, reason });
        return decision.state;
    }
  }
}

/** The ids of the subtasks managers created under `parent` that have not succeeded (a subtask not yet read from the board counts). */
export function openSubtasks(ctx: Pick<SupervisorContext, 'managers' | 'state'>, parent: string): string[] {
  return ctx.managers
    .subtasksOf(parent)
    .filter((s) => ctx.state.task(s.subtask)?.state !== TaskState.succeeded)
    .map((s) => s.subtask);
}

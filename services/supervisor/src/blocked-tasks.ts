import type { AuditEntry } from '@warren/audit';
import type { Logger } from '@warren/core';
import { blockedTasks, type BlockedTask, type BoardSnapshot } from '@warren/kanban';

/**
 * Keeps the board's blocked tasks (ready tasks that wait on a dependency cycle, on themselves, on
 * an unknown id, or on such a task; see `blockedTasks` of `@warren/kanban`) and reports each one
 * when it becomes blocked: one warn log line and one `task.blocked` audit row (details: `reason`).
 * A task that is unblocked and blocked again is reported again.
 */
export class BlockedTaskReport {
  private current: readonly BlockedTask[] = [];

  constructor(
    private readonly log: Logger,
    private readonly record: (entry: AuditEntry) => void,
  ) {}

  /** The blocked tasks of the last board seen, in board order. */
  get tasks(): readonly BlockedTask[] {
    return this.current;
  }

  /** Recomputes the blocked tasks of `board` and reports the newly blocked ones. */
  update(board: BoardSnapshot): void {
    const before = new Set(this.current.map(keyOf));
    this.current = blockedTasks(board.tasks, board.config);
    for (const blocked of this.current) {
      if (before.has(keyOf(blocked))) continue;
      this.log.warn({ taskId: blocked.taskId, reason: blocked.reason }, `task ${blocked.taskId} is blocked: ${blocked.reason}`);
      this.record({ actor: 'board', action: 'task.blocked', object: `task:${blocked.taskId}`, details: { reason: blocked.reason } });
    }
  }
}

const keyOf = (blocked: BlockedTask): string => `${blocked.taskId}\u0000${blocked.reason}`;

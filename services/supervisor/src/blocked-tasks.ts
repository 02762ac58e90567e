import { blockedTasks, type BlockedTask, type BoardSnapshot } from '@warren/kanban';
import type { EmitEvent } from './event-bus.js';

/**
 * Keeps the board's blocked tasks (ready tasks that wait on a dependency cycle, on themselves, on
 * an unknown id, or on such a task; see `blockedTasks` of `@warren/kanban`) and reports each one
 * when it becomes blocked: one `task.blocked` event (details: `reason`), logged as a warning.
 * A task that is unblocked and blocked again is reported again.
 */
export class BlockedTaskReport {
  private current: readonly BlockedTask[] = [];

  /** @param emit records an event (`EventBus.emit`). */
  constructor(private readonly emit: EmitEvent) {}

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
      this.emit(
        { actor: 'board', action: 'task.blocked', object: `task:${blocked.taskId}`, details: { reason: blocked.reason } },
        { message: `task ${blocked.taskId} is blocked: ${blocked.reason}` },
      );
    }
  }
}

const keyOf = (blocked: BlockedTask): string => `${blocked.taskId}\u0000${blocked.reason}`;

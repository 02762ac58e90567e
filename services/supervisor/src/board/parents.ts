import { parentCompletion, subtasksByParent, type BoardSnapshot, type ParentCompletion, type Task } from '@warren/kanban';

/**
 * Which parents may have become done by the board's rule (`parentsToComplete`) since they were
 * last checked, so that a check costs what changed rather than a scan of the whole board: after a
 * new snapshot every parent is checked once; after that only the parents of the tasks noted
 * ({@link note}: a card Warren wrote, a row that settled), and the noted tasks themselves (a
 * parent whose own row settled may be done now).
 *
 * The subtasks of each parent are indexed once per snapshot: within one, tasks are only replaced
 * by newer versions of the same card (Warren's own writes of owned fields), which keep their id
 * and parent; a snapshot that adds, removes or re-parents a task is a new one ({@link reset}).
 */
export class ParentChecks {
  /** The parents (ids) to check, or every one. */
  private pending: 'all' | Set<string> = 'all';
  /** Subtask ids by parent id, for the current snapshot; built at its first check. */
  private subtasks: Map<string, string[]> | undefined;

  /** Whether a check has anything to look at. */
  get dirty(): boolean {
    return this.pending === 'all' || this.pending.size > 0;
  }

  /** A new snapshot: every parent is checked at the next {@link take}. */
  reset(): void {
    this.pending = 'all';
    this.subtasks = undefined;
  }

  /** `task` (as the snapshot now has it) changed: its parent, and the task itself as a parent, are checked next. */
  note(task: Pick<Task, 'id' | 'parentTaskId'>): void {
    if (this.pending === 'all') return;
    this.pending.add(task.id);
    if (task.parentTaskId !== undefined) this.pending.add(task.parentTaskId);
  }

  /** Checks `parentId` again at the next {@link take} (its write failed, to be retried). */
  retry(parentId: string): void {
    if (this.pending !== 'all') this.pending.add(parentId);
  }

  /**
   * The parents to complete among those pending (every parent after a {@link reset}), as
   * `parentsToComplete` gives them (a parent not done whose subtasks are all done; subtasks in
   * task order), and forgets them: a parent that is not complete now is checked again only once
   * noted again.
   * @param board the current snapshot; @param taskById its tasks by id, as they now read.
   */
  take(board: Pick<BoardSnapshot, 'config' | 'tasks'>, taskById: ReadonlyMap<string, Task>): ParentCompletion[] {
    const pending = this.pending;
    this.pending = new Set();
    if (board.config.parentDoneWhenSubtasksDone === false) return [];
    const index = (this.subtasks ??= subtasksByParent(board.tasks));
    if (index.size === 0) return [];
    const out: ParentCompletion[] = [];
    const check = (parentId: string): void => {
      const ids = index.get(parentId);
      const parent = ids && taskById.get(parentId);
      if (!ids || !parent) return;
      const subtasks: Task[] = [];
      for (const id of ids) {
        const task = taskById.get(id);
        if (task) subtasks.push(task);
      }
      const completion = parentCompletion(board.config, parent, subtasks);
      if (completion) out.push(completion);
    };
    if (pending === 'all') {
      for (const task of board.tasks) if (index.has(task.id)) check(task.id);
    } else {
      for (const id of pending) check(id);
    }
    return out;
  }
}

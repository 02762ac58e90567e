/**
 * The head of the ready queue in planner order, kept between ticks from what changed, so that a
 * tick that hands out a few tasks does not look at every ready task: see {@link UrgentQueue}.
 */
import { mostUrgent, plannerOrder, type PlannerTask } from './urgent-plan.js';

/** Where a board task stands in an {@link UrgentQueue}: not ready (or not known), in the head, ready after the head. */
const Place = { out: 0, head: 1, rest: 2 } as const;

/**
 * The ready tasks of a board in {@link plannerOrder}, of which only the first are held in order:
 * `head` is exactly the first `head.length` ready tasks, and `restCount` more are ready, each
 * after the last of the head. Tasks are known by their index in the board's task array (their
 * `PlannerTask` carries the id the order needs).
 *
 * {@link reset} sets it from every ready task; {@link remove} and {@link add} follow a task that
 * left the ready set, joined it, or changed, in O(log head + head) each: a task joining after the
 * last of the head while tasks are left out joins the rest, uncounted by order. When the head is
 * too short for a caller ({@link first} returns undefined), it must be set again from every
 * ready task. The order of the tasks held must not change meanwhile: the caller resets it when a
 * task's effective priority may have changed (ageing) or the indices may mean other tasks.
 */
export class UrgentQueue {
  private head: PlannerTask[] = [];
  private restCount = 0;
  /** Per board index, its {@link Place}. */
  private places = new Uint8Array(0);
  /** The head's tasks by board index. */
  private readonly headAt = new Map<number, PlannerTask>();

  /** How many tasks are ready: the head and the rest. */
  get count(): number {
    return this.head.length + this.restCount;
  }

  /**
   * Sets the queue from every ready task (`ready`, each with its board index `indexOf(task)`, on a
   * board of `boardSize` tasks), keeping the first `keep` in order: O(n log keep).
   */
  reset<T>(ready: readonly T[], toTask: (item: T) => PlannerTask, indexOf: (item: T) => number, boardSize: number, keep: number): void {
    this.places = new Uint8Array(boardSize);
    this.headAt.clear();
    const byTask = new Map<PlannerTask, number>();
    const tasks = ready.map((item) => {
      const task = toTask(item);
      const index = indexOf(item);
      byTask.set(task, index);
      this.places[index] = Place.rest;
      return task;
    });
    this.head = mostUrgent(tasks, keep);
    for (const task of this.head) {
      const index = byTask.get(task)!;
      this.places[index] = Place.head;
      this.headAt.set(index, task);
    }
    this.restCount = ready.length - this.head.length;
  }

  /** Takes the task at board `index` out of the ready set (nothing when it is not in it). */
  remove(index: number): void {
    const place = this.places[index];
    if (place === Place.rest) {
      this.restCount -= 1;
    } else if (place === Place.head) {
      const task = this.headAt.get(index)!;
      this.headAt.delete(index);
      this.head.splice(lowerBound(this.head, task), 1);
    }
    this.places[index] = Place.out;
  }

  /**
   * Puts the ready task at board `index` (`task`: its planner view now) into the ready set; it
   * must not be in it (see {@link remove}).
   */
  add(index: number, task: PlannerTask): void {
    const last = this.head.at(-1);
    if (this.restCount > 0 && (last === undefined || plannerOrder(task, last) > 0)) {
      this.restCount += 1;
      this.places[index] = Place.rest;
      return;
    }
    this.head.splice(lowerBound(this.head, task), 0, task);
    this.headAt.set(index, task);
    this.places[index] = Place.head;
  }

  /** Whether board index `index` fits the queue as last set (a board that grew needs a reset). */
  holds(index: number): boolean {
    return index < this.places.length;
  }

  /**
   * The first `min(k, count)` ready tasks in planner order, or undefined when the head holds fewer
   * and tasks are left out (the queue must then be set again with a longer head). Do not modify.
   */
  first(k: number): readonly PlannerTask[] | undefined {
    if (this.head.length >= k) return this.head.length === k ? this.head : this.head.slice(0, k);
    return this.restCount === 0 ? this.head : undefined;
  }
}

/** The first position in `list` (in planner order) whose task does not come before `task`. */
function lowerBound(list: readonly PlannerTask[], task: PlannerTask): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (plannerOrder(list[mid]!, task) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Planning a long queue in time proportional to the free capacity: the supervisor's tick asks for
 * a plan on every event, and a board of 20,000 ready tasks served by 16 agents has at most a few
 * free slots per tick. See {@link planMostUrgent}.
 */
import { planAssignments, type Plan } from '@warren/scheduler';

/** Planner input without its tasks. */
export type PlanContext = Omit<Parameters<typeof planAssignments>[0], 'tasks'>;
export type PlannerTask = Parameters<typeof planAssignments>[0]['tasks'][number];

/** The least number of tasks {@link planMostUrgent} plans, and its multiple of the free capacity. */
const URGENT_MIN = 64;
const URGENT_PER_SLOT = 4;
/** The tasks beyond the free capacity its first, smaller plan covers (see {@link planMostUrgent}). */
const FIRST_MARGIN = 8;

/**
 * Plans only the most urgent of `ready` when the free capacity (open agent slots and instances
 * templates may still start) is far below the number of ready tasks. The planner takes tasks one
 * by one in its order (priority, then age, then id) and decides each from the capacity the tasks
 * before it left, so on the most urgent K tasks it decides exactly what the full plan decides on
 * them. If that plan leaves no capacity at all (every open slot filled or the column at its WIP
 * limit, and every template at its instance limit), every later task would be unplaced: the
 * assignments and spawns are the full plan's. Otherwise, or when the queue is short anyway,
 * returns undefined and the caller plans everything. The most urgent K are picked with a bounded
 * heap: O(n log K) instead of sorting n.
 *
 * The first plan covers only the free capacity and {@link FIRST_MARGIN} tasks more (the common
 * case: the most urgent tasks fill the free slots), the next, when that one leaves capacity,
 * {@link URGENT_MIN} and {@link URGENT_PER_SLOT} per free slot: the same argument holds for any K,
 * and the planner's cost grows with the tasks it leaves unplaced. With no free capacity at all it
 * plans no task.
 */
export function planMostUrgent<T>(ready: readonly T[], toTask: (item: T) => PlannerTask, context: PlanContext): Plan | undefined {
  return planFirstUrgent(ready.length, (k) => mostUrgent(ready.map(toTask), k), context);
}

/**
 * {@link planMostUrgent} over a ready set the caller keeps in order itself: `readyCount` tasks, of
 * which `firstUrgent(k)` returns the first `min(k, readyCount)` in {@link plannerOrder} (called
 * at most once, and only when `k < readyCount`).
 */
export function planFirstUrgent(readyCount: number, firstUrgent: (k: number) => readonly PlannerTask[], context: PlanContext): Plan | undefined {
  let freeSlots = 0;
  for (const slot of context.agents) if (slot.accepting) freeSlots += Math.max(0, slot.wipLimit - slot.load);
  const columnWip = context.columnWip;
  if (columnWip?.limit !== null && columnWip?.limit !== undefined) freeSlots = Math.min(freeSlots, Math.max(0, columnWip.limit - columnWip.current));
  let spawnable = 0;
  let spawnCapacity = 0;
  for (const t of context.templates) {
    if (t.wipLimitPerInstance < 1) continue;
    const room = Math.max(0, t.maxInstances - t.instances);
    spawnable += room;
    spawnCapacity += room * t.wipLimitPerInstance;
  }
  const k = URGENT_MIN + URGENT_PER_SLOT * (freeSlots + spawnCapacity);
  if (k >= readyCount) return undefined;
  // No capacity at all: the plan of no task is the full plan's (the tick of a busy fleet).
  if (freeSlots === 0 && spawnable === 0) return planAssignments({ ...context, tasks: [] });
  const urgent = firstUrgent(k);
  const answers = (plan: Plan) => plan.assignments.length >= freeSlots && spawnable - plan.spawns.length <= 0;
  const first = freeSlots + spawnCapacity + FIRST_MARGIN;
  if (first < k) {
    const plan = planAssignments({ ...context, tasks: urgent.slice(0, first) });
    if (answers(plan)) return plan;
  }
  const plan = planAssignments({ ...context, tasks: urgent.length > k ? urgent.slice(0, k) : urgent });
  return answers(plan) ? plan : undefined;
}

/** The planner's order: highest priority first, then oldest, then id by UTF-16 code units. */
export function plannerOrder(a: PlannerTask, b: PlannerTask): number {
  return b.priorityRank - a.priorityRank || a.createdMs - b.createdMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The first `k` of `tasks` in {@link plannerOrder}, in that order (a bounded max-heap of the best k). */
export function mostUrgent(tasks: readonly PlannerTask[], k: number): PlannerTask[] {
  // heap[0] is the least urgent of the k kept so far.
  const heap: PlannerTask[] = [];
  const worse = (i: number, j: number) => plannerOrder(heap[i]!, heap[j]!) > 0;
  const swap = (i: number, j: number) => {
    const t = heap[i]!;
    heap[i] = heap[j]!;
    heap[j] = t;
  };
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let top = i;
      if (l < heap.length && worse(l, top)) top = l;
      if (r < heap.length && worse(r, top)) top = r;
      if (top === i) return;
      swap(i, top);
      i = top;
    }
  };
  for (const task of tasks) {
    if (heap.length < k) {
      heap.push(task);
      for (let i = heap.length - 1; i > 0 && worse(i, (i - 1) >> 1); i = (i - 1) >> 1) swap(i, (i - 1) >> 1);
    } else if (plannerOrder(task, heap[0]!) < 0) {
      heap[0] = task;
      down(0);
    }
  }
  return heap.sort(plannerOrder);
}

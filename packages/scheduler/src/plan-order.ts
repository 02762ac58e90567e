/**
 * The order in which `planAssignments` takes the ready tasks: highest `priorityRank` first, then
 * oldest `createdMs`, then `id` in code-unit order (a radix sort on one integer key where it fits).
 */
import { compareCodeUnits } from './capabilities.js';
import type { ReadyTask } from './plan-types.js';

/**
 * Task indices in plan order: highest `priorityRank` first, then oldest `createdMs`, then `id` in
 * code-unit order.
 *
 * When both numbers are safe integers and `(rank span) × (age span)` stays within 2^53, each task
 * gets the integer key `(highest rank - rank) × (age span) + (createdMs - oldest)` and
 * `radixOrder` sorts the tasks by it in O(T) per pass for T tasks; runs of equal keys, still in
 * input order, are then ordered by id. Otherwise a comparison sort does it.
 */
export function planOrder(tasks: readonly ReadyTask[]): Uint32Array {
  const n = tasks.length;
  let rankMin = Infinity;
  let rankMax = -Infinity;
  let createdMin = Infinity;
  let createdMax = -Infinity;
  for (let i = 0; i < n; i++) {
    const { priorityRank: rank, createdMs: created } = tasks[i] as ReadyTask;
    if (!Number.isSafeInteger(rank) || !Number.isSafeInteger(created)) return comparisonOrder(tasks);
    if (rank < rankMin) rankMin = rank;
    if (rank > rankMax) rankMax = rank;
    if (created < createdMin) createdMin = created;
    if (created > createdMax) createdMax = created;
  }
  const ageSpan = createdMax - createdMin + 1;
  if (n === 0 || (rankMax - rankMin + 1) * ageSpan > Number.MAX_SAFE_INTEGER) return comparisonOrder(tasks);

  const low = new Uint32Array(n);
  const high = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const task = tasks[i] as ReadyTask;
    const key = (rankMax - task.priorityRank) * ageSpan + (task.createdMs - createdMin);
    const upper = Math.floor(key / 2 ** 32);
    low[i] = key - upper * 2 ** 32;
    high[i] = upper;
  }
  const order = radixOrder(low, high);
  let tieStart = 0;
  for (let k = 1; k < n; k++) {
    const i = order[k] as number;
    const previous = order[k - 1] as number;
    if (low[i] !== low[previous] || high[i] !== high[previous]) {
      if (k - tieStart > 1) sortById(order.subarray(tieStart, k), tasks);
      tieStart = k;
    }
  }
  if (n - tieStart > 1) sortById(order.subarray(tieStart, n), tasks);
  return order;
}

const DIGIT_BITS = 11;

/**
 * The indices `0 … n-1` ordered by the 64-bit keys `high[i] · 2^32 + low[i]`, equal keys in index
 * order: an LSD radix sort, one stable counting pass per `DIGIT_BITS`-bit digit of `low`, then of
 * `high`, least significant first, stopping in each half after the highest digit any key has set
 * (at most three passes for keys below 2^32).
 */
function radixOrder(low: Uint32Array, high: Uint32Array): Uint32Array {
  const n = low.length;
  let order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let spare = new Uint32Array(n);
  const counts = new Uint32Array(1 << DIGIT_BITS);
  for (const words of [low, high]) {
    let bits = 0;
    for (let i = 0; i < n; i++) bits |= words[i] as number;
    for (let shift = 0; shift < 32 && bits >>> shift !== 0; shift += DIGIT_BITS) {
      countingPass(order, spare, words, shift, counts);
      const sorted = spare;
      spare = order;
      order = sorted;
    }
  }
  return order;
}

/**
 * One stable counting-sort pass: the indices in `from` go to `to` ordered by the `DIGIT_BITS`-bit
 * digit of `words[index]` at bit `shift`, keeping their order among equal digits. `counts` is
 * scratch space of `2 ** DIGIT_BITS` entries.
 */
function countingPass(from: Uint32Array, to: Uint32Array, words: Uint32Array, shift: number, counts: Uint32Array): void {
  const digitMask = (1 << DIGIT_BITS) - 1;
  counts.fill(0);
  for (let i = 0; i < words.length; i++) counts[((words[i] as number) >>> shift) & digitMask]!++;
  let start = 0;
  for (let d = 0; d < counts.length; d++) {
    const count = counts[d] as number;
    counts[d] = start;
    start += count;
  }
  for (let k = 0; k < from.length; k++) {
    const i = from[k] as number;
    to[counts[((words[i] as number) >>> shift) & digitMask]!++] = i;
  }
}

function sortById(indices: Uint32Array, tasks: readonly ReadyTask[]): void {
  indices.sort((i, j) => compareCodeUnits((tasks[i] as ReadyTask).id, (tasks[j] as ReadyTask).id));
}

/** `planOrder` by comparisons, for numbers a single integer key cannot hold. */
function comparisonOrder(tasks: readonly ReadyTask[]): Uint32Array {
  return Uint32Array.from(tasks, (_, i) => i).sort((i, j) => {
    const a = tasks[i] as ReadyTask;
    const b = tasks[j] as ReadyTask;
    return b.priorityRank - a.priorityRank || a.createdMs - b.createdMs || compareCodeUnits(a.id, b.id);
  });
}

import type { BoardConfig, DependencyProblem, Task } from './types.js';

/**
 * Finds dependency problems on a board: for each task that names ids not on the board, one
 * `unknown` problem (in task order); then, for each strongly connected group of tasks that depend
 * on each other (Tarjan's algorithm), one `cycle` problem whose chain runs through the group's
 * alphabetically first task and returns to it (a task that depends on itself gives `[a, a]`).
 * Cycles are sorted by their first id.
 */
export function checkDependencies(tasks: readonly Pick<Task, 'id' | 'dependsOn'>[]): DependencyProblem[] {
  const ids = new Set(tasks.map((t) => t.id));
  const problems: DependencyProblem[] = [];
  for (const task of tasks) {
    const missing = [...new Set(task.dependsOn.filter((d) => !ids.has(d)))];
    if (missing.length > 0) {
      problems.push({ kind: 'unknown', taskId: task.id, missing, message: `task '${task.id}' depends on unknown task(s) ${missing.join(', ')}` });
    }
  }

  const edges = new Map<string, string[]>();
  for (const task of tasks) {
    const list = edges.get(task.id) ?? [];
    for (const dep of task.dependsOn) if (ids.has(dep) && !list.includes(dep)) list.push(dep);
    edges.set(task.id, list);
  }
  const cycles: string[][] = [];
  for (const group of stronglyConnected(edges)) {
    const first = [...group].sort(compare)[0]!;
    if (group.size === 1 && !(edges.get(first) ?? []).includes(first)) continue;
    cycles.push(cycleThrough(first, group, edges));
  }
  cycles.sort((a, b) => compare(a[0]!, b[0]!));
  for (const chain of cycles) problems.push({ kind: 'cycle', chain, message: `dependency cycle: ${chain.join(' -> ')}` });
  return problems;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Tarjan's strongly connected components, iterative (no recursion limit on long chains). */
function stronglyConnected(edges: ReadonlyMap<string, readonly string[]>): Set<string>[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const groups: Set<string>[] = [];
  let next = 0;
  for (const root of edges.keys()) {
    if (index.has(root)) continue;
    const work: { node: string; child: number }[] = [{ node: root, child: 0 }];
    index.set(root, next);
    low.set(root, next);
    next += 1;
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const children = edges.get(frame.node) ?? [];
      if (frame.child < children.length) {
        const child = children[frame.child]!;
        frame.child += 1;
        if (!index.has(child)) {
          index.set(child, next);
          low.set(child, next);
          next += 1;
          stack.push(child);
          onStack.add(child);
          work.push({ node: child, child: 0 });
        } else if (onStack.has(child)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(child)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const group = new Set<string>();
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          group.add(member);
        } while (member !== frame.node);
        groups.push(group);
      }
    }
  }
  return groups;
}

/** A shortest cycle from `start` back to itself inside `group` (breadth-first, children in listed order). */
function cycleThrough(start: string, group: ReadonlySet<string>, edges: ReadonlyMap<string, readonly string[]>): string[] {
  const previous = new Map<string, string>();
  const queue: string[] = [start];
  for (let i = 0; i < queue.length; i += 1) {
    const node = queue[i]!;
    for (const child of edges.get(node) ?? []) {
      if (!group.has(child)) continue;
      if (child === start) {
        const chain = [start];
        for (let at: string | undefined = node; at !== undefined && at !== start; at = previous.get(at)) chain.splice(1, 0, at);
        chain.push(start);
        return chain;
      }
      if (!previous.has(child)) {
        previous.set(child, node);
        queue.push(child);
      }
    }
  }
  return [start, start];
}

/**
 * Whether the supervisor may take `task`: its status is the board's ready column and every task it
 * depends on is on the board and in the done column.
 *
 * @param byId every task on the board by id.
 */
export function isReady(task: Pick<Task, 'status' | 'dependsOn'>, byId: ReadonlyMap<string, Pick<Task, 'status'>>, config: BoardConfig): boolean {
  if (task.status !== config.roles.ready) return false;
  return task.dependsOn.every((id) => byId.get(id)?.status === config.roles.done);
}

/** A ready task that can never run as the board stands: why, in words. */
export interface BlockedTask {
  readonly taskId: string;
  /**
   * `depends on itself`, `dependency cycle: a -> b -> a`, `depends on unknown task(s) x, y`, or
   * `depends on blocked task a` (a dependency that is itself blocked).
   */
  readonly reason: string;
}

/**
 * The tasks in the ready column that wait on something that can never happen: a dependency on
 * itself, a cycle of tasks that are not done, an id that is on no card, or a dependency (not done)
 * that is blocked for one of these reasons. A task whose dependency is merely not done yet is not
 * blocked. Dependencies already done are ignored, so a cycle one of whose tasks is done is no block.
 * @returns in board order.
 */
export function blockedTasks(tasks: readonly Pick<Task, 'id' | 'status' | 'dependsOn'>[], config: BoardConfig): BlockedTask[] {
  const done = config.roles.done;
  if (!tasks.some((t) => t.dependsOn.length > 0 && t.status === config.roles.ready)) return [];
  const doneIds = new Set(tasks.filter((t) => t.status === done).map((t) => t.id));
  const open = tasks.filter((t) => t.status !== done).map((t) => ({ id: t.id, dependsOn: t.dependsOn.filter((d) => !doneIds.has(d)) }));
  const reasons = new Map<string, string>();
  for (const problem of checkDependencies(open)) {
    if (problem.kind === 'unknown') {
      if (!reasons.has(problem.taskId)) reasons.set(problem.taskId, `depends on unknown task(s) ${problem.missing.join(', ')}`);
      continue;
    }
    const reason = problem.chain.length === 2 ? 'depends on itself' : `dependency cycle: ${problem.chain.join(' -> ')}`;
    for (const id of problem.chain) if (!reasons.has(id)) reasons.set(id, reason);
  }
  // Whatever depends on a blocked task is blocked too (to a fixed point: chains and the rest of a cycle's group).
  for (let changed = reasons.size > 0; changed; ) {
    changed = false;
    for (const task of open) {
      if (reasons.has(task.id)) continue;
      const blocker = task.dependsOn.find((d) => reasons.has(d));
      if (blocker !== undefined) {
        reasons.set(task.id, `depends on blocked task ${blocker}`);
        changed = true;
      }
    }
  }
  const ready = config.roles.ready;
  return tasks.filter((t) => t.status === ready && reasons.has(t.id)).map((t) => ({ taskId: t.id, reason: reasons.get(t.id)! }));
}

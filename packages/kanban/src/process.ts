/**
 * The process rules a board describes: the transition FSM between columns, WIP limits per column
 * and per assignee, and parents that are done when their subtasks are.
 */
import type { BoardConfig, BoardSnapshot, Task, TransitionRule } from './types.js';

/** A move the transition FSM does not allow. */
export interface TransitionRefusal {
  readonly kind: 'transition';
  /** Column ids. */
  readonly from: string;
  readonly to: string;
  /** The columns a task may move to from `from` (sorted). */
  readonly allowed: string[];
  /** The rules that start at `from` (none of them reaches `to`). */
  readonly rules: TransitionRule[];
  /** `no transition rule allows in_progress -> done (allowed from in_progress: breakdown, review, todo)`. */
  readonly message: string;
}

/** A move into a column at or over its WIP limit. */
export interface WipRefusal {
  readonly kind: 'wip';
  readonly column: string;
  readonly limit: number;
  /** Tasks in the column now (the moving task not counted). */
  readonly count: number;
  readonly message: string;
}

/** A move that would give an assignee more in-progress tasks than `wipPerAgent`. */
export interface AgentWipRefusal {
  readonly kind: 'agent-wip';
  readonly assignee: string;
  readonly limit: number;
  readonly count: number;
  readonly message: string;
}

/** Why a move is refused. */
export type MoveRefusal = TransitionRefusal | WipRefusal | AgentWipRefusal;

/**
 * Whether the board's transition FSM allows moving a task from column `from` to column `to`
 * (column ids). Allowed when the board has no FSM or it is disabled, when `from === to`, or when
 * some rule lists `from` in its `from` and `to` in its `to`.
 *
 * @returns null when allowed, else the refusal naming the rules that apply to `from`.
 */
export function checkTransition(config: BoardConfig, from: string, to: string): TransitionRefusal | null {
  const fsm = config.transitions;
  if (!fsm || !fsm.enabled || from === to) return null;
  const rules = fsm.rules.filter((rule) => rule.from.includes(from));
  if (rules.some((rule) => rule.to.includes(to))) return null;
  const allowed = [...new Set(rules.flatMap((rule) => [...rule.to]))].sort();
  return {
    kind: 'transition',
    from,
    to,
    allowed,
    rules: rules.map((rule) => ({ ...rule })),
    message: `no transition rule allows ${from} -> ${to} (allowed from ${from}: ${allowed.length > 0 ? allowed.join(', ') : 'nothing'})`,
  };
}

/**
 * The shortest way from column `from` to column `to` that the board's transition FSM allows, as
 * the columns entered in order (`to` last; empty when `from === to`): `['review', 'done']` from
 * `in_progress` on a board whose rules go `in_progress -> review -> done`. Ties go to the rules'
 * order, then the order of their `to` lists. With no FSM (or a disabled one) the direct move.
 *
 * @returns the columns, or null when no sequence of allowed moves reaches `to`.
 */
export function transitionPath(config: BoardConfig, from: string, to: string): string[] | null {
  if (from === to) return [];
  const fsm = config.transitions;
  if (!fsm || !fsm.enabled) return [to];
  const cameFrom = new Map<string, string>([[from, from]]);
  let frontier = [from];
  while (frontier.length > 0 && !cameFrom.has(to)) {
    const next: string[] = [];
    for (const column of frontier) {
      for (const rule of fsm.rules) {
        if (!rule.from.includes(column)) continue;
        for (const target of rule.to) {
          if (cameFrom.has(target)) continue;
          cameFrom.set(target, column);
          next.push(target);
        }
      }
    }
    frontier = next;
  }
  if (!cameFrom.has(to)) return null;
  const path: string[] = [];
  for (let at = to; at !== from; at = cameFrom.get(at)!) path.unshift(at);
  return path;
}

/** The WIP of one limited column or one assignee. */
export interface WipEntry {
  /** `column` for a column's limit; `agent` for `wipPerAgent` in the in-progress column. */
  readonly kind: 'column' | 'agent';
  /** The column id (kind `column`) or the assignee (kind `agent`). */
  readonly name: string;
  readonly limit: number;
  readonly count: number;
  /** `count > limit`: the board is already over the limit; nothing more may enter. */
  readonly over: boolean;
  /** `count >= limit`: nothing more may enter. */
  readonly full: boolean;
  /** `column in_progress holds 5 tasks, over its WIP limit of 4`. */
  readonly message: string;
}

/**
 * The WIP of every column that has a limit, then of every assignee of in-progress tasks when the
 * board has `wipPerAgent`, in board order and then by assignee.
 */
export function wipStatus(snapshot: Pick<BoardSnapshot, 'config' | 'tasks'>): WipEntry[] {
  const { config, tasks } = snapshot;
  const out: WipEntry[] = [];
  for (const column of config.columns) {
    if (column.wip === undefined) continue;
    const count = tasks.filter((t) => t.status === column.id).length;
    out.push(entry('column', column.id, column.wip, count));
  }
  if (config.wipPerAgent !== undefined) {
    const counts = new Map<string, number>();
    for (const task of tasks) {
      if (task.status === config.roles.in_progress && task.assignee) counts.set(task.assignee, (counts.get(task.assignee) ?? 0) + 1);
    }
    for (const [assignee, count] of [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      out.push(entry('agent', assignee, config.wipPerAgent, count));
    }
  }
  return out;
}

function entry(kind: 'column' | 'agent', name: string, limit: number, count: number): WipEntry {
  const what = kind === 'column' ? `column ${name}` : `assignee ${name}`;
  const state = count > limit ? `over its WIP limit of ${limit}` : count === limit ? `at its WIP limit of ${limit}` : `under its WIP limit of ${limit}`;
  return { kind, name, limit, count, over: count > limit, full: count >= limit, message: `${what} holds ${count} task(s), ${state}` };
}

/** Options of {@link checkMove}. */
export interface CheckMoveOptions {
  /** Who will hold the task after the move (for `wipPerAgent`); default the task's assignee. */
  readonly assignee?: string | null | undefined;
}

/**
 * Whether `task` may move to column `to` under the board's rules, checked in this order: the
 * transition FSM ({@link checkTransition}); the WIP limit of `to` (the task itself not counted; a
 * column already at or over its limit takes nothing more) — except for the done and failed
 * columns, since finishing work is never refused; the per-assignee limit when `to` is the
 * in-progress column.
 *
 * @returns null when the move is allowed, else the first rule it breaks.
 */
export function checkMove(snapshot: Pick<BoardSnapshot, 'config' | 'tasks'>, task: Pick<Task, 'id' | 'status' | 'assignee'>, to: string, options: CheckMoveOptions = {}): MoveRefusal | null {
  const { config, tasks } = snapshot;
  const transition = checkTransition(config, task.status, to);
  if (transition) return transition;
  if (task.status === to) return null;
  const column = config.columns.find((c) => c.id === to);
  const finishing = to === config.roles.done || to === config.roles.failed;
  if (column?.wip !== undefined && !finishing) {
    const count = tasks.filter((t) => t.status === to && t.id !== task.id).length;
    if (count >= column.wip) {
      return {
        kind: 'wip',
        column: to,
        limit: column.wip,
        count,
        message: `column ${to} holds ${count} task(s), ${count > column.wip ? 'over' : 'at'} its WIP limit of ${column.wip}`,
      };
    }
  }
  const assignee = options.assignee === undefined ? task.assignee : options.assignee;
  if (config.wipPerAgent !== undefined && to === config.roles.in_progress && assignee) {
    const count = tasks.filter((t) => t.status === to && t.assignee === assignee && t.id !== task.id).length;
    if (count >= config.wipPerAgent) {
      return {
        kind: 'agent-wip',
        assignee,
        limit: config.wipPerAgent,
        count,
        message: `assignee ${assignee} holds ${count} in-progress task(s), the per-agent WIP limit is ${config.wipPerAgent}`,
      };
    }
  }
  return null;
}

/** A move between two readings of the board that the transition FSM does not allow. */
export interface IllegalMove extends TransitionRefusal {
  readonly taskId: string;
}

/**
 * The status changes between two snapshots of one board (people's edits) that the transition FSM
 * forbids, in task order. Warren cannot undo an edit; it reports it (and `updateTask` refuses such
 * moves itself).
 */
export function illegalMoves(previous: Pick<BoardSnapshot, 'tasks'>, next: Pick<BoardSnapshot, 'config' | 'tasks'>): IllegalMove[] {
  const before = new Map(previous.tasks.map((t) => [t.id, t.status]));
  const out: IllegalMove[] = [];
  for (const task of next.tasks) {
    const from = before.get(task.id);
    if (from === undefined || from === task.status) continue;
    const refusal = checkTransition(next.config, from, task.status);
    if (refusal) out.push({ ...refusal, taskId: task.id, message: `task '${task.id}': ${refusal.message}` });
  }
  return out;
}

/** A parent whose subtasks are all done while it is not. */
export interface ParentCompletion {
  readonly parentId: string;
  /** Its subtasks' ids, in task order. */
  readonly subtaskIds: string[];
}

/**
 * Parents that are done by the board's rule (`parentDoneWhenSubtasksDone`, default true): every
 * task whose `parentTaskId` names it is in the done column, and it is not. The caller moves them
 * (`updateTask` with the done column). Empty when the rule is off.
 */
export function parentsToComplete(snapshot: Pick<BoardSnapshot, 'config' | 'tasks'>): ParentCompletion[] {
  const { config, tasks } = snapshot;
  if (config.parentDoneWhenSubtasksDone === false) return [];
  const children = new Map<string, Task[]>();
  for (const task of tasks) {
    if (task.parentTaskId === undefined) continue;
    const list = children.get(task.parentTaskId) ?? [];
    list.push(task);
    children.set(task.parentTaskId, list);
  }
  const out: ParentCompletion[] = [];
  for (const parent of tasks) {
    const completion = parentCompletion(config, parent, children.get(parent.id));
    if (completion) out.push(completion);
  }
  return out;
}

/**
 * The ids of the tasks that name each parent in `parentTaskId`, in task order, by the parent's
 * id: what {@link parentCompletion} needs to check one parent without scanning the board.
 */
export function subtasksByParent(tasks: readonly Pick<Task, 'id' | 'parentTaskId'>[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const task of tasks) {
    if (task.parentTaskId === undefined) continue;
    const list = out.get(task.parentTaskId);
    if (list) list.push(task.id);
    else out.set(task.parentTaskId, [task.id]);
  }
  return out;
}

/**
 * {@link parentsToComplete} for one parent: its completion when the board's rule is on, it has
 * subtasks (`subtasks`, in task order), every one of them is in the done column and it is not;
 * else undefined.
 */
export function parentCompletion(config: Pick<BoardConfig, 'parentDoneWhenSubtasksDone' | 'roles'>, parent: Pick<Task, 'id' | 'status'>, subtasks: readonly Pick<Task, 'id' | 'status'>[] | undefined): ParentCompletion | undefined {
  if (config.parentDoneWhenSubtasksDone === false || !subtasks || subtasks.length === 0 || parent.status === config.roles.done) return undefined;
  if (!subtasks.every((t) => t.status === config.roles.done)) return undefined;
  return { parentId: parent.id, subtaskIds: subtasks.map((t) => t.id) };
}

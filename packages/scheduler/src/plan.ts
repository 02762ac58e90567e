import { CapabilityIndex, compareCodeUnits, coversMask, maskKey } from './capabilities.js';
import { PlanInputError } from './errors.js';
import { MinHeap } from './heap.js';

/** A task that is ready (its dependencies are done) and not yet assigned. */
export interface ReadyTask {
  /** Unique task id. */
  id: string;
  /** Higher is more urgent. Any finite number. */
  priorityRank: number;
  /** Creation time, ms since the epoch; older tasks go first among equal priorities. */
  createdMs: number;
  /** Capabilities the task needs; an agent must provide all of them. */
  capabilities: readonly string[];
}

/** A live agent as the planner sees it. */
export interface AgentSlot {
  /** Unique agent name (the durable key). */
  name: string;
  /** The template the agent was started from. */
  template: string;
  /** Capabilities the agent provides. */
  capabilities: readonly string[];
  /** Tasks the agent holds now (non-negative integer). */
  load: number;
  /** Most tasks the agent may hold at once (non-negative integer). */
  wipLimit: number;
  /** Whether the agent takes new tasks; false while it is pending, stopping, sleeping or failed. */
  accepting: boolean;
}

/** An agent template that new instances can be started from. */
export interface TemplateSlot {
  /** Unique template name. */
  name: string;
  /** Capabilities each instance provides. */
  capabilities: readonly string[];
  /** Instances that exist now, including those still starting (non-negative integer). */
  instances: number;
  /** Most instances that may exist at once (non-negative integer). */
  maxInstances: number;
  /** Tasks one instance may hold at once (non-negative integer); 0 means it takes none. */
  wipLimitPerInstance: number;
}

/** Everything `planAssignments` decides over. */
export interface PlanInput {
  /** Tasks that are ready and not assigned; order does not matter (the planner sorts them). */
  tasks: readonly ReadyTask[];
  /** Live agents. */
  agents: readonly AgentSlot[];
  /** Templates that may be spawned. */
  templates: readonly TemplateSlot[];
  /**
   * WIP of the in-progress column: `limit` (null = unlimited) and `current` (tasks in it now).
   * `name` is the column's name used in reasons; default `in_progress`. Omitted = unlimited.
   */
  columnWip?: { limit: number | null; current: number; name?: string };
  /**
   * Policy: whether `agentName` (an instance of `template`) may be assigned `taskId`. For a planned
   * spawn, whose instance has no name yet, it is called with `agentName` `''`. Omitted = allow all.
   * Called at most once per (task, candidate) within one plan; it should be pure.
   */
  isAllowed?: (agentName: string, template: string, taskId: string) => boolean;
  /** The planning time, ms since the epoch; echoed as `Plan.plannedAtMs`. */
  nowMs: number;
}

/** One task given to one live agent. */
export interface PlannedAssignment {
  taskId: string;
  agent: string;
}

/**
 * A new instance of `template` to start; `taskIds` are the tasks it is meant to take once it is up.
 * Those tasks stay ready (unassigned) until then; the next plan assigns them to whatever is live.
 */
export interface PlannedSpawn {
  template: string;
  taskIds: string[];
}

/** A task the plan could not place, with a human-readable `reason`. */
export interface UnplacedTask {
  taskId: string;
  reason: string;
}

/** The outcome of `planAssignments`. Every input task appears exactly once across the three lists. */
export interface Plan {
  /** Assignments to live agents, in task order (most urgent first). */
  assignments: PlannedAssignment[];
  /** Instances to start, in the order they were first needed. */
  spawns: PlannedSpawn[];
  /**
   * Tasks left where they are, in task order. Reasons read like
   * `no agent or template provides capabilities [gpu]`, `template shell is at max instances (2)`,
   * `policy denies assign to every capable agent`, `column in_progress is at its WIP limit (4)`.
   */
  unplaced: UnplacedTask[];
  /** `PlanInput.nowMs`, so a stored plan says when it was made. */
  plannedAtMs: number;
}

interface AgentState {
  readonly name: string;
  readonly template: string;
  load: number;
  readonly wipLimit: number;
  /** Position of the name in code-unit order: the tie-break among equal loads. */
  readonly rank: number;
  readonly group: Group;
}

/** Agents with one identical capability set. `heap` holds those accepting with room. */
interface Group {
  readonly mask: Uint32Array;
  readonly heap: MinHeap<AgentState>;
  size: number;
  notAccepting: number;
}

interface TemplateState {
  readonly name: string;
  readonly mask: Uint32Array;
  readonly capabilityCount: number;
  readonly instances: number;
  readonly maxInstances: number;
  readonly perInstance: number;
  readonly spawns: PlannedSpawn[];
}

/** Tasks with one identical capability set share covering lists. */
interface TaskClass {
  readonly capabilities: string[];
  readonly unknown: string[];
  readonly mask: Uint32Array;
  /** Covering groups that may still have room (pruned as they fill up). */
  groups: Group[];
  readonly templates: TemplateState[];
  readonly agentCount: number;
  readonly notAccepting: number;
  /**
   * Set once a task of this class failed with no agent having room, no denial and no template able
   * to spawn: loads, instances and planned spawns only grow within a plan, so every later task of
   * the class fails the same way and reuses this reason.
   */
  saturated?: string;
  /** The last failure reason and the state it was built from, reused while that state repeats. */
  lastReason?: { key: string; reason: string };
}

const lessAgent = (a: AgentState, b: AgentState): boolean =>
  a.load < b.load || (a.load === b.load && a.rank < b.rank);

/**
 * Plans which ready tasks go to which live agents, and which new instances to start.
 *
 * Algorithm (deterministic; no I/O, no clock):
 * 1. Capabilities of agents and templates are interned into bit indices (`CapabilityIndex`); every
 *    agent, template and distinct task capability set becomes a `Uint32Array` mask, and "covers" is
 *    `(task & ~agent) === 0` per word. A task capability that no agent or template has can never be
 *    covered; such tasks are unplaced at once.
 * 2. Agents with identical masks form a group. Each group keeps a min-heap of its accepting agents
 *    with `load < wipLimit`, ordered by (load, name). Tasks with identical capability sets form a
 *    class that computes its covering groups and templates once.
 * 3. Tasks are taken by priorityRank (highest first), then createdMs (oldest first), then id
 *    (code-unit order). For each task the candidate is the least (load, name) among the tops of its
 *    covering groups. If policy denies it, it is set aside for this task and the groups go into a
 *    heap keyed by their tops, so each further denial costs O(log groups); the first allowed
 *    candidate gets the task, its load goes up and it leaves its heap at its WIP limit. Groups whose
 *    heaps empty are pruned from the class; once a class has no room, no denial and no template to
 *    spawn, its later tasks reuse the same reason in O(1). One assignment costs
 *    O(covering groups + log group size).
 * 4. Assignments also count against the column WIP (`limit - current`). Once that is used up, a task
 *    that has an allowed candidate is unplaced with the column reason instead.
 * 5. A task with no allowed candidate rides a planned spawn of a covering, policy-allowed template
 *    that still has room (`wipLimitPerInstance` tasks per planned instance); failing that it starts a
 *    new planned spawn on the covering, allowed template with `instances + planned < maxInstances`
 *    and the fewest capabilities (then name). Spawned tasks do not count against the column WIP.
 * 6. Otherwise the task is unplaced, with a reason naming every obstacle: WIP-full, non-accepting
 *    and policy-denied capable agents, templates at max instances or denied by policy.
 *
 * The plan never exceeds an agent's `wipLimit`, the column limit, or a template's `maxInstances`,
 * assigns only to accepting covering agents, and lists every task once.
 *
 * @throws {PlanInputError} `WARREN_PLAN_INPUT` when an id or name repeats, or a number is negative,
 *   fractional where a count is expected, or not finite.
 */
export function planAssignments(input: PlanInput): Plan {
  validate(input);
  const isAllowed = input.isAllowed ?? (() => true);
  const index = new CapabilityIndex();
  for (const agent of input.agents) for (const c of agent.capabilities) index.intern(c);
  for (const template of input.templates) for (const c of template.capabilities) index.intern(c);

  // Agents, grouped by identical capability set.
  const byName = input.agents.map((a) => a.name).sort(compareCodeUnits);
  const rankOf = new Map(byName.map((name, i) => [name, i]));
  const groupsByKey = new Map<string, Group>();
  for (const slot of input.agents) {
    const mask = index.encode(slot.capabilities);
    const key = maskKey(mask);
    let group = groupsByKey.get(key);
    if (!group) {
      group = { mask, heap: new MinHeap(lessAgent), size: 0, notAccepting: 0 };
      groupsByKey.set(key, group);
    }
    group.size++;
    if (!slot.accepting) {
      group.notAccepting++;
      continue;
    }
    const state: AgentState = {
      name: slot.name,
      template: slot.template,
      load: slot.load,
      wipLimit: slot.wipLimit,
      rank: rankOf.get(slot.name) ?? 0,
      group,
    };
    if (state.load < state.wipLimit) group.heap.push(state);
  }
  const groups = [...groupsByKey.values()];

  const templates: TemplateState[] = input.templates
    .map((t) => ({
      name: t.name,
      mask: index.encode(t.capabilities),
      capabilityCount: new Set(t.capabilities).size,
      instances: t.instances,
      maxInstances: t.maxInstances,
      perInstance: t.wipLimitPerInstance,
      spawns: [],
    }))
    .sort((a, b) => a.capabilityCount - b.capabilityCount || compareCodeUnits(a.name, b.name));

  const classes = new Map<string, TaskClass>();
  const classesByRawKey = new Map<string, TaskClass>();
  const classOf = (capabilities: readonly string[]): TaskClass => {
    const rawKey = capabilities.join('\n');
    let cls = classesByRawKey.get(rawKey);
    if (cls) return cls;
    const sorted = [...new Set(capabilities)].sort(compareCodeUnits);
    const key = sorted.join('\n');
    cls = classes.get(key);
    if (cls) {
      classesByRawKey.set(rawKey, cls);
      return cls;
    }
    const { mask, unknown } = index.encodeKnown(sorted);
    const covering = unknown.length > 0 ? [] : groups.filter((g) => coversMask(mask, g.mask));
    cls = {
      capabilities: sorted,
      unknown,
      mask,
      groups: covering,
      templates: unknown.length > 0 ? [] : templates.filter((t) => coversMask(mask, t.mask)),
      agentCount: covering.reduce((n, g) => n + g.size, 0),
      notAccepting: covering.reduce((n, g) => n + g.notAccepting, 0),
    };
    classes.set(key, cls);
    classesByRawKey.set(rawKey, cls);
    return cls;
  };

  const order = input.tasks.map((_, i) => i);
  const tasks = input.tasks;
  order.sort((i, j) => {
    const a = tasks[i] as ReadyTask;
    const b = tasks[j] as ReadyTask;
    return b.priorityRank - a.priorityRank || a.createdMs - b.createdMs || compareCodeUnits(a.id, b.id);
  });

  const columnName = input.columnWip?.name ?? 'in_progress';
  const columnLimit = input.columnWip?.limit ?? null;
  let columnRoom = columnLimit === null ? Infinity : Math.max(0, columnLimit - (input.columnWip?.current ?? 0));

  const plan: Plan = { assignments: [], spawns: [], unplaced: [], plannedAtMs: input.nowMs };
  const denied: AgentState[] = [];
  const groupHeap = new MinHeap<Group>((a, b) => lessAgent(a.heap.peek() as AgentState, b.heap.peek() as AgentState));
  const templateAllowed: boolean[] = [];

  for (const i of order) {
    const task = tasks[i] as ReadyTask;
    const cls = classOf(task.capabilities);
    if (cls.unknown.length > 0) {
      plan.unplaced.push({ taskId: task.id, reason: `no agent or template provides capabilities ${list(cls.unknown)}` });
      continue;
    }
    if (cls.agentCount === 0 && cls.templates.length === 0) {
      plan.unplaced.push({ taskId: task.id, reason: nothingCovers(cls, input) });
      continue;
    }
    if (cls.saturated !== undefined) {
      plan.unplaced.push({ taskId: task.id, reason: cls.saturated });
      continue;
    }

    // 1. The least loaded allowed live agent. The first pass scans the tops of the covering groups
    // and drops the groups that are full for good. Only when policy denies that best candidate do
    // the groups go into a heap keyed by their tops, so each further denial costs O(log groups).
    let chosen: AgentState | undefined;
    let best: AgentState | undefined;
    const groups = cls.groups;
    let kept = 0;
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g] as Group;
      const top = group.heap.peek();
      if (top === undefined) continue;
      groups[kept++] = group;
      if (best === undefined || lessAgent(top, best)) best = top;
    }
    groups.length = kept;
    if (best !== undefined) {
      if (isAllowed(best.name, best.template, task.id)) {
        chosen = best;
      } else {
        best.group.heap.pop();
        denied.push(best);
        groupHeap.clear();
        for (const group of groups) if (group.heap.size > 0) groupHeap.push(group);
        for (let group = groupHeap.peek(); group !== undefined; group = groupHeap.peek()) {
          const top = group.heap.peek() as AgentState;
          if (isAllowed(top.name, top.template, task.id)) {
            chosen = top;
            break;
          }
          group.heap.pop();
          denied.push(top);
          if (group.heap.size === 0) groupHeap.pop();
          else groupHeap.siftDownTop();
        }
      }
    }
    const deniedCount = denied.length;
    let assigned = false;
    if (chosen !== undefined && columnRoom > 0) {
      chosen.load++;
      if (chosen.load >= chosen.wipLimit) chosen.group.heap.pop();
      else chosen.group.heap.siftDownTop();
      columnRoom--;
      assigned = true;
      plan.assignments.push({ taskId: task.id, agent: chosen.name });
    }
    for (const agent of denied) agent.group.heap.push(agent);
    denied.length = 0;
    if (chosen !== undefined) {
      if (!assigned) {
        plan.unplaced.push({ taskId: task.id, reason: `column ${columnName} is at its WIP limit (${columnLimit})` });
      }
      continue;
    }

    // 2. A planned spawn: ride one with room, else start one.
    templateAllowed.length = 0;
    const allowedAt = (k: number): boolean => {
      let allowed = templateAllowed[k];
      if (allowed === undefined) {
        allowed = isAllowed('', (cls.templates[k] as TemplateState).name, task.id);
        templateAllowed[k] = allowed;
      }
      return allowed;
    };
    let spawn: PlannedSpawn | undefined;
    for (let k = 0; k < cls.templates.length && spawn === undefined; k++) {
      const t = cls.templates[k] as TemplateState;
      const open = t.spawns.at(-1);
      if (open !== undefined && open.taskIds.length < t.perInstance && allowedAt(k)) spawn = open;
    }
    for (let k = 0; k < cls.templates.length && spawn === undefined; k++) {
      const t = cls.templates[k] as TemplateState;
      if (t.perInstance >= 1 && t.instances + t.spawns.length < t.maxInstances && allowedAt(k)) {
        spawn = { template: t.name, taskIds: [] };
        t.spawns.push(spawn);
        plan.spawns.push(spawn);
      }
    }
    if (spawn !== undefined) {
      spawn.taskIds.push(task.id);
      continue;
    }

    // 3. Unplaced: say why.
    let key = `${deniedCount}`;
    cls.templates.forEach((t, k) => (key += `|${t.spawns.length}${templateAllowed[k] === false ? '-' : '+'}`));
    let reason = cls.lastReason?.key === key ? cls.lastReason.reason : undefined;
    if (reason === undefined) {
      reason = obstacles(cls, deniedCount, templateAllowed);
      cls.lastReason = { key, reason };
    }
    if (deniedCount === 0 && !templateAllowed.includes(false)) cls.saturated = reason;
    plan.unplaced.push({ taskId: task.id, reason });
  }
  return plan;
}

function list(items: readonly string[]): string {
  return `[${items.join(', ')}]`;
}

function nothingCovers(cls: TaskClass, input: PlanInput): string {
  if (input.agents.length === 0 && input.templates.length === 0) return 'no agent or template is available';
  return `no agent or template provides capabilities ${list(cls.capabilities)} together`;
}

/** The reason a task with covering agents or templates could be neither assigned nor spawned for. */
function obstacles(cls: TaskClass, deniedCount: number, templateAllowed: readonly boolean[]): string {
  const parts: string[] = [];
  if (cls.agentCount === 0) {
    parts.push(`no live agent provides capabilities ${list(cls.capabilities)}`);
  } else if (deniedCount === cls.agentCount) {
    parts.push('policy denies assign to every capable agent');
  } else {
    // Every accepting covering agent with room was denied, so the rest are full.
    const full = cls.agentCount - cls.notAccepting - deniedCount;
    const counts: string[] = [];
    if (full > 0) counts.push(`${full} at its WIP limit`);
    if (cls.notAccepting > 0) counts.push(`${cls.notAccepting} not accepting`);
    if (deniedCount > 0) counts.push(`${deniedCount} denied by policy`);
    parts.push(`no capable agent can take it (${cls.agentCount} capable: ${counts.join(', ')})`);
  }
  if (cls.templates.length === 0) {
    parts.push(`no template provides capabilities ${list(cls.capabilities)}`);
  }
  cls.templates.forEach((t, k) => {
    const planned = t.spawns.length;
    if (t.perInstance < 1) {
      parts.push(`template ${t.name} takes no tasks (wipLimitPerInstance ${t.perInstance})`);
    } else if (t.instances + planned >= t.maxInstances) {
      const detail = planned > 0 ? `, ${planned} of them planned now and full` : '';
      parts.push(`template ${t.name} is at max instances (${t.maxInstances}${detail})`);
    } else if (templateAllowed[k] === false) {
      parts.push(`policy denies assign to a new instance of template ${t.name}`);
    }
  });
  return parts.join('; ');
}

function validate(input: PlanInput): void {
  const count = (field: string, value: unknown): void => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new PlanInputError(field, value, `expected a non-negative integer, got ${String(value)}`);
    }
  };
  const finite = (field: string, value: unknown): void => {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new PlanInputError(field, value, `expected a finite number, got ${String(value)}`);
    }
  };
  const unique = (field: string, value: unknown, seen: Set<string>, what: string): void => {
    if (typeof value !== 'string' || value === '') {
      throw new PlanInputError(field, value, `expected a non-empty string, got ${JSON.stringify(value)}`);
    }
    if (seen.has(value)) throw new PlanInputError(field, value, `duplicate ${what} ${JSON.stringify(value)}`);
    seen.add(value);
  };
  const strings = (field: string, value: unknown): void => {
    if (!Array.isArray(value) || value.some((c) => typeof c !== 'string')) {
      throw new PlanInputError(field, value, 'expected an array of strings');
    }
  };
  finite('nowMs', input.nowMs);
  const ids = new Set<string>();
  input.tasks.forEach((t, i) => {
    unique(`tasks[${i}].id`, t.id, ids, 'task id');
    finite(`tasks[${i}].priorityRank`, t.priorityRank);
    finite(`tasks[${i}].createdMs`, t.createdMs);
    strings(`tasks[${i}].capabilities`, t.capabilities);
  });
  const names = new Set<string>();
  input.agents.forEach((a, i) => {
    unique(`agents[${i}].name`, a.name, names, 'agent name');
    count(`agents[${i}].load`, a.load);
    count(`agents[${i}].wipLimit`, a.wipLimit);
    strings(`agents[${i}].capabilities`, a.capabilities);
  });
  const templateNames = new Set<string>();
  input.templates.forEach((t, i) => {
    unique(`templates[${i}].name`, t.name, templateNames, 'template name');
    count(`templates[${i}].instances`, t.instances);
    count(`templates[${i}].maxInstances`, t.maxInstances);
    count(`templates[${i}].wipLimitPerInstance`, t.wipLimitPerInstance);
    strings(`templates[${i}].capabilities`, t.capabilities);
  });
  if (input.columnWip) {
    if (input.columnWip.limit !== null) count('columnWip.limit', input.columnWip.limit);
    count('columnWip.current', input.columnWip.current);
  }
}

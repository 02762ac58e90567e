/**
 * `planAssignments`: which ready task goes to which live agent and which instances to start. The
 * shapes are in `plan-types.ts`, the task order in `plan-order.ts`, the input checks in
 * `plan-validate.ts`.
 */
import { CapabilityIndex, compareCodeUnits, coversMask } from './capabilities.js';
import { MinHeap } from './heap.js';
import { planOrder } from './plan-order.js';
import type { AgentSlot, Plan, PlanInput, PlannedSpawn, ReadyTask } from './plan-types.js';
import { validate } from './plan-validate.js';

export type { AgentSlot, Plan, PlanInput, PlannedAssignment, PlannedSpawn, ReadyTask, TemplateSlot, UnplacedTask } from './plan-types.js';


interface AgentState {
  readonly name: string;
  readonly template: string;
  load: number;
  readonly wipLimit: number;
  /** Position of the name in code-unit order: the tie-break among equal loads. */
  readonly rank: number;
  readonly group: Group;
}

/**
 * Agents that offer the same capabilities among those the tasks ask for. Capabilities no task asks
 * for cannot change a decision, so agents that differ only in those share a group. `heap` holds
 * the members accepting with room.
 */
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
  /** The set, deduplicated and sorted (code-unit order). */
  readonly capabilities: string[];
  readonly mask: Uint32Array;
  /** Covering groups that may still have room (pruned as they fill up). */
  groups: Group[];
  readonly templates: TemplateState[];
  readonly agentCount: number;
  readonly notAccepting: number;
  /**
   * The reason every task of the class is unplaced, once that is certain: from the start when no
   * agent or template can cover the set; otherwise once a task of the class failed with no agent
   * having room, no denial and no template able to spawn (loads, instances and planned spawns only
   * grow within a plan, so every later task of the class fails the same way).
   */
  saturated?: string;
  /** The last failure reason and the state it was built from, reused while that state repeats. */
  lastReason?: { key: string; reason: string };
}

const lessAgent = (a: AgentState, b: AgentState): boolean =>
  a.load < b.load || (a.load === b.load && a.rank < b.rank);

const allowAll = (): boolean => true;

/**
 * Plans which ready tasks go to which live agents, and which new instances to start.
 *
 * Algorithm (deterministic; no I/O, no clock):
 * 1. The capabilities the tasks ask for are interned into bit indices (`CapabilityIndex`). Tasks
 *    with the same capability set (whatever the order or repeats) form a class, found by an integer
 *    key (the mask itself while there are at most 32 such capabilities). Every agent, template and
 *    class gets a `Uint32Array` mask over those bits, and "covers" is `(task & ~agent) === 0` per
 *    word; capabilities no task asks for are left out, as they cannot change a decision. A task
 *    capability that no agent or template has can never be covered; such tasks are unplaced at once.
 * 2. Agents with identical masks form a group. Each group keeps a min-heap of its accepting agents
 *    with `load < wipLimit`, ordered by (load, name in code-unit order). Each class computes its
 *    covering groups and templates once.
 * 3. Tasks are taken by priorityRank (highest first), then createdMs (oldest first), then id
 *    (code-unit order); see `planOrder`. For each task the candidate is the least (load, name) among
 *    the tops of its covering groups. If policy denies it, it is set aside for this task and the
 *    groups go into a heap keyed by their tops, so each further denial costs O(log groups); the
 *    first allowed candidate gets the task, its load goes up and it leaves its heap at its WIP
 *    limit. Groups whose heaps empty are pruned from the class; once a class has no room, no denial
 *    and no template to spawn, its later tasks reuse the same reason in O(1). One assignment costs
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
 * Cost, for T tasks and A agents: O(T) to order the tasks in the usual case (`planOrder`), one sort
 * of the agent names, and per task O(covering groups) while agents have room, O(1) once its class
 * is saturated.
 *
 * @throws {PlanInputError} `WARREN_PLAN_INPUT` when an id or name repeats, or a number is negative,
 *   fractional where a count is expected, or not finite.
 */
export function planAssignments(input: PlanInput): Plan {
  const nameRanks = validate(input);
  const plan: Plan = { assignments: [], spawns: [], unplaced: [], plannedAtMs: input.nowMs };
  const tasks = input.tasks;
  if (tasks.length === 0) return plan;
  const isAllowed = input.isAllowed ?? allowAll;

  // Task classes: one per distinct capability set, interning the capabilities tasks ask for.
  const index = new CapabilityIndex();
  const classIds = new Map<number | string, number>();
  const classSamples: (readonly string[])[] = [];
  const classOfTask = new Uint32Array(tasks.length);
  for (let i = 0; i < tasks.length; i++) {
    const capabilities = (tasks[i] as ReadyTask).capabilities;
    const key = setKey(index, capabilities, true);
    let id = classIds.get(key);
    if (id === undefined) {
      id = classSamples.length;
      classIds.set(key, id);
      classSamples.push(capabilities);
    }
    classOfTask[i] = id;
  }

  // Agents, grouped by the task capabilities they offer.
  const groupsByKey = new Map<number | string, Group>();
  const groups: Group[] = [];
  for (let a = 0; a < input.agents.length; a++) {
    const slot = input.agents[a] as AgentSlot;
    const key = setKey(index, slot.capabilities, false);
    let group = groupsByKey.get(key);
    if (group === undefined) {
      group = { mask: index.encodeKnown(slot.capabilities).mask, heap: new MinHeap(lessAgent), size: 0, notAccepting: 0 };
      groupsByKey.set(key, group);
      groups.push(group);
    }
    group.size++;
    if (!slot.accepting) {
      group.notAccepting++;
    } else if (slot.load < slot.wipLimit) {
      const rank = nameRanks[a] as number;
      group.heap.push({ name: slot.name, template: slot.template, load: slot.load, wipLimit: slot.wipLimit, rank, group });
    }
  }

  const templates: TemplateState[] = input.templates
    .map((t) => ({
      name: t.name,
      mask: index.encodeKnown(t.capabilities).mask,
      capabilityCount: new Set(t.capabilities).size,
      instances: t.instances,
      maxInstances: t.maxInstances,
      perInstance: t.wipLimitPerInstance,
      spawns: [],
    }))
    .sort((a, b) => a.capabilityCount - b.capabilityCount || compareCodeUnits(a.name, b.name));

  // Task capabilities some agent or template offers.
  const offered = new Uint32Array(index.wordCount);
  for (const { mask } of [...groups, ...templates]) {
    for (let w = 0; w < mask.length; w++) offered[w] = (offered[w] as number) | (mask[w] as number);
  }
  const classes = classSamples.map((sample) => taskClass(sample, index, offered, groups, templates, input));

  const order = planOrder(tasks);
  const columnName = input.columnWip?.name ?? 'in_progress';
  const columnLimit = input.columnWip?.limit ?? null;
  let columnRoom = columnLimit === null ? Infinity : Math.max(0, columnLimit - (input.columnWip?.current ?? 0));

  const denied: AgentState[] = [];
  const groupHeap = new MinHeap<Group>((a, b) => lessAgent(a.heap.peek() as AgentState, b.heap.peek() as AgentState));
  const templateAllowed: boolean[] = [];

  for (const i of order) {
    const task = tasks[i] as ReadyTask;
    const cls = classes[classOfTask[i] as number] as TaskClass;
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

/**
 * A key for the set of `capabilities` that `index` holds, equal for equal sets whatever their
 * order and repeats: the mask itself while every bit is below 32, else a string of the low word
 * and the higher bits in order. With `intern`, capabilities new to `index` are interned first;
 * without it they are left out of the set.
 */
function setKey(index: CapabilityIndex, capabilities: readonly string[], intern: boolean): number | string {
  let low = 0;
  let high: number[] | undefined;
  for (let k = 0; k < capabilities.length; k++) {
    const capability = capabilities[k] as string;
    const bit = intern ? index.intern(capability) : index.bitOf(capability);
    if (bit === undefined) continue;
    if (bit < 32) low |= 1 << bit;
    else (high ??= []).push(bit);
  }
  if (high === undefined) return low;
  return `${low} ${[...new Set(high)].sort((a, b) => a - b).join(' ')}`;
}

/**
 * The class of tasks needing the set `sample`: its covering groups and templates, or, when nothing
 * can ever cover it, the reason its tasks stay unplaced. `offered` is the mask of the capabilities
 * some agent or template has.
 */
function taskClass(
  sample: readonly string[],
  index: CapabilityIndex,
  offered: Uint32Array,
  groups: readonly Group[],
  templates: readonly TemplateState[],
  input: PlanInput,
): TaskClass {
  const capabilities = [...new Set(sample)].sort(compareCodeUnits);
  const { mask } = index.encodeKnown(capabilities);
  const unknown = capabilities.filter((c) => !coversMask(index.encodeKnown([c]).mask, offered));
  if (unknown.length > 0) {
    const saturated = `no agent or template provides capabilities ${list(unknown)}`;
    return { capabilities, mask, groups: [], templates: [], agentCount: 0, notAccepting: 0, saturated };
  }
  const covering = groups.filter((g) => coversMask(mask, g.mask));
  const cls: TaskClass = {
    capabilities,
    mask,
    groups: covering,
    templates: templates.filter((t) => coversMask(mask, t.mask)),
    agentCount: covering.reduce((n, g) => n + g.size, 0),
    notAccepting: covering.reduce((n, g) => n + g.notAccepting, 0),
  };
  if (cls.agentCount === 0 && cls.templates.length === 0) cls.saturated = nothingCovers(cls, input);
  return cls;
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

import { entityExists, query } from 'bitecs';
import { AGENT_STATUS_CODES, modeCode, modeOf, statusOf, stopReasonOf, type AgentStatus, type LifecycleMode, type StopReason } from './status.js';
import { compareCodeUnits } from './validate.js';
import { agentComponentList, type AgentResourceLimits, type AgentUsage, type AgentWorld } from './world.js';

/** A plain, JSON-ready snapshot of one agent. */
export interface AgentView {
  name: string;
  template: string;
  /** Current entity id: valid only until the agent is removed; never store it. */
  eid: number;
  /** 0 while `spawning`. */
  uid: number;
  gid: number;
  /** Sorted. */
  capabilities: string[];
  status: AgentStatus;
  /** When it entered `status`, ms epoch. */
  statusSinceMs: number;
  load: number;
  wipLimit: number;
  lifecycle: LifecycleMode;
  /** When it last started, took or finished work, ms epoch. */
  lastActiveMs: number;
  /** Null until the first heartbeat. */
  lastHeartbeatMs: number | null;
  restarts: number;
  tasksDone: number;
  /** Whether its runner has said hello. */
  ready: boolean;
  /** Whether it has been given a task since it started. */
  tookTask: boolean;
  /** When it last finished a task, ms epoch; null when it has not. */
  workedMs: number | null;
  /** Why the supervisor is stopping it; null when it is not. */
  stopping: StopReason | null;
  /** Why it is stopped, in words, when the reason deserves more than its kind; else null. */
  stopDetail: string | null;
  /** The result its open tasks get when it has stopped, instead of running again; else null. */
  failTasks: string | null;
  /** Whether it is to be started again once it has exited. */
  restartAfterExit: boolean;
  resources: AgentResourceLimits & Required<AgentUsage>;
}

function viewOf(world: AgentWorld, eid: number): AgentView {
  const { Identity, Capabilities, Status, Load, Resources, Lifecycle, Stop } = world.components;
  const heartbeat = Lifecycle.lastHeartbeatMs[eid] ?? Number.NaN;
  const worked = Lifecycle.workedMs[eid] ?? Number.NaN;
  return {
    name: Identity.name[eid] ?? '',
    template: Identity.template[eid] ?? '',
    eid,
    uid: Identity.uid[eid] ?? 0,
    gid: Identity.gid[eid] ?? 0,
    capabilities: [...(Capabilities.list[eid] ?? [])],
    status: statusOf(Status.code[eid] ?? 0),
    statusSinceMs: Status.sinceMs[eid] ?? 0,
    load: Load.active[eid] ?? 0,
    wipLimit: Load.wipLimit[eid] ?? 0,
    lifecycle: modeOf(Lifecycle.mode[eid] ?? 0),
    lastActiveMs: Lifecycle.lastActiveMs[eid] ?? 0,
    lastHeartbeatMs: Number.isNaN(heartbeat) ? null : heartbeat,
    restarts: Lifecycle.restarts[eid] ?? 0,
    tasksDone: Lifecycle.tasksDone[eid] ?? 0,
    ready: Lifecycle.ready[eid] === 1,
    tookTask: Lifecycle.tookTask[eid] === 1,
    workedMs: Number.isNaN(worked) ? null : worked,
    stopping: stopReasonOf(Stop.reason[eid] ?? 0),
    stopDetail: Stop.detail[eid] ?? null,
    failTasks: Stop.failTasks[eid] ?? null,
    restartAfterExit: Stop.restartAfterExit[eid] === 1,
    resources: {
      memoryMaxBytes: Resources.memoryMaxBytes[eid] ?? 0,
      pidsMax: Resources.pidsMax[eid] ?? 0,
      cpuWeight: Resources.cpuWeight[eid] ?? 0,
      memoryBytes: Resources.memoryBytes[eid] ?? 0,
      pids: Resources.pids[eid] ?? 0,
      cpuMs: Resources.cpuMs[eid] ?? 0,
      pidsRefused: Resources.pidsRefused[eid] ?? 0,
      oomKills: Resources.oomKills[eid] ?? 0,
    },
  };
}

/**
 * A snapshot of agent `name` (started or `spawning`), or `undefined` when it is not in the world.
 * Take it before `removeAgent` to act on what the agent was (its stop reason, `failTasks`, …).
 */
export function agentView(world: AgentWorld, name: string): AgentView | undefined {
  const eid = world.agents.get(name);
  return eid === undefined ? undefined : viewOf(world, eid);
}

/** The last name order of one query's members: its members in the query's own order, their names, and the eids sorted by name. */
interface NameOrder {
  readonly members: readonly number[];
  readonly names: readonly string[];
  readonly sorted: readonly number[];
}

/** Per world, the last {@link NameOrder} of each query that {@link byName} sorted ('agents', 'instances'). */
const nameOrders = new WeakMap<AgentWorld, Map<string, NameOrder>>();

/** Whether `eids` (living, named ones only) are `order`'s members with the same names, in the same order. Allocates nothing. */
function sameMembers(world: AgentWorld, eids: Iterable<number>, order: NameOrder): boolean {
  const { Identity } = world.components;
  let i = 0;
  for (const eid of eids) {
    if (!entityExists(world, eid)) continue;
    const name = Identity.name[eid];
    if (name === undefined) continue;
    if (order.members[i] !== eid || order.names[i] !== name) return false;
    i += 1;
  }
  return i === order.members.length;
}

/**
 * The living, named entities of `eids` sorted by name (code-unit order). The order is kept per
 * world and query (`kind`) and sorted again only when the query's members or their names changed:
 * the systems ask for it several times a tick, and sorting a thousand names each time was most of
 * what a supervisor with a thousand idle agents allocated at rest. The array returned is frozen.
 */
function byName(world: AgentWorld, eids: Iterable<number>, kind: string): readonly number[] {
  let orders = nameOrders.get(world);
  if (orders === undefined) nameOrders.set(world, (orders = new Map<string, NameOrder>()));
  const known = orders.get(kind);
  if (known !== undefined && sameMembers(world, eids, known)) return known.sorted;
  const { Identity } = world.components;
  const members: number[] = [];
  const names: string[] = [];
  for (const eid of eids) {
    const name = Identity.name[eid];
    if (!entityExists(world, eid) || name === undefined) continue;
    members.push(eid);
    names.push(name);
  }
  const sorted = Object.freeze([...members].sort((a, b) => compareCodeUnits(Identity.name[a] as string, Identity.name[b] as string)));
  orders.set(kind, { members, names, sorted });
  return sorted;
}

/**
 * The eids of every started agent (not those still `spawning`), found by a bitecs query over all
 * agent components and ordered by agent name (code-unit order), so systems produce intents in a
 * stable order. The array is frozen and may be the one an earlier call returned.
 */
export function agentEntities(world: AgentWorld): readonly number[] {
  return byName(world, query(world, agentComponentList(world)), 'agents');
}

/** The eids of agent instances, started or `spawning`, in no particular order (a bitecs query's). */
function instancesUnordered(world: AgentWorld): Iterable<number> {
  return query(world, [world.components.Identity, world.components.Status]);
}

/** The eids of every agent instance, started or `spawning`, ordered by name; frozen, as {@link agentEntities}. */
export function instanceEntities(world: AgentWorld): readonly number[] {
  return byName(world, instancesUnordered(world), 'instances');
}

/** Snapshots of every started agent, sorted by name (agents still `spawning` are left out). */
export function listAgents(world: AgentWorld): AgentView[] {
  return agentEntities(world).map((eid) => viewOf(world, eid));
}

/**
 * One agent as the planner sees it: structurally the `AgentSlot` that `planAssignments` of
 * `@warren/scheduler` takes, so `agentSlots(world)` can be passed to it as is (this package does
 * not depend on the scheduler).
 */
export interface AgentSlot {
  /** Unique agent name (the durable key). */
  name: string;
  /** The template the agent was started from. */
  template: string;
  /** Capabilities the agent provides, sorted (frozen: shared with the world). */
  capabilities: readonly string[];
  /** Tasks the agent holds now. */
  load: number;
  /** Most tasks the agent may hold at once. */
  wipLimit: number;
  /** Whether the agent takes new tasks. */
  accepting: boolean;
}

/**
 * The started agents as planner input (`AgentSlot`), sorted by name. `accepting` is true for
 * `idle` and `busy` agents that are not being stopped, except an `autodelete` agent that has taken
 * its one task (it runs one task in its fresh sandbox, then is deleted).
 */
export function agentSlots(world: AgentWorld): AgentSlot[] {
  const { Identity, Capabilities, Load } = world.components;
  return agentEntities(world).map((eid) => ({
    name: Identity.name[eid] as string,
    template: Identity.template[eid] as string,
    capabilities: Capabilities.list[eid] ?? NO_CAPABILITIES,
    load: Load.active[eid] ?? 0,
    wipLimit: Load.wipLimit[eid] ?? 0,
    accepting: acceptsTasks(world, eid),
  }));
}

/** The capabilities of an agent that has none recorded (shared, so comparisons by reference hold). */
const NO_CAPABILITIES: readonly string[] = Object.freeze([]);

/** Whether agent `eid` takes new tasks (see {@link agentSlots}). */
function acceptsTasks(world: AgentWorld, eid: number): boolean {
  const { Status, Lifecycle, Stop } = world.components;
  const code = Status.code[eid];
  const spent = Lifecycle.mode[eid] === modeCode('autodelete') && Lifecycle.tookTask[eid] === 1;
  return (code === AGENT_STATUS_CODES.idle || code === AGENT_STATUS_CODES.busy) && (Stop.reason[eid] ?? 0) === 0 && !spent;
}

/** Whether two sorted capability lists hold the same names (the same array, usually). */
function sameCapabilities(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether `slots`, an earlier {@link agentSlots} result, still describes the started agents: the
 * same agents in the same order, each with the same template, capabilities, load, WIP limit and
 * acceptance. What the idle tick asks before planning again; it allocates nothing. O(agents).
 */
export function agentSlotsUnchanged(world: AgentWorld, slots: readonly AgentSlot[]): boolean {
  const { Identity, Capabilities, Load } = world.components;
  const eids = agentEntities(world);
  if (eids.length !== slots.length) return false;
  for (let i = 0; i < eids.length; i++) {
    const eid = eids[i]!;
    const slot = slots[i]!;
    if (
      slot.name !== Identity.name[eid] ||
      slot.template !== Identity.template[eid] ||
      slot.load !== (Load.active[eid] ?? 0) ||
      slot.wipLimit !== (Load.wipLimit[eid] ?? 0) ||
      slot.accepting !== acceptsTasks(world, eid) ||
      !sameCapabilities(slot.capabilities, Capabilities.list[eid] ?? NO_CAPABILITIES)
    ) {
      return false;
    }
  }
  return true;
}

/** Counts the living, named entities of `eids` that pass `keep` (all when absent), by template. */
function countBy(world: AgentWorld, eids: Iterable<number>, keep?: (eid: number) => boolean): Map<string, number> {
  const { Identity } = world.components;
  const counts = new Map<string, number>();
  for (const eid of eids) {
    if (!entityExists(world, eid) || Identity.name[eid] === undefined || (keep !== undefined && !keep(eid))) continue;
    const template = Identity.template[eid] as string;
    counts.set(template, (counts.get(template) ?? 0) + 1);
  }
  return counts;
}

/**
 * Instances of each template: started agents (stopping ones included, until removed) and agents
 * being spawned. Templates with none are absent.
 */
export function instanceCounts(world: AgentWorld): Map<string, number> {
  return countBy(world, instancesUnordered(world));
}

/**
 * Agents of each template that are starting: being spawned, or started but not yet ready (no hello
 * from their runner) and not being stopped. Templates with none are absent.
 */
export function startingCounts(world: AgentWorld): Map<string, number> {
  const { Status, Lifecycle, Stop } = world.components;
  return countBy(
    world,
    instancesUnordered(world),
    (eid) => Status.code[eid] === AGENT_STATUS_CODES.spawning || (Lifecycle.ready[eid] !== 1 && (Stop.reason[eid] ?? 0) === 0),
  );
}

/** The names of the agents being spawned (status `spawning`), sorted. */
export function spawningAgents(world: AgentWorld): string[] {
  const { Identity, Status } = world.components;
  return instanceEntities(world)
    .filter((eid) => Status.code[eid] === AGENT_STATUS_CODES.spawning)
    .map((eid) => Identity.name[eid] as string);
}

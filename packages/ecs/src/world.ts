import { addComponents, addEntity, createWorld, entityExists, query, removeEntity, type World } from 'bitecs';
import { CapabilityIndex, type AgentSlot } from '@warren/scheduler';
import { AgentSpecError, DuplicateAgentError, UnknownAgentError } from './errors.js';
import {
  AGENT_STATUS_CODES,
  modeCode,
  modeOf,
  statusCode,
  statusOf,
  type AgentStatus,
  type LifecycleMode,
} from './status.js';

/** `Identity`: who the agent is. Numbers are SoA typed arrays indexed by eid; strings are side arrays. */
export interface IdentityStore {
  uid: Uint32Array;
  gid: Uint32Array;
  name: (string | undefined)[];
  template: (string | undefined)[];
}

/** `Capabilities`: the agent's capability set as a mask over the world's `CapabilityIndex`. */
export interface CapabilitiesStore {
  mask: (Uint32Array | undefined)[];
}

/** `Status`: `code` is the u8 of an `AgentStatus`; `sinceMs` is when the agent entered it (ms epoch). */
export interface StatusStore {
  code: Uint8Array;
  sinceMs: Float64Array;
}

/** `Load`: tasks the agent holds now, and the most it may hold. */
export interface LoadStore {
  active: Uint32Array;
  wipLimit: Uint32Array;
}

/**
 * `Resources`: limits given at start (`memoryMaxBytes`, `pidsMax`, `cpuWeight`, cgroup v2 weight
 * 1–10000) and the last measured usage (`memoryBytes`, `pids`, `cpuMs` of CPU time consumed).
 */
export interface ResourcesStore {
  memoryMaxBytes: Float64Array;
  pidsMax: Float64Array;
  cpuWeight: Uint32Array;
  memoryBytes: Float64Array;
  pids: Float64Array;
  cpuMs: Float64Array;
}

/**
 * `Lifecycle`: `mode` is the u8 of a `LifecycleMode`; `lastActiveMs` the last time it took, held or
 * finished work; `lastHeartbeatMs` the last heartbeat (NaN = none yet); `restarts`; `tasksDone`,
 * the tasks it has finished (counted when its load goes down).
 */
export interface LifecycleStore {
  mode: Uint8Array;
  lastActiveMs: Float64Array;
  lastHeartbeatMs: Float64Array;
  restarts: Uint32Array;
  tasksDone: Uint32Array;
}

/** The component stores of one world. Each object is also the bitecs component reference. */
export interface AgentComponents {
  readonly Identity: IdentityStore;
  readonly Capabilities: CapabilitiesStore;
  readonly Status: StatusStore;
  readonly Load: LoadStore;
  readonly Resources: ResourcesStore;
  readonly Lifecycle: LifecycleStore;
}

/** What an agent world carries besides bitecs' own state. */
export interface AgentWorldContext {
  /** Component stores, owned by this world only. */
  readonly components: AgentComponents;
  /** Name → eid of every agent in the world: the durable key (eids are recycled at once). */
  readonly agents: Map<string, number>;
  /** The interning of capability strings into mask bits (shared scheme with @warren/scheduler). */
  readonly capabilities: CapabilityIndex;
  /** Entities the typed arrays can hold; grows by doubling. */
  capacity: number;
}

/** A bitecs world of agents: entities with the six components above. */
export type AgentWorld = World<AgentWorldContext>;

/** The limits an agent is started with. */
export interface AgentResourceLimits {
  /** Memory limit in bytes (cgroup memory.max); 0 means no limit. */
  memoryMaxBytes: number;
  /** Most processes (cgroup pids.max); 0 means no limit. */
  pidsMax: number;
  /** CPU weight, 1–10000 (cgroup v2 cpu.weight; 100 is the default share). */
  cpuWeight: number;
}

/** What `addAgent` needs to know about a new agent. */
export interface AgentSpec {
  /** Unique name (the account name). */
  name: string;
  /** The template it was started from. */
  template: string;
  /** Its uid and gid (0 – 2^32-1). */
  uid: number;
  gid: number;
  /** Capabilities it provides. */
  capabilities: readonly string[];
  /** Most tasks it may hold at once (non-negative integer). */
  wipLimit: number;
  /** What happens when it idles. */
  lifecycle: LifecycleMode;
  resources: AgentResourceLimits;
  /** When it was added, ms since the epoch: its `pending` status starts then. */
  nowMs: number;
}

/** Measured usage of an agent's cgroup. */
export interface AgentUsage {
  /** Memory in use, bytes (memory.current / memory.usage_in_bytes). */
  memoryBytes: number;
  /** Processes (pids.current). */
  pids: number;
  /** CPU time consumed since start, ms. */
  cpuMs: number;
}

/** A plain, JSON-ready snapshot of one agent. */
export interface AgentView {
  name: string;
  template: string;
  /** Current entity id: valid only until the agent is removed; never store it. */
  eid: number;
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
  lastActiveMs: number;
  /** Null until the first heartbeat. */
  lastHeartbeatMs: number | null;
  restarts: number;
  tasksDone: number;
  resources: AgentResourceLimits & AgentUsage;
}

const INITIAL_CAPACITY = 64;

/**
 * Creates an empty agent world with its own component stores (typed arrays of `initialCapacity`
 * entries, default 64, doubling as needed).
 */
export function createAgentWorld(options: { initialCapacity?: number } = {}): AgentWorld {
  const capacity = options.initialCapacity ?? INITIAL_CAPACITY;
  if (!Number.isSafeInteger(capacity) || capacity < 1) {
    throw new AgentSpecError('options.initialCapacity', capacity, undefined, 'expected a positive integer');
  }
  const components: AgentComponents = {
    Identity: { uid: new Uint32Array(capacity), gid: new Uint32Array(capacity), name: [], template: [] },
    Capabilities: { mask: [] },
    Status: { code: new Uint8Array(capacity), sinceMs: new Float64Array(capacity) },
    Load: { active: new Uint32Array(capacity), wipLimit: new Uint32Array(capacity) },
    Resources: {
      memoryMaxBytes: new Float64Array(capacity),
      pidsMax: new Float64Array(capacity),
      cpuWeight: new Uint32Array(capacity),
      memoryBytes: new Float64Array(capacity),
      pids: new Float64Array(capacity),
      cpuMs: new Float64Array(capacity),
    },
    Lifecycle: {
      mode: new Uint8Array(capacity),
      lastActiveMs: new Float64Array(capacity),
      lastHeartbeatMs: new Float64Array(capacity),
      restarts: new Uint32Array(capacity),
      tasksDone: new Uint32Array(capacity),
    },
  };
  return createWorld<AgentWorldContext>({
    components,
    agents: new Map(),
    capabilities: new CapabilityIndex(),
    capacity,
  });
}

type TypedArray = Uint8Array | Uint32Array | Float64Array;

/** Grows every typed array of every store so that index `eid` fits. */
function ensureCapacity(world: AgentWorld, eid: number): void {
  if (eid < world.capacity) return;
  let capacity = world.capacity;
  while (capacity <= eid) capacity *= 2;
  for (const store of Object.values(world.components) as Record<string, unknown>[]) {
    for (const [key, value] of Object.entries(store)) {
      if (value instanceof Uint8Array || value instanceof Uint32Array || value instanceof Float64Array) {
        const grown = new (value.constructor as new (n: number) => TypedArray)(capacity);
        grown.set(value);
        store[key] = grown;
      }
    }
  }
  world.capacity = capacity;
}

function componentList(world: AgentWorld): object[] {
  const c = world.components;
  return [c.Identity, c.Capabilities, c.Status, c.Load, c.Resources, c.Lifecycle];
}

function requireCount(field: string, value: unknown, agent: string | undefined, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new AgentSpecError(field, value, agent, `expected an integer from 0 to ${max}`);
  }
  return value;
}

function requireTime(field: string, value: unknown, agent: string | undefined): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new AgentSpecError(field, value, agent, 'expected a finite time in ms');
  }
  return value;
}

function requireEid(world: AgentWorld, name: string, operation: string): number {
  const eid = world.agents.get(name);
  if (eid === undefined) throw new UnknownAgentError(name, operation);
  return eid;
}

/**
 * Adds an agent entity with all six components and returns its eid. The eid is only valid until
 * `removeAgent`; bitecs recycles it at once, so keep the name.
 *
 * @throws {DuplicateAgentError} `WARREN_AGENT_DUPLICATE` when `spec.name` is already in the world.
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when a field is invalid (empty name or template,
 *   uid/gid outside 0–2^32-1, negative or fractional counts, unknown lifecycle, non-finite nowMs).
 */
export function addAgent(world: AgentWorld, spec: AgentSpec): number {
  const name = spec.name;
  if (typeof name !== 'string' || name === '') throw new AgentSpecError('spec.name', name, undefined, 'expected a non-empty string');
  const existing = world.agents.get(name);
  if (existing !== undefined) throw new DuplicateAgentError(name, existing);
  if (typeof spec.template !== 'string' || spec.template === '') {
    throw new AgentSpecError('spec.template', spec.template, name, 'expected a non-empty string');
  }
  const uid = requireCount('spec.uid', spec.uid, name, 0xffff_ffff);
  const gid = requireCount('spec.gid', spec.gid, name, 0xffff_ffff);
  const wipLimit = requireCount('spec.wipLimit', spec.wipLimit, name, 0xffff_ffff);
  const mode = modeCode(spec.lifecycle);
  if (mode === undefined) {
    throw new AgentSpecError('spec.lifecycle', spec.lifecycle, name, 'expected persistent, sleep or autodelete');
  }
  if (!Array.isArray(spec.capabilities) || spec.capabilities.some((c) => typeof c !== 'string' || c === '')) {
    throw new AgentSpecError('spec.capabilities', spec.capabilities, name, 'expected an array of non-empty strings');
  }
  const resources = spec.resources ?? ({} as Partial<AgentResourceLimits>);
  const memoryMaxBytes = requireCount('spec.resources.memoryMaxBytes', resources.memoryMaxBytes, name);
  const pidsMax = requireCount('spec.resources.pidsMax', resources.pidsMax, name);
  const cpuWeight = requireCount('spec.resources.cpuWeight', resources.cpuWeight, name, 10_000);
  const nowMs = requireTime('spec.nowMs', spec.nowMs, name);

  const eid = addEntity(world);
  ensureCapacity(world, eid);
  addComponents(world, eid, componentList(world));
  const { Identity, Capabilities, Status, Load, Resources, Lifecycle } = world.components;
  Identity.uid[eid] = uid;
  Identity.gid[eid] = gid;
  Identity.name[eid] = name;
  Identity.template[eid] = spec.template;
  Capabilities.mask[eid] = world.capabilities.encode(spec.capabilities);
  Status.code[eid] = AGENT_STATUS_CODES.pending;
  Status.sinceMs[eid] = nowMs;
  Load.active[eid] = 0;
  Load.wipLimit[eid] = wipLimit;
  Resources.memoryMaxBytes[eid] = memoryMaxBytes;
  Resources.pidsMax[eid] = pidsMax;
  Resources.cpuWeight[eid] = cpuWeight;
  Resources.memoryBytes[eid] = 0;
  Resources.pids[eid] = 0;
  Resources.cpuMs[eid] = 0;
  Lifecycle.mode[eid] = mode;
  Lifecycle.lastActiveMs[eid] = nowMs;
  Lifecycle.lastHeartbeatMs[eid] = Number.NaN;
  Lifecycle.restarts[eid] = 0;
  Lifecycle.tasksDone[eid] = 0;
  world.agents.set(name, eid);
  return eid;
}

/**
 * Removes the agent named `name` and its entity. Returns false when there was none. Its eid may be
 * handed to the next `addAgent` at once; the name no longer resolves.
 */
export function removeAgent(world: AgentWorld, name: string): boolean {
  const eid = world.agents.get(name);
  if (eid === undefined) return false;
  world.agents.delete(name);
  removeEntity(world, eid);
  const { Identity, Capabilities } = world.components;
  Identity.name[eid] = undefined;
  Identity.template[eid] = undefined;
  Capabilities.mask[eid] = undefined;
  return true;
}

/** The current eid of agent `name`, or `undefined` when it is not in the world. */
export function agentEid(world: AgentWorld, name: string): number | undefined {
  return world.agents.get(name);
}

/**
 * Sets the agent's status. When it changes, `sinceMs` becomes `nowMs`; entering or leaving `busy`
 * also marks the agent active at `nowMs` (`lastActiveMs`). Setting the same status again is a no-op.
 *
 * @throws {UnknownAgentError} `WARREN_AGENT_UNKNOWN` when there is no such agent.
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `status` is not an `AgentStatus` or `nowMs` is not finite.
 */
export function setStatus(world: AgentWorld, name: string, status: AgentStatus, nowMs: number): void {
  const eid = requireEid(world, name, 'setStatus');
  const code = statusCode(status);
  if (code === undefined) throw new AgentSpecError('status', status, name, `expected one of ${Object.keys(AGENT_STATUS_CODES).join(', ')}`);
  requireTime('nowMs', nowMs, name);
  const { Status, Lifecycle } = world.components;
  const previous = Status.code[eid];
  if (previous === code) return;
  Status.code[eid] = code;
  Status.sinceMs[eid] = nowMs;
  if (code === AGENT_STATUS_CODES.busy || previous === AGENT_STATUS_CODES.busy) Lifecycle.lastActiveMs[eid] = nowMs;
}

/**
 * Sets the number of tasks the agent holds. A decrease counts the difference as finished tasks
 * (`tasksDone`). With `nowMs`, the agent is also marked active then.
 *
 * @throws {UnknownAgentError} `WARREN_AGENT_UNKNOWN` when there is no such agent.
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `load` is not a non-negative integer.
 */
export function setLoad(world: AgentWorld, name: string, load: number, nowMs?: number): void {
  const eid = requireEid(world, name, 'setLoad');
  requireCount('load', load, name, 0xffff_ffff);
  if (nowMs !== undefined) requireTime('nowMs', nowMs, name);
  const { Load, Lifecycle } = world.components;
  const previous = Load.active[eid] ?? 0;
  if (load < previous) Lifecycle.tasksDone[eid] = (Lifecycle.tasksDone[eid] ?? 0) + (previous - load);
  Load.active[eid] = load;
  if (nowMs !== undefined) Lifecycle.lastActiveMs[eid] = nowMs;
}

/**
 * Records a heartbeat from the agent at `nowMs`. Returns false (and records nothing) when the agent
 * is not in the world: heartbeats arrive asynchronously and may race with its removal.
 *
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `nowMs` is not finite.
 */
export function recordHeartbeat(world: AgentWorld, name: string, nowMs: number): boolean {
  const eid = world.agents.get(name);
  requireTime('nowMs', nowMs, name);
  if (eid === undefined) return false;
  const beats = world.components.Lifecycle.lastHeartbeatMs;
  const last = beats[eid] ?? Number.NaN;
  if (Number.isNaN(last) || nowMs > last) beats[eid] = nowMs;
  return true;
}

/**
 * Records measured usage of the agent's cgroup. Returns false when the agent is not in the world
 * (measurements may race with its removal).
 *
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when a value is negative or not finite.
 */
export function recordUsage(world: AgentWorld, name: string, usage: AgentUsage): boolean {
  const memoryBytes = requireCount('usage.memoryBytes', usage.memoryBytes, name);
  const pids = requireCount('usage.pids', usage.pids, name);
  if (typeof usage.cpuMs !== 'number' || !Number.isFinite(usage.cpuMs) || usage.cpuMs < 0) {
    throw new AgentSpecError('usage.cpuMs', usage.cpuMs, name, 'expected a non-negative number of ms');
  }
  const eid = world.agents.get(name);
  if (eid === undefined) return false;
  const { Resources } = world.components;
  Resources.memoryBytes[eid] = memoryBytes;
  Resources.pids[eid] = pids;
  Resources.cpuMs[eid] = usage.cpuMs;
  return true;
}

/**
 * Counts one restart of the agent and returns the new count.
 *
 * @throws {UnknownAgentError} `WARREN_AGENT_UNKNOWN` when there is no such agent.
 */
export function recordRestart(world: AgentWorld, name: string): number {
  const eid = requireEid(world, name, 'recordRestart');
  const restarts = world.components.Lifecycle.restarts;
  restarts[eid] = (restarts[eid] ?? 0) + 1;
  return restarts[eid] ?? 0;
}

function viewOf(world: AgentWorld, eid: number): AgentView {
  const { Identity, Capabilities, Status, Load, Resources, Lifecycle } = world.components;
  const heartbeat = Lifecycle.lastHeartbeatMs[eid] ?? Number.NaN;
  const mask = Capabilities.mask[eid];
  return {
    name: Identity.name[eid] ?? '',
    template: Identity.template[eid] ?? '',
    eid,
    uid: Identity.uid[eid] ?? 0,
    gid: Identity.gid[eid] ?? 0,
    capabilities: mask ? world.capabilities.decode(mask) : [],
    status: statusOf(Status.code[eid] ?? 0),
    statusSinceMs: Status.sinceMs[eid] ?? 0,
    load: Load.active[eid] ?? 0,
    wipLimit: Load.wipLimit[eid] ?? 0,
    lifecycle: modeOf(Lifecycle.mode[eid] ?? 0),
    lastActiveMs: Lifecycle.lastActiveMs[eid] ?? 0,
    lastHeartbeatMs: Number.isNaN(heartbeat) ? null : heartbeat,
    restarts: Lifecycle.restarts[eid] ?? 0,
    tasksDone: Lifecycle.tasksDone[eid] ?? 0,
    resources: {
      memoryMaxBytes: Resources.memoryMaxBytes[eid] ?? 0,
      pidsMax: Resources.pidsMax[eid] ?? 0,
      cpuWeight: Resources.cpuWeight[eid] ?? 0,
      memoryBytes: Resources.memoryBytes[eid] ?? 0,
      pids: Resources.pids[eid] ?? 0,
      cpuMs: Resources.cpuMs[eid] ?? 0,
    },
  };
}

/** A snapshot of agent `name`, or `undefined` when it is not in the world. */
export function agentView(world: AgentWorld, name: string): AgentView | undefined {
  const eid = world.agents.get(name);
  return eid === undefined ? undefined : viewOf(world, eid);
}

/**
 * The eids of every agent entity, found by a bitecs query over all six components and ordered by
 * agent name (code-unit order), so systems produce intents in a stable order.
 */
export function agentEntities(world: AgentWorld): number[] {
  const { Identity } = world.components;
  const eids: number[] = [];
  for (const eid of query(world, componentList(world))) {
    if (entityExists(world, eid) && Identity.name[eid] !== undefined) eids.push(eid);
  }
  return eids.sort((a, b) => {
    const x = Identity.name[a] as string;
    const y = Identity.name[b] as string;
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** Snapshots of every agent, sorted by name. */
export function listAgents(world: AgentWorld): AgentView[] {
  return agentEntities(world).map((eid) => viewOf(world, eid));
}

/**
 * The agents as `planAssignments` input (@warren/scheduler `AgentSlot`), sorted by name.
 * `accepting` is true for `idle` and `busy` agents only.
 */
export function agentSlots(world: AgentWorld): AgentSlot[] {
  const { Identity, Capabilities, Status, Load } = world.components;
  return agentEntities(world).map((eid) => {
    const code = Status.code[eid];
    const mask = Capabilities.mask[eid];
    return {
      name: Identity.name[eid] as string,
      template: Identity.template[eid] as string,
      capabilities: mask ? world.capabilities.decode(mask) : [],
      load: Load.active[eid] ?? 0,
      wipLimit: Load.wipLimit[eid] ?? 0,
      accepting: code === AGENT_STATUS_CODES.idle || code === AGENT_STATUS_CODES.busy,
    };
  });
}

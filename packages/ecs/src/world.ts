import { addComponents, addEntity, createWorld, removeComponent, removeEntity, type World } from 'bitecs';
import { AgentSpecError, DuplicateAgentError, UnknownAgentError } from './errors.js';
import { AGENT_STATUS_CODES, modeCode, statusCode, type AgentStatus, type LifecycleMode } from './status.js';
import { compareCodeUnits, requireCount, requireTime } from './validate.js';

/** `Identity`: who the agent is. Numbers are SoA typed arrays indexed by eid; strings are side arrays. */
export interface IdentityStore {
  uid: Uint32Array;
  gid: Uint32Array;
  name: (string | undefined)[];
  template: (string | undefined)[];
}

/**
 * `Capabilities`: the agent's capability set, sorted (code-unit order), without duplicates and
 * frozen, so it can be handed out as is. Matching tasks to capabilities is the planner's business
 * (`@warren/scheduler` interns them into bitmasks per plan).
 */
export interface CapabilitiesStore {
  list: (readonly string[] | undefined)[];
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
 * 1–10000) and the last measured usage (`memoryBytes`, `pids`, `cpuMs` of CPU time consumed, and
 * the cgroup's counters `pidsRefused`, forks refused at `pids.max`, and `oomKills`).
 */
export interface ResourcesStore {
  memoryMaxBytes: Float64Array;
  pidsMax: Float64Array;
  cpuWeight: Uint32Array;
  memoryBytes: Float64Array;
  pids: Float64Array;
  cpuMs: Float64Array;
  pidsRefused: Float64Array;
  oomKills: Float64Array;
}

/**
 * `Lifecycle`: `mode` is the u8 of a `LifecycleMode`; `lastActiveMs` the last time it started, took
 * or finished work; `lastHeartbeatMs` the last heartbeat (NaN = none yet); `restarts`; `tasksDone`,
 * the tasks it has finished; `ready` 1 once its runner said hello; `tookTask` 1 once it was given a
 * task (an `autodelete` agent takes one); `workedMs` when it last finished a task (NaN = never).
 */
export interface LifecycleStore {
  mode: Uint8Array;
  lastActiveMs: Float64Array;
  lastHeartbeatMs: Float64Array;
  restarts: Uint32Array;
  tasksDone: Uint32Array;
  ready: Uint8Array;
  tookTask: Uint8Array;
  workedMs: Float64Array;
}

/**
 * `Stop`: why the supervisor is stopping the agent (`reason`, the u8 of a `StopReason`, 0 = it is
 * not), the words for it when the kind is not enough (`detail`, e.g. the watchdog's finding), the
 * result its open tasks get instead of running again (`failTasks`), and whether to start it again
 * once it has exited (`restartAfterExit`, an operator's restart).
 */
export interface StopStore {
  reason: Uint8Array;
  detail: (string | undefined)[];
  failTasks: (string | undefined)[];
  restartAfterExit: Uint8Array;
}

/**
 * `Watchdog`: the watchdog's memory of the agent's readings between ticks (see `observeLimits`):
 * the CPU time and time of the last reading, the refused forks and OOM kills already seen, and the
 * two grace timers (over a threshold; at the process limit), each a `sinceMs` (NaN = not holding)
 * and the last reading that held.
 */
export interface WatchdogStore {
  lastCpuMs: Float64Array;
  lastReadingMs: Float64Array;
  pidsRefusedSeen: Float64Array;
  oomKillsSeen: Float64Array;
  overSinceMs: Float64Array;
  overLastMs: Float64Array;
  atLimitSinceMs: Float64Array;
  atLimitLastMs: Float64Array;
}

/** The component stores of one world's agents. Each object is also the bitecs component reference. */
export interface AgentComponents {
  readonly Identity: IdentityStore;
  readonly Capabilities: CapabilitiesStore;
  readonly Status: StatusStore;
  readonly Load: LoadStore;
  readonly Resources: ResourcesStore;
  readonly Lifecycle: LifecycleStore;
  readonly Stop: StopStore;
  readonly Watchdog: WatchdogStore;
}

/**
 * `Template`: what the agent systems need of a template: its `name`, `lifecycle` (the code of a
 * `LifecycleMode`), `maxInstances`, `warmPool`, `sleepAfterIdleMs` and the watchdog's thresholds
 * (`watchdogCpuCores` NaN = no CPU threshold). Templates are few while eids run as high as the
 * agents', so these are sparse plain arrays, not typed arrays of the world's capacity.
 */
export interface TemplateStore {
  name: (string | undefined)[];
  lifecycle: number[];
  maxInstances: number[];
  warmPool: number[];
  sleepAfterIdleMs: number[];
  watchdogMemoryBytes: number[];
  watchdogPids: number[];
  watchdogCpuCores: number[];
  watchdogGraceMs: number[];
}

/**
 * `SpawnBackoff`: consecutive agents of the template that failed to start (`failures`, 0 = none),
 * why the last one did, and when a start may be tried again (`nextAttemptMs`, ms epoch). Sparse
 * plain arrays, as `Template`.
 */
export interface SpawnBackoffStore {
  failures: number[];
  reason: (string | undefined)[];
  nextAttemptMs: number[];
}

/** The component stores of one world's template entities. */
export interface TemplateComponents {
  readonly Template: TemplateStore;
  readonly SpawnBackoff: SpawnBackoffStore;
}

/** What an agent world carries besides bitecs' own state. */
export interface AgentWorldContext {
  /** Agent component stores, owned by this world only. */
  readonly components: AgentComponents;
  /** Template component stores. */
  readonly templateComponents: TemplateComponents;
  /** Tag of agents being spawned: entities with `Identity` and `Status` only. */
  readonly Spawning: object;
  /** Name → eid of every agent in the world, spawning ones included: the durable key (eids are recycled at once). */
  readonly agents: Map<string, number>;
  /** Name → eid of every template, in definition order. */
  readonly templates: Map<string, number>;
  /** Entities the typed arrays can hold; grows by doubling. */
  capacity: number;
}

/** A bitecs world of agents and their templates. */
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
  /** When it was added, ms since the epoch: its `pending` status starts then, and its watchdog's first interval. */
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
  /** Forks refused at the process limit since start (the `max` count of pids.events). Default 0. */
  pidsRefused?: number;
  /** Processes killed by the OOM killer since start (`oom_kill` of memory.events). Default 0. */
  oomKills?: number;
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
  const f64 = () => new Float64Array(capacity);
  const components: AgentComponents = {
    Identity: { uid: new Uint32Array(capacity), gid: new Uint32Array(capacity), name: [], template: [] },
    Capabilities: { list: [] },
    Status: { code: new Uint8Array(capacity), sinceMs: f64() },
    Load: { active: new Uint32Array(capacity), wipLimit: new Uint32Array(capacity) },
    Resources: {
      memoryMaxBytes: f64(),
      pidsMax: f64(),
      cpuWeight: new Uint32Array(capacity),
      memoryBytes: f64(),
      pids: f64(),
      cpuMs: f64(),
      pidsRefused: f64(),
      oomKills: f64(),
    },
    Lifecycle: {
      mode: new Uint8Array(capacity),
      lastActiveMs: f64(),
      lastHeartbeatMs: f64(),
      restarts: new Uint32Array(capacity),
      tasksDone: new Uint32Array(capacity),
      ready: new Uint8Array(capacity),
      tookTask: new Uint8Array(capacity),
      workedMs: f64(),
    },
    Stop: { reason: new Uint8Array(capacity), detail: [], failTasks: [], restartAfterExit: new Uint8Array(capacity) },
    Watchdog: {
      lastCpuMs: f64(),
      lastReadingMs: f64(),
      pidsRefusedSeen: f64(),
      oomKillsSeen: f64(),
      overSinceMs: f64(),
      overLastMs: f64(),
      atLimitSinceMs: f64(),
      atLimitLastMs: f64(),
    },
  };
  const templateComponents: TemplateComponents = {
    Template: {
      name: [],
      lifecycle: [],
      maxInstances: [],
      warmPool: [],
      sleepAfterIdleMs: [],
      watchdogMemoryBytes: [],
      watchdogPids: [],
      watchdogCpuCores: [],
      watchdogGraceMs: [],
    },
    SpawnBackoff: { failures: [], reason: [], nextAttemptMs: [] },
  };
  return createWorld<AgentWorldContext>({
    components,
    templateComponents,
    Spawning: {},
    agents: new Map(),
    templates: new Map(),
    capacity,
  });
}

type TypedArray = Uint8Array | Uint32Array | Float64Array;

/** Grows every typed array of every store so that index `eid` fits. */
export function ensureCapacity(world: AgentWorld, eid: number): void {
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

/** The components every started agent has (the query of `agentEntities`). */
export function agentComponentList(world: AgentWorld): object[] {
  const c = world.components;
  return [c.Identity, c.Capabilities, c.Status, c.Load, c.Resources, c.Lifecycle, c.Stop, c.Watchdog];
}

/** The eid of agent `name`. @throws {UnknownAgentError} naming `operation` when there is none. */
export function requireEid(world: AgentWorld, name: string, operation: string): number {
  const eid = world.agents.get(name);
  if (eid === undefined) throw new UnknownAgentError(name, operation);
  return eid;
}

function requireName(name: unknown): string {
  if (typeof name !== 'string' || name === '') throw new AgentSpecError('spec.name', name, undefined, 'expected a non-empty string');
  return name;
}

function requireTemplateName(template: unknown, name: string): string {
  if (typeof template !== 'string' || template === '') throw new AgentSpecError('spec.template', template, name, 'expected a non-empty string');
  return template;
}

/** Puts every agent field of `eid` to its starting value (eids are recycled: old values linger). */
function resetAgentFields(world: AgentWorld, eid: number, name: string, template: string, nowMs: number): void {
  const { Identity, Capabilities, Status, Load, Resources, Lifecycle, Stop, Watchdog } = world.components;
  Identity.uid[eid] = 0;
  Identity.gid[eid] = 0;
  Identity.name[eid] = name;
  Identity.template[eid] = template;
  Capabilities.list[eid] = undefined;
  Status.code[eid] = AGENT_STATUS_CODES.pending;
  Status.sinceMs[eid] = nowMs;
  Load.active[eid] = 0;
  Load.wipLimit[eid] = 0;
  for (const store of [Resources, Watchdog] as unknown as Record<string, Float64Array | Uint32Array>[]) {
    for (const array of Object.values(store)) array[eid] = 0;
  }
  Watchdog.lastReadingMs[eid] = nowMs;
  Watchdog.overSinceMs[eid] = Number.NaN;
  Watchdog.atLimitSinceMs[eid] = Number.NaN;
  Lifecycle.mode[eid] = 0;
  Lifecycle.lastActiveMs[eid] = nowMs;
  Lifecycle.lastHeartbeatMs[eid] = Number.NaN;
  Lifecycle.restarts[eid] = 0;
  Lifecycle.tasksDone[eid] = 0;
  Lifecycle.ready[eid] = 0;
  Lifecycle.tookTask[eid] = 0;
  Lifecycle.workedMs[eid] = Number.NaN;
  Stop.reason[eid] = 0;
  Stop.detail[eid] = undefined;
  Stop.failTasks[eid] = undefined;
  Stop.restartAfterExit[eid] = 0;
}

/**
 * Adds an agent that is being spawned: an entity in status `spawning` with `Identity` (name and
 * template; uid and gid 0 until `addAgent`) and `Status` only, so it counts as an instance of its
 * template (`instanceCounts`) and its name is taken, but no system acts on it. `addAgent` with the
 * same name and template completes it once its process exists; `removeSpawningAgent` drops it
 * when the start failed. Returns its eid (valid only until it is removed).
 *
 * @throws {DuplicateAgentError} `WARREN_AGENT_DUPLICATE` when `name` is already in the world.
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` for an empty name or template, or a non-finite `nowMs`.
 */
export function addSpawningAgent(world: AgentWorld, spec: { name: string; template: string; nowMs: number }): number {
  const name = requireName(spec.name);
  const existing = world.agents.get(name);
  if (existing !== undefined) throw new DuplicateAgentError(name, existing);
  const template = requireTemplateName(spec.template, name);
  const nowMs = requireTime('spec.nowMs', spec.nowMs, name);
  const eid = addEntity(world);
  ensureCapacity(world, eid);
  addComponents(world, eid, [world.components.Identity, world.components.Status, world.Spawning]);
  resetAgentFields(world, eid, name, template, nowMs);
  world.components.Status.code[eid] = AGENT_STATUS_CODES.spawning;
  world.agents.set(name, eid);
  return eid;
}

/**
 * Adds an agent entity with every agent component and returns its eid, in status `pending`. When
 * `spec.name` is an agent being spawned (`addSpawningAgent`) of the same template, that entity is
 * completed instead. The eid is only valid until `removeAgent`; bitecs recycles it at once, so keep
 * the name.
 *
 * @throws {DuplicateAgentError} `WARREN_AGENT_DUPLICATE` when `spec.name` is already in the world
 *   (other than spawning).
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when a field is invalid (empty name or template, a
 *   template other than the spawning entity's, uid/gid outside 0–2^32-1, negative or fractional
 *   counts, unknown lifecycle, non-finite nowMs).
 */
export function addAgent(world: AgentWorld, spec: AgentSpec): number {
  const name = requireName(spec.name);
  const existing = world.agents.get(name);
  const spawning = existing !== undefined && world.components.Status.code[existing] === AGENT_STATUS_CODES.spawning;
  if (existing !== undefined && !spawning) throw new DuplicateAgentError(name, existing);
  const template = requireTemplateName(spec.template, name);
  if (existing !== undefined && world.components.Identity.template[existing] !== template) {
    throw new AgentSpecError('spec.template', template, name, `expected ${JSON.stringify(world.components.Identity.template[existing])}, the template it is being spawned from`);
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

  let eid: number;
  if (existing === undefined) {
    eid = addEntity(world);
    ensureCapacity(world, eid);
  } else {
    eid = existing;
    removeComponent(world, eid, world.Spawning);
  }
  addComponents(world, eid, agentComponentList(world));
  resetAgentFields(world, eid, name, template, nowMs);
  const { Identity, Capabilities, Load, Resources, Lifecycle } = world.components;
  Identity.uid[eid] = uid;
  Identity.gid[eid] = gid;
  Capabilities.list[eid] = Object.freeze([...new Set(spec.capabilities)].sort(compareCodeUnits));
  Load.wipLimit[eid] = wipLimit;
  Resources.memoryMaxBytes[eid] = memoryMaxBytes;
  Resources.pidsMax[eid] = pidsMax;
  Resources.cpuWeight[eid] = cpuWeight;
  Lifecycle.mode[eid] = mode;
  world.agents.set(name, eid);
  return eid;
}

/**
 * Removes the agent named `name` (started or spawning) and its entity. Returns false when there was
 * none. Its eid may be handed to the next `addAgent` at once; the name no longer resolves.
 */
export function removeAgent(world: AgentWorld, name: string): boolean {
  const eid = world.agents.get(name);
  if (eid === undefined) return false;
  world.agents.delete(name);
  removeEntity(world, eid);
  const { Identity, Capabilities, Stop } = world.components;
  Identity.name[eid] = undefined;
  Identity.template[eid] = undefined;
  Capabilities.list[eid] = undefined;
  Stop.detail[eid] = undefined;
  Stop.failTasks[eid] = undefined;
  return true;
}

/**
 * Removes agent `name` only while it is still `spawning` (its start failed before `addAgent`).
 * Returns whether it did: false when there is no such agent or it has started.
 */
export function removeSpawningAgent(world: AgentWorld, name: string): boolean {
  const eid = world.agents.get(name);
  if (eid === undefined || world.components.Status.code[eid] !== AGENT_STATUS_CODES.spawning) return false;
  return removeAgent(world, name);
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
 * Records measured usage of the agent's cgroup (the watchdog reads it on its next run). Returns
 * false when the agent is not in the world (measurements may race with its removal).
 *
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when a value is negative or not finite.
 */
export function recordUsage(world: AgentWorld, name: string, usage: AgentUsage): boolean {
  const memoryBytes = requireCount('usage.memoryBytes', usage.memoryBytes, name);
  const pids = requireCount('usage.pids', usage.pids, name);
  if (typeof usage.cpuMs !== 'number' || !Number.isFinite(usage.cpuMs) || usage.cpuMs < 0) {
    throw new AgentSpecError('usage.cpuMs', usage.cpuMs, name, 'expected a non-negative number of ms');
  }
  const pidsRefused = requireCount('usage.pidsRefused', usage.pidsRefused ?? 0, name);
  const oomKills = requireCount('usage.oomKills', usage.oomKills ?? 0, name);
  const eid = world.agents.get(name);
  if (eid === undefined) return false;
  const { Resources } = world.components;
  Resources.memoryBytes[eid] = memoryBytes;
  Resources.pids[eid] = pids;
  Resources.cpuMs[eid] = usage.cpuMs;
  Resources.pidsRefused[eid] = pidsRefused;
  Resources.oomKills[eid] = oomKills;
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

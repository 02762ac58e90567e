/**
 * @warren/ecs: the agent world. Every agent instance is a bitecs entity holding its whole live
 * state: `Identity`, `Capabilities`, `Status`, `Load`, `Resources` (limits and usage readings),
 * `Lifecycle` (activity, heartbeat, ready, took a task, worked), `Stop` (why it is stopping, the
 * detail, what its open tasks fail with, restart after exit) and `Watchdog` (the watchdog's memory
 * of its readings). An agent being spawned is an entity in status `spawning` before its process
 * exists, so instance counts per template are queries. Templates are entities too (`Template`,
 * `SpawnBackoff`). The durable key of an agent or template is its name (eids are recycled at once).
 *
 * Systems are pure functions over the world that return intents; the supervisor carries them out:
 * `livenessSystem`, `lifecycleSystem`, `watchdogSystem`, `warmPoolSystem`; spawn backoff is
 * `decideSpawnFailure`/`recordSpawnFailure` and `templateMayStart`. Time always comes from a
 * `nowMs` argument. `createTickLoop` runs the supervisor's tick. `agentSlots` is the planner's
 * input (`planAssignments` of `@warren/scheduler`, which this package does not import).
 *
 * ```ts
 * import { addAgent, addSpawningAgent, createAgentWorld, defineTemplate, markReady, recordAssigned, recordFinished, lifecycleSystem } from '@warren/ecs';
 *
 * const world = createAgentWorld();
 * defineTemplate(world, {
 *   name: 'shell', lifecycle: 'sleep', maxInstances: 2, warmPool: 0, sleepAfterIdleMs: 600_000,
 *   watchdog: { memoryBytes: 460 * 2 ** 20, pids: 115, cpuCores: null, graceMs: 5_000 },
 * });
 * addSpawningAgent(world, { name: 'shell-1', template: 'shell', nowMs: Date.now() }); // counts as an instance now
 * addAgent(world, {                                                                     // its sandbox is up
 *   name: 'shell-1', template: 'shell', uid: 61001, gid: 61001, capabilities: ['shell'], wipLimit: 1,
 *   lifecycle: 'sleep', resources: { memoryMaxBytes: 512 * 2 ** 20, pidsMax: 128, cpuWeight: 100 }, nowMs: Date.now(),
 * });
 * markReady(world, 'shell-1', Date.now());      // its runner said hello
 * recordAssigned(world, 'shell-1', Date.now()); // a task given
 * recordFinished(world, 'shell-1', Date.now()); // its result applied
 * for (const { agent, action } of lifecycleSystem(world, { nowMs: Date.now() + 600_000 })) console.log(agent, action); // shell-1 sleep
 * ```
 */
export { AgentStatus, LifecycleMode, StopReason, AGENT_STATUS_CODES } from './status.js';
export {
  createAgentWorld,
  addSpawningAgent,
  addAgent,
  removeAgent,
  removeSpawningAgent,
  agentEid,
  setStatus,
  setLoad,
  recordHeartbeat,
  recordUsage,
  recordRestart,
} from './world.js';
export type {
  AgentWorld,
  AgentWorldContext,
  AgentComponents,
  TemplateComponents,
  IdentityStore,
  CapabilitiesStore,
  StatusStore,
  LoadStore,
  ResourcesStore,
  LifecycleStore,
  StopStore,
  WatchdogStore,
  TemplateStore,
  SpawnBackoffStore,
  AgentSpec,
  AgentResourceLimits,
  AgentUsage,
} from './world.js';
export { markReady, markStopping, requestRestartAfterExit, recordAssigned, recordFinished, takeOomKill, isStopping, isReady } from './agent-state.js';
export type { StopDetails } from './agent-state.js';
export {
  agentView,
  listAgents,
  agentEntities,
  instanceEntities,
  agentSlots,
  agentSlotsUnchanged,
  instanceCounts,
  startingCounts,
  spawningAgents,
} from './views.js';
export type { AgentView, AgentSlot } from './views.js';
export {
  defineTemplate,
  templateView,
  listTemplates,
  recordSpawnFailure,
  clearSpawnBackoff,
  spawnBackoffOf,
  templateMayStart,
} from './templates.js';
export type { TemplateSpec, TemplateView, WatchdogThresholds } from './templates.js';
export { decideSpawnFailure, spawnAllowed, spawnGivenUp, MAX_SPAWN_FAILURES, MAX_SPAWN_BACKOFF_MS } from './spawn-backoff.js';
export type { SpawnBackoff, SpawnFailureDecision } from './spawn-backoff.js';
export { livenessSystem, lifecycleSystem, warmPoolSystem } from './systems.js';
export type { LivenessIntent, LifecycleIntent, WarmPoolIntent } from './systems.js';
export { watchdogSystem, observeLimits, observeGrace, initialWatchdogMemory, processLimitText, GRACE_IDLE } from './watchdog.js';
export type { WatchdogIntent, WatchdogMemory, GraceState, LimitFinding, LimitRules } from './watchdog.js';
export { createTickLoop } from './tick-loop.js';
export type { TickLoop, TickLoopOptions } from './tick-loop.js';
export { DuplicateAgentError, UnknownAgentError, UnknownTemplateError, AgentSpecError } from './errors.js';

/**
 * @warren/ecs: the agent world. Every live agent is a bitecs entity with the components
 * `Identity`, `Capabilities`, `Status`, `Load`, `Resources` and `Lifecycle`; the durable key is
 * the agent's name (eids are recycled at once). Systems are pure functions over the world that
 * return intents; the supervisor carries them out. `createTickLoop` runs the supervisor's tick.
 *
 * ```ts
 * import { addAgent, agentSlots, createAgentWorld, createTickLoop, livenessSystem, setStatus, AgentStatus } from '@warren/ecs';
 * import { planAssignments } from '@warren/scheduler';
 *
 * const world = createAgentWorld();
 * addAgent(world, {
 *   name: 'shell-1', template: 'shell', uid: 61001, gid: 61001, capabilities: ['shell'], wipLimit: 1,
 *   lifecycle: 'sleep', resources: { memoryMaxBytes: 512 * 2 ** 20, pidsMax: 128, cpuWeight: 100 }, nowMs: Date.now(),
 * });
 * setStatus(world, 'shell-1', AgentStatus.idle, Date.now());
 * const loop = createTickLoop({
 *   intervalMs: 1000,
 *   tick: (nowMs) => {
 *     const plan = planAssignments({ tasks: [], agents: agentSlots(world), templates: [], nowMs });
 *     for (const { agent, reason } of livenessSystem(world, { nowMs, heartbeatTimeoutMs: 30_000 })) console.log(agent, reason);
 *   },
 * });
 * await loop.stop();
 * ```
 */
export { AgentStatus, LifecycleMode, AGENT_STATUS_CODES } from './status.js';
export {
  createAgentWorld,
  addAgent,
  removeAgent,
  agentEid,
  setStatus,
  setLoad,
  recordHeartbeat,
  recordUsage,
  recordRestart,
  agentView,
  listAgents,
  agentSlots,
  agentEntities,
} from './world.js';
export type {
  AgentWorld,
  AgentWorldContext,
  AgentComponents,
  IdentityStore,
  CapabilitiesStore,
  StatusStore,
  LoadStore,
  ResourcesStore,
  LifecycleStore,
  AgentSpec,
  AgentResourceLimits,
  AgentUsage,
  AgentView,
} from './world.js';
export { livenessSystem, lifecycleSystem } from './systems.js';
export type { LivenessIntent, LifecycleIntent } from './systems.js';
export { createTickLoop } from './tick-loop.js';
export type { TickLoop, TickLoopOptions } from './tick-loop.js';
export { DuplicateAgentError, UnknownAgentError, AgentSpecError } from './errors.js';

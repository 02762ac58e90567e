import { AgentSpecError } from './errors.js';
import { AGENT_STATUS_CODES, stopReasonCode, type StopReason } from './status.js';
import { clearSpawnBackoff } from './templates.js';
import { requireTime } from './validate.js';
import { requireEid, type AgentWorld } from './world.js';

// What happens to a started agent, one function per event, so the world holds the whole live state
// of each agent and the supervisor keeps no copy of it.

/**
 * Records that the agent's runner said hello: it is `ready`, heard from at `nowMs`, and `idle`
 * (`busy` if it already holds tasks), unless it is being stopped, which it stays. A successful start
 * ends its template's spawn backoff (`clearSpawnBackoff`). Returns false, changing nothing, when
 * there is no such agent (a hello may race with the agent's exit).
 *
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `nowMs` is not finite.
 */
export function markReady(world: AgentWorld, name: string, nowMs: number): boolean {
  requireTime('nowMs', nowMs, name);
  const eid = world.agents.get(name);
  const { Identity, Status, Load, Lifecycle, Stop } = world.components;
  if (eid === undefined || Status.code[eid] === AGENT_STATUS_CODES.spawning) return false;
  Lifecycle.ready[eid] = 1;
  const beat = Lifecycle.lastHeartbeatMs[eid] ?? Number.NaN;
  if (Number.isNaN(beat) || nowMs > beat) Lifecycle.lastHeartbeatMs[eid] = nowMs;
  if ((Stop.reason[eid] ?? 0) === 0) {
    const code = (Load.active[eid] ?? 0) > 0 ? AGENT_STATUS_CODES.busy : AGENT_STATUS_CODES.idle;
    if (Status.code[eid] !== code) {
      Status.code[eid] = code;
      Status.sinceMs[eid] = nowMs;
    }
  }
  const template = Identity.template[eid];
  if (template !== undefined && world.templates.has(template)) clearSpawnBackoff(world, template);
  return true;
}

/** What `markStopping` may record besides the reason. */
export interface StopDetails {
  /** Why, in words, when the kind is not enough: `stopped by the watchdog: memory … for 3 s`. */
  detail?: string;
  /** The result its open tasks get instead of running again: `process limit reached (64)`. */
  failTasks?: string;
}

/**
 * Records that the supervisor is stopping the agent for `reason`: status `stopping` from `nowMs`,
 * the reason (replacing an earlier one, as an operator's restart replaces a sleep), and `detail`
 * and `failTasks` when given (an earlier value is kept otherwise). A stopping agent takes no task,
 * is not put away, watched or counted as starting or warm.
 *
 * @throws {UnknownAgentError} `WARREN_AGENT_UNKNOWN` when there is no such agent.
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `reason` is not a `StopReason` or `nowMs` is not finite.
 */
export function markStopping(world: AgentWorld, name: string, reason: StopReason, nowMs: number, details: StopDetails = {}): void {
  const eid = requireEid(world, name, 'markStopping');
  const code = stopReasonCode(reason);
  if (code === undefined) throw new AgentSpecError('reason', reason, name, 'expected sleep, delete, shutdown, operator, unresponsive or watchdog');
  requireTime('nowMs', nowMs, name);
  const { Status, Stop } = world.components;
  Stop.reason[eid] = code;
  if (details.detail !== undefined) Stop.detail[eid] = details.detail;
  if (details.failTasks !== undefined) Stop.failTasks[eid] = details.failTasks;
  if (Status.code[eid] !== AGENT_STATUS_CODES.stopping) {
    Status.code[eid] = AGENT_STATUS_CODES.stopping;
    Status.sinceMs[eid] = nowMs;
  }
}

/**
 * Asks for the agent to be started again once it has exited (an operator's restart); read back as
 * `restartAfterExit` of its view.
 *
 * @throws {UnknownAgentError} `WARREN_AGENT_UNKNOWN` when there is no such agent.
 */
export function requestRestartAfterExit(world: AgentWorld, name: string): void {
  world.components.Stop.restartAfterExit[requireEid(world, name, 'requestRestartAfterExit')] = 1;
}

/**
 * Records that the agent was given a task at `nowMs`: one more task held, status `busy` (unless it
 * is stopping), active then, and `tookTask` (an `autodelete` agent takes no second one).
 * @returns the tasks it holds now.
 *
 * @throws {UnknownAgentError} `WARREN_AGENT_UNKNOWN` when there is no such agent.
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `nowMs` is not finite.
 */
export function recordAssigned(world: AgentWorld, name: string, nowMs: number): number {
  const eid = requireEid(world, name, 'recordAssigned');
  requireTime('nowMs', nowMs, name);
  const { Status, Load, Lifecycle, Stop } = world.components;
  const load = (Load.active[eid] ?? 0) + 1;
  Load.active[eid] = load;
  Lifecycle.lastActiveMs[eid] = nowMs;
  Lifecycle.tookTask[eid] = 1;
  if ((Stop.reason[eid] ?? 0) === 0 && Status.code[eid] !== AGENT_STATUS_CODES.busy) {
    Status.code[eid] = AGENT_STATUS_CODES.busy;
    Status.sinceMs[eid] = nowMs;
  }
  return load;
}

/**
 * Records that one of the agent's tasks ended at `nowMs` (its result was applied): one task fewer
 * (never below 0), `idle` when none is left (unless it is stopping), one more finished task
 * (`tasksDone`, which makes an `autodelete` agent due for deletion), active and `workedMs` then.
 * @returns the tasks it holds now, or undefined when there is no such agent (a result may arrive
 *   after its agent is gone).
 *
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `nowMs` is not finite.
 */
export function recordFinished(world: AgentWorld, name: string, nowMs: number): number | undefined {
  requireTime('nowMs', nowMs, name);
  const eid = world.agents.get(name);
  const { Status, Load, Lifecycle, Stop } = world.components;
  if (eid === undefined || Status.code[eid] === AGENT_STATUS_CODES.spawning) return undefined;
  const load = Math.max(0, (Load.active[eid] ?? 0) - 1);
  Load.active[eid] = load;
  Lifecycle.tasksDone[eid] = (Lifecycle.tasksDone[eid] ?? 0) + 1;
  Lifecycle.lastActiveMs[eid] = nowMs;
  Lifecycle.workedMs[eid] = nowMs;
  if (load === 0 && (Stop.reason[eid] ?? 0) === 0 && Status.code[eid] !== AGENT_STATUS_CODES.idle) {
    Status.code[eid] = AGENT_STATUS_CODES.idle;
    Status.sinceMs[eid] = nowMs;
  }
  return load;
}

/**
 * Whether the OOM killer killed a process in the agent's memory cgroup since the previous call (or
 * since it started), given the cgroup's `oomKills` counter now. Ask it once per ended task, so an
 * OOM kill is blamed on the task it happened in. False when there is no such agent.
 */
export function takeOomKill(world: AgentWorld, name: string, oomKills: number): boolean {
  const eid = world.agents.get(name);
  if (eid === undefined || world.components.Status.code[eid] === AGENT_STATUS_CODES.spawning) return false;
  const seen = world.components.Watchdog.oomKillsSeen;
  const killed = oomKills > (seen[eid] ?? 0);
  seen[eid] = oomKills;
  return killed;
}

/** Whether agent `name` is being stopped (`markStopping`); false when there is no such agent. */
export function isStopping(world: AgentWorld, name: string): boolean {
  const eid = world.agents.get(name);
  return eid !== undefined && world.components.Status.code[eid] !== AGENT_STATUS_CODES.spawning && (world.components.Stop.reason[eid] ?? 0) !== 0;
}

/** Whether agent `name`'s runner has said hello (`markReady`); false when there is no such agent. */
export function isReady(world: AgentWorld, name: string): boolean {
  const eid = world.agents.get(name);
  return eid !== undefined && world.components.Status.code[eid] !== AGENT_STATUS_CODES.spawning && world.components.Lifecycle.ready[eid] === 1;
}

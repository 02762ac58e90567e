import { AgentSpecError } from './errors.js';
import { AGENT_STATUS_CODES, modeCode } from './status.js';
import { agentEntities, type AgentWorld } from './world.js';

/** An agent that stopped reporting: the supervisor should treat it as failed (stop, restart). */
export interface LivenessIntent {
  agent: string;
  /** Human-readable, e.g. `last heartbeat 45000 ms ago (timeout 30000 ms)`. */
  reason: string;
}

/** What to do with an idle agent: put it to sleep, or stop and delete it. */
export interface LifecycleIntent {
  agent: string;
  action: 'sleep' | 'delete';
}

const WATCHED = new Set<number>([AGENT_STATUS_CODES.starting, AGENT_STATUS_CODES.idle, AGENT_STATUS_CODES.busy]);

function requireMs(field: string, value: unknown, allowZero = true): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new AgentSpecError(field, value, undefined, 'expected a finite, non-negative number of ms');
  }
  return value;
}

/**
 * Finds agents that are `starting`, `idle` or `busy` but have not been heard from for longer than
 * `heartbeatTimeoutMs`. "Heard from" is the later of the last heartbeat and the moment the agent
 * entered its current status, so an agent that has just started is given a full timeout before its
 * first heartbeat. Pure: it reads the world and returns intents (sorted by agent name); the caller
 * acts on them.
 *
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `nowMs` or `heartbeatTimeoutMs` is not a finite,
 *   non-negative number.
 */
export function livenessSystem(world: AgentWorld, options: { nowMs: number; heartbeatTimeoutMs: number }): LivenessIntent[] {
  const nowMs = requireMs('options.nowMs', options.nowMs);
  const timeoutMs = requireMs('options.heartbeatTimeoutMs', options.heartbeatTimeoutMs);
  const { Identity, Status, Lifecycle } = world.components;
  const intents: LivenessIntent[] = [];
  for (const eid of agentEntities(world)) {
    const code = Status.code[eid] ?? 0;
    if (!WATCHED.has(code)) continue;
    const beat = Lifecycle.lastHeartbeatMs[eid] ?? Number.NaN;
    const since = Status.sinceMs[eid] ?? 0;
    const heardMs = Number.isNaN(beat) ? since : Math.max(beat, since);
    const silentMs = nowMs - heardMs;
    if (silentMs <= timeoutMs) continue;
    const status = Object.keys(AGENT_STATUS_CODES)[code];
    const reason = Number.isNaN(beat)
      ? `no heartbeat since it became ${status} ${silentMs} ms ago (timeout ${timeoutMs} ms)`
      : `last heartbeat ${nowMs - beat} ms ago, ${status} for ${nowMs - since} ms (timeout ${timeoutMs} ms)`;
    intents.push({ agent: Identity.name[eid] as string, reason });
  }
  return intents;
}

/**
 * Decides which idle agents to put away, by lifecycle mode:
 * - `sleep`: `idle`, load 0, and idle for longer than `sleepAfterIdleMs` (measured from the later of
 *   `lastActiveMs` and the moment it became idle) → `sleep`;
 * - `autodelete`: `idle`, load 0, and has finished at least one task → `delete`;
 * - `persistent`: never.
 * `sleepAfterIdleMs` is one value for all, or a function of the agent's template name. Pure: returns
 * intents sorted by agent name.
 *
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `nowMs` or a `sleepAfterIdleMs` value is not a
 *   finite, non-negative number.
 */
export function lifecycleSystem(
  world: AgentWorld,
  options: { nowMs: number; sleepAfterIdleMs: number | ((template: string) => number) },
): LifecycleIntent[] {
  const nowMs = requireMs('options.nowMs', options.nowMs);
  const { sleepAfterIdleMs } = options;
  if (typeof sleepAfterIdleMs !== 'function') requireMs('options.sleepAfterIdleMs', sleepAfterIdleMs);
  const { Identity, Status, Load, Lifecycle } = world.components;
  const sleepMode = modeCode('sleep');
  const autodeleteMode = modeCode('autodelete');
  const intents: LifecycleIntent[] = [];
  for (const eid of agentEntities(world)) {
    if (Status.code[eid] !== AGENT_STATUS_CODES.idle || (Load.active[eid] ?? 0) > 0) continue;
    const mode = Lifecycle.mode[eid];
    const agent = Identity.name[eid] as string;
    if (mode === sleepMode) {
      const afterMs =
        typeof sleepAfterIdleMs === 'function'
          ? requireMs(`options.sleepAfterIdleMs(${Identity.template[eid]})`, sleepAfterIdleMs(Identity.template[eid] as string))
          : sleepAfterIdleMs;
      const idleSinceMs = Math.max(Lifecycle.lastActiveMs[eid] ?? 0, Status.sinceMs[eid] ?? 0);
      if (nowMs - idleSinceMs > afterMs) intents.push({ agent, action: 'sleep' });
    } else if (mode === autodeleteMode && (Lifecycle.tasksDone[eid] ?? 0) > 0) {
      intents.push({ agent, action: 'delete' });
    }
  }
  return intents;
}

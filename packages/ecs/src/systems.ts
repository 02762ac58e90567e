import { UnknownTemplateError } from './errors.js';
import { AGENT_STATUS_CODES, modeCode, statusOf } from './status.js';
import { spawnAllowed } from './spawn-backoff.js';
import { spawnBackoffOf } from './templates.js';
import { requireMs } from './validate.js';
import { agentEntities, instanceCounts, startingCounts } from './views.js';
import type { AgentWorld } from './world.js';

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

/** Agents to start for a template's warm pool. */
export interface WarmPoolIntent {
  template: string;
  /** How many to start, side by side (at least 1). */
  starts: number;
}

const WATCHED = new Set<number>([AGENT_STATUS_CODES.starting, AGENT_STATUS_CODES.idle, AGENT_STATUS_CODES.busy]);
const PUT_AWAY = new Set<number>([AGENT_STATUS_CODES.starting, AGENT_STATUS_CODES.idle]);

/**
 * Finds agents that are `starting`, `idle` or `busy` but have not been heard from for longer than
 * `heartbeatTimeoutMs` (`idleHeartbeatTimeoutMs` for an `idle` one, default `heartbeatTimeoutMs`:
 * its runner beats less often). "Heard from" is the later of the last heartbeat and the moment the
 * agent entered its current status, so an agent that has just started, or just been given a task,
 * is given a full timeout of that status before its next heartbeat. Pure: it reads the world and
 * returns intents (sorted by agent name); the caller acts on them.
 *
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `nowMs` or a timeout is not a finite,
 *   non-negative number.
 */
export function livenessSystem(world: AgentWorld, options: { nowMs: number; heartbeatTimeoutMs: number; idleHeartbeatTimeoutMs?: number }): LivenessIntent[] {
  const nowMs = requireMs('options.nowMs', options.nowMs);
  const busyTimeoutMs = requireMs('options.heartbeatTimeoutMs', options.heartbeatTimeoutMs);
  const idleTimeoutMs = options.idleHeartbeatTimeoutMs === undefined ? busyTimeoutMs : requireMs('options.idleHeartbeatTimeoutMs', options.idleHeartbeatTimeoutMs);
  const { Identity, Status, Lifecycle } = world.components;
  const intents: LivenessIntent[] = [];
  // An indexed loop: a for-of over the (frozen) array allocates an iterator result per agent.
  const eids = agentEntities(world);
  for (let i = 0; i < eids.length; i++) {
    const eid = eids[i]!;
    const code = Status.code[eid] ?? 0;
    if (!WATCHED.has(code)) continue;
    const beat = Lifecycle.lastHeartbeatMs[eid] ?? Number.NaN;
    const since = Status.sinceMs[eid] ?? 0;
    const heardMs = Number.isNaN(beat) ? since : Math.max(beat, since);
    const silentMs = nowMs - heardMs;
    const timeoutMs = code === AGENT_STATUS_CODES.idle ? idleTimeoutMs : busyTimeoutMs;
    if (silentMs <= timeoutMs) continue;
    const status = statusOf(code);
    const reason = Number.isNaN(beat)
      ? `no heartbeat since it became ${status} ${silentMs} ms ago (timeout ${timeoutMs} ms)`
      : `last heartbeat ${nowMs - beat} ms ago, ${status} for ${nowMs - since} ms (timeout ${timeoutMs} ms)`;
    intents.push({ agent: Identity.name[eid] as string, reason });
  }
  return intents;
}

/**
 * Decides which started agents to put away, by lifecycle mode. Candidates are agents that are
 * `starting` or `idle`, not being stopped, hold no task (load 0) and have no open execution (not in
 * `busyAgents`: an execution can be open before its agent's load shows it, or after);
 * - `sleep`: idle for `sleepAfterIdleMs` or longer since it was last active (`lastActiveMs`: its
 *   start, its last task given or finished) → `sleep`;
 * - `autodelete`: has finished a task since it started (`tasksDone` > 0) → `delete`;
 * - `persistent`: never.
 * `sleepAfterIdleMs` is one value for all, a function of the template name, or, when absent, the
 * agent's template entity's (`defineTemplate`). Pure: returns intents sorted by agent name.
 *
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `nowMs` or a `sleepAfterIdleMs` value is not a
 *   finite, non-negative number.
 * @throws {UnknownTemplateError} `WARREN_TEMPLATE_UNKNOWN` when `sleepAfterIdleMs` is absent and a
 *   `sleep` agent's template is not defined.
 */
export function lifecycleSystem(
  world: AgentWorld,
  options: { nowMs: number; busyAgents?: ReadonlySet<string>; sleepAfterIdleMs?: number | ((template: string) => number) },
): LifecycleIntent[] {
  const nowMs = requireMs('options.nowMs', options.nowMs);
  const { sleepAfterIdleMs, busyAgents } = options;
  if (typeof sleepAfterIdleMs === 'number' || (sleepAfterIdleMs !== undefined && typeof sleepAfterIdleMs !== 'function')) {
    requireMs('options.sleepAfterIdleMs', sleepAfterIdleMs);
  }
  const afterMsOf = (template: string): number => {
    if (typeof sleepAfterIdleMs === 'number') return sleepAfterIdleMs;
    if (typeof sleepAfterIdleMs === 'function') return requireMs(`options.sleepAfterIdleMs(${template})`, sleepAfterIdleMs(template));
    const eid = world.templates.get(template);
    if (eid === undefined) throw new UnknownTemplateError(template, 'lifecycleSystem');
    return world.templateComponents.Template.sleepAfterIdleMs[eid] ?? 0;
  };
  const { Identity, Status, Load, Lifecycle, Stop } = world.components;
  const sleepMode = modeCode('sleep');
  const autodeleteMode = modeCode('autodelete');
  const intents: LifecycleIntent[] = [];
  // An indexed loop: a for-of over the (frozen) array allocates an iterator result per agent.
  const eids = agentEntities(world);
  for (let i = 0; i < eids.length; i++) {
    const eid = eids[i]!;
    if (!PUT_AWAY.has(Status.code[eid] ?? 0) || (Stop.reason[eid] ?? 0) !== 0 || (Load.active[eid] ?? 0) > 0) continue;
    const agent = Identity.name[eid] as string;
    if (busyAgents?.has(agent)) continue;
    const mode = Lifecycle.mode[eid];
    if (mode === sleepMode) {
      if (nowMs - (Lifecycle.lastActiveMs[eid] ?? 0) >= afterMsOf(Identity.template[eid] as string)) intents.push({ agent, action: 'sleep' });
    } else if (mode === autodeleteMode && (Lifecycle.tasksDone[eid] ?? 0) > 0) {
      intents.push({ agent, action: 'delete' });
    }
  }
  return intents;
}

/**
 * Tops up each template's warm pool: agents that are starting (`startingCounts`), or ready, not
 * stopping and holding no task (an `autodelete` one only until it has taken its task) count as
 * warm; while a template with `warmPool` > 0 has fewer warm agents than that and fewer instances
 * than `maxInstances`, and its spawn backoff allows a start at `nowMs`, one more is asked for.
 * Pure: returns one intent per template that needs agents, in template definition order. (The
 * supervisor does not call it in a run until idle once no task waits.)
 *
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `nowMs` is not a finite, non-negative number.
 */
export function warmPoolSystem(world: AgentWorld, options: { nowMs: number }): WarmPoolIntent[] {
  const nowMs = requireMs('options.nowMs', options.nowMs);
  const warm = startingCounts(world);
  const instances = instanceCounts(world);
  const { Identity, Load, Lifecycle, Stop } = world.components;
  const autodelete = modeCode('autodelete');
  // An indexed loop: a for-of over the (frozen) array allocates an iterator result per agent.
  const eids = agentEntities(world);
  for (let i = 0; i < eids.length; i++) {
    const eid = eids[i]!;
    const idle = Lifecycle.ready[eid] === 1 && (Stop.reason[eid] ?? 0) === 0 && (Load.active[eid] ?? 0) === 0;
    const spent = Lifecycle.mode[eid] === autodelete && Lifecycle.tookTask[eid] === 1;
    const template = Identity.template[eid] as string;
    if (idle && !spent) warm.set(template, (warm.get(template) ?? 0) + 1);
  }
  const { Template } = world.templateComponents;
  const intents: WarmPoolIntent[] = [];
  for (const [template, eid] of world.templates) {
    const pool = Template.warmPool[eid] ?? 0;
    if (pool === 0 || !spawnAllowed(spawnBackoffOf(world, template), nowMs)) continue;
    const starts = Math.min(pool - (warm.get(template) ?? 0), (Template.maxInstances[eid] ?? 0) - (instances.get(template) ?? 0));
    if (starts > 0) intents.push({ template, starts });
  }
  return intents;
}

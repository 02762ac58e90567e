import { UnknownTemplateError } from './errors.js';
import { thresholdsOf, type WatchdogThresholds } from './templates.js';
import { requireTime } from './validate.js';
import { agentEntities } from './views.js';
import type { AgentUsage, AgentWorld } from './world.js';

/**
 * A grace timer's state: since when a condition has held (`sinceMs`, null when it does not) and the
 * last reading where it held (`lastTrueMs`), ms since the epoch.
 */
export interface GraceState {
  readonly sinceMs: number | null;
  readonly lastTrueMs: number;
}

/** A grace timer that has never held. */
export const GRACE_IDLE: GraceState = Object.freeze({ sinceMs: null, lastTrueMs: 0 });

/**
 * One reading of a condition with a grace that a single good reading does not restart: once it
 * holds, it counts as holding since then until it has stayed false for a whole `graceMs`. A value
 * oscillating around a threshold (a fork bomb at its pids limit, memory near its limit) is still
 * caught. Pure.
 * @returns the next state, and how long (ms) the condition has held, short gaps included, when it
 *   holds now (else undefined).
 */
export function observeGrace(state: GraceState, holds: boolean, nowMs: number, graceMs: number): { state: GraceState; heldMs: number | undefined } {
  if (holds) {
    const sinceMs = state.sinceMs ?? nowMs;
    return { state: { sinceMs, lastTrueMs: nowMs }, heldMs: nowMs - sinceMs };
  }
  if (state.sinceMs !== null && nowMs - state.lastTrueMs >= graceMs) return { state: { sinceMs: null, lastTrueMs: state.lastTrueMs }, heldMs: undefined };
  return { state, heldMs: undefined };
}

/**
 * The watchdog's memory of one agent between readings: CPU time and time of the last reading, the
 * refused forks already seen, and the grace timers over a threshold and at the process limit.
 */
export interface WatchdogMemory {
  readonly cpuMs: number;
  readonly atMs: number;
  readonly pidsRefused: number;
  readonly over: GraceState;
  readonly atLimit: GraceState;
}

/** The memory of an agent started at `startedMs` (ms since the epoch), before its first reading. */
export function initialWatchdogMemory(startedMs: number): WatchdogMemory {
  return { cpuMs: 0, atMs: startedMs, pidsRefused: 0, over: GRACE_IDLE, atLimit: GRACE_IDLE };
}

/** What the watchdog reads of a template: its thresholds and the process limit (`pids.max`). */
export interface LimitRules {
  readonly watchdog: WatchdogThresholds;
  readonly resources: { readonly pidsMax: number };
}

/** Why the watchdog stops an agent: `pids` (sitting at its process limit) or `watchdog` (over a threshold). */
export interface LimitFinding {
  readonly reason: 'pids' | 'watchdog';
  /** What was found and for how long, e.g. `forks refused at the process limit (64) for 3 s`. */
  readonly detail: string;
  /**
   * For `pids`: the result its running tasks get instead of being run again (`process limit
   * reached (64)`): a task that fork-bombs fails, it is not retried elsewhere.
   */
  readonly taskFailure: string | undefined;
}

/**
 * The text an agent's card and the CLI show for a process stopped at its process limit (`pids.max`,
 * processes and threads): `process limit reached (512)`. The same words as `describeProcessLimit`
 * of `@warren/sandbox`.
 */
export function processLimitText(pidsMax: number): string {
  return `process limit reached (${pidsMax})`;
}

/**
 * Decides from one reading of an agent's cgroups whether to stop it (the watchdog's rule):
 * - `pids` when it has sat at its process limit for `rules.watchdog.graceMs` (readings where its
 *   pids cgroup refused a fork, `pidsRefused` having grown, or where `pids` was at
 *   `rules.watchdog.pids` or more; gaps shorter than the grace do not restart it): a fork bomb
 *   whose parent stays alive holds the limit until it is stopped;
 * - `watchdog` when memory, processes or CPU (cores used on average since the previous reading)
 *   stayed over the thresholds for the grace (a single reading under does not restart it); `pids`
 *   when it was the process count.
 * Pure: time is `nowMs`, the reading's time in ms since the epoch.
 * @returns the next memory, and the finding or undefined to let the agent run.
 */
export function observeLimits(
  memory: WatchdogMemory,
  usage: AgentUsage,
  nowMs: number,
  rules: LimitRules,
): { memory: WatchdogMemory; finding: LimitFinding | undefined } {
  const limits = rules.watchdog;
  const pidsRefused = usage.pidsRefused ?? 0;
  const elapsedMs = Math.max(1, nowMs - memory.atMs);
  const cores = (usage.cpuMs - memory.cpuMs) / elapsedMs;
  // At the limit: a fork was refused since the last reading, or the count is at the threshold
  // (a bomb at the limit also loses processes between forks, and RLIMIT_NPROC may refuse first).
  const atLimitNow = pidsRefused > memory.pidsRefused || usage.pids >= limits.pids;
  const atLimit = observeGrace(memory.atLimit, atLimitNow, nowMs, limits.graceMs);
  const base = { cpuMs: usage.cpuMs, atMs: nowMs, pidsRefused, atLimit: atLimit.state };
  if (atLimit.heldMs !== undefined && atLimit.heldMs >= limits.graceMs) {
    const limit = rules.resources.pidsMax;
    return {
      memory: { ...base, over: memory.over },
      finding: {
        reason: 'pids',
        detail: `at the process limit (${limit}) for ${Math.round(atLimit.heldMs / 1000)} s (${usage.pids} tasks, ${pidsRefused} forks refused)`,
        taskFailure: processLimitText(limit),
      },
    };
  }
  const overText =
    usage.memoryBytes > limits.memoryBytes
      ? `memory ${usage.memoryBytes} bytes over ${limits.memoryBytes}`
      : usage.pids > limits.pids
        ? `${usage.pids} processes over ${limits.pids}`
        : limits.cpuCores !== null && cores > limits.cpuCores
          ? `CPU ${cores.toFixed(2)} cores over ${limits.cpuCores}`
          : undefined;
  const over = observeGrace(memory.over, overText !== undefined, nowMs, limits.graceMs);
  const next = { ...base, over: over.state };
  if (overText === undefined || over.heldMs === undefined || over.heldMs < limits.graceMs) return { memory: next, finding: undefined };
  const detail = `${overText} for ${Math.round(over.heldMs / 1000)} s`;
  // Near the process limit is the same finding as at it, whichever timer ends first.
  if (usage.memoryBytes <= limits.memoryBytes && usage.pids > limits.pids) {
    return { memory: next, finding: { reason: 'pids', detail, taskFailure: processLimitText(rules.resources.pidsMax) } };
  }
  return { memory: next, finding: { reason: 'watchdog', detail, taskFailure: undefined } };
}

/** An agent the watchdog stops: its finding and the reading it was found in. */
export interface WatchdogIntent extends LimitFinding {
  readonly agent: string;
  /** The reading, as recorded by `recordUsage`. */
  readonly usage: Required<AgentUsage>;
}

function nanToNull(value: number | undefined): number | null {
  return value === undefined || Number.isNaN(value) ? null : value;
}

/**
 * The watchdog over the world: for every started agent that is not stopping, takes the usage last
 * recorded (`recordUsage`) as one reading at `nowMs`, applies `observeLimits` with its template's
 * thresholds (the template entity, `defineTemplate`) and its own `pidsMax`, keeps the watchdog's
 * memory in the agent's `Watchdog` component, and returns a stop intent per finding, sorted by
 * agent name. Call it once per round of readings; with `options.agents`, only for those agents (the
 * ones whose usage was just read: a reading taken earlier would count twice). The caller stops each agent (`markStopping` with
 * reason `watchdog`, detail and `failTasks` from the intent), audits and kills it.
 *
 * @throws {UnknownTemplateError} `WARREN_TEMPLATE_UNKNOWN` when an agent's template is not defined.
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `nowMs` is not finite.
 */
export function watchdogSystem(world: AgentWorld, options: { nowMs: number; agents?: readonly string[] }): WatchdogIntent[] {
  const nowMs = requireTime('options.nowMs', options.nowMs, undefined);
  const { Identity, Resources, Stop, Watchdog } = world.components;
  const intents: WatchdogIntent[] = [];
  const only = options.agents === undefined ? undefined : new Set(options.agents);
  // An indexed loop: a for-of over the (frozen) array allocates an iterator result per agent.
  const eids = agentEntities(world);
  for (let i = 0; i < eids.length; i++) {
    const eid = eids[i]!;
    if (only !== undefined && !only.has(Identity.name[eid] as string)) continue;
    if ((Stop.reason[eid] ?? 0) !== 0) continue;
    const agent = Identity.name[eid] as string;
    const template = Identity.template[eid] as string;
    const templateEid = world.templates.get(template);
    if (templateEid === undefined) throw new UnknownTemplateError(template, `watchdogSystem (agent ${JSON.stringify(agent)})`);
    const usage: Required<AgentUsage> = {
      memoryBytes: Resources.memoryBytes[eid] ?? 0,
      pids: Resources.pids[eid] ?? 0,
      cpuMs: Resources.cpuMs[eid] ?? 0,
      pidsRefused: Resources.pidsRefused[eid] ?? 0,
      oomKills: Resources.oomKills[eid] ?? 0,
    };
    const memory: WatchdogMemory = {
      cpuMs: Watchdog.lastCpuMs[eid] ?? 0,
      atMs: Watchdog.lastReadingMs[eid] ?? 0,
      pidsRefused: Watchdog.pidsRefusedSeen[eid] ?? 0,
      over: { sinceMs: nanToNull(Watchdog.overSinceMs[eid]), lastTrueMs: Watchdog.overLastMs[eid] ?? 0 },
      atLimit: { sinceMs: nanToNull(Watchdog.atLimitSinceMs[eid]), lastTrueMs: Watchdog.atLimitLastMs[eid] ?? 0 },
    };
    const rules: LimitRules = { watchdog: thresholdsOf(world, templateEid), resources: { pidsMax: Resources.pidsMax[eid] ?? 0 } };
    const { memory: next, finding } = observeLimits(memory, usage, nowMs, rules);
    Watchdog.lastCpuMs[eid] = next.cpuMs;
    Watchdog.lastReadingMs[eid] = next.atMs;
    Watchdog.pidsRefusedSeen[eid] = next.pidsRefused;
    Watchdog.overSinceMs[eid] = next.over.sinceMs ?? Number.NaN;
    Watchdog.overLastMs[eid] = next.over.lastTrueMs;
    Watchdog.atLimitSinceMs[eid] = next.atLimit.sinceMs ?? Number.NaN;
    Watchdog.atLimitLastMs[eid] = next.atLimit.lastTrueMs;
    if (finding) intents.push({ agent, ...finding, usage });
  }
  return intents;
}

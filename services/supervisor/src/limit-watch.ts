import { describeExit, describeOutOfMemory, describeProcessLimit, type AgentExit, type AgentUsage } from '@warren/runtime';
import type { AgentTemplate } from './templates.js';

/**
 * How long a condition has held, with a grace that a single good reading does not restart: once
 * the condition holds, it counts as holding since then until it has stayed false for a whole grace
 * window. A value oscillating around a threshold (a fork bomb at its pids limit, memory near its
 * limit) is still caught.
 */
export class GraceTimer {
  private sinceMs: number | undefined;
  private lastTrueMs = 0;

  /**
   * Records one reading taken at `nowMs` (ms since the epoch).
   * @returns how long (ms) the condition has held, counting short gaps, when it holds now; else undefined.
   */
  observe(holds: boolean, nowMs: number, graceMs: number): number | undefined {
    if (holds) {
      this.sinceMs ??= nowMs;
      this.lastTrueMs = nowMs;
      return nowMs - this.sinceMs;
    }
    if (this.sinceMs !== undefined && nowMs - this.lastTrueMs >= graceMs) this.sinceMs = undefined;
    return undefined;
  }
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
 * The watchdog's memory of one agent between ticks: its last CPU time, the forks its pids cgroup
 * had refused, and how long it has been over a threshold or refused forks.
 */
export class AgentLimitWatch {
  private cpuMs = 0;
  private atMs: number;
  private pidsRefused = 0;
  private oomKillsSeen = 0;
  private readonly over = new GraceTimer();
  private readonly atLimit = new GraceTimer();

  /** `startedMs`: when the agent started (ms since the epoch). */
  constructor(startedMs: number) {
    this.atMs = startedMs;
  }

  /**
   * Takes one reading of the agent's cgroups and decides whether to stop it:
   * - `pids` when it has sat at its process limit for `template.watchdog.graceMs` (readings where
   *   its pids cgroup refused a fork, the `max` count of `pids.events` having grown, or where
   *   `pids.current` was at `template.watchdog.pids` or more; gaps shorter than the grace do not
   *   restart it): a fork bomb whose parent stays alive holds the limit until it is stopped;
   * - `watchdog` when memory, processes or CPU stayed over the template's thresholds for the grace
   *   (a single reading under does not restart it); `pids` when it was the process count.
   * @returns the finding, or undefined to let it run.
   */
  observe(usage: AgentUsage, nowMs: number, template: AgentTemplate): LimitFinding | undefined {
    const limits = template.watchdog;
    const elapsedMs = Math.max(1, nowMs - this.atMs);
    const cores = (usage.cpuMs - this.cpuMs) / elapsedMs;
    this.cpuMs = usage.cpuMs;
    this.atMs = nowMs;
    // At the limit: a fork was refused since the last reading, or the count is at the threshold
    // (a bomb at the limit also loses processes between forks, and RLIMIT_NPROC may refuse first).
    const atLimit = usage.pidsRefused > this.pidsRefused || usage.pids >= limits.pids;
    this.pidsRefused = usage.pidsRefused;
    const atLimitMs = this.atLimit.observe(atLimit, nowMs, limits.graceMs);
    if (atLimitMs !== undefined && atLimitMs >= limits.graceMs) {
      const limit = template.resources.pidsMax;
      return {
        reason: 'pids',
        detail: `at the process limit (${limit}) for ${Math.round(atLimitMs / 1000)} s (${usage.pids} tasks, ${usage.pidsRefused} forks refused)`,
        taskFailure: describeProcessLimit(limit),
      };
    }
    const over =
      usage.memoryBytes > limits.memoryBytes
        ? `memory ${usage.memoryBytes} bytes over ${limits.memoryBytes}`
        : usage.pids > limits.pids
          ? `${usage.pids} processes over ${limits.pids}`
          : limits.cpuCores !== null && cores > limits.cpuCores
            ? `CPU ${cores.toFixed(2)} cores over ${limits.cpuCores}`
            : undefined;
    const overMs = this.over.observe(over !== undefined, nowMs, limits.graceMs);
    if (over === undefined || overMs === undefined || overMs < limits.graceMs) return undefined;
    const detail = `${over} for ${Math.round(overMs / 1000)} s`;
    // Near the process limit is the same finding as at it, whichever timer ends first.
    if (usage.memoryBytes <= limits.memoryBytes && usage.pids > limits.pids) {
      return { reason: 'pids', detail, taskFailure: describeProcessLimit(template.resources.pidsMax) };
    }
    return { reason: 'watchdog', detail, taskFailure: undefined };
  }

  /**
   * Whether the OOM killer killed a process in the agent's memory cgroup since the last call (or
   * since the agent started): asked when one of its tasks ends without success.
   */
  newOomKill(usage: AgentUsage): boolean {
    const killed = usage.oomKills > this.oomKillsSeen;
    this.oomKillsSeen = usage.oomKills;
    return killed;
  }
}

/**
 * One line for an ended agent's sandbox on cards and in the audit: {@link describeExit}, except
 * that an OOM kill names the template's memory limit (`out of memory (limit 1 GiB)`) and a refused
 * fork its process limit.
 */
export function describeAgentExit(exit: AgentExit, template: AgentTemplate): string {
  if (exit.kind === 'oom') return describeOutOfMemory(template.resources.memoryMaxBytes);
  if (exit.kind === 'pids') return describeProcessLimit(template.resources.pidsMax);
  return describeExit(exit);
}

/**
 * What the open tasks of an agent whose sandbox ended at a limit fail with, instead of running
 * again: `out of memory (limit 1 GiB)` after an OOM kill, `process limit reached (512)` after a
 * refused fork (a task that brought its runner down that way would do it again).
 * @returns the text, or undefined for any other end.
 */
export function limitFailureOf(exit: AgentExit, template: AgentTemplate): string | undefined {
  return exit.kind === 'oom' || exit.kind === 'pids' ? describeAgentExit(exit, template) : undefined;
}

/** What {@link taskFailureOf} reads of a live agent. */
export interface WatchedAgent {
  readonly failTasks?: string;
  readonly watch: AgentLimitWatch;
  /** The agent's instance (what reads its usage). */
  readonly instance: { usage(): AgentUsage } | undefined;
  readonly template: AgentTemplate;
}

/**
 * What a task that just ended on `agent` with `outcome` failed of, when its limits explain it
 * better than the task's own output: the agent's `failTasks` (it was stopped at its process
 * limit), or, for outcome `failed`, an OOM kill in its memory cgroup since the previous result
 * (`out of memory (limit 1 GiB)`). Call it for every result, so that an OOM kill is blamed on the
 * task it happened in.
 * @param settled true when the outcome stands whatever happened (succeeded, or cancelled by an
 *   operator): then nothing is blamed.
 * @returns the text, or undefined.
 */
export function taskFailureOf(agent: WatchedAgent | undefined, outcome: string, settled: boolean): string | undefined {
  if (!agent) return undefined;
  const oomKilled = agent.instance !== undefined && agent.watch.newOomKill(agent.instance.usage());
  if (settled) return undefined;
  if (agent.failTasks) return agent.failTasks;
  return oomKilled && outcome === 'failed' ? describeOutOfMemory(agent.template.resources.memoryMaxBytes) : undefined;
}

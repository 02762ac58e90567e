import { describeExit, describeOutOfMemory, describeProcessLimit, type AgentExit, type AgentUsage } from '@warren/runtime';
import { GRACE_IDLE, initialWatchdogMemory, observeGrace, observeLimits, type GraceState, type LimitFinding, type WatchdogMemory } from '@warren/ecs';
import type { AgentTemplate } from './templates.js';

/**
 * How long a condition has held, with a grace that a single good reading does not restart: once
 * the condition holds, it counts as holding since then until it has stayed false for a whole grace
 * window. A value oscillating around a threshold (a fork bomb at its pids limit, memory near its
 * limit) is still caught. The rule is `observeGrace` of `@warren/ecs`; this keeps its state.
 */
export class GraceTimer {
  private state: GraceState = GRACE_IDLE;

  /**
   * Records one reading taken at `nowMs` (ms since the epoch).
   * @returns how long (ms) the condition has held, counting short gaps, when it holds now; else undefined.
   */
  observe(holds: boolean, nowMs: number, graceMs: number): number | undefined {
    const { state, heldMs } = observeGrace(this.state, holds, nowMs, graceMs);
    this.state = state;
    return heldMs;
  }
}

export type { LimitFinding };

/**
 * The watchdog's memory of one agent between ticks: its last CPU time, the forks its pids cgroup
 * had refused, and how long it has been over a threshold or refused forks. The decision is
 * `observeLimits` of `@warren/ecs` (where the world keeps this memory per agent for
 * `watchdogSystem`); this keeps the memory of one agent outside a world.
 */
export class AgentLimitWatch {
  private memory: WatchdogMemory;
  private oomKillsSeen = 0;

  /** `startedMs`: when the agent started (ms since the epoch). */
  constructor(startedMs: number) {
    this.memory = initialWatchdogMemory(startedMs);
  }

  /**
   * Takes one reading of the agent's cgroups and decides whether to stop it (see `observeLimits`):
   * `pids` when it has sat at its process limit for `template.watchdog.graceMs`, `watchdog` when
   * memory, processes or CPU stayed over the template's thresholds for the grace (`pids` when it
   * was the process count).
   * @returns the finding, or undefined to let it run.
   */
  observe(usage: AgentUsage, nowMs: number, template: AgentTemplate): LimitFinding | undefined {
    const { memory, finding } = observeLimits(this.memory, usage, nowMs, template);
    this.memory = memory;
    return finding;
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
  /** The result its open tasks get because of how it was stopped (its process limit), if any. */
  readonly failTasks: string | undefined;
  /** Whether the OOM killer killed a process in its memory cgroup since its previous result (`takeOomKill` of `@warren/ecs`). */
  readonly oomKilled: boolean;
  readonly template: AgentTemplate;
}

/**
 * What a task that just ended on `agent` with `outcome` failed of, when its limits explain it
 * better than the task's own output: the agent's `failTasks` (it was stopped at its process
 * limit), or, for outcome `failed`, an OOM kill in its memory cgroup since the previous result
 * (`out of memory (limit 1 GiB)`).
 * @param settled true when the outcome stands whatever happened (succeeded, or cancelled by an
 *   operator): then nothing is blamed.
 * @returns the text, or undefined.
 */
export function taskFailureOf(agent: WatchedAgent | undefined, outcome: string, settled: boolean): string | undefined {
  if (!agent || settled) return undefined;
  if (agent.failTasks) return agent.failTasks;
  return agent.oomKilled && outcome === 'failed' ? describeOutOfMemory(agent.template.resources.memoryMaxBytes) : undefined;
}

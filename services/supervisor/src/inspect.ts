/**
 * What a running supervisor holds in memory, for an operator asking why nothing moves (`kill
 * -USR2 <pid>` logs it): its agents, the spawns and back-offs that gate new agents, and where the
 * current tick is.
 */

/** Where the tick loop is: the running tick's start and the step it awaits. */
export interface TickProgress {
  /** When the running tick started, ms since the epoch; undefined between ticks. */
  startedMs: number | undefined;
  /** The step the running tick awaits (`idle` between ticks). */
  step: string;
}

/** One live agent as the supervisor holds it. */
export interface InspectedAgent {
  readonly name: string;
  /** Whether its runner said hello (and its consumers started). */
  readonly ready: boolean;
  /** Why the supervisor is stopping it, or null. */
  readonly stopping: string | null;
  /** Tasks it holds. */
  readonly load: number;
  /** Whether its runner is connected to the gateway. */
  readonly connected: boolean;
  readonly sandboxPid: number | null;
}

/** The supervisor's in-memory state (see `Supervisor.inspect`). */
export interface SupervisorInspection {
  readonly state: string;
  /** The running tick: for how long (ms; null between ticks) and the step it awaits. */
  readonly tick: { readonly runningForMs: number | null; readonly step: string };
  readonly agents: readonly InspectedAgent[];
  /** Agents being started (account, gateway, sandbox not yet up). */
  readonly spawning: readonly string[];
  /** Per template: consecutive failed starts, the last reason, and when the next start may be (ms since the epoch). */
  readonly spawnFailures: Readonly<Record<string, { count: number; reason: string; nextAtMs: number }>>;
  /** Events (results, acks, hellos, exits) waiting for the next tick. */
  readonly queuedEvents: number;
  readonly boardDirty: boolean;
  readonly boardFlushRunning: boolean;
  /** Ready tasks the last plan left waiting. */
  readonly readyWaiting: number;
  readonly planWasPartial: boolean;
  /** Sizes of the last full plan. */
  readonly lastPlan: { readonly assignments: number; readonly spawns: number; readonly unplaced: number } | null;
}

/**
 * Runs one tick, recording its start in `progress` and clearing it when the tick settles (either
 * way). @returns the tick's promise.
 */
export async function trackTick(progress: TickProgress, nowMs: number, tick: () => Promise<void>): Promise<void> {
  progress.startedMs = nowMs;
  progress.step = 'tick';
  try {
    await tick();
  } finally {
    progress.startedMs = undefined;
    progress.step = 'idle';
  }
}

/**
 * Awaits `work`, naming it as the tick's current step in `progress` meanwhile.
 * @returns what `work` resolves to (and rejects as it does).
 */
export async function step<T>(progress: TickProgress, name: string, work: Promise<T>): Promise<T> {
  const previous = progress.step;
  progress.step = name;
  try {
    return await work;
  } finally {
    progress.step = previous;
  }
}

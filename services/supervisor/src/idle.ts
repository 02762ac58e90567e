import type { Broker } from '@warren/broker';
import type { Logger } from '@warren/core';
import type { Plan } from '@warren/scheduler';

/** How long an idle run until idle waits for unacknowledged results (the consumers' 30 s ack wait and a margin), in ms. */
export const RESULTS_SETTLE_MS = 40_000;

/** What the idle check reads of the supervisor at the end of a tick; see {@link isIdle}. */
export interface IdleFacts {
  /** Whether a board was ever read. */
  readonly boardLoaded: boolean;
  /** Whether board files changed since the last read, or a board write runs. */
  readonly boardBusy: boolean;
  /** Events (results, acks, hellos, exits) not yet applied. */
  readonly queuedEvents: number;
  /** Agents being started. */
  readonly spawning: number;
  /** The tick's plan (what it would assign and start). */
  readonly plan: Pick<Plan, 'assignments' | 'spawns'>;
  /** Executions not yet finished. */
  readonly openExecutions: number;
  /** Whether a template backs off after failed starts and waits to try again (see {@link templateBackingOff}). */
  readonly templateBackingOff: boolean;
  /** Whether a task in the ready column waits out a retry backoff that is still in the future. */
  readonly taskBackingOff: boolean;
  /** Whether a repository some task waits for is being fetched. */
  readonly fetching?: boolean;
  /** Task rows whose card does not show their state yet. */
  readonly pendingBoardWrites: number;
  /** The live agents: whether each said hello, is being stopped, and the tasks it holds. */
  readonly agents: readonly { readonly ready: boolean; readonly stopping: boolean; readonly load: number }[];
}

/**
 * Whether a run until idle may end: a board was read and nothing changes it, nothing is queued,
 * starting, stopping, planned, running or backing off, and every card shows its state. A template that
 * failed for the run and a task whose wait is over but that nothing can take do not keep the run
 * alive (the summary says why they wait).
 */
export function isIdle(facts: IdleFacts): boolean {
  if (!facts.boardLoaded || facts.boardBusy || facts.queuedEvents > 0 || facts.spawning > 0) return false;
  if (facts.plan.assignments.length > 0 || facts.plan.spawns.length > 0) return false;
  if (facts.openExecutions > 0 || facts.templateBackingOff || facts.taskBackingOff || facts.fetching === true) return false;
  if (facts.pendingBoardWrites > 0) return false;
  // An agent still starting may be about to take a waiting task; one being stopped still counts
  // against its template's instances, and a waiting task may start once it is gone.
  return facts.agents.every((a) => a.ready && !a.stopping && a.load === 0);
}

/**
 * Whether a template waits out its spawn backoff at `nowMs`: one of `failures` (a template's
 * failed starts in a row, `count`, and when it may start again, `nextAtMs`, ms since the epoch)
 * was not given up (`count` below `maxFailures`) and its wait is not over. A wait that is over
 * keeps nothing alive: a task waiting for the template makes the plan start an agent (a planned
 * spawn), and with none waiting nothing starts one, so the backoff, which only an agent of the
 * template becoming ready ends, would hold the run forever.
 */
export function templateBackingOff(failures: Iterable<{ readonly count: number; readonly nextAtMs: number }>, nowMs: number, maxFailures: number): boolean {
  for (const f of failures) if (f.count < maxFailures && f.nextAtMs > nowMs) return true;
  return false;
}

/**
 * Whether the broker holds no unacknowledged result for this supervisor, so that a run until idle
 * may end. Results whose acknowledgements a killed broker lost stay unacknowledged until the
 * results consumer's ack wait (30 s) and are then delivered again, applied as duplicates and
 * acknowledged by the tick. Gives up after {@link RESULTS_SETTLE_MS} of waiting (with a warning):
 * the next start applies whatever is left, as recovery does.
 */
export class ResultsSettling {
  /** When the board was first found idle with results still unacknowledged (ms since the epoch). */
  private sinceMs: number | undefined;

  constructor(
    private readonly broker: Pick<Broker, 'resultsBacklog'>,
    private readonly log: Logger,
  ) {}

  /** Forgets a wait in progress (the board is not idle any more). */
  reset(): void {
    this.sinceMs = undefined;
  }

  /** @returns true when the run may end now. */
  async settled(nowMs: number): Promise<boolean> {
    let backlog: number;
    try {
      backlog = await this.broker.resultsBacklog();
    } catch (error) {
      this.log.warn({ err: error }, 'cannot read the results backlog; waiting before the run ends');
      backlog = -1;
    }
    if (backlog === 0) {
      this.sinceMs = undefined;
      return true;
    }
    if (this.sinceMs === undefined) {
      this.sinceMs = nowMs;
      this.log.info({ backlog }, 'the board is idle; waiting for the broker to deliver unacknowledged results again before the run ends');
    }
    if (nowMs - this.sinceMs < RESULTS_SETTLE_MS) return false;
    this.log.warn({ backlog, waitedMs: nowMs - this.sinceMs }, 'ending with results the broker still holds unacknowledged; the next start applies them');
    return true;
  }
}

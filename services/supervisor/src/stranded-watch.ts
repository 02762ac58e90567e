/**
 * Watches for executions a broker restart stranded: an assignment stored on the broker that the
 * agent's consumer will never deliver, or a result the supervisor's consumer will never deliver
 * (see `@warren/broker`'s `repairStranded`). Level-based: each tick it looks at the open
 * executions as the state database has them, and the consumers of those that have waited too long
 * are checked, in the background and one check at a time, never holding up the tick.
 */
import type { Broker, StrandedRepair } from '@warren/broker';
import type { Logger } from '@warren/core';
import type { EmitEvent } from './event-bus.js';
import type { AssignmentRow } from '@warren/registry';

/** How long an execution may wait (published without an ack, or acked without a result) before its consumer is checked, in ms. */
export const STRANDED_CHECK_AFTER_MS = 10_000;

/** Options of {@link StrandedWatch}. */
export interface StrandedWatchOptions {
  readonly broker: Broker;
  readonly logger: Logger;
  /**
   * Records the `broker.consumer_remade` event of each consumer made again (`EventBus.emit`).
   * Without it the caller records it in `onRepaired`.
   */
  readonly emit?: EmitEvent;
  /** Called after a consumer was made again and its event emitted (tick soon). Must not throw. */
  readonly onRepaired: (consumer: string, repair: StrandedRepair) => void;
  /** See {@link STRANDED_CHECK_AFTER_MS}; also the least time between two checks of one consumer, in ms. */
  readonly checkAfterMs?: number;
}

/** Checks consumers of executions that wait too long; see the module comment. */
export class StrandedWatch {
  private running: Promise<void> | undefined;
  private closed = false;
  /** When each consumer (`results` or an agent's name) was last checked, ms since the epoch. */
  private readonly checkedAt = new Map<string, number>();
  private readonly checkAfterMs: number;

  constructor(private readonly options: StrandedWatchOptions) {
    this.checkAfterMs = options.checkAfterMs ?? STRANDED_CHECK_AFTER_MS;
  }

  /**
   * Starts a background check of the consumers that `open` (the open executions) points at:
   * the assignments consumer of each agent for which `agentReady` holds and that has an execution
   * published `checkAfterMs` ago and not acknowledged, and the results consumer when an execution
   * acknowledged that long ago has no result. Each consumer at most once per `checkAfterMs`; no-op
   * while a check runs or once closed.
   */
  check(open: readonly AssignmentRow[], nowMs: number, agentReady: (agent: string) => boolean): void {
    if (this.running || this.closed) return;
    const due = new Set<string>();
    for (const a of open) {
      if (nowMs - a.assignedMs < this.checkAfterMs) continue;
      const consumer = a.state === 'published' && agentReady(a.agent) ? a.agent : a.state === 'acked' ? 'results' : undefined;
      if (consumer === undefined || due.has(consumer)) continue;
      if (nowMs - (this.checkedAt.get(consumer) ?? 0) < this.checkAfterMs) continue;
      due.add(consumer);
    }
    if (due.size === 0) return;
    for (const consumer of due) this.checkedAt.set(consumer, nowMs);
    this.running = this.checkAll([...due]).finally(() => {
      this.running = undefined;
    });
  }

  private async checkAll(consumers: readonly string[]): Promise<void> {
    for (const consumer of consumers) {
      if (this.closed) return;
      try {
        const repair = await this.options.broker.repairStranded(consumer === 'results' ? 'results' : { agent: consumer });
        if (repair.stranded > 0 && !this.closed) {
          this.options.emit?.({ actor: 'supervisor', action: 'broker.consumer_remade', object: `consumer:${consumer}`, details: { stranded: repair.stranded, reason: repair.reason } });
          this.options.onRepaired(consumer, repair);
        }
      } catch (error) {
        this.options.logger.warn({ err: error, consumer }, 'cannot check a consumer for stranded messages yet; will retry');
      }
    }
  }

  /** Stops starting checks and waits for the running one. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.running;
  }
}

/**
 * At the end of a run, once nothing of this supervisor pulls from them: clears the phantom
 * deliveries (see `@warren/broker`'s `clearPhantoms`) of the results consumer and of each of
 * `agents`' assignment consumers, so the broker shows nothing unacknowledged for work that is done.
 * Stops at the first broker error (the broker is away: each call would wait out its timeout).
 * @returns how many phantom deliveries were cleared.
 */
export async function clearPhantomDeliveries(broker: Broker, agents: readonly string[], logger: Logger): Promise<number> {
  let cleared = 0;
  for (const target of ['results' as const, ...agents.map((agent) => ({ agent }))]) {
    try {
      cleared += await broker.clearPhantoms(target);
    } catch (error) {
      logger.warn({ err: error }, 'cannot check the consumers for phantom deliveries');
      break;
    }
  }
  return cleared;
}

/**
 * At the end of a run, once every agent has stopped and its exit was applied: purges the queued
 * assignments of each of `agents` that has no open execution. They can only be copies of
 * executions already settled: a broker killed with SIGKILL forgets the message ids it saw, so an
 * assignment published again while it restarted is stored twice. The next start of the agent would
 * purge them too; purging them now leaves the broker holding nothing for work that is done.
 * Stops at the first broker error (the broker is away: each call would wait out its timeout).
 * @returns how many assignments were purged.
 */
export async function purgeSettledAssignments(broker: Broker, agents: readonly string[], hasOpenExecution: (agent: string) => boolean, logger: Logger): Promise<number> {
  let purged = 0;
  for (const agent of agents) {
    if (hasOpenExecution(agent)) continue;
    try {
      purged += await broker.purgeAssignments(agent);
    } catch (error) {
      logger.warn({ err: error }, 'cannot purge the assignments of settled executions');
      break;
    }
  }
  if (purged > 0) logger.info({ purged }, 'purged assignments of executions already settled');
  return purged;
}


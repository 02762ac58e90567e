/**
 * The consume loop: one durable pull consumer's messages fed to its handler, at most `maxInFlight`
 * at a time, the pull reopened (with backoff) when the client library ends it.
 */
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from '@warren/core';
import { MAX_RESTART_DELAY_MS, positiveInteger } from './broker-support.js';
import type { ConsumeOptions, Delivery, Subscription } from './broker-types.js';

/** What a consume loop needs to know about its consumer. */
export interface ConsumerSpec<T> {
  readonly stream: string;
  readonly durable: string;
  readonly filter: string;
  /** Parses and schema-checks the payload; throws InvalidMessageError. */
  readonly decode: (subject: string, data: Uint8Array) => T;
  /** Extra checks of a parsed message against its subject and headers; throws InvalidMessageError. */
  readonly check: (data: T, subject: string, headers: Readonly<Record<string, string>>) => void;
  readonly handler: (delivery: Delivery<T>) => Promise<void>;
  readonly ackWaitMs: number;
  readonly maxDeliver: number;
  readonly maxInFlight: number;
  /** The agent the consumer belongs to, if any (for deleteAgentConsumers). */
  readonly agent: string | undefined;
  /** Checked against the signing key when the broker has one. */
  readonly signed: boolean;
  /** How long one pull request stays open, in ms (the server's idle heartbeat is half of it). Default PULL_EXPIRES_MS. */
  readonly pullExpiresMs?: number;
}

/** What a consume loop uses of the broker that runs it. */
export interface ConsumeLoopHost {
  readonly log: Logger;
  readonly nc: NatsConnection;
  /** Settles a message once, logging a failure (`what` names the settlement). */
  settle(m: JsMsg, what: string, fn: () => void): void;
  /** Hands one message to the consumer's handler, settling it as the handler says. */
  dispatch<T>(m: JsMsg, spec: ConsumerSpec<T>): Promise<void>;
  /** Makes the durable consumer as `spec` says (again) when it is missing or differs. */
  ensureConsumer(spec: ConsumerSpec<unknown>): Promise<void>;
  /** Opens the pull subscription of `spec`'s consumer. */
  openMessages(spec: ConsumerSpec<unknown>): Promise<ConsumerMessages>;
}

export function consumeSettings(options: ConsumeOptions | undefined, defaultInFlight: number, source: string) {
  return {
    ackWaitMs: positiveInteger(options?.ackWaitMs, 30_000, `${source} ackWaitMs`),
    maxDeliver: positiveInteger(options?.maxDeliver, 5, `${source} maxDeliver`),
    maxInFlight: positiveInteger(options?.maxInFlight, defaultInFlight, `${source} maxInFlight`),
  };
}

/**
 * Feeds one durable pull consumer's messages to its handler, at most `maxInFlight` at a time,
 * and reopens the pull subscription (with backoff) if the client library ends it while the
 * loop should still run. Reconnects themselves are handled by the client, which re-checks the
 * consumer and pulls again.
 */
export class ConsumeLoop<T> implements Subscription {
  private stopped = false;
  private messages: ConsumerMessages | undefined;
  private done: Promise<void> = Promise.resolve();
  private readonly active = new Set<Promise<void>>();
  private stopSignal!: () => void;
  private readonly stopping = new Promise<void>((resolve) => {
    this.stopSignal = resolve;
  });
  private stopPromise: Promise<void> | undefined;

  constructor(
    private readonly broker: ConsumeLoopHost,
    readonly spec: ConsumerSpec<T>,
    private readonly onStopped: () => void,
  ) {}

  private get log(): Logger {
    return this.broker.log;
  }

  start(first: ConsumerMessages): void {
    this.done = this.run(first).catch((error: unknown) => {
      this.log.error({ err: error, consumer: this.spec.durable }, 'consume loop failed');
    });
  }

  private async run(first: ConsumerMessages): Promise<void> {
    let messages: ConsumerMessages | undefined = first;
    while (messages) {
      this.messages = messages;
      this.watchNotifications(messages).catch((error: unknown) => {
        this.log.warn({ err: error, consumer: this.spec.durable }, 'consumer notification watch failed');
      });
      let failure: unknown;
      try {
        await this.pump(messages);
      } catch (error) {
        failure = error;
      }
      if (this.stopped || this.broker.nc.isClosed()) break;
      const closed = await messages.closed().catch((error: unknown) => error);
      this.log.warn(
        { err: failure ?? closed, stream: this.spec.stream, consumer: this.spec.durable },
        'consumer subscription ended; reopening',
      );
      messages = await this.reopen();
    }
    this.messages = undefined;
  }

  private async pump(messages: ConsumerMessages): Promise<void> {
    for await (const m of messages) {
      if (this.stopped) {
        this.broker.settle(m, 'nak', () => m.nak());
        continue;
      }
      while (this.active.size >= this.spec.maxInFlight && !this.stopped) {
        await Promise.race([...this.active, this.stopping]);
      }
      if (this.stopped) {
        this.broker.settle(m, 'nak', () => m.nak());
        continue;
      }
      const run: Promise<void> = this.broker
        .dispatch(m, this.spec)
        .catch((error: unknown) => this.log.error({ err: error, subject: m.subject }, 'cannot dispatch a message'))
        .finally(() => this.active.delete(run));
      this.active.add(run);
    }
  }

  private async watchNotifications(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const n of messages.status()) {
        switch (n.type) {
          case 'consumer_deleted':
          case 'consumer_not_found':
          case 'stream_not_found':
          case 'exceeded_limits':
            this.log.warn({ notification: n, consumer: this.spec.durable }, 'consumer notification');
            break;
          case 'heartbeats_missed':
            this.log.debug({ count: n.count, consumer: this.spec.durable }, 'consumer heartbeats missed');
            break;
          default:
            break;
        }
      }
    } catch {
      // the notification stream ends with its consumer
    }
  }

  private async reopen(): Promise<ConsumerMessages | undefined> {
    for (let attempt = 0; !this.stopped && !this.broker.nc.isClosed(); attempt++) {
      const delayMs = Math.min(250 * 2 ** attempt, MAX_RESTART_DELAY_MS);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise((r) => (timer = setTimeout(r, delayMs))), this.stopping]);
      clearTimeout(timer);
      if (this.stopped) return undefined;
      try {
        await this.broker.ensureConsumer(this.spec as unknown as ConsumerSpec<unknown>);
        return await this.broker.openMessages(this.spec as unknown as ConsumerSpec<unknown>);
      } catch (error) {
        this.log.warn({ err: error, consumer: this.spec.durable, attempt }, 'cannot reopen consumer yet');
      }
    }
    return undefined;
  }

  /** Ends the current pull subscription so the loop opens a new one (its consumer was made again). */
  reopenNow(): void {
    if (this.stopped) return;
    this.messages?.close().catch((error: unknown) => {
      this.log.debug({ err: error, consumer: this.spec.durable }, 'cannot close the pull subscription');
    });
  }

  stop(): Promise<void> {
    this.stopPromise ??= (async () => {
      this.stopped = true;
      this.stopSignal();
      const messages = this.messages;
      if (messages) await Promise.race([messages.close().catch(() => undefined), this.done]);
      await this.done;
      this.onStopped();
    })();
    return this.stopPromise;
  }
}

import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import type { BrokerNamespace } from '@warren/broker';
import { WarrenError, type Logger } from '@warren/core';
import type { AgentEvents, AgentExit } from '@warren/runtime';
import {
  authorizeReplySchema,
  channelControlSchema,
  channelEventSchema,
  channelRequestSchema,
  channelSubjects,
  decodePayload,
  encodePayload,
  sendReplySchema,
  subjectToken,
  type ChannelControl,
  type ChannelEvent,
  type ChannelRequest,
  type ErrorReply,
} from './protocol.js';

/** Default time a relay waits for the supervisor's reply to a `send` or `authorize`, in ms. */
export const DEFAULT_CHANNEL_REQUEST_TIMEOUT_MS = 10_000;

/**
 * The supervisor's side of one remote agent instance's channel (from {@link ChannelHub.attach}):
 * what `AgentInstance` needs of its channel when the gateway runs on another host.
 */
export interface RemoteChannel {
  readonly agent: string;
  readonly instance: string;
  /** True between the runner's `hello` and a `disconnected` (or `exited`) event. */
  readonly connected: boolean;
  /** Settles on an `exited` event or {@link markExited}, with the first exit; never rejects. */
  readonly exited: Promise<AgentExit>;
  /** Settles {@link exited} with `exit` unless it already settled; the channel is no longer connected. */
  markExited(exit: AgentExit): void;
  /** Publishes `cancel` on the control subject. Never throws. */
  cancel(taskId: string, attempt: number, reason: string): void;
  /** Publishes `resend` on the control subject. @returns {@link connected} (whether a result can come). */
  resendResult(taskId: string, attempt: number): boolean;
  /** Publishes `shutdown` on the control subject. Never throws. */
  requestShutdown(why: string): void;
  /** Detaches from the hub: later events of this instance are dropped. Idempotent. */
  close(): void;
}

/** Options of {@link ChannelHub}. */
export interface ChannelHubOptions {
  /** The supervisor's broker connection (it may publish `ctl` and subscribe `ev`/`rpc` of every agent). */
  readonly nc: NatsConnection;
  readonly ns: BrokerNamespace;
  readonly logger: Logger;
}

interface Attached {
  readonly channel: HubChannel;
  readonly events: AgentEvents;
}

/**
 * The supervisor's end of every remote agent channel: one per supervisor, subscribing
 * `<p>.chan.*.ev` and `<p>.chan.*.rpc` once. Each started remote instance is {@link attach}ed with
 * the instance id the supervisor chose; events and requests of any other instance of the agent
 * (a stale pod, a node coming back) are dropped (requests get a `WARREN_CHANNEL_STALE` error reply).
 * Malformed payloads are logged with their subject and dropped; a malformed request gets a
 * `WARREN_CHANNEL_INVALID` error reply. The identity of a request is its subject's agent token:
 * the broker's permissions let an agent publish only on its own channel subjects.
 */
export class ChannelHub {
  private readonly channels = new Map<string, Attached>();
  private readonly subscriptions: Subscription[];
  private closed = false;

  constructor(private readonly options: ChannelHubOptions) {
    const { nc, ns } = options;
    const base = `${ns.subjectPrefix}.chan.*`;
    this.subscriptions = [
      nc.subscribe(`${base}.ev`, { callback: (error, msg) => (error ? this.subscriptionError(error) : this.onEvent(msg)) }),
      nc.subscribe(`${base}.rpc`, { callback: (error, msg) => (error ? this.subscriptionError(error) : void this.onRequest(msg)) }),
    ];
  }

  /**
   * Attaches instance `instance` of `agent` with the callbacks its events go to, replacing any
   * earlier attachment of the agent (whose events are dropped from now on). Attach before the
   * instance is started, so that no event arrives before it.
   * @throws {WarrenError} `WARREN_CHANNEL_CLOSED` once the hub is closed; an `Error` for an invalid agent name.
   */
  attach(agent: string, instance: string, events: AgentEvents): RemoteChannel {
    if (this.closed) throw new WarrenError('WARREN_CHANNEL_CLOSED', `the channel hub is closed: cannot attach ${agent}`);
    const subjects = channelSubjects(this.options.ns, agent);
    const channel = new HubChannel(agent, instance, subjects.ctl, this.options.nc, this.options.logger, () => {
      if (this.channels.get(agent)?.channel === channel) this.channels.delete(agent);
    });
    this.channels.set(agent, { channel, events });
    return channel;
  }

  /** Stops both subscriptions and detaches every channel (their `exited` stays as it is). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const subscription of this.subscriptions) {
      try {
        subscription.unsubscribe();
      } catch {
        // The connection is already closed: nothing is delivered any more.
      }
    }
    this.channels.clear();
  }

  private subscriptionError(error: Error): void {
    this.options.logger.warn({ err: error }, 'channel hub subscription failed');
  }

  private lookup(subject: string, instance: string): Attached | undefined {
    const agent = subjectToken(this.options.ns, subject, 1);
    const attached = agent === undefined ? undefined : this.channels.get(agent);
    if (attached?.channel.instance === instance) return attached;
    this.options.logger.debug(
      { subject, instance, current: attached?.channel.instance ?? null },
      'channel message of an instance that is not attached dropped',
    );
    return undefined;
  }

  private onEvent(msg: Msg): void {
    const decoded = decodePayload(channelEventSchema, msg.subject, msg.data);
    if (!decoded.ok) {
      this.options.logger.warn({ subject: msg.subject, error: decoded.error }, 'malformed channel event dropped');
      return;
    }
    const event = decoded.value;
    const attached = this.lookup(msg.subject, event.instance);
    if (attached) attached.channel.deliver(event, attached.events);
  }

  private async onRequest(msg: Msg): Promise<void> {
    const decoded = decodePayload(channelRequestSchema, msg.subject, msg.data);
    if (!decoded.ok) {
      this.options.logger.warn({ subject: msg.subject, error: decoded.error }, 'malformed channel request refused');
      this.reply(msg, { ok: false, code: 'WARREN_CHANNEL_INVALID', message: decoded.error });
      return;
    }
    const request = decoded.value;
    const attached = this.lookup(msg.subject, request.instance);
    if (!attached) {
      const message = `${msg.subject}: instance ${request.instance} is not the agent's current instance`;
      this.reply(msg, { ok: false, code: 'WARREN_CHANNEL_STALE', message });
      return;
    }
    this.reply(msg, await answer(attached, request));
  }

  private reply(msg: Msg, payload: unknown): void {
    if (!msg.reply) return;
    try {
      msg.respond(encodePayload(payload));
    } catch (error) {
      this.options.logger.warn({ err: error, subject: msg.subject }, 'channel reply not sent');
    }
  }
}

async function answer(attached: Attached, request: ChannelRequest): Promise<unknown> {
  const { channel, events } = attached;
  try {
    if (request.op === 'send') {
      const { id } = await events.sendMessage(channel.agent, request.to, request.body, request.ref);
      return { ok: true, id };
    }
    const refusal = await events.authorizeAssignment(channel.agent, request.subject, request.taskId, request.attempt);
    return { refusal };
  } catch (error) {
    return errorReply(error);
  }
}

function errorReply(error: unknown): ErrorReply {
  const code = typeof (error as { code?: unknown } | null)?.code === 'string' ? (error as { code: string }).code : 'WARREN_INTERNAL';
  return { ok: false, code, message: error instanceof Error ? error.message : String(error) };
}

class HubChannel implements RemoteChannel {
  private isConnected = false;
  private lastSeq = -1;
  private settle!: (exit: AgentExit) => void;
  private settled = false;
  private detached = false;
  readonly exited: Promise<AgentExit>;

  constructor(
    readonly agent: string,
    readonly instance: string,
    private readonly ctlSubject: string,
    private readonly nc: NatsConnection,
    private readonly logger: Logger,
    private readonly detach: () => void,
  ) {
    this.exited = new Promise((resolve) => (this.settle = resolve));
  }

  get connected(): boolean {
    return this.isConnected;
  }

  deliver(event: ChannelEvent, events: AgentEvents): void {
    if (event.seq <= this.lastSeq) {
      this.logger.debug({ agent: this.agent, instance: this.instance, seq: event.seq, last: this.lastSeq }, 'channel event out of order');
    }
    this.lastSeq = Math.max(this.lastSeq, event.seq);
    switch (event.type) {
      case 'hello':
        this.isConnected = true;
        events.hello(this.agent, event.pid);
        return;
      case 'acked':
        events.taskAcked(this.agent, event.taskId, event.attempt);
        return;
      case 'alive':
        events.alive(this.agent);
        return;
      case 'disconnected':
        this.isConnected = false;
        events.disconnected(this.agent);
        return;
      case 'protocol_error':
        events.protocolError(this.agent, event.message);
        return;
      case 'progress':
        events.progressEvent?.(this.agent, event.taskId, event.attempt, event.event);
        return;
      case 'exited':
        this.markExited(event.exit);
        return;
    }
  }

  markExited(exit: AgentExit): void {
    this.isConnected = false;
    if (this.settled) return;
    this.settled = true;
    this.settle(exit);
  }

  cancel(taskId: string, attempt: number, reason: string): void {
    this.control({ instance: this.instance, op: 'cancel', taskId, attempt, reason });
  }

  resendResult(taskId: string, attempt: number): boolean {
    this.control({ instance: this.instance, op: 'resend', taskId, attempt });
    return this.isConnected;
  }

  requestShutdown(why: string): void {
    this.control({ instance: this.instance, op: 'shutdown', why });
  }

  close(): void {
    if (this.detached) return;
    this.detached = true;
    this.detach();
  }

  private control(message: ChannelControl): void {
    try {
      this.nc.publish(this.ctlSubject, encodePayload(message));
    } catch (error) {
      this.logger.warn({ err: error, subject: this.ctlSubject, op: message.op }, 'channel control not published');
    }
  }
}

/** What the gateway host does on the supervisor's control messages. Callbacks must not throw. */
export interface ChannelControlHandlers {
  cancel(taskId: string, attempt: number, reason: string): void;
  resend(taskId: string, attempt: number): void;
  shutdown(why: string): void;
}

/** Options of {@link relayChannel}. */
export interface RelayChannelOptions {
  /** The gateway host's broker connection (the node's, or the pod agent's own). */
  readonly nc: NatsConnection;
  readonly ns: BrokerNamespace;
  readonly agent: string;
  /** The instance id the supervisor gave this start. */
  readonly instance: string;
  readonly logger: Logger;
  readonly control: ChannelControlHandlers;
  /** How long a `send` or `authorize` waits for the supervisor's reply, in ms. Default 10000. */
  readonly requestTimeoutMs?: number;
}

/** The gateway host's side of a remote channel (from {@link relayChannel}). */
export type RelayedChannel = AgentEvents & {
  /** Publishes the `exited` event of this instance. Never throws. */
  exited(exit: AgentExit): void;
  /** Stops the control subscription and flushes what was published; later events are dropped. Idempotent. */
  close(): Promise<void>;
};

/**
 * The gateway host's end of one instance's channel: `AgentEvents` for the local `AgentGateway`
 * that publish on `<p>.chan.<agent>.ev` (with this instance and an increasing `seq`) and request
 * `send` and `authorize` on `<p>.chan.<agent>.rpc`; plus a subscription to `<p>.chan.<agent>.ctl`
 * that calls `control` for this instance's messages (others are dropped, malformed ones logged).
 * `sendMessage` rejects with a `WarrenError` carrying the reply's `code`; `authorizeAssignment`
 * rejects when no decision came (timeout, error reply), leaving the assignment for redelivery.
 * @throws {Error} for an invalid agent name.
 */
export function relayChannel(options: RelayChannelOptions): RelayedChannel {
  const { nc, ns, agent, instance, logger, control } = options;
  const timeout = options.requestTimeoutMs ?? DEFAULT_CHANNEL_REQUEST_TIMEOUT_MS;
  const subjects = channelSubjects(ns, agent);
  let seq = 0;
  let closing: Promise<void> | undefined;

  const publish = (event: Record<string, unknown> & { type: ChannelEvent['type'] }): void => {
    if (closing) {
      logger.debug({ subject: subjects.ev, type: event.type }, 'channel event after close dropped');
      return;
    }
    try {
      nc.publish(subjects.ev, encodePayload({ instance, seq: seq++, ...event }));
    } catch (error) {
      logger.warn({ err: error, subject: subjects.ev, type: event.type }, 'channel event not published');
    }
  };

  const request = async (body: ChannelRequest): Promise<unknown> => {
    if (closing) throw new WarrenError('WARREN_CHANNEL_CLOSED', `${subjects.rpc}: the channel is closed`);
    let reply: Msg;
    try {
      reply = await nc.request(subjects.rpc, encodePayload(body), { timeout });
    } catch (error) {
      throw new WarrenError('WARREN_BROKER', `${subjects.rpc}: ${body.op} got no reply: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    return reply;
  };

  const subscription = nc.subscribe(subjects.ctl, {
    callback: (error, msg) => {
      if (error) {
        logger.warn({ err: error, subject: subjects.ctl }, 'channel control subscription failed');
        return;
      }
      const decoded = decodePayload(channelControlSchema, msg.subject, msg.data);
      if (!decoded.ok) {
        logger.warn({ subject: msg.subject, error: decoded.error }, 'malformed channel control dropped');
        return;
      }
      const message = decoded.value;
      if (message.instance !== instance) {
        logger.debug({ subject: msg.subject, instance: message.instance }, 'channel control of another instance dropped');
        return;
      }
      if (message.op === 'cancel') control.cancel(message.taskId, message.attempt, message.reason);
      else if (message.op === 'resend') control.resend(message.taskId, message.attempt);
      else control.shutdown(message.why);
    },
  });

  return {
    hello: (_agent, pid) => publish({ type: 'hello', pid }),
    taskAcked: (_agent, taskId, attempt) => publish({ type: 'acked', taskId, attempt }),
    alive: () => publish({ type: 'alive' }),
    disconnected: () => publish({ type: 'disconnected' }),
    protocolError: (_agent, message) => publish({ type: 'protocol_error', message }),
    progressEvent: (_agent, taskId, attempt, event) => publish({ type: 'progress', taskId, attempt, event }),
    exited: (exit) => publish({ type: 'exited', exit }),
    async sendMessage(_from, to, body, ref) {
      const reply = (await request({ instance, op: 'send', to, body, ref })) as Msg;
      const decoded = decodePayload(sendReplySchema, `${subjects.rpc} reply`, reply.data);
      if (!decoded.ok) throw new WarrenError('WARREN_BROKER', decoded.error);
      if (!decoded.value.ok) throw new WarrenError(asCode(decoded.value.code), decoded.value.message);
      return { id: decoded.value.id };
    },
    async authorizeAssignment(_agent, subject, taskId, attempt) {
      const reply = (await request({ instance, op: 'authorize', subject, taskId, attempt })) as Msg;
      const decoded = decodePayload(authorizeReplySchema, `${subjects.rpc} reply`, reply.data);
      if (!decoded.ok) throw new WarrenError('WARREN_BROKER', decoded.error);
      if ('ok' in decoded.value) throw new WarrenError(asCode(decoded.value.code), decoded.value.message);
      return decoded.value.refusal;
    },
    close() {
      closing ??= (async () => {
        try {
          subscription.unsubscribe();
          await nc.flush();
        } catch (error) {
          logger.debug({ err: error, subject: subjects.ctl }, 'channel relay closed on a closed connection');
        }
      })();
      return closing;
    },
  };
}

function asCode(code: string): `WARREN_${string}` {
  return code.startsWith('WARREN_') ? (code as `WARREN_${string}`) : `WARREN_${code}`;
}

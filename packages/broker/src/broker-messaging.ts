/**
 * Agent-to-agent messaging and the broker's core NATS subscriptions: inbox pulls
 * (`fetchMessages`), progress, events, topics, replies (`awaitReply`) and presence. Each function
 * takes the broker it runs on as `host` (`broker.ts` delegates to them).
 */
import { JetStreamError, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import type { Msg } from '@nats-io/nats-core';
import { ConfigError, type Logger } from '@warren/core';
import { BrokerError, InvalidMessageError, MessageTimeoutError } from './errors.js';
import {
  agentMessageSchema,
  decodeMessage,
  progressMessageSchema,
  replyMessageSchema,
  topicMessageSchema,
  type AgentMessage,
  type ProgressMessage,
  type ReplyMessage,
  type TopicMessage,
} from './messages.js';
import { FROM_HEADER, assertAgentName, assertRequestId, decodeTaskIdToken, type BrokerNamespace } from './subjects.js';
import { errorText, headerValue, positiveInteger } from './broker-support.js';
import type { ConsumerSpec } from './consume-loop.js';
import type { Delivery, FetchMessagesOptions, Subscription } from './broker-types.js';

/** What the messaging functions use of the broker they run on. */
export interface MessagingHost {
  readonly namespace: BrokerNamespace;
  readonly log: Logger;
  readonly js: JetStreamClient;
  /** Inbox consumers `fetchMessages` made or checked on this connection, with their `<ackWaitMs>:<maxDeliver>`. */
  readonly ensuredInboxes: Map<string, string>;
  /** Ends every `awaitReply` still waiting (on close). */
  readonly replyWaiters: Set<() => void>;
  /** @throws {BrokerError} once the broker is closing or closed. */
  assertOpen(operation: string, target: string): void;
  /** Makes the durable consumer as `spec` says (again) when it is missing or differs. */
  ensureConsumer(spec: ConsumerSpec<unknown>): Promise<void>;
  /** Runs `fn` again while JetStream does not answer for a moment (an election, a server reload); see `Broker.rideElection`. */
  rideElection<T>(operation: string, target: string, fn: () => Promise<T>): Promise<T>;
  /** Checks one JetStream message against `spec`: its delivery, or undefined after terminating and reporting an invalid one. */
  toDelivery<T>(m: JsMsg, spec: Omit<ConsumerSpec<T>, 'handler'>): Delivery<T> | undefined;
  /** A core NATS subscription of `subject`, stopped on close. */
  subscribeCore(subject: string, onMsg: (msg: Msg) => void): Subscription;
  /** Hands an invalid message to `onInvalid` or logs it. */
  reportInvalid(subject: string, error: InvalidMessageError): void;
}

/** The consumer spec of `agent`'s inbox, without its handler and settings. */
export function inboxSpec(host: MessagingHost, agent: string): Pick<ConsumerSpec<AgentMessage>, 'stream' | 'durable' | 'filter' | 'decode' | 'check' | 'agent' | 'signed'> {
  const ns = host.namespace;
  return {
    stream: ns.messagesStream,
    durable: ns.messageConsumerName(agent),
    filter: ns.messageFilter(agent),
    decode: (subject, bytes) => decodeMessage(agentMessageSchema, subject, bytes),
    check: (data, subject, hdrs) => {
      const parts = ns.parseMessageSubject(subject);
      if (data.to !== agent || parts?.to !== agent) {
        throw new InvalidMessageError(subject, 'to', `is '${data.to}' but the consumer is agent '${agent}''s inbox`);
      }
      if (parts.from !== data.from) {
        throw new InvalidMessageError(subject, 'from', `is '${data.from}' but the subject names sender '${parts.from}'`);
      }
      const from = headerValue(hdrs, FROM_HEADER);
      if (from !== data.from) {
        throw new InvalidMessageError(
          subject,
          'from',
          from === undefined
            ? `the ${FROM_HEADER} header is missing (messages are published by the supervisor's gateway)`
            : `is '${data.from}' but the ${FROM_HEADER} header says '${from}'`,
        );
      }
    },
    agent,
    signed: true,
  };
}

/** `NatsBroker.fetchMessages` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export async function fetchMessages(host: MessagingHost, agent: string, options?: FetchMessagesOptions): Promise<Delivery<AgentMessage>[]> {
  const source = `fetchMessages(${agent})`;
  const max = options?.max ?? 10;
  if (!Number.isInteger(max) || max < 1 || max > 256) throw new ConfigError(`${source} max`, `must be an integer from 1 to 256, got ${max}`);
  const expiresMs = options?.expiresMs ?? 0;
  if (!Number.isInteger(expiresMs) || expiresMs < 0 || expiresMs > 300_000) {
    throw new ConfigError(`${source} expiresMs`, `must be an integer from 0 to 300000, got ${expiresMs}`);
  }
  const spec: ConsumerSpec<AgentMessage> = {
    ...inboxSpec(host, agent),
    handler: () => Promise.resolve(),
    ackWaitMs: positiveInteger(options?.ackWaitMs, 60_000, `${source} ackWaitMs`),
    maxDeliver: positiveInteger(options?.maxDeliver, 5, `${source} maxDeliver`),
    maxInFlight: 256,
  };
  host.assertOpen('fetchMessages', `${spec.stream}/${spec.durable}`);
  const settings = `${spec.ackWaitMs}:${spec.maxDeliver}`;
  if (host.ensuredInboxes.get(spec.durable) !== settings) {
    await host.ensureConsumer(spec as unknown as ConsumerSpec<unknown>);
    host.ensuredInboxes.set(spec.durable, settings);
  }
  const out: Delivery<AgentMessage>[] = [];
  try {
    // A server reload (the per-agent users changed) leaves JetStream unanswered for a moment.
    const consumer = await host.rideElection('fetchMessages', `${spec.stream}/${spec.durable}`, () => host.js.consumers.get(spec.stream, spec.durable));
    // JetStream holds a pull until its batch is full or it expires: ask for what is waiting now,
    // and wait (for one) only when nothing is.
    const pull = async (batch: number, waitMs: number): Promise<number> => {
      const messages = await consumer.fetch({ max_messages: batch, expires: Math.max(1_000, waitMs) });
      let got = 0;
      try {
        for await (const m of messages) {
          got++;
          const delivery = host.toDelivery(m, spec);
          if (delivery) out.push(delivery);
        }
      } catch (error) {
        // The client ends a pull whose server heartbeats (every half expiry) it missed, as a busy
        // event loop makes it: keep what came; anything delivered later comes again after the ack wait.
        if (!(error instanceof JetStreamError && error.message === 'heartbeats missed')) throw error;
        host.log.debug({ consumer: spec.durable, got }, 'inbox pull ended on missed heartbeats');
      }
      return got;
    };
    const info = await consumer.info(false);
    const waiting = info.num_pending;
    if (waiting > 0) {
      // Those messages are there: the pull ends as soon as they came, the expiry only bounds it.
      await pull(Math.min(max, waiting), 5_000);
    } else if (expiresMs === 0) {
      // Deliveries whose ack wait ran out are not counted as pending: look for one briefly.
      if (info.num_ack_pending > 0) await pull(1, 1_000);
    } else if ((await pull(1, expiresMs)) > 0 && max > 1) {
      const more = (await consumer.info(false)).num_pending;
      if (more > 0) await pull(Math.min(max - 1, more), 5_000);
    }
  } catch (error) {
    host.ensuredInboxes.delete(spec.durable);
    for (const d of out) d.nak();
    throw new BrokerError('fetchMessages', `${spec.stream}/${spec.durable}`, errorText(error), { cause: error });
  }
  return out;
}

/**
 * A core subscription of `subject` whose messages `decode` parses and checks: one it refuses with an
 * `InvalidMessageError` is reported (`reportInvalid`) and dropped; a `handler` that throws is logged
 * as `<what> handler threw`, and the subscription goes on.
 */
function subscribeDecoded<T>(host: MessagingHost, subject: string, decode: (msg: Msg) => T, handler: (data: T, msg: Msg) => void, what: string): Subscription {
  return host.subscribeCore(subject, (msg) => {
    let data: T;
    try {
      data = decode(msg);
    } catch (error) {
      if (error instanceof InvalidMessageError) return host.reportInvalid(msg.subject, error);
      throw error;
    }
    try {
      handler(data, msg);
    } catch (error) {
      host.log.error({ err: error, subject: msg.subject }, `${what} handler threw`);
    }
  });
}

/** `NatsBroker.subscribeProgress` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export function subscribeProgress(host: MessagingHost, handler: (msg: ProgressMessage) => void, options?: { agent?: string }): Subscription {
  const prefix = host.namespace.progressPrefix;
  const filter = options?.agent === undefined ? `${prefix}.*.*` : `${prefix}.${assertAgentName(options.agent)}.*`;
  const decode = (msg: Msg): ProgressMessage => {
    const data = decodeMessage(progressMessageSchema, msg.subject, msg.data);
    const [agentToken, taskToken] = msg.subject.slice(prefix.length + 1).split('.');
    if (data.agent !== agentToken) {
      throw new InvalidMessageError(msg.subject, 'agent', `is '${data.agent}' but the subject names agent '${agentToken}'`);
    }
    let taskId: string | undefined;
    try {
      taskId = decodeTaskIdToken(taskToken ?? '');
    } catch {
      taskId = undefined;
    }
    if (data.taskId !== taskId) {
      throw new InvalidMessageError(msg.subject, 'taskId', `is '${data.taskId}' but the subject names task token '${taskToken}'`);
    }
    return data;
  };
  return subscribeDecoded(host, filter, decode, (data) => handler(data), 'progress');
}

/** `NatsBroker.subscribeEvents` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export function subscribeEvents(host: MessagingHost, handler: (kind: string, payload: unknown) => void): Subscription {
  const prefix = host.namespace.eventPrefix;
  const decode = (msg: Msg): unknown => {
    try {
      return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(msg.data));
    } catch (error) {
      throw new InvalidMessageError(msg.subject, '', `payload is not UTF-8 JSON (${errorText(error)})`, { cause: error });
    }
  };
  return subscribeDecoded(host, `${prefix}.>`, decode, (payload, msg) => handler(msg.subject.slice(prefix.length + 1), payload), 'event');
}

/** `NatsBroker.subscribeTopics` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export function subscribeTopics(host: MessagingHost, topic: string, handler: (msg: TopicMessage) => void): Subscription {
  const ns = host.namespace;
  const decode = (msg: Msg): TopicMessage => {
    const data = decodeMessage(topicMessageSchema, msg.subject, msg.data);
    const parts = ns.parseTopicSubject(msg.subject);
    if (parts?.topic !== data.topic) throw new InvalidMessageError(msg.subject, 'topic', `is '${data.topic}' but the subject names another topic`);
    if (parts.from !== data.from) throw new InvalidMessageError(msg.subject, 'from', `is '${data.from}' but the subject names sender '${parts.from}'`);
    return data;
  };
  return subscribeDecoded(host, ns.topicFilter(topic), decode, (data) => handler(data), 'topic');
}

/**
 * Decodes a reply and checks it against its subject (`<p>.reply.<to>.<from>.<requestId>`): the
 * recipient, the request it answers and the sender must be the subject's.
 * @throws {InvalidMessageError} naming the field that disagrees.
 */
function decodeReply(host: MessagingHost, subject: string, payload: Uint8Array): ReplyMessage {
  const data = decodeMessage(replyMessageSchema, subject, payload);
  const parts = host.namespace.parseReplySubject(subject);
  if (parts === undefined || parts.to !== data.to || parts.requestId !== data.inReplyTo) {
    throw new InvalidMessageError(subject, 'inReplyTo', `is a reply to ${data.to}'s ${data.inReplyTo}, which the subject does not name`);
  }
  if (parts.from !== data.from) throw new InvalidMessageError(subject, 'from', `is '${data.from}' but the subject names sender '${parts.from}'`);
  return data;
}

/** `NatsBroker.subscribeReplies` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export function subscribeReplies(host: MessagingHost, handler: (msg: ReplyMessage) => void): Subscription {
  return subscribeDecoded(host, `${host.namespace.replyPrefix}.>`, (msg) => decodeReply(host, msg.subject, msg.data), (data) => handler(data), 'reply');
}

/** `NatsBroker.awaitReply` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export function awaitReply(host: MessagingHost, requester: string, requestId: string, timeoutMs: number): Promise<ReplyMessage> {
  const ns = host.namespace;
  const filter = ns.replyFilter(requester, assertRequestId(requestId));
  const wait = positiveInteger(timeoutMs, 30_000, `awaitReply(${requester}) timeoutMs`);
  let settle!: (reply: ReplyMessage | 'timeout' | 'closed') => void;
  const answered = new Promise<ReplyMessage | 'timeout' | 'closed'>((resolve) => {
    settle = resolve;
  });
  const onClose = () => settle('closed');
  const subscription = host.subscribeCore(filter, (msg) => {
    try {
      settle(decodeReply(host, msg.subject, msg.data));
    } catch (error) {
      if (!(error instanceof InvalidMessageError)) throw error;
      host.reportInvalid(msg.subject, error);
    }
  });
  const timer = setTimeout(() => settle('timeout'), wait);
  host.replyWaiters.add(onClose);
  return answered.then(async (reply) => {
    clearTimeout(timer);
    host.replyWaiters.delete(onClose);
    await subscription.stop();
    if (reply === 'timeout') throw new MessageTimeoutError(requester, requestId, wait);
    if (reply === 'closed') throw new BrokerError('awaitReply', filter, 'the broker connection closed before a reply came');
    return reply;
  });
}

/** `NatsBroker.servePresence` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export function servePresence(host: MessagingHost, answer: (from: string) => unknown): Subscription {
  const ns = host.namespace;
  return host.subscribeCore(`${ns.presencePrefix}.*`, (msg) => {
    const from = ns.presenceSender(msg.subject);
    if (from === undefined || !msg.reply) {
      host.reportInvalid(msg.subject, new InvalidMessageError(msg.subject, '', 'a presence request needs an agent name and a reply subject'));
      return;
    }
    const respond = async (): Promise<void> => {
      let body: unknown;
      try {
        body = await answer(from);
      } catch (error) {
        const code = typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : 'WARREN_INTERNAL';
        body = { error: { code, message: errorText(error) } };
      }
      try {
        msg.respond(JSON.stringify(body ?? null));
      } catch (error) {
        host.log.warn({ err: error, subject: msg.subject }, 'cannot answer a presence request');
      }
    };
    respond().catch((error: unknown) => host.log.error({ err: error, subject: msg.subject }, 'presence answer failed'));
  });
}

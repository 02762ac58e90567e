/**
 * The supervisor's message service: {@link MessagingPort} over the supervisor's context. Every
 * message an agent (or a person, through the API or MCP) sends, requests, replies or publishes goes
 * through here, whichever way it came (the bus socket, `::send` lines, MCP tools, the relay of the
 * outbox that agents connected to NATS directly publish to):
 *
 * 1. checked (names, body at most 256 KiB encoded),
 * 2. decided by the policy (`(from, agent:<to>, message)`, `(from, topic:<t>, publish|subscribe)`;
 *    each decision audited by the authorizer),
 * 3. published on the broker, signed by the supervisor,
 * 4. audited as `message.sent` / `message.published` / `message.denied` with the SHA-256 and size of
 *    the body, never the body, and counted per (from, to, topic) in the message ledger.
 *
 * A message to a sleeping agent queues the durable `agent.wake` command when `(from, agent:<to>,
 * wake)` is allowed (the decision is audited either way, and the outcome is `message.wake`).
 */
import { createHash, randomUUID } from 'node:crypto';
import { WarrenError } from '@warren/core';
import { CommandKind, type MessageRecord } from '@warren/registry';
import type { Logger } from '@warren/core';
import { MessageTimeoutError, type AgentMessage, type Broker, type Delivery, type Subscription } from '@warren/broker';
import type { SupervisorContext } from '../context.js';
import type { MessageEventDetails } from '../events.js';
import type { MessagingPort, PresenceEntry, ReceivedMessage, ReplyMessage, TopicMessageView } from './port.js';

/** Names an agent may have (and so the recipients a message may name). */
export const AGENT_NAME = /^[a-z][a-z0-9-]{0,31}$/;
/** A topic name: one NATS token (the shared design of issue 16). */
export const TOPIC_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** A message id: 1–128 characters of `[A-Za-z0-9._:-]` (safe as a NATS token once `.`-free, and in a header). */
const MESSAGE_ID = /^[A-Za-z0-9_:-]{1,128}$/;
/** The largest body, encoded as JSON, in bytes (256 KiB). */
export const MAX_BODY_BYTES = 256 * 1024;
/** How long a delivered inbox message may stay unacknowledged before the broker delivers it again, ms (the consumer's ack wait). */
export const INBOX_ACK_WAIT_MS = 60_000;

/**
 * What the service needs of `@warren/broker`'s `Broker` (the subjects of the shared design:
 * inboxes `<p>.msg.<to>.<from>`, outbox `<p>.send.<from>.<to>`, topics `<p>.topic.<t>.<from>`,
 * replies `<p>.reply.<to>.<from>.<id>`, presence `<p>.presence.<from>`).
 */
export type MessagingBroker = Pick<
  Broker,
  'publishMessage' | 'fetchMessages' | 'publishTopic' | 'subscribeTopics' | 'publishReply' | 'subscribeReplies' | 'awaitReply' | 'consumeOutbox' | 'servePresence'
>;

/** Where messages are counted: the registry's `MessageLedger` (table `message_counts`). */
export interface MessageCounter {
  record(count: MessageRecord): void;
}

/** Options of {@link MessageService}. */
export interface MessageServiceOptions {
  readonly ctx: SupervisorContext;
  /** The broker's messaging methods (the supervisor's `ctx.broker`). */
  readonly broker: MessagingBroker;
  /** The message ledger; undefined: messages are audited but not counted. */
  readonly ledger?: MessageCounter;
  /** The live status and last heartbeat of a running agent, for presence; undefined when not running. */
  readonly live?: (name: string) => { readonly status: string; readonly lastHeartbeatMs: number | null } | undefined;
}

/** A topic subscription a caller holds, re-decided when the policy changes. */
interface TopicWatch {
  readonly self: string;
  readonly topic: string;
  sub: Subscription | undefined;
  readonly onEnd: ((reason: string) => void) | undefined;
  closed: boolean;
}

/** How many ids of its own topic messages and replies the service remembers, so its counters do not count them twice. */
const MAX_OWN_IDS = 10_000;

/** Adds `id` to `ids`, forgetting the oldest beyond {@link MAX_OWN_IDS}. */
function remember(ids: Set<string>, id: string): void {
  ids.add(id);
  if (ids.size > MAX_OWN_IDS) ids.delete(ids.values().next().value!);
}

/** The JSON encoding of a body, its size and digest. @throws {WarrenError} `WARREN_MESSAGE_INVALID` when it cannot be encoded or is too large. */
export function digestBody(body: unknown): { readonly bytes: number; readonly sha256: string } {
  if (body === undefined) throw new WarrenError('WARREN_MESSAGE_INVALID', 'body: is required (any JSON value)');
  let text: string;
  try {
    text = JSON.stringify(body);
  } catch (error) {
    throw new WarrenError('WARREN_MESSAGE_INVALID', `body: cannot be encoded as JSON: ${(error as Error).message}`);
  }
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_BODY_BYTES) throw new WarrenError('WARREN_MESSAGE_INVALID', `body: ${bytes} bytes encoded, more than ${MAX_BODY_BYTES}`);
  return { bytes, sha256: createHash('sha256').update(text).digest('hex') };
}

function checkAgentName(field: string, name: unknown): string {
  if (typeof name !== 'string' || !AGENT_NAME.test(name)) throw new WarrenError('WARREN_MESSAGE_INVALID', `${field}: ${JSON.stringify(name)} is not an agent name ([a-z][a-z0-9-]{0,31})`);
  return name;
}

function checkTopic(topic: unknown): string {
  if (typeof topic !== 'string' || !TOPIC_NAME.test(topic)) throw new WarrenError('WARREN_MESSAGE_INVALID', `topic: ${JSON.stringify(topic)} is not a topic name ([a-z0-9][a-z0-9_-]{0,62})`);
  return topic;
}

function checkId(field: string, id: unknown): string {
  if (typeof id !== 'string' || !MESSAGE_ID.test(id)) throw new WarrenError('WARREN_MESSAGE_INVALID', `${field}: ${JSON.stringify(id)} is not a message id (1-128 of A-Z a-z 0-9 _ : -)`);
  return id;
}

function intIn(field: string, value: number | undefined, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) throw new WarrenError('WARREN_MESSAGE_INVALID', `${field}: must be an integer from ${min} to ${max}, got ${String(value)}`);
  return value;
}

/** The audit actor of a sender: `agent:<name>`, or a person's `user:<name>` as it is. */
function actorOf(sender: string): string {
  return sender.startsWith('user:') ? sender : `agent:${sender}`;
}

/** A fresh message id (a UUID v4). */
function newId(): string {
  return randomUUID();
}

function brokerError(error: unknown): WarrenError {
  if (error instanceof WarrenError && (error.code === 'WARREN_MESSAGE_INVALID' || error.code === 'WARREN_MESSAGE_TIMEOUT')) return error;
  return new WarrenError('WARREN_BROKER', `the broker failed: ${(error as Error).message}`, { cause: error });
}

/**
 * {@link MessagingPort} over the supervisor (see the module comment). Start the relay of the outbox,
 * the topic counter and the presence answers with {@link startRelay}; {@link close} stops them and
 * the topic subscriptions it handed out.
 */
export class MessageService implements MessagingPort {
  private readonly ctx: SupervisorContext;
  private readonly log: Logger;
  /** Inbox deliveries handed out and not yet acknowledged, by agent then message id. */
  private readonly delivered = new Map<string, Map<string, Delivery<AgentMessage>>>();
  private readonly watches = new Set<TopicWatch>();
  private readonly ownTopicIds = new Set<string>();
  /** Ids of replies the service published itself, so the reply counter does not count them twice. */
  private readonly ownReplyIds = new Set<string>();
  private relays: Subscription[] = [];
  private closed = false;

  constructor(private readonly options: MessageServiceOptions) {
    this.ctx = options.ctx;
    this.log = options.ctx.log.child({ component: 'messaging' });
  }

  async send(self: string, input: { readonly to: string; readonly body: unknown; readonly id?: string }): Promise<{ readonly id: string }> {
    return this.deliver(self, { ...input, request: false }, 'channel');
  }

  async receive(self: string, input: { readonly max?: number; readonly waitMs?: number }): Promise<readonly ReceivedMessage[]> {
    checkAgentName('self', self);
    const max = intIn('max', input.max, 1, 100, 10);
    const waitMs = intIn('waitMs', input.waitMs, 0, 30_000, 0);
    let deliveries: readonly Delivery<AgentMessage>[];
    try {
      // The broker waits 0 ms or at least 1000 ms (the client library's shortest pull).
      deliveries = await this.options.broker.fetchMessages(self, { max, expiresMs: waitMs === 0 ? 0 : Math.max(waitMs, 1_000) });
    } catch (error) {
      throw brokerError(error);
    }
    let kept = this.delivered.get(self);
    if (kept === undefined) this.delivered.set(self, (kept = new Map<string, Delivery<AgentMessage>>()));
    return deliveries.map((d) => {
      kept.set(d.data.id, d);
      return { id: d.data.id, from: d.data.from, body: d.data.body, sentAtMs: d.data.sentAtMs, request: d.data.request === true, deliveries: d.deliveryCount };
    });
  }

  ack(self: string, ids: readonly string[]): Promise<number> {
    const kept = this.delivered.get(self);
    let acked = 0;
    for (const id of ids) {
      const delivery = kept?.get(id);
      if (delivery === undefined) continue;
      kept!.delete(id);
      delivery.ack();
      acked += 1;
    }
    return Promise.resolve(acked);
  }

  async request(self: string, input: { readonly to: string; readonly body: unknown; readonly timeoutMs?: number }): Promise<ReplyMessage> {
    const timeoutMs = intIn('timeoutMs', input.timeoutMs, 100, 300_000, 30_000);
    const id = newId();
    checkAgentName('to', input.to);
    // Subscribed to the reply before the request is sent, so a quick answer is not missed.
    const answer = this.options.broker.awaitReply(self, id, timeoutMs);
    answer.catch(() => undefined);
    await this.deliver(self, { to: input.to, body: input.body, id, request: true }, 'channel');
    try {
      const reply = await answer;
      return { id: reply.id, from: reply.from, inReplyTo: reply.inReplyTo, body: reply.body, sentAtMs: reply.sentAtMs };
    } catch (error) {
      if (error instanceof MessageTimeoutError) throw new WarrenError('WARREN_MESSAGE_TIMEOUT', `no reply from ${input.to} to request ${id} within ${timeoutMs} ms`);
      throw brokerError(error);
    }
  }

  async reply(self: string, input: { readonly to: string; readonly inReplyTo: string; readonly body: unknown }): Promise<{ readonly id: string }> {
    const to = input.to.startsWith('user:') ? input.to : checkAgentName('to', input.to);
    const inReplyTo = checkId('inReplyTo', input.inReplyTo);
    const id = newId();
    const digest = digestBody(input.body);
    const details: MessageEventDetails = { to, id, ...digest, inReplyTo, via: 'channel' };
    this.decide(self, `agent:${to}`, 'message', details, to, '');
    remember(this.ownReplyIds, id);
    try {
      this.options.broker.publishReply({ id, from: self, to, inReplyTo, body: input.body, sentAtMs: Date.now() });
    } catch (error) {
      this.ownReplyIds.delete(id);
      throw brokerError(error);
    }
    this.ctx.emit({ actor: actorOf(self), action: 'message.sent', object: `agent:${to}`, details });
    this.count(self, to, '', digest.bytes, true);
    return { id };
  }

  async publish(self: string, input: { readonly topic: string; readonly body: unknown }): Promise<{ readonly id: string }> {
    const topic = checkTopic(input.topic);
    const id = newId();
    const digest = digestBody(input.body);
    const details: MessageEventDetails = { topic, id, ...digest, via: 'channel' };
    this.decide(self, `topic:${topic}`, 'publish', details, '*', topic);
    remember(this.ownTopicIds, id);
    try {
      this.options.broker.publishTopic({ id, from: self, topic, body: input.body, sentAtMs: Date.now() });
    } catch (error) {
      this.ownTopicIds.delete(id);
      throw brokerError(error);
    }
    this.ctx.emit({ actor: actorOf(self), action: 'message.published', object: `topic:${topic}`, details });
    this.count(self, '*', topic, digest.bytes, true);
    return { id };
  }

  async subscribe(self: string, topic: string, onMessage: (message: TopicMessageView) => void, onEnd?: (reason: string) => void): Promise<{ close(): void }> {
    checkTopic(topic);
    this.ctx.authorizer.require({ principal: self, object: `topic:${topic}`, action: 'subscribe' }, `policy denies ${self} subscribing to topic ${topic}`);
    const watch: TopicWatch = { self, topic, sub: undefined, onEnd, closed: false };
    let sub: Subscription;
    try {
      sub = this.options.broker.subscribeTopics(topic, (msg) => {
        if (watch.closed) return;
        // Memoized: asked (and audited) again only after the policy changed.
        if (!this.ctx.authorizer.authorize({ principal: self, object: `topic:${topic}`, action: 'subscribe', memo: true }).allowed) {
          this.endWatch(watch, 'the policy no longer allows this subscription');
          return;
        }
        onMessage({ id: msg.id, from: msg.from, topic: msg.topic, body: msg.body, sentAtMs: msg.sentAtMs });
      });
    } catch (error) {
      throw brokerError(error);
    }
    watch.sub = sub;
    this.watches.add(watch);
    return { close: () => this.endWatch(watch, null) };
  }

  /** Ends a subscription handed out: stops it and, with a reason, tells its holder. Idempotent. */
  private endWatch(watch: TopicWatch, reason: string | null): void {
    if (watch.closed) return;
    watch.closed = true;
    this.watches.delete(watch);
    watch.sub?.stop().catch((error: unknown) => this.log.debug({ err: error, topic: watch.topic }, 'cannot stop a topic subscription'));
    if (reason !== null) watch.onEnd?.(reason);
  }

  presence(self: string): Promise<readonly PresenceEntry[]> {
    return Promise.resolve(this.presenceOf(self));
  }

  private presenceOf(self: string): readonly PresenceEntry[] {
    const entries: PresenceEntry[] = [];
    for (const row of this.ctx.registry.agents()) {
      if (row.name === self) continue;
      // Unaudited: a listing, not an action (as MCP's tool list).
      if (!this.ctx.policy.explain(self, `agent:${row.name}`, 'message').allowed) continue;
      const live = this.options.live?.(row.name);
      const status = live === undefined ? null : live.status === 'busy' ? 'busy' : live.status === 'idle' ? 'idle' : null;
      entries.push({ name: row.name, template: row.template, state: row.state, status, lastSeenMs: live?.lastHeartbeatMs ?? null });
    }
    return entries;
  }

  /**
   * Decides every topic subscription handed out again (after a policy reload): one no longer
   * allowed is closed and its `onEnd` called. Each decision is audited.
   */
  revalidate(): void {
    for (const watch of [...this.watches]) {
      if (this.ctx.authorizer.authorize({ principal: watch.self, object: `topic:${watch.topic}`, action: 'subscribe' }).allowed) continue;
      this.endWatch(watch, 'the policy no longer allows this subscription');
    }
  }

  /**
   * Starts what serves agents connected to NATS directly: the relay of their outbox
   * (`<p>.send.<from>.<to>`: the same checks as {@link send}, then the inbox; a refused one is
   * terminated), the counters of topic messages and replies (each one not published by this
   * service, i.e. by an agent on NATS directly, is counted and audited as `message.published` or
   * `message.sent` with `via: 'outbox'`) and the presence answers.
   * @throws what the broker throws when a consumer or subscription cannot be made.
   */
  async startRelay(): Promise<void> {
    const { broker } = this.options;
    this.relays.push(
      await broker.consumeOutbox(async (delivery) => {
        const { from, to, id, body, request } = delivery.data;
        try {
          await this.deliver(from, { to, body, id, request: request === true }, 'outbox');
          delivery.ack();
        } catch (error) {
          const code = (error as WarrenError).code;
          if (code === 'WARREN_BROKER') delivery.nak(1_000);
          else delivery.term((error as Error).message);
        }
      }),
    );
    this.relays.push(
      broker.subscribeTopics('*', (msg) => {
        if (this.ownTopicIds.delete(msg.id)) return;
        let digest: { bytes: number; sha256: string };
        try {
          digest = digestBody(msg.body);
        } catch {
          return;
        }
        this.ctx.emit({ actor: actorOf(msg.from), action: 'message.published', object: `topic:${msg.topic}`, details: { topic: msg.topic, id: msg.id, ...digest, via: 'outbox' } });
        this.count(msg.from, '*', msg.topic, digest.bytes, true);
      }),
    );
    this.relays.push(
      broker.subscribeReplies((msg) => {
        if (this.ownReplyIds.delete(msg.id)) return;
        let digest: { bytes: number; sha256: string };
        try {
          digest = digestBody(msg.body);
        } catch {
          return;
        }
        this.ctx.emit({ actor: actorOf(msg.from), action: 'message.sent', object: `agent:${msg.to}`, details: { to: msg.to, id: msg.id, ...digest, inReplyTo: msg.inReplyTo, via: 'outbox' } });
        this.count(msg.from, msg.to, '', digest.bytes, true);
      }),
    );
    this.relays.push(broker.servePresence((from) => ({ agents: this.presenceOf(from) })));
  }

  /** Stops the relay and every topic subscription handed out (without calling their `onEnd`). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stopping = [...this.relays, ...[...this.watches].flatMap((w) => (w.sub === undefined ? [] : [w.sub]))];
    this.relays = [];
    for (const watch of this.watches) watch.closed = true;
    this.watches.clear();
    this.delivered.clear();
    await Promise.allSettled(stopping.map((s) => s.stop()));
  }

  /** Checks, decides, publishes, audits, counts and wakes: the one path of a direct message or request. */
  private async deliver(
    self: string,
    input: { readonly to: string; readonly body: unknown; readonly id?: string; readonly request: boolean },
    via: 'channel' | 'outbox',
  ): Promise<{ readonly id: string }> {
    const to = checkAgentName('to', input.to);
    const id = input.id === undefined ? newId() : checkId('id', input.id);
    const digest = digestBody(input.body);
    const details: MessageEventDetails = { to, id, ...digest, ...(input.request ? { request: true } : {}), via };
    this.decide(self, `agent:${to}`, 'message', details, to, '');
    const row = this.ctx.state.agent(to);
    if (row === undefined && this.ctx.accounts.get(to) === undefined) {
      this.deny(self, `agent:${to}`, { ...details, reason: `no agent named ${to}` }, to, '');
      throw new WarrenError('WARREN_AGENT_NOT_FOUND', `no agent named ${JSON.stringify(to)}`);
    }
    let duplicate: boolean;
    try {
      ({ duplicate } = await this.options.broker.publishMessage({ id, from: self, to, body: input.body, sentAtMs: Date.now(), ...(input.request ? { request: true } : {}) }));
    } catch (error) {
      throw brokerError(error);
    }
    // A re-send of an id the inbox already holds (within the broker's duplicate window) is dropped
    // by the broker: already audited, counted and woken for.
    if (duplicate) return { id };
    this.ctx.emit({ actor: actorOf(self), action: 'message.sent', object: `agent:${to}`, details });
    this.count(self, to, '', digest.bytes, true);
    if (row?.state === 'sleeping') this.wake(self, to, id);
    return { id };
  }

  /** Decides (audited); a denial is audited as `message.denied`, counted, and thrown. */
  private decide(self: string, object: string, action: string, details: MessageEventDetails, to: string, topic: string): void {
    const decision = this.ctx.authorizer.authorize({ principal: self, object, action, context: { messageId: details.id, sha256: details.sha256 } });
    if (decision.allowed) return;
    const reason = `policy denies ${self} ${action} on ${object}`;
    this.deny(self, object, { ...details, reason }, to, topic);
    throw new WarrenError('WARREN_POLICY_DENIED', reason);
  }

  private deny(self: string, object: string, details: MessageEventDetails, to: string, topic: string): void {
    this.ctx.emit({ actor: actorOf(self), action: 'message.denied', object, details });
    this.count(self, to, topic, details.bytes, false);
  }

  private count(from: string, to: string, topic: string, bytes: number, allowed: boolean): void {
    try {
      this.options.ledger?.record({ from, to, topic, bytes, allowed, timeMs: Date.now() });
    } catch (error) {
      this.log.warn({ err: error, from, to, topic }, 'cannot count a message');
    }
  }

  /** Queues the wake of sleeping agent `to` when `(from, agent:<to>, wake)` allows (decision audited, outcome `message.wake`). */
  private wake(from: string, to: string, id: string): void {
    const allowed = this.ctx.authorizer.authorize({ principal: from, object: `agent:${to}`, action: 'wake', context: { messageId: id } }).allowed;
    let command: number | null = null;
    if (allowed) {
      const queued = this.ctx.registry.commands.queued().some((c) => c.kind === CommandKind.agentWake && c.target === to);
      if (!queued) command = this.ctx.registry.commands.enqueue(CommandKind.agentWake, to, from, Date.now());
      this.ctx.requestTick();
    }
    this.ctx.emit({ actor: actorOf(from), action: 'message.wake', object: `agent:${to}`, details: { id, woken: allowed, command } });
  }
}

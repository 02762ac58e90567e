/**
 * The broker over NATS JetStream (`NatsBroker`, made by `connectBroker` in `broker-connect.ts`):
 * signed publishes, consume loops (`consume-loop.ts`), assignment, result and outbox consumers,
 * and riding a cluster's leader elections. Messaging and core subscriptions are in
 * `broker-messaging.ts`, streams and consumers made, repaired and deleted in `broker-admin.ts`.
 * The contract it implements is `broker-types.ts`.
 */
import type { ConsumerInfo, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/nats-core';
import { ConfigError, type Logger } from '@warren/core';
import { isValidTracestate, parseTraceparent, TraceparentError } from '@warren/telemetry';
import { BrokerError, InvalidMessageError } from './errors.js';
import {
  agentMessageSchema,
  assignmentMessageSchema,
  decodeMessage,
  outboxMessageSchema,
  progressMessageSchema,
  replyMessageSchema,
  resultMessageSchema,
  topicMessageSchema,
  validateMessage,
  type AgentMessage,
  type AssignmentMessage,
  type ProgressMessage,
  type ReplyMessage,
  type ResultMessage,
  type TopicMessage,
} from './messages.js';
import { agentSigningKey, keyedMessageId, signMessage, verifySignature } from './signing.js';
import {
  FROM_HEADER,
  SIGNATURE_HEADER,
  TRACEPARENT_HEADER,
  TRACESTATE_HEADER,
  type BrokerNamespace,
} from './subjects.js';
import {
  ELECTION_RETRY_FIRST_MS,
  ELECTION_RETRY_MAX_MS,
  PULL_BATCH,
  PULL_EXPIRES_MS,
  AGENT_PULL_EXPIRES_MS,
  errorText,
  headerRecord,
  headerValue,
  isElectionError,
  traceHeaders,
  versionAtLeast,
} from './broker-support.js';
import { ConsumeLoop, consumeSettings, type ConsumerSpec } from './consume-loop.js';
import * as admin from './broker-admin.js';
import { AgentLedger } from './agent-ledger.js';
import * as messaging from './broker-messaging.js';
import type {
  ConnectBrokerOptions,
  EnsureStreamsOptions,
  ConsumeOptions,
  PublishOptions,
  PublishAck,
  Delivery,
  Subscription,
  AgentPending,
  DeleteAgentConsumersOptions,
  Broker,
  FetchMessagesOptions,
  OutboxDelivery,
  StrandedRepair,
} from './broker-types.js';

/** The one {@link Broker}: a NATS connection, its JetStream client and what they consume. */
export class NatsBroker implements Broker {
  readonly js: JetStreamClient;
  readonly loops = new Set<ConsumeLoop<unknown>>();
  private readonly subscriptions = new Set<Subscription>();
  /** Ends every `awaitReply` still waiting (on close). */
  readonly replyWaiters = new Set<() => void>();
  /** Inbox consumers `fetchMessages` made or checked on this connection, with their `<ackWaitMs>:<maxDeliver>`. */
  readonly ensuredInboxes = new Map<string, string>();
  /** What this connection knows of each agent's assignments and consumers on the server (forgotten when the connection is lost). */
  readonly ledger = new AgentLedger();
  /** Per-agent signing keys derived from the master key, by agent. */
  private readonly agentKeys = new Map<string, Uint8Array>();
  private closing: Promise<void> | undefined;
  private readonly statusDone: Promise<void>;

  constructor(
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    readonly log: Logger,
    private readonly options: ConnectBrokerOptions,
    readonly timeoutMs: number,
    readonly namespace: BrokerNamespace,
  ) {
    this.js = jsm.jetstream();
    this.statusDone = this.watchStatus();
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      switch (s.type) {
        case 'disconnect':
          this.ledger.forget();
          this.log.warn({ server: s.server }, 'disconnected from NATS');
          break;
        case 'reconnect':
          this.ledger.forget();
          this.log.info({ server: s.server }, 'reconnected to NATS');
          break;
        case 'reconnecting':
          this.log.debug({}, 'reconnecting to NATS');
          break;
        case 'error':
          this.log.error({ err: s.error }, 'NATS connection error');
          break;
        case 'ldm':
          this.log.warn({ server: s.server }, 'NATS server entered lame duck mode');
          break;
        case 'slowConsumer':
          this.log.warn({ subject: s.sub.getSubject(), pending: s.pending }, 'slow NATS subscription');
          break;
        case 'staleConnection':
          this.log.warn({}, 'stale NATS connection');
          break;
        default:
          break;
      }
    }
  }

  reportInvalid(subject: string, error: InvalidMessageError): void {
    if (this.options.onInvalid) {
      try {
        this.options.onInvalid(subject, error);
      } catch (callbackError) {
        this.log.error({ err: callbackError, subject }, 'onInvalid callback threw');
      }
      return;
    }
    this.log.warn({ subject, field: error.field, reason: error.reason }, 'dropped an invalid message');
  }

  get handlerErrorNakDelayMs(): number {
    return this.options.handlerErrorNakDelayMs ?? 1_000;
  }

  /** Whether the connected server takes a reason with `+TERM` (nats-server ≥ 2.11; older ones ignore such a term). */
  get termTakesReason(): boolean {
    return versionAtLeast(this.nc.info?.version, 2, 11);
  }

  assertOpen(operation: string, target: string): void {
    if (this.closing || this.nc.isClosed()) throw new BrokerError(operation, target, 'the broker connection is closed');
  }

  /**
   * Runs `fn` and runs it again while it fails with {@link isElectionError}, with exponential
   * backoff and jitter, until `electionRetryMs` has passed since the first attempt or the broker
   * closes; then the last error is thrown.
   */
  async rideElection<T>(operation: string, target: string, fn: () => Promise<T>): Promise<T> {
    const startMs = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        const leftMs = startMs + this.electionRetryMs - Date.now();
        if (!isElectionError(error) || leftMs <= 0 || this.closing || this.nc.isClosed()) throw error;
        const ceiling = Math.min(ELECTION_RETRY_FIRST_MS * 2 ** (attempt - 1), ELECTION_RETRY_MAX_MS);
        const delayMs = Math.min(leftMs, Math.round(ceiling / 2 + (Math.random() * ceiling) / 2));
        this.log.info({ operation, target, attempt, delayMs, reason: errorText(error) }, 'JetStream unavailable (no leader?); retrying');
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  get electionRetryMs(): number {
    return this.options.electionRetryMs ?? 15_000;
  }

  async ensureStreams(options?: EnsureStreamsOptions): Promise<void> {
    const replicas = options?.replicas ?? 1;
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
      throw new ConfigError('ensureStreams replicas', `must be an integer from 1 to 5, got ${String(replicas)}`);
    }
    this.assertOpen('ensureStreams', this.namespace.streams.map((s) => s.name).join(','));
    for (const spec of this.namespace.streams) {
      try {
        await this.rideElection('ensureStreams', spec.name, () => admin.ensureStream(this, spec, replicas));
      } catch (error) {
        if (error instanceof BrokerError) throw error;
        throw new BrokerError('ensureStreams', spec.name, errorText(error), { cause: error });
      }
    }
  }

  private buildHeaders(extra: Record<string, string>, options: PublishOptions | undefined, subject: string): MsgHdrs {
    const h = natsHeaders();
    for (const [key, value] of Object.entries(extra)) h.set(key, value);
    if (options?.traceparent !== undefined) {
      try {
        parseTraceparent(options.traceparent);
      } catch (error) {
        if (!(error instanceof TraceparentError)) throw error;
        throw new InvalidMessageError(subject, 'traceparent', `must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>); its ${error.field} is not`, { cause: error });
      }
      h.set(TRACEPARENT_HEADER, options.traceparent);
    }
    if (options?.tracestate !== undefined) {
      if (options.traceparent === undefined) throw new InvalidMessageError(subject, 'tracestate', 'needs a traceparent beside it');
      if (!isValidTracestate(options.tracestate)) throw new InvalidMessageError(subject, 'tracestate', 'must be a W3C tracestate (key=value list members)');
      if (options.tracestate.trim() !== '') h.set(TRACESTATE_HEADER, options.tracestate);
    }
    return h;
  }

  /**
   * The key that signs `subject`: an agent's broker has only its own key; a supervisor's broker
   * derives each agent's key for its assignment and result subjects and uses the master key for
   * everything else. Undefined without keys.
   */
  private signingKeyFor(subject: string): Uint8Array | undefined {
    const own = this.options.agentKey;
    if (own) return own.key;
    const master = this.options.signingKey;
    if (!master) return undefined;
    const ns = this.namespace;
    if (!subject.startsWith(`${ns.assignPrefix}.`) && !subject.startsWith(`${ns.resultPrefix}.`)) return master;
    const agent = ns.agentOfSubject(subject);
    if (agent === undefined) return master;
    let key = this.agentKeys.get(agent);
    if (!key) {
      key = agentSigningKey(master, agent);
      this.agentKeys.set(agent, key);
    }
    return key;
  }

  private async publishStored(
    stream: string,
    subject: string,
    payload: unknown,
    msgId: string,
    h: MsgHdrs,
  ): Promise<PublishAck> {
    this.assertOpen('publish', subject);
    const body = JSON.stringify(payload);
    const key = this.signingKeyFor(subject);
    if (key) {
      h.set(SIGNATURE_HEADER, signMessage(key, subject, body));
      msgId = keyedMessageId(key, subject, msgId);
    }
    try {
      // The message id makes a retry that reaches the stream twice count once (duplicate window).
      const ack = await this.rideElection('publish', subject, () =>
        this.js.publish(subject, body, {
          msgID: msgId,
          headers: h,
          expect: { streamName: stream },
          timeout: this.timeoutMs,
        }),
      );
      return { seq: ack.seq, duplicate: ack.duplicate };
    } catch (error) {
      throw new BrokerError('publish', subject, `JetStream did not store message ${msgId}: ${errorText(error)}`, { cause: error });
    }
  }

  async publishAssignment(msg: AssignmentMessage, options?: PublishOptions): Promise<PublishAck> {
    const subject = this.namespace.assignSubject(msg.agent);
    const data = validateMessage(assignmentMessageSchema, subject, msg);
    const id = `${data.taskId}:${data.attempt}`;
    const h = this.buildHeaders({}, options, subject);
    const settled = this.ledger.publishing(data.agent);
    try {
      return await this.publishStored(this.namespace.assignStream, subject, data, id, h);
    } finally {
      settled();
    }
  }

  async publishResult(msg: ResultMessage, options?: PublishOptions): Promise<PublishAck> {
    const subject = this.namespace.resultSubject(msg.agent);
    const data = validateMessage(resultMessageSchema, subject, msg);
    const id = `${data.taskId}:${data.attempt}:result`;
    return this.publishStored(this.namespace.resultsStream, subject, data, id, this.buildHeaders({}, options, subject));
  }

  async publishMessage(msg: AgentMessage, options?: PublishOptions): Promise<PublishAck> {
    const subject = this.namespace.messageSubject(msg.to, msg.from);
    const data = validateMessage(agentMessageSchema, subject, msg);
    const h = this.buildHeaders({ [FROM_HEADER]: data.from }, options, subject);
    return this.publishStored(this.namespace.messagesStream, subject, data, data.id, h);
  }

  publishProgress(msg: ProgressMessage, options?: PublishOptions): void {
    const subject = this.namespace.progressSubject(msg.agent, msg.taskId);
    const data = validateMessage(progressMessageSchema, subject, msg);
    this.publishCore(subject, data, options);
  }

  publishEvent(kind: string, payload: unknown): void {
    const subject = this.namespace.eventSubject(kind);
    if (payload === undefined) throw new InvalidMessageError(subject, '', 'an event payload is required (any JSON value)');
    this.publishCore(subject, payload, undefined);
  }

  private publishCore(subject: string, payload: unknown, options: PublishOptions | undefined): void {
    this.assertOpen('publish', subject);
    const h = options?.traceparent === undefined && options?.tracestate === undefined ? undefined : this.buildHeaders({}, options, subject);
    try {
      this.nc.publish(subject, JSON.stringify(payload), h ? { headers: h } : undefined);
    } catch (error) {
      throw new BrokerError('publish', subject, errorText(error), { cause: error });
    }
  }

  subscribeCore(subject: string, onMsg: (msg: Msg) => void): Subscription {
    this.assertOpen('subscribe', subject);
    let sub;
    try {
      sub = this.nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) {
            this.log.error({ err, subject }, 'subscription failed');
            return;
          }
          onMsg(msg);
        },
      });
    } catch (error) {
      throw new BrokerError('subscribe', subject, errorText(error), { cause: error });
    }
    const subscription: Subscription = {
      stop: async () => {
        this.subscriptions.delete(subscription);
        if (!sub.isClosed()) sub.unsubscribe();
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  subscribeProgress(handler: (msg: ProgressMessage) => void, options?: { agent?: string }): Subscription {
    return messaging.subscribeProgress(this, handler, options);
  }

  subscribeEvents(handler: (kind: string, payload: unknown) => void): Subscription {
    return messaging.subscribeEvents(this, handler);
  }

  /** Creates the durable consumer of `spec` or brings its ack wait, max deliver and max ack pending up to date. */
  async ensureConsumer(spec: ConsumerSpec<unknown>): Promise<void> {
    await admin.ensureConsumer(this, spec);
  }

  /**
   * Opens the pull subscription of an existing consumer; with `info` (the server's answer of the
   * `ensureConsumer` just before) without reading the consumer again.
   */
  async openMessages(spec: ConsumerSpec<unknown>, info?: ConsumerInfo): Promise<ConsumerMessages> {
    const consumer =
      info === undefined
        ? await this.rideElection('consume', `${spec.stream}/${spec.durable}`, () => this.js.consumers.get(spec.stream, spec.durable))
        : this.js.consumers.getConsumerFromInfo(info);
    // A batch of PULL_BATCH (see there): max_ack_pending, not the batch, bounds what is in flight. Pulls expire
    // after PULL_EXPIRES_MS (an agent's assignments: AGENT_PULL_EXPIRES_MS) and the server
    // heartbeats every half of it: a pull whose consumer leader died (a server of a cluster lost)
    // is noticed after two missed heartbeats and made again.
    return consumer.consume({ max_messages: Math.max(PULL_BATCH, spec.maxInFlight), expires: spec.pullExpiresMs ?? PULL_EXPIRES_MS });
  }

  private async startConsumer<T>(spec: ConsumerSpec<T>): Promise<Subscription> {
    this.assertOpen('consume', `${spec.stream}/${spec.durable}`);
    const anySpec = spec as unknown as ConsumerSpec<unknown>;
    const info = await admin.ensureConsumer(this, anySpec);
    let messages: ConsumerMessages;
    try {
      messages = await this.openMessages(anySpec, info);
    } catch (error) {
      throw new BrokerError('consume', `${spec.stream}/${spec.durable}`, errorText(error), { cause: error });
    }
    const loop = new ConsumeLoop<unknown>(this, anySpec, () => this.loops.delete(loop));
    this.loops.add(loop);
    loop.start(messages);
    return loop;
  }

  /** Parses one JetStream message and runs the handler; invalid messages are terminated and reported. */
  async dispatch<T>(m: JsMsg, spec: ConsumerSpec<T>): Promise<void> {
    const delivery = this.toDelivery(m, spec);
    if (!delivery) return;
    try {
      await spec.handler(delivery);
    } catch (error) {
      this.log.warn({ err: error, subject: m.subject, seq: m.seq, deliveryCount: delivery.deliveryCount }, 'handler failed; message nak\'ed');
      delivery.nak(this.handlerErrorNakDelayMs);
    }
  }

  /** Checks one JetStream message against `spec`: its delivery, or undefined after terminating and reporting an invalid one. */
  toDelivery<T>(m: JsMsg, spec: Omit<ConsumerSpec<T>, 'handler'>): Delivery<T> | undefined {
    const hdrs = headerRecord(m.headers);
    let data: T;
    try {
      const key = spec.signed ? this.signingKeyFor(m.subject) : undefined;
      if (key) {
        const signature = headerValue(hdrs, SIGNATURE_HEADER);
        let refusal = verifySignature(key, m.subject, m.data, signature);
        // Assignments and results stored before per-agent keys were signed with the master key.
        const master = this.options.signingKey;
        if (refusal && master && key !== master && verifySignature(master, m.subject, m.data, signature) === undefined) refusal = undefined;
        if (refusal) throw new InvalidMessageError(m.subject, SIGNATURE_HEADER, refusal);
      }
      data = spec.decode(m.subject, m.data);
      spec.check(data, m.subject, hdrs);
    } catch (error) {
      if (!(error instanceof InvalidMessageError)) throw error;
      this.settle(m, 'term', () => m.term(this.termTakesReason ? error.message.slice(0, 200) : undefined));
      this.reportInvalid(m.subject, error);
      return undefined;
    }
    return {
      data,
      subject: m.subject,
      seq: m.seq,
      deliveryCount: m.info.deliveryCount,
      headers: hdrs,
      ...traceHeaders(hdrs),
      ack: () => this.settle(m, 'ack', () => m.ack()),
      nak: (delayMs?: number) => this.settle(m, 'nak', () => m.nak(delayMs)),
      term: (reason: string) => {
        this.log.info({ subject: m.subject, seq: m.seq, reason }, 'message terminated');
        this.settle(m, 'term', () => m.term(this.termTakesReason ? reason.slice(0, 200) : undefined));
      },
      working: () => this.settle(m, 'working', () => m.working()),
    };
  }

  settle(m: JsMsg, what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.log.warn({ err: error, subject: m.subject, seq: m.seq }, `cannot ${what} a message (connection closed?)`);
    }
  }

  /** The consumer spec of `agent`'s assignments, without its handler and settings. */
  private assignSpec(agent: string): Pick<ConsumerSpec<AssignmentMessage>, 'stream' | 'durable' | 'filter' | 'decode' | 'check' | 'agent' | 'signed'> {
    const ns = this.namespace;
    return {
      stream: ns.assignStream,
      durable: ns.assignConsumerName(agent),
      filter: ns.assignSubject(agent),
      decode: (subject, bytes) => decodeMessage(assignmentMessageSchema, subject, bytes),
      check: (data, subject) => {
        if (data.agent !== agent) {
          throw new InvalidMessageError(subject, 'agent', `is '${data.agent}' but the subject names agent '${agent}'`);
        }
      },
      agent,
      signed: true,
    };
  }

  async ensureAssignConsumer(agent: string, options?: ConsumeOptions): Promise<void> {
    const spec: ConsumerSpec<AssignmentMessage> = {
      ...this.assignSpec(agent),
      handler: () => Promise.resolve(),
      ...consumeSettings(options, 1, `ensureAssignConsumer(${agent})`),
    };
    this.assertOpen('ensureAssignConsumer', `${spec.stream}/${spec.durable}`);
    await this.ensureConsumer(spec as unknown as ConsumerSpec<unknown>);
  }

  async consumeAssignments(
    agent: string,
    handler: (delivery: Delivery<AssignmentMessage>) => Promise<void>,
    options?: ConsumeOptions,
  ): Promise<Subscription> {
    return this.startConsumer<AssignmentMessage>({
      ...this.assignSpec(agent),
      handler,
      ...consumeSettings(options, 1, `consumeAssignments(${agent})`),
      pullExpiresMs: AGENT_PULL_EXPIRES_MS,
    });
  }

  async consumeResults(handler: (delivery: Delivery<ResultMessage>) => Promise<void>, options?: ConsumeOptions): Promise<Subscription> {
    const ns = this.namespace;
    return this.startConsumer<ResultMessage>({
      stream: ns.resultsStream,
      durable: ns.resultsConsumer,
      filter: `${ns.resultPrefix}.>`,
      decode: (subject, bytes) => decodeMessage(resultMessageSchema, subject, bytes),
      check: (data, subject) => {
        const token = ns.agentOfSubject(subject);
        if (data.agent !== token) {
          throw new InvalidMessageError(subject, 'agent', `is '${data.agent}' but the subject names agent '${token ?? '(none)'}'`);
        }
      },
      handler,
      ...consumeSettings(options, 16, 'consumeResults'),
      agent: undefined,
      signed: true,
    });
  }

  async consumeMessages(
    agent: string,
    handler: (delivery: Delivery<AgentMessage>) => Promise<void>,
    options?: ConsumeOptions,
  ): Promise<Subscription> {
    return this.startConsumer<AgentMessage>({
      ...messaging.inboxSpec(this, agent),
      handler,
      ...consumeSettings(options, 1, `consumeMessages(${agent})`),
    });
  }

  fetchMessages(agent: string, options?: FetchMessagesOptions): Promise<Delivery<AgentMessage>[]> {
    return messaging.fetchMessages(this, agent, options);
  }

  async consumeOutbox(handler: (delivery: Delivery<OutboxDelivery>) => Promise<void>, options?: ConsumeOptions): Promise<Subscription> {
    const ns = this.namespace;
    return this.startConsumer<OutboxDelivery>({
      stream: ns.outboxStream,
      durable: ns.outboxConsumer,
      filter: `${ns.outboxPrefix}.>`,
      decode: (subject, bytes) => {
        const parts = ns.parseOutboxSubject(subject);
        if (!parts) throw new InvalidMessageError(subject, '', `the subject is not ${ns.outboxPrefix}.<from>.<to> with two agent names`);
        return { ...decodeMessage(outboxMessageSchema, subject, bytes), from: parts.from, to: parts.to };
      },
      check: () => undefined,
      handler,
      ...consumeSettings(options, 16, 'consumeOutbox'),
      agent: undefined,
      signed: false,
    });
  }

  publishTopic(msg: TopicMessage, options?: PublishOptions): void {
    const subject = this.namespace.topicSubject(msg.topic, msg.from);
    const data = validateMessage(topicMessageSchema, subject, msg);
    this.publishCore(subject, data, options);
  }

  subscribeTopics(topic: string, handler: (msg: TopicMessage) => void): Subscription {
    return messaging.subscribeTopics(this, topic, handler);
  }

  publishReply(msg: ReplyMessage, options?: PublishOptions): void {
    const subject = this.namespace.replySubject(msg.to, msg.from, msg.inReplyTo);
    const data = validateMessage(replyMessageSchema, subject, msg);
    this.publishCore(subject, data, options);
  }

  subscribeReplies(handler: (msg: ReplyMessage) => void): Subscription {
    return messaging.subscribeReplies(this, handler);
  }

  awaitReply(requester: string, requestId: string, timeoutMs: number): Promise<ReplyMessage> {
    return messaging.awaitReply(this, requester, requestId, timeoutMs);
  }

  servePresence(answer: (from: string) => unknown): Subscription {
    return messaging.servePresence(this, answer);
  }

  deleteAgentConsumers(agent: string, options?: DeleteAgentConsumersOptions): Promise<void> {
    return admin.deleteAgentConsumers(this, agent, options);
  }

  releaseAgentConsumers(agent: string): Promise<void> {
    return admin.releaseAgentConsumers(this, agent);
  }

  resetResultsConsumer(): Promise<void> {
    return admin.resetResultsConsumer(this);
  }

  resultsBacklog(): Promise<number> {
    return admin.resultsBacklog(this);
  }

  purgeAssignments(agent: string): Promise<number> {
    return admin.purgeAssignments(this, agent);
  }

  repairStranded(target: { readonly agent: string } | 'results', options?: { readonly confirmAfterMs?: number }): Promise<StrandedRepair> {
    return admin.repairStranded(this, target, options);
  }

  clearPhantoms(target: { readonly agent: string } | 'results'): Promise<number> {
    return admin.clearPhantoms(this, target);
  }

  pendingFor(agent: string): Promise<AgentPending> {
    return admin.pendingFor(this, agent);
  }

  pending(agent: string): Promise<AgentPending> {
    return this.pendingFor(agent);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const cancel of [...this.replyWaiters]) cancel();
      await Promise.allSettled([...this.loops].map((l) => l.stop()));
      await Promise.allSettled([...this.subscriptions].map((s) => s.stop()));
      if (!this.nc.isClosed()) await admin.dropKeptConsumers(this);
      if (!this.nc.isClosed()) {
        const drainTimeoutMs = this.options.drainTimeoutMs ?? 5_000;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), drainTimeoutMs);
        });
        const drained = this.nc.drain().then(
          () => 'drained' as const,
          (error: unknown) => {
            this.log.debug({ err: error }, 'drain failed; closing');
            return 'failed' as const;
          },
        );
        const outcome = await Promise.race([drained, timedOut]);
        clearTimeout(timer);
        if (outcome !== 'drained') {
          if (outcome === 'timeout') this.log.warn({ drainTimeoutMs }, 'NATS drain timed out; closing');
          await this.nc.close().catch(() => undefined);
        }
      }
      await this.statusDone.catch(() => undefined);
      this.log.debug({}, 'broker closed');
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

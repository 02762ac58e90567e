/**
 * The broker over NATS JetStream (`connectBroker`): streams and durable consumers of the subjects
 * in `subjects.ts`, signed publishes, consume loops (`consume-loop.ts`), inbox pulls, the outbox
 * relay's consumer, topics, replies and presence, stranded-consumer repair, and riding a cluster's
 * leader elections. The contract it implements is `broker-types.ts`.
 */
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import {
  credsAuthenticator,
  nkeyAuthenticator,
  headers as natsHeaders,
  nanos,
  usernamePasswordAuthenticator,
  type Authenticator,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
} from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { ConfigError, silentLogger, type Logger } from '@warren/core';
import { isValidTracestate, parseTraceparent, TraceparentError } from '@warren/telemetry';
import { BrokerError, InvalidMessageError, MessageTimeoutError } from './errors.js';
import { findPhantoms, findStranded, remakeConsumer } from './stranded.js';
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
  DUPLICATE_WINDOW_MS,
  FROM_HEADER,
  SIGNATURE_HEADER,
  TRACEPARENT_HEADER,
  TRACESTATE_HEADER,
  assertAgentName,
  assertRequestId,
  brokerNamespace,
  decodeTaskIdToken,
  type BrokerNamespace,
} from './subjects.js';
import {
  ELECTION_RETRY_FIRST_MS,
  ELECTION_RETRY_MAX_MS,
  PULL_EXPIRES_MS,
  errorText,
  headerRecord,
  headerValue,
  isApiError,
  isElectionError,
  positiveInteger,
  traceHeaders,
  versionAtLeast,
} from './broker-support.js';
import { ConsumeLoop, consumeSettings, type ConsumerSpec } from './consume-loop.js';
import type {
  BrokerCredentials,
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
class NatsBroker implements Broker {
  private readonly js: JetStreamClient;
  private readonly loops = new Set<ConsumeLoop<unknown>>();
  private readonly subscriptions = new Set<Subscription>();
  /** Ends every `awaitReply` still waiting (on close). */
  private readonly replyWaiters = new Set<() => void>();
  /** Inbox consumers `fetchMessages` made or checked on this connection, with their `<ackWaitMs>:<maxDeliver>`. */
  private readonly ensuredInboxes = new Map<string, string>();
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
          this.log.warn({ server: s.server }, 'disconnected from NATS');
          break;
        case 'reconnect':
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

  private assertOpen(operation: string, target: string): void {
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
        await this.rideElection('ensureStreams', spec.name, () => this.ensureStream(spec, replicas));
      } catch (error) {
        if (error instanceof BrokerError) throw error;
        throw new BrokerError('ensureStreams', spec.name, errorText(error), { cause: error });
      }
    }
  }

  /** Creates one stream or brings its subjects, duplicate window and replicas up to date. */
  private async ensureStream(spec: BrokerNamespace['streams'][number], replicas: number): Promise<void> {
    const wanted = {
      subjects: [...spec.subjects],
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    };
    let info;
    try {
      info = await this.jsm.streams.info(spec.name);
    } catch (error) {
      if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
    }
    if (!info) {
      await this.jsm.streams.add({
        name: spec.name,
        ...wanted,
        storage: StorageType.File,
        retention: RetentionPolicy.Workqueue,
        num_replicas: replicas,
      });
      this.log.info({ stream: spec.name, replicas }, 'stream created');
      return;
    }
    const cfg = info.config;
    if (cfg.retention !== RetentionPolicy.Workqueue || cfg.storage !== StorageType.File) {
      throw new BrokerError(
        'ensureStreams',
        spec.name,
        `the stream exists with retention ${cfg.retention} and storage ${cfg.storage}; Warren needs workqueue and file (delete the stream to recreate it)`,
      );
    }
    const sameSubjects = JSON.stringify([...(cfg.subjects ?? [])].sort()) === JSON.stringify([...wanted.subjects].sort());
    // Raising num_replicas in place is allowed from nats-server 2.9; lowering is left to an operator.
    const raise = (cfg.num_replicas ?? 1) < replicas;
    if (!sameSubjects || cfg.duplicate_window !== wanted.duplicate_window || raise) {
      await this.jsm.streams.update(spec.name, raise ? { ...wanted, num_replicas: replicas } : wanted);
      this.log.info({ stream: spec.name, ...(raise ? { replicas, from: cfg.num_replicas ?? 1 } : {}) }, 'stream updated');
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
    return this.publishStored(this.namespace.assignStream, subject, data, id, this.buildHeaders({}, options, subject));
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

  private subscribeCore(subject: string, onMsg: (msg: Msg) => void): Subscription {
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
    const prefix = this.namespace.progressPrefix;
    const filter = options?.agent === undefined ? `${prefix}.*.*` : `${prefix}.${assertAgentName(options.agent)}.*`;
    return this.subscribeCore(filter, (msg) => {
      let data: ProgressMessage;
      try {
        data = decodeMessage(progressMessageSchema, msg.subject, msg.data);
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
      } catch (error) {
        if (error instanceof InvalidMessageError) {
          this.reportInvalid(msg.subject, error);
          return;
        }
        throw error;
      }
      try {
        handler(data);
      } catch (error) {
        this.log.error({ err: error, subject: msg.subject }, 'progress handler threw');
      }
    });
  }

  subscribeEvents(handler: (kind: string, payload: unknown) => void): Subscription {
    const prefix = this.namespace.eventPrefix;
    return this.subscribeCore(`${prefix}.>`, (msg) => {
      let payload: unknown;
      try {
        payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(msg.data));
      } catch (error) {
        this.reportInvalid(
          msg.subject,
          new InvalidMessageError(msg.subject, '', `payload is not UTF-8 JSON (${errorText(error)})`, { cause: error }),
        );
        return;
      }
      try {
        handler(msg.subject.slice(prefix.length + 1), payload);
      } catch (error) {
        this.log.error({ err: error, subject: msg.subject }, 'event handler threw');
      }
    });
  }

  /** Creates the durable consumer of `spec` or brings its ack wait, max deliver and max ack pending up to date. */
  async ensureConsumer(spec: ConsumerSpec<unknown>): Promise<void> {
    const wanted = {
      ack_wait: nanos(spec.ackWaitMs),
      max_deliver: spec.maxDeliver,
      max_ack_pending: spec.maxInFlight,
    };
    const config: Partial<ConsumerConfig> = {
      durable_name: spec.durable,
      filter_subject: spec.filter,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ...wanted,
    };
    try {
      await this.rideElection('consume', `${spec.stream}/${spec.durable}`, () => this.ensureConsumerOnce(spec, config, wanted));
    } catch (error) {
      throw new BrokerError('consume', `${spec.stream}/${spec.durable}`, errorText(error), { cause: error });
    }
  }

  private async ensureConsumerOnce(
    spec: ConsumerSpec<unknown>,
    config: Partial<ConsumerConfig>,
    wanted: { ack_wait: number; max_deliver: number; max_ack_pending: number },
  ): Promise<void> {
    const { consumers } = this.jsm;
    let info;
    try {
      info = await consumers.info(spec.stream, spec.durable);
    } catch (error) {
      if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
    }
    if (!info) {
      await consumers.add(spec.stream, config);
      this.log.info({ stream: spec.stream, consumer: spec.durable }, 'consumer created');
      return;
    }
    const cfg = info.config;
    if (cfg.filter_subject !== spec.filter || cfg.ack_policy !== AckPolicy.Explicit) {
      // Neither can be changed in place on every server version; messages stay in the stream.
      await consumers.delete(spec.stream, spec.durable);
      await consumers.add(spec.stream, config);
      this.log.info({ stream: spec.stream, consumer: spec.durable }, 'consumer recreated');
      return;
    }
    if (
      cfg.ack_wait !== wanted.ack_wait ||
      cfg.max_deliver !== wanted.max_deliver ||
      cfg.max_ack_pending !== wanted.max_ack_pending
    ) {
      await consumers.update(spec.stream, spec.durable, wanted);
      this.log.info({ stream: spec.stream, consumer: spec.durable, ...wanted }, 'consumer updated');
    }
  }

  /** Opens the pull subscription of an existing consumer. */
  async openMessages(spec: ConsumerSpec<unknown>): Promise<ConsumerMessages> {
    const consumer = await this.rideElection('consume', `${spec.stream}/${spec.durable}`, () => this.js.consumers.get(spec.stream, spec.durable));
    // max_messages ≥ 3 keeps the client's refill threshold below the batch size. Pulls expire
    // after PULL_EXPIRES_MS and the server heartbeats every half of it: a pull whose consumer
    // leader died (a server of a cluster lost) is noticed after two missed heartbeats and made
    // again, instead of after the client's default of a minute.
    return consumer.consume({ max_messages: Math.max(3, spec.maxInFlight), expires: PULL_EXPIRES_MS });
  }

  private async startConsumer<T>(spec: ConsumerSpec<T>): Promise<Subscription> {
    this.assertOpen('consume', `${spec.stream}/${spec.durable}`);
    const anySpec = spec as unknown as ConsumerSpec<unknown>;
    await this.ensureConsumer(anySpec);
    let messages: ConsumerMessages;
    try {
      messages = await this.openMessages(anySpec);
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
  private toDelivery<T>(m: JsMsg, spec: Omit<ConsumerSpec<T>, 'handler'>): Delivery<T> | undefined {
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

  /** The consumer spec of `agent`'s inbox, without its handler and settings. */
  private inboxSpec(agent: string): Pick<ConsumerSpec<AgentMessage>, 'stream' | 'durable' | 'filter' | 'decode' | 'check' | 'agent' | 'signed'> {
    const ns = this.namespace;
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

  async consumeMessages(
    agent: string,
    handler: (delivery: Delivery<AgentMessage>) => Promise<void>,
    options?: ConsumeOptions,
  ): Promise<Subscription> {
    return this.startConsumer<AgentMessage>({
      ...this.inboxSpec(agent),
      handler,
      ...consumeSettings(options, 1, `consumeMessages(${agent})`),
    });
  }

  async fetchMessages(agent: string, options?: FetchMessagesOptions): Promise<Delivery<AgentMessage>[]> {
    const source = `fetchMessages(${agent})`;
    const max = options?.max ?? 10;
    if (!Number.isInteger(max) || max < 1 || max > 256) throw new ConfigError(`${source} max`, `must be an integer from 1 to 256, got ${max}`);
    const expiresMs = options?.expiresMs ?? 0;
    if (!Number.isInteger(expiresMs) || expiresMs < 0 || expiresMs > 300_000) {
      throw new ConfigError(`${source} expiresMs`, `must be an integer from 0 to 300000, got ${expiresMs}`);
    }
    const spec: ConsumerSpec<AgentMessage> = {
      ...this.inboxSpec(agent),
      handler: () => Promise.resolve(),
      ackWaitMs: positiveInteger(options?.ackWaitMs, 60_000, `${source} ackWaitMs`),
      maxDeliver: positiveInteger(options?.maxDeliver, 5, `${source} maxDeliver`),
      maxInFlight: 256,
    };
    this.assertOpen('fetchMessages', `${spec.stream}/${spec.durable}`);
    const settings = `${spec.ackWaitMs}:${spec.maxDeliver}`;
    if (this.ensuredInboxes.get(spec.durable) !== settings) {
      await this.ensureConsumer(spec as unknown as ConsumerSpec<unknown>);
      this.ensuredInboxes.set(spec.durable, settings);
    }
    const out: Delivery<AgentMessage>[] = [];
    try {
      const consumer = await this.js.consumers.get(spec.stream, spec.durable);
      // JetStream holds a pull until its batch is full or it expires: ask for what is waiting now,
      // and wait (for one) only when nothing is.
      const pull = async (batch: number, waitMs: number): Promise<number> => {
        const messages = await consumer.fetch({ max_messages: batch, expires: Math.max(1_000, waitMs) });
        let got = 0;
        try {
          for await (const m of messages) {
            got++;
            const delivery = this.toDelivery(m, spec);
            if (delivery) out.push(delivery);
          }
        } catch (error) {
          // The client ends a pull whose server heartbeats (every half expiry) it missed, as a busy
          // event loop makes it: keep what came; anything delivered later comes again after the ack wait.
          if (!(error instanceof JetStreamError && error.message === 'heartbeats missed')) throw error;
          this.log.debug({ consumer: spec.durable, got }, 'inbox pull ended on missed heartbeats');
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
      this.ensuredInboxes.delete(spec.durable);
      for (const d of out) d.nak();
      throw new BrokerError('fetchMessages', `${spec.stream}/${spec.durable}`, errorText(error), { cause: error });
    }
    return out;
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
    const ns = this.namespace;
    return this.subscribeCore(ns.topicFilter(topic), (msg) => {
      let data: TopicMessage;
      try {
        data = decodeMessage(topicMessageSchema, msg.subject, msg.data);
        const parts = ns.parseTopicSubject(msg.subject);
        if (parts?.topic !== data.topic) throw new InvalidMessageError(msg.subject, 'topic', `is '${data.topic}' but the subject names another topic`);
        if (parts.from !== data.from) throw new InvalidMessageError(msg.subject, 'from', `is '${data.from}' but the subject names sender '${parts.from}'`);
      } catch (error) {
        if (error instanceof InvalidMessageError) return this.reportInvalid(msg.subject, error);
        throw error;
      }
      try {
        handler(data);
      } catch (error) {
        this.log.error({ err: error, subject: msg.subject }, 'topic handler threw');
      }
    });
  }

  publishReply(msg: ReplyMessage, options?: PublishOptions): void {
    const subject = this.namespace.replySubject(msg.to, msg.from, msg.inReplyTo);
    const data = validateMessage(replyMessageSchema, subject, msg);
    this.publishCore(subject, data, options);
  }

  /**
   * Decodes a reply and checks it against its subject (`<p>.reply.<to>.<from>.<requestId>`): the
   * recipient, the request it answers and the sender must be the subject's.
   * @throws {InvalidMessageError} naming the field that disagrees.
   */
  private decodeReply(subject: string, payload: Uint8Array): ReplyMessage {
    const data = decodeMessage(replyMessageSchema, subject, payload);
    const parts = this.namespace.parseReplySubject(subject);
    if (parts === undefined || parts.to !== data.to || parts.requestId !== data.inReplyTo) {
      throw new InvalidMessageError(subject, 'inReplyTo', `is a reply to ${data.to}'s ${data.inReplyTo}, which the subject does not name`);
    }
    if (parts.from !== data.from) throw new InvalidMessageError(subject, 'from', `is '${data.from}' but the subject names sender '${parts.from}'`);
    return data;
  }

  subscribeReplies(handler: (msg: ReplyMessage) => void): Subscription {
    const ns = this.namespace;
    return this.subscribeCore(`${ns.replyPrefix}.>`, (msg) => {
      let data: ReplyMessage;
      try {
        data = this.decodeReply(msg.subject, msg.data);
      } catch (error) {
        if (error instanceof InvalidMessageError) return this.reportInvalid(msg.subject, error);
        throw error;
      }
      try {
        handler(data);
      } catch (error) {
        this.log.error({ err: error, subject: msg.subject }, 'reply handler threw');
      }
    });
  }

  awaitReply(requester: string, requestId: string, timeoutMs: number): Promise<ReplyMessage> {
    const ns = this.namespace;
    const filter = ns.replyFilter(requester, assertRequestId(requestId));
    const wait = positiveInteger(timeoutMs, 30_000, `awaitReply(${requester}) timeoutMs`);
    let settle!: (reply: ReplyMessage | 'timeout' | 'closed') => void;
    const answered = new Promise<ReplyMessage | 'timeout' | 'closed'>((resolve) => {
      settle = resolve;
    });
    const onClose = () => settle('closed');
    const subscription = this.subscribeCore(filter, (msg) => {
      try {
        settle(this.decodeReply(msg.subject, msg.data));
      } catch (error) {
        if (!(error instanceof InvalidMessageError)) throw error;
        this.reportInvalid(msg.subject, error);
      }
    });
    const timer = setTimeout(() => settle('timeout'), wait);
    this.replyWaiters.add(onClose);
    return answered.then(async (reply) => {
      clearTimeout(timer);
      this.replyWaiters.delete(onClose);
      await subscription.stop();
      if (reply === 'timeout') throw new MessageTimeoutError(requester, requestId, wait);
      if (reply === 'closed') throw new BrokerError('awaitReply', filter, 'the broker connection closed before a reply came');
      return reply;
    });
  }

  servePresence(answer: (from: string) => unknown): Subscription {
    const ns = this.namespace;
    return this.subscribeCore(`${ns.presencePrefix}.*`, (msg) => {
      const from = ns.presenceSender(msg.subject);
      if (from === undefined || !msg.reply) {
        this.reportInvalid(msg.subject, new InvalidMessageError(msg.subject, '', 'a presence request needs an agent name and a reply subject'));
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
          this.log.warn({ err: error, subject: msg.subject }, 'cannot answer a presence request');
        }
      };
      respond().catch((error: unknown) => this.log.error({ err: error, subject: msg.subject }, 'presence answer failed'));
    });
  }

  async deleteAgentConsumers(agent: string, options?: DeleteAgentConsumersOptions): Promise<void> {
    const ns = this.namespace;
    const targets = [
      { stream: ns.assignStream, durable: ns.assignConsumerName(agent), subject: ns.assignSubject(agent) },
      { stream: ns.messagesStream, durable: ns.messageConsumerName(agent), subject: ns.messageFilter(agent) },
    ];
    this.assertOpen('deleteAgentConsumers', agent);
    this.ensuredInboxes.delete(ns.messageConsumerName(agent));
    await Promise.all([...this.loops].filter((l) => l.spec.agent === agent).map((l) => l.stop()));
    for (const t of targets) {
      try {
        await this.jsm.consumers.delete(t.stream, t.durable);
        this.log.info({ stream: t.stream, consumer: t.durable }, 'consumer deleted');
      } catch (error) {
        if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound) && !isApiError(error, JetStreamApiCodes.StreamNotFound)) {
          throw new BrokerError('deleteAgentConsumers', `${t.stream}/${t.durable}`, errorText(error), { cause: error });
        }
      }
      if (options?.purgePending === false) continue;
      try {
        const purged = await this.jsm.streams.purge(t.stream, { filter: t.subject });
        if (purged.purged > 0) this.log.info({ stream: t.stream, subject: t.subject, purged: purged.purged }, 'pending messages purged');
      } catch (error) {
        if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) {
          throw new BrokerError('deleteAgentConsumers', `${t.stream} ${t.subject}`, `cannot purge: ${errorText(error)}`, { cause: error });
        }
      }
    }
  }

  async resetResultsConsumer(): Promise<void> {
    const { resultsStream, resultsConsumer } = this.namespace;
    this.assertOpen('resetResultsConsumer', resultsConsumer);
    try {
      await this.jsm.consumers.delete(resultsStream, resultsConsumer);
    } catch (error) {
      if (isApiError(error, JetStreamApiCodes.ConsumerNotFound)) return;
      throw new BrokerError('resetResultsConsumer', `${resultsStream}/${resultsConsumer}`, errorText(error), { cause: error });
    }
  }

  async resultsBacklog(): Promise<number> {
    const { resultsStream, resultsConsumer } = this.namespace;
    this.assertOpen('resultsBacklog', resultsConsumer);
    try {
      const info = await this.rideElection('resultsBacklog', resultsConsumer, () => this.jsm.consumers.info(resultsStream, resultsConsumer));
      return info.num_pending + info.num_ack_pending;
    } catch (error) {
      if (isApiError(error, JetStreamApiCodes.ConsumerNotFound)) return 0;
      throw new BrokerError('resultsBacklog', `${resultsStream}/${resultsConsumer}`, errorText(error), { cause: error });
    }
  }

  async purgeAssignments(agent: string): Promise<number> {
    this.assertOpen('purgeAssignments', agent);
    assertAgentName(agent);
    const { assignStream } = this.namespace;
    const subject = this.namespace.assignSubject(agent);
    try {
      const purged = await this.rideElection('purgeAssignments', subject, () => this.jsm.streams.purge(assignStream, { filter: subject }));
      return purged.purged;
    } catch (error) {
      throw new BrokerError('purgeAssignments', `${assignStream} ${subject}`, errorText(error), { cause: error });
    }
  }

  /** The stream and durable consumer name of the supervisor's results or of one agent's assignments, in this namespace. */
  private consumerOf(target: { readonly agent: string } | 'results'): [stream: string, durable: string] {
    const ns = this.namespace;
    return target === 'results' ? [ns.resultsStream, ns.resultsConsumer] : [ns.assignStream, ns.assignConsumerName(target.agent)];
  }

  async repairStranded(target: { readonly agent: string } | 'results', options?: { readonly confirmAfterMs?: number }): Promise<StrandedRepair> {
    const [stream, durable] = this.consumerOf(target);
    this.assertOpen('repairStranded', `${stream}/${durable}`);
    try {
      const first = await findStranded(this.jsm, stream, durable);
      if (first.stranded === 0) return { stranded: 0, reason: '' };
      await new Promise((resolve) => setTimeout(resolve, options?.confirmAfterMs ?? 250));
      const second = await findStranded(this.jsm, stream, durable);
      // A consumer that delivered or settled anything meanwhile is moving: what looked stranded was in flight.
      if (second.stranded === 0 || !second.config || second.progress !== first.progress) return { stranded: 0, reason: '' };
      await remakeConsumer(this.jsm, stream, second.config);
      this.log.warn({ stream, consumer: durable, stranded: second.stranded, reason: second.reason }, 'consumer made again: it would never have delivered stored messages');
      for (const loop of this.loops) if (loop.spec.stream === stream && loop.spec.durable === durable) loop.reopenNow();
      return { stranded: second.stranded, reason: second.reason };
    } catch (error) {
      throw new BrokerError('repairStranded', `${stream}/${durable}`, errorText(error), { cause: error });
    }
  }

  async clearPhantoms(target: { readonly agent: string } | 'results'): Promise<number> {
    const [stream, durable] = this.consumerOf(target);
    this.assertOpen('clearPhantoms', `${stream}/${durable}`);
    try {
      const { phantoms, config } = await findPhantoms(this.jsm, stream, durable);
      if (phantoms === 0 || !config) return 0;
      await remakeConsumer(this.jsm, stream, config);
      this.log.info({ stream, consumer: durable, phantoms }, 'consumer made again: it counted deliveries of messages no longer stored');
      return phantoms;
    } catch (error) {
      throw new BrokerError('clearPhantoms', `${stream}/${durable}`, errorText(error), { cause: error });
    }
  }

  async pendingFor(agent: string): Promise<AgentPending> {
    const count = async (stream: string, durable: string, subject: string): Promise<number> => {
      try {
        try {
          const info = await this.rideElection('pendingFor', durable, () => this.jsm.consumers.info(stream, durable));
          return info.num_pending + info.num_ack_pending;
        } catch (error) {
          if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
        }
        const info = await this.rideElection('pendingFor', stream, () => this.jsm.streams.info(stream, { subjects_filter: subject }));
        return Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
      } catch (error) {
        throw new BrokerError('pendingFor', `${stream}/${durable}`, errorText(error), { cause: error });
      }
    };
    this.assertOpen('pendingFor', agent);
    const ns = this.namespace;
    const [assignments, messages] = await Promise.all([
      count(ns.assignStream, ns.assignConsumerName(agent), ns.assignSubject(agent)),
      count(ns.messagesStream, ns.messageConsumerName(agent), ns.messageFilter(agent)),
    ]);
    return { assignments, messages };
  }

  pending(agent: string): Promise<AgentPending> {
    return this.pendingFor(agent);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const cancel of [...this.replyWaiters]) cancel();
      await Promise.allSettled([...this.loops].map((l) => l.stop()));
      await Promise.allSettled([...this.subscriptions].map((s) => s.stop()));
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

/**
 * Connects to NATS and returns a {@link Broker}. Reconnects forever (every `reconnectTimeWaitMs`
 * with jitter, to any of `servers` and the servers the cluster announces) after the connection is
 * lost; consumers resume by themselves after a reconnect. JetStream calls ride leader elections
 * (see `electionRetryMs`), and so does this first JetStream check.
 * @throws {BrokerError} (`WARREN_BROKER`) if the first connection fails or the server has no JetStream.
 * @throws {ConfigError} for invalid numeric options.
 */
export async function connectBroker(options: ConnectBrokerOptions): Promise<Broker> {
  const logger = options.logger ?? silentLogger;
  const timeoutMs = positiveInteger(options.timeoutMs, 5_000, 'connectBroker timeoutMs');
  const reconnectTimeWait = positiveInteger(options.reconnectTimeWaitMs, 1_000, 'connectBroker reconnectTimeWaitMs');
  const electionRetryMs = options.electionRetryMs ?? 15_000;
  if (!Number.isInteger(electionRetryMs) || electionRetryMs < 0) {
    throw new ConfigError('connectBroker electionRetryMs', `must be a non-negative integer, got ${String(electionRetryMs)}`);
  }
  const servers = Array.isArray(options.servers) ? options.servers : [options.servers];
  const namespace = brokerNamespace(options.instance);
  if (options.agentKey) {
    if (options.signingKey) throw new ConfigError('connectBroker agentKey', 'excludes signingKey (an agent broker holds only its own key)');
    assertAgentName(options.agentKey.agent);
  }
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name: options.name,
      ...(options.credentials ? { authenticator: authenticatorOf(options.credentials) } : {}),
      ...(options.inboxPrefix === undefined ? {} : { inboxPrefix: options.inboxPrefix }),
      timeout: timeoutMs,
      maxReconnectAttempts: -1,
      reconnectTimeWait,
      reconnectJitter: Math.round(reconnectTimeWait / 2),
      waitOnFirstConnect: false,
    });
  } catch (error) {
    throw new BrokerError('connect', servers.join(','), errorText(error), { cause: error });
  }
  let jsm: JetStreamManager;
  try {
    // A cluster electing its JetStream meta leader answers 503 for a while: ride it out too.
    const startMs = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        // An agent's connection may not read the account's JetStream info ($JS.API.INFO).
        jsm = await jetstreamManager(nc, { timeout: timeoutMs, ...(options.agentKey ? { checkAPI: false } : {}) });
        break;
      } catch (error) {
        if (!isElectionError(error) || Date.now() - startMs >= electionRetryMs) throw error;
        logger.info({ attempt, reason: errorText(error) }, 'JetStream unavailable (no leader?); retrying');
        await new Promise((resolve) => setTimeout(resolve, Math.min(ELECTION_RETRY_FIRST_MS * 2 ** (attempt - 1), ELECTION_RETRY_MAX_MS)));
      }
    }
  } catch (error) {
    await nc.close().catch(() => undefined);
    throw new BrokerError('connect', servers.join(','), `JetStream is not available: ${errorText(error)}`, { cause: error });
  }
  logger.info({ servers, server: nc.getServer(), version: nc.info?.version }, 'connected to NATS');
  return new NatsBroker(nc, jsm, logger, options, timeoutMs, namespace);
}

function authenticatorOf(credentials: BrokerCredentials): Authenticator {
  if (credentials.kind === 'nkey') return nkeyAuthenticator(new TextEncoder().encode(credentials.seed));
  return credentials.kind === 'creds'
    ? credsAuthenticator(credentials.creds)
    : usernamePasswordAuthenticator(credentials.user, credentials.password);
}

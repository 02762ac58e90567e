/**
 * The broker's contract: the `Broker` interface and the options, deliveries and results of its
 * methods. `connectBroker` (broker.ts) makes the one implementation over NATS JetStream.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from '@warren/core';
import type { InvalidMessageError } from './errors.js';
import type { AgentMessage, AssignmentMessage, OutboxMessage, ProgressMessage, ReplyMessage, ResultMessage, TopicMessage } from './messages.js';
import type { BrokerNamespace } from './subjects.js';

/**
 * How a connection authenticates to NATS: a user and password, or a NATS credentials file's
 * contents (a user JWT and its nkey seed, as `nsc` writes them; `source` names the file in errors).
 */
export type BrokerCredentials =
  | { readonly kind: 'user-password'; readonly user: string; readonly password: string }
  | { readonly kind: 'creds'; readonly creds: Uint8Array; readonly source: string }
  /** An NKey user seed (`SU…`), as in an agent's `~/.warren/nats.json`. */
  | { readonly kind: 'nkey'; readonly seed: string };

/** Options of {@link connectBroker}. */
export interface ConnectBrokerOptions {
  /** One or more server URLs (`nats://127.0.0.1:4222`). */
  servers: string | string[];
  /** The connection name the server shows (`warren-supervisor`). */
  name: string;
  /** Credentials to connect with. Default: none. */
  credentials?: BrokerCredentials;
  /**
   * The Warren instance whose subjects, streams and consumers this client uses (see
   * `brokerNamespace`). Default: the default namespace (`warren.assign.<agent>`, `WARREN_ASSIGN`, …).
   */
  instance?: string;
  /**
   * The instance's signing key. When given, every assignment, result and agent message is
   * published with a `Warren-Signature` header (HMAC-SHA256 of subject and payload) and a keyed
   * message id (`<id>:<16 hex>`), and every one consumed must carry a valid signature: one that
   * does not is terminated and reported to `onInvalid` with field `Warren-Signature`.
   */
  signingKey?: Uint8Array;
  /**
   * Opens the broker of one agent outside the supervisor (a pod): it holds only that agent's key
   * (`agentSigningKey(master, agent)`), signs its results and verifies its assignments with it.
   * Excludes `signingKey`. A supervisor's broker (given `signingKey`, the master) signs and
   * verifies each agent's assignment and result subjects with that agent's derived key, and agent
   * messages with the master key.
   */
  agentKey?: { readonly agent: string; readonly key: Uint8Array };
  /**
   * The prefix of the connection's request inboxes (nats.js `inboxPrefix`): an agent may only
   * subscribe to `_INBOX.<p>.agent.<agent>.>`. Default `_INBOX`.
   */
  inboxPrefix?: string;
  /** Receives connection status (disconnects, reconnects) and consumer problems. Default: silent. */
  logger?: Logger;
  /**
   * Called for every malformed message (not JSON, fails its schema, contradicts its subject or
   * headers) after it was terminated (JetStream) or dropped (core NATS). Must not throw.
   * Default: a warning on `logger`.
   */
  onInvalid?: (subject: string, error: InvalidMessageError) => void;
  /**
   * Time between reconnect attempts, in ms, plus a random jitter of up to half of it (so that
   * clients that lost the same server do not all come back at once). Default 1000. Reconnects
   * never give up; with several `servers` (a NATS cluster) each attempt tries the next one.
   */
  reconnectTimeWaitMs?: number;
  /** Timeout of the first connect and of each JetStream API call and publish ack, in ms. Default 5000. */
  timeoutMs?: number;
  /**
   * How long a JetStream call keeps being retried while a stream, consumer or the cluster has no
   * leader (an election in a NATS cluster, a server restarting): calls that time out, find no
   * responders or get `503` are tried again with exponential backoff (250 ms doubling to 2 s, with
   * jitter) until this much has passed since the first attempt, in ms; 0 turns retries off.
   * Default 15000.
   */
  electionRetryMs?: number;
  /** Delay before redelivery when a handler throws, in ms. Default 1000. */
  handlerErrorNakDelayMs?: number;
  /** How long {@link Broker.close} waits for the connection to drain before closing it, in ms. Default 5000. */
  drainTimeoutMs?: number;
}

/** Options of {@link Broker.ensureStreams}. */
export interface EnsureStreamsOptions {
  /**
   * How many servers of a NATS cluster keep each stream (JetStream `num_replicas`, 1 to 5; an odd
   * number keeps a quorum: 3 rides one server down). Default 1.
   */
  readonly replicas?: number;
}

/** Options of the `consume…` methods. */
export interface ConsumeOptions {
  /** How long the server waits for an ack before redelivering, in ms. Default 30000. */
  ackWaitMs?: number;
  /** How many times a message is delivered at most (then it stays in the stream, undelivered). Default 5. */
  maxDeliver?: number;
  /**
   * How many deliveries may be unacknowledged at once (the consumer's `max_ack_pending`); the
   * handler runs for at most this many at a time. Default 1 for assignments and messages (one at
   * a time, in order), 16 for results.
   */
  maxInFlight?: number;
}

/** Options of the `publish…` methods. */
export interface PublishOptions {
  /**
   * W3C trace context (`00-<32 hex>-<16 hex>-<2 hex>`), sent in the `traceparent` header; it must
   * parse as W3C Trace Context Level 1 says (no version ff, no all-zero ids).
   */
  traceparent?: string;
  /** Vendor trace state sent in the `tracestate` header, beside `traceparent` (which it needs). */
  tracestate?: string;
}

/** What JetStream answered to a publish. */
export interface PublishAck {
  /** The message's stream sequence (for a duplicate: the original's). */
  seq: number;
  /** True if a message with the same `Nats-Msg-Id` was already stored within the duplicate window. */
  duplicate: boolean;
}

/**
 * One delivery of a JetStream message to a handler. Settle it once with `ack`, `nak` or `term`;
 * a delivery left unsettled is redelivered after the ack wait. Settling never throws (after the
 * connection closed it is logged and ignored).
 */
export interface Delivery<T> {
  /** The parsed, schema-checked payload. */
  readonly data: T;
  readonly subject: string;
  /** The stream sequence of the message. */
  readonly seq: number;
  /** 1 for the first delivery, 2 for the first redelivery, … */
  readonly deliveryCount: number;
  /** The message headers (first value of each). */
  readonly headers: Readonly<Record<string, string>>;
  /** The `traceparent` header, when the publisher gave a valid one (an invalid one is ignored, as the W3C spec asks). */
  readonly traceparent: string | undefined;
  /** The `tracestate` header, when it came with a valid `traceparent` and is valid itself. */
  readonly tracestate: string | undefined;
  /** Processed: remove it from the work queue. */
  ack(): void;
  /** Not processed: redeliver it after `delayMs` (default: at once). */
  nak(delayMs?: number): void;
  /** Never deliver it again; `reason` is logged (and sent to servers ≥ 2.11). */
  term(reason: string): void;
  /** Still working on it: restart the ack wait timer (an in-progress ack). */
  working(): void;
}

/** A running consumer or subscription. */
export interface Subscription {
  /**
   * Stops taking messages. Messages received but not yet handed to the handler are nak'ed for
   * prompt redelivery; a handler already running keeps its delivery and may still settle it
   * while the connection is open. Idempotent.
   */
  stop(): Promise<void>;
}

/** Pending work of one agent: messages waiting plus delivered but unacknowledged ones. */
export interface AgentPending {
  assignments: number;
  messages: number;
}

/** Options of {@link Broker.deleteAgentConsumers}. */
export interface DeleteAgentConsumersOptions {
  /** Also purge the agent's queued assignments and messages from the streams. Default true. */
  purgePending?: boolean;
}

/**
 * Warren's broker client: the streams, publishers and durable consumers of the broker contract
 * (see `subjects.ts` for the subject table) over one NATS connection.
 */
export interface Broker {
  /** The underlying connection (for diagnostics; prefer the methods). */
  readonly nc: NatsConnection;
  /** The names (subjects, streams, consumers) this client uses. */
  readonly namespace: BrokerNamespace;
  /**
   * Creates the namespace's three streams (WARREN_ASSIGN, WARREN_RESULTS and WARREN_MESSAGES in the
   * default namespace, `WARREN_<instance>_…` in an instance's; file storage,
   * work-queue retention, 2 min duplicate window) or updates their subjects and window.
   * Idempotent. With `replicas` above 1 (a NATS cluster), streams are made with that many
   * replicas and a stream that exists with fewer is raised to it (never lowered); durable consumers
   * follow their stream's replica count.
   * @throws {BrokerError} if a stream cannot be created, exists with another retention or storage
   * (which cannot be changed in place), or the cluster has fewer servers than `replicas`.
   * @throws {ConfigError} if `replicas` is not an integer from 1 to 5.
   */
  ensureStreams(options?: EnsureStreamsOptions): Promise<void>;
  /**
   * Publishes an assignment on `<prefix>.assign.<agent>` with `Nats-Msg-Id: <taskId>:<attempt>`
   * (keyed, and signed, when the broker has a signing key).
   * @throws {InvalidMessageError} if the message fails its schema. @throws {BrokerError} if JetStream does not store it.
   */
  publishAssignment(msg: AssignmentMessage, options?: PublishOptions): Promise<PublishAck>;
  /**
   * Consumes `agent`'s assignments through the durable pull consumer `[<instance>-]assign-<agent>`
   * (filter `<prefix>.assign.<agent>`, explicit ack), created or updated to `options`.
   * @throws {InvalidNameError} for an invalid agent name. @throws {BrokerError} if the consumer cannot be made.
   */
  consumeAssignments(
    agent: string,
    handler: (delivery: Delivery<AssignmentMessage>) => Promise<void>,
    options?: ConsumeOptions,
  ): Promise<Subscription>;
  /**
   * Creates or updates `agent`'s assign consumer as {@link consumeAssignments} with the same
   * `options` would, without consuming: for a gateway elsewhere (a pod) whose credentials may use
   * the consumer but not create it. Only `ackWaitMs`, `maxDeliver` and `maxInFlight` matter.
   * @throws {InvalidNameError} for an invalid agent name. @throws {BrokerError} if the consumer cannot be made.
   */
  ensureAssignConsumer(agent: string, options?: ConsumeOptions): Promise<void>;
  /** Publishes a result on `<prefix>.result.<agent>` with `Nats-Msg-Id: <taskId>:<attempt>:result`. Throws as {@link publishAssignment}. */
  publishResult(msg: ResultMessage, options?: PublishOptions): Promise<PublishAck>;
  /** Consumes every agent's results through the durable `[<instance>-]supervisor-results` (filter `<prefix>.result.>`). */
  consumeResults(handler: (delivery: Delivery<ResultMessage>) => Promise<void>, options?: ConsumeOptions): Promise<Subscription>;
  /**
   * Publishes progress on `warren.progress.<agent>.<taskTok>` (core NATS: lost if nobody listens
   * or the connection is down for long). @throws {InvalidMessageError} @throws {BrokerError} if the connection is closed.
   */
  publishProgress(msg: ProgressMessage, options?: PublishOptions): void;
  /** Subscribes to progress of every agent, or of `options.agent` only. Malformed messages go to `onInvalid`. */
  subscribeProgress(handler: (msg: ProgressMessage) => void, options?: { agent?: string }): Subscription;
  /**
   * Publishes a message to `msg.to`'s inbox, `<prefix>.msg.<to>.<fromTok>`, with `Nats-Msg-Id: <id>`
   * (keyed and signed with a signing key) and `Warren-From: <from>`. Only the supervisor publishes
   * here, after the policy allowed the message.
   * @throws {InvalidMessageError} if the message fails its schema (body over 256 KiB included).
   * @throws {InvalidNameError} for an invalid `to` or `from`. @throws {BrokerError} if JetStream does not store it.
   */
  publishMessage(msg: AgentMessage, options?: PublishOptions): Promise<PublishAck>;
  /**
   * Consumes `agent`'s messages through the durable `[<instance>-]msg-<agent>` (filter
   * `<prefix>.msg.<agent>.>`; a consumer left with another filter is deleted and made again, the
   * stream keeps the messages). A message whose `to`, subject sender, `Warren-From` header and
   * `from` field do not all agree, or (with a signing key) whose signature is wrong, is terminated
   * as invalid and reported to `onInvalid`.
   * @throws {InvalidNameError} for an invalid agent name. @throws {BrokerError} if the consumer cannot be made.
   */
  consumeMessages(
    agent: string,
    handler: (delivery: Delivery<AgentMessage>) => Promise<void>,
    options?: ConsumeOptions,
  ): Promise<Subscription>;
  /**
   * Pulls up to `max` (1–256) messages of `agent`'s inbox from the durable `[<instance>-]msg-<agent>`
   * (made if missing, or made again over an old filter; ack wait `ackWaitMs`, default 60000 ms,
   * at most 256 unacknowledged, `maxDeliver` default 5). With new messages waiting it returns them
   * at once; with none it waits up to `expiresMs` for the first (otherwise at least 1000 ms, the
   * client library's shortest pull). With `expiresMs` 0 and nothing new it returns `[]` at once,
   * unless deliveries are still unacknowledged: then it waits up to 1000 ms for one whose ack wait
   * ran out (the server does not count those as pending). The deliveries stay ackable after the call,
   * while the connection is open: settle each with `ack` (or `nak`); one left unsettled is
   * delivered again after the ack wait (at-least-once). Invalid messages (as {@link consumeMessages}
   * says) are terminated, reported to `onInvalid` and not returned.
   * @throws {InvalidNameError} for an invalid agent name. @throws {ConfigError} for `max` or `expiresMs` out of range.
   * @throws {BrokerError} if the consumer cannot be made or read.
   */
  fetchMessages(agent: string, options?: FetchMessagesOptions): Promise<Delivery<AgentMessage>[]>;
  /**
   * Consumes every directly connected agent's outbox (`<prefix>.send.>`) through the durable
   * `[<instance>-]supervisor-outbox` for the supervisor to relay. `from` and `to` come from the
   * subject (the server's permissions let each agent publish only on its own outbox). A message
   * that is not an {@link OutboxMessage} or sits on a subject without valid names is terminated and
   * reported to `onInvalid`. Outbox messages are not signed (agents do not hold the key).
   * @throws {BrokerError} if the consumer cannot be made.
   */
  consumeOutbox(handler: (delivery: Delivery<OutboxDelivery>) => Promise<void>, options?: ConsumeOptions): Promise<Subscription>;
  /**
   * Publishes a topic message on `<prefix>.topic.<topic>.<fromTok>` (core NATS: only current
   * subscribers get it). @throws {InvalidMessageError} if it fails its schema. @throws {BrokerError} if the connection is closed.
   */
  publishTopic(msg: TopicMessage, options?: PublishOptions): void;
  /**
   * Subscribes to one topic, or every topic (`'*'`), of this namespace. Messages whose subject and
   * fields disagree, or that fail the schema, go to `onInvalid`.
   * @throws {InvalidNameError} for an invalid topic. @throws {BrokerError} if the connection is closed.
   */
  subscribeTopics(topic: string, handler: (msg: TopicMessage) => void): Subscription;
  /**
   * Publishes a reply on `<prefix>.reply.<to>.<fromTok>.<inReplyTo>` (core NATS).
   * @throws {InvalidMessageError} if it fails its schema. @throws {BrokerError} if the connection is closed.
   */
  publishReply(msg: ReplyMessage, options?: PublishOptions): void;
  /**
   * Subscribes to every reply of the namespace (`<p>.reply.>`, core NATS), for observers that count
   * them: a reply whose payload contradicts its subject (recipient, sender, request id) goes to
   * `onInvalid`. A handler that throws is logged.
   */
  subscribeReplies(handler: (msg: ReplyMessage) => void): Subscription;
  /**
   * Waits for the first valid reply to request `requestId` of `requester`
   * (`<prefix>.reply.<requester>.*.<requestId>`). The subscription is made before this returns,
   * so call it before sending the request. Invalid replies go to `onInvalid` and are not taken.
   * @returns the reply. @throws {MessageTimeoutError} (`WARREN_MESSAGE_TIMEOUT`) after `timeoutMs`.
   * @throws {InvalidNameError} for an invalid name or request id. @throws {ConfigError} for a `timeoutMs` below 1.
   * @throws {BrokerError} if the connection is closed, or closes before a reply came.
   */
  awaitReply(requester: string, requestId: string, timeoutMs: number): Promise<ReplyMessage>;
  /**
   * Answers presence requests (`<prefix>.presence.<from>`) of directly connected agents with the
   * JSON of `answer(from)`; an `answer` that throws gets `{ "error": { "code", "message" } }`.
   * @throws {BrokerError} if the connection is closed.
   */
  servePresence(answer: (from: string) => unknown): Subscription;
  /** Publishes a supervisor event on `warren.events.<kind>` (core NATS); `payload` is sent as JSON. */
  publishEvent(kind: string, payload: unknown): void;
  /** Subscribes to supervisor events (`warren.events.>`); `kind` is the subject after `warren.events.`. */
  subscribeEvents(handler: (kind: string, payload: unknown) => void): Subscription;
  /**
   * Stops this broker's consumers of `agent`, deletes its durables `assign-<agent>` and
   * `msg-<agent>` (missing ones are fine) and, unless `purgePending` is false, purges its queued
   * assignments and messages. @throws {BrokerError} if the server refuses.
   */
  deleteAgentConsumers(agent: string, options?: DeleteAgentConsumersOptions): Promise<void>;
  /**
   * {@link deleteAgentConsumers} for an agent whose account is removed while a later agent of the
   * same name may come (a pool slot of per-task agents): this broker's consumers of `agent` stop,
   * its queued assignments and messages are purged and its inbox consumer is deleted, but its
   * assignment consumer is kept for the next agent of that name when it is idle (nothing pending,
   * unacknowledged or waiting, its filter and ack policy as made, and nothing published to the
   * agent meanwhile on this connection); otherwise it is deleted. A kept consumer is taken on by the
   * next `consumeAssignments` or `ensureAssignConsumer` of that name (made afresh if the
   * connection was lost since), which saves the server a consumer deletion and creation per agent.
   * The next `purgeAssignments` of the name is answered without a request while nothing was
   * published to it since. @throws {BrokerError} if the server refuses or does not answer.
   */
  releaseAgentConsumers(agent: string): Promise<void>;
  /**
   * Counts `agent`'s pending work: `num_pending + num_ack_pending` of its consumers, or the
   * messages stored on its subjects (`<prefix>.assign.<agent>`, `<prefix>.msg.<agent>.>`) when a
   * consumer does not exist yet. @throws {BrokerError} if the server does not answer.
   */
  pendingFor(agent: string): Promise<AgentPending>;
  /** The same as {@link pendingFor}. */
  pending(agent: string): Promise<AgentPending>;
  /**
   * Results not yet acknowledged by the supervisor's durable consumer (pending + unacknowledged),
   * so a restarted supervisor can apply them before it decides an execution was lost.
   * @throws {BrokerError} if the consumer cannot be read.
   */
  resultsBacklog(): Promise<number>;
  /**
   * Deletes the supervisor's results consumer if it exists; the results stay in their work-queue
   * stream and the next `consumeResults` delivers them again at once. A supervisor that restarts
   * after being killed calls it first, so results handed to the dead process (unacknowledged until
   * their ack wait runs out) are not held back. Only the one supervisor of a stream may call it.
   * @throws {BrokerError}.
   */
  resetResultsConsumer(): Promise<void>;
  /**
   * Removes the assignments still queued for `agent` (executions the supervisor has given up on),
   * leaving its messages. @returns how many were removed. @throws {BrokerError}.
   */
  purgeAssignments(agent: string): Promise<number>;
  /**
   * Finds messages that `agent`'s assignments consumer (`{ agent }`), or the supervisor's results
   * consumer (`'results'`), will never deliver: stored in the work queue but behind the consumer's
   * delivered sequence, which happens when nats-server is killed and its stream's sequence goes
   * back (see `stranded.ts`). When a second look `confirmAfterMs` later (default 250) still finds
   * them and the consumer has not moved (delivered or settled nothing), the consumer is made again (same settings, delivering every stored message) and this
   * process's consume loop on it reopens at once.
   * @returns how many messages were stranded (0: the consumer was left alone) and why.
   * @throws {BrokerError} if the server does not answer within the broker's timeout.
   */
  repairStranded(target: { readonly agent: string } | 'results', options?: { readonly confirmAfterMs?: number }): Promise<StrandedRepair>;
  /**
   * For a consumer no process is pulling from (call it after stopping yours): when its work queue
   * stores nothing on its filter yet it counts unacknowledged deliveries (left by a nats-server
   * killed right after acknowledgements), makes it again, empty. Target as in {@link repairStranded}.
   * @returns how many phantom deliveries were cleared (0: the consumer was left alone).
   * @throws {BrokerError} if the server does not answer within the broker's timeout.
   */
  clearPhantoms(target: { readonly agent: string } | 'results'): Promise<number>;
  /** Stops every consumer and subscription, drains and closes the connection. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of {@link Broker.fetchMessages}. */
export interface FetchMessagesOptions {
  /** How many messages at most, 1 to 256. Default 10. */
  max?: number;
  /** How long to wait for a first message when none is waiting, in ms (0, or 1000 to 300000). Default 0. */
  expiresMs?: number;
  /** The consumer's ack wait, in ms. Default 60000. */
  ackWaitMs?: number;
  /** How many times a message is delivered at most. Default 5. */
  maxDeliver?: number;
}

/** An outbox message with its sender and receiver, as {@link Broker.consumeOutbox} hands it over. */
export interface OutboxDelivery extends OutboxMessage {
  /** The sending agent: the subject's `<from>` token. */
  readonly from: string;
  /** The receiving agent: the subject's `<to>` token. */
  readonly to: string;
}

/** What {@link Broker.repairStranded} did. */
export interface StrandedRepair {
  /** Messages the consumer would never have delivered; 0 when it was left alone. */
  readonly stranded: number;
  /** Why they were stranded, in words (empty when none were). */
  readonly reason: string;
}

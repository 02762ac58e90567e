/**
 * @warren/broker: Warren's broker contract over NATS JetStream — the subjects and streams, the
 * message schemas, a client with durable pull consumers (assignments, results, agent inboxes,
 * outboxes), topics, request/reply and presence over core NATS, an embedded nats-server with
 * per-agent NKey users whose allow-lists the server enforces, and the builder of those lists.
 *
 * ```ts
 * import { startNatsServer, connectBroker } from '@warren/broker';
 *
 * await using nats = await startNatsServer({ storeDir: 'var/nats' });
 * await using broker = await connectBroker({ servers: nats.url, name: 'warren-supervisor' });
 * await broker.ensureStreams();
 * const sub = await broker.consumeAssignments('shell-1', async (delivery) => {
 *   console.log(delivery.data.title, 'attempt', delivery.data.attempt);
 *   delivery.ack();
 * });
 * await broker.publishAssignment({
 *   taskId: 'T-1', attempt: 1, agent: 'shell-1', title: 'Say hello', body: '', fields: {},
 *   timeoutMs: 60_000, assignedAtMs: Date.now(),
 * });
 * // … later
 * await sub.stop();
 * ```
 */
export { startNatsServer, findNatsServer } from './server.js';
export type { StartNatsServerOptions, EmbeddedNatsServer, NatsServerExit, NatsAuthorization, NatsAgentUser, NatsPermissions, NatsClusterOptions } from './server.js';
export { agentNatsPermissions, createAgentNkey, agentNatsConfig } from './permissions.js';
export type { AgentNatsGrants, AgentNatsPermissionOptions, AgentNkey, AgentNatsConfig } from './permissions.js';
export { connectBroker } from './broker-connect.js';
export { isElectionError } from './broker-support.js';
export type {
  Broker,
  ConnectBrokerOptions,
  ConsumeOptions,
  PublishOptions,
  PublishAck,
  Delivery,
  Subscription,
  AgentPending,
  DeleteAgentConsumersOptions,
  BrokerCredentials,
  StrandedRepair,
  FetchMessagesOptions,
  OutboxDelivery,
  EnsureStreamsOptions,
} from './broker-types.js';
export { agentSigningKey, signMessage, verifySignature, keyedMessageId, readOrCreateSecret } from './signing.js';
export {
  assignmentMessageSchema,
  resultMessageSchema,
  runSpanSchema,
  progressMessageSchema,
  agentMessageSchema,
  topicMessageSchema,
  replyMessageSchema,
  outboxMessageSchema,
  validateMessage,
  decodeMessage,
  MESSAGE_ID_PATTERN,
  MAX_BODY_BYTES,
} from './messages.js';
export type {
  AssignmentMessage,
  ResultMessage,
  ResultOutcome,
  ProgressMessage,
  AgentMessage,
  TopicMessage,
  ReplyMessage,
  OutboxMessage,
  RunSpan,
} from './messages.js';
export {
  SUBJECT_PREFIX,
  ASSIGN_SUBJECT_PREFIX,
  RESULT_SUBJECT_PREFIX,
  PROGRESS_SUBJECT_PREFIX,
  MESSAGE_SUBJECT_PREFIX,
  EVENT_SUBJECT_PREFIX,
  ASSIGN_STREAM,
  RESULTS_STREAM,
  MESSAGES_STREAM,
  OUTBOX_STREAM,
  RESULTS_CONSUMER,
  OUTBOX_CONSUMER,
  DUPLICATE_WINDOW_MS,
  FROM_HEADER,
  TRACEPARENT_HEADER,
  TRACESTATE_HEADER,
  SIGNATURE_HEADER,
  STREAMS,
  DEFAULT_NAMESPACE,
  INSTANCE_NAME_PATTERN,
  assertInstanceName,
  brokerNamespace,
  AGENT_NAME_PATTERN,
  TASK_ID_PATTERN,
  isAgentName,
  assertAgentName,
  isTaskId,
  assertTaskId,
  encodeTaskIdToken,
  decodeTaskIdToken,
  assignSubject,
  resultSubject,
  progressSubject,
  messageSubject,
  messageFilter,
  outboxSubject,
  topicSubject,
  replySubject,
  presenceSubject,
  agentInboxPrefix,
  TOPIC_NAME_PATTERN,
  REQUEST_ID_PATTERN,
  SENDER_PATTERN,
  isTopicName,
  assertTopicName,
  isRequestId,
  assertRequestId,
  encodeSenderToken,
  decodeSenderToken,
  eventSubject,
  assignConsumerName,
  messageConsumerName,
  agentOfSubject,
} from './subjects.js';
export type { StreamSpec, BrokerNamespace } from './subjects.js';
export { BrokerError, InvalidNameError, InvalidMessageError, NatsServerError, MessageTimeoutError } from './errors.js';

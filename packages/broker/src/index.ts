/**
 * @warren/broker: Warren's broker contract over NATS JetStream — the subjects and streams, the
 * message schemas, a client with durable pull consumers, and an embedded nats-server.
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
export type { StartNatsServerOptions, EmbeddedNatsServer, NatsServerExit, NatsAuthorization } from './server.js';
export { connectBroker } from './broker.js';
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
} from './broker.js';
export { signMessage, verifySignature, keyedMessageId, readOrCreateSecret } from './signing.js';
export {
  assignmentMessageSchema,
  resultMessageSchema,
  runSpanSchema,
  progressMessageSchema,
  agentMessageSchema,
  validateMessage,
  decodeMessage,
  MESSAGE_ID_PATTERN,
} from './messages.js';
export type { AssignmentMessage, ResultMessage, ResultOutcome, ProgressMessage, AgentMessage, RunSpan } from './messages.js';
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
  RESULTS_CONSUMER,
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
  eventSubject,
  assignConsumerName,
  messageConsumerName,
  agentOfSubject,
} from './subjects.js';
export type { StreamSpec, BrokerNamespace } from './subjects.js';
export { BrokerError, InvalidNameError, InvalidMessageError, NatsServerError } from './errors.js';

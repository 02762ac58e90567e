import { InvalidNameError } from './errors.js';

/**
 * The subjects and streams of Warren's broker contract. Every name below belongs to one
 * {@link BrokerNamespace}: the default one (no instance) uses the names in the table; a namespace
 * of instance `<inst>` ({@link brokerNamespace}) puts `warren.<inst>` in front of every subject,
 * `WARREN_<inst>_` in front of every stream and `<inst>-` in front of every durable consumer, so
 * supervisors sharing one NATS never see or touch each other's messages, streams or consumers.
 *
 * | Subject                                    | Transport               | Stream / consumer                                  | Dedup `Nats-Msg-Id`        |
 * | ------------------------------------------ | ----------------------- | -------------------------------------------------- | -------------------------- |
 * | `warren.assign.<agent>`                    | JetStream, workqueue    | `WARREN_ASSIGN`, durable `assign-<agent>`          | `<taskId>:<attempt>`        |
 * | `warren.result.<agent>`                    | JetStream, workqueue    | `WARREN_RESULTS`, durable `supervisor-results`     | `<taskId>:<attempt>:result` |
 * | `warren.progress.<agent>.<taskTok>`        | core NATS (may be lost) | none                                               | none                       |
 * | `warren.msg.<to>.<fromTok>`                | JetStream, workqueue    | `WARREN_MESSAGES`, durable `msg-<to>` (`warren.msg.<to>.>`) | the message id      |
 * | `warren.send.<from>.<to>`                  | JetStream, workqueue    | `WARREN_OUTBOX`, durable `supervisor-outbox`       | the message id             |
 * | `warren.topic.<topic>.<fromTok>`           | core NATS (may be lost) | none                                               | none                       |
 * | `warren.reply.<to>.<fromTok>.<requestId>`  | core NATS (may be lost) | none                                               | none                       |
 * | `warren.presence.<from>`                   | core NATS request       | none (the supervisor answers)                      | none                       |
 * | `warren.events.<kind>`                     | core NATS (may be lost) | none                                               | none                       |
 *
 * `msg` is an agent's inbox, published only by the supervisor (signed, with `Warren-From`);
 * `send` is the outbox of agents that connect to NATS directly, relayed by the supervisor to the
 * inbox after the policy allowed it. A direct agent's own request inboxes are
 * `_INBOX.warren.agent.<agent>.…` ({@link BrokerNamespace.agentInboxPrefix}).
 * `<fromTok>` is the sender: an agent name, or `user:<name>` for a person, with `.` replaced by
 * `~` ({@link encodeSenderToken}). Topic names match {@link TOPIC_NAME_PATTERN}, request ids
 * {@link REQUEST_ID_PATTERN}.
 *
 * The four streams use file storage, work-queue retention and a 2 minute duplicate window.
 * `<taskTok>` is the task id with `.` replaced by `~` ({@link encodeTaskIdToken}), because `.`
 * separates subject tokens. Subjects are only ever built from validated names.
 */
export const SUBJECT_PREFIX = 'warren';

/** Duplicate window of the three streams, in ms (2 minutes). */
export const DUPLICATE_WINDOW_MS = 120_000;

/** Header naming the sending agent of a `warren.msg.*` message (set by the supervisor's gateway). */
export const FROM_HEADER = 'Warren-From';
/** Header carrying a W3C trace context (https://www.w3.org/TR/trace-context/#traceparent-header). */
export const TRACEPARENT_HEADER = 'traceparent';
/** Header carrying vendor trace state beside `traceparent` (https://www.w3.org/TR/trace-context/#tracestate-header). */
export const TRACESTATE_HEADER = 'tracestate';
/**
 * Header carrying the HMAC-SHA256 (lowercase hex) of a JetStream message's subject and payload
 * under the instance's signing key; see `signMessage` in `signing.ts`.
 */
export const SIGNATURE_HEADER = 'Warren-Signature';

/** One stream of the contract: its name and the subjects it captures. */
export interface StreamSpec {
  readonly name: string;
  readonly subjects: readonly string[];
}

const INSTANCE_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
/** Instance names that would make an instance's subjects overlap the default namespace's. */
const RESERVED_INSTANCES = new Set(['assign', 'result', 'progress', 'msg', 'send', 'topic', 'reply', 'presence', 'events', 'agent']);

/** Pattern of instance names: `[a-z0-9][a-z0-9_-]{0,31}`, not one of the subject kinds (`assign`, `result`, `progress`, `msg`, `send`, `topic`, `reply`, `presence`, `events`) nor `agent`. */
export const INSTANCE_NAME_PATTERN = INSTANCE_NAME.source;

/**
 * Checks an instance name and returns it.
 * @throws {InvalidNameError} (`WARREN_BROKER_NAME`) unless it matches {@link INSTANCE_NAME_PATTERN}
 *   and is not a subject kind.
 */
export function assertInstanceName(name: string): string {
  if (typeof name !== 'string' || !INSTANCE_NAME.test(name) || RESERVED_INSTANCES.has(name)) {
    throw new InvalidNameError('instance name', String(name), `${INSTANCE_NAME_PATTERN}, not one of ${[...RESERVED_INSTANCES].join(', ')}`);
  }
  return name;
}

/**
 * The names of one Warren instance on a NATS server: subjects, streams and durable consumers.
 * Made by {@link brokerNamespace}; every name the broker client uses comes from one of these.
 */
export interface BrokerNamespace {
  /** The instance name, or undefined for the default namespace. */
  readonly instance: string | undefined;
  /** `warren` or `warren.<instance>`. */
  readonly subjectPrefix: string;
  /** `<prefix>.assign`. */
  readonly assignPrefix: string;
  /** `<prefix>.result`. */
  readonly resultPrefix: string;
  /** `<prefix>.progress`. */
  readonly progressPrefix: string;
  /** `<prefix>.msg`. */
  readonly messagePrefix: string;
  /** `<prefix>.send`: outboxes of agents that connect to NATS directly. */
  readonly outboxPrefix: string;
  /** `<prefix>.topic`. */
  readonly topicPrefix: string;
  /** `<prefix>.reply`. */
  readonly replyPrefix: string;
  /** `<prefix>.presence`. */
  readonly presencePrefix: string;
  /** `<prefix>.events`. */
  readonly eventPrefix: string;
  /** `WARREN_ASSIGN` or `WARREN_<instance>_ASSIGN`. */
  readonly assignStream: string;
  /** `WARREN_RESULTS` or `WARREN_<instance>_RESULTS`. */
  readonly resultsStream: string;
  /** `WARREN_MESSAGES` or `WARREN_<instance>_MESSAGES`. */
  readonly messagesStream: string;
  /** `WARREN_OUTBOX` or `WARREN_<instance>_OUTBOX`. */
  readonly outboxStream: string;
  /** The durable consumer through which the supervisor reads every result: `[<instance>-]supervisor-results`. */
  readonly resultsConsumer: string;
  /** The durable consumer through which the supervisor relays every outbox message: `[<instance>-]supervisor-outbox`. */
  readonly outboxConsumer: string;
  /** The four streams `ensureStreams` creates, in order (assign, results, messages, outbox). */
  readonly streams: readonly StreamSpec[];
  /** `<prefix>.assign.<agent>`. @throws {InvalidNameError} for an invalid agent name. */
  assignSubject(agent: string): string;
  /** `<prefix>.result.<agent>`. @throws {InvalidNameError} for an invalid agent name. */
  resultSubject(agent: string): string;
  /** `<prefix>.progress.<agent>.<taskTok>`. @throws {InvalidNameError} for an invalid agent name or task id. */
  progressSubject(agent: string, taskId: string): string;
  /**
   * `<prefix>.msg.<to>.<fromTok>`: `to`'s inbox, a message from `from` (an agent name or
   * `user:<name>`, encoded by {@link encodeSenderToken}).
   * @throws {InvalidNameError} for an invalid agent name or sender.
   */
  messageSubject(to: string, from: string): string;
  /** `<prefix>.msg.<to>.>`: every message of `to`'s inbox. @throws {InvalidNameError} for an invalid agent name. */
  messageFilter(to: string): string;
  /** `<prefix>.send.<from>.<to>`: `from`'s outbox, a message for `to`. @throws {InvalidNameError} for an invalid agent name. */
  outboxSubject(from: string, to: string): string;
  /** `<prefix>.topic.<topic>.<fromTok>`. @throws {InvalidNameError} for an invalid topic or sender. */
  topicSubject(topic: string, from: string): string;
  /** `<prefix>.topic.<topic>.*`, or `<prefix>.topic.*.*` for `'*'` (every topic). @throws {InvalidNameError} for an invalid topic. */
  topicFilter(topic: string): string;
  /**
   * `<prefix>.reply.<to>.<fromTok>.<requestId>`: `from`'s reply to request `requestId` that `to` sent.
   * @throws {InvalidNameError} for an invalid agent name, sender or request id.
   */
  replySubject(to: string, from: string, requestId: string): string;
  /** `<prefix>.reply.<requester>.*.<requestId>`: every reply to one request. @throws {InvalidNameError} */
  replyFilter(requester: string, requestId: string): string;
  /** `<prefix>.presence.<from>`. @throws {InvalidNameError} for an invalid agent name. */
  presenceSubject(from: string): string;
  /** `_INBOX.<prefix>.agent.<agent>`: the inbox prefix (nats.js `inboxPrefix`) of a directly connected agent. @throws {InvalidNameError} */
  agentInboxPrefix(agent: string): string;
  /**
   * The parts of an inbox subject of this namespace (`<prefix>.msg.<to>.<fromTok>`), the sender
   * decoded; undefined if the subject is not one.
   */
  parseMessageSubject(subject: string): { readonly to: string; readonly from: string } | undefined;
  /** The parts of an outbox subject (`<prefix>.send.<from>.<to>`); undefined if the subject is not one. */
  parseOutboxSubject(subject: string): { readonly from: string; readonly to: string } | undefined;
  /** The parts of a topic subject (`<prefix>.topic.<topic>.<fromTok>`), the sender decoded; undefined if it is not one. */
  parseTopicSubject(subject: string): { readonly topic: string; readonly from: string } | undefined;
  /** The parts of a reply subject (`<prefix>.reply.<to>.<fromTok>.<requestId>`); undefined if it is not one. */
  parseReplySubject(subject: string): { readonly to: string; readonly from: string; readonly requestId: string } | undefined;
  /** `<prefix>.events.<kind>`, see {@link eventSubject}. @throws {InvalidNameError} for an invalid kind. */
  eventSubject(kind: string): string;
  /** `[<instance>-]assign-<agent>`. @throws {InvalidNameError} */
  assignConsumerName(agent: string): string;
  /** `[<instance>-]msg-<agent>`. @throws {InvalidNameError} */
  messageConsumerName(agent: string): string;
  /** The `<from>` token of `<prefix>.presence.<from>`, or undefined if the subject is not a presence request of this namespace. */
  presenceSender(subject: string): string | undefined;
  /**
   * The agent token of a subject of this namespace (`<prefix>.<kind>.<agent>[.…]`), or undefined
   * if the subject is not of this namespace or has no valid agent token.
   */
  agentOfSubject(subject: string): string | undefined;
}

/**
 * The names of instance `instance` (see {@link BrokerNamespace}); without one, the default
 * namespace of the table above.
 * @throws {InvalidNameError} for an invalid instance name, see {@link assertInstanceName}.
 */
export function brokerNamespace(instance?: string): BrokerNamespace {
  const inst = instance === undefined ? undefined : assertInstanceName(instance);
  const subjectPrefix = inst === undefined ? SUBJECT_PREFIX : `${SUBJECT_PREFIX}.${inst}`;
  const stream = (kind: string) => (inst === undefined ? `WARREN_${kind}` : `WARREN_${inst}_${kind}`);
  const durable = (name: string) => (inst === undefined ? name : `${inst}-${name}`);
  const assignPrefix = `${subjectPrefix}.assign`;
  const resultPrefix = `${subjectPrefix}.result`;
  const messagePrefix = `${subjectPrefix}.msg`;
  const assignStream = stream('ASSIGN');
  const resultsStream = stream('RESULTS');
  const messagesStream = stream('MESSAGES');
  const outboxPrefix = `${subjectPrefix}.send`;
  const topicPrefix = `${subjectPrefix}.topic`;
  const replyPrefix = `${subjectPrefix}.reply`;
  const presencePrefix = `${subjectPrefix}.presence`;
  const outboxStream = stream('OUTBOX');
  const depth = subjectPrefix.split('.').length;
  /** The tokens after `<kind>.` of a subject of kind `kindPrefix`, if it has exactly `count` of them. */
  const tokensAfter = (subject: string, kindPrefix: string, count: number): string[] | undefined => {
    if (!subject.startsWith(`${kindPrefix}.`)) return undefined;
    const tokens = subject.slice(kindPrefix.length + 1).split('.');
    return tokens.length === count ? tokens : undefined;
  };
  return Object.freeze({
    instance: inst,
    subjectPrefix,
    assignPrefix,
    resultPrefix,
    progressPrefix: `${subjectPrefix}.progress`,
    messagePrefix,
    outboxPrefix,
    topicPrefix,
    replyPrefix,
    presencePrefix,
    eventPrefix: `${subjectPrefix}.events`,
    assignStream,
    resultsStream,
    messagesStream,
    outboxStream,
    resultsConsumer: durable('supervisor-results'),
    outboxConsumer: durable('supervisor-outbox'),
    streams: Object.freeze([
      { name: assignStream, subjects: [`${assignPrefix}.>`] },
      { name: resultsStream, subjects: [`${resultPrefix}.>`] },
      { name: messagesStream, subjects: [`${messagePrefix}.>`] },
      { name: outboxStream, subjects: [`${outboxPrefix}.>`] },
    ]),
    assignSubject: (agent: string) => `${assignPrefix}.${assertAgentName(agent)}`,
    resultSubject: (agent: string) => `${resultPrefix}.${assertAgentName(agent)}`,
    progressSubject: (agent: string, taskId: string) =>
      `${subjectPrefix}.progress.${assertAgentName(agent)}.${encodeTaskIdToken(taskId)}`,
    messageSubject: (to: string, from: string) => `${messagePrefix}.${assertAgentName(to)}.${encodeSenderToken(from)}`,
    messageFilter: (to: string) => `${messagePrefix}.${assertAgentName(to)}.>`,
    outboxSubject: (from: string, to: string) => `${outboxPrefix}.${assertAgentName(from)}.${assertAgentName(to)}`,
    topicSubject: (topic: string, from: string) => `${topicPrefix}.${assertTopicName(topic)}.${encodeSenderToken(from)}`,
    topicFilter: (topic: string) => `${topicPrefix}.${topic === '*' ? '*' : assertTopicName(topic)}.*`,
    replySubject: (to: string, from: string, requestId: string) =>
      `${replyPrefix}.${assertAgentName(to)}.${encodeSenderToken(from)}.${assertRequestId(requestId)}`,
    replyFilter: (requester: string, requestId: string) => `${replyPrefix}.${assertAgentName(requester)}.*.${assertRequestId(requestId)}`,
    presenceSubject: (from: string) => `${presencePrefix}.${assertAgentName(from)}`,
    agentInboxPrefix: (agent: string) => `_INBOX.${subjectPrefix}.agent.${assertAgentName(agent)}`,
    parseMessageSubject: (subject: string) => {
      const t = tokensAfter(subject, messagePrefix, 2);
      if (!t || !AGENT_NAME.test(t[0]!)) return undefined;
      const from = decodeSenderToken(t[1]!);
      return from === undefined ? undefined : { to: t[0]!, from };
    },
    parseOutboxSubject: (subject: string) => {
      const t = tokensAfter(subject, outboxPrefix, 2);
      return t && AGENT_NAME.test(t[0]!) && AGENT_NAME.test(t[1]!) ? { from: t[0]!, to: t[1]! } : undefined;
    },
    parseTopicSubject: (subject: string) => {
      const t = tokensAfter(subject, topicPrefix, 2);
      if (!t || !TOPIC_NAME.test(t[0]!)) return undefined;
      const from = decodeSenderToken(t[1]!);
      return from === undefined ? undefined : { topic: t[0]!, from };
    },
    parseReplySubject: (subject: string) => {
      const t = tokensAfter(subject, replyPrefix, 3);
      if (!t || !AGENT_NAME.test(t[0]!) || !REQUEST_ID.test(t[2]!)) return undefined;
      const from = decodeSenderToken(t[1]!);
      return from === undefined ? undefined : { to: t[0]!, from, requestId: t[2]! };
    },
    presenceSender: (subject: string) => {
      const t = tokensAfter(subject, presencePrefix, 1);
      return t && AGENT_NAME.test(t[0]!) ? t[0] : undefined;
    },
    eventSubject: (kind: string) => `${subjectPrefix}.events.${checkEventKind(kind)}`,
    assignConsumerName: (agent: string) => durable(`assign-${assertAgentName(agent)}`),
    messageConsumerName: (agent: string) => durable(`msg-${assertAgentName(agent)}`),
    agentOfSubject: (subject: string) => {
      if (!subject.startsWith(`${subjectPrefix}.`)) return undefined;
      const token = subject.split('.')[depth + 1];
      return token !== undefined && AGENT_NAME.test(token) ? token : undefined;
    },
  });
}

/** The default namespace (no instance): the names of the table above. */
export const DEFAULT_NAMESPACE: BrokerNamespace = brokerNamespace();

/** Subject prefix of assignments in the default namespace: `warren.assign.<agent>`. */
export const ASSIGN_SUBJECT_PREFIX = `${SUBJECT_PREFIX}.assign`;
/** Subject prefix of results in the default namespace: `warren.result.<agent>`. */
export const RESULT_SUBJECT_PREFIX = `${SUBJECT_PREFIX}.result`;
/** Subject prefix of progress in the default namespace: `warren.progress.<agent>.<taskTok>`. */
export const PROGRESS_SUBJECT_PREFIX = `${SUBJECT_PREFIX}.progress`;
/** Subject prefix of agent messages in the default namespace: `warren.msg.<agent>`. */
export const MESSAGE_SUBJECT_PREFIX = `${SUBJECT_PREFIX}.msg`;
/** Subject prefix of supervisor events in the default namespace: `warren.events.<kind>`. */
export const EVENT_SUBJECT_PREFIX = `${SUBJECT_PREFIX}.events`;
/** The default namespace's stream holding assignments (`warren.assign.>`). */
export const ASSIGN_STREAM = 'WARREN_ASSIGN';
/** The default namespace's stream holding results (`warren.result.>`). */
export const RESULTS_STREAM = 'WARREN_RESULTS';
/** The default namespace's stream holding agent messages (`warren.msg.>`). */
export const MESSAGES_STREAM = 'WARREN_MESSAGES';
/** The default namespace's stream holding outbox messages of directly connected agents (`warren.send.>`). */
export const OUTBOX_STREAM = 'WARREN_OUTBOX';
/** The default namespace's durable consumer through which the supervisor reads every result. */
export const RESULTS_CONSUMER = 'supervisor-results';
/** The default namespace's durable consumer through which the supervisor relays outbox messages. */
export const OUTBOX_CONSUMER = 'supervisor-outbox';
/** The four streams of the default namespace, in order. */
export const STREAMS: readonly StreamSpec[] = DEFAULT_NAMESPACE.streams;

const AGENT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const TASK_ID = /^[A-Za-z0-9._-]{1,128}$/;
const EVENT_KIND = /^[a-z0-9][a-z0-9_-]{0,62}(\.[a-z0-9][a-z0-9_-]{0,62}){0,3}$/;

const TOPIC_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const REQUEST_ID = /^[A-Za-z0-9_-]{1,128}$/;
const USER_SENDER = /^user:[a-z0-9][a-z0-9._-]{0,63}$/;

/** Pattern of topic names (one subject token): `[a-z0-9][a-z0-9_-]{0,62}`. */
export const TOPIC_NAME_PATTERN = TOPIC_NAME.source;
/** Pattern of request ids (one subject token): 1 to 128 of `[A-Za-z0-9_-]`. */
export const REQUEST_ID_PATTERN = REQUEST_ID.source;
/** Pattern of message senders: an agent name or `user:<name>` (a person, through the API or MCP). */
export const SENDER_PATTERN = `^(${AGENT_NAME.source.slice(1, -1)}|${USER_SENDER.source.slice(1, -1)})$`;

/** True if `topic` is a valid topic name, see {@link TOPIC_NAME_PATTERN}. */
export function isTopicName(topic: string): boolean {
  return TOPIC_NAME.test(topic);
}

/**
 * Checks a topic name and returns it.
 * @throws {InvalidNameError} (`WARREN_BROKER_NAME`) unless it matches {@link TOPIC_NAME_PATTERN}.
 */
export function assertTopicName(topic: string): string {
  if (typeof topic !== 'string' || !TOPIC_NAME.test(topic)) throw new InvalidNameError('topic name', String(topic), TOPIC_NAME_PATTERN);
  return topic;
}

/** True if `id` is a valid request id, see {@link REQUEST_ID_PATTERN}. */
export function isRequestId(id: string): boolean {
  return REQUEST_ID.test(id);
}

/**
 * Checks a request id (the id of a message sent with `request: true`, a subject token of its
 * replies) and returns it.
 * @throws {InvalidNameError} (`WARREN_BROKER_NAME`) unless it matches {@link REQUEST_ID_PATTERN}.
 */
export function assertRequestId(id: string): string {
  if (typeof id !== 'string' || !REQUEST_ID.test(id)) throw new InvalidNameError('request id', String(id), REQUEST_ID_PATTERN);
  return id;
}

/**
 * Encodes a sender (an agent name, or `user:<name>`) as one subject token: `.` becomes `~`, which
 * senders cannot contain, so the encoding is reversible. `user:ann.lee` → `user:ann~lee`; an agent
 * name is its own token.
 * @throws {InvalidNameError} unless `from` matches {@link SENDER_PATTERN}.
 */
export function encodeSenderToken(from: string): string {
  if (typeof from !== 'string' || !(AGENT_NAME.test(from) || USER_SENDER.test(from))) {
    throw new InvalidNameError('sender', String(from), SENDER_PATTERN);
  }
  return from.replaceAll('.', '~');
}

/** Reverses {@link encodeSenderToken}; undefined if the token is not an encoded sender. */
export function decodeSenderToken(token: string): string | undefined {
  const from = token.replaceAll('~', '.');
  return !token.includes('.') && (AGENT_NAME.test(from) || USER_SENDER.test(from)) ? from : undefined;
}

/** Pattern of agent names (one subject token): `[a-z0-9][a-z0-9-]{0,62}`. */
export const AGENT_NAME_PATTERN = AGENT_NAME.source;
/** Pattern of task ids: 1 to 128 of `[A-Za-z0-9._-]`. */
export const TASK_ID_PATTERN = TASK_ID.source;

/** True if `name` is a valid agent name, see {@link AGENT_NAME_PATTERN}. */
export function isAgentName(name: string): boolean {
  return AGENT_NAME.test(name);
}

/**
 * Checks an agent name and returns it.
 * @throws {InvalidNameError} (`WARREN_BROKER_NAME`) unless it matches {@link AGENT_NAME_PATTERN}.
 */
export function assertAgentName(name: string): string {
  if (typeof name !== 'string' || !AGENT_NAME.test(name)) {
    throw new InvalidNameError('agent name', String(name), AGENT_NAME_PATTERN);
  }
  return name;
}

/** True if `id` is a valid task id, see {@link TASK_ID_PATTERN}. */
export function isTaskId(id: string): boolean {
  return TASK_ID.test(id);
}

/**
 * Checks a task id and returns it.
 * @throws {InvalidNameError} (`WARREN_BROKER_NAME`) unless it matches {@link TASK_ID_PATTERN}.
 */
export function assertTaskId(id: string): string {
  if (typeof id !== 'string' || !TASK_ID.test(id)) {
    throw new InvalidNameError('task id', String(id), TASK_ID_PATTERN);
  }
  return id;
}

/**
 * Encodes a task id as one subject token: `.` (a token separator) becomes `~`, which task ids
 * cannot contain, so the encoding is reversible. `T-1.2` → `T-1~2`.
 * @throws {InvalidNameError} if `taskId` is not a valid task id.
 */
export function encodeTaskIdToken(taskId: string): string {
  return assertTaskId(taskId).replaceAll('.', '~');
}

/**
 * Reverses {@link encodeTaskIdToken}. `T-1~2` → `T-1.2`.
 * @throws {InvalidNameError} if the result is not a valid task id.
 */
export function decodeTaskIdToken(token: string): string {
  return assertTaskId(token.replaceAll('~', '.'));
}

/** `warren.assign.<agent>`. @throws {InvalidNameError} for an invalid agent name. */
export function assignSubject(agent: string): string {
  return `${ASSIGN_SUBJECT_PREFIX}.${assertAgentName(agent)}`;
}

/** `warren.result.<agent>`. @throws {InvalidNameError} for an invalid agent name. */
export function resultSubject(agent: string): string {
  return `${RESULT_SUBJECT_PREFIX}.${assertAgentName(agent)}`;
}

/**
 * `warren.progress.<agent>.<taskTok>` with the task id encoded by {@link encodeTaskIdToken}.
 * @throws {InvalidNameError} for an invalid agent name or task id.
 */
export function progressSubject(agent: string, taskId: string): string {
  return `${PROGRESS_SUBJECT_PREFIX}.${assertAgentName(agent)}.${encodeTaskIdToken(taskId)}`;
}

/** `warren.msg.<to>.<fromTok>` (default namespace), see {@link BrokerNamespace.messageSubject}. @throws {InvalidNameError} */
export function messageSubject(to: string, from: string): string {
  return DEFAULT_NAMESPACE.messageSubject(to, from);
}

/** `warren.msg.<to>.>` (default namespace): every message of `to`'s inbox. @throws {InvalidNameError} */
export function messageFilter(to: string): string {
  return DEFAULT_NAMESPACE.messageFilter(to);
}

/** `warren.send.<from>.<to>` (default namespace): `from`'s outbox, for `to`. @throws {InvalidNameError} */
export function outboxSubject(from: string, to: string): string {
  return DEFAULT_NAMESPACE.outboxSubject(from, to);
}

/** `warren.topic.<topic>.<fromTok>` (default namespace). @throws {InvalidNameError} */
export function topicSubject(topic: string, from: string): string {
  return DEFAULT_NAMESPACE.topicSubject(topic, from);
}

/** `warren.reply.<to>.<fromTok>.<requestId>` (default namespace). @throws {InvalidNameError} */
export function replySubject(to: string, from: string, requestId: string): string {
  return DEFAULT_NAMESPACE.replySubject(to, from, requestId);
}

/** `warren.presence.<from>` (default namespace). @throws {InvalidNameError} */
export function presenceSubject(from: string): string {
  return DEFAULT_NAMESPACE.presenceSubject(from);
}

/** `_INBOX.warren.agent.<agent>` (default namespace): a directly connected agent's inbox prefix. @throws {InvalidNameError} */
export function agentInboxPrefix(agent: string): string {
  return DEFAULT_NAMESPACE.agentInboxPrefix(agent);
}

/**
 * `warren.events.<kind>`; `kind` is one to four dot-separated tokens of `[a-z0-9][a-z0-9_-]*`
 * (each at most 63 characters), such as `task.assigned`.
 * @throws {InvalidNameError} for an invalid kind.
 */
export function eventSubject(kind: string): string {
  return `${EVENT_SUBJECT_PREFIX}.${checkEventKind(kind)}`;
}

function checkEventKind(kind: string): string {
  if (typeof kind !== 'string' || !EVENT_KIND.test(kind)) {
    throw new InvalidNameError('event kind', String(kind), EVENT_KIND.source);
  }
  return kind;
}

/** Durable consumer name of an agent's assignments: `assign-<agent>`. @throws {InvalidNameError} */
export function assignConsumerName(agent: string): string {
  return `assign-${assertAgentName(agent)}`;
}

/** Durable consumer name of an agent's messages: `msg-<agent>`. @throws {InvalidNameError} */
export function messageConsumerName(agent: string): string {
  return `msg-${assertAgentName(agent)}`;
}

/**
 * The agent token of a subject built by this module (`warren.<kind>.<agent>[.…]`), or undefined
 * if the subject has no valid agent token.
 */
export function agentOfSubject(subject: string): string | undefined {
  const token = subject.split('.')[2];
  return token !== undefined && AGENT_NAME.test(token) ? token : undefined;
}

import { InvalidNameError } from './errors.js';

/**
 * The subjects and streams of Warren's broker contract. Every name below belongs to one
 * {@link BrokerNamespace}: the default one (no instance) uses the names in the table; a namespace
 * of instance `<inst>` ({@link brokerNamespace}) puts `warren.<inst>` in front of every subject,
 * `WARREN_<inst>_` in front of every stream and `<inst>-` in front of every durable consumer, so
 * supervisors sharing one NATS never see or touch each other's messages, streams or consumers.
 *
 * | Subject                              | Transport               | Stream / consumer                          | Dedup `Nats-Msg-Id`        |
 * | ------------------------------------ | ----------------------- | ------------------------------------------ | -------------------------- |
 * | `warren.assign.<agent>`              | JetStream, workqueue    | `WARREN_ASSIGN`, durable `assign-<agent>`  | `<taskId>:<attempt>`        |
 * | `warren.result.<agent>`              | JetStream, workqueue    | `WARREN_RESULTS`, durable `supervisor-results` | `<taskId>:<attempt>:result` |
 * | `warren.progress.<agent>.<taskTok>`  | core NATS (may be lost) | none                                       | none                       |
 * | `warren.msg.<agent>`                 | JetStream, workqueue    | `WARREN_MESSAGES`, durable `msg-<agent>`   | the message id             |
 * | `warren.events.<kind>`               | core NATS (may be lost) | none                                       | none                       |
 *
 * All three streams use file storage, work-queue retention and a 2 minute duplicate window.
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
const RESERVED_INSTANCES = new Set(['assign', 'result', 'progress', 'msg', 'events']);

/** Pattern of instance names: `[a-z0-9][a-z0-9_-]{0,31}`, not one of the subject kinds (`assign`, `result`, `progress`, `msg`, `events`). */
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
  /** `<prefix>.events`. */
  readonly eventPrefix: string;
  /** `WARREN_ASSIGN` or `WARREN_<instance>_ASSIGN`. */
  readonly assignStream: string;
  /** `WARREN_RESULTS` or `WARREN_<instance>_RESULTS`. */
  readonly resultsStream: string;
  /** `WARREN_MESSAGES` or `WARREN_<instance>_MESSAGES`. */
  readonly messagesStream: string;
  /** The durable consumer through which the supervisor reads every result: `[<instance>-]supervisor-results`. */
  readonly resultsConsumer: string;
  /** The three streams `ensureStreams` creates, in order. */
  readonly streams: readonly StreamSpec[];
  /** `<prefix>.assign.<agent>`. @throws {InvalidNameError} for an invalid agent name. */
  assignSubject(agent: string): string;
  /** `<prefix>.result.<agent>`. @throws {InvalidNameError} for an invalid agent name. */
  resultSubject(agent: string): string;
  /** `<prefix>.progress.<agent>.<taskTok>`. @throws {InvalidNameError} for an invalid agent name or task id. */
  progressSubject(agent: string, taskId: string): string;
  /** `<prefix>.msg.<agent>`. @throws {InvalidNameError} for an invalid agent name. */
  messageSubject(agent: string): string;
  /** `<prefix>.events.<kind>`, see {@link eventSubject}. @throws {InvalidNameError} for an invalid kind. */
  eventSubject(kind: string): string;
  /** `[<instance>-]assign-<agent>`. @throws {InvalidNameError} */
  assignConsumerName(agent: string): string;
  /** `[<instance>-]msg-<agent>`. @throws {InvalidNameError} */
  messageConsumerName(agent: string): string;
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
  const depth = subjectPrefix.split('.').length;
  return Object.freeze({
    instance: inst,
    subjectPrefix,
    assignPrefix,
    resultPrefix,
    progressPrefix: `${subjectPrefix}.progress`,
    messagePrefix,
    eventPrefix: `${subjectPrefix}.events`,
    assignStream,
    resultsStream,
    messagesStream,
    resultsConsumer: durable('supervisor-results'),
    streams: Object.freeze([
      { name: assignStream, subjects: [`${assignPrefix}.>`] },
      { name: resultsStream, subjects: [`${resultPrefix}.>`] },
      { name: messagesStream, subjects: [`${messagePrefix}.>`] },
    ]),
    assignSubject: (agent: string) => `${assignPrefix}.${assertAgentName(agent)}`,
    resultSubject: (agent: string) => `${resultPrefix}.${assertAgentName(agent)}`,
    progressSubject: (agent: string, taskId: string) =>
      `${subjectPrefix}.progress.${assertAgentName(agent)}.${encodeTaskIdToken(taskId)}`,
    messageSubject: (agent: string) => `${messagePrefix}.${assertAgentName(agent)}`,
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
/** The default namespace's durable consumer through which the supervisor reads every result. */
export const RESULTS_CONSUMER = 'supervisor-results';
/** The three streams of the default namespace, in order. */
export const STREAMS: readonly StreamSpec[] = DEFAULT_NAMESPACE.streams;

const AGENT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const TASK_ID = /^[A-Za-z0-9._-]{1,128}$/;
const EVENT_KIND = /^[a-z0-9][a-z0-9_-]{0,62}(\.[a-z0-9][a-z0-9_-]{0,62}){0,3}$/;

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

/** `warren.msg.<agent>`. @throws {InvalidNameError} for an invalid agent name. */
export function messageSubject(agent: string): string {
  return `${MESSAGE_SUBJECT_PREFIX}.${assertAgentName(agent)}`;
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

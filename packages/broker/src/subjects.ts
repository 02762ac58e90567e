import { InvalidNameError } from './errors.js';

/**
 * The subjects and streams of Warren's broker contract.
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

/** Subject prefix of assignments: `warren.assign.<agent>`. */
export const ASSIGN_SUBJECT_PREFIX = `${SUBJECT_PREFIX}.assign`;
/** Subject prefix of results: `warren.result.<agent>`. */
export const RESULT_SUBJECT_PREFIX = `${SUBJECT_PREFIX}.result`;
/** Subject prefix of progress: `warren.progress.<agent>.<taskTok>`. */
export const PROGRESS_SUBJECT_PREFIX = `${SUBJECT_PREFIX}.progress`;
/** Subject prefix of agent messages: `warren.msg.<agent>`. */
export const MESSAGE_SUBJECT_PREFIX = `${SUBJECT_PREFIX}.msg`;
/** Subject prefix of supervisor events: `warren.events.<kind>`. */
export const EVENT_SUBJECT_PREFIX = `${SUBJECT_PREFIX}.events`;

/** The JetStream stream holding assignments (`warren.assign.>`). */
export const ASSIGN_STREAM = 'WARREN_ASSIGN';
/** The JetStream stream holding results (`warren.result.>`). */
export const RESULTS_STREAM = 'WARREN_RESULTS';
/** The JetStream stream holding agent messages (`warren.msg.>`). */
export const MESSAGES_STREAM = 'WARREN_MESSAGES';
/** The durable consumer through which the supervisor reads every result. */
export const RESULTS_CONSUMER = 'supervisor-results';
/** Duplicate window of the three streams, in ms (2 minutes). */
export const DUPLICATE_WINDOW_MS = 120_000;

/** Header naming the sending agent of a `warren.msg.*` message (set by the supervisor's gateway). */
export const FROM_HEADER = 'Warren-From';
/** Header carrying a W3C trace context (https://www.w3.org/TR/trace-context/#traceparent-header). */
export const TRACEPARENT_HEADER = 'traceparent';

/** One stream of the contract: its name and the subjects it captures. */
export interface StreamSpec {
  readonly name: string;
  readonly subjects: readonly string[];
}

/** The three streams {@link Broker.ensureStreams} creates, in order. */
export const STREAMS: readonly StreamSpec[] = [
  { name: ASSIGN_STREAM, subjects: [`${ASSIGN_SUBJECT_PREFIX}.>`] },
  { name: RESULTS_STREAM, subjects: [`${RESULT_SUBJECT_PREFIX}.>`] },
  { name: MESSAGES_STREAM, subjects: [`${MESSAGE_SUBJECT_PREFIX}.>`] },
];

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
  if (typeof kind !== 'string' || !EVENT_KIND.test(kind)) {
    throw new InvalidNameError('event kind', String(kind), EVENT_KIND.source);
  }
  return `${EVENT_SUBJECT_PREFIX}.${kind}`;
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

import { z } from 'zod';
import { InvalidMessageError } from './errors.js';
import { AGENT_NAME_PATTERN, REQUEST_ID_PATTERN, SENDER_PATTERN, TASK_ID_PATTERN, TOPIC_NAME_PATTERN } from './subjects.js';

/**
 * An assignment of one execution (task + attempt) to one agent, published on
 * `warren.assign.<agent>` with `Nats-Msg-Id: <taskId>:<attempt>`.
 */
export interface AssignmentMessage {
  /** The task id (`[A-Za-z0-9._-]`, 1–128 characters). */
  taskId: string;
  /** The attempt number, from 1; a retry is a new attempt. */
  attempt: number;
  /** The agent the task is assigned to; equals the subject's agent token. */
  agent: string;
  /** The task's title (one line). */
  title: string;
  /** The task's markdown body. */
  body: string;
  /** The command to run, when the task names one. */
  command?: string;
  /** The task's other frontmatter fields, as JSON values. */
  fields: Record<string, unknown>;
  /** How long the execution may take, in ms. */
  timeoutMs: number;
  /** When the supervisor assigned it, in ms since the Unix epoch. */
  assignedAtMs: number;
  /**
   * The git repository the task works on, when its task or its agent's template names one: the
   * mirror's path inside the sandbox (read-only, kept by the supervisor) and the ref its branch
   * starts from (absent: the mirror's HEAD).
   */
  repository?: { mirror: string; base?: string };
}

/**
 * The agent runner's span for one execution, reported with its result: the runner runs in the
 * sandbox without a network, so it makes the span's ids itself and the supervisor exports the span
 * as part of the execution's trace. Its parent is the span whose context came in the assignment's
 * `traceparent` header.
 */
export interface RunSpan {
  readonly name: string;
  /** 32 lowercase hex digits (the assignment's trace). */
  readonly traceId: string;
  /** 16 lowercase hex digits, made by the runner. */
  readonly spanId: string;
  /** 16 lowercase hex digits: the span id of the assignment's `traceparent`. */
  readonly parentSpanId: string;
  /** When the task's process started and ended, in ms since the Unix epoch. */
  readonly startMs: number;
  readonly endMs: number;
  /** `error` when the execution did not succeed. */
  readonly status: 'ok' | 'error';
  /** What went wrong, for an `error` status. */
  readonly message?: string;
}

/** How an execution ended. */
export type ResultOutcome = 'succeeded' | 'failed' | 'timed_out' | 'cancelled';

/**
 * An agent's result for one execution, published on `warren.result.<agent>` with
 * `Nats-Msg-Id: <taskId>:<attempt>:result`.
 */
export interface ResultMessage {
  taskId: string;
  attempt: number;
  /** The agent that ran it; equals the subject's agent token. */
  agent: string;
  outcome: ResultOutcome;
  /** The process exit code, or null if it was killed by a signal or never ran. */
  exitCode: number | null;
  /** The signal that ended it (`SIGKILL`…), or null. */
  signal: string | null;
  /** A short human-readable summary. */
  summary: string;
  /** Paths of outputs the execution produced, relative to the agent's home. */
  outputs: string[];
  /** How long it ran, in ms. */
  durationMs: number;
  /** When it finished, in ms since the Unix epoch. */
  finishedAtMs: number;
  /** The runner's span of the run, when the assignment carried a `traceparent` (runners before it send none). */
  span?: RunSpan;
}

/** Progress of one execution, on `warren.progress.<agent>.<taskTok>` (core NATS, may be lost). */
export interface ProgressMessage {
  taskId: string;
  attempt: number;
  agent: string;
  /** What the agent is doing. */
  message: string;
  /** Completion estimate from 0 to 100, when known. */
  percent?: number;
  /** The runtime's event this progress carries (an object with a `kind`: text, tool_call, tool_result, usage, error, final, raw). */
  event?: Record<string, unknown>;
  /** When it was reported, in ms since the Unix epoch. */
  atMs: number;
}

/**
 * A message from one agent (or person) to an agent, on `warren.msg.<to>.<fromTok>` with
 * `Nats-Msg-Id: <id>` and `Warren-From: <from>`.
 */
export interface AgentMessage {
  /** Unique id (1–256 characters, no control characters); it de-duplicates re-publishes. */
  id: string;
  /** The sending agent, or the person who sent it through the API or MCP (`user:<name>`). */
  from: string;
  /** The receiving agent; equals the subject's agent token. */
  to: string;
  /** Any JSON value, at most {@link MAX_BODY_BYTES} encoded. */
  body: unknown;
  /** When it was sent, in ms since the Unix epoch. */
  sentAtMs: number;
  /** True when the sender waits for a reply (a {@link ReplyMessage} with `inReplyTo: id`; the id is then a request id). */
  request?: boolean;
}

/** A message on a topic, on `warren.topic.<topic>.<fromTok>` (core NATS). */
export interface TopicMessage {
  /** Unique id, as {@link AgentMessage.id}. */
  id: string;
  /** The publishing agent or `user:<name>`; equals the subject's sender. */
  from: string;
  /** The topic (`[a-z0-9][a-z0-9_-]{0,62}`); equals the subject's topic token. */
  topic: string;
  /** Any JSON value, at most {@link MAX_BODY_BYTES} encoded. */
  body: unknown;
  /** When it was published, in ms since the Unix epoch. */
  sentAtMs: number;
}

/** The reply to a request, on `warren.reply.<to>.<fromTok>.<inReplyTo>` (core NATS). */
export interface ReplyMessage {
  /** Unique id, as {@link AgentMessage.id}. */
  id: string;
  /** The replying agent; equals the subject's sender. */
  from: string;
  /** The requester, who receives the reply. */
  to: string;
  /** The request's id ({@link REQUEST_ID_PATTERN}). */
  inReplyTo: string;
  /** Any JSON value, at most {@link MAX_BODY_BYTES} encoded. */
  body: unknown;
  /** When it was sent, in ms since the Unix epoch. */
  sentAtMs: number;
}

/**
 * What an agent connected to NATS directly publishes on its outbox `warren.send.<from>.<to>`
 * (stream `WARREN_OUTBOX`, `Nats-Msg-Id: <id>`): the sender and receiver come from the subject,
 * which the server's permissions bind to the agent's credentials.
 */
export interface OutboxMessage {
  /** Unique id, as {@link AgentMessage.id}; a request id ({@link REQUEST_ID_PATTERN}) when `request` is true. */
  id: string;
  /** Any JSON value, at most {@link MAX_BODY_BYTES} encoded. */
  body: unknown;
  /** True when the sender waits for a reply on `warren.reply.<from>.*.<id>`. */
  request?: boolean;
}

/** Largest body of an agent, topic, reply or outbox message, in bytes of its JSON (UTF-8): 256 KiB. */
export const MAX_BODY_BYTES = 256 * 1024;

const agentName = z.string().regex(new RegExp(AGENT_NAME_PATTERN), `must match ${AGENT_NAME_PATTERN}`);
const taskId = z.string().regex(new RegExp(TASK_ID_PATTERN), `must match ${TASK_ID_PATTERN}`);
const attempt = z.number().int().min(1);
const epochMs = z.number().int().nonnegative();
const durationMs = z.number().nonnegative();

/** Pattern of message ids: 1–256 characters without control characters. */
export const MESSAGE_ID_PATTERN = '^[^\\u0000-\\u001f\\u007f]{1,256}$';

/** zod schema of {@link AssignmentMessage}; unknown keys are dropped. */
export const assignmentMessageSchema: z.ZodType<AssignmentMessage> = z.object({
  taskId,
  attempt,
  agent: agentName,
  title: z.string(),
  body: z.string(),
  command: z.string().optional(),
  fields: z.record(z.string(), z.unknown()),
  timeoutMs: durationMs,
  assignedAtMs: epochMs,
  repository: z.object({ mirror: z.string().regex(/^\/[^\0]*$/, 'must be an absolute path'), base: z.string().min(1).max(255).optional() }).optional(),
});

const hexId = (length: number) => z.string().regex(new RegExp(`^(?!0+$)[0-9a-f]{${length}}$`), `must be ${length} lowercase hex digits, not all zero`);

/** zod schema of {@link RunSpan}. */
export const runSpanSchema: z.ZodType<RunSpan> = z.object({
  name: z.string().min(1).max(200),
  traceId: hexId(32),
  spanId: hexId(16),
  parentSpanId: hexId(16),
  startMs: epochMs,
  endMs: epochMs,
  status: z.enum(['ok', 'error']),
  message: z.string().max(2000).optional(),
});

/**
 * zod schema of {@link ResultMessage}; unknown keys are dropped. A `span` that fails its schema is
 * dropped too: a broken trace report never costs the result.
 */
export const resultMessageSchema: z.ZodType<ResultMessage> = z.object({
  taskId,
  attempt,
  agent: agentName,
  outcome: z.enum(['succeeded', 'failed', 'timed_out', 'cancelled']),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  summary: z.string(),
  outputs: z.array(z.string()),
  durationMs,
  finishedAtMs: epochMs,
  span: runSpanSchema.optional().catch(undefined),
});

/** zod schema of {@link ProgressMessage}; unknown keys are dropped. */
export const progressMessageSchema: z.ZodType<ProgressMessage> = z.object({
  taskId,
  attempt,
  agent: agentName,
  message: z.string(),
  percent: z.number().min(0).max(100).optional(),
  event: z.record(z.string(), z.unknown()).optional(),
  atMs: epochMs,
});

const messageId = z.string().regex(new RegExp(MESSAGE_ID_PATTERN, 'u'), 'must be 1-256 characters without control characters');
const sender = z.string().regex(new RegExp(SENDER_PATTERN), 'must be an agent name or user:<name>');
const encoder = new TextEncoder();
const messageBody = z
  .unknown()
  .refine((value) => value !== undefined, 'is required (any JSON value)')
  .refine((value) => value === undefined || encoder.encode(JSON.stringify(value)).byteLength <= MAX_BODY_BYTES, `must be at most ${MAX_BODY_BYTES} bytes as JSON`);

/** zod schema of {@link AgentMessage}; unknown keys are dropped. */
export const agentMessageSchema: z.ZodType<AgentMessage> = z.object({
  id: messageId,
  from: sender,
  to: agentName,
  body: messageBody,
  sentAtMs: epochMs,
  request: z.boolean().optional(),
}).refine((m) => m.request !== true || new RegExp(REQUEST_ID_PATTERN).test(m.id), {
  message: `a request's id must match ${REQUEST_ID_PATTERN}`,
  path: ['id'],
});

/** zod schema of {@link TopicMessage}; unknown keys are dropped. */
export const topicMessageSchema: z.ZodType<TopicMessage> = z.object({
  id: messageId,
  from: sender,
  topic: z.string().regex(new RegExp(TOPIC_NAME_PATTERN), `must match ${TOPIC_NAME_PATTERN}`),
  body: messageBody,
  sentAtMs: epochMs,
});

/** zod schema of {@link ReplyMessage}; unknown keys are dropped. */
export const replyMessageSchema: z.ZodType<ReplyMessage> = z.object({
  id: messageId,
  from: sender,
  to: agentName,
  inReplyTo: z.string().regex(new RegExp(REQUEST_ID_PATTERN), `must match ${REQUEST_ID_PATTERN}`),
  body: messageBody,
  sentAtMs: epochMs,
});

/** zod schema of {@link OutboxMessage}; unknown keys are dropped. A request's id must be a request id. */
export const outboxMessageSchema: z.ZodType<OutboxMessage> = z
  .object({ id: messageId, body: messageBody, request: z.boolean().optional() })
  .refine((m) => m.request !== true || new RegExp(REQUEST_ID_PATTERN).test(m.id), {
    message: `a request's id must match ${REQUEST_ID_PATTERN}`,
    path: ['id'],
  });

/**
 * Checks `value` against `schema` and returns the parsed copy.
 * @param subject where the message is (or will be) published, for the error.
 * @throws {InvalidMessageError} (`WARREN_BROKER_MESSAGE`) naming the first offending field.
 */
export function validateMessage<T>(schema: z.ZodType<T>, subject: string, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue ? issue.path.map(String).join('.') : '';
  throw new InvalidMessageError(subject, field, issue?.message ?? 'does not match the schema', { cause: parsed.error });
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes a UTF-8 JSON payload and checks it against `schema`.
 * @throws {InvalidMessageError} if the bytes are not UTF-8 JSON or fail the schema.
 */
export function decodeMessage<T>(schema: z.ZodType<T>, subject: string, data: Uint8Array): T {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw new InvalidMessageError(subject, '', `payload is not UTF-8 JSON (${(error as Error).message})`, { cause: error });
  }
  return validateMessage(schema, subject, value);
}

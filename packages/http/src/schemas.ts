/**
 * The zod schemas of the API's requests and responses: validation of what comes in, the shape of
 * what goes out, and the OpenAPI document (`@fastify/swagger` through `fastify-type-provider-zod`).
 * Response objects are loose (`z.looseObject`): a field the supervisor adds passes through.
 */
import { z } from 'zod';
import { TaskState } from '@warren/registry';

const nullableNumber = z.number().nullable();
const nullableString = z.string().nullable();

/** A whole number ≥ 0 written in a query string (at most 15 digits). */
export const wholeNumber = z
  .string()
  .regex(/^\d{1,15}$/, 'must be a whole number ≥ 0')
  .transform(Number);

/** A positive whole number written in a query string, at most `max`. */
export const limitParam = (max: number) =>
  z
    .string()
    .regex(/^\d{1,15}$/, 'must be a whole number ≥ 1')
    .transform(Number)
    .refine((n) => n >= 1 && n <= max, `must be between 1 and ${max}`);

/** `true` or `false` in a query string. */
export const booleanParam = z.enum(['true', 'false']).transform((v) => v === 'true');

/** An agent, template or account name in a path. */
export const NameParam = z.object({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'must be a name of letters, digits, ., _, -') });
/** A task id in a path. */
export const TaskIdParam = z.object({ id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/, 'must be a task id of letters, digits, ., _, -') });

/** Every error the API answers: a code, a message naming what is wrong. */
export const ErrorBody = z.looseObject({
  error: z.string().describe('a code: unauthorized, forbidden, forbidden_origin, invalid_request, not_found, conflict, payload_too_large, unsupported_media_type, rate_limited, internal'),
  message: z.string(),
});

export const ForbiddenBody = ErrorBody.extend({ rule: nullableString.optional() });

export const TaskStateEnum = z.enum(Object.values(TaskState) as [TaskState, ...TaskState[]]);

export const StatusBody = z.looseObject({
  supervisor: z.enum(['running', 'stopped']),
  pid: nullableNumber,
  stateDir: z.string(),
  instance: z.string(),
  version: z.string(),
  startedMs: z.number(),
  nowMs: z.number(),
  tasks: z.record(z.string(), z.number()),
  agents: z.record(z.string(), z.number()),
  openExecutions: z.number(),
  auditRows: z.number(),
});

export const AgentLiveBody = z.looseObject({
  status: z.string(),
  load: z.number(),
  lastHeartbeatMs: nullableNumber,
  uptimeMs: nullableNumber,
  cpuMs: nullableNumber,
  memoryBytes: nullableNumber,
  memoryLimitBytes: nullableNumber,
  pids: nullableNumber,
});

export const AgentItemBody = z.looseObject({
  name: z.string(),
  template: z.string(),
  uid: z.number(),
  gid: nullableNumber,
  home: nullableString,
  state: z.string(),
  pid: nullableNumber,
  startedMs: nullableNumber,
  stoppedMs: nullableNumber,
  lastExit: nullableString,
  tasksDone: z.number(),
  capabilities: z.array(z.string()),
  wip: z.number(),
  live: AgentLiveBody.nullable(),
});

export const ExecutionBody = z.looseObject({
  taskId: z.string(),
  attempt: z.number(),
  agent: z.string(),
  template: z.string(),
  state: z.string(),
  outcome: nullableString,
  exitCode: nullableNumber,
  summary: nullableString,
  readySinceMs: nullableNumber,
  assignedMs: nullableNumber,
  ackedMs: nullableNumber,
  finishedMs: nullableNumber,
  waitingMs: nullableNumber,
  startingMs: nullableNumber,
  runningMs: nullableNumber,
});

export const AgentsQuery = z.object({
  template: z.string().max(200).optional(),
  state: z.string().max(50).optional(),
  capability: z.string().max(200).optional(),
});

export const LogQuery = z.object({ after: wholeNumber.optional(), limit: limitParam(65_536).optional() });
export const LogBody = z.object({ text: z.string(), next: z.number(), size: z.number() });

export const AccountsBody = z.object({
  accounts: z.array(
    z.looseObject({ name: z.string(), template: z.string(), uid: z.number(), gid: z.number(), groups: z.array(z.string()), home: z.string(), createdMs: z.number() }),
  ),
});

export const TemplatesBody = z.object({
  templates: z.array(
    z.looseObject({
      name: z.string(),
      capabilities: z.array(z.string()),
      wip: z.number(),
      minInstances: z.number(),
      maxInstances: z.number(),
      warm: z.number(),
      resources: z.record(z.string(), z.unknown()),
      instances: z.number(),
      errors: z.array(z.string()),
    }),
  ),
});

export const CardBody = z.looseObject({
  id: z.string(),
  title: z.string(),
  column: z.string(),
  priority: nullableString,
  capabilities: z.array(z.string()),
  dependsOn: z.array(z.string()),
  state: nullableString,
  agent: nullableString,
  queuePosition: nullableNumber,
  queueReason: nullableString,
  path: z.string(),
});

export const BoardBody = z.looseObject({
  format: z.string(),
  columns: z.array(z.looseObject({ name: z.string(), wip: nullableNumber, count: z.number(), over: z.boolean() })),
  held: z.array(z.looseObject({ path: z.string(), message: z.string() })),
  cards: z.array(CardBody),
});

export const TaskItemBody = z.looseObject({
  id: z.string(),
  path: z.string(),
  state: z.string(),
  attempt: z.number(),
  agent: nullableString,
  reason: nullableString,
  queuePosition: nullableNumber,
  queueReason: nullableString,
  readySinceMs: nullableNumber,
  notBeforeMs: nullableNumber,
  updatedMs: z.number(),
  boardSync: z.enum(['clean', 'pending']),
  title: nullableString,
  column: nullableString,
});

export const TasksQuery = z.object({
  state: TaskStateEnum.optional(),
  agent: z.string().max(200).optional(),
  waiting: booleanParam.optional(),
});

export const AuditRowBody = z.looseObject({
  seq: z.number(),
  timeMs: z.number(),
  actor: z.string(),
  action: z.string(),
  object: z.string(),
  decision: z.enum(['allow', 'deny']).nullable(),
  details: z.unknown().optional(),
  prevHash: z.string(),
  hash: z.string(),
});

/** Calls, tokens and cost of a set of LLM calls. */
export const UsageLineBody = z.looseObject({
  calls: z.number().int(),
  inputTokens: z.number().int(),
  outputTokens: z.number().int(),
  costUsd: z.number().describe('US dollars, rounded to a millionth'),
  failedCalls: z.number().int().describe('calls answered with an HTTP status ≥ 400'),
});

export const TaskUsageBody = z.looseObject({
  total: UsageLineBody,
  attempts: z.array(
    UsageLineBody.extend({
      attempt: nullableNumber,
      agent: z.string(),
      models: z.array(z.string()).describe('<provider>/<model> of its calls'),
      firstMs: z.number(),
      lastMs: z.number(),
    }),
  ),
});

export const TaskDetailBody = TaskItemBody.extend({
  executions: z.array(ExecutionBody),
  audit: z.array(AuditRowBody),
  traceId: nullableString,
  output: z.string(),
  usage: TaskUsageBody.describe("the task's LLM calls through its agents' gateways, in total and per attempt"),
});

export const ExecutionsQuery = z.object({
  task: z.string().max(200).optional(),
  agent: z.string().max(200).optional(),
  template: z.string().max(200).optional(),
  outcome: z.string().max(50).optional(),
  since: wholeNumber.optional().describe('ms since the epoch'),
  limit: limitParam(10_000).optional().describe('default 500'),
});

export const AuditQuery = z.object({
  actor: z.string().max(200).optional(),
  action: z.string().max(200).optional().describe("an exact action or a prefix ending in '.*'"),
  object: z.string().max(300).optional(),
  decision: z.enum(['allow', 'deny', 'none']).optional(),
  since: wholeNumber.optional().describe('ms since the epoch'),
  until: wholeNumber.optional().describe('ms since the epoch'),
  after: wholeNumber.optional().describe('the cursor: rows with seq > after'),
  limit: limitParam(5000).optional().describe('default 200'),
  newest: booleanParam.optional(),
});

export const AuditPageBody = z.object({ rows: z.array(AuditRowBody), next: z.number(), more: z.boolean() });

export const AuditVerifyBody = z.looseObject({
  ok: z.boolean(),
  rows: z.number(),
  signed: z.boolean().describe('whether signed checkpoints cover the trail'),
  keyId: z.string().optional().describe('SHA-256 of the signing public key'),
  checkpoints: z.looseObject({ count: z.number(), lastSeq: nullableNumber, lastMs: nullableNumber }),
  unsignedRows: z.number().describe('rows after the newest checkpoint, protected by the hash chain only'),
  firstBadSeq: z.number().optional(),
  reason: z.string().optional(),
});

export const MessagesQuery = z.object({
  agent: z.string().max(200).optional(),
  since: wholeNumber.optional().describe('ms since the epoch'),
  limit: limitParam(10_000).optional(),
});

export const SchedulesBody = z.looseObject({
  file: z.string(),
  schedules: z.array(
    z.looseObject({
      name: z.string(),
      cron: z.string(),
      timezone: z.string().nullable().describe('IANA time zone; null for UTC'),
      lastFireMs: z.number().nullable(),
      lastTaskId: z.string().nullable(),
      nextFireMs: z.number().nullable(),
      due: z.boolean().describe('a fire time has come that is not run yet'),
    }),
  ),
  problems: z.array(z.looseObject({ message: z.string() })).describe('schedules left out, with line and field'),
});

export const NodesBody = z.looseObject({
  nodes: z.array(
    z.looseObject({
      name: z.string(),
      labels: z.record(z.string(), z.string()),
      capacity: z.looseObject({ cpus: z.number(), memoryBytes: z.number(), maxAgents: z.number() }),
      state: z.string().describe('ready, or lost: no heartbeat within its deadline'),
      lastHeartbeatMs: z.number(),
      instances: z.array(z.looseObject({ agent: z.string(), pid: z.number(), connected: z.boolean(), memoryBytes: z.number() })),
      agents: z.array(z.string()).describe('agents placed there whose instance has not exited'),
    }),
  ),
});

export const MessagesBody = z.looseObject({
  messages: z
    .array(
      z.looseObject({
        seq: z.number(),
        timeMs: z.number(),
        from: z.string(),
        to: z.string().describe("the receiving agent, or '*' for a topic message"),
        topic: z.string().describe("the topic, or '' for a direct message"),
        allowed: z.boolean(),
      }),
    )
    .describe('the newest message decisions of the audit trail, newest first'),
  edges: z
    .array(
      z.looseObject({
        from: z.string(),
        to: z.string().describe("the receiving agent, or '*' for messages published on the topic"),
        topic: z.string().describe("the topic, or '' for direct messages"),
        count: z.number().describe('messages, allowed or denied'),
        denied: z.number().describe('of those, the ones the policy denied'),
        bytes: z.number().describe('body bytes of the allowed ones'),
        firstMs: z.number().describe('the first message, ms since the epoch'),
        lastMs: z.number().describe('the last message, ms since the epoch'),
      }),
    )
    .describe('the message ledger: one edge per (from, to, topic), largest count first'),
});

export const AnalyticsQuery = z.object({
  since: wholeNumber.optional().describe('ms since the epoch'),
  bucketMs: limitParam(366 * 24 * 3600 * 1000).optional().describe('the width of a series bucket, ms'),
});

/** Analytics are the registry's and the supervisor's facts: their inner shapes are documented in `AnalyticsView`. */
export const AnalyticsBody = z.looseObject({
  templates: z.array(z.looseObject({ template: z.string() })),
  agents: z.array(z.looseObject({ agent: z.string(), template: z.string() })),
  total: z.looseObject({}),
  series: z.array(z.looseObject({ startMs: z.number() })),
  rates: z.looseObject({ success: z.number(), failure: z.number(), retry: z.number() }),
  utilisation: z.array(z.looseObject({ template: z.string(), busyMs: z.number(), spanMs: z.number(), ratio: z.number() })),
  capabilities: z.array(z.looseObject({ capability: z.string(), tasks: z.number() })),
  incidents: z.looseObject({ crashRecoveries: z.number(), watchdogKills: z.number(), retries: z.number(), spawnFailures: z.number() }),
});

export const UsageQuery = z.object({
  from: wholeNumber.optional().describe('calls that ended at or after this time, ms since the epoch (default 0 when to is given)'),
  to: wholeNumber.optional().describe('calls that ended at or before this time, ms since the epoch (default now when from is given)'),
  bucket: limitParam(366 * 24 * 3600 * 1000).optional().describe('the width of a series bucket, ms (default: about 60 buckets over the range)'),
  top: limitParam(1000).optional().describe('how many tasks to list, most expensive first (default 20)'),
});

export const UsageBody = z.looseObject({
  range: z.looseObject({ fromMs: z.number(), toMs: z.number() }).nullable(),
  bucketMs: z.number(),
  total: UsageLineBody,
  agents: z.array(UsageLineBody.extend({ agent: z.string(), template: z.string() })),
  templates: z.array(UsageLineBody.extend({ template: z.string() })),
  tasks: z.array(UsageLineBody.extend({ taskId: z.string(), attempts: z.number().int(), agent: z.string(), template: z.string() })),
  models: z.array(UsageLineBody.extend({ provider: z.string(), model: z.string() })),
  series: z.array(z.looseObject({ startMs: z.number(), calls: z.number(), inputTokens: z.number(), outputTokens: z.number(), costUsd: z.number() })),
  refusals: z.looseObject({ total: z.number(), byReason: z.array(z.looseObject({ reason: z.string(), count: z.number() })) }),
});

export const CommandIdParam = z.object({ id: z.string().regex(/^\d{1,15}$/, 'must be a command id').transform(Number) });

export const CommandBody = z.object({
  id: z.number(),
  kind: z.string(),
  target: z.string(),
  state: z.enum(['queued', 'done', 'failed']),
  outcome: nullableString,
  requestedBy: z.string(),
  requestedMs: z.number(),
  doneMs: nullableNumber,
});

export const AcceptedBody = z.object({ command: z.number().describe('the id of the queued command: GET /api/v1/commands/:id') });

export const TaskDraftBody = z.strictObject({
  title: z.string().trim().min(1).max(200),
  body: z.string().max(32_768).optional(),
  capabilities: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'must be a capability name')).max(32).optional(),
  priority: z.string().min(1).max(50).optional().describe("one of the board's priorities (a Warren board's board.yaml; low, normal, high, urgent on the others)"),
  column: z.string().min(1).max(100).optional(),
  dependsOn: z.array(TaskIdParam.shape.id).max(64).optional(),
  parent: TaskIdParam.shape.id.optional().describe("the parent task's id (a task on the board), written as the board's format stores a parent"),
  command: z.string().min(1).max(65_536).optional().describe("the shell command the task runs (Warren boards: the task's command field)"),
});

export const CreatedTaskBody = z.object({ id: z.string(), path: z.string() });

export const SessionRequest = z.strictObject({ token: z.string().max(200) });
export const SessionBody = z.object({ name: z.string(), role: z.string(), expiresMs: nullableNumber });
export const SignInQuery = z.object({ token: z.string().max(200) });

export const EventsQuery = z.object({
  after: wholeNumber.optional().describe('resume after this audit seq (as Last-Event-ID)'),
  kinds: z
    .string()
    .max(1000)
    .regex(/^[A-Za-z0-9_.*,-]*$/, "must be a comma-separated list of kinds or prefixes ending in '*'")
    .optional(),
});

import type { BrokerNamespace } from '@warren/broker';
import { z } from 'zod';

/**
 * The wire protocol of remote agents and nodes: NATS subjects and the zod schemas of every payload
 * (JSON). `<p>` is the broker namespace's `subjectPrefix`.
 *
 * Agent channel (the gateway runs on another host, its events travel over NATS):
 * - `<p>.chan.<agent>.ev`  gateway host → supervisor, core publish, {@link ChannelEvent}.
 * - `<p>.chan.<agent>.rpc` gateway host → supervisor, request/reply, {@link ChannelRequest} →
 *   {@link SendReply} / {@link AuthorizeReply}, or an {@link ErrorReply}.
 * - `<p>.chan.<agent>.ctl` supervisor → gateway host, core publish, {@link ChannelControl}.
 *
 * Nodes:
 * - `<p>.node.hb.<node>` node → supervisor, core publish every `heartbeatMs`, {@link NodeHeartbeat}.
 * - `<p>.node.cmd.<node>` supervisor → node, request/reply, {@link NodeCommand} → `{ok: true, …}` or an {@link ErrorReply}.
 * - `<p>.node.exec.<node>.<execId>` node → supervisor, core publish, {@link ExecOutput}.
 */

/** A node's name: `[a-z][a-z0-9-]{0,62}`. */
export const NODE_NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;
/** An instance id: 16 lowercase hex digits, chosen by the supervisor for each start. */
export const INSTANCE_PATTERN = /^[0-9a-f]{16}$/;
/** An exec id: 1 to 64 of `[a-z0-9-]`, chosen by the supervisor; one subject token. */
export const EXEC_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;
const AGENT_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

/** The three subjects of one agent's channel. */
export interface ChannelSubjects {
  /** `<p>.chan.<agent>.ev`: events, gateway host → supervisor. */
  readonly ev: string;
  /** `<p>.chan.<agent>.rpc`: requests, gateway host → supervisor. */
  readonly rpc: string;
  /** `<p>.chan.<agent>.ctl`: control, supervisor → gateway host. */
  readonly ctl: string;
}

/**
 * The channel subjects of `agent` in namespace `ns`.
 * @throws {Error} for an agent name outside `[a-z][a-z0-9-]{0,31}`.
 */
export function channelSubjects(ns: BrokerNamespace, agent: string): ChannelSubjects {
  if (!AGENT_PATTERN.test(agent)) throw new Error(`invalid agent name for a channel subject: ${JSON.stringify(agent)}`);
  const base = `${ns.subjectPrefix}.chan.${agent}`;
  return { ev: `${base}.ev`, rpc: `${base}.rpc`, ctl: `${base}.ctl` };
}

/** The subjects of node `node`; `node` = `*` gives the wildcard forms a supervisor subscribes. */
export interface NodeSubjects {
  /** `<p>.node.hb.<node>`. */
  readonly hb: string;
  /** `<p>.node.cmd.<node>`. */
  readonly cmd: string;
  /** `<p>.node.exec.<node>.<execId>`. */
  exec(execId: string): string;
}

/**
 * The subjects of node `node` in namespace `ns` (`'*'` for the wildcard of every node).
 * @throws {Error} for a name outside {@link NODE_NAME_PATTERN}, or an exec id outside {@link EXEC_ID_PATTERN}.
 */
export function nodeSubjects(ns: BrokerNamespace, node: string): NodeSubjects {
  if (node !== '*' && !NODE_NAME_PATTERN.test(node)) throw new Error(`invalid node name: ${JSON.stringify(node)} (expected [a-z][a-z0-9-]{0,62})`);
  const base = `${ns.subjectPrefix}.node`;
  return {
    hb: `${base}.hb.${node}`,
    cmd: `${base}.cmd.${node}`,
    exec: (execId) => {
      if (execId !== '*' && !EXEC_ID_PATTERN.test(execId)) throw new Error(`invalid exec id: ${JSON.stringify(execId)}`);
      return `${base}.exec.${node}.${execId}`;
    },
  };
}

/**
 * The token at `index` (0-based) after the namespace prefix of `subject`, or undefined when the
 * subject is not in the namespace. E.g. `chan` is 0 and the agent 1 in `<p>.chan.<agent>.ev`.
 */
export function subjectToken(ns: BrokerNamespace, subject: string, index: number): string | undefined {
  if (!subject.startsWith(`${ns.subjectPrefix}.`)) return undefined;
  return subject.slice(ns.subjectPrefix.length + 1).split('.')[index];
}

const instanceSchema = z.string().regex(INSTANCE_PATTERN, 'an instance id is 16 lowercase hex digits');
const agentSchema = z.string().regex(AGENT_PATTERN, 'an agent name is [a-z][a-z0-9-]{0,31}');
const nonNegative = z.number().int().nonnegative();
const attemptSchema = z.number().int().positive();
const taskIdSchema = z.string().min(1).max(128);

/** `AgentExit` of `@warren/runtime`, every kind. */
export const agentExitSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('succeeded'), exitCode: z.literal(0) }),
  z.object({ kind: z.literal('failed'), exitCode: z.number().int() }),
  z.object({ kind: z.literal('signaled'), signal: z.string() }),
  z.object({ kind: z.literal('oom') }),
  z.object({ kind: z.literal('pids') }),
  z.object({ kind: z.literal('timeout'), detail: z.string() }),
  z.object({ kind: z.literal('watchdog'), detail: z.string() }),
  z.object({ kind: z.literal('setup_error'), message: z.string() }),
  z.object({ kind: z.literal('lost'), detail: z.string() }),
]);

/** `AgentUsage` of `@warren/runtime`. */
export const agentUsageSchema = z.object({
  memoryBytes: nonNegative,
  pids: nonNegative,
  cpuMs: z.number().nonnegative(),
  pidsRefused: nonNegative,
  oomKills: nonNegative,
});

const channelEventBase = { instance: instanceSchema, seq: nonNegative };

/**
 * An event of a remote agent channel (`<p>.chan.<agent>.ev`): the local gateway's `GatewayEvents`
 * plus `exited`, each with the instance it belongs to and a sequence number increasing per instance.
 */
export const channelEventSchema = z.discriminatedUnion('type', [
  z.object({ ...channelEventBase, type: z.literal('hello'), pid: nonNegative }),
  z.object({ ...channelEventBase, type: z.literal('acked'), taskId: taskIdSchema, attempt: attemptSchema }),
  z.object({ ...channelEventBase, type: z.literal('alive') }),
  z.object({ ...channelEventBase, type: z.literal('disconnected') }),
  z.object({ ...channelEventBase, type: z.literal('protocol_error'), message: z.string() }),
  z.object({
    ...channelEventBase,
    type: z.literal('progress'),
    taskId: taskIdSchema,
    attempt: attemptSchema,
    event: z.record(z.string(), z.unknown()),
  }),
  z.object({ ...channelEventBase, type: z.literal('exited'), exit: agentExitSchema }),
]);
export type ChannelEvent = z.infer<typeof channelEventSchema>;

/** A request of a remote agent channel (`<p>.chan.<agent>.rpc`). */
export const channelRequestSchema = z.discriminatedUnion('op', [
  z.object({ instance: instanceSchema, op: z.literal('send'), to: z.string().min(1), body: z.unknown(), ref: z.string() }),
  z.object({ instance: instanceSchema, op: z.literal('authorize'), subject: z.string().min(1), taskId: taskIdSchema, attempt: attemptSchema }),
]);
export type ChannelRequest = z.infer<typeof channelRequestSchema>;

/** A refusal of any request: a `WARREN_…` code and a message naming what failed. */
export const errorReplySchema = z.object({ ok: z.literal(false), code: z.string().min(1), message: z.string() });
export type ErrorReply = z.infer<typeof errorReplySchema>;

/** The reply to `send`: the message's id, or an error with the message service's code. */
export const sendReplySchema = z.union([z.object({ ok: z.literal(true), id: z.string().min(1) }), errorReplySchema]);
export type SendReply = z.infer<typeof sendReplySchema>;

/** The reply to `authorize`: a refusal text, or null to deliver; an {@link ErrorReply} when no decision was made. */
export const authorizeReplySchema = z.union([z.object({ refusal: z.string().nullable() }), errorReplySchema]);
export type AuthorizeReply = z.infer<typeof authorizeReplySchema>;

/** Control of a remote agent channel (`<p>.chan.<agent>.ctl`), supervisor → gateway host. */
export const channelControlSchema = z.discriminatedUnion('op', [
  z.object({ instance: instanceSchema, op: z.literal('cancel'), taskId: taskIdSchema, attempt: attemptSchema, reason: z.string() }),
  z.object({ instance: instanceSchema, op: z.literal('resend'), taskId: taskIdSchema, attempt: attemptSchema }),
  z.object({ instance: instanceSchema, op: z.literal('shutdown'), why: z.string() }),
]);
export type ChannelControl = z.infer<typeof channelControlSchema>;

const resourcesSchema = z.object({
  memoryMaxBytes: nonNegative,
  pidsMax: nonNegative,
  cpuWeight: nonNegative,
  nofile: nonNegative,
  fsizeBytes: nonNegative,
  tmpfsBytes: nonNegative,
});

/** `AgentSpec` of `@warren/runtime` as JSON. */
export const agentSpecSchema = z.object({
  name: agentSchema,
  template: z.string().min(1),
  uid: z.number().int().positive(),
  gid: z.number().int().positive(),
  homeDir: z.string().min(1),
  shell: z.string().optional(),
  resources: resourcesSchema,
  isolation: z.enum(['full', 'unsafe']).optional(),
  environment: z.array(z.string()).readonly().optional(),
  env: z.record(z.string(), z.string()).optional(),
  mounts: z.array(z.object({ source: z.string(), target: z.string() })).readonly().optional(),
});
export type AgentSpecJson = z.infer<typeof agentSpecSchema>;

/**
 * One file the node writes into an agent's home before the start, as the agent's uid and never
 * through a symlink. Without `overwrite` (seed files) a file already there is kept; with it
 * (credentials, secrets) the file is replaced.
 */
export const homeFileSchema = z.object({
  /** Relative to the home; no `..`, not absolute. */
  path: z
    .string()
    .min(1)
    .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), 'a home file path is relative and has no ".."'),
  contentBase64: z.string(),
  /** Permission bits, 0..0o777, e.g. 0o600. */
  mode: z.number().int().min(0).max(0o777),
  overwrite: z.boolean().optional(),
});
export type HomeFile = z.infer<typeof homeFileSchema>;

/**
 * `AgentStartSpec` of `@warren/runtime` as JSON (no `prepareHome`), plus `homeFiles`: the files the
 * supervisor would write into the home before the start (template seed files, secret files, the
 * agent's `~/.warren/nats.json`). The node maps `homeDir` (and `logPath`) under its own state dir.
 */
export const nodeStartSpecSchema = agentSpecSchema.extend({
  capabilities: z.array(z.string()).readonly(),
  runner: z.object({ runtime: z.unknown(), maxConcurrent: z.number().int().positive(), heartbeatIntervalMs: z.number().int().positive() }),
  homeQuotaBytes: nonNegative.nullable(),
  logPath: z.string().optional(),
  homeFiles: z.array(homeFileSchema).readonly(),
});
export type NodeStartSpec = z.infer<typeof nodeStartSpecSchema>;

/** `RuntimeHost` of `@warren/runtime`. */
export const runtimeHostSchema = z.object({
  driver: z.string(),
  isolation: z.enum(['full', 'unsafe']),
  details: z.record(z.string(), z.unknown()),
});

/** One instance a node runs, as its heartbeat reports it. */
export const nodeInstanceSchema = z.object({
  agent: agentSchema,
  instance: instanceSchema,
  pid: nonNegative,
  connected: z.boolean(),
  usage: agentUsageSchema,
});
export type NodeInstanceReport = z.infer<typeof nodeInstanceSchema>;

/** What a node offers: CPUs, memory in bytes, and how many agents it runs at most. */
export const nodeCapacitySchema = z.object({
  cpus: z.number().positive(),
  memoryBytes: nonNegative,
  maxAgents: nonNegative,
});
export type NodeCapacity = z.infer<typeof nodeCapacitySchema>;

/**
 * A node's heartbeat (`<p>.node.hb.<node>`): who it is, since when (`startedMs`, ms since the Unix
 * epoch), a sequence number increasing per daemon run, its labels and capacity, the instances it
 * runs with their usage, and its runtime's probe (`driver`; null when the probe failed).
 */
export const nodeHeartbeatSchema = z.object({
  node: z.string().regex(NODE_NAME_PATTERN),
  version: z.string(),
  startedMs: nonNegative,
  seq: nonNegative,
  labels: z.record(z.string(), z.string()),
  capacity: nodeCapacitySchema,
  instances: z.array(nodeInstanceSchema),
  driver: runtimeHostSchema.nullable(),
});
export type NodeHeartbeat = z.infer<typeof nodeHeartbeatSchema>;

const stopReasonSchema = z.object({ reason: z.enum(['timeout', 'watchdog']), detail: z.string() });
const graceSchema = nonNegative;

/** A command to a node (`<p>.node.cmd.<node>`). */
export const nodeCommandSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('probe'), isolation: z.enum(['full', 'unsafe']).optional() }),
  z.object({ op: z.literal('reclaim') }),
  z.object({ op: z.literal('start'), instance: instanceSchema, spec: nodeStartSpecSchema }),
  z.object({ op: z.literal('stop'), agent: agentSchema, instance: instanceSchema, graceMs: graceSchema, reason: stopReasonSchema.optional() }),
  z.object({ op: z.literal('exec'), execId: z.string().regex(EXEC_ID_PATTERN), agent: agentSpecSchema, argv: z.array(z.string()).min(1).readonly() }),
  z.object({ op: z.literal('exec_stop'), execId: z.string().regex(EXEC_ID_PATTERN), graceMs: graceSchema }),
  z.object({ op: z.literal('detach'), agent: agentSchema }),
  z.object({ op: z.literal('release'), agent: agentSchema }),
]);
export type NodeCommand = z.infer<typeof nodeCommandSchema>;

/**
 * Successful replies, per command: `probe` → `{host}`; `reclaim` → `{report: {instances, storage}}`;
 * `start` → `{pid, unsafe}`; `stop` → `{exit}`; `exec` → `{pid}`; `exec_stop` → `{exit}`;
 * `detach` → `{detached}`; `release` → `{}`.
 */
export const nodeReplySchemas = {
  probe: z.object({ ok: z.literal(true), host: runtimeHostSchema }),
  reclaim: z.object({ ok: z.literal(true), report: z.object({ instances: z.array(z.string()), storage: z.array(z.string()) }) }),
  start: z.object({ ok: z.literal(true), pid: nonNegative, unsafe: z.boolean() }),
  stop: z.object({ ok: z.literal(true), exit: agentExitSchema }),
  exec: z.object({ ok: z.literal(true), pid: nonNegative }),
  exec_stop: z.object({ ok: z.literal(true), exit: agentExitSchema }),
  detach: z.object({ ok: z.literal(true), detached: z.boolean() }),
  release: z.object({ ok: z.literal(true) }),
} as const;
export type NodeReply<Op extends keyof typeof nodeReplySchemas> = z.infer<(typeof nodeReplySchemas)[Op]>;

/** Output of an exec on a node (`<p>.node.exec.<node>.<execId>`): chunks in `seq` order, then the exit. */
export const execOutputSchema = z.union([
  z.object({ stream: z.enum(['stdout', 'stderr']), seq: nonNegative, data: z.string() }),
  z.object({ seq: nonNegative, exit: agentExitSchema }),
]);
export type ExecOutput = z.infer<typeof execOutputSchema>;

/** Encodes a payload as the UTF-8 JSON every subject carries. */
export function encodePayload(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

/** The outcome of {@link decodePayload}: the value, or an error text naming the subject and what is wrong. */
export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

/**
 * Decodes a JSON payload received on `subject` and checks it with `schema`.
 * @returns the parsed value, or an error text naming the subject and the first problems; never throws.
 */
export function decodePayload<T>(schema: z.ZodType<T>, subject: string, data: Uint8Array): Decoded<T> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(data));
  } catch (error) {
    return { ok: false, error: `${subject}: payload is not JSON (${error instanceof Error ? error.message : String(error)})` };
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issues = parsed.error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(payload)'}: ${issue.message}`)
    .join('; ');
  return { ok: false, error: `${subject}: invalid payload: ${issues}` };
}

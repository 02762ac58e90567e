/**
 * The catalogue of what happens in Warren. Every event is one audit row (its `action` is the
 * event's kind), one log line and, once the row is committed, one message on NATS under
 * `<prefix>.events.<kind>` (see {@link EventBus}). A kind's name is the audit action the rows have
 * always carried, so `warren audit --action 'task.*'` and the NATS subject `warren.events.task.>`
 * select the same events.
 *
 * For each kind the catalogue gives the shape of its `details`, a one-line description, the level
 * of its log line (kinds that happen for every task or decision log at `debug`) and the log line's
 * message and fields. `docs/events.md` lists the same catalogue as a table.
 */
/** A level of the `Logger` of `@warren/core`. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** `details` of the `command.<kind>` events: an operator command from the `commands` table, carried out or refused. */
export type CommandEventDetails = {
  /** The command's id in the `commands` table. */
  readonly id: number;
  readonly state: 'done' | 'failed';
  /** What it did, or why it failed (a policy denial, an unknown target). */
  readonly outcome: string;
};

/** `details` of `agent.start` and `agent.wake`. */
export type AgentStartDetails = {
  readonly template: string;
  readonly uid: number;
  readonly gid: number;
  /** The sandbox's pid on the host. */
  readonly pid: number;
  readonly home: string;
  readonly isolation: string;
  /** True when the template asked for weaker isolation than `full`. */
  readonly unsafe: boolean;
};

/** `details` of `agent.stop` and `agent.exit`. */
export type AgentExitDetails = {
  /** How the sandbox ended, as the runtime reports it (`{ kind, code, signal, detail? }`). */
  readonly exit: unknown;
  /** Why it was stopped (`sleep`, `delete`, `shutdown`, `operator`, `unresponsive`, `watchdog`, `disk`), or `unexpected`. */
  readonly reason: string;
  /** Tasks whose executions were open on the agent when it ended. */
  readonly openTasks: readonly string[];
};

/** `details` of `task.retry` (a failed or timed-out attempt that runs again) and `task.requeue`. */
export type TaskRetryDetails = {
  readonly attempt: number;
  /** The outcome of the attempt that ended (`failed`, `timed_out`, `lost`); absent when a person moved the card back. */
  readonly outcome?: string;
  readonly reason?: string;
  /** Backoff before the next attempt may start, in ms. */
  readonly retryInMs?: number;
  readonly maxAttempts?: number;
  /** The state the task left when the board put it back to ready. */
  readonly from?: string;
};

/** `details` of the `board.write` and `board.refused` events: the owned fields written (or refused). */
export type BoardWriteDetails = {
  /** The column written; absent when only other fields changed. */
  readonly status?: string;
  readonly assignee?: string | null;
  readonly result?: string | null;
  readonly started?: string | null;
  readonly completed?: string | null;
  readonly updated?: string | null;
  /** `board.refused` only: the board's reason. */
  readonly message?: string;
  readonly [field: string]: unknown;
};

/** `details` of `agent.crash_loop` and `template.failed` (object `template:<name>`). */
export type SpawnFailureDetails = {
  /** The instance that could not start. */
  readonly agent: string;
  /** Failed starts in a row. */
  readonly failures: number;
  readonly reason: string;
  /** `agent.crash_loop` only: the backoff before the next start, in ms. */
  readonly retryInMs?: number;
};

/**
 * `details` of `message.sent`, `message.published` and `message.denied`: what a message was, never
 * its body. `sha256` is the hex SHA-256 of the body's JSON encoding, `bytes` that encoding's length.
 */
export type MessageEventDetails = {
  /** The receiving agent (direct messages, replies); absent for a topic message. */
  readonly to?: string;
  /** The topic (topic messages); absent for a direct message. */
  readonly topic?: string;
  readonly id: string;
  readonly bytes: number;
  readonly sha256: string;
  /** The request a reply answers (replies only). */
  readonly inReplyTo?: string;
  /** True for a request (the sender waits for a reply). */
  readonly request?: boolean;
  /** `message.denied` only: why (the policy, no such agent). */
  readonly reason?: string;
  /** How it came: `channel` (bus socket, `::send`, MCP, API) or `outbox` (an agent on NATS directly). */
  readonly via?: 'channel' | 'outbox';
};

/** `details` of `supervisor.disk_low` and `supervisor.disk_ok`. */
export type DiskReadingDetails = {
  readonly stateDir: string;
  readonly freeBytes: number;
  readonly reserveBytes: number;
};

/** The shape of `details` of each event kind. */
export type EventDetails = {
  'task.assign': { readonly agent: string; readonly attempt: number };
  'task.start': { readonly attempt: number };
  'task.complete': {
    readonly attempt: number;
    readonly outcome: string;
    readonly exitCode: number | null;
    readonly durationMs: number;
    /** Paths of the outputs, relative to the agent's home. */
    readonly outputs: readonly string[];
  };
  'task.fail': {
    readonly attempt: number;
    readonly outcome: string;
    readonly reason?: string;
    readonly exitCode?: number | null;
    readonly durationMs?: number;
    readonly outputs?: readonly string[];
  };
  'task.retry': TaskRetryDetails;
  'task.requeue': TaskRetryDetails;
  'task.held': { readonly message: string; readonly line: number; readonly field: string | null };
  'task.release': { readonly path: string };
  'task.create': { readonly path: string; readonly title: string; readonly column: string | null };
  'task.move': { readonly from: string; readonly to: string; readonly path: string };
  'task.cancelled': {
    readonly attempt: number;
    readonly agent: string | null;
    readonly column: string;
    readonly reason: string;
    /** True when the card went back to ready and the task runs again. */
    readonly requeued: boolean;
  };
  'task.card_deleted': { readonly attempt: number; readonly agent: string; readonly path: string };
  'task.blocked': { readonly reason: string };
  /** One event of an agent runtime's stream (text, a tool call or result, usage, an error, the final answer), long texts cut. */
  'task.progress': { readonly attempt: number; readonly event: Readonly<Record<string, unknown>> };
  /** The task's execution was stopped because a budget of the LLM gateway ran out. */
  'task.over_budget': { readonly attempt: number; readonly detail: string };
  'task.parent_done': { readonly subtasks: readonly string[] };
  'agent.start': AgentStartDetails;
  'agent.wake': AgentStartDetails;
  'agent.ready': { readonly uid: number };
  'agent.stop': AgentExitDetails;
  'agent.exit': AgentExitDetails;
  'agent.watchdog': { readonly detail: string; readonly reason: string; readonly usage: unknown };
  'agent.disk': {
    readonly detail: string;
    readonly usedBytes: number;
    readonly limitBytes: number;
    readonly grownBytes?: number;
    readonly freeBytes?: number;
    readonly filesystem?: string;
    readonly openTasks: readonly string[];
  };
  'agent.unresponsive': { readonly reason: string };
  'agent.crash_loop': SpawnFailureDetails;
  'agent.spawn_failed': { readonly message: string; readonly code: string | null };
  'agent.protocol_error': { readonly message: string };
  'agent.exec': { readonly argv: readonly string[]; readonly sandboxPid: number };
  'agent.exec_exit': { readonly exit: unknown; readonly argv: readonly string[]; readonly signal?: string };
  'account.delete': Record<string, never>;
  /** One LLM call through the agent's gateway (the row of the usage ledger). */
  'llm.call': {
    readonly provider: string;
    readonly model: string;
    readonly taskId: string | null;
    readonly attempt: number | null;
    readonly inputTokens: number;
    readonly outputTokens: number;
    readonly costUsd: number;
    readonly status: number;
    readonly durationMs: number;
  };
  /** A call the gateway refused: a provider outside the agent's allow-list, an unknown route, a budget used up. */
  'llm.refused': { readonly provider: string | null; readonly path: string; readonly reason: string; readonly detail: string };
  /** A secret was stored or replaced (never its value). */
  'secret.set': { readonly target: string; readonly name: string; readonly gateway: boolean };
  'secret.delete': { readonly target: string; readonly name: string; readonly gateway: boolean };
  /** A template's runtime cannot run (its CLI is missing or broken, its provider unknown): its tasks wait with the reason. */
  'runtime.unhealthy': { readonly kind: string; readonly reason: string };
  'runtime.healthy': { readonly kind: string; readonly version: string | null };
  'template.failed': SpawnFailureDetails;
  /** No node (or no Kubernetes target) can take an agent of the template now: its tasks wait with the reason. */
  'template.unplaceable': { readonly target: string; readonly reason: string };
  /** A `warren node` host (or the embedded node) heartbeats: first heard of, or back after it was lost (`returned`). */
  'node.ready': { readonly labels: Readonly<Record<string, string>>; readonly capacity: { readonly cpus: number; readonly memoryBytes: number; readonly maxAgents: number }; readonly returned: boolean };
  /** A node sent no heartbeat within its deadline: its agents' instances end `lost` and their executions are re-queued. */
  'node.lost': { readonly lastHeartbeatMs: number; readonly instances: readonly string[] };
  /** A node can take an agent of a template that could not be placed before. */
  'template.placeable': { readonly target: string };
  'board.write': BoardWriteDetails;
  'board.refused': BoardWriteDetails;
  'board.error': { readonly message: string };
  'board.illegal_move': { readonly message: string };
  'board.wip_over': { readonly count: number; readonly limit: number; readonly message: string };
  'board.write_dropped': { readonly attempt: number; readonly state: string; readonly column: string; readonly reason: string };
  'board.stopped': { readonly attempt: number; readonly column: string; readonly target: string; readonly reason: string };
  'policy.decide': {
    /** The principal decided on (the event's actor). */
    readonly sub: string;
    readonly act: string;
    /** The policy line that decided (`p, role:worker, task:*, assign, allow`), or null when no rule matched and the default denied. */
    readonly rule: string | null;
    /** Whatever else the asker records about the request (`AuthorizationRequest.context`: an MCP call's tool and argument digest). */
    readonly [key: string]: string | number | boolean | null;
  };
  'policy.error': { readonly sub: string; readonly act: string; readonly message: string };
  'policy.reloaded': { readonly digest: string; readonly modelPath: string; readonly policyPath: string; readonly fastPath: string };
  'policy.reload_failed': { readonly digest: string; readonly file: string | null; readonly line: number | null; readonly message: string };
  'command.agent.start': CommandEventDetails;
  'command.agent.stop': CommandEventDetails;
  'command.agent.restart': CommandEventDetails;
  'command.agent.sleep': CommandEventDetails;
  'command.agent.wake': CommandEventDetails;
  'command.agent.delete': CommandEventDetails;
  'command.task.cancel': CommandEventDetails;
  'command.task.retry': CommandEventDetails;
  'command.template.start': CommandEventDetails;
  'broker.rejected': {
    readonly subject: string;
    readonly field: string;
    readonly reason: string;
    readonly agent?: string;
    readonly taskId?: string;
    readonly attempt?: number;
  };
  'broker.consumer_remade': { readonly stranded: number; readonly reason: string };
  'input.rejected': { readonly kind: 'task' | 'template' | 'provider' | 'schedule'; readonly path: string; readonly line: number; readonly message: string };
  'schedule.fired': {
    readonly schedule: string;
    /** The fire time the card was written for: ms since the epoch, and as ISO 8601 (UTC). */
    readonly fireMs: number;
    readonly fireTime: string;
    readonly taskId: string;
    /** The card's file, relative to the board folder. */
    readonly path: string;
    /** True when the card was found on the board (written before a crash) rather than written now. */
    readonly found: boolean;
  };
  /** The per-agent users of the supervisor's nats-server were rewritten and the server reloaded. */
  'broker.users': { readonly count: number; readonly changed: readonly string[] };
  'message.sent': MessageEventDetails;
  'message.published': MessageEventDetails;
  'message.denied': MessageEventDetails;
  /** A message to a sleeping agent queued its wake (`woken: true`), or the policy kept it asleep. */
  'message.wake': { readonly id: string; readonly woken: boolean; readonly command: number | null };
  'supervisor.start': {
    readonly mode: string;
    readonly board: string;
    readonly nats: 'external' | 'embedded';
    readonly templates: readonly string[];
    readonly staleCgroupsRemoved: number;
    readonly staleMountsRemoved: number;
  };
  'supervisor.recovered': {
    readonly resultsApplied: number;
    /** `<taskId>:<attempt>` of executions no agent holds any more. */
    readonly lostExecutions: readonly string[];
    readonly movedOnTheBoard: readonly string[];
    /** Ids of the tasks put back to ready. */
    readonly requeued: readonly string[];
    /** Ids of the tasks failed for good (attempts used up). */
    readonly failed: readonly string[];
    readonly assignmentsPurged: number;
    /** Half-written board files removed (paths). */
    readonly tempFilesRemoved: readonly string[];
    readonly pendingBoardWrites: number;
  };
  'supervisor.stop': {
    readonly succeeded: number;
    readonly failed: number;
    /** Decisions the enforcer made in this run: equal to its `policy.decide` rows. */
    readonly policyDecisions: number;
  };
  'supervisor.disk_low': DiskReadingDetails;
  'supervisor.disk_ok': DiskReadingDetails;
};

/** The name of a kind of event: the audit row's `action` and the last tokens of its NATS subject. */
export type EventKind = keyof EventDetails;

/** The kinds `command.<command kind>` of operator commands. */
export type CommandEventKind = Extract<EventKind, `command.${string}`>;

/**
 * One event as a caller emits it: the audit entry of its kind. `actor` is who acted (`supervisor`,
 * `board`, `agent:<name>`, `user:<name>`), `object` what it happened to (`task:<id>`,
 * `agent:<name>`, `template:<name>`, `file:<path>`, `consumer:<name>`, `broker:<subject>`,
 * `supervisor`, `board`), `decision` the policy decision it records (`policy.decide` only).
 */
export type WarrenEvent<K extends EventKind = EventKind> = {
  [P in K]: {
    readonly actor: string;
    readonly action: P;
    readonly object: string;
    readonly decision?: 'allow' | 'deny' | null;
    readonly details: EventDetails[P];
  };
}[K];

/** The one log line of an event: fields and constant message (pino style). */
export interface EventLogLine {
  readonly level: LogLevel;
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

/** What the catalogue says about one kind. */
export interface EventSpec<K extends EventKind> {
  /** When it happens, in one line. */
  readonly description: string;
  /** The level of its log line; `debug` for kinds that happen for every task, write or decision. */
  readonly level: LogLevel | ((event: WarrenEvent<K>) => LogLevel);
  /** The log line's message. */
  readonly message: string | ((event: WarrenEvent<K>) => string);
  /** The log line's fields; by default {@link defaultLogFields}. */
  readonly fields?: (event: WarrenEvent<K>) => Record<string, unknown>;
}

/**
 * The fields of an event's log line when its kind names none: the id its `object` names
 * (`task:x` → `taskId`, `agent:x` → `agent`, `template:x` → `template`, `file:x` → `path`, anything
 * else → `object`), then its details.
 */
export function defaultLogFields(event: WarrenEvent): Record<string, unknown> {
  const colon = event.object.indexOf(':');
  const prefix = colon < 0 ? '' : event.object.slice(0, colon);
  const id = event.object.slice(colon + 1);
  const key = OBJECT_FIELDS[prefix];
  return { ...(key ? { [key]: id } : { object: event.object }), ...(event.details as Record<string, unknown>) };
}

const OBJECT_FIELDS: Readonly<Record<string, string>> = { task: 'taskId', agent: 'agent', template: 'template', file: 'path' };

/** The agent of an `agent:<name>` actor, or undefined. */
function actorAgent(actor: string): string | undefined {
  return actor.startsWith('agent:') ? actor.slice('agent:'.length) : undefined;
}

const taskOf = (event: WarrenEvent): string => event.object.slice(event.object.indexOf(':') + 1);

const command = (kind: string): EventSpec<CommandEventKind> => ({
  description: `operator command \`${kind}\` carried out (state done) or refused (state failed, with the reason)`,
  level: 'info',
  message: 'operator command',
  fields: (e) => ({ command: kind, target: e.object.slice(e.object.indexOf(':') + 1), state: e.details.state, outcome: e.details.outcome }),
});

const taskFinished = (e: WarrenEvent<'task.complete' | 'task.fail'>): Record<string, unknown> => ({
  taskId: taskOf(e),
  ...(actorAgent(e.actor) ? { agent: actorAgent(e.actor) } : {}),
  attempt: e.details.attempt,
  outcome: e.details.outcome,
  ...('reason' in e.details && e.details.reason !== undefined ? { reason: e.details.reason } : {}),
  ...(e.details.durationMs !== undefined ? { durationMs: e.details.durationMs } : {}),
});

const agentStarted = (e: WarrenEvent<'agent.start' | 'agent.wake'>): Record<string, unknown> => ({
  agent: taskOf(e),
  uid: e.details.uid,
  sandboxPid: e.details.pid,
  woken: e.action === 'agent.wake',
});

/** Every kind of event, with its description and log line. See the module comment. */
export const EVENT_CATALOGUE: { readonly [K in EventKind]: EventSpec<K> } = {
  'task.assign': { description: 'a ready task was given to an agent (execution committed, assignment published next)', level: 'info', message: 'task assigned' },
  'task.start': { description: "the agent's runner started the execution", level: 'debug', message: 'task started', fields: (e) => ({ taskId: taskOf(e), agent: actorAgent(e.actor), attempt: e.details.attempt }) },
  'task.complete': { description: 'an execution ended with outcome succeeded', level: 'info', message: 'task finished', fields: taskFinished },
  'task.fail': { description: 'an execution ended without success and the task is not retried (failed, timed out, lost too often, stopped for disk)', level: 'info', message: 'task finished', fields: taskFinished },
  'task.retry': { description: 'a failed or timed-out attempt is retried after its backoff', level: 'info', message: 'task retried' },
  'task.requeue': { description: 'a task went back to ready without counting as a failure: its agent was lost, or a person moved its card back', level: 'info', message: 'task requeued' },
  'task.held': { description: 'a task file cannot be read; the task is held until it parses', level: 'warn', message: 'task file held' },
  'task.release': { description: 'a held task file parses again and its task is released', level: 'info', message: 'task file released' },
  'task.create': { description: 'an operator added a card to the board through the API (written in the board\'s own format)', level: 'info', message: 'task created on the board', fields: (e) => ({ taskId: taskOf(e), path: e.details.path, by: e.actor }) },
  'task.move': { description: "an operator moved a card to another column through MCP (written in the board's own format; then handled as a person's move)", level: 'info', message: 'task moved on the board', fields: (e) => ({ taskId: taskOf(e), from: e.details.from, to: e.details.to, by: e.actor }) },
  'task.cancelled': { description: "a person moved a running task's card out of the in-progress column; the execution is cancelled", level: 'warn', message: 'task cancelled by a board move' },
  'task.card_deleted': { description: "a running task's card was deleted; the run finishes and its result stays in the audit trail only", level: 'warn', message: 'card of a running task deleted' },
  'task.blocked': { description: 'a ready task can never run as the board stands (dependency cycle, self or unknown id)', level: 'warn', message: 'task blocked', fields: (e) => ({ taskId: taskOf(e), reason: e.details.reason }) },
  'task.progress': { description: "an event of the agent's runtime: text, a tool call or result, usage, an error, the final answer", level: 'debug', message: 'task progress', fields: (e) => ({ taskId: taskOf(e), agent: actorAgent(e.actor), attempt: e.details.attempt, kind: e.details.event?.kind }) },
  'task.over_budget': { description: "an LLM budget of the task's agent or template ran out; the execution is stopped with that reason", level: 'warn', message: 'task over its LLM budget' },
  'task.parent_done': { description: "every subtask of a parent is done, so the parent's card is moved to done", level: 'info', message: 'parent task done' },
  'agent.start': { description: 'a new agent instance was started in its sandbox', level: 'info', message: 'agent started', fields: agentStarted },
  'agent.wake': { description: "a sleeping agent's account was started again", level: 'info', message: 'agent started', fields: agentStarted },
  'agent.ready': { description: "the agent's runner connected and takes work", level: 'info', message: 'agent ready' },
  'agent.stop': { description: 'an agent Warren stopped has exited (sleep, delete, shutdown, operator, watchdog, disk)', level: 'info', message: 'agent stopped', fields: (e) => ({ agent: taskOf(e), reason: e.details.reason }) },
  'agent.exit': { description: 'an agent exited on its own; its open executions are lost (requeued) or failed', level: 'warn', message: 'agent exited unexpectedly', fields: (e) => ({ agent: taskOf(e), exit: e.details.exit, openTasks: e.details.openTasks }) },
  'agent.watchdog': { description: 'an agent stayed over its resource thresholds past their grace and is killed', level: 'warn', message: 'watchdog: killing agent', fields: (e) => ({ agent: taskOf(e), detail: e.details.detail, reason: e.details.reason }) },
  'agent.disk': { description: 'an agent filled its home limit or a shared filesystem; its open tasks fail and it is stopped', level: 'warn', message: 'disk: stopping agent', fields: (e) => ({ agent: taskOf(e), detail: e.details.detail }) },
  'agent.unresponsive': { description: 'an agent missed its heartbeats and is killed', level: 'warn', message: 'agent unresponsive; killing it' },
  'agent.crash_loop': { description: 'agents of a template failed to start; the next start waits its backoff', level: 'warn', message: 'agent could not start; backing off' },
  'agent.spawn_failed': { description: 'starting an agent instance failed', level: 'error', message: 'cannot start agent' },
  'agent.protocol_error': { description: "an agent's runner sent a message that breaks the channel protocol", level: 'warn', message: 'agent protocol error' },
  'agent.exec': { description: "a command started as the agent in its sandbox: `warren exec` (written by that command), or the agent's computer (MCP run_command, read_file, write_file, list_directory)", level: 'info', message: 'exec started' },
  'agent.exec_exit': { description: "a command of `warren exec` or of the agent's computer ended", level: 'info', message: 'exec ended' },
  'llm.call': { description: 'an LLM call went through the agent\'s gateway (tokens, cost, status)', level: 'debug', message: 'llm call' },
  'llm.refused': { description: 'the LLM gateway refused a call: a provider not allowed, an unknown route, a budget used up', level: 'warn', message: 'llm call refused' },
  'secret.set': { description: 'a secret was stored for a template or an agent (its value is never recorded)', level: 'info', message: 'secret set' },
  'secret.delete': { description: 'a secret was removed', level: 'info', message: 'secret removed' },
  'runtime.unhealthy': { description: "a template's runtime cannot run (CLI missing or broken, provider unknown); its tasks wait with the reason", level: 'error', message: 'runtime unhealthy; its tasks wait' },
  'runtime.healthy': { description: "a template's runtime answers again (or for the first time)", level: 'info', message: 'runtime healthy' },
  'account.delete': { description: "an agent's account, home and broker consumers were deleted", level: 'info', message: 'account deleted' },
  'template.failed': { description: 'too many agents of a template could not start; the template is given up for this run', level: 'error', message: (e) => `template failed after ${e.details.failures} agents could not start`, fields: (e) => ({ template: taskOf(e), reason: e.details.reason }) },
  'template.unplaceable': { description: "no node (or no Kubernetes target) can take an agent of the template now; its tasks wait with the reason", level: 'warn', message: 'template cannot be placed; its tasks wait', fields: (e) => ({ template: taskOf(e), reason: e.details.reason }) },
  'template.placeable': { description: 'a node can take agents of a template that could not be placed before', level: 'info', message: 'template can be placed again' },
  'node.ready': { description: 'a node heartbeats: first heard of, or back after it was lost', level: 'info', message: (e) => (e.details.returned ? 'node back' : 'node ready') },
  'node.lost': { description: "a node sent no heartbeat within its deadline; its agents' instances end lost and their executions are re-queued", level: 'warn', message: 'node lost; its agents\' tasks are re-queued' },
  'board.write': { description: "Warren wrote a task's owned fields (status, assignee, result, ...) to its card", level: 'debug', message: 'board written' },
  'board.refused': { description: "the board's process refused a move Warren wanted to write", level: 'warn', message: 'board refused the move', fields: (e) => ({ taskId: taskOf(e), reason: e.details.message }) },
  'board.error': { description: "the board's config cannot be read; the last good board stays in use", level: 'error', message: 'cannot read the board config; keeping the last good board' },
  'board.illegal_move': { description: "a card was moved against the board's transition rules", level: 'warn', message: (e) => e.details.message, fields: (e) => ({ taskId: taskOf(e) }) },
  'board.wip_over': { description: "a column or swimlane holds more cards than its WIP limit", level: 'warn', message: (e) => e.details.message, fields: (e) => ({ column: e.object.slice(e.object.indexOf(':') + 1), count: e.details.count, limit: e.details.limit }) },
  'board.write_dropped': { description: 'a person moved the card of a task that had already ended; the pending write is dropped', level: 'warn', message: 'board write dropped' },
  'board.stopped': { description: "no allowed path of moves leads a finished card to its end column; it stays where it is", level: 'warn', message: 'card stopped short of its column' },
  'policy.decide': {
    description: 'the policy decided a request (assign, message, exec, an operator command)',
    level: (e) => (e.decision === 'deny' ? 'info' : 'debug'),
    message: 'policy decision',
    fields: (e) => ({ sub: e.details.sub, obj: e.object, act: e.details.act, decision: e.decision ?? null, rule: e.details.rule }),
  },
  'policy.error': { description: 'Casbin could not decide a request; it is denied', level: 'error', message: 'the policy could not decide; the request is denied', fields: (e) => ({ sub: e.details.sub, obj: e.object, act: e.details.act, reason: e.details.message }) },
  'policy.reloaded': { description: 'a changed policy file was loaded and is in force', level: 'info', message: 'policy reloaded' },
  'policy.reload_failed': { description: 'a changed policy file is broken; the last good policy stays in force', level: 'error', message: 'policy reload failed; the last good policy stays in force' },
  'command.agent.start': command('agent.start'),
  'command.agent.stop': command('agent.stop'),
  'command.agent.restart': command('agent.restart'),
  'command.agent.sleep': command('agent.sleep'),
  'command.agent.wake': command('agent.wake'),
  'command.agent.delete': command('agent.delete'),
  'command.task.cancel': command('task.cancel'),
  'command.task.retry': command('task.retry'),
  'command.template.start': command('template.start'),
  'broker.rejected': { description: 'a broker message was refused: bad signature, malformed, or an assignment naming no execution of its agent', level: 'warn', message: 'broker message rejected', fields: (e) => ({ ...e.details }) },
  'broker.consumer_remade': { description: 'a consumer a broker restart left stranded was made again', level: 'warn', message: 'consumer remade after a broker restart' },
  'broker.users': { description: "the per-agent NATS users (NKey, publish and subscribe allow-lists from the policy) were rewritten and the supervisor's nats-server reloaded them", level: 'info', message: 'broker users reloaded', fields: (e) => ({ count: e.details.count, changed: e.details.changed }) },
  'message.sent': { description: "a message (or request, or reply) was put in an agent's inbox; its body's SHA-256 is recorded, never the body", level: 'debug', message: 'message sent', fields: (e) => ({ from: e.actor, ...e.details }) },
  'message.published': { description: 'a message was published on a topic; its SHA-256 is recorded, never the body', level: 'debug', message: 'topic message published', fields: (e) => ({ from: e.actor, ...e.details }) },
  'message.denied': { description: 'a message or topic publication was refused (the policy, or no such agent); not delivered', level: 'info', message: 'message refused', fields: (e) => ({ from: e.actor, ...e.details }) },
  'message.wake': { description: 'a message reached a sleeping agent: its wake was queued when the policy allows the sender to wake it', level: 'info', message: 'message to a sleeping agent', fields: (e) => ({ agent: taskOf(e), from: e.actor, ...e.details }) },
  'input.rejected': { description: 'an input file (task file, agent template) was refused, with file and line', level: 'debug', message: 'input rejected' },
  'schedule.fired': { description: "a board schedule's fire time came: one task card written for it (one for all the fire times missed while Warren was down)", level: 'info', message: 'schedule fired' },
  'supervisor.start': { description: 'the supervisor started (state database, policy, templates, broker open)', level: 'debug', message: 'supervisor started' },
  'supervisor.recovered': { description: 'what the start-up recovery found and did after the previous run', level: 'info', message: 'recovered' },
  'supervisor.stop': { description: 'the supervisor stops, with the counts of the run', level: 'debug', message: 'supervisor stopped' },
  'supervisor.disk_low': { description: "free space on the state directory's filesystem fell below the reserve; no new work starts", level: 'error', message: "disk: free space of the state directory's filesystem is below the reserve; no new work starts until space returns" },
  'supervisor.disk_ok': { description: 'free space is above the reserve again; work resumes', level: 'info', message: 'disk: free space is above the reserve again; work resumes' },
};

/** Every kind, in catalogue order. */
export const EVENT_KINDS: readonly EventKind[] = Object.keys(EVENT_CATALOGUE) as EventKind[];

/** True if `kind` is in the catalogue. */
export function isEventKind(kind: string): kind is EventKind {
  return Object.prototype.hasOwnProperty.call(EVENT_CATALOGUE, kind);
}

/**
 * The one log line of `event` as the catalogue describes it.
 * @throws {TypeError} if `event.action` is not a kind of the catalogue.
 */
export function eventLogLine(event: WarrenEvent): EventLogLine {
  if (!isEventKind(event.action)) throw new TypeError(`'${String(event.action)}' is not an event kind of the catalogue`);
  const spec = EVENT_CATALOGUE[event.action] as EventSpec<EventKind>;
  return {
    level: typeof spec.level === 'function' ? spec.level(event) : spec.level,
    message: typeof spec.message === 'function' ? spec.message(event) : spec.message,
    fields: spec.fields ? spec.fields(event) : defaultLogFields(event),
  };
}

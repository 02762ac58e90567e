import type { SignedVerification } from '@warren/audit';
import type { Decision } from '@warren/policy';
import type { AnalyticsReport, MessagesView as RegistryMessagesView, Registry, SeriesBucket, TaskUsage, UsageReport, UsageReportRequest } from '@warren/registry';
import type { TokenStore } from './tokens.js';

/**
 * The shapes the HTTP API serves and the ports the supervisor implements for it. Plain JSON: field
 * names camelCase, times in ms since the Unix epoch (`…Ms`), durations in ms, sizes in bytes.
 */

/** The live fields of a running agent, from the supervisor's world and the agent's cgroup. */
export interface AgentLive {
  /** The world's status: `idle`, `busy`, `starting`, `stopping`, … */
  readonly status: string;
  /** When it entered `status`, ms since the epoch. */
  readonly statusSinceMs: number;
  /** Tasks it holds now. */
  readonly load: number;
  readonly lastHeartbeatMs: number | null;
  /** Since its sandbox started, in ms. */
  readonly uptimeMs: number | null;
  /** CPU time used by its cgroup, in ms; null when unknown. */
  readonly cpuMs: number | null;
  /** Memory its cgroup holds now, in bytes; null when unknown. */
  readonly memoryBytes: number | null;
  /** Its cgroup's `memory.max`, in bytes; null when unlimited or unknown. */
  readonly memoryLimitBytes: number | null;
  /** Processes in its cgroup; null when unknown. */
  readonly pids: number | null;
  /** Times it was started again after an exit. */
  readonly restarts: number;
}

/** One agent instance: its `agents` row, template facts and live fields (`GET /api/v1/agents`). */
export interface AgentItem {
  readonly name: string;
  readonly template: string;
  readonly uid: number;
  /** Null when its account is gone. */
  readonly gid: number | null;
  /** Its home on the host; null when its account is gone. */
  readonly home: string | null;
  /** The `agents` row's state: `running`, `sleeping`, `stopped`, … */
  readonly state: string;
  readonly pid: number | null;
  readonly startedMs: number | null;
  readonly stoppedMs: number | null;
  /** How its sandbox last ended, in words (`code 0`, `killed by SIGKILL (watchdog)`); null before its first exit. */
  readonly lastExit: string | null;
  readonly tasksDone: number;
  readonly capabilities: readonly string[];
  /** Tasks it may hold at once (its template's WIP). */
  readonly wip: number;
  /** Its template runs without cgroups (`isolation: unsafe-no-cgroups`). */
  readonly unsafe: boolean;
  /** Null when the agent is not running in this supervisor. */
  readonly live: AgentLive | null;
}

/** A Unix account Warren made for an agent (`GET /api/v1/accounts`). */
export interface AccountItem {
  readonly name: string;
  readonly template: string;
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly string[];
  readonly home: string;
  readonly createdMs: number;
}

/** An agent template (`GET /api/v1/templates`). */
export interface TemplateItem {
  readonly name: string;
  readonly description: string;
  readonly capabilities: readonly string[];
  readonly wip: number;
  readonly minInstances: number;
  readonly maxInstances: number;
  /** Instances kept started and idle, ready for work. */
  readonly warm: number;
  /** `persistent`, `sleep` or `autodelete` ('' for a file that does not load). */
  readonly lifecycle: string;
  /** `full` or `unsafe-no-cgroups`. */
  readonly isolation: string;
  /** What runs a task: `shell` or `exec`. */
  readonly runtime: string;
  /** Wall-clock limit of one execution, ms. */
  readonly taskTimeoutMs: number;
  /** The template's resource limits (`memoryMaxBytes`, `pidsMax`, `cpuWeight`, `homeLimitBytes`). */
  readonly resources: Readonly<Record<string, unknown>>;
  /** Instances that exist now. */
  readonly instances: number;
  /** Why the template file does not load, one message each; empty when it does. */
  readonly errors: readonly string[];
  /** `manager` or `worker` ('' for a file that does not load). */
  readonly role?: string;
  /** A manager's quotas (`maxWorkers`, `maxSubtasks`, `templates` it may start workers of); null for a worker. */
  readonly manager?: { readonly maxWorkers: number; readonly maxSubtasks: number; readonly templates: readonly string[] } | null;
}

/** What {@link HttpPorts.schedules} returns: the schedules file, its schedules, and its problems. */
export interface SchedulesView {
  /** The schedules file's path. */
  readonly file: string;
  readonly schedules: readonly {
    readonly name: string;
    readonly cron: string;
    /** IANA time zone, null for UTC. */
    readonly timezone: string | null;
    readonly lastFireMs: number | null;
    readonly lastTaskId: string | null;
    readonly nextFireMs: number | null;
    /** A fire time has come that is not run yet. */
    readonly due: boolean;
  }[];
  /** Schedules left out, each with a message naming the line and field. */
  readonly problems: readonly { readonly message: string }[];
}

/** What {@link HttpPorts.nodes} returns: every node the supervisor heard of (the embedded node included), by name. */
export interface NodesView {
  readonly nodes: readonly {
    readonly name: string;
    readonly labels: Readonly<Record<string, string>>;
    /** CPUs, memory for agents (bytes) and agents at most. */
    readonly capacity: { readonly cpus: number; readonly memoryBytes: number; readonly maxAgents: number };
    /** `ready`, or `lost` (no heartbeat within its deadline). */
    readonly state: string;
    /** Its last heartbeat, ms since the epoch. */
    readonly lastHeartbeatMs: number;
    /** The instances its last heartbeat reported: agent, pid, whether its channel is connected, memory in bytes. */
    readonly instances: readonly { readonly agent: string; readonly pid: number; readonly connected: boolean; readonly memoryBytes: number }[];
    /** The agents the supervisor placed there whose instance has not exited. */
    readonly agents: readonly string[];
  }[];
}

/** One card of the board, joined with Warren's task state. */
export interface Card {
  readonly id: string;
  readonly title: string;
  readonly column: string;
  readonly priority: string | null;
  readonly capabilities: readonly string[];
  readonly labels: readonly string[];
  readonly dependsOn: readonly string[];
  /** Warren's task state, or null when Warren has no row for it yet. */
  readonly state: string | null;
  readonly agent: string | null;
  /** Executions so far (0 before the first). */
  readonly attempt: number;
  readonly queuePosition: number | null;
  readonly queueReason: string | null;
  /** The card's file, relative to the board folder. */
  readonly path: string;
}

/** The board as Warren reads it (`GET /api/v1/board`). */
export interface BoardView {
  /** The board's name (its config's). */
  readonly name: string;
  /** The board format's name: `warren`, `backlog-md`, `obsidian`, `json-config`. */
  readonly format: string;
  /**
   * In board order: `id` is the status value cards carry in `column`, `role` Warren's role of the
   * column (`ready`, `in_progress`, `done`, …) or null.
   */
  readonly columns: readonly { readonly id: string; readonly name: string; readonly wip: number | null; readonly count: number; readonly over: boolean; readonly role: string | null }[];
  /** Files Warren does not take, with why. */
  readonly held: readonly { readonly path: string; readonly message: string }[];
  readonly cards: readonly Card[];
  /** When the supervisor last read the board, ms since the epoch; null before the first read. */
  readonly readMs: number | null;
}

/** What `POST /api/v1/tasks` asks for: a new card, written in the board's own format. */
export interface TaskDraft {
  readonly title: string;
  readonly body?: string;
  readonly capabilities?: readonly string[];
  /** One of the board's priorities. */
  readonly priority?: string;
  /** The column to put it in; default the board's ready column. */
  readonly column?: string;
  readonly dependsOn?: readonly string[];
  /** The shell command the task runs (Warren boards only). */
  readonly command?: string;
}

/**
 * Messages between agents and who talks to whom (`GET /api/v1/messages`): `Registry.messages`.
 * `messages`: the newest message decisions of the audit trail (`{ seq, timeMs, from, to, topic,
 * allowed }`, `to` `*` and `topic` set for a publish on a topic). `edges`: the message ledger, one
 * per (from, to, topic) (`{ from, to, topic, count, denied, bytes, firstMs, lastMs }`, times in ms
 * since the epoch, `bytes` of the allowed bodies), largest count first.
 */
export type MessagesView = RegistryMessagesView;

/** One time bucket of {@link AnalyticsView.series} (`timeSeries` of `@warren/registry`). */
export type AnalyticsBucket = SeriesBucket;

/** The registry's analytics plus series, rates, utilisation, capabilities and incidents (`GET /api/v1/analytics`): `Registry.analyticsReport`. */
export type AnalyticsView = AnalyticsReport;

/**
 * LLM usage and cost for operators (`GET /api/v1/usage`): `usageReport` of `@warren/registry`
 * (totals; per agent, template, task and provider+model; tokens and cost per time bucket; the
 * gateway's refusals by reason). Costs in US dollars, tokens as the providers count them.
 */
export type UsageView = UsageReport;

/** What {@link HttpPorts.usage} is asked: a range (ms since the epoch, inclusive), a bucket width (ms), how many top tasks. */
export type UsageRequest = UsageReportRequest;

/** A task's LLM usage in total and per attempt (`usage` of `GET /api/v1/tasks/:id`): `taskUsage` of `@warren/registry`. */
export type TaskUsageView = TaskUsage;

/** Whether the audit trail verifies (`GET /api/v1/audit/verify`): `verifyAuditTrail` of `@warren/audit`. */
export type AuditVerifyView = SignedVerification;

/**
 * An event of Warren's catalogue as the server streams it: the audit row without its hash chain
 * (the same JSON the supervisor publishes on NATS).
 */
export interface EventPayload {
  /** The audit row's sequence number: consecutive. */
  readonly seq: number;
  /** The audit row's time, ms since the epoch. */
  readonly ts: number;
  /** The event's kind, the audit row's `action` (`task.assign`, `agent.start`, …). */
  readonly kind: string;
  readonly actor: string;
  readonly object: string;
  readonly decision: 'allow' | 'deny' | null;
  readonly details: unknown;
}

/** A chunk of an agent's log (`GET /api/v1/agents/:name/log`). */
export interface LogChunk {
  readonly text: string;
  /** The byte offset to ask for next (`after=next`). */
  readonly next: number;
  /** The log's size now, in bytes. */
  readonly size: number;
}

/** The policy as the HTTP server asks it: the supervisor's `Authorizer` (decides and audits). */
export interface HttpAuthorizer {
  /** Decides `principal` doing `action` on `object`, appending one `policy.decide` audit row. */
  authorize(request: { readonly principal: string; readonly object: string; readonly action: string }): Decision;
  /** Makes `principal` a member of `role` in the enforcer (in memory). */
  grantRole(principal: string, role: string): void;
  /** Takes every role away from `principal` (used when a token name is reused with another role). */
  dropPrincipal(principal: string): void;
}

/**
 * What the HTTP server needs from the process that serves it. The supervisor implements it over its
 * context; tests build it over a real registry, policy and audit trail. Every member is called on the
 * request path: keep each one a read of memory or of SQLite, no waiting on agents.
 */
export interface HttpPorts {
  /** The read model over the state database. */
  readonly registry: Registry;
  readonly authorizer: HttpAuthorizer;
  /** The API tokens and browser sessions, over the same state database. */
  readonly tokens: TokenStore;
  /** The supervisor instance's name (its NATS prefix). */
  readonly instance: string;
  /** Warren's version (`package.json`). */
  readonly version: string;
  /** When the supervisor started, ms since the epoch. */
  readonly startedMs: number;
  /** Every agent instance with its live fields and cgroup usage, sorted by name. */
  agents(): readonly AgentItem[];
  accounts(): readonly AccountItem[];
  templates(): readonly TemplateItem[];
  /** The board's columns, held files and cards joined with task states. */
  board(): Promise<BoardView>;
  /**
   * What the task view adds to the registry's task: its card's title and column, its current trace
   * id (32 hex digits) and the tail of its last execution's output ('' when none).
   */
  taskExtras(id: string): { readonly title: string | null; readonly column: string | null; readonly traceId: string | null; readonly output: string };
  /**
   * Writes a new card in the board's own format as `principal` asked.
   * @returns the task's id and its file, relative to the board folder.
   * @throws {WarrenError} with a message naming the field when the draft cannot be written (answered 400),
   *   `WARREN_TASK_EXISTS` when the id is taken (answered 409).
   */
  createTask(draft: TaskDraft, principal: string): Promise<{ readonly id: string; readonly path: string }>;
  /**
   * A byte range of the agent's log: from `after` (a byte offset) at most `limit` bytes, or without
   * `after` the last `limit` bytes. Undefined when there is no agent `name`.
   */
  agentLog(name: string, range: { readonly after?: number; readonly limit: number }): LogChunk | undefined;
  /**
   * The message decisions and the ledger's edges: `agent` keeps those from or to it, `sinceMs`
   * decisions at or after it and edges whose last message was, `limit` caps the decisions (edges
   * are not capped).
   * @throws {RegistryError} `WARREN_QUERY_INVALID` for a bad `limit` (answered 400).
   */
  messages(filter: { readonly agent?: string; readonly sinceMs?: number; readonly limit?: number }): MessagesView;
  /**
   * The board's schedules (`GET /api/v1/schedules`): each with its cron expression, time zone, last
   * and next fire time (ms since the epoch and ISO 8601) and the last task written, and the
   * schedule file's problems. Absent: the route answers an empty list.
   */
  schedules?(): SchedulesView;
  /** The nodes agents may run on (`GET /api/v1/nodes`), see {@link NodesView}. Absent: the route answers an empty list. */
  nodes?(): NodesView;
  /** Analytics since `sinceMs` (default all) with series in buckets of `bucketMs` (default chosen by the supervisor). */
  analytics(filter: { readonly sinceMs?: number; readonly bucketMs?: number }): AnalyticsView;
  /** Verifies the audit trail's hash chain and signed checkpoints. */
  verifyAudit(): Promise<AuditVerifyView>;
  /**
   * The LLM usage report (`GET /api/v1/usage`). Default: `usageReport(registry.db, request)` of
   * `@warren/registry` over the same database.
   * @throws {RegistryError} `WARREN_QUERY_INVALID` for a range or bucket out of bounds (answered 400).
   */
  usage?(request: UsageRequest): UsageView;
  /** A task's LLM usage per attempt (the task view's `usage`). Default: `taskUsage(registry.db, id)` of `@warren/registry`. */
  taskUsage?(id: string): TaskUsageView;
  /**
   * Calls `listener` with each event once its audit row is committed, in seq order, synchronously
   * from the emitter (the listener must not throw or block).
   * @returns a function that unsubscribes.
   */
  subscribe(listener: (event: EventPayload) => void): () => void;
  /** The Prometheus exposition of Warren's metrics. */
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;
  /** Asks the supervisor to run a tick soon (after a command was queued). */
  requestTick(): void;
}

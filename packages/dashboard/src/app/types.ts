/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="dom.asynciterable" />
// The browser's types. A lib reference holds for the whole program that reads this file, so in the
// type-aware lint program (all packages) the DOM's `ReadableStream` and friends stay async iterable
// as Node's are.
/**
 * The JSON shapes of Warren's HTTP API v1 that the dashboard reads (the contract between
 * `@warren/http` and `@warren/dashboard`). Times are ms since the Unix epoch (`...Ms`), durations
 * ms, sizes bytes. Only the fields the dashboard uses are required here.
 */

/** `GET /api/v1/session`. */
export interface SessionInfo {
  readonly name: string;
  readonly role: string;
  readonly expiresMs: number | null;
}

/** `GET /api/v1/status`. */
export interface StatusInfo {
  readonly supervisor: string;
  readonly pid: number | null;
  readonly instance: string;
  readonly version: string;
  readonly startedMs: number;
  readonly nowMs: number;
  readonly tasks: Readonly<Record<string, number>>;
  readonly agents: Readonly<Record<string, number>>;
  readonly openExecutions: number;
  readonly auditRows: number;
}

/** How an agent's process last ended. */
export interface LastExit {
  readonly code: number | null;
  readonly signal: string | null;
  readonly reason: string | null;
  readonly atMs: number | null;
}

/** The live fields of a running agent (the supervisor's world and the agent's cgroup). */
export interface AgentLive {
  /** `idle`, `busy`, `starting`, `stopping`, … */
  readonly status: string;
  readonly load: number;
  readonly lastHeartbeatMs: number | null;
  readonly uptimeMs: number | null;
  /** CPU time used since the agent started, ms (cumulative). */
  readonly cpuMs: number | null;
  readonly memoryBytes: number | null;
  /** The cgroup's memory limit; null or 0 when unlimited. */
  readonly memoryLimitBytes: number | null;
  readonly pids: number | null;
}

/** `AgentItem` of `GET /api/v1/agents`. */
export interface AgentItem {
  readonly name: string;
  readonly template: string;
  readonly uid: number;
  readonly gid?: number | null;
  readonly home?: string | null;
  /** The agents row's state: `running`, `sleeping`, `stopped`, … */
  readonly state: string;
  readonly pid: number | null;
  readonly startedMs: number | null;
  readonly stoppedMs: number | null;
  /** How its process last ended: the contract's object, or the same in words (`exit 0`, `killed by SIGKILL (watchdog)`). */
  readonly lastExit: LastExit | string | null;
  readonly tasksDone: number;
  readonly capabilities: readonly string[];
  readonly wip: number;
  readonly live: AgentLive | null;
}

/** One execution of a task by an agent (`ExecutionView` of `@warren/registry`). */
export interface ExecutionView {
  readonly taskId: string;
  readonly attempt: number;
  readonly agent: string;
  readonly template: string;
  /** `pending`, `published`, `acked`, `finished`. */
  readonly state: string;
  readonly outcome: string | null;
  readonly exitCode: number | null;
  readonly summary: string | null;
  readonly outputs: readonly string[];
  readonly readySinceMs: number | null;
  readonly assignedMs: number;
  readonly ackedMs: number | null;
  readonly finishedMs: number | null;
  readonly waitingMs: number | null;
  readonly startingMs: number | null;
  readonly runningMs: number | null;
}

/** `GET /api/v1/agents/:name`. */
export interface AgentDetail extends AgentItem {
  readonly executions: readonly ExecutionView[];
}

/** `GET /api/v1/templates` item. */
export interface TemplateItem {
  readonly name: string;
  readonly capabilities: readonly string[];
  readonly wip: number;
  readonly minInstances?: number;
  readonly maxInstances: number;
  readonly warm?: number;
  readonly instances: number;
  /** Why its file does not load (when the server reports errors per template). */
  readonly errors?: readonly string[];
}

/** `GET /api/v1/templates`: the templates, and the files that could not be loaded (`path:line: why`) when reported apart. */
export interface TemplatesView {
  readonly templates: readonly TemplateItem[];
  readonly errors?: readonly string[];
}

/** A card of `GET /api/v1/board`. */
export interface Card {
  readonly id: string;
  readonly title: string;
  /** The id of its column (or its name, for a column without an id). */
  readonly column: string;
  readonly priority: string | null;
  readonly capabilities: readonly string[];
  readonly dependsOn: readonly string[];
  /** Warren's task state, or null when Warren has no row for it. */
  readonly state: string | null;
  readonly agent: string | null;
  readonly queuePosition: number | null;
  readonly queueReason: string | null;
  readonly path: string;
}

/** A column of `GET /api/v1/board`. */
export interface BoardColumn {
  /** The column's id (a card's `column` names it); absent on boards whose columns are known by name only. */
  readonly id?: string;
  readonly name: string;
  readonly wip: number | null;
  readonly count: number;
  readonly over: boolean;
}

/** `GET /api/v1/board`. */
export interface BoardView {
  readonly format: string;
  readonly columns: readonly BoardColumn[];
  readonly held: readonly { readonly path: string; readonly message: string }[];
  readonly cards: readonly Card[];
}

/** One audit row. */
export interface AuditRecord {
  readonly seq: number;
  readonly timeMs: number;
  readonly actor: string;
  readonly action: string;
  readonly object: string;
  readonly decision: 'allow' | 'deny' | null;
  readonly details?: Record<string, unknown> | null;
  readonly prevHash?: string;
  readonly hash?: string;
}

/** `GET /api/v1/tasks/:id`. */
export interface TaskDetail {
  readonly id: string;
  readonly path: string;
  readonly state: string;
  readonly attempt: number;
  readonly agent: string | null;
  readonly reason: string | null;
  readonly queuePosition: number | null;
  readonly queueReason: string | null;
  readonly readySinceMs: number | null;
  readonly notBeforeMs: number | null;
  readonly updatedMs: number;
  readonly title: string | null;
  readonly column: string | null;
  readonly executions: readonly ExecutionView[];
  readonly audit: readonly AuditRecord[];
  readonly traceId: string | null;
  readonly output: string;
  /** Its LLM calls; absent from a server without the usage ledger. */
  readonly usage?: TaskUsage;
}

/** Calls, tokens and cost (US dollars) of a set of LLM calls. */
export interface UsageLine {
  readonly calls: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly costUsd: number;
  /** Calls answered with an HTTP status ≥ 400. */
  readonly failedCalls: number;
}

/** The `usage` of `GET /api/v1/tasks/:id`. */
export interface TaskUsage {
  readonly total: UsageLine;
  readonly attempts: readonly (UsageLine & { readonly attempt: number | null; readonly agent: string; readonly models: readonly string[]; readonly firstMs: number; readonly lastMs: number })[];
}

/** `GET /api/v1/usage`. */
export interface UsageView {
  readonly range: { readonly fromMs: number; readonly toMs: number } | null;
  readonly bucketMs: number;
  readonly total: UsageLine;
  readonly agents: readonly (UsageLine & { readonly agent: string; readonly template: string })[];
  readonly templates: readonly (UsageLine & { readonly template: string })[];
  readonly tasks: readonly (UsageLine & { readonly taskId: string; readonly attempts: number; readonly agent: string; readonly template: string })[];
  readonly models: readonly (UsageLine & { readonly provider: string; readonly model: string })[];
  readonly series: readonly { readonly startMs: number; readonly calls: number; readonly inputTokens: number; readonly outputTokens: number; readonly costUsd: number }[];
  readonly refusals: { readonly total: number; readonly byReason: readonly { readonly reason: string; readonly count: number }[] };
}

/** `GET /api/v1/audit`. */
export interface AuditPage {
  readonly rows: readonly AuditRecord[];
  readonly next: number;
  readonly more: boolean;
}

/** `GET /api/v1/audit/verify`. */
export interface AuditVerify {
  readonly ok: boolean;
  /** Rows read: all of them when ok, else up to the first bad one. */
  readonly rows: number;
  /** Whether signed checkpoints cover the trail. */
  readonly signed?: boolean;
  /** SHA-256 of the signing public key, hex. */
  readonly keyId?: string;
  readonly checkpoints?: { readonly count: number; readonly lastSeq: number | null; readonly lastMs: number | null; readonly signed?: boolean };
  /** Rows after the newest checkpoint, protected by the hash chain only. */
  readonly unsignedRows?: number;
  readonly firstBadSeq?: number;
  readonly reason?: string;
}

/**
 * An edge of `GET /api/v1/messages`, from the message ledger: messages from one agent to another
 * (`topic` ''), or published on a topic (`to` `*`).
 */
export interface MessageEdge {
  readonly from: string;
  readonly to: string;
  /** '' for direct messages. Absent from servers before topics were counted. */
  readonly topic?: string;
  readonly count: number;
  readonly denied: number;
  /** Body bytes of the allowed messages. */
  readonly bytes?: number;
  readonly firstMs?: number;
  readonly lastMs?: number;
}

/** `GET /api/v1/messages`. */
export interface MessagesView {
  readonly messages: readonly {
    readonly seq: number;
    readonly timeMs: number;
    readonly from: string;
    readonly to: string;
    readonly topic?: string;
    readonly allowed: boolean;
  }[];
  readonly edges: readonly MessageEdge[];
}

/** A schedule of `GET /api/v1/schedules`. */
export interface ScheduleItem {
  readonly name: string;
  /** The cron expression: 5 fields, or 6 with seconds first. */
  readonly cron: string;
  /** IANA time zone name; null for UTC. */
  readonly timezone: string | null;
  /** The latest fire time run, null when none yet. */
  readonly lastFireMs: number | null;
  /** The task written for the last fire time. */
  readonly lastTaskId: string | null;
  /** The next fire time after now, null when the expression fires no more. */
  readonly nextFireMs: number | null;
  /** A fire time has come that is not run yet. */
  readonly due: boolean;
}

/** `GET /api/v1/schedules`: the board's schedules file, its schedules, and the schedules left out with why (`path:line: …`). */
export interface SchedulesView {
  readonly file: string;
  readonly schedules: readonly ScheduleItem[];
  readonly problems: readonly { readonly message: string }[];
}

/** Distribution of durations, ms. */
export interface DurationStats {
  readonly count: number;
  readonly p50Ms: number | null;
  readonly p95Ms: number | null;
  readonly meanMs: number | null;
  readonly maxMs: number | null;
}

/** Facts about the executions of one template, agent, or all. */
export interface ExecutionFacts {
  readonly executions: number;
  readonly open: number;
  readonly outcomes: Readonly<Record<string, number>>;
  readonly tasksDone: number;
  readonly waiting: DurationStats;
  readonly starting: DurationStats;
  readonly running: DurationStats;
}

/** One bucket of the analytics time series. */
export interface SeriesPoint {
  readonly startMs: number;
  readonly finished: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly retried: number;
  readonly p50WaitMs: number | null;
  readonly p95WaitMs: number | null;
  readonly p50RunMs: number | null;
  readonly p95RunMs: number | null;
}

/** `GET /api/v1/analytics`. */
export interface AnalyticsView {
  readonly templates: readonly ({ readonly template: string } & ExecutionFacts)[];
  readonly agents: readonly ({ readonly agent: string; readonly template: string } & ExecutionFacts)[];
  readonly total: ExecutionFacts;
  readonly series: readonly SeriesPoint[];
  readonly rates: { readonly success: number; readonly failure: number; readonly retry: number };
  readonly utilisation: readonly { readonly template: string; readonly agent?: string; readonly busyMs: number; readonly spanMs: number; readonly ratio: number }[];
  readonly capabilities: readonly { readonly capability: string; readonly tasks: number }[];
  readonly incidents: { readonly crashRecoveries: number; readonly watchdogKills: number; readonly retries: number; readonly spawnFailures: number; readonly unresponsive?: number; readonly requeues?: number };
}

/** `GET /api/v1/commands/:id`. */
export interface CommandView {
  readonly id: string | number;
  readonly kind: string;
  readonly target: string;
  /** `queued` until the supervisor has run it (`pending` in the first contract). */
  readonly state: 'queued' | 'pending' | 'done' | 'failed';
  readonly outcome: string | null;
  readonly requestedBy: string;
  readonly requestedMs: number;
}

/** The data of one server-sent event of `GET /api/v1/events`. */
export interface EventPayload {
  readonly seq: number;
  readonly ts: number;
  readonly kind: string;
  readonly actor: string;
  readonly object: string;
  readonly decision: 'allow' | 'deny' | null;
  readonly details: Record<string, unknown> | null;
}

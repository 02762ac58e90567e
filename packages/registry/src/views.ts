import type { AuditRecord } from '@warren/audit';
import type { SeriesBucket, Utilisation } from './analytics.js';
import type { AgentRow, AssignmentRow, AssignmentState, TaskState } from './state.js';

/**
 * What `warren status` shows: whether a supervisor runs on the state directory, and counts.
 * Plain JSON.
 */
export interface StatusView {
  /** `running` when the state directory's pid file names a live process. */
  readonly supervisor: 'running' | 'stopped';
  readonly pid: number | null;
  /** The state directory, as given to {@link openRegistry}. */
  readonly stateDir: string;
  /** Tasks by state (`ready`, `running`, `succeeded`, …), keys in the order of the first task (by id) in each state. */
  readonly tasks: Readonly<Record<string, number>>;
  /** Agent instances by state (`running`, `sleeping`, `stopped`, …), keys in the order of the first agent by name. */
  readonly agents: Readonly<Record<string, number>>;
  /** Executions not yet finished (pending, published or acknowledged). */
  readonly openExecutions: number;
  /** Rows of the audit trail (the newest `seq`). */
  readonly auditRows: number;
}

/** Which tasks {@link Registry.tasks} returns; every given field must match. */
export interface TaskFilter {
  /** One state or any of several. */
  readonly state?: TaskState | readonly TaskState[];
  /** The agent of the current (or last) execution. */
  readonly agent?: string;
  /** True: only tasks waiting in the admission queue, in queue order (position 1 first). */
  readonly waiting?: boolean;
}

/** A task as Warren knows it (the `tasks` row), with its place in the queue. Plain JSON. */
export interface TaskView {
  readonly id: string;
  /** The task file, relative to the board folder. */
  readonly path: string;
  readonly state: TaskState;
  /** Executions so far; the current or last one's number. 0 before the first. */
  readonly attempt: number;
  readonly agent: string | null;
  /** Why it ended, failed or was cancelled; null otherwise. */
  readonly reason: string | null;
  /** 1-based place among the waiting tasks (ready, not placed on the last plan), numbered 1, 2, 3 …; null when not waiting. */
  readonly queuePosition: number | null;
  /** Why it waits, as the last plan said. */
  readonly queueReason: string | null;
  /** When it last became ready, ms since the epoch. */
  readonly readySinceMs: number | null;
  /** A retry waits until this time, ms since the epoch; null when it may run now. */
  readonly notBeforeMs: number | null;
  /** When the row last changed, ms since the epoch. */
  readonly updatedMs: number;
  /** `pending` while the board file does not yet show `state`. */
  readonly boardSync: 'clean' | 'pending';
}

/** One task with its executions, oldest first ({@link Registry.task}). */
export interface TaskDetail extends TaskView {
  readonly executions: readonly ExecutionView[];
}

/**
 * The live fields of a running agent instance, known only to the process that runs it (the
 * supervisor's ECS world): given to {@link Registry.agents} by an in-process caller.
 */
export interface LiveAgentFields {
  /** The world's status: `idle`, `busy`, `starting`, `stopping`, … */
  readonly status: string;
  /** Tasks it holds now. */
  readonly load: number;
  /** Its last heartbeat, ms since the epoch; null before the first. */
  readonly lastHeartbeatMs: number | null;
  /** Resource usage by name and unit in the name (`memoryBytes`, `cpuMs`); null when unknown. */
  readonly usage: Readonly<Record<string, number>> | null;
}

/** Options of {@link Registry.agents}. */
export interface AgentsOptions {
  /** The live fields of an agent by name (undefined when it is not running). Default none. */
  readonly live?: (name: string) => LiveAgentFields | undefined;
}

/** An agent instance: its `agents` row, and its live fields when the caller has them. Plain JSON. */
export interface AgentView extends AgentRow {
  /** Present only when {@link AgentsOptions.live} returned fields for it. */
  readonly live?: LiveAgentFields;
}

/** Which executions {@link Registry.executions} returns; every given field must match. */
export interface ExecutionFilter {
  readonly taskId?: string;
  readonly agent?: string;
  /** The agent's template (from its `agents` row, else its name `<template>-<n>`). */
  readonly template?: string;
  /** One state or any of several. */
  readonly state?: AssignmentState | readonly AssignmentState[];
  /** `succeeded`, `failed`, `timed_out`, `cancelled`, `lost`, … */
  readonly outcome?: string;
  /** Only executions assigned at or after this time, ms since the epoch. */
  readonly sinceMs?: number;
  /** At most this many (the first ones in `order`), a positive integer. Default all. */
  readonly limit?: number;
  /** By assignment time ascending (default) or descending. */
  readonly order?: 'asc' | 'desc';
}

/**
 * One execution (`taskId`, `attempt`) of a task by an agent, with the times derived from it.
 * Times are ms since the epoch, durations ms; a duration is null when a time it needs is unknown.
 */
export interface ExecutionView extends AssignmentRow {
  /** The template of the agent that ran it. */
  readonly template: string;
  /** Waiting in the queue: `assignedMs - readySinceMs`. */
  readonly waitingMs: number | null;
  /** Waiting for the agent to take it: `ackedMs - assignedMs`. */
  readonly startingMs: number | null;
  /** Running: `finishedMs - ackedMs`, or `finishedMs - assignedMs` when no acknowledgement was recorded. */
  readonly runningMs: number | null;
}

/** Which audit rows {@link Registry.auditPage} reads; every given field must match. */
export interface AuditPageFilter {
  readonly actor?: string;
  /** An exact action, or a prefix ending in `.*` (`task.*`). */
  readonly action?: string;
  readonly object?: string;
  /** `null` selects rows without a decision. */
  readonly decision?: 'allow' | 'deny' | null;
  /** Rows with `timeMs >= sinceMs`. */
  readonly sinceMs?: number;
  /** Rows with `timeMs < untilMs`. */
  readonly untilMs?: number;
}

/** A request for one page of the audit trail. */
export interface AuditPageRequest {
  /** The cursor: only rows with `seq > after` (the `next` of the previous page). Default 0. */
  readonly after?: number;
  /** At most this many rows, a positive integer. Default 1000. */
  readonly limit?: number;
  /** False (default): the oldest matching rows after the cursor. True: the newest ones. */
  readonly newest?: boolean;
  readonly filter?: AuditPageFilter;
}

/** One page of the audit trail, rows by `seq` ascending. */
export interface AuditPage {
  readonly rows: readonly AuditRecord[];
  /** The cursor for the next page or for tailing: the last row's `seq`, or the request's `after` when empty. */
  readonly next: number;
  /** True when the page is full, so more rows may match (after it, or before it with `newest`). */
  readonly more: boolean;
}

/** Count, sum and distribution of a set of durations, in ms. The others are null when `count` is 0. */
export interface DurationStats {
  readonly count: number;
  readonly totalMs: number;
  readonly meanMs: number | null;
  /** Nearest-rank percentiles. */
  readonly p50Ms: number | null;
  readonly p95Ms: number | null;
  readonly maxMs: number | null;
}

/** What happened to the executions of one template, one agent, or all. */
export interface ExecutionFacts {
  readonly executions: number;
  /** Executions not yet finished. */
  readonly open: number;
  /** Finished executions by outcome, keys sorted. */
  readonly outcomes: Readonly<Record<string, number>>;
  /** Distinct tasks with a succeeded execution. */
  readonly tasksDone: number;
  /** Ready → assigned (`waitingMs` of each execution). */
  readonly waiting: DurationStats;
  /** Assigned → acknowledged (`startingMs`). */
  readonly starting: DurationStats;
  /** Acknowledged → finished (`runningMs`). */
  readonly running: DurationStats;
}

/** The analytics facts ({@link Registry.analytics}): per template, per agent and in total. Plain JSON. */
export interface Analytics {
  /** By template name. */
  readonly templates: readonly ({ readonly template: string } & ExecutionFacts)[];
  /** By agent name; includes agents whose instance has been deleted. */
  readonly agents: readonly ({ readonly agent: string; readonly template: string } & ExecutionFacts)[];
  readonly total: ExecutionFacts;
}

/** Which agent messages and edges {@link Registry.messages} returns. */
export interface MessageFilter {
  /** Only messages and edges from or to this agent (for a topic edge: its sender). */
  readonly agent?: string;
  /**
   * Only messages decided at or after this time, and edges whose last message was, ms since the
   * epoch (an edge's counts stay its totals since the ledger began).
   */
  readonly sinceMs?: number;
  /** At most this many messages (the newest), a positive integer. Default 1000. Edges are not limited. */
  readonly limit?: number;
}

/**
 * One message an agent asked to send another or to publish on a topic: the policy decision about
 * it (`policy.decide` with act `message`, or act `publish` on `topic:<t>`), from the audit trail.
 */
export interface MessageView {
  /** The decision's audit row. */
  readonly seq: number;
  readonly timeMs: number;
  readonly from: string;
  /** The receiving agent, or `*` for a topic message. */
  readonly to: string;
  /** The topic, or '' for a direct message. */
  readonly topic: string;
  /** Whether the policy let it through. */
  readonly allowed: boolean;
}

/**
 * Who messages whom: one edge per (from, to, topic) of the message ledger (`message_counts`, see
 * `MessageLedger`), with its totals since the ledger began.
 */
export interface MessageEdge {
  readonly from: string;
  /** The receiving agent, or `*` for messages published on `topic`. */
  readonly to: string;
  /** The topic, or '' for direct messages. */
  readonly topic: string;
  /** Messages asked for, allowed or not. */
  readonly count: number;
  /** Of those, the ones the policy denied. */
  readonly denied: number;
  /** Body bytes of the allowed ones. */
  readonly bytes: number;
  /** The first and the last message's time, ms since the epoch. */
  readonly firstMs: number;
  readonly lastMs: number;
}

/**
 * The newest message decisions (newest first) and the collaboration graph's edges from the message
 * ledger ({@link Registry.messages}). Plain JSON.
 */
export interface MessagesView {
  readonly messages: readonly MessageView[];
  /** Sorted by count, largest first, then by from, to and topic. */
  readonly edges: readonly MessageEdge[];
}

/** Counts of what went wrong and what Warren did about it, from the audit trail ({@link Registry.incidents}). */
export interface Incidents {
  /** Start-ups whose recovery found work of a crashed run (`supervisor.recovered` with results applied, executions lost, tasks re-queued or failed). */
  readonly crashRecoveries: number;
  /** Agents the watchdog killed (`agent.watchdog`). */
  readonly watchdogKills: number;
  /** Attempts retried after a failure (`task.retry`). */
  readonly retries: number;
  /** Agents that could not be started (`agent.spawn_failed`). */
  readonly spawnFailures: number;
  /** Agents that stopped answering (`agent.unresponsive`). */
  readonly unresponsive: number;
  /** Executions re-queued after their agent was lost (`task.requeue`). */
  readonly requeues: number;
}

/** What {@link Registry.analyticsReport} covers. */
export interface AnalyticsReportFilter {
  /** Only executions assigned at or after this time, ms since the epoch. Default all. */
  readonly sinceMs?: number;
  /** The width of a series bucket, ms. Default: the covered time split into about 60, at least 1 s. */
  readonly bucketMs?: number;
  /** The capabilities a task needs (its card's), for the busiest capabilities. Default none known. */
  readonly capabilitiesOf?: (taskId: string) => readonly string[];
  /** Now, ms since the epoch (open executions are busy until now). */
  readonly nowMs: number;
}

/** The analytics the dashboard charts ({@link Registry.analyticsReport}). Plain JSON. */
export interface AnalyticsReport extends Analytics {
  readonly bucketMs: number;
  /** Throughput and latency over time: finished executions by finish time. */
  readonly series: readonly SeriesBucket[];
  /** Shares (0..1) of finished executions: succeeded, failed (any other outcome), retried (attempt > 1); 0 when none finished. */
  readonly rates: { readonly success: number; readonly failure: number; readonly retry: number };
  readonly utilisation: readonly Utilisation[];
  /** Tasks run per capability, busiest first. */
  readonly capabilities: readonly { readonly capability: string; readonly tasks: number }[];
  readonly incidents: Incidents;
}

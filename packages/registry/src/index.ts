/**
 * @warren/registry: Warren's state tables, the durable operator-command queue, and the named read
 * queries that return plain JSON. It is the one read model: the CLI's read commands use it, and so
 * will the HTTP API, the dashboard and the MCP server.
 *
 * ```ts
 * import { openDatabase } from '@warren/store';
 * import { CommandKind, openRegistry } from '@warren/registry';
 * const db = openDatabase('var/warren.db');
 * const registry = openRegistry(db, { stateDir: 'var' });
 * registry.status();                        // { supervisor: 'running', pid: 4242, tasks: { ready: 3 }, … }
 * registry.tasks({ waiting: true });        // the admission queue, positions 1, 2, 3 …
 * registry.executions({ taskId: 'count-lines' });
 * registry.auditPage({ filter: { action: 'task.*' }, limit: 50, newest: true });
 * registry.analytics().templates;           // waiting and running times, outcomes per template
 * new MessageLedger(db).record({ from: 'a-1', to: 'b-1', topic: '', bytes: 42, allowed: true, timeMs: Date.now() });
 * registry.messages({ agent: 'a-1' }).edges; // [{ from: 'a-1', to: 'b-1', topic: '', count: 1, denied: 0, bytes: 42, … }]
 * const id = registry.commands.enqueue(CommandKind.agentStop, 'shell-1', 'user:alice', Date.now());
 * await registry.commands.waitForOutcome(id, { timeoutMs: 10_000 });
 * db.close();
 * ```
 */
export {
  AssignmentState,
  StateStore,
  TaskState,
  agentRow,
  assignmentRow,
  isTerminal,
  migrateState,
  queuePositions,
  taskRow,
} from './state.js';
export type { AgentRecord, AgentRow, AssignmentRecord, AssignmentRow, TaskRecord, TaskRow } from './state.js';
export { CommandKind, CommandQueue, commandRequest, isCommandKind, runCommands } from './commands.js';
export type {
  CommandHandler,
  CommandHandlers,
  CommandHooks,
  CommandRow,
  CommandRun,
  CommandState,
  WaitForOutcomeOptions,
} from './commands.js';
export { Registry, openRegistry } from './registry.js';
export type { OpenRegistryOptions } from './registry.js';
export { analyticsOf, durationStats, executionFacts, timeSeries, utilisation } from './analytics.js';
export type { SeriesBucket, Utilisation } from './analytics.js';
export { UsageLedger, migrateUsage } from './usage.js';
export { MessageLedger, TOPIC_RECIPIENT, migrateMessages } from './messages.js';
export type { MessageRecord } from './messages.js';
export { ManagerLedger, migrateManagers } from './managers.js';
export type { ManagerSubtaskRow, ManagerWorkerRow, WaitingParentRow } from './managers.js';
export type { LlmUsageRow, UsageFilter, UsageTotals } from './usage.js';
export { ScheduleLedger, migrateSchedules } from './schedule-runs.js';
export type { ScheduleBaseline, ScheduleRun } from './schedule-runs.js';
export { MAX_USAGE_BUCKETS, taskUsage, usageReport } from './usage-report.js';
export type {
  AgentUsage,
  AttemptUsage,
  ModelUsage,
  TaskUsage,
  TaskUsageLine,
  TemplateUsage,
  UsageBucket,
  UsageLine,
  UsageRefusals,
  UsageReport,
  UsageReportRequest,
} from './usage-report.js';
export { SUPERVISOR_PID_FILE, runningSupervisorPid } from './supervisor-pid.js';
export { RegistryError } from './errors.js';
export type {
  AgentsOptions,
  AgentView,
  Analytics,
  AnalyticsReport,
  AnalyticsReportFilter,
  AuditPage,
  AuditPageFilter,
  AuditPageRequest,
  DurationStats,
  ExecutionFacts,
  ExecutionFilter,
  ExecutionView,
  Incidents,
  LiveAgentFields,
  MessageEdge,
  MessageFilter,
  MessagesView,
  MessageView,
  StatusView,
  TaskDetail,
  TaskFilter,
  TaskView,
} from './views.js';

/**
 * @warren/supervisor: the Warren daemon and its CLI.
 *
 * ```ts
 * import { resolveConfig, Supervisor } from '@warren/supervisor';
 * const config = resolveConfig({ root: '.' }, '/path/to/packages/agent-runner');
 * const supervisor = await Supervisor.create(config, { logger, mode: 'until-idle' });
 * const summary = await supervisor.run(); // resolves once the board is idle and all is closed
 * ```
 */
export { Supervisor, SupervisorState } from './supervisor.js';
export type { RunMode, RunSummary, SupervisorCreateOptions } from './supervisor.js';
export { resolveConfig, SupervisorOptions } from './config.js';
export type { SupervisorConfig } from './config.js';
export { loadTemplates, parseTemplate, TemplateError, TemplateFile, LifecycleMode } from './templates.js';
export type { AgentTemplate, TemplateSet } from './templates.js';
export { AgentGateway } from '@warren/runtime';
export type { GatewayEvents, GatewayIdentity, AgentGatewayOptions } from '@warren/runtime';
export { StateStore, TaskState, AssignmentState, migrateState } from '@warren/registry';
export type { TaskRow, AssignmentRow, AgentRow } from '@warren/registry';
export { buildProgram, main, ExitCode } from './cli.js';
export {
  brokerInstance,
  defaultBrokerInstance,
  brokerSecretPaths,
  externalNatsAccess,
  openBroker,
  rejectionEntry,
  assignmentRefusal,
  BROKER_REJECTED,
  EMBEDDED_NATS_USER,
} from './broker-access.js';
export type { BrokerAccess } from './broker-access.js';
export { EventBus } from './event-bus.js';
export type { EmitEvent, EventBusOptions, EventBusStats, EventLogOverride, EventPayload, EventPublisher } from './event-bus.js';
export { EVENT_CATALOGUE, EVENT_KINDS, defaultLogFields, eventLogLine, isEventKind } from './events.js';
export type { CommandEventKind, EventDetails, EventKind, EventLogLine, EventSpec, LogLevel, WarrenEvent } from './events.js';
export { createAuthorizer, DEFAULT_MAX_MEMOIZED } from './authorize.js';
export type { Authorizer, AuthorizerOptions, AuthorizationRequest } from './authorize.js';
export { watchPolicy, DEFAULT_POLICY_DEBOUNCE_MS, DEFAULT_POLICY_RESCAN_MS } from './policy-reload.js';
export type { PolicyReloader, PolicyReloadOptions } from './policy-reload.js';
export { registerPolicyCommands, checkPolicy, formatPolicyCheck } from './cli/policy.js';
export type { PolicyCheckResult } from './cli/policy.js';

import type { AccountStore } from '@warren/accounts';
import type { AuditSigner, AuditTrail } from '@warren/audit';
import type { Broker, EmbeddedNatsServer } from '@warren/broker';
import type { Logger } from '@warren/core';
import type { BoardMapping } from '@warren/kanban';
import type { PolicyEnforcer } from '@warren/policy';
import type { AgentRuntime } from '@warren/runtime';
import type { SqliteDatabase } from '@warren/store';
import type { AgentWorld } from '@warren/ecs';
import type { SupervisorConfig } from './config.js';
import type { CrashPoint } from './crash.js';
import type { EventBus, EventLogOverride } from './event-bus.js';
import type { WarrenEvent } from './events.js';
import type { Registry, StateStore } from '@warren/registry';
import type { Authorizer } from './authorize.js';
import type { AgentTemplate, TemplateError } from './templates.js';
import type { ProviderDef } from './providers.js';
import type { LlmChannel } from './llm.js';
import type { BusChannel } from './messaging/bus-channel.js';
import type { MessagingPort } from './messaging/port.js';
import type { ExecutionTracing } from './tracing.js';
import type { WarrenMetrics } from '@warren/metrics';
import type { SecretStore } from '@warren/secrets';
import type { ManagerLedger, UsageLedger } from '@warren/registry';

/** How the supervisor runs: forever (`up`) or until nothing is ready or running (`until-idle`). */
export type RunMode = 'up' | 'until-idle';

/** The actor of the rows the supervisor writes on its own behalf. */
export const SUPERVISOR = 'supervisor';

/**
 * What every stage of the supervisor shares: configuration, the resources it opened, and the few
 * operations each stage needs from the whole (record an event, run a transaction, ask for a tick).
 * Built once by `Supervisor.create`; each stage module receives it, the way a run engine hands one
 * resources object to each of its systems. Stages keep their own state; what one stage needs of
 * another is passed to its constructor.
 */
export interface SupervisorContext {
  readonly config: SupervisorConfig;
  readonly mode: RunMode;
  /** How another tool's board maps onto Warren's (from `--mapping`). */
  readonly mapping: BoardMapping | undefined;
  /** Environment the templates' `environment` allow-lists read from. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly log: Logger;
  /** The agent world: each live agent is an entity (see `@warren/ecs`). */
  readonly world: AgentWorld;
  readonly db: SqliteDatabase;
  /** Tasks, executions, agents and operator commands in SQLite. */
  readonly state: StateStore;
  /** The read model over the same database (named queries, the operator-command queue). */
  readonly registry: Registry;
  readonly audit: AuditTrail;
  /** Signs a checkpoint of the audit trail's newest row about once a second (key outside the database). */
  readonly auditSigner: AuditSigner;
  readonly accounts: AccountStore;
  /** Agents' and templates' secrets, encrypted at rest (key outside the database). */
  readonly secrets: SecretStore;
  /** One row per LLM call through the agents' gateways; budgets are summed from it. */
  readonly usage: UsageLedger;
  /** What managers own: their workers, their subtasks, the parents waiting for subtasks. */
  readonly managers: ManagerLedger;
  readonly policy: PolicyEnforcer;
  /** The one place every decision is made and audited (see authorize.ts). */
  readonly authorizer: Authorizer;
  readonly broker: Broker;
  /** The nats-server this supervisor started, when it runs its own. */
  readonly nats: EmbeddedNatsServer | undefined;
  /** Where agents run: starts instances, detaches and releases their storage. */
  readonly runtime: AgentRuntime;
  /** The LLM gateway served beside each agent's channel (see llm.ts). */
  readonly llm: LlmChannel;
  /** The agents' bus sockets (`/run/warren/bus.sock`), served beside each agent's channel (see messaging/bus-channel.ts). */
  readonly bus: BusChannel;
  /** The message service behind the bus sockets, set once the supervisor's parts are made. */
  readonly messaging: { port?: MessagingPort };
  readonly templates: ReadonlyMap<string, AgentTemplate>;
  readonly templateErrors: readonly TemplateError[];
  /** The LLM providers of `providers/` (the gateway's upstreams), by name. */
  readonly providers: ReadonlyMap<string, ProviderDef>;
  /**
   * Distinguishes this supervisor's sandboxes (cgroup names, hostnames) from another supervisor's
   * on the same host: `w` and the first 6 hex digits of sha256(state directory).
   */
  readonly instanceTag: string;
  /** The event bus: audit rows, their log lines, and the events published on NATS after each commit. */
  readonly events: EventBus;
  /** The Prometheus metrics `GET /metrics` serves (latencies observed here, the rest read on each scrape). */
  readonly metrics: WarrenMetrics;
  /** One trace per task execution (a no-op without an OTLP endpoint); see tracing.ts. */
  readonly tracing: ExecutionTracing;
  /**
   * Records one event (see events.ts): its audit row (inside the running transaction, if any), one
   * log line (`line` overrides the catalogue's message or fields), and its NATS message once
   * committed.
   */
  emit(event: WarrenEvent, line?: EventLogOverride): void;
  /** Runs `fn` in one SQLite transaction (one fsync however many rows it writes); its events publish after the commit. */
  transaction(fn: () => void): void;
  /** Asks the tick loop for a tick as soon as the current one ends. */
  requestTick(): void;
  /** Whether the supervisor is running (not starting, stopping or stopped). */
  isRunning(): boolean;
  /** Dies with SIGKILL when this run was told to crash at `point` (fault-injection tests only). */
  crashAt(point: CrashPoint): void;
}

/** Runs `fn` over `items`, at most `limit` at a time; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) results[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

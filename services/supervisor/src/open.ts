import { join, relative, resolve, sep } from 'node:path';
import { openAccounts } from '@warren/accounts';
import { auditSigningPaths, openAudit, openAuditSigner } from '@warren/audit';
import { ConfigError, type Logger } from '@warren/core';
import { createAgentWorld, listAgents } from '@warren/ecs';
import type { BoardMapping } from '@warren/kanban';
import { loadPolicy } from '@warren/policy';
import { instanceTag } from '@warren/runtime';
import { createMetrics, registrySources } from '@warren/metrics';
import { createTracing } from '@warren/telemetry';
import { openDatabase } from '@warren/store';
import { createAgentRuntime } from './agent-runtime.js';
import { createPlacementRouter, emitQuietly, NodeFleet, nodeJoinOf, writeNodeJoinFile } from './placement/index.js';
import { openBroker, rejectionEntry } from './broker-access.js';
import type { SupervisorConfig } from './config.js';
import { SUPERVISOR, type RunMode, type SupervisorContext } from './context.js';
import { createAuthorizer } from './authorize.js';
import { crashNow } from './crash.js';
import { EventBus, type EmitEvent } from './event-bus.js';
import { EVENT_KINDS } from './events.js';
import { inputRejected } from './input-rejections.js';
import { checkMappingApplies, loadMappingFile } from './mapping.js';
import { failClosed, reportFailedDecision } from './policy-guard.js';
import { ManagerLedger, migrateMessages, migrateState, openRegistry, StateStore, UsageLedger } from '@warren/registry';
import { openSecretStore, secretsKeyPath } from '@warren/secrets';
import { secureStateDir } from './state-dir.js';
import { LlmChannel } from './llm.js';
import { BusChannel } from './messaging/bus-channel.js';
import type { MessagingPort } from './messaging/port.js';
import { loadProviders } from './providers.js';
import { loadTemplates, type AgentTemplate } from './templates.js';
import { ExecutionTracing } from './tracing.js';
import { WARREN_VERSION } from './version.js';

/** What {@link openContext} needs besides the configuration. */
export interface OpenOptions {
  readonly logger: Logger;
  readonly mode: RunMode;
  /** The board mapping given by the caller; a `--mapping` file in the configuration wins. */
  readonly mapping?: BoardMapping | undefined;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The running supervisor's side of the context: asking for a tick, and whether it runs. */
  readonly requestTick: () => void;
  readonly isRunning: () => boolean;
}

/**
 * Opens everything a supervisor shares between its stages: checks the host, loads the policy
 * (fail-closed) and the templates, makes the state directory private, opens the state database
 * (migrated), the audit trail and the accounts, cleans up what a previous run left (cgroups, exec
 * leftovers, home-image mounts, runner sockets, agents marked running), starts or connects to NATS
 * and sets up the streams. Records `supervisor.start`. On failure, closes what it opened.
 * @throws {MissingCapabilityError} if root, bwrap, setpriv or nats-server is missing.
 * @throws {PolicyLoadError} if a policy file is broken (naming file and line).
 * @throws {ConfigError} if there is no valid template at all, or a template mounts what agents must not see.
 */
export async function openContext(config: SupervisorConfig, options: OpenOptions): Promise<SupervisorContext> {
  const log = options.logger;
  // Makes no I/O: probing and clean-up need no broker; the context's runtime gets one below.
  const hostRuntime = createAgentRuntime(config, { logger: log, hostEnv: options.env ?? {} });
  let policyEmit: EmitEvent | undefined;
  // A decision Casbin cannot make denies the request (logged and audited), never stops the run.
  const policy = failClosed(
    await loadPolicy({
      modelPath: join(config.policiesDir, 'model.conf'),
      policyPath: join(config.policiesDir, 'policy.csv'),
      logger: log.child({ component: 'policy' }),
    }),
    (failed) => reportFailedDecision(log, policyEmit, failed),
  );
  const fileMapping = config.boardMappingPath ? await loadMappingFile(config.boardMappingPath) : undefined;
  if (fileMapping) await checkMappingApplies(config.boardDir, config.boardFormat, fileMapping);
  const mapping = fileMapping ?? options.mapping;
  const { templates, errors: templateErrors } = await loadTemplates(config.agentsDir, config.root);
  for (const error of templateErrors) log.error({ code: error.code }, error.message);
  if (templates.size === 0) {
    throw new ConfigError(relative(config.root, config.agentsDir) || 'agents', 'no valid agent template');
  }
  for (const template of templates.values()) checkMounts(config, template);
  // A template that declares `role:` is a member of role:<role> (manager or worker) in the policy, as
  // its agents are of template:<name>; without it the policy file alone says what the template is.
  for (const template of templates.values()) if (template.policyRole !== null) policy.addRoleForSubject(`template:${template.name}`, `role:${template.policyRole}`);
  const { providers, errors: providerErrors } = await loadProviders(config.providersDir, config.root);
  for (const error of providerErrors) log.error({ code: error.code }, error.message);
  // Full isolation unless every template asks, by name, for a weaker mode.
  await hostRuntime.probe([...templates.values()].every((t) => t.isolation !== 'full') ? 'unsafe' : 'full');

  const secured = await secureStateDir(config.stateDir);
  if (secured > 0) log.warn({ stateDir: config.stateDir, entries: secured }, 'state directory was readable by others; made it private (0700, files 0600)');
  const db = openDatabase(join(config.stateDir, 'warren.db'));
  const cleanup: (() => Promise<void>)[] = [
    async () => {
      db.close();
    },
  ];
  try {
    migrateState(db);
    const state = new StateStore(db);
    const audit = openAudit(db);
    // Refuses to start over a trail whose tail was cut or rewritten, or with another key.
    const auditSigner = await openAuditSigner({ db, audit, ...auditSigningPaths(config.stateDir), keyPath: config.auditKeyPath });
    cleanup.unshift(() => auditSigner.close());
    const registry = openRegistry(db, { stateDir: config.stateDir, supervisorPid: process.pid, state, audit });
    const events = new EventBus({ db, audit, logger: log });
    const tracingLog = log.child({ component: 'tracing' });
    const tracing = ExecutionTracing.open({
      db,
      tracing: await createTracing({ serviceName: 'warren-supervisor', instance: config.instance ?? instanceTag(config.stateDir), env: options.env ?? {}, logger: tracingLog }),
      logger: tracingLog,
    });
    cleanup.unshift(() => tracing.close());
    const metrics = createMetrics({ instance: config.instance ?? instanceTag(config.stateDir), version: WARREN_VERSION, eventKinds: EVENT_KINDS, logger: log.child({ component: 'metrics' }) });
    cleanup.unshift(() => metrics.close());
    events.subscribe((event) => metrics.observeEvent(event.kind));
    policyEmit = (event, line) => events.emit(event, line);
    const secrets = openSecretStore(db, { keyPath: secretsKeyPath(config.stateDir, options.env ?? {}) });
    // A key file that cannot be used is found now, not at an agent's start.
    secrets.keyId();
    const accounts = openAccounts(db, {
      homeRoot: config.homeRoot,
      skeletonDir: config.skeletonDir,
      uidMin: config.uidMin,
      uidMax: config.uidMax,
      // Made durable by the agent's start or deletion commit that follows, synced by the tick's barrier.
      durableCommits: false,
    });
    // Cgroups, exec leftovers, home images left mounted (after the cgroups: nothing may still use them), runner sockets.
    const reclaimed = await hostRuntime.reclaim();
    for (const agent of state.agents()) {
      if (agent.state !== 'stopped' && agent.state !== 'sleeping') {
        state.putAgent({ ...agent, state: 'stopped', pid: null, stoppedMs: Date.now(), lastExit: 'supervisor restarted' });
      }
    }
    const { nats, broker } = await openBroker(config, log, (subject, error) => {
      events.emit(rejectionEntry(subject, error.field, error.reason));
    });
    events.attachBroker(broker);
    if (nats) cleanup.unshift(() => nats.close());
    cleanup.unshift(() => broker.close());
    await broker.ensureStreams({ replicas: config.natsReplicas });
    await writeNodeJoinFile(config.stateDir, await nodeJoinOf(config, broker.namespace, nats?.url));
    const usage = new UsageLedger(db);
    migrateMessages(db);
    const llm = new LlmChannel({
      providers,
      templates,
      state,
      ledger: usage,
      secrets,
      env: options.env ?? {},
      logger: log.child({ component: 'llm-gateway' }),
      emit: (event) => events.emit(event),
      recordCall: (row) => metrics.recordLlmCall(row),
      recordRefusal: (reason) => metrics.recordLlmRefusal(reason),
    });
    cleanup.unshift(() => llm.close());
    const messaging: { port?: MessagingPort } = {};
    const bus = new BusChannel({ port: () => messaging.port, logger: log.child({ component: 'bus' }) });
    cleanup.unshift(() => bus.close());
    const agentRuntime = createAgentRuntime(config, { logger: log, hostEnv: options.env ?? {}, broker, channelServices: [llm, bus] });
    const fleet = await NodeFleet.open({ broker, log, localNode: config.localNode, hostRuntime: agentRuntime, emit: (event) => emitQuietly(events, log, event) });
    cleanup.unshift(() => fleet.close());
    const ctx: SupervisorContext = {
      config,
      mode: options.mode,
      mapping,
      env: options.env ?? {},
      log,
      world: createAgentWorld(),
      db,
      state,
      registry,
      audit,
      auditSigner,
      accounts,
      secrets,
      usage,
      managers: new ManagerLedger(db),
      policy,
      authorizer: createAuthorizer({ policy, emit: (event) => events.emit(event), logger: log }),
      broker,
      nats,
      runtime: createPlacementRouter(config, log, db, templates, agentRuntime, {
        fleet,
        ...(config.kubernetes === undefined ? {} : { kubernetes: async () => (await import('./kube-driver.js')).createKubernetesDriver(ctx, { hub: fleet.hub }) }),
      }),
      llm,
      bus,
      messaging,
      templates,
      templateErrors,
      providers,
      instanceTag: instanceTag(config.stateDir),
      events,
      tracing,
      metrics,
      emit: (event, line) => {
        events.emit(event, line);
      },
      transaction: (fn) => {
        events.transaction(fn);
      },
      requestTick: options.requestTick,
      isRunning: options.isRunning,
      crashAt: (point) => {
        if (config.crashAt === point) crashNow();
      },
    };
    metrics.setSources({
      ...registrySources(registry),
      agentUsage: () => listAgents(ctx.world).map((a) => ({ agent: a.name, template: a.template, cpuMs: a.resources.cpuMs, memoryBytes: a.resources.memoryBytes })),
      auditRows: () => audit.lastSeq(),
    });
    ctx.emit({
      actor: SUPERVISOR,
      action: 'supervisor.start',
      object: 'supervisor',
      details: {
        mode: options.mode,
        board: config.boardDir,
        nats: config.natsUrl ? 'external' : 'embedded',
        templates: [...templates.keys()],
        staleCgroupsRemoved: reclaimed.instances.length,
        staleMountsRemoved: reclaimed.storage.length,
      },
    });
    for (const error of templateErrors) ctx.emit(inputRejected({ kind: 'template', path: error.path, line: error.line, message: error.message }));
    for (const error of providerErrors) ctx.emit(inputRejected({ kind: 'provider', path: error.path, line: error.line, message: error.message }));
    return ctx;
  } catch (error) {
    for (const close of cleanup) await close().catch(() => undefined);
    throw error;
  }
}

/** Refuses template mounts that would show an agent Warren's state, homes or policy. */
function checkMounts(config: SupervisorConfig, template: AgentTemplate): void {
  const forbidden = [config.stateDir, config.homeRoot, config.policiesDir];
  for (const mount of template.mounts) {
    const source = resolve(config.root, mount.source);
    if (source !== config.root && !source.startsWith(config.root + sep)) {
      throw new ConfigError(template.path, `mount source '${mount.source}' is outside the repository`);
    }
    for (const dir of forbidden) {
      if (source === dir || source.startsWith(dir + sep) || dir.startsWith(source + sep) || source === config.root) {
        throw new ConfigError(template.path, `mount source '${mount.source}' would expose ${relative(config.root, dir) || dir} to agents`);
      }
    }
  }
}

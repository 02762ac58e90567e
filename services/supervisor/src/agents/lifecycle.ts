import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Account } from '@warren/accounts';
import type { WarrenError } from '@warren/core';
import {
  addAgent,
  addSpawningAgent,
  agentView,
  defineTemplate,
  instanceCounts,
  isReady,
  isStopping,
  lifecycleSystem,
  listAgents,
  listTemplates,
  markReady,
  markStopping,
  recordHeartbeat,
  recordSpawnFailure,
  removeAgent,
  removeSpawningAgent,
  setStatus,
  spawningAgents,
  startingCounts,
  templateMayStart,
  warmPoolSystem,
  AgentStatus,
  MAX_SPAWN_FAILURES,
  type StopReason,
} from '@warren/ecs';
import type { AgentExit, AgentInstance } from '@warren/runtime';
import { lastLogLines } from '../agent-log.js';
import { prepareAgent } from './prepare.js';
import { PreparedAgents } from './prepared.js';
import { PlacementRouter, type RoutedStartSpec } from '../placement/index.js';
import { agentStartSpecOf } from '../agent-runtime.js';
import { assignmentRefusal, rejectionEntry } from '../broker-access.js';
import { SUPERVISOR, type SupervisorContext } from '../context.js';
import { CrashPoint } from '../crash.js';
import type { InboxEvent } from '../executions/inbox.js';
import type { Settler } from '../executions/settle.js';
import { describeAgentExit, limitFailureOf } from '../limit-watch.js';
import type { AgentTemplate } from '../templates.js';
import type { WarrenEvent } from '../events.js';

export type { StopReason };

export { MAX_SPAWN_FAILURES };

/**
 * Commits without an fsync whose effects wait for the tick's next barrier pass (the
 * `CommitBarrier` of `executions/barrier.ts`): `commit` runs `work`'s transactions at
 * `synchronous = NORMAL` and holds their events until the barrier has synced the WAL.
 */
export interface DeferredCommits {
  commit<T>(work: () => T): T;
}

/**
 * What the supervisor holds of a started agent besides its live state, which is in the ECS world
 * (status, load, ready, why it is stopping, …: see `@warren/ecs`): its account and template and its
 * running instance (from the agent runtime: its processes and its agent channel).
 */
export interface AgentHandle {
  readonly account: Account;
  readonly template: AgentTemplate;
  readonly instance: AgentInstance;
  /** When its start (or wake) was asked for, ms since the epoch: the spawn latency runs from here to ready. */
  readonly spawnStartedMs: number;
}

/** Per template: consecutive agents that failed to start, why the last did, and when to try again (ms since the epoch). A view of the template's `SpawnBackoff` in the world. */
export interface SpawnFailure {
  readonly count: number;
  readonly reason: string;
  readonly nextAtMs: number;
}

/**
 * Agent lifecycle: starts agents (account, then an instance from the agent runtime), stops them, applies
 * their exits (settling their open executions), puts idle ones away (sleep, autodelete), keeps
 * warm pools topped up and backs off templates whose agents cannot start. Each agent's live state
 * and each template's spawn backoff are in the ECS world (`ctx.world`), where the systems decide;
 * this carries out their intents and holds the runtime handles.
 */
export class AgentLifecycle {
  /** The runtime handles of the started agents, by name (their state is in the world). */
  readonly handles = new Map<string, AgentHandle>();
  /** Purges of a dead agent's queued assignments still running, by agent: a new start of that name waits for its own. */
  private readonly exitPurges = new Map<string, Promise<void>>();
  /** Starts under way (from {@link start} to the instance held or the start failed). */
  private readonly spawns = new Set<Promise<void>>();
  /** Set by {@link stopAll}: the supervisor is shutting down and starts no more agents. */
  private shuttingDown = false;
  /** The agents prepared ahead of their start. */
  private readonly prepared: PreparedAgents;
  /** Where an agent's start, readiness, exit and deletion commit (see {@link useBarrier}); durable commits until then. */
  private barrier: DeferredCommits | undefined;

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly settler: Settler,
    private readonly queue: (event: InboxEvent) => void,
    private readonly sendMessage: (from: string, to: string, body: unknown) => Promise<{ readonly id: string }>,
  ) {
    for (const template of ctx.templates.values()) defineTemplate(ctx.world, template);
    this.prepared = new PreparedAgents(ctx, {
      commit: (work) => this.commit(work),
      deleteAccount: (name) => this.deleteAccount(name),
      mayStart: (templateName, nowMs) => this.mayStart(templateName, nowMs),
      freeName: (template) => this.freeName(template),
      shuttingDown: () => this.shuttingDown,
    });
  }

  /**
   * From now on, the commits of an agent's start, readiness, exit and deletion go through
   * `barrier` (the tick's): no fsync each, their events held until the tick's next pass syncs the
   * WAL, which comes before any card is written or assignment published (an exit's settled tasks
   * included: the inbox that applies exits is followed by a pass in the same tick; a start or a
   * deletion outside a tick asks for one). Without it each commits durably.
   */
  useBarrier(barrier: DeferredCommits): void {
    this.barrier = barrier;
  }

  /** Runs `work` (its commits) through the barrier when there is one, else as it is (durable). */
  private commit<T>(work: () => T): T {
    return this.barrier ? this.barrier.commit(work) : work();
  }

  /** Whether agent `name` is started or being spawned. */
  has(name: string): boolean {
    return this.ctx.world.agents.has(name);
  }

  /** Whether agent `name` is started and its runner said hello. */
  isReady(name: string): boolean {
    return isReady(this.ctx.world, name);
  }

  /** Whether agent `name` is being stopped. */
  isStopping(name: string): boolean {
    return isStopping(this.ctx.world, name);
  }

  /** The names of the agents being spawned. */
  spawningNames(): string[] {
    return spawningAgents(this.ctx.world);
  }

  /** Templates with a spawn backoff (failed starts not yet followed by a successful one), by name. */
  spawnFailures(): Map<string, SpawnFailure> {
    const failures = new Map<string, SpawnFailure>();
    for (const t of listTemplates(this.ctx.world)) {
      if (t.spawnBackoff) failures.set(t.name, { count: t.spawnBackoff.failures, reason: t.spawnBackoff.reason, nextAtMs: t.spawnBackoff.nextAttemptMs });
    }
    return failures;
  }

  /** The template of the agent named `agentName`, from its row in the agents table. */
  templateOf(agentName: string): AgentTemplate | undefined {
    const row = this.ctx.state.agent(agentName);
    return row ? this.ctx.templates.get(row.template) : undefined;
  }

  /** Whether the template may start an agent now: not failed for this run and not backing off. */
  mayStart(templateName: string, nowMs: number): boolean {
    return templateMayStart(this.ctx.world, templateName, nowMs);
  }

  /** Instances of each template: live agents and agents being spawned. */
  instanceCounts(): Map<string, number> {
    return instanceCounts(this.ctx.world);
  }

  /** Agents started but not yet ready (their runner has not said hello), by template. */
  startingCounts(): Map<string, number> {
    return startingCounts(this.ctx.world);
  }

  /**
   * Tops up each template's warm pool ({@link AgentTemplate.warmPool}, see `warmPoolSystem`):
   * agents that are starting, or ready with no task (an `autodelete` one that has not had its
   * task), count as warm; more are started, side by side, while the pool is short and the template
   * is under `maxInstances` and not backing off after failed starts. In a run until idle, not once
   * no task is ready.
   */
  fillWarmPools(nowMs: number, readyWaiting: number): void {
    this.prepared.removeDueLeftovers(nowMs);
    // A run until idle is about to end once no task waits: agents started now would only be stopped.
    if (this.ctx.mode === 'until-idle' && readyWaiting === 0) return;
    for (const { template, starts } of warmPoolSystem(this.ctx.world, { nowMs })) {
      for (let i = 0; i < starts; i++) this.start(template, nowMs);
    }
    this.prepared.fill(nowMs);
  }

  /** The names of the agents prepared ahead and not started, by template (see {@link AgentTemplate.prepared}). */
  preparedNames(): Map<string, string[]> {
    return this.prepared.names();
  }

  /** Starts (or wakes) one agent of `templateName` (named `name`, or the next free name) in the background. */
  start(templateName: string, nowMs: number, name?: string): void {
    const template = this.ctx.templates.get(templateName);
    if (!template || this.shuttingDown) return;
    const agentName = name ?? this.pickAgentName(template);
    if (this.has(agentName)) return; // already started or being spawned
    // A template no node can take now starts nothing: its tasks wait, with the reason, until one can.
    if (!this.placeable(template, agentName)) return;
    const ahead = this.prepared.take(template.name, agentName);
    addSpawningAgent(this.ctx.world, { name: agentName, template: template.name, nowMs });
    const spawning: Promise<void> = this.spawn(template, agentName, nowMs, ahead)
      .catch((error: unknown) => {
        this.noteSpawnFailure(template.name, agentName, (error as Error).message, Date.now());
        this.ctx.emit(
          { actor: SUPERVISOR, action: 'agent.spawn_failed', object: `agent:${agentName}`, details: { message: (error as Error).message, code: (error as WarrenError).code ?? null } },
          { fields: { err: error, agent: agentName, template: template.name } },
        );
      })
      .finally(() => {
        this.spawns.delete(spawning);
        removeSpawningAgent(this.ctx.world, agentName);
        this.ctx.requestTick();
      });
    this.spawns.add(spawning);
  }

  /**
   * Counts an agent of `templateName` that could not start or died before it was ready, and backs
   * the template off exponentially: the next start waits min(restartBackoffMs × 2^(n−1), 60 s)
   * after the n-th failure in a row (agents that fail while the template already waits count as
   * the same failure); after {@link MAX_SPAWN_FAILURES} the template is failed for this run (its
   * tasks wait, with the reason). A successful start resets the count.
   */
  noteSpawnFailure(templateName: string, agent: string, reason: string, nowMs: number): void {
    const decision = recordSpawnFailure(this.ctx.world, templateName, { reason, nowMs, restartBackoffMs: this.ctx.config.restartBackoffMs });
    this.ctx.emit({
      actor: SUPERVISOR,
      action: decision.givenUp ? 'template.failed' : 'agent.crash_loop',
      object: `template:${templateName}`,
      details: { agent, failures: decision.backoff.failures, reason, ...(decision.givenUp ? {} : { retryInMs: decision.delayMs }) },
    });
  }

  /** Why each template's agents cannot be placed now, by template (see {@link placeable}). */
  readonly unplaceable = new Map<string, string>();

  /**
   * Whether an agent of `template` can be placed now (always, unless the runtime is the placement
   * router and it finds no node). A change is recorded once: `template.unplaceable` with the
   * reason, `template.placeable` when a node can take it again.
   */
  private placeable(template: AgentTemplate, agent: string): boolean {
    const router = this.ctx.runtime instanceof PlacementRouter ? this.ctx.runtime : undefined;
    const reason = router?.refusal(template, agent);
    const before = this.unplaceable.get(template.name);
    if (reason === undefined) {
      if (before !== undefined) {
        this.unplaceable.delete(template.name);
        this.ctx.emit({ actor: SUPERVISOR, action: 'template.placeable', object: `template:${template.name}`, details: { target: template.placement.target } });
      }
      return true;
    }
    if (before !== reason) {
      this.unplaceable.set(template.name, reason);
      this.ctx.emit({ actor: SUPERVISOR, action: 'template.unplaceable', object: `template:${template.name}`, details: { target: template.placement.target, reason } });
    }
    return false;
  }

  /**
   * Records an event the agent channel reports (a protocol error, progress, a refused assignment).
   * The channel calls back whenever its agent speaks, also while the supervisor is closing and its
   * database may already be closed; its callbacks must not throw, so a failure is logged instead.
   */
  private recordChannelEvent(event: WarrenEvent): void {
    try {
      this.ctx.emit(event);
    } catch (error) {
      this.ctx.log.warn({ err: error, action: event.action, object: event.object }, 'cannot record an event of an agent channel');
    }
  }

  /** A sleeping or stopped account of the template if there is one (woken), else one prepared ahead, else the next free name. */
  private pickAgentName(template: AgentTemplate): string {
    const busy = (name: string) => this.has(name) || this.prepared.holds(name);
    const existing = this.ctx.accounts
      .list()
      .filter((a) => a.template === template.name && !busy(a.name))
      .map((a) => a.name)
      .sort();
    return existing[0] ?? this.prepared.first(template.name) ?? this.freeName(template);
  }

  /** The first name `<template>-<n>` (n = 1, 2, …) no account, start or preparation holds. */
  private freeName(template: AgentTemplate): string {
    for (let n = 1; ; n += 1) {
      const name = `${template.name}-${n}`;
      if (!this.has(name) && !this.prepared.holds(name) && !this.ctx.accounts.get(name)) return name;
    }
  }

  /**
   * Starts agent `name` of `template`: its account (made unless it exists), its old assignments
   * purged, its home prepared and its instance started. With `ahead` the agent was prepared ahead
   * (account, home, NATS user, consumers made, no assignment ever queued for it): only its seed
   * files and secrets are written again before the instance starts.
   */
  private async spawn(template: AgentTemplate, name: string, nowMs: number, ahead = false): Promise<void> {
    const { ctx } = this;
    const { config } = ctx;
    let existing = ctx.accounts.get(name);
    if (existing && !ahead && template.lifecycle === 'autodelete' && !existsSync(existing.home)) {
      // A per-task agent's deletion that died between the home's removal and its commit (see
      // removeAccount) left the row of an account whose home is gone: nothing of it is left to
      // keep (a per-task agent keeps nothing between tasks), so it is made again.
      ctx.log.warn({ agent: name, home: existing.home }, 'the home of this account is gone; the account is made again');
      await ctx.accounts.remove(name);
      existing = undefined;
    }
    const account = existing ?? (await ctx.accounts.create({ name, template: template.name }));
    const woken = ctx.state.agent(name)?.state === 'sleeping';
    if (!ahead) {
      // Assignments still queued for this name belong to executions already settled (a purge at its
      // last exit may have failed with the broker away): the new agent must not run them.
      await this.exitPurges.get(name);
      await ctx.broker.purgeAssignments(name).catch((error: unknown) => ctx.log.warn({ err: error, agent: name }, 'cannot purge old assignments before the start'));
    }
    ctx.authorizer.grantRole(name, `template:${template.name}`);
    let instance: AgentInstance;
    try {
      const prepared = prepareAgent(ctx, account, template, { preparedAhead: ahead });
      const spec = agentStartSpecOf(account, template, config);
      const routed: RoutedStartSpec = { ...spec, env: { ...spec.env, ...prepared.env }, prepareHome: prepared.prepareHome, homeFiles: prepared.homeFiles };
      instance = await ctx.runtime.start(routed, {
        hello: (agent) => this.queue({ kind: 'hello', agent }),
        taskAcked: (agent, taskId, attempt) => this.queue({ kind: 'acked', agent, taskId, attempt }),
        alive: (agent) => recordHeartbeat(ctx.world, agent, Date.now()),
        disconnected: (agent) => ctx.log.debug({ agent }, 'agent channel closed'),
        protocolError: (agent, message) => this.recordChannelEvent({ actor: `agent:${agent}`, action: 'agent.protocol_error', object: `agent:${agent}`, details: { message } }),
        progressEvent: (agent, taskId, attempt, event) => this.recordChannelEvent({ actor: `agent:${agent}`, action: 'task.progress', object: `task:${taskId}`, details: { attempt, event } }),
        sendMessage: (from, to, body) => this.sendMessage(from, to, body),
        authorizeAssignment: (agent, subject, taskId, attempt) => {
          const refusal = assignmentRefusal(ctx.state, agent, taskId, attempt);
          if (refusal) this.recordChannelEvent(rejectionEntry(subject, 'taskId', refusal, { agent, taskId, attempt }));
          return refusal;
        },
      });
    } catch (error) {
      ctx.authorizer.dropPrincipal(name);
      throw error;
    }
    if (this.shuttingDown && !this.handles.has(name)) {
      // The shutdown stopped waiting for this start: the instance is not taken on, only stopped.
      await instance.stop(0).catch(() => undefined);
      await instance.close();
      ctx.authorizer.dropPrincipal(name);
      return;
    }
    try {
      this.handles.set(name, { account, template, instance, spawnStartedMs: nowMs });
      addAgent(ctx.world, {
        name,
        template: template.name,
        uid: account.uid,
        gid: account.gid,
        capabilities: [...template.capabilities],
        wipLimit: template.wipPerInstance,
        lifecycle: template.lifecycle,
        resources: { memoryMaxBytes: template.resources.memoryMaxBytes, pidsMax: template.resources.pidsMax, cpuWeight: template.resources.cpuWeight },
        nowMs,
      });
      setStatus(ctx.world, name, AgentStatus.starting, nowMs);
      this.commit(() => ctx.transaction(() => {
        this.putAgentRow(name, 'starting', nowMs, null, instance.pid);
        // From here on the account is the agent's: a restart does not remove it as a prepared one.
        if (ahead) this.prepared.dropRow(name);
        ctx.emit({
          actor: SUPERVISOR,
          action: woken ? 'agent.wake' : 'agent.start',
          object: `agent:${name}`,
          details: { template: template.name, uid: account.uid, gid: account.gid, pid: instance.pid, home: account.home, isolation: template.isolation, unsafe: instance.unsafe },
        });
      }));
      if (instance.unsafe) ctx.log.warn({ agent: name, isolation: template.isolation }, 'UNSAFE agent started: weaker isolation asked for by its template');
      instance.exited.then(
        (exit) => this.queue({ kind: 'exit', agent: name, exit }),
        (error: unknown) => ctx.log.error({ err: error, agent: name }, 'cannot learn how the agent exited'),
      );
    } catch (error) {
      await instance.close();
      ctx.authorizer.dropPrincipal(name);
      throw error;
    }
  }

  /** Its runner said hello: the agent takes work from now on (and its template's spawn backoff ends). */
  markReady(name: string, nowMs: number): void {
    const { ctx } = this;
    const handle = this.handles.get(name);
    if (!handle || !markReady(ctx.world, name, nowMs)) return;
    ctx.tracing.agentReady(name, nowMs);
    ctx.metrics.observeSpawn(handle.template.name, Math.max(0, nowMs - handle.spawnStartedMs));
    this.commit(() => ctx.transaction(() => {
      ctx.emit({ actor: `agent:${name}`, action: 'agent.ready', object: `agent:${name}`, details: { uid: handle.account.uid } });
      this.putAgentRow(name, 'running', nowMs);
    }));
  }

  /**
   * Applies the exit of agent `name`: its open executions are settled (failed for good when it hit
   * a limit that fails its tasks, else lost and run again), its queued assignments purged off the
   * tick's path, its home image released, its row updated (or its account deleted), and a restart
   * or a spawn failure noted.
   */
  async applyExit(name: string, exit: AgentExit, nowMs: number, step: <T>(label: string, work: Promise<T>) => Promise<T>): Promise<void> {
    const { ctx } = this;
    const agent = this.handles.get(name);
    const view = agentView(ctx.world, name);
    if (!agent || !view) return;
    this.handles.delete(name);
    removeAgent(ctx.world, name);
    await step(`applyExit ${name}: instance.close`, agent.instance.close());
    ctx.authorizer.dropPrincipal(name);
    const stopping = view.stopping ?? undefined;
    const expected = stopping !== undefined;
    const exitText = describeAgentExit(exit, agent.template);
    const open = ctx.state.openAssignments().filter((a) => a.agent === name);
    // Writes the exit: its audit row and the settlement of its open executions (inside the caller's transaction).
    const recordExit = (): void => {
      ctx.emit({
        actor: SUPERVISOR,
        action: expected ? 'agent.stop' : 'agent.exit',
        object: `agent:${name}`,
        details: { exit, reason: stopping ?? 'unexpected', openTasks: open.map((a) => a.taskId) },
      }, expected ? undefined : { fields: { agent: name, exit: exitText } });
      const failTasks = view.failTasks ?? limitFailureOf(exit, agent.template);
      for (const a of open) {
        if (failTasks) {
          ctx.state.finishAssignment(a.taskId, a.attempt, { outcome: 'failed', exitCode: null, summary: failTasks, outputs: [] }, nowMs);
          this.settler.settle(a.taskId, a.attempt, 'failed', `failed: ${failTasks}`, nowMs, agent.template);
          continue;
        }
        ctx.state.finishAssignment(a.taskId, a.attempt, { outcome: 'lost', exitCode: null, summary: `agent exited: ${exitText}`, outputs: [] }, nowMs);
        this.settler.settle(a.taskId, a.attempt, 'lost', `agent ${name} exited during attempt ${a.attempt} (${exitText})`, nowMs, agent.template);
      }
    };
    // An agent deleted with nothing open (a per-task agent after its task) has nothing to settle:
    // its exit's row commits with its account's deletion, one commit for both (written alone if
    // the deletion fails). Otherwise the exit commits now, so that its tasks go back at once.
    const exitWithRemoval = stopping === 'delete' && open.length === 0;
    if (!exitWithRemoval) this.commit(() => ctx.transaction(recordExit));
    if (agent.template.homeQuotaBytes !== null) {
      await ctx.runtime.detachStorage({ name, homeDir: agent.account.home }).catch((error: unknown) => ctx.log.error({ err: error, agent: name }, 'cannot unmount the home image'));
    }
    if (open.length > 0) {
      // Its queued assignments belong to executions just settled; a later agent of that name must
      // not run them. Off the tick's path: with the broker away this waits out its timeout, and
      // the next agent of that name purges them again before it consumes (see spawn).
      const purge = ctx.broker
        .purgeAssignments(name)
        .then(
          () => undefined,
          (error: unknown) => ctx.log.warn({ err: error, agent: name }, 'cannot purge assignments yet; the next start of this agent will'),
        )
        .finally(() => {
          if (this.exitPurges.get(name) === purge) this.exitPurges.delete(name);
        });
      this.exitPurges.set(name, purge);
    }
    if (view.restartAfterExit) this.start(agent.template.name, nowMs, name);
    if (stopping === 'delete') {
      // An autodelete agent's name comes back for a later task (the first free name is taken): its
      // assignment consumer, when idle, is kept for that agent instead of deleted and made again.
      await this.removeAccount(name, agent.template.lifecycle === 'autodelete', exitWithRemoval ? recordExit : undefined).catch((error: unknown) => ctx.log.error({ err: error, agent: name }, 'cannot delete the account'));
    } else {
      this.commit(() => this.putAgentRow(name, stopping === 'sleep' ? 'sleeping' : expected ? 'stopped' : 'failed', nowMs, exitText));
    }
    if (!expected && !view.ready) {
      // It died before its runner said hello: count it against the template, so a template that
      // cannot start is not restarted in a loop. The runner's or the sandbox's own words are in
      // the agent's log: they are the reason.
      const said = lastLogLines(join(ctx.config.stateDir, 'logs', `${name}.log`));
      this.noteSpawnFailure(agent.template.name, name, `agent ${name} exited before it was ready (${exitText})${said ? `: ${said}` : ''}`, nowMs);
    }
  }

  /** Puts idle `sleep` agents to sleep and stops `autodelete` agents after their task (see `lifecycleSystem`). */
  tend(nowMs: number): void {
    const busyAgents = new Set(this.ctx.state.openAssignments().map((a) => a.agent));
    for (const { agent, action } of lifecycleSystem(this.ctx.world, { nowMs, busyAgents })) this.stop(agent, action);
  }

  /**
   * Asks agent `name` to stop for `why` (its runner first, then its instance after the kill grace);
   * the exit is applied by {@link applyExit}. Failures to stop are logged. No-op for an agent that
   * is not started. @returns when the instance has stopped.
   */
  stop(name: string, why: StopReason): void {
    this.stopAndWait(name, why).catch((error: unknown) => this.ctx.log.error({ err: error, agent: name }, 'agent did not stop cleanly'));
  }

  /** {@link stop}, resolving once the agent's process has stopped. Never rejects (a failure is logged). */
  private stopAndWait(name: string, why: StopReason): Promise<void> {
    const agent = this.handles.get(name);
    if (!agent) return Promise.resolve();
    markStopping(this.ctx.world, name, why, Date.now());
    agent.instance.requestShutdown(why);
    return agent.instance.stop(this.ctx.config.killGraceMs).then(
      () => undefined,
      (error: unknown) => this.ctx.log.error({ err: error, agent: name }, 'agent did not stop cleanly'),
    );
  }

  /**
   * Stops every started agent for `why` (those already stopping are waited for). With `shutdown`
   * it first refuses new starts and waits for those under way, so that no agent starts after it
   * (one would run on while the supervisor closes its database). @returns when all have stopped.
   */
  async stopAll(why: StopReason): Promise<void> {
    if (why === 'shutdown') {
      this.shuttingDown = true;
      // Bounded: a start stuck on something outside (the broker, the host) must not hold the
      // shutdown; one that ends later stops its own instance at once (see spawn).
      const deadline = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), Math.max(1_000, this.ctx.config.killGraceMs)).unref());
      while (this.spawns.size > 0) {
        if ((await Promise.race([Promise.allSettled([...this.spawns]), deadline])) === 'late') {
          this.ctx.log.warn({ starting: this.spawns.size }, 'agents still starting at shutdown; each is stopped once its start ends');
          break;
        }
      }
    }
    await Promise.all([...this.handles].map(([name, agent]) => (this.isStopping(name) ? agent.instance.exited.then(() => undefined) : this.stopAndWait(name, why))));
    if (why === 'shutdown') await this.prepared.removeAll(Math.max(1_000, this.ctx.config.killGraceMs));
  }

  /** Closes the instance of every agent still held (at shutdown, after their exits were applied). */
  async closeInstances(): Promise<void> {
    for (const agent of this.handles.values()) await agent.instance.close();
  }

  /** Started agents with their handles and live state, sorted by name (for the supervisor's inspection and idle check). */
  started(): { name: string; handle: AgentHandle; ready: boolean; stopping: StopReason | null; load: number }[] {
    return listAgents(this.ctx.world).flatMap((view) => {
      const handle = this.handles.get(view.name);
      return handle ? [{ name: view.name, handle, ready: view.ready, stopping: view.stopping, load: view.load }] : [];
    });
  }

  /**
   * Removes the account of `name`: its home storage, its account, its consumers and its row.
   * Outside a tick (an operator's deletion, a prepared agent's removal) it asks for one, whose
   * barrier pass makes the removal durable and lets its event out.
   * @throws what the runtime or the account store throws (the caller logs it).
   */
  async deleteAccount(name: string): Promise<void> {
    await this.removeAccount(name);
    if (this.barrier) this.ctx.requestTick();
  }

  /**
   * {@link deleteAccount} from inside a tick (an exit applied by the inbox): the tick's own pass
   * follows. With `keepConsumer` the agent's consumers are released (`Broker.releaseAgentConsumers`:
   * an idle assignment consumer stays for the next agent of the name) rather than deleted.
   *
   * Its storage is released, its consumers released or deleted and its home removed; then one
   * transaction (through the barrier, no fsync of its own) deletes the account's row, its
   * placement's and its agents row and records `account.delete`, preceded by `exitRow` (the exit
   * of the agent being deleted, see {@link applyExit}) when given. If the removal fails before that
   * commit, `exitRow` is committed alone and the error rethrown.
   */
  private async removeAccount(name: string, keepConsumer = false, exitRow?: () => void): Promise<void> {
    const { ctx } = this;
    const account = ctx.accounts.get(name);
    const router = ctx.runtime instanceof PlacementRouter ? ctx.runtime : undefined;
    const storage = { name, ...(account ? { homeDir: account.home } : {}) };
    let exitWritten = exitRow === undefined;
    try {
      await (router ? router.releaseStorage(storage, { keepPlacement: true }) : ctx.runtime.releaseStorage(storage));
      await (keepConsumer ? ctx.broker.releaseAgentConsumers(name) : ctx.broker.deleteAgentConsumers(name)).catch(() => undefined);
      await ctx.accounts.remove(name, {
        commitWith: (deleteRow) => {
          ctx.crashAt(CrashPoint.accountRemoving);
          this.commit(() => ctx.transaction(() => {
            exitRow?.();
            deleteRow();
            router?.forgetPlacement(name);
            ctx.state.deleteAgent(name);
            ctx.tracing.agentGone(name);
            ctx.emit({ actor: SUPERVISOR, action: 'account.delete', object: `agent:${name}`, details: {} });
          }));
          exitWritten = true;
        },
      });
    } catch (error) {
      if (!exitWritten) this.commit(() => ctx.transaction(exitRow!));
      throw error;
    }
  }

  /** Writes agent `name`'s row in the agents table (state, pid, times, last exit). */
  putAgentRow(name: string, state: string, nowMs: number, lastExit: string | null = null, pid?: number): void {
    const previous = this.ctx.state.agent(name);
    const account = this.ctx.accounts.get(name);
    if (!account) return;
    this.ctx.state.putAgent({
      name,
      template: account.template,
      uid: account.uid,
      state,
      pid: pid ?? (state === 'running' ? (previous?.pid ?? null) : null),
      startedMs: state === 'starting' ? nowMs : (previous?.startedMs ?? null),
      stoppedMs: state === 'starting' || state === 'running' ? null : nowMs,
      lastExit: lastExit ?? previous?.lastExit ?? null,
    });
  }
}


import { join } from 'node:path';
import type { Account } from '@warren/accounts';
import type { WarrenError } from '@warren/core';
import { addAgent, agentSlots, agentView, recordHeartbeat, removeAgent, setStatus, AgentStatus } from '@warren/ecs';
import type { AgentExit, AgentInstance } from '@warren/runtime';
import { lastLogLines } from '../agent-log.js';
import { agentStartSpecOf } from '../agent-runtime.js';
import { assignmentRefusal, rejectionEntry } from '../broker-access.js';
import { SUPERVISOR, type SupervisorContext } from '../context.js';
import type { InboxEvent } from '../executions/inbox.js';
import type { Settler } from '../executions/settle.js';
import { AgentLimitWatch, describeAgentExit, limitFailureOf } from '../limit-watch.js';
import type { AgentTemplate } from '../templates.js';

/** Why the supervisor stops an agent. */
export type StopReason = 'sleep' | 'delete' | 'shutdown' | 'operator' | 'unresponsive' | 'watchdog';

/** A live agent process and what the supervisor holds for it. */
export interface LiveAgent {
  readonly account: Account;
  readonly template: AgentTemplate;
  /** Its running instance (from the agent runtime): its processes and its agent channel. */
  readonly instance: AgentInstance;
  /** Set when the supervisor itself asked the agent to stop. */
  stopping: StopReason | undefined;
  /** Start it again once it has exited (operator restart). */
  restartAfterExit: boolean;
  /** The watchdog's memory of its readings (CPU time, refused forks, OOM kills, time over a threshold). */
  watch: AgentLimitWatch;
  /** The result its open tasks get when it is stopped, instead of running again (it hit its process limit). */
  failTasks?: string;
  /** Why it was stopped, in words, when the reason deserves more than its kind (the watchdog's finding). */
  stopDetail?: string;
  lastActiveMs: number;
  /** Whether it has finished at least one task since it started (for autodelete). */
  workedMs: number | undefined;
  /** Whether it has been given a task since it started: an `autodelete` agent takes one task only. */
  tookTask: boolean;
  /** Whether its runner has said hello. */
  ready: boolean;
}

/** Per template: consecutive agents that failed to start, why the last did, and when to try again (ms since the epoch). */
export interface SpawnFailure {
  count: number;
  reason: string;
  nextAtMs: number;
}

/** Consecutive spawn failures after which a template is not tried again in this run. */
export const MAX_SPAWN_FAILURES = 5;

/**
 * Agent lifecycle: starts agents (account, then an instance from the agent runtime), stops them, applies
 * their exits (settling their open executions), puts idle ones away (sleep, autodelete), keeps
 * warm pools topped up and backs off templates whose agents cannot start.
 */
export class AgentLifecycle {
  readonly live = new Map<string, LiveAgent>();
  readonly spawning = new Set<string>();
  readonly spawnFailures = new Map<string, SpawnFailure>();
  /** Purges of a dead agent's queued assignments still running, by agent: a new start of that name waits for its own. */
  private readonly exitPurges = new Map<string, Promise<void>>();

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly settler: Settler,
    private readonly queue: (event: InboxEvent) => void,
    private readonly authorizeMessage: (from: string, to: string) => string | null,
  ) {}

  /** The template of the agent named `agentName`, from its row in the agents table. */
  templateOf(agentName: string): AgentTemplate | undefined {
    const row = this.ctx.state.agent(agentName);
    return row ? this.ctx.templates.get(row.template) : undefined;
  }

  /** Whether the template may start an agent now: not failed for this run and not backing off. */
  mayStart(templateName: string, nowMs: number): boolean {
    const failure = this.spawnFailures.get(templateName);
    return !failure || (failure.count < MAX_SPAWN_FAILURES && nowMs >= failure.nextAtMs);
  }

  /** Instances of each template: live agents and agents being spawned. */
  instanceCounts(): Map<string, number> {
    const instances = new Map<string, number>();
    const add = (template: string) => instances.set(template, (instances.get(template) ?? 0) + 1);
    for (const agent of this.live.values()) add(agent.template.name);
    for (const name of this.spawning) add(templateOfAgentName(name));
    return instances;
  }

  /** Agents started but not yet ready (their runner has not said hello), by template. */
  startingCounts(): Map<string, number> {
    const starting = new Map<string, number>();
    const add = (template: string) => starting.set(template, (starting.get(template) ?? 0) + 1);
    for (const name of this.spawning) add(templateOfAgentName(name));
    for (const agent of this.live.values()) if (!agent.ready && !agent.stopping) add(agent.template.name);
    return starting;
  }

  /**
   * Tops up each template's warm pool ({@link AgentTemplate.warmPool}): agents that are starting,
   * or ready with no task (an `autodelete` one that has not had its task), count as warm; more are
   * started, side by side, while the pool is short and the template is under `maxInstances` and
   * not backing off after failed starts. In a run until idle, not once no task is ready.
   */
  fillWarmPools(nowMs: number, readyWaiting: number): void {
    // A run until idle is about to end once no task waits: agents started now would only be stopped.
    if (this.ctx.mode === 'until-idle' && readyWaiting === 0) return;
    const warm = this.startingCounts();
    const instances = this.instanceCounts();
    for (const agent of this.live.values()) {
      const name = agent.template.name;
      const idle = agent.ready && !agent.stopping && (agentView(this.ctx.world, agent.account.name)?.load ?? 0) === 0;
      if (idle && !(agent.template.lifecycle === 'autodelete' && agent.tookTask)) warm.set(name, (warm.get(name) ?? 0) + 1);
    }
    for (const template of this.ctx.templates.values()) {
      if (template.warmPool === 0 || !this.mayStart(template.name, nowMs)) continue;
      let count = warm.get(template.name) ?? 0;
      let total = instances.get(template.name) ?? 0;
      for (; count < template.warmPool && total < template.maxInstances; count++, total++) this.start(template.name, nowMs);
    }
  }

  /** Starts (or wakes) one agent of `templateName` (named `name`, or the next free name) in the background. */
  start(templateName: string, nowMs: number, name?: string): void {
    const template = this.ctx.templates.get(templateName);
    if (!template) return;
    const agentName = name ?? this.pickAgentName(template);
    this.spawning.add(agentName);
    this.spawn(template, agentName, nowMs)
      .catch((error: unknown) => {
        this.noteSpawnFailure(template.name, agentName, (error as Error).message, Date.now());
        this.ctx.emit(
          { actor: SUPERVISOR, action: 'agent.spawn_failed', object: `agent:${agentName}`, details: { message: (error as Error).message, code: (error as WarrenError).code ?? null } },
          { fields: { err: error, agent: agentName, template: template.name } },
        );
      })
      .finally(() => {
        this.spawning.delete(agentName);
        this.ctx.requestTick();
      });
  }

  /**
   * Counts an agent of `templateName` that could not start or died before it was ready, and backs
   * the template off exponentially: the next start waits min(restartBackoffMs × 2^(n−1), 60 s)
   * after the n-th failure in a row (agents that fail while the template already waits count as
   * the same failure); after {@link MAX_SPAWN_FAILURES} the template is failed for this run (its
   * tasks wait, with the reason). A successful start resets the count.
   */
  noteSpawnFailure(templateName: string, agent: string, reason: string, nowMs: number): void {
    const failure = this.spawnFailures.get(templateName) ?? { count: 0, reason: '', nextAtMs: 0 };
    // Agents started side by side that fail together are one failed attempt: a failure while the
    // template is already backing off does not count again or lengthen the wait.
    const sameAttempt = failure.count > 0 && nowMs < failure.nextAtMs;
    if (!sameAttempt) failure.count += 1;
    failure.reason = reason;
    const delayMs = Math.min(this.ctx.config.restartBackoffMs * 2 ** (failure.count - 1), 60_000);
    if (!sameAttempt) failure.nextAtMs = nowMs + delayMs;
    this.spawnFailures.set(templateName, failure);
    const givenUp = failure.count >= MAX_SPAWN_FAILURES;
    this.ctx.emit({
      actor: SUPERVISOR,
      action: givenUp ? 'template.failed' : 'agent.crash_loop',
      object: `template:${templateName}`,
      details: { agent, failures: failure.count, reason, ...(givenUp ? {} : { retryInMs: delayMs }) },
    });
  }

  /** A sleeping or stopped account of the template if there is one (woken), else the next free name. */
  private pickAgentName(template: AgentTemplate): string {
    const busy = (name: string) => this.live.has(name) || this.spawning.has(name);
    const existing = this.ctx.accounts
      .list()
      .filter((a) => a.template === template.name && !busy(a.name))
      .map((a) => a.name)
      .sort();
    if (existing[0]) return existing[0];
    for (let n = 1; ; n += 1) {
      const name = `${template.name}-${n}`;
      if (!busy(name) && !this.ctx.accounts.get(name)) return name;
    }
  }

  private async spawn(template: AgentTemplate, name: string, nowMs: number): Promise<void> {
    const { ctx } = this;
    const { config } = ctx;
    const account = ctx.accounts.get(name) ?? (await ctx.accounts.create({ name, template: template.name }));
    const woken = ctx.state.agent(name)?.state === 'sleeping';
    // Assignments still queued for this name belong to executions already settled (a purge at its
    // last exit may have failed with the broker away): the new agent must not run them.
    await this.exitPurges.get(name);
    await ctx.broker.purgeAssignments(name).catch((error: unknown) => ctx.log.warn({ err: error, agent: name }, 'cannot purge old assignments before the start'));
    ctx.policy.addRoleForSubject(name, `template:${template.name}`);
    let instance: AgentInstance;
    try {
      instance = await ctx.runtime.start(agentStartSpecOf(account, template, config), {
        hello: (agent) => this.queue({ kind: 'hello', agent }),
        taskAcked: (agent, taskId, attempt) => this.queue({ kind: 'acked', agent, taskId, attempt }),
        alive: (agent) => recordHeartbeat(ctx.world, agent, Date.now()),
        disconnected: (agent) => ctx.log.debug({ agent }, 'agent channel closed'),
        protocolError: (agent, message) => ctx.emit({ actor: `agent:${agent}`, action: 'agent.protocol_error', object: `agent:${agent}`, details: { message } }),
        authorizeMessage: (from, to) => this.authorizeMessage(from, to),
        authorizeAssignment: (agent, subject, taskId, attempt) => {
          const refusal = assignmentRefusal(ctx.state, agent, taskId, attempt);
          if (refusal) {
            ctx.emit(rejectionEntry(subject, 'taskId', refusal, { agent, taskId, attempt }));
          }
          return refusal;
        },
      });
    } catch (error) {
      ctx.policy.removeSubject(name);
      throw error;
    }
    const live: LiveAgent = {
      account,
      template,
      instance,
      stopping: undefined,
      lastActiveMs: nowMs,
      workedMs: undefined,
      tookTask: false,
      ready: false,
      restartAfterExit: false,
      watch: new AgentLimitWatch(nowMs),
    };
    try {
      this.live.set(name, live);
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
      ctx.transaction(() => {
        this.putAgentRow(name, 'starting', nowMs, null, instance.pid);
        ctx.emit({
          actor: SUPERVISOR,
          action: woken ? 'agent.wake' : 'agent.start',
          object: `agent:${name}`,
          details: { template: template.name, uid: account.uid, gid: account.gid, pid: instance.pid, home: account.home, isolation: template.isolation, unsafe: instance.unsafe },
        });
      });
      if (instance.unsafe) ctx.log.warn({ agent: name, isolation: template.isolation }, 'UNSAFE agent started: weaker isolation asked for by its template');
      void instance.exited.then((exit) => this.queue({ kind: 'exit', agent: name, exit }));
    } catch (error) {
      await instance.close();
      ctx.policy.removeSubject(name);
      throw error;
    }
  }

  /** Its runner said hello: the agent takes work from now on. */
  markReady(name: string, nowMs: number): void {
    const { ctx } = this;
    const agent = this.live.get(name);
    if (!agent) return;
    agent.ready = true;
    this.spawnFailures.delete(agent.template.name);
    setStatus(ctx.world, name, AgentStatus.idle, nowMs);
    recordHeartbeat(ctx.world, name, nowMs);
    ctx.transaction(() => {
      ctx.emit({ actor: `agent:${name}`, action: 'agent.ready', object: `agent:${name}`, details: { uid: agent.account.uid } });
      this.putAgentRow(name, 'running', nowMs);
    });
  }

  /**
   * Applies the exit of agent `name`: its open executions are settled (failed for good when it hit
   * a limit that fails its tasks, else lost and run again), its queued assignments purged off the
   * tick's path, its home image released, its row updated (or its account deleted), and a restart
   * or a spawn failure noted.
   */
  async applyExit(name: string, exit: AgentExit, nowMs: number, step: <T>(label: string, work: Promise<T>) => Promise<T>): Promise<void> {
    const { ctx } = this;
    const agent = this.live.get(name);
    if (!agent) return;
    this.live.delete(name);
    removeAgent(ctx.world, name);
    await step(`applyExit ${name}: instance.close`, agent.instance.close());
    ctx.policy.removeSubject(name);
    const expected = agent.stopping !== undefined;
    const exitText = describeAgentExit(exit, agent.template);
    const open = ctx.state.openAssignments().filter((a) => a.agent === name);
    ctx.transaction(() => {
      ctx.emit({
        actor: SUPERVISOR,
        action: expected ? 'agent.stop' : 'agent.exit',
        object: `agent:${name}`,
        details: { exit, reason: agent.stopping ?? 'unexpected', openTasks: open.map((a) => a.taskId) },
      }, expected ? undefined : { fields: { agent: name, exit: exitText } });
      const failTasks = agent.failTasks ?? limitFailureOf(exit, agent.template);
      for (const a of open) {
        if (failTasks) {
          ctx.state.finishAssignment(a.taskId, a.attempt, { outcome: 'failed', exitCode: null, summary: failTasks, outputs: [] }, nowMs);
          this.settler.settle(a.taskId, a.attempt, 'failed', `failed: ${failTasks}`, nowMs, agent.template);
          continue;
        }
        ctx.state.finishAssignment(a.taskId, a.attempt, { outcome: 'lost', exitCode: null, summary: `agent exited: ${exitText}`, outputs: [] }, nowMs);
        this.settler.settle(a.taskId, a.attempt, 'lost', `agent ${name} exited during attempt ${a.attempt} (${exitText})`, nowMs, agent.template);
      }
    });
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
    if (agent.restartAfterExit) this.start(agent.template.name, nowMs, name);
    if (agent.stopping === 'delete') {
      await this.deleteAccount(name);
    } else {
      this.putAgentRow(name, agent.stopping === 'sleep' ? 'sleeping' : expected ? 'stopped' : 'failed', nowMs, exitText);
    }
    if (!expected && !agent.ready) {
      // It died before its runner said hello: count it against the template, so a template that
      // cannot start is not restarted in a loop. The runner's or the sandbox's own words are in
      // the agent's log: they are the reason.
      const said = lastLogLines(join(ctx.config.stateDir, 'logs', `${name}.log`));
      this.noteSpawnFailure(agent.template.name, name, `agent ${name} exited before it was ready (${exitText})${said ? `: ${said}` : ''}`, nowMs);
    }
  }

  /** Puts idle `sleep` agents to sleep and stops `autodelete` agents after their task. */
  tend(nowMs: number): void {
    const loads = new Map(agentSlots(this.ctx.world).map((s) => [s.name, s.load]));
    const busyAgents = new Set(this.ctx.state.openAssignments().map((a) => a.agent));
    for (const [name, agent] of this.live) {
      if (agent.stopping || (loads.get(name) ?? 0) > 0) continue;
      if (busyAgents.has(name)) continue;
      const mode = agent.template.lifecycle;
      if (mode === 'sleep' && nowMs - agent.lastActiveMs >= agent.template.sleepAfterIdleMs) {
        this.stop(agent, 'sleep');
      } else if (mode === 'autodelete' && agent.workedMs !== undefined) {
        this.stop(agent, 'delete');
      }
    }
  }

  /**
   * Asks `agent` to stop (its runner first, then its instance after the kill grace); the exit is
   * applied by {@link applyExit}. Failures to stop are logged. @returns when the instance has stopped.
   */
  stop(agent: LiveAgent, why: StopReason): Promise<void> {
    agent.stopping = why;
    setStatus(this.ctx.world, agent.account.name, AgentStatus.stopping, Date.now());
    agent.instance.requestShutdown(why);
    return agent.instance.stop(this.ctx.config.killGraceMs).then(
      () => undefined,
      (error: unknown) => this.ctx.log.error({ err: error, agent: agent.account.name }, 'agent did not stop cleanly'),
    );
  }

  /**
   * Removes the account of `name` (its home image, its consumers, its row); failures are logged.
   */
  async deleteAccount(name: string): Promise<void> {
    const { ctx } = this;
    try {
      const account = ctx.accounts.get(name);
      await ctx.runtime.releaseStorage({ name, ...(account ? { homeDir: account.home } : {}) });
      await ctx.accounts.remove(name);
      await ctx.broker.deleteAgentConsumers(name).catch(() => undefined);
      ctx.transaction(() => {
        ctx.state.deleteAgent(name);
        ctx.emit({ actor: SUPERVISOR, action: 'account.delete', object: `agent:${name}`, details: {} });
      });
    } catch (error) {
      ctx.log.error({ err: error, agent: name }, 'cannot delete the account');
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

/** The template of an instance name `<template>-<n>`. */
export function templateOfAgentName(name: string): string {
  return name.slice(0, name.lastIndexOf('-'));
}

import type { Subscription } from '@warren/broker';
import { ConfigError, type Logger } from '@warren/core';
import { createTickLoop, type TickLoop } from '@warren/ecs';
import type { BoardMapping } from '@warren/kanban';
import type { Plan } from '@warren/scheduler';
import type { SupervisorConfig } from './config.js';
import { SUPERVISOR, type RunMode, type SupervisorContext } from './context.js';
import { crashNow, CrashPoint } from './crash.js';
import { CommitBarrier } from './executions/barrier.js';
import { recover } from './executions/recovery.js';
import { ResultsSettling } from './idle.js';
import { step, trackTick, type SupervisorInspection, type TickProgress } from './inspect.js';
import { openContext } from './open.js';
import { watchPolicy, type PolicyReloader } from './policy-reload.js';
import { AgentNatsUsers } from './messaging/nats-users.js';
import { join } from 'node:path';
import type { RunSummary } from './run-summary.js';
import { assembleParts, idleNow, inspectParts, runSummary, type SupervisorParts } from './parts.js';
import type { ServedApi } from './http.js';
import { clearPhantomDeliveries, purgeSettledAssignments } from './stranded-watch.js';
import { TaskState } from '@warren/registry';
import { BoardSchedules } from './schedules/board-schedules.js';
import { resumeWorkers } from './operator/managers.js';

export type { RunMode } from './context.js';
export type { RunSummary } from './run-summary.js';

/**
 * The supervisor's states. `create()` returns it `starting`; `run()` moves it to `running`;
 * `shutdown()` (a signal, or the board going idle in until-idle mode) moves it to `stopping`, and
 * once every agent, the broker and the database are closed it is `stopped`. A fatal error while
 * running moves it to `failed` (after the same clean-up) and `run()` rejects. `close()` on a
 * supervisor that never ran releases what `create()` opened and leaves it `stopped`.
 *
 * ```
 * starting ──run()──▶ running ──shutdown()──▶ stopping ──▶ stopped
 *    │                   └──fatal error──────▶ stopping ──▶ failed
 *    └──close()──────────────────────────────────────────▶ stopped
 * ```
 */
export const SupervisorState = {
  starting: 'starting',
  running: 'running',
  stopping: 'stopping',
  stopped: 'stopped',
  failed: 'failed',
} as const;
export type SupervisorState = (typeof SupervisorState)[keyof typeof SupervisorState];

/** Options of {@link Supervisor.create}. */
export interface SupervisorCreateOptions {
  readonly logger: Logger;
  readonly mode: RunMode;
  /** How another tool's board maps onto Warren's (from `--mapping`); kanban's defaults when absent. */
  readonly mapping?: BoardMapping;
  /** Environment the templates' `environment` allow-lists read from. Default: none. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Called once when a fatal error stops the run, before the clean-up (e.g. to bound its time). */
  readonly onFatal?: (error: unknown) => void;
  /** The built dashboard the HTTP API serves at `/` (see `@warren/dashboard`). Default: none. */
  readonly dashboardDir?: string;
}

/**
 * The tick's stages, in the order they run (see `Supervisor.tickStages` for what each does). The
 * commit barrier is passed once, after the inbox and the plan: one fsync a tick covers the results
 * applied and the assignments made, before any of them is acknowledged, announced or published.
 */
export const TICK_STAGES = [
  'fireSchedules',
  'refreshBoard',
  'checkResultWorkspaces',
  'applyInbox',
  'crashPoint',
  'runCommands',
  'checkLiveness',
  'runWatchdog',
  'scanHomes',
  'relieveDisk',
  'checkDiskReserve',
  'checkRuntimes',
  'publishOutbox',
  'watchStranded',
  'planAndAssign',
  'startAgents',
  'passBarrier',
  'flushBoard',
  'publishAssignments',
  'completeParents',
  'tendLifecycles',
  'checkIdle',
  'syncNatsUsers',
  'signAudit',
] as const;
/** The name of one of the tick's stages. */
export type TickStageName = (typeof TICK_STAGES)[number];

/** What one tick's stages share: its time, and what planning decided. */
interface TickFrame {
  readonly nowMs: number;
  /** Whether new work may start (the state directory's filesystem is above its reserve). */
  mayStartWork: boolean;
  /** The plan carried out (empty when no work may start). */
  plan: Plan;
  /** The plan as made, whatever the disk allows. */
  wanted: Plan;
}

/** One named stage of the tick. */
interface TickStage {
  readonly name: string;
  readonly run: (frame: TickFrame) => void | Promise<void>;
}

const EMPTY_PLAN: Plan = { assignments: [], spawns: [], unplaced: [], plannedAtMs: 0 };

/**
 * The Warren supervisor: watches the board, plans assignments on each tick of the ECS world,
 * spawns sandboxed agents under their own accounts, moves assignments and results over NATS
 * JetStream, asks the policy before every assignment and message, and records every decision and
 * state change in the audit trail. Durable state (tasks, executions, agents) is in SQLite: an
 * execution is committed before it is published (the `pending` state is the outbox) and a board
 * write is committed as `pending` before the file is written, so a crash loses neither.
 *
 * This class holds the life cycle and the tick; each concern is a module of its own, sharing one
 * {@link SupervisorContext}: board mirror and writer (board/), planning and admission
 * (planning.ts), execution outbox, inbox, settlement and recovery (executions/), agent lifecycle
 * and health (agents/), operator commands (operator/) and the run summary (run-summary.ts).
 */
export class Supervisor {
  private stateValue: SupervisorState = SupervisorState.starting;
  private readonly parts: SupervisorParts;
  /** The HTTP API, when `--http` is on (set by {@link create}). */
  private served: ServedApi | undefined;
  /** The running tick's start (ms since the epoch) and the step it awaits, for {@link inspect}. */
  private readonly tickProgress: TickProgress = { startedMs: undefined, step: 'idle' };
  /** The tick: a fixed list of named stages, run in order. */
  private readonly stages: readonly TickStage[];
  /** Whether the broker still holds unacknowledged results when the board is idle. */
  private readonly settling: ResultsSettling;
  private loop: TickLoop | undefined;
  private results: Subscription | undefined;
  private stopRequested: ((reason: string) => void) | undefined;
  private runPromise: Promise<RunSummary> | undefined;
  private releasing: Promise<void> | undefined;
  /** Applies changes of the policy files while the supervisor runs. */
  private policyReloader: PolicyReloader | undefined;
  /** The board's schedules (schedules.yaml): a card at each fire time. */
  private readonly schedules: BoardSchedules;
  /** The tick's durability barrier, passed once a tick after the inbox and the plan: their commits' effects wait for it (see {@link CommitBarrier}). */
  private readonly barrier: CommitBarrier;
  /** Set once a fatal error has stopped the run (the task rows in memory may be ahead of the table). */
  private runFailed = false;

  private constructor(
    private readonly ctx: SupervisorContext,
    private readonly onFatal: ((error: unknown) => void) | undefined,
  ) {
    this.parts = assembleParts(ctx, (label, work) => step(this.tickProgress, label, work));
    this.settling = new ResultsSettling(ctx.broker, ctx.log);
    this.schedules = new BoardSchedules(ctx, this.parts.mirror);
    this.barrier = new CommitBarrier(ctx.db, () => ctx.events.hold());
    this.parts.agents.useBarrier(this.barrier);
    this.parts.writer.commitThrough(this.barrier);
    this.stages = this.tickStages();
  }

  /**
   * Opens what the supervisor needs (see {@link openContext}): host checks, policy, templates,
   * state database, audit trail, accounts, the broker; cleans up what a previous run left.
   * Nothing is assigned until {@link run}.
   * @throws {MissingCapabilityError} if root, bwrap, setpriv or nats-server is missing.
   * @throws {PolicyLoadError} if a policy file is broken (naming file and line).
   * @throws {ConfigError} if there is no valid template at all.
   */
  static async create(config: SupervisorConfig, options: SupervisorCreateOptions): Promise<Supervisor> {
    const made: { supervisor?: Supervisor } = {};
    const ctx = await openContext(config, {
      logger: options.logger,
      mode: options.mode,
      mapping: options.mapping,
      ...(options.env ? { env: options.env } : {}),
      requestTick: () => made.supervisor?.loop?.requestTick(),
      isRunning: () => made.supervisor?.stateValue === SupervisorState.running,
    });
    const supervisor = (made.supervisor = new Supervisor(ctx, options.onFatal));
    if (config.http !== undefined) {
      try {
        // Loaded only when the API is served: the HTTP API and the MCP server are ~13 MiB of
        // the supervisor's memory a run without them does not need.
        const { serveApi } = await import('./http.js');
        supervisor.served = await serveApi(ctx, supervisor.parts, { startedMs: Date.now(), ...(options.dashboardDir ? { staticDir: options.dashboardDir } : {}) });
      } catch (error) {
        await supervisor.close();
        throw error;
      }
      ctx.log.info({ url: supervisor.served.server.url }, 'HTTP API and dashboard listening');
      // Agents reach Warren's MCP tools through their gateway, each with a token of its own.
      const tokens = supervisor.served.tokens;
      ctx.llm.late.mcpUrl = new URL('/mcp', supervisor.served.server.url).href;
      ctx.llm.late.agentTokens = { create: (agent) => tokens.createAgentToken(agent, Date.now()).token, revoke: (agent) => void tokens.revokeAgentToken(agent, Date.now()) };
    }
    return supervisor;
  }

  /**
   * The HTTP API when `--http` is on: its address and the local operator's sign-in link (a token
   * that expires; print it to the person who started Warren, never to a log).
   */
  get api(): { readonly url: string; readonly signInUrl: string; readonly signInExpiresMs: number } | undefined {
    const served = this.served;
    return served === undefined ? undefined : { url: served.server.url, signInUrl: served.signIn.url, signInExpiresMs: served.signIn.expiresMs };
  }

  /** The supervisor's configuration. */
  get config(): SupervisorConfig {
    return this.ctx.config;
  }

  /** Where the supervisor is in its life; see {@link SupervisorState}. */
  get currentState(): SupervisorState {
    return this.stateValue;
  }

  /**
   * Runs until {@link shutdown} is called or, in until-idle mode, until nothing is ready or running.
   * Resolves with the run's summary once everything is closed; rejects if a fatal error stopped it.
   */
  run(): Promise<RunSummary> {
    this.runPromise ??= this.runInner();
    return this.runPromise;
  }

  /** What the supervisor holds in memory now (agents, spawns, back-offs, the tick), for an operator. */
  inspect(): SupervisorInspection {
    const { startedMs, step: current } = this.tickProgress;
    return { state: this.stateValue, tick: { runningForMs: startedMs === undefined ? null : Date.now() - startedMs, step: current }, ...inspectParts(this.ctx, this.parts) };
  }

  /** Agents being started now: spawned, or started and not yet ready (their runner has not said hello). */
  startingAgents(): number {
    let n = 0;
    for (const count of this.parts.agents.startingCounts().values()) n += count;
    return n;
  }

  /** Asks the supervisor to stop: no more assignments, agents stopped, broker and database closed. */
  shutdown(reason = 'shutdown requested'): void {
    this.stopRequested?.(reason);
  }

  /**
   * Stops the supervisor and releases everything it opened: a running one is shut down and its
   * run awaited (its outcome is the run's); one that never ran closes the broker, nats-server and
   * database. Idempotent; never rejects.
   */
  async close(): Promise<void> {
    if (this.runPromise) {
      this.shutdown('closed');
      await this.runPromise.then(
        () => undefined,
        () => undefined,
      );
      return;
    }
    this.stateValue = SupervisorState.stopping;
    await this.release().catch((error: unknown) => this.ctx.log.error({ err: error }, 'cannot close cleanly'));
    this.stateValue = SupervisorState.stopped;
  }

  /** {@link close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private async runInner(): Promise<RunSummary> {
    const { ctx } = this;
    this.stateValue = SupervisorState.running;
    const stopped = new Promise<string>((resolve) => {
      this.stopRequested = resolve;
    });
    let fatal: unknown;
    const failed = (error: unknown) => {
      fatal ??= error;
      this.runFailed = true;
      this.onFatal?.(error);
    };
    try {
      const readMs = Date.now();
      await this.parts.mirror.refresh(readMs);
      ctx.tracing.boardRefreshed(readMs, Date.now());
      // A run until idle with no board to read would wait forever for one.
      if (!this.parts.mirror.board && ctx.mode === 'until-idle') {
        throw new ConfigError(ctx.config.boardDir, 'the board cannot be read (see the message above); nothing to run');
      }
      this.parts.mirror.watch();
      this.policyReloader = await watchPolicy({
        policy: ctx.policy,
        modelPath: join(ctx.config.policiesDir, 'model.conf'),
        policyPath: join(ctx.config.policiesDir, 'policy.csv'),
        emit: (event) => ctx.emit(event),
        logger: ctx.log,
        onReloaded: () => {
          ctx.requestTick();
          this.parts.messages.revalidate();
          AgentNatsUsers.of(ctx)?.sync().catch((error: unknown) => ctx.log.error({ err: error }, 'cannot update the per-agent NATS users'));
        },
      });
      await this.parts.messages.startRelay();
      // Results handed to a previous, killed supervisor wait out their ack wait before the broker
      // offers them again; a fresh consumer gets them at once.
      await ctx.broker.resetResultsConsumer();
      this.results = await ctx.broker.consumeResults(
        (delivery) =>
          new Promise<void>((done) => {
            this.parts.inbox.push({ kind: 'result', delivery, done });
          }),
      );
      await recover(ctx, this.parts, Date.now());
      resumeWorkers(ctx, this.parts.agents, Date.now());
      this.loop = createTickLoop({
        intervalMs: ctx.config.tickIntervalMs,
        tick: (nowMs) => trackTick(this.tickProgress, nowMs, () => this.tick(nowMs)),
        logger: ctx.log.child({ component: 'tick' }),
        onError: (error: unknown) => {
          failed(error);
          this.shutdown('fatal error');
        },
      });
      this.loop.requestTick();
      const reason = await stopped;
      ctx.log.info({ reason }, 'stopping');
    } catch (error) {
      failed(error);
    }
    this.stateValue = SupervisorState.stopping;
    await this.release().catch((error: unknown) => {
      ctx.log.error({ err: error }, 'cannot close cleanly');
      fatal ??= error;
    });
    if (fatal !== undefined) {
      this.stateValue = SupervisorState.failed;
      throw fatal instanceof Error ? fatal : new Error(`the run failed: ${JSON.stringify(fatal)}`);
    }
    this.stateValue = SupervisorState.stopped;
    return runSummary(this.ctx, this.parts);
  }

  /**
   * The tick's stages, in order: read the board, apply the inbox, run operator commands, agent
   * health, publish the outbox, plan and assign, start agents, pass the commit barrier (one fsync:
   * results acknowledged, events out), write cards, publish assignments, complete parents, put
   * idle agents away, check idle. Agents start before the barrier: a start waits for no commit
   * (its own commits go through the barrier, its events wait for a pass like any other), so it
   * runs while the WAL is synced instead of after.
   */
  private tickStages(): TickStage[] {
    const { ctx } = this;
    const { mirror, writer, inbox, agents, health, outbox, commands, stranded, runtimes } = this.parts;
    const stages: Record<TickStageName, TickStage['run']> = {
      fireSchedules: (t) => this.schedules.fire(t.nowMs),
      // While a board write runs, the watcher reports Warren's own files before the write has
      // recorded their new bytes: re-read after it, when those echoes cost no parse.
      refreshBoard: (t) => (mirror.dirty && !writer.running ? this.refreshBoard(t.nowMs) : undefined),
      checkResultWorkspaces: (t) => health.checkResultWorkspaces(t.nowMs),
      // Results and starts commit without an fsync; their acks wait for passBarrier.
      applyInbox: (t) => inbox.apply(t.nowMs, this.barrier),
      crashPoint: (t) => this.crashWhileTaskRuns(t.nowMs),
      runCommands: (t) => commands.process(t.nowMs),
      checkLiveness: (t) => health.checkLiveness(t.nowMs),
      runWatchdog: (t) => health.runWatchdog(t.nowMs),
      scanHomes: (t) => health.scanHomes(t.nowMs),
      relieveDisk: (t) => health.relieveDisk(t.nowMs),
      checkDiskReserve: (t) => void (t.mayStartWork = health.diskAllowsWork(t.nowMs)),
      // The first tick waits for the first check, so that no agent of a broken runtime starts.
      checkRuntimes: (t) => (runtimes.checked ? runtimes.maybeCheck(t.nowMs) : runtimes.checkNow()),
      publishOutbox: () => outbox.publishPending(),
      watchStranded: (t) => stranded.check(ctx.state.openAssignments(), t.nowMs, (agent) => agents.isReady(agent)),
      // The plan sees the inbox's results (their agents' slots are free again) before anyone has
      // heard of them: its assignments commit after them, without an fsync, as they did.
      planAndAssign: (t) => this.planAndAssign(t),
      // One fsync for the inbox's commits and the plan's; only then does anyone hear of them:
      // broker acks, events, cards written, assignments published. (The WAL keeps a prefix of the
      // commits after a power loss, so an assignment never outlives the result that freed its slot.)
      // A card assigned above waits IN_PROGRESS_DELAY_MS before the writer moves it to in progress,
      // so one finished by then gets one write (to its end column), not two.
      passBarrier: () => this.passBarrier(),
      flushBoard: () => writer.start(),
      publishAssignments: (t) => this.publishAssignments(t),
      startAgents: (t) => this.startAgents(t),
      completeParents: (t) => mirror.completeParents(t.nowMs),
      tendLifecycles: (t) => agents.tend(t.nowMs),
      checkIdle: (t) => this.checkIdle(t),
      // At most once a second, and only when rows were added: signs the newest row's hash.
      syncNatsUsers: (t) => AgentNatsUsers.of(ctx)?.syncIfAgentsChanged(t.nowMs),
      signAudit: (t) => ctx.auditSigner.checkpoint(t.nowMs).then(() => undefined, (error: unknown) => ctx.log.error({ err: error }, 'cannot sign an audit checkpoint')),
    };
    return TICK_STAGES.map((name) => ({ name, run: stages[name] }));
  }

  /** Reads the board again (see BoardMirror.refresh); the read becomes the refresh span of the executions it makes ready. */
  private async refreshBoard(nowMs: number): Promise<void> {
    await this.parts.mirror.refresh(nowMs);
    this.ctx.tracing.boardRefreshed(nowMs, Date.now());
  }

  /** One tick: each stage in order, each awaited, named for {@link inspect} while it runs. */
  private async tick(nowMs: number): Promise<void> {
    if (this.stateValue !== SupervisorState.running) return;
    const frame: TickFrame = { nowMs, mayStartWork: true, plan: EMPTY_PLAN, wanted: EMPTY_PLAN };
    for (const stage of this.stages) {
      const pending = stage.run(frame);
      if (pending) await step(this.tickProgress, stage.name, pending);
    }
  }

  /** Dies with SIGKILL once a task has run 300 ms, when this run was told to (fault-injection tests only). */
  private crashWhileTaskRuns(nowMs: number): void {
    if (this.ctx.config.crashAt === CrashPoint.taskRunning && this.ctx.state.tasks().some((t) => t.state === TaskState.running && nowMs - t.updatedMs >= 300)) {
      crashNow();
    }
  }

  /**
   * Plans and, when work may start, assigns. Planning writes new task rows and queue positions,
   * then the tick's assignments: one transaction for all of them, committed without an fsync
   * (the tick's barrier, passed next, syncs it with the inbox's commits before any assignment is
   * published).
   */
  private planAndAssign(t: TickFrame): void {
    const { planner } = this.parts;
    let plan: Plan = EMPTY_PLAN;
    this.barrier.commit(() => this.ctx.transaction(() => {
      const planStartMs = Date.now();
      plan = planner.plan(t.nowMs);
      this.ctx.tracing.planned(planStartMs, Date.now());
      if (t.mayStartWork) for (const a of plan.assignments) planner.assign(a.taskId, a.agent, t.nowMs);
    }));
    t.wanted = plan;
    t.plan = t.mayStartWork ? plan : { ...plan, assignments: [], spawns: [] };
  }

  /**
   * Makes the tick's commits durable (one fsync, off the event loop), then runs what waited for
   * them (the results' broker acks, the held events). Fault injection: `barrier.pending` dies with
   * results committed and not yet synced, `barrier.passed` once they are synced, before their acks.
   */
  private passBarrier(): Promise<void> | undefined {
    if (!this.barrier.waiting) return undefined;
    return this.barrier.pass((stage) => this.ctx.crashAt(stage === 'before' ? CrashPoint.barrierPending : CrashPoint.barrierPassed));
  }

  /** Publishes the tick's assignments at once (and writes their cards), rather than on the next tick. */
  private async publishAssignments(t: TickFrame): Promise<void> {
    if (t.plan.assignments.length === 0) return;
    this.ctx.crashAt(CrashPoint.assignCommitted);
    await this.parts.outbox.publishPending();
    this.parts.writer.start();
  }

  /** Starts the agents the plan asks for and tops up warm pools. */
  private startAgents(t: TickFrame): void {
    for (const spawn of t.plan.spawns) {
      this.ctx.tracing.spawnRequested(spawn.template, spawn.taskIds, t.nowMs);
      this.parts.agents.start(spawn.template, t.nowMs);
    }
    this.parts.planner.readyWaiting -= t.plan.assignments.length;
    if (t.mayStartWork) this.parts.agents.fillWarmPools(t.nowMs, this.parts.planner.readyWaiting);
  }

  /**
   * In a run until idle, ends the run once nothing is left to do and the broker holds no
   * unacknowledged result. A plan of the most urgent tasks alone says nothing of the others: the
   * run's summary and the idle check wait for a full one (at most a queue refresh later). Below the
   * disk reserve the run still ends once nothing waits to start.
   */
  private async checkIdle(t: TickFrame): Promise<void> {
    if (this.parts.planner.planWasPartial) return;
    this.parts.planner.lastPlan = t.plan;
    if (this.ctx.mode === 'until-idle' && idleNow(this.ctx, this.parts, t.mayStartWork ? t.plan : t.wanted, t.nowMs)) {
      if (await step(this.tickProgress, 'resultsSettled', this.settling.settled(t.nowMs))) this.shutdown('board is idle');
    } else {
      this.settling.reset();
    }
  }

  /** Stops the tick, the agents and the watchers, applies the last events, and closes the broker and the database. Runs once. */
  private release(): Promise<void> {
    this.releasing ??= this.releaseOnce();
    return this.releasing;
  }

  private async releaseOnce(): Promise<void> {
    const { ctx } = this;
    const { log } = ctx;
    // The API first: no request reads a database being closed, no client waits on a stopping tick.
    await this.served?.close().catch((error: unknown) => log.error({ err: error }, 'cannot close the HTTP API'));
    await this.loop?.stop();
    await this.policyReloader?.close();
    await this.parts.stranded.close();
    await this.parts.mirror.close();
    await this.parts.agents.stopAll('shutdown');
    // Apply the exits (and any results that raced them) so the database says what happened.
    await this.parts.inbox.apply(Date.now()).catch((error: unknown) => log.error({ err: error }, 'cannot apply final events'));
    // Effects a stopped tick left waiting for its barrier (the commits above synced them).
    await this.barrier.pass().catch((error: unknown) => log.error({ err: error }, 'cannot sync the state database'));
    // Write what the exits changed (tasks put back to ready) while the board is still ours. Not
    // after a fatal error: a transaction that failed (SQLITE_FULL) left the task rows in memory
    // ahead of the table, and a card written from them (an assignment that never committed shown
    // in progress) would outlive the run; the next run writes the rows the table holds as pending.
    if (this.runFailed) log.warn({ pendingCards: ctx.state.pendingBoardTasks().length }, 'a fatal error stopped the run: the cards still pending are written by the next run');
    await this.parts.writer.drain(!this.runFailed).catch((error: unknown) => log.error({ err: error }, 'cannot write the board'));
    // The outcomes of that write, and of a flush that ended after the tick's last pass.
    await this.barrier.pass().catch((error: unknown) => log.error({ err: error }, 'cannot sync the state database'));
    await this.results?.stop().catch(() => undefined);
    // A result that arrived while the consumer stopped is left unacknowledged for the next run.
    this.parts.inbox.releaseResults();
    await this.parts.agents.closeInstances();
    const agentNames = ctx.state.agents().map((a) => a.name);
    const open = new Set(ctx.state.openAssignments().map((a) => a.agent));
    await purgeSettledAssignments(ctx.broker, agentNames, (agent) => open.has(agent), log.child({ component: 'stranded' }));
    await clearPhantomDeliveries(ctx.broker, agentNames, log.child({ component: 'stranded' }));
    try {
      ctx.emit({ actor: SUPERVISOR, action: 'supervisor.stop', object: 'supervisor', details: { succeeded: this.parts.tally.succeeded.length, failed: this.parts.tally.failed.length, policyDecisions: ctx.authorizer.decisions } });
    } catch (error) {
      log.error({ err: error }, 'cannot record the stop in the audit trail');
    }
    const closers: [string, () => Promise<void>][] = [
      ['message service', () => this.parts.messages.close()],
      ['runtime checks', () => this.parts.runtimes.close()],
      ['repository fetches', () => this.parts.repositories.close()],
      ['event bus', () => ctx.events.close()],
      ['tracing', () => ctx.tracing.close()],
      ['agent runtime', () => ctx.runtime.close()],
      ['LLM gateway', () => ctx.llm.close()],
      ['bus sockets', () => ctx.bus.close()],
      ['broker', () => ctx.broker.close()],
      ['nats-server', () => ctx.nats?.close() ?? Promise.resolve()],
    ];
    for (const [what, close] of closers) {
      await close().catch((error: unknown) => log.error({ err: error }, `cannot close ${what}`));
    }
    // The last checkpoint covers supervisor.stop and whatever closing wrote.
    await ctx.auditSigner.close().catch((error: unknown) => log.error({ err: error }, 'cannot sign the last audit checkpoint'));
    ctx.db.close();
  }
}

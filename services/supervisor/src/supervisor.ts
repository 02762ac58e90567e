import { unlinkSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { openAccounts, type Account, type AccountStore } from '@warren/accounts';
import { openAudit, type AuditEntry, type AuditTrail } from '@warren/audit';
import {
  type Broker,
  type Delivery,
  type EmbeddedNatsServer,
  type ResultMessage,
  type Subscription,
} from '@warren/broker';
import { ConfigError, WarrenError, type Logger } from '@warren/core';
import {
  addAgent,
  agentSlots,
  agentView,
  livenessSystem,
  recordUsage,
  createAgentWorld,
  createTickLoop,
  removeAgent,
  setLoad,
  setStatus,
  recordHeartbeat,
  AgentStatus,
  type AgentWorld,
  type TickLoop,
} from '@warren/ecs';
import {
  applyOwnedChanges,
  boardWatchPaths,
  checkTransition,
  syncDirectories,
  illegalMoves,
  parentsToComplete,
  wipStatus,
  isReady,
  loadBoard,
  refreshWarrenBoard,
  rewriteOwnedFields,
  updateTask,
  watchBoard,
  MoveRefusedError,
  TaskConflictError,
  type BoardMapping,
  type BoardSnapshot,
  type BoardWatcher,
  type OwnedFieldChanges,
  type Task,
  type TaskFileError,
} from '@warren/kanban';
import { loadPolicy, type PolicyEnforcer } from '@warren/policy';
import { failClosed, reportFailedDecision } from './policy-guard.js';
import { BlockedTaskReport } from './blocked-tasks.js';
import { inputRejected } from './input-rejections.js';
import { lastLogLines } from './agent-log.js';
import { BoardAvailability } from './board-availability.js';
import {
  assertIsolation,
  describeExit,
  ensureHomeImage,
  releaseHomeImage,
  removeStaleMounts,
  probeHost,
  removeStaleCgroups,
  spawnSandbox,
  type Sandbox,
  type SandboxExit,
} from '@warren/sandbox';
import { planAssignments, type Plan } from '@warren/scheduler';
import { planMostUrgent, plannerOrder, type PlannerTask } from './urgent-plan.js';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import type { SupervisorConfig } from './config.js';
import { AgentGateway } from './gateway.js';
import { assignmentRefusal, openBroker, rejectionEntry } from './broker-access.js';
import { BoardEdits, type BoardNote } from './board-edits.js';
import { checkMappingApplies, loadMappingFile } from './mapping.js';
import { agentSandboxSpec, instanceTag, RUNNER_IN_SANDBOX } from './agent-spec.js';
import { removeExecLeftovers } from './exec.js';
import { AgentLimitWatch, describeAgentExit, limitFailureOf, taskFailureOf } from './limit-watch.js';
import { crashDuringWrite, crashNow, CrashPoint, removeStaleTempFiles } from './crash.js';
import { step, trackTick, type SupervisorInspection, type TickProgress } from './inspect.js';
import { clearPhantomDeliveries, StrandedWatch } from './stranded-watch.js';
import { CommandKind, isTerminal, migrateState, StateStore, TaskState, type AssignmentRow, type CommandRow, type TaskRow } from './state.js';
import { loadTemplates, retryDelayMs, type AgentTemplate, type TemplateError } from './templates.js';
import { secureStateDir } from './state-dir.js';
import { DiskReserve, formatBytes, HomeWatch, homeUsage, type WatchedHome } from './disk.js';
import { DiskPressure, type DiskOffender } from './disk-pressure.js';

/**
 * The supervisor's states. `create()` returns it `starting`; `run()` moves it to `running`;
 * `shutdown()` (a signal, or the board going idle in until-idle mode) moves it to `stopping`, and
 * once every agent, the broker and the database are closed it is `stopped`. A fatal error while
 * running moves it to `failed` (after the same clean-up) and `run()` rejects.
 */
export const SupervisorState = {
  starting: 'starting',
  running: 'running',
  stopping: 'stopping',
  stopped: 'stopped',
  failed: 'failed',
} as const;
export type SupervisorState = (typeof SupervisorState)[keyof typeof SupervisorState];

/** How the supervisor runs: forever (`up`) or until nothing is ready or running (`until-idle`). */
export type RunMode = 'up' | 'until-idle';

/** What a run did, for the CLI's summary and exit code. */
export interface RunSummary {
  readonly succeeded: readonly string[];
  readonly failed: readonly { readonly taskId: string; readonly reason: string }[];
  /** Task files that could not be read (held until they parse). */
  readonly held: readonly { readonly path: string; readonly message: string }[];
  /** Ready tasks nothing could take, with the reason. */
  readonly unplaced: readonly { readonly taskId: string; readonly reason: string }[];
  /** Ready tasks that can never run as the board stands (a dependency cycle, self or unknown id), with the reason. */
  readonly blocked: readonly { readonly taskId: string; readonly reason: string }[];
  readonly templateErrors: readonly string[];
  /** Cards that do not show what Warren did: moved by a person, deleted, or stopped short of their end column. */
  readonly board: readonly BoardNote[];
  /** True when nothing failed, nothing was held or blocked and every ready task was placed. */
  readonly ok: boolean;
}

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
}

/** A live agent process and what the supervisor holds for it. */
interface LiveAgent {
  readonly account: Account;
  readonly template: AgentTemplate;
  readonly gateway: AgentGateway;
  sandbox: Sandbox | undefined;
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

/** Why the supervisor stops an agent. */
type StopReason = 'sleep' | 'delete' | 'shutdown' | 'operator' | 'unresponsive' | 'watchdog';

type QueuedEvent =
  | { kind: 'result'; delivery: Delivery<ResultMessage>; done: () => void }
  | { kind: 'hello'; agent: string }
  | { kind: 'acked'; agent: string; taskId: string; attempt: number }
  | { kind: 'exit'; agent: string; exit: SandboxExit };

const SUPERVISOR = 'supervisor';
/** How long an execution may wait for its agent's ack, or its result, before it is chased, in ms. */
const CHASE_AFTER_MS = 5_000;
/** Assignments published to the broker at once. */
const PUBLISH_CONCURRENCY = 32;
/** Board files written at once by a flush. */
const BOARD_WRITE_CONCURRENCY = 16;
/** How often queue positions are recorded while assignments are being made, in ms. */
const QUEUE_REFRESH_MS = 250;
/** How often the home of an agent running a task is measured, in ms. */
const HOME_SCAN_MS = 1_000;
/** Least interval between two statfs of the state directory's (and the homes') filesystem, in ms. */
const DISK_READ_MS = 100;
/** Consecutive spawn failures after which a template is not tried again in this run. */
const MAX_SPAWN_FAILURES = 5;
/** How long an idle run until idle waits for unacknowledged results (the consumers' 30 s ack wait and a margin), in ms. */
const RESULTS_SETTLE_MS = 40_000;

/**
 * The Warren supervisor: watches the board, plans assignments on each tick of the ECS world,
 * spawns sandboxed agents under their own accounts, moves assignments and results over NATS
 * JetStream, asks the policy before every assignment and message, and records every decision and
 * state change in the audit trail. Durable state (tasks, executions, agents) is in SQLite: an
 * execution is committed before it is published (the `pending` state is the outbox) and a board
 * write is committed as `pending` before the file is written, so a crash loses neither.
 */
export class Supervisor {
  private stateValue: SupervisorState = SupervisorState.starting;
  private readonly world: AgentWorld = createAgentWorld();
  private readonly live = new Map<string, LiveAgent>();
  private readonly events: QueuedEvent[] = [];
  private readonly spawning = new Set<string>();
  /** Per template: consecutive agents that failed to start, why the last did, and when to try again. */
  private readonly spawnFailures = new Map<string, { count: number; reason: string; nextAtMs: number }>();
  private readonly reportedErrors = new Set<string>();
  private readonly reportedDenials = new Set<string>();
  /** When each open execution (`taskId:attempt`) was last published or chased, in ms. */
  private readonly sentAt = new Map<string, number>();
  /** Executions (`taskId:attempt`) an operator asked to cancel: their `cancelled` result is final. */
  private readonly cancelRequested = new Set<string>();
  private readonly succeeded: string[] = [];
  private readonly failedTasks: { taskId: string; reason: string }[] = [];
  private board: BoardSnapshot | undefined;
  private availability: BoardAvailability | undefined;
  /** Ready tasks blocked by their dependencies (made with the first board). */
  private blocked: BlockedTaskReport | undefined;
  private boardDirty = true;
  /** Whether the board changed since parents were last checked for completion. */
  private parentsDirty = true;
  /** When queue positions were last recorded, in ms (see {@link recordQueue}). */
  private queueRecordedMs = 0;
  /** Files the watcher reported since the last refresh; a refresh reads only these when it can. */
  private readonly changedPaths = new Set<string>();
  private fullReload = true;
  /** The board's tasks by id (rebuilt with each snapshot). */
  private taskById = new Map<string, Task>();
  /** Index of each task in `board.tasks`, by id. */
  private taskIndex = new Map<string, number>();
  /** The board write running in the background, if any (see {@link startBoardFlush}). */
  private boardFlush: Promise<void> | undefined;
  /** The last plan of every ready task (not only the most urgent; see planMostUrgent). */
  private lastPlan: Plan | undefined;
  /** Ready tasks left unassigned by the last plan. */
  private readyWaiting = 0;
  /** The planner's view of each task version (see {@link plannerTask}). */
  private readonly plannerTasks = new WeakMap<Task, PlannerTask>();
  /** Whether this tick's plan covered only the most urgent ready tasks. */
  private planWasPartial = false;
  /** When a run until idle found the board idle but results still unacknowledged on the broker (ms since the epoch). */
  private settlingSinceMs: number | undefined;
  /** The running tick's start (ms since the epoch) and the step it awaits, for {@link inspect}. */
  private readonly tickProgress: TickProgress = { startedMs: undefined, step: 'idle' };
  /** Purges of a dead agent's queued assignments still running, by agent: a new start of that name waits for its own. */
  private readonly exitPurges = new Map<string, Promise<void>>();
  /** Checks the consumers of executions that wait too long for messages a broker restart stranded. */
  private readonly strandedWatch: StrandedWatch;
  private loop: TickLoop | undefined;
  private watcher: BoardWatcher | undefined;
  private results: Subscription | undefined;
  private stopRequested: ((reason: string) => void) | undefined;
  private runPromise: Promise<RunSummary> | undefined;
  /**
   * Distinguishes this supervisor's sandboxes (cgroup names, hostnames) from another supervisor's
   * on the same host: the first 6 hex digits of sha256(state directory), prefixed with `w`.
   */
  private readonly instanceTag: string;
  /** The free-space reserve of the state directory's filesystem. */
  private readonly diskReserve: DiskReserve;
  /** Measures the homes of agents running tasks against their templates' `homeLimit`. */
  private readonly homeWatch: HomeWatch;
  /** Finds the agent to stop when a filesystem its home shares runs out of space. */
  private readonly diskPressure: DiskPressure;
  /** People's edits of the board during a run (moves, deletions) and where cards stopped. */
  private readonly boardEdits: BoardEdits;

  private constructor(
    readonly config: SupervisorConfig,
    private readonly options: SupervisorCreateOptions,
    private readonly db: SqliteDatabase,
    private readonly state: StateStore,
    private readonly audit: AuditTrail,
    private readonly accounts: AccountStore,
    private readonly policy: PolicyEnforcer,
    private readonly templates: ReadonlyMap<string, AgentTemplate>,
    private readonly templateErrors: readonly TemplateError[],
    private readonly nats: EmbeddedNatsServer | undefined,
    private readonly broker: Broker,
    private readonly log: Logger,
  ) {
    this.instanceTag = instanceTag(config.stateDir);
    this.diskReserve = new DiskReserve(config.stateDir, config.diskReserve, DISK_READ_MS, join(config.stateDir, 'disk-reserve'));
    this.diskPressure = new DiskPressure({ stateDir: config.stateDir, homeRoot: config.homeRoot, everyMs: DISK_READ_MS });
    this.homeWatch = new HomeWatch(HOME_SCAN_MS, (home, usedBytes) => this.stopForDisk(home.agent, `home over its ${formatBytes(home.limitBytes)} limit (${formatBytes(usedBytes)} used)`, usedBytes, home.limitBytes));
    this.boardEdits = new BoardEdits({
      state,
      log,
      record: (entry) => this.record(entry),
      cancelExecution: (taskId, attempt, agent, reason) => {
        const live = this.live.get(agent);
        if (!live?.gateway.connected) return false;
        this.cancelRequested.add(`${taskId}:${attempt}`);
        live.gateway.cancel(taskId, attempt, reason);
        return true;
      },
    });
    this.strandedWatch = new StrandedWatch({
      broker,
      logger: log.child({ component: 'stranded' }),
      onRepaired: (consumer, repair) => {
        this.record({ actor: SUPERVISOR, action: 'broker.consumer_remade', object: `consumer:${consumer}`, details: { stranded: repair.stranded, reason: repair.reason } });
        this.loop?.requestTick();
      },
    });
  }

  /**
   * Checks the host, opens the state database, loads the policy and templates, cleans up what a
   * previous run left (cgroups, runner sockets), starts or connects to NATS and sets up the streams.
   * Nothing is assigned until {@link run}.
   * @throws {MissingCapabilityError} if root, bwrap, setpriv or nats-server is missing.
   * @throws {PolicyLoadError} if a policy file is broken (naming file and line).
   * @throws {ConfigError} if there is no valid template at all.
   */
  static async create(config: SupervisorConfig, options: SupervisorCreateOptions): Promise<Supervisor> {
    const log = options.logger;
    const host = await probeHost();
    let policyAudit: AuditTrail | undefined;
    // A decision Casbin cannot make denies the request (logged and audited), never stops the run.
    const policy = failClosed(await loadPolicy({
      modelPath: join(config.policiesDir, 'model.conf'),
      policyPath: join(config.policiesDir, 'policy.csv'),
      logger: log.child({ component: 'policy' }),
    }), (failed) => reportFailedDecision(log, policyAudit, failed));
    const mapping = config.boardMappingPath ? await loadMappingFile(config.boardMappingPath) : undefined;
    if (mapping) await checkMappingApplies(config.boardDir, config.boardFormat, mapping);
    const { templates, errors: templateErrors } = await loadTemplates(config.agentsDir, config.root);
    for (const error of templateErrors) log.error({ code: error.code }, error.message);
    if (templates.size === 0) {
      throw new ConfigError(relative(config.root, config.agentsDir) || 'agents', 'no valid agent template');
    }
    for (const template of templates.values()) checkMounts(config, template);
    // Full isolation unless every template asks, by name, for a weaker mode.
    assertIsolation(host, [...templates.values()].every((t) => t.isolation !== 'full') ? 'unsafe-no-cgroups' : 'full');

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
      policyAudit = audit;
      const accounts = openAccounts(db, {
        homeRoot: config.homeRoot,
        skeletonDir: config.skeletonDir,
        uidMin: config.uidMin,
        uidMax: config.uidMax,
      });
      const stale = await removeStaleCgroups();
      await removeExecLeftovers(config.stateDir, log);
      // Home images a killed run left mounted (after the cgroups: nothing may still use them).
      await mkdir(config.homeRoot, { recursive: true, mode: 0o755 });
      const staleMounts = await removeStaleMounts(config.homeRoot);
      await rm(join(config.stateDir, 'run', 'agents'), { recursive: true, force: true });
      for (const agent of state.agents()) {
        if (agent.state !== 'stopped' && agent.state !== 'sleeping') {
          state.putAgent({ ...agent, state: 'stopped', pid: null, stoppedMs: Date.now(), lastExit: 'supervisor restarted' });
        }
      }
      const { nats, broker } = await openBroker(config, log, (subject, error) => {
        log.warn({ subject, field: error.field, reason: error.reason }, 'broker message rejected');
        audit.append(rejectionEntry(subject, error.field, error.reason));
      });
      if (nats) cleanup.unshift(() => nats.close());
      cleanup.unshift(() => broker.close());
      await broker.ensureStreams();
      const supervisor = new Supervisor(
        config,
        { ...options, ...(mapping ? { mapping } : {}) },
        db,
        state,
        audit,
        accounts,
        policy,
        templates,
        templateErrors,
        nats,
        broker,
        log,
      );
      supervisor.record({
        actor: SUPERVISOR,
        action: 'supervisor.start',
        object: 'supervisor',
        details: {
          mode: options.mode,
          board: config.boardDir,
          nats: config.natsUrl ? 'external' : 'embedded',
          templates: [...templates.keys()],
          staleCgroupsRemoved: stale.length,
          staleMountsRemoved: staleMounts.length,
        },
      });
      for (const error of templateErrors) supervisor.record(inputRejected({ kind: 'template', path: error.path, line: error.line, message: error.message }));
      return supervisor;
    } catch (error) {
      for (const close of cleanup) await close().catch(() => undefined);
      throw error;
    }
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
    return {
      state: this.stateValue,
      tick: { runningForMs: this.tickProgress.startedMs === undefined ? null : Date.now() - this.tickProgress.startedMs, step: this.tickProgress.step },
      agents: [...this.live.entries()].map(([name, a]) => ({
        name,
        ready: a.ready,
        stopping: a.stopping ?? null,
        load: agentView(this.world, name)?.load ?? 0,
        connected: a.gateway.connected,
        sandboxPid: a.sandbox?.pid ?? null,
      })),
      spawning: [...this.spawning],
      spawnFailures: Object.fromEntries(this.spawnFailures),
      queuedEvents: this.events.length,
      boardDirty: this.boardDirty,
      boardFlushRunning: this.boardFlush !== undefined,
      readyWaiting: this.readyWaiting,
      planWasPartial: this.planWasPartial,
      lastPlan: this.lastPlan ? { assignments: this.lastPlan.assignments.length, spawns: this.lastPlan.spawns.length, unplaced: this.lastPlan.unplaced.length } : null,
    };
  }

  /** Asks the supervisor to stop: no more assignments, agents stopped, broker and database closed. */
  shutdown(reason = 'shutdown requested'): void {
    this.stopRequested?.(reason);
  }

  private async runInner(): Promise<RunSummary> {
    this.stateValue = SupervisorState.running;
    const stopped = new Promise<string>((resolve) => {
      this.stopRequested = resolve;
    });
    let fatal: unknown;
    try {
      await this.refreshBoard(Date.now());
      // A run until idle with no board to read would wait forever for one.
      if (!this.board && this.options.mode === 'until-idle') {
        throw new ConfigError(this.config.boardDir, 'the board cannot be read (see the message above); nothing to run');
      }
      this.watcher = watchBoard(
        this.config.boardDir,
        (event) => {
          for (const path of event.paths) this.changedPaths.add(path);
          if (event.paths.length === 0) this.fullReload = true;
          this.boardDirty = true;
          this.loop?.requestTick();
        },
        {
          rescanIntervalMs: this.config.boardRescanMs,
          debounceMs: 5,
          ...(this.board ? { paths: boardWatchPaths(this.board) } : {}),
        },
      );
      // Results handed to a previous, killed supervisor wait out their ack wait before the broker
      // offers them again; a fresh consumer gets them at once.
      await this.broker.resetResultsConsumer();
      this.results = await this.broker.consumeResults(
        (delivery) =>
          new Promise<void>((done) => {
            this.events.push({ kind: 'result', delivery, done });
            this.loop?.requestTick();
          }),
      );
      await this.reconcile(Date.now());
      this.loop = createTickLoop({
        intervalMs: this.config.tickIntervalMs,
        tick: (nowMs) => trackTick(this.tickProgress, nowMs, () => this.tick(nowMs)),
        logger: this.log.child({ component: 'tick' }),
        onError: (error: unknown) => {
          fatal ??= error;
          this.options.onFatal?.(error);
          this.shutdown('fatal error');
        },
      });
      this.loop.requestTick();
      const reason = await stopped;
      this.log.info({ reason }, 'stopping');
    } catch (error) {
      fatal ??= error;
      this.options.onFatal?.(error);
    }
    this.stateValue = SupervisorState.stopping;
    await this.close().catch((error: unknown) => {
      this.log.error({ err: error }, 'cannot close cleanly');
      fatal ??= error;
    });
    if (fatal) {
      this.stateValue = SupervisorState.failed;
      throw fatal;
    }
    this.stateValue = SupervisorState.stopped;
    return this.summary();
  }

  /** One tick: read the board if it changed, apply queued events, publish, plan, assign, tend agents. */
  private async tick(nowMs: number): Promise<void> {
    if (this.stateValue !== SupervisorState.running) return;
    // While a board write runs, the watcher reports Warren's own files before the write has
    // recorded their new bytes: re-read after it, when those echoes cost no parse.
    if (this.boardDirty && !this.boardFlush) await step(this.tickProgress, 'refreshBoard', this.refreshBoard(nowMs));
    await step(this.tickProgress, 'checkResultWorkspaces', this.checkResultWorkspaces());
    await step(this.tickProgress, 'applyEvents', this.applyEvents(nowMs));
    if (this.config.crashAt === CrashPoint.taskRunning && this.state.tasks().some((t) => t.state === TaskState.running && nowMs - t.updatedMs >= 300)) {
      crashNow();
    }
    this.processCommands(nowMs);
    this.checkLiveness(nowMs);
    this.runWatchdog(nowMs);
    this.homeWatch.scan(this.busyHomes(), nowMs);
    this.relieveDisk(nowMs);
    const mayStartWork = this.diskAllowsWork(nowMs);
    await step(this.tickProgress, 'publishPending', this.publishPending());
    this.strandedWatch.check(this.state.openAssignments(), nowMs, (agent) => this.live.get(agent)?.ready === true);
    this.startBoardFlush();
    let plan!: Plan;
    // Planning writes new task rows and queue positions, then the tick's assignments: one
    // transaction for all of them, so one fsync however many there are (group commit).
    this.transaction(() => {
      plan = this.plan(nowMs);
      if (mayStartWork) for (const a of plan.assignments) this.assign(a.taskId, a.agent, nowMs);
    });
    const wanted = plan;
    if (!mayStartWork) plan = { ...plan, assignments: [], spawns: [] };
    if (plan.assignments.length > 0) this.crashAt(CrashPoint.assignCommitted);
    if (plan.assignments.length > 0) {
      await this.publishPending();
      this.startBoardFlush();
    }
    for (const spawn of plan.spawns) this.startAgent(spawn.template, nowMs);
    this.readyWaiting -= plan.assignments.length;
    if (mayStartWork) this.fillWarmPools(nowMs);
    await step(this.tickProgress, 'completeParents', this.completeParents(nowMs));
    await step(this.tickProgress, 'tendLifecycles', this.tendLifecycles(nowMs));
    // A plan of the most urgent tasks alone says nothing of the others: the run's summary and
    // the idle check wait for a full one (at most QUEUE_REFRESH_MS later).
    if (this.planWasPartial) return;
    this.lastPlan = plan;
    // Below the disk reserve the run still ends once nothing waits to start.
    if (this.options.mode === 'until-idle' && this.isIdle(mayStartWork ? plan : wanted)) {
      if (await step(this.tickProgress, 'resultsSettled', this.resultsSettled(nowMs))) this.shutdown('board is idle');
    } else {
      this.settlingSinceMs = undefined;
    }
  }

  /**
   * Whether the broker holds no unacknowledged result for this supervisor, so that a run until
   * idle may end. Results whose acknowledgements a killed broker lost stay unacknowledged until
   * the results consumer's ack wait (30 s) and are then delivered again, applied as duplicates and
   * acknowledged by the tick. Gives up after {@link RESULTS_SETTLE_MS} of waiting (with a warning):
   * the next start applies whatever is left, as {@link reconcile} does.
   */
  private async resultsSettled(nowMs: number): Promise<boolean> {
    let backlog: number;
    try {
      backlog = await this.broker.resultsBacklog();
    } catch (error) {
      this.log.warn({ err: error }, 'cannot read the results backlog; waiting before the run ends');
      backlog = -1;
    }
    if (backlog === 0) {
      this.settlingSinceMs = undefined;
      return true;
    }
    if (this.settlingSinceMs === undefined) {
      this.settlingSinceMs = nowMs;
      this.log.info({ backlog }, 'the board is idle; waiting for the broker to deliver unacknowledged results again before the run ends');
    }
    if (nowMs - this.settlingSinceMs < RESULTS_SETTLE_MS) return false;
    this.log.warn({ backlog, waitedMs: nowMs - this.settlingSinceMs }, 'ending with results the broker still holds unacknowledged; the next start applies them');
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Recovery

  /**
   * Brings state left by a previous run (which may have been killed at any point) in line before
   * the first tick: results already on the broker are applied first (waiting up to 5 s for the
   * consumer's backlog to empty), then executions still open belong to agents that died with that
   * run, so they are finished as lost and their tasks put back to ready (or failed once attempts
   * are used up), and their queued assignments are purged so no dead execution runs later. Before
   * that, a card a person moved while Warren was stopped keeps their column: its execution is
   * cancelled and its pending board write dropped (see BoardEdits.applyMoves); it runs again only
   * when they moved it to the ready column. Half
   * written board files are removed. One `supervisor.recovered` audit row says what was done.
   */
  private async reconcile(nowMs: number): Promise<void> {
    let resultsApplied = 0;
    const deadline = Date.now() + 5_000;
    for (;;) {
      const applied = this.events.filter((e) => e.kind === 'result').length;
      await this.applyEvents(Date.now());
      resultsApplied += applied;
      if ((await this.broker.resultsBacklog()) === 0 || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // A person's move of a card while Warren was stopped wins over the state Warren left.
    let moved: AssignmentRow[] = [];
    if (this.board) {
      const board = this.board;
      this.transaction(() => {
        moved = this.boardEdits.applyMoves(board.tasks, board.config.roles, new Map(), nowMs, true);
      });
    }
    const orphans = this.state.openAssignments();
    const requeued: string[] = [];
    const failed: string[] = [];
    this.transaction(() => {
      for (const a of orphans) {
        this.state.finishAssignment(a.taskId, a.attempt, { outcome: 'lost', exitCode: null, summary: 'the supervisor stopped during this execution', outputs: [] }, nowMs);
        const reason = `lost when the supervisor stopped during attempt ${a.attempt} on ${a.agent}`;
        const settled = this.settleTask(a.taskId, a.attempt, 'lost', reason, nowMs, this.templateOf(a.agent));
        if (settled === 'retry') requeued.push(a.taskId);
        else if (settled !== undefined) failed.push(a.taskId);
      }
    });
    let assignmentsPurged = 0;
    for (const agent of new Set([...orphans, ...moved].map((a) => a.agent))) {
      assignmentsPurged += await this.broker.purgeAssignments(agent);
    }
    const tempFiles = removeStaleTempFiles(join(this.config.boardDir, 'tasks'), unlinkSync);
    this.record({
      actor: SUPERVISOR,
      action: 'supervisor.recovered',
      object: 'supervisor',
      details: {
        resultsApplied,
        lostExecutions: orphans.map((a) => `${a.taskId}:${a.attempt}`),
        movedOnTheBoard: moved.map((a) => `${a.taskId}:${a.attempt}`),
        requeued,
        failed,
        assignmentsPurged,
        tempFilesRemoved: tempFiles,
        pendingBoardWrites: this.state.pendingBoardTasks().length,
      },
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Board

  private async refreshBoard(nowMs: number): Promise<void> {
    this.boardDirty = false;
    const changed = [...this.changedPaths];
    this.changedPaths.clear();
    const full = this.fullReload || !this.board || (this.board.format ?? 'warren') !== 'warren';
    this.fullReload = false;
    let snapshot: BoardSnapshot;
    try {
      snapshot = full
        ? await loadBoard(this.config.boardDir, {
            ...(this.config.boardFormat ? { format: this.config.boardFormat } : {}),
            ...(this.options.mapping ? { mapping: this.options.mapping } : {}),
            keepPathOf: this.keepPathOf,
          })
        : await refreshWarrenBoard(this.board!, changed, { keepPathOf: this.keepPathOf });
    } catch (error) {
      if (this.boardAvailability().noteFailure(nowMs)) return;
      const key = `config:${(error as Error).message}`;
      if (!this.reportedErrors.has(key)) {
        this.reportedErrors.add(key);
        this.log.error({ err: error }, 'cannot read the board config; keeping the last good board');
        this.record({ actor: SUPERVISOR, action: 'board.error', object: 'board', details: { message: (error as Error).message } });
      }
      return;
    }
    this.boardAvailability().noteBack(nowMs);
    const previous = this.board;
    if (snapshot === previous) return;
    const previousById = this.taskById;
    this.setBoard(snapshot);
    for (const error of snapshot.errors) this.reportHeld(error);
    (this.blocked ??= new BlockedTaskReport(this.log, (entry) => this.record(entry))).update(snapshot);
    this.reportProcessRules(previous, snapshot);
    const done = snapshot.config.roles.done;
    const changedSet = new Set(changed);
    for (const task of full ? snapshot.tasks : snapshot.tasks.filter((t) => changedSet.has(t.path))) {
      const row = this.state.task(task.id);
      if (!row) continue;
      // A person moved a finished task back to ready: run it again.
      if (isTerminal(row.state) && row.boardSync === 'clean' && task.status === snapshot.config.roles.ready && task.hash !== row.boardHash) {
        this.transaction(() => {
          this.state.putTask({ ...row, state: TaskState.ready, agent: null, reason: null, updatedMs: nowMs, notBeforeMs: null, readySinceMs: nowMs });
          this.record({ actor: 'board', action: 'task.requeue', object: `task:${task.id}`, details: { from: row.state, attempt: row.attempt } });
        });
      }
      if (row.state === TaskState.held) {
        this.transaction(() => {
          this.state.putTask({ ...row, state: task.status === done ? TaskState.succeeded : TaskState.ready, reason: null, updatedMs: nowMs });
          this.record({ actor: 'board', action: 'task.release', object: `task:${task.id}`, details: { path: task.relativePath } });
        });
      }
    }
    // After start-up recovery (which applies the moves made while Warren was stopped itself).
    if (this.loop) {
      const examined = full ? snapshot.tasks : snapshot.tasks.filter((t) => changedSet.has(t.path));
      this.transaction(() => this.boardEdits.applyMoves(examined, snapshot.config.roles, previousById, nowMs));
      this.boardEdits.reportDeletedCards(this.taskById, snapshot.errors);
    }
  }

  /**
   * The file that keeps an id several files use: the file of the task Warren knows by that id (the
   * one it ran or runs), so a file added later with that id is the duplicate whatever its name.
   */
  private readonly keepPathOf = (id: string): string | undefined => this.state.task(id)?.path;

  /**
   * Reports what people did against the board's process: moves its transition rules forbid (Warren
   * cannot undo an edit; it records the rule that forbids it) and columns already over their WIP
   * limit (nothing more is pulled into them until they are under). Each is audited once.
   */
  private reportProcessRules(previous: BoardSnapshot | undefined, snapshot: BoardSnapshot): void {
    if (previous) {
      for (const move of illegalMoves(previous, snapshot)) {
        this.log.warn({ taskId: move.taskId }, move.message);
        this.record({ actor: 'board', action: 'board.illegal_move', object: `task:${move.taskId}`, details: { message: move.message } });
      }
    }
    this.reportWip(snapshot);
  }

  /** Audits, once per count, each column (or assignee) over its WIP limit. */
  private reportWip(snapshot: BoardSnapshot): void {
    for (const wip of wipStatus(snapshot)) {
      const key = `wip:${wip.kind}:${wip.name}:${wip.count}`;
      if (!wip.over || this.reportedErrors.has(key)) continue;
      this.reportedErrors.add(key);
      this.log.warn({ column: wip.name, count: wip.count, limit: wip.limit }, wip.message);
      this.record({ actor: 'board', action: 'board.wip_over', object: `${wip.kind}:${wip.name}`, details: { count: wip.count, limit: wip.limit, message: wip.message } });
    }
  }

  /** Marks parents done whose subtasks are all done (unless the board config turns that off). */
  private async completeParents(nowMs: number): Promise<void> {
    if (!this.board || !this.parentsDirty) return;
    this.parentsDirty = false;
    const board = this.board;
    for (const { parentId, subtaskIds } of parentsToComplete(board)) {
      const parent = this.taskById.get(parentId);
      if (!parent || parent.status === board.config.roles.done) continue;
      const now = new Date(nowMs).toISOString();
      try {
        const { hash } = await updateTask(board, parent, { status: board.config.roles.done, completed: now, updated: now, result: `all ${subtaskIds.length} subtasks done` }, { expectedHash: parent.hash });
        const updated = { ...parent, hash, status: board.config.roles.done };
        this.taskById.set(parentId, updated);
        const index = board.tasks.indexOf(parent);
        if (index !== -1) (board.tasks as Task[])[index] = updated;
        this.record({ actor: SUPERVISOR, action: 'task.parent_done', object: `task:${parentId}`, details: { subtasks: subtaskIds } });
      } catch (error) {
        if (error instanceof TaskConflictError) {
          this.changedPaths.add(parent.path);
          this.boardDirty = true;
        } else {
          this.parentsDirty = true;
          this.log.warn({ taskId: parentId, err: error }, 'cannot mark the parent done');
        }
      }
    }
  }

  /** Whether the board folder is there (made on first use); see {@link BoardAvailability}. */
  private boardAvailability(): BoardAvailability {
    return (this.availability ??= new BoardAvailability(this.config.boardDir, this.log));
  }

  private setBoard(snapshot: BoardSnapshot): void {
    this.board = snapshot;
    this.parentsDirty = true;
    this.taskById = new Map(snapshot.tasks.map((t) => [t.id, t]));
    this.taskIndex = new Map(snapshot.tasks.map((t, i) => [t.id, i]));
  }

  /**
   * Puts `updated` (the task as Warren just wrote it over `base`) into the current snapshot, unless
   * the snapshot has since read another version of that task (then the watcher will bring it).
   */
  private replaceTask(base: Task, updated: Task): void {
    if (this.taskById.get(base.id)?.hash !== base.hash) return;
    this.taskById.set(base.id, updated);
    const index = this.taskIndex.get(base.id);
    if (this.board && index !== undefined && this.board.tasks[index]?.id === base.id) (this.board.tasks as Task[])[index] = updated;
  }

  private reportHeld(error: TaskFileError): void {
    const key = `${error.path}:${error.message}`;
    if (this.reportedErrors.has(key)) return;
    this.reportedErrors.add(key);
    this.log.warn({ path: error.path, line: error.line, field: error.field }, error.message);
    this.record({
      actor: 'board',
      action: 'task.held',
      object: `file:${relative(this.config.boardDir, error.path)}`,
      details: { message: error.message, line: error.line, field: error.field ?? null },
    });
    this.record(inputRejected({ kind: 'task', path: relative(this.config.boardDir, error.path), line: error.line, message: error.message }));
  }

  /** Writes every task whose board file does not yet show its state (the board outbox). */
  /**
   * Starts writing the board rows that are pending, in the background, unless a write is already
   * running: board files are written off the tick's path, one flush at a time, so a slow disk
   * delays the board and never the assignments. A task whose row changes again while a write runs
   * is written once more by the next flush, and one that went from ready to done while the writer
   * was busy gets a single write. When a flush wrote something and more is pending, a tick follows.
   */
  private startBoardFlush(): void {
    if (this.boardFlush || !this.board || this.state.pendingBoardTasks().length === 0) return;
    if (!this.boardAvailability().mayWrite(Date.now())) return;
    this.boardFlush = this.flushBoard().then(
      (wrote) => {
        this.boardFlush = undefined;
        if (wrote > 0) this.parentsDirty = true;
        if (this.boardDirty || (wrote > 0 && this.state.pendingBoardTasks().length > 0)) this.loop?.requestTick();
      },
      (error: unknown) => {
        this.boardFlush = undefined;
        if (!this.boardAvailability().noteFailure(Date.now())) this.log.error({ err: error }, 'cannot write the board; will retry');
      },
    );
  }

  /** Waits for the background board write, then writes whatever is still pending. */
  private async drainBoard(): Promise<void> {
    await this.boardFlush;
    await this.flushBoard();
  }

  /**
   * Writes each pending task row's state to its board file (owned fields only) and records the
   * outcomes. Files are independent: up to {@link BOARD_WRITE_CONCURRENCY} are written at once, each
   * synced, then the board folder is synced once and every outcome is committed in one transaction
   * (a row is marked clean only once its file is durable).
   * @returns how many files were written.
   */
  private async flushBoard(): Promise<number> {
    if (!this.board) return 0;
    const board = this.board;
    const roles = board.config.roles;
    const writes: { row: TaskRow; task: Task; steps: OwnedFieldChanges[] }[] = [];
    for (const row of this.state.pendingBoardTasks()) {
      const task = this.taskById.get(row.id);
      if (!task) {
        // A deleted card: its write has nowhere to go (the result stays in the audit trail).
        if (this.boardEdits.isDeletedCard(row, this.taskById, board.errors)) this.state.putTask({ ...row, boardSync: 'clean' });
        continue;
      }
      const now = new Date().toISOString();
      const changes =
        row.state === TaskState.assigned || row.state === TaskState.running
          ? { status: roles.in_progress, assignee: row.agent, started: now, updated: now }
          : row.state === TaskState.succeeded
            ? { status: roles.done, result: row.reason ?? 'succeeded', completed: now, updated: now }
            : isTerminal(row.state)
              ? { status: roles.failed, result: row.reason ?? row.state, completed: now, updated: now }
              : row.reason
                ? { status: roles.ready, assignee: null, result: `attempt ${row.attempt}: ${row.reason}`, updated: now }
                : { status: roles.ready, assignee: null, updated: now };
      if (row.state === TaskState.running && task.status === roles.in_progress && task.assignee === row.agent) {
        this.state.putTask({ ...row, boardSync: 'clean', boardHash: task.hash });
        continue;
      }
      if (this.config.crashAt === CrashPoint.boardWriting && (board.format ?? 'warren') === 'warren') {
        crashDuringWrite(task.path, rewriteOwnedFields(await readFile(task.path, 'utf8'), changes));
      }
      // A task that finished before its card ever showed it in progress moves straight to its end
      // column, unless the board's transitions forbid that: then it goes through in progress.
      const assignedMs = this.state.assignment(row.id, row.attempt)?.assignedMs;
      const steps = this.boardEdits.steps(board, row, task, changes, assignedMs === undefined ? now : new Date(assignedMs).toISOString());
      writes.push({ row, task, steps });
    }
    if (writes.length === 0) return 0;
    const outcomes = await mapLimit(writes, BOARD_WRITE_CONCURRENCY, ({ task, steps }) => this.boardEdits.write(board, task, steps));
    // One folder sync makes every rename above durable.
    await syncDirectories(new Set(writes.map(({ task }) => dirname(task.path))));
    let wrote = 0;
    this.transaction(() => {
      writes.forEach(({ row, task, steps }, i) => {
        const outcome = outcomes[i]!;
        // A Warren file now reads as the task with the changes applied (re-reading it gives the
        // same task, so the watcher's echo of this write costs no parse).
        if (outcome.updated !== task) this.replaceTask(task, outcome.updated);
        // The row may have moved on while the file was written: then it stays pending.
        const latest = this.state.task(row.id) ?? row;
        const unchanged = latest.state === row.state && latest.updatedMs === row.updatedMs && latest.attempt === row.attempt;
        if (outcome.ok) {
          wrote += 1;
          this.state.putTask({ ...latest, boardSync: unchanged ? 'clean' : latest.boardSync, boardHash: outcome.updated.hash });
          for (const changes of steps) this.record({ actor: SUPERVISOR, action: 'board.write', object: `task:${row.id}`, details: { ...changes } });
          return;
        }
        const error = outcome.error;
        if (error instanceof MoveRefusedError) {
          // The board's process rules (transitions, WIP) forbid this move: say so once, keep the
          // state in SQLite, and do not retry it every tick.
          if (unchanged) this.state.putTask({ ...latest, boardSync: 'clean' });
          this.record({ actor: SUPERVISOR, action: 'board.refused', object: `task:${row.id}`, details: { ...steps[steps.length - 1]!, message: error.message } });
          this.log.warn({ taskId: row.id, reason: error.message }, 'board refused the move');
        } else if (error instanceof TaskConflictError) {
          // A person edited the file since we read it: re-read it, then write over the fresh copy.
          this.log.info({ taskId: row.id }, 'task file changed under us; re-reading before writing');
          this.changedPaths.add(task.path);
          this.boardDirty = true;
          this.loop?.requestTick();
        } else if (!this.boardAvailability().noteFailure(Date.now())) {
          this.log.error({ err: error, taskId: row.id }, 'cannot write the task file; will retry');
        }
      });
    });
    // Warren's own moves change the columns' counts too.
    if (wrote > 0 && this.board) this.reportWip(this.board);
    return wrote;
  }

  // ---------------------------------------------------------------------------------------------
  // Planning and assignment

  /** Board tasks that may run now: in the ready column, dependencies done, not in flight, not backing off. */
  private readyTasks(nowMs: number): { task: Task; row: TaskRow }[] {
    if (!this.board) return [];
    const ready: { task: Task; row: TaskRow }[] = [];
    for (const task of this.board.tasks) {
      if (!isReady(task, this.taskById, this.board.config)) continue;
      let row = this.state.task(task.id);
      if (!row) {
        row = {
          id: task.id,
          path: task.path,
          state: TaskState.ready,
          attempt: 0,
          agent: null,
          reason: null,
          boardHash: null,
          boardSync: 'clean',
          updatedMs: nowMs,
          notBeforeMs: null,
          readySinceMs: nowMs,
          queuePosition: null,
          queueReason: null,
        };
        this.state.putTask(row);
      }
      if (row.state !== TaskState.ready || row.boardSync === 'pending') continue;
      if (row.notBeforeMs !== null && row.notBeforeMs > nowMs) continue;
      ready.push({ task, row });
    }
    return ready;
  }

  /**
   * Priority with ageing, so that a stream of urgent work cannot starve a task forever: a task
   * gains one priority level for every `agingMs` it has waited ready (default 5 min). A `low` task
   * (rank 0) that has waited 15 minutes ranks with a fresh `urgent` one (rank 3).
   */
  private effectivePriority(task: Task, row: TaskRow, nowMs: number): number {
    const waitedMs = Math.max(0, nowMs - (row.readySinceMs ?? nowMs));
    return task.priorityRank + Math.floor(waitedMs / this.config.agingMs);
  }

  /**
   * The planner's view of a ready task with its effective priority. Kept per task version (a new
   * parse or write gives a new `Task`) and made again only when ageing raised its priority, so a
   * tick over a long queue allocates nothing for the tasks that did not change.
   */
  private plannerTask(task: Task, row: TaskRow, nowMs: number): PlannerTask {
    const priorityRank = this.effectivePriority(task, row, nowMs);
    const known = this.plannerTasks.get(task);
    if (known?.priorityRank === priorityRank) return known;
    const made = { id: task.id, priorityRank, createdMs: task.createdMs ?? 0, capabilities: task.capabilities };
    this.plannerTasks.set(task, made);
    return made;
  }

  private plan(nowMs: number): Plan {
    const ready = this.readyTasks(nowMs);
    this.readyWaiting = ready.length;
    let inProgress = 0;
    if (this.board) for (const t of this.board.tasks) if (t.status === this.board.config.roles.in_progress) inProgress += 1;
    const wipColumn = this.board?.config.columns.find((c) => c.id === this.board!.config.roles.in_progress);
    const instances = this.instanceCounts();
    const decisions = new Map<string, boolean>();
    // An autodelete agent runs one task in its fresh sandbox, then is deleted.
    const agents = agentSlots(this.world).map((slot) =>
      slot.accepting && this.live.get(slot.name)?.template.lifecycle === 'autodelete' && this.live.get(slot.name)?.tookTask ? { ...slot, accepting: false } : slot,
    );
    const templates = [...this.templates.values()]
      .filter((t) => {
        const failure = this.spawnFailures.get(t.name);
        return !failure || (failure.count < MAX_SPAWN_FAILURES && nowMs >= failure.nextAtMs);
      })
      .map((t) => ({
        name: t.name,
        capabilities: t.capabilities,
        instances: instances.get(t.name) ?? 0,
        maxInstances: t.maxInstances,
        wipLimitPerInstance: t.wipPerInstance,
      }));
    const columnWip = { limit: wipColumn?.wip ?? null, current: inProgress };
    const toReadyTask = ({ task, row }: { task: Task; row: TaskRow }) => this.plannerTask(task, row, nowMs);
    const input = {
      agents,
      templates,
      columnWip,
      isAllowed: (agent: string, template: string, taskId: string) => {
        const sub = agent || `template:${template}`;
        const key = `${sub}\u0000${taskId}`;
        let allowed = decisions.get(key);
        if (allowed === undefined) {
          allowed = this.policy.enforce(sub, `task:${taskId}`, 'assign');
          decisions.set(key, allowed);
          if (!allowed) this.reportDenial(sub, taskId);
        }
        return allowed;
      },
      nowMs,
    };
    // Queue positions are for people reading `warren tasks`: while work is being handed out they
    // are refreshed at most every QUEUE_REFRESH_MS (sorting every waiting task on every tick is
    // what a 20,000-task board cannot afford).
    const queueDue = nowMs - this.queueRecordedMs >= QUEUE_REFRESH_MS;
    // Between queue refreshes, plan the most urgent tasks alone when the free capacity is far
    // smaller than the queue; see planMostUrgent for why the outcome is the full plan's.
    const urgent = queueDue ? undefined : planMostUrgent(ready, toReadyTask, input);
    this.planWasPartial = urgent !== undefined;
    const plan = urgent ?? planAssignments({ ...input, tasks: ready.map(toReadyTask) });
    // Agents still starting count as instances for the planner but offer no slots yet, so the
    // first spawns it asks of a template are the tasks those agents will take once ready: only
    // the spawns beyond them start new agents, side by side.
    const starting = this.startingCounts();
    const spawns = plan.spawns.filter((s) => {
      const waiting = starting.get(s.template) ?? 0;
      if (waiting === 0) return true;
      starting.set(s.template, waiting - 1);
      return false;
    });
    const result: Plan = spawns.length === plan.spawns.length ? plan : { ...plan, spawns };
    if (queueDue) {
      this.queueRecordedMs = nowMs;
      this.recordQueue(plan, ready, nowMs);
    }
    return result;
  }

  /**
   * Keeps each waiting task's `queuePosition` and `queueReason` up to date. The stored positions
   * increase strictly in the order the scheduler would take the tasks (effective priority, then
   * age, then id) but need not be dense: readers number them 1, 2, 3… by stored value
   * ({@link queuePositions}). So a task leaving the queue (assigned, the common case) rewrites no
   * other row; only a task joining out of order, or a change of order or reason, writes rows.
   */
  private recordQueue(plan: Plan, ready: readonly { task: Task; row: TaskRow }[], nowMs: number): void {
    const reasons = new Map(plan.unplaced.map((u) => [u.taskId, u.reason]));
    const spawning = new Set(plan.spawns.flatMap((s) => s.taskIds));
    const waiting = ready
      .filter(({ task }) => reasons.has(task.id) || spawning.has(task.id))
      .sort((a, b) => plannerOrder(this.plannerTask(a.task, a.row, nowMs), this.plannerTask(b.task, b.row, nowMs)));
    let previous = 0;
    for (const { task, row } of waiting) {
      const queueReason = reasons.get(task.id) ?? 'waiting for an agent to start';
      const queuePosition = row.queuePosition !== null && row.queuePosition > previous ? row.queuePosition : previous + 1;
      if (row.queuePosition !== queuePosition || row.queueReason !== queueReason) {
        this.state.putTask({ ...row, queuePosition, queueReason });
      }
      previous = queuePosition;
    }
  }

  /** Instances of each template: live agents and agents being spawned. */
  private instanceCounts(): Map<string, number> {
    const instances = new Map<string, number>();
    const add = (template: string) => instances.set(template, (instances.get(template) ?? 0) + 1);
    for (const agent of this.live.values()) add(agent.template.name);
    for (const name of this.spawning) add(templateOfAgentName(name));
    return instances;
  }

  /** Agents started but not yet ready (their runner has not said hello), by template. */
  private startingCounts(): Map<string, number> {
    const starting = new Map<string, number>();
    const add = (template: string) => starting.set(template, (starting.get(template) ?? 0) + 1);
    for (const name of this.spawning) add(templateOfAgentName(name));
    for (const agent of this.live.values()) if (!agent.ready && !agent.stopping) add(agent.template.name);
    return starting;
  }

  /**
   * Tops up each template's warm pool ({@link AgentTemplate.warmPool}): agents that are starting,
   * or ready with no task (an `autodelete` one that has not had its task), count as warm; more are started, side by side, while the pool is
   * short and the template is under `maxInstances` and not backing off after failed starts. In a
   * run until idle, not once no task is ready.
   */
  private fillWarmPools(nowMs: number): void {
    // A run until idle is about to end once no task waits: agents started now would only be stopped.
    if (this.options.mode === 'until-idle' && this.readyWaiting === 0) return;
    const warm = this.startingCounts();
    const instances = this.instanceCounts();
    for (const agent of this.live.values()) {
      const name = agent.template.name;
      const idle = agent.ready && !agent.stopping && (agentView(this.world, agent.account.name)?.load ?? 0) === 0;
      if (idle && !(agent.template.lifecycle === 'autodelete' && agent.tookTask)) warm.set(name, (warm.get(name) ?? 0) + 1);
    }
    for (const template of this.templates.values()) {
      if (template.warmPool === 0) continue;
      const failure = this.spawnFailures.get(template.name);
      if (failure && (failure.count >= MAX_SPAWN_FAILURES || nowMs < failure.nextAtMs)) continue;
      let count = warm.get(template.name) ?? 0;
      let total = instances.get(template.name) ?? 0;
      for (; count < template.warmPool && total < template.maxInstances; count++, total++) this.startAgent(template.name, nowMs);
    }
  }

  private reportDenial(sub: string, taskId: string): void {
    const key = `${sub}\u0000${taskId}`;
    if (this.reportedDenials.has(key)) return;
    this.reportedDenials.add(key);
    this.record({ actor: SUPERVISOR, action: 'policy.decide', object: `task:${taskId}`, decision: 'deny', details: { sub, act: 'assign' } });
  }

  private assign(taskId: string, agentName: string, nowMs: number): void {
    const task = this.taskById.get(taskId);
    const agent = this.live.get(agentName);
    if (!task || !agent) return;
    const previous = this.state.task(taskId);
    if (previous && previous.state !== TaskState.ready) return;
    const attempt = (previous?.attempt ?? 0) + 1;
    this.transaction(() => {
      this.state.addAssignment(taskId, attempt, agentName, nowMs);
      this.state.putTask({
        id: taskId,
        path: task.path,
        state: TaskState.assigned,
        attempt,
        agent: agentName,
        reason: null,
        boardHash: previous?.boardHash ?? null,
        boardSync: 'pending',
        updatedMs: nowMs,
        notBeforeMs: null,
        readySinceMs: previous?.readySinceMs ?? nowMs,
        queuePosition: null,
        queueReason: null,
      });
      this.record({ actor: SUPERVISOR, action: 'policy.decide', object: `task:${taskId}`, decision: 'allow', details: { sub: agentName, act: 'assign' } });
      this.record({ actor: SUPERVISOR, action: 'task.assign', object: `task:${taskId}`, details: { agent: agentName, attempt } });
    });
    if (!agentView(this.world, agentName)?.load) void this.diskPressure.taskStarted(agentName, agent.account.home);
    setLoad(this.world, agentName, (agentView(this.world, agentName)?.load ?? 0) + 1);
    setStatus(this.world, agentName, AgentStatus.busy, nowMs);
    agent.lastActiveMs = nowMs;
    agent.tookTask = true;
    this.log.info({ taskId, agent: agentName, attempt }, 'task assigned');
  }

  /** Publishes committed executions that are not yet on the broker (the outbox), oldest first. */
  private async publishPending(): Promise<void> {
    const nowMs = Date.now();
    const open = this.state.openAssignments();
    this.chaseLostMessages(open, nowMs);
    const pending = open
      .filter((a) => a.state === 'pending' || (a.state === 'published' && this.isStale(`${a.taskId}:${a.attempt}`, nowMs)))
      .map((a) => ({ a, task: this.taskById.get(a.taskId), template: this.live.get(a.agent)?.template ?? this.templateOf(a.agent) }))
      .filter((p) => p.task !== undefined && p.template !== undefined);
    if (pending.length === 0) return;
    // Publish them side by side (the broker de-duplicates by message id, so order does not
    // matter), then record every acknowledged one in one transaction.
    const published = await mapLimit(pending, PUBLISH_CONCURRENCY, async ({ a, task, template }) => {
      try {
        await this.broker.publishAssignment({
          taskId: a.taskId,
          attempt: a.attempt,
          agent: a.agent,
          title: task!.title,
          body: task!.body,
          ...(task!.command === undefined ? {} : { command: task!.command }),
          fields: jsonSafe(task!.fields),
          timeoutMs: template!.taskTimeoutMs,
          assignedAtMs: a.assignedMs,
        });
        return true;
      } catch (error) {
        this.log.warn({ err: error, taskId: a.taskId }, 'cannot publish an assignment yet; will retry');
        return false;
      }
    });
    this.transaction(() => {
      pending.forEach(({ a }, i) => {
        if (!published[i]) return;
        this.sentAt.set(`${a.taskId}:${a.attempt}`, nowMs);
        if (a.state === 'pending') this.state.markPublished(a.taskId, a.attempt);
      });
    });
    if (published.some(Boolean)) this.crashAt(CrashPoint.assignPublished);
  }

  /** True once an execution has waited {@link CHASE_AFTER_MS} since it was last sent or chased. */
  private isStale(key: string, nowMs: number): boolean {
    const at = this.sentAt.get(key);
    if (at === undefined) {
      this.sentAt.set(key, nowMs);
      return false;
    }
    return nowMs - at >= CHASE_AFTER_MS;
  }

  /**
   * nats-server 2.9 acknowledges a JetStream publish before it reaches the disk, so a broker killed
   * at the wrong moment can lose an assignment or a result that was acknowledged. Published
   * executions that no agent has acknowledged after {@link CHASE_AFTER_MS} are published again (same
   * message id: the broker drops the copy if it still has the original), and for acknowledged ones
   * still without a result, the agent's gateway publishes its result again if it has one.
   */
  private chaseLostMessages(open: readonly AssignmentRow[], nowMs: number): void {
    for (const a of open) {
      if (a.state !== 'acked') continue;
      const key = `${a.taskId}:${a.attempt}`;
      if (!this.isStale(key, nowMs)) continue;
      this.sentAt.set(key, nowMs);
      this.live.get(a.agent)?.gateway.resendResult(a.taskId, a.attempt);
    }
    if (this.sentAt.size > 4 * open.length + 1_000) {
      const keep = new Set(open.map((a) => `${a.taskId}:${a.attempt}`));
      for (const key of this.sentAt.keys()) if (!keep.has(key)) this.sentAt.delete(key);
    }
  }

  private templateOf(agentName: string): AgentTemplate | undefined {
    const row = this.state.agent(agentName);
    return row ? this.templates.get(row.template) : undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Events from the broker and the agents

  private async applyEvents(nowMs: number): Promise<void> {
    for (let event = this.events.shift(); event; event = this.events.shift()) {
      switch (event.kind) {
        case 'result':
        case 'acked': {
          // This event and every result or ack queued right behind it, in order, in one
          // transaction; then the results' broker messages are acknowledged: a burst costs one fsync.
          const batch: (typeof event & { kind: 'result' | 'acked' })[] = [event];
          for (let next = this.events[0]; next && (next.kind === 'result' || next.kind === 'acked'); next = this.events[0]) batch.push(this.events.shift() as (typeof batch)[number]);
          const acks: (() => void)[] = [];
          let started = false;
          this.transaction(() => {
            for (const e of batch) {
              if (e.kind === 'result') acks.push(this.applyResult(e.delivery, nowMs));
              else {
                this.applyAck(e.agent, e.taskId, e.attempt, nowMs);
                started = true;
              }
            }
          });
          if (started) this.crashAt(CrashPoint.taskAcked);
          for (const ack of acks) ack();
          for (const e of batch) if (e.kind === 'result') e.done();
          break;
        }
        case 'hello': {
          const agent = this.live.get(event.agent);
          if (!agent) break;
          agent.ready = true;
          this.spawnFailures.delete(agent.template.name);
          setStatus(this.world, event.agent, AgentStatus.idle, nowMs);
          recordHeartbeat(this.world, event.agent, nowMs);
          this.transaction(() => {
            this.record({ actor: `agent:${event.agent}`, action: 'agent.ready', object: `agent:${event.agent}`, details: { uid: agent.account.uid } });
            this.putAgentRow(event.agent, 'running', nowMs);
          });
          this.log.info({ agent: event.agent, uid: agent.account.uid }, 'agent ready');
          break;
        }
        case 'exit':
          await this.applyExit(event.agent, event.exit, nowMs);
          break;
      }
    }
  }

  /** Records inside the caller's transaction that `agent` took (`taskId`, `attempt`): the task runs. */
  private applyAck(agent: string, taskId: string, attempt: number, nowMs: number): void {
    const row = this.state.task(taskId);
    this.state.setAssignmentState(taskId, attempt, 'acked');
    if (row && row.attempt === attempt && row.state === TaskState.assigned) {
      this.state.putTask({ ...row, state: TaskState.running, updatedMs: nowMs });
    }
    this.record({ actor: `agent:${agent}`, action: 'task.start', object: `task:${taskId}`, details: { attempt } });
  }

  /**
   * Applies one result inside the caller's transaction, once per `(taskId, attempt)`.
   * @returns what to do with the broker message once the transaction has committed (ack it, or
   *   terminate it if it names no known execution).
   */
  private applyResult(delivery: Delivery<ResultMessage>, nowMs: number): () => void {
    const r = delivery.data;
    const assignment = this.state.assignment(r.taskId, r.attempt);
    if (!assignment || assignment.agent !== r.agent) {
      this.log.warn({ taskId: r.taskId, attempt: r.attempt, agent: r.agent }, 'result for an unknown execution; dropped');
      return () => delivery.term('unknown execution');
    }
    const applied = this.state.finishAssignment(r.taskId, r.attempt, { outcome: r.outcome, exitCode: r.exitCode, summary: r.summary, outputs: r.outputs }, nowMs);
    if (!applied) return () => delivery.ack();
    const succeeded = r.outcome === 'succeeded';
    // A runner cancels its tasks when its agent is stopped; unless an operator asked for that
    // cancel, the execution was interrupted, not cancelled, and the task runs again.
    // The same holds for a task process killed by a signal while the supervisor was stopping its
    // agent: the signal may reach the task before the runner hears of the stop.
    const stoppedAgent = this.live.get(r.agent);
    const stopping = stoppedAgent?.stopDetail ?? stoppedAgent?.stopping;
    const cancelledByOperator = r.outcome === 'cancelled' && this.cancelRequested.delete(`${r.taskId}:${r.attempt}`);
    // An OOM kill or the process limit explains a failure better than its output ("Killed").
    const failure = taskFailureOf(stoppedAgent, r.outcome, succeeded || cancelledByOperator);
    const interrupted =
      failure === undefined &&
      ((r.outcome === 'cancelled' && !cancelledByOperator) ||
        (stoppedAgent?.stopping !== undefined && r.outcome !== 'succeeded' && r.signal !== null));
    const reason = succeeded
      ? r.summary.trim() || 'succeeded'
      : interrupted
        ? `interrupted: agent ${r.agent} was stopped${stopping ? ` (${stopping})` : ''}`
        : failure !== undefined && failure === stoppedAgent?.failTasks
          ? `failed: ${failure}`
          : `${failure ? 'failed' : r.outcome}${r.exitCode === null ? '' : ` (exit ${r.exitCode})`}${r.signal ? ` (${r.signal})` : ''}: ${failure ?? r.summary.trim()}`;
    this.settleTask(r.taskId, r.attempt, interrupted ? 'lost' : failure ? 'failed' : r.outcome, oneLine(reason, 500), nowMs, this.templateOf(r.agent));
    this.state.countTaskDone(r.agent);
    this.record({
      actor: `agent:${r.agent}`,
      action: succeeded ? 'task.complete' : 'task.fail',
      object: `task:${r.taskId}`,
      details: { attempt: r.attempt, outcome: r.outcome, exitCode: r.exitCode, durationMs: r.durationMs, outputs: r.outputs },
    });
    this.log.info({ taskId: r.taskId, agent: r.agent, outcome: r.outcome, durationMs: r.durationMs }, 'task finished');
    const agent = this.live.get(r.agent);
    if (agent) {
      const load = Math.max(0, (agentView(this.world, r.agent)?.load ?? 1) - 1);
      setLoad(this.world, r.agent, load);
      if (load === 0) setStatus(this.world, r.agent, AgentStatus.idle, nowMs);
      agent.lastActiveMs = nowMs;
      agent.workedMs = nowMs;
    }
    return () => {
      this.crashAt(CrashPoint.resultCommitted);
      delivery.ack();
    };
  }

  private async applyExit(name: string, exit: SandboxExit, nowMs: number): Promise<void> {
    const agent = this.live.get(name);
    if (!agent) return;
    this.live.delete(name);
    removeAgent(this.world, name);
    await step(this.tickProgress, `applyExit ${name}: gateway.close`, agent.gateway.close());
    this.policy.removeSubject(name);
    const expected = agent.stopping !== undefined;
    const exitText = describeAgentExit(exit, agent.template);
    const open = this.state.openAssignments().filter((a) => a.agent === name);
    this.transaction(() => {
      this.record({
        actor: SUPERVISOR,
        action: expected ? 'agent.stop' : 'agent.exit',
        object: `agent:${name}`,
        details: { exit, reason: agent.stopping ?? 'unexpected', openTasks: open.map((a) => a.taskId) },
      });
      const failTasks = agent.failTasks ?? limitFailureOf(exit, agent.template);
      for (const a of open) {
        if (failTasks) {
          this.state.finishAssignment(a.taskId, a.attempt, { outcome: 'failed', exitCode: null, summary: failTasks, outputs: [] }, nowMs);
          this.settleTask(a.taskId, a.attempt, 'failed', `failed: ${failTasks}`, nowMs, agent.template);
          continue;
        }
        this.state.finishAssignment(a.taskId, a.attempt, { outcome: 'lost', exitCode: null, summary: `agent exited: ${exitText}`, outputs: [] }, nowMs);
        this.settleTask(a.taskId, a.attempt, 'lost', `agent ${name} exited during attempt ${a.attempt} (${exitText})`, nowMs, agent.template);
      }
    });
    if (agent.template.homeQuotaBytes !== null) {
      await releaseHomeImage(agent.account.home).catch((error: unknown) => this.log.error({ err: error, agent: name }, 'cannot unmount the home image'));
    }
    if (open.length > 0) {
      // Its queued assignments belong to executions just settled; a later agent of that name must
      // not run them. Off the tick's path: with the broker away this waits out its timeout, and
      // the next agent of that name purges them again before it consumes (see spawnAgent).
      const purge = this.broker
        .purgeAssignments(name)
        .then(() => undefined, (error: unknown) => this.log.warn({ err: error, agent: name }, 'cannot purge assignments yet; the next start of this agent will'))
        .finally(() => {
          if (this.exitPurges.get(name) === purge) this.exitPurges.delete(name);
        });
      this.exitPurges.set(name, purge);
    }
    if (agent.restartAfterExit) {
      this.startAgent(agent.template.name, nowMs, name);
    }
    if (agent.stopping === 'delete') {
      await this.deleteAccount(name);
    } else {
      this.putAgentRow(name, agent.stopping === 'sleep' ? 'sleeping' : expected ? 'stopped' : 'failed', nowMs, exitText);
    }
    if (!expected && !agent.ready) {
      // It died before its runner said hello: count it against the template, so a template that
      // cannot start is not restarted in a loop.
      // The runner's or the sandbox's own words are in the agent's log: they are the reason.
      const said = lastLogLines(join(this.config.stateDir, 'logs', `${name}.log`));
      this.noteSpawnFailure(agent.template.name, name, `agent ${name} exited before it was ready (${exitText})${said ? `: ${said}` : ''}`, nowMs);
    }
    if (!expected) this.log.warn({ agent: name, exit: exitText }, 'agent exited unexpectedly');
    else this.log.info({ agent: name, reason: agent.stopping }, 'agent stopped');
  }

  /**
   * Decides what an ended execution means for its task, inside the caller's transaction: success;
   * a retry (back to ready after the template's backoff while attempts remain: `failed` and
   * `timed_out` use the template's retry policy, `lost`, an execution whose agent or supervisor
   * died, allows up to `maxAttempts`); or a final failure. Writes the task row (board write pending)
   * and its audit row. A result for an attempt that is no longer the task's latest changes nothing.
   * @returns 'retry', the final state, or undefined if nothing changed.
   */
  private settleTask(
    taskId: string,
    attempt: number,
    outcome: 'succeeded' | 'failed' | 'timed_out' | 'cancelled' | 'lost',
    reason: string,
    nowMs: number,
    template: AgentTemplate | undefined,
  ): 'retry' | TaskState | undefined {
    const row = this.state.task(taskId);
    if (!row || row.attempt !== attempt || isTerminal(row.state) || row.state === TaskState.ready) return undefined;
    const base = { ...row, reason, boardSync: 'pending' as const, updatedMs: nowMs, queuePosition: null, queueReason: null };
    if (outcome === 'succeeded') {
      this.state.putTask({ ...base, state: TaskState.succeeded, notBeforeMs: null });
      this.succeeded.push(taskId);
      return TaskState.succeeded;
    }
    const policy = template?.retry;
    const maxAttempts =
      outcome === 'lost' ? this.config.maxAttempts : outcome === 'cancelled' ? attempt : (policy?.maximumAttempts ?? 1);
    if (attempt < maxAttempts) {
      const delayMs = policy ? retryDelayMs(policy, attempt) : 0;
      this.state.putTask({ ...base, state: TaskState.ready, agent: null, notBeforeMs: nowMs + delayMs, readySinceMs: nowMs });
      this.record({
        actor: SUPERVISOR,
        action: outcome === 'lost' ? 'task.requeue' : 'task.retry',
        object: `task:${taskId}`,
        details: { attempt, outcome, reason, retryInMs: delayMs, maxAttempts },
      });
      return 'retry';
    }
    const state = outcome === 'timed_out' ? TaskState.timedOut : outcome === 'cancelled' ? TaskState.cancelled : TaskState.failed;
    this.state.putTask({ ...base, state, notBeforeMs: null });
    if (outcome === 'lost') {
      this.record({ actor: SUPERVISOR, action: 'task.fail', object: `task:${taskId}`, details: { attempt, outcome, reason } });
    }
    this.failedTasks.push({ taskId, reason });
    return state;
  }

  // ---------------------------------------------------------------------------------------------
  // Agents

  /** Starts (or wakes) one agent of `templateName` (named `name`, or the next free name) in the background. */
  private startAgent(templateName: string, nowMs: number, name?: string): void {
    const template = this.templates.get(templateName);
    if (!template) return;
    name ??= this.pickAgentName(template);
    this.spawning.add(name);
    this.spawnAgent(template, name, nowMs)
      .catch((error: unknown) => {
        this.noteSpawnFailure(template.name, name, (error as Error).message, Date.now());
        this.log.error({ err: error, agent: name, template: template.name }, 'cannot start agent');
        this.record({ actor: SUPERVISOR, action: 'agent.spawn_failed', object: `agent:${name}`, details: { message: (error as Error).message, code: (error as WarrenError).code ?? null } });
      })
      .finally(() => {
        this.spawning.delete(name);
        this.loop?.requestTick();
      });
  }

  /**
   * Counts an agent of `templateName` that could not start or died before it was ready, and backs
   * the template off exponentially: the next start waits min(restartBackoffMs × 2^(n−1), 60 s)
   * after the n-th failure in a row (agents that fail while the template already waits count as
   * the same failure); after {@link MAX_SPAWN_FAILURES} the template is failed for this run (its
   * tasks wait, with the reason). A successful start resets the count.
   */
  private noteSpawnFailure(templateName: string, agent: string, reason: string, nowMs: number): void {
    const failure = this.spawnFailures.get(templateName) ?? { count: 0, reason: '', nextAtMs: 0 };
    // Agents started side by side that fail together are one failed attempt: a failure while the
    // template is already backing off does not count again or lengthen the wait.
    const sameAttempt = failure.count > 0 && nowMs < failure.nextAtMs;
    if (!sameAttempt) failure.count += 1;
    failure.reason = reason;
    const delayMs = Math.min(this.config.restartBackoffMs * 2 ** (failure.count - 1), 60_000);
    if (!sameAttempt) failure.nextAtMs = nowMs + delayMs;
    this.spawnFailures.set(templateName, failure);
    const givenUp = failure.count >= MAX_SPAWN_FAILURES;
    this.record({
      actor: SUPERVISOR,
      action: givenUp ? 'template.failed' : 'agent.crash_loop',
      object: `template:${templateName}`,
      details: { agent, failures: failure.count, reason, ...(givenUp ? {} : { retryInMs: delayMs }) },
    });
    if (givenUp) this.log.error({ template: templateName, reason }, `template failed after ${failure.count} agents could not start`);
  }

  /** A sleeping or stopped account of the template if there is one (woken), else the next free name. */
  private pickAgentName(template: AgentTemplate): string {
    const busy = (name: string) => this.live.has(name) || this.spawning.has(name);
    const existing = this.accounts
      .list()
      .filter((a) => a.template === template.name && !busy(a.name))
      .map((a) => a.name)
      .sort();
    if (existing[0]) return existing[0];
    for (let n = 1; ; n += 1) {
      const name = `${template.name}-${n}`;
      if (!busy(name) && !this.accounts.get(name)) return name;
    }
  }

  private async spawnAgent(template: AgentTemplate, name: string, nowMs: number): Promise<void> {
    const account = this.accounts.get(name) ?? (await this.accounts.create({ name, template: template.name }));
    if (template.homeQuotaBytes !== null) {
      const images = join(this.config.stateDir, 'home-images');
      await mkdir(images, { recursive: true, mode: 0o700 });
      await ensureHomeImage({
        imagePath: join(images, `${name}.ext4`),
        sizeBytes: template.homeQuotaBytes,
        mountPoint: account.home,
        uid: account.uid,
        gid: account.gid,
      });
    }
    const woken = this.state.agent(name)?.state === 'sleeping';
    // Assignments still queued for this name belong to executions already settled (a purge at its
    // last exit may have failed with the broker away): the new agent must not run them.
    await this.exitPurges.get(name);
    await this.broker.purgeAssignments(name).catch((error: unknown) => this.log.warn({ err: error, agent: name }, 'cannot purge old assignments before the start'));
    this.policy.addRoleForSubject(name, `template:${template.name}`);
    const runDir = join(this.config.stateDir, 'run', 'agents', name);
    const homeInSandbox = `/home/${name}`;
    const gateway = await AgentGateway.start({
      identity: { name, template: template.name, uid: account.uid, gid: account.gid, home: homeInSandbox, capabilities: template.capabilities },
      socketDir: join(runDir, 'socket'),
      broker: this.broker,
      logger: this.log.child({ component: 'gateway', agent: name }),
      events: {
        hello: (agent) => this.queue({ kind: 'hello', agent }),
        taskAcked: (agent, taskId, attempt) => this.queue({ kind: 'acked', agent, taskId, attempt }),
        alive: (agent) => recordHeartbeat(this.world, agent, Date.now()),
        disconnected: (agent) => this.log.debug({ agent }, 'agent channel closed'),
        protocolError: (agent, message) =>
          this.record({ actor: `agent:${agent}`, action: 'agent.protocol_error', object: `agent:${agent}`, details: { message } }),
        authorizeMessage: (from, to) => this.authorizeMessage(from, to),
        authorizeAssignment: (agent, subject, taskId, attempt) => {
          const refusal = assignmentRefusal(this.state, agent, taskId, attempt);
          if (refusal) {
            this.log.warn({ subject, agent, taskId, attempt, reason: refusal }, 'broker message rejected');
            this.record(rejectionEntry(subject, 'taskId', refusal, { agent, taskId, attempt }));
          }
          return refusal;
        },
      },
    });
    const live: LiveAgent = {
      account,
      template,
      gateway,
      sandbox: undefined,
      stopping: undefined,
      lastActiveMs: nowMs,
      workedMs: undefined,
      tookTask: false,
      ready: false,
      restartAfterExit: false,
      watch: new AgentLimitWatch(nowMs),
    };
    try {
      const sandbox = await spawnSandbox(
        agentSandboxSpec({
          config: this.config,
          accounts: this.accounts,
          account,
          template,
          sandboxName: `${this.instanceTag}-${name}`,
          argv: ['/usr/bin/node', `${RUNNER_IN_SANDBOX}/dist/main.js`],
          env: {
            WARREN_RUNTIME: JSON.stringify(template.runtime),
            WARREN_MAX_CONCURRENT: String(template.wipPerInstance),
            // Four heartbeats per timeout: one lost or late heartbeat never looks like a dead agent.
            WARREN_HEARTBEAT_MS: String(Math.max(100, Math.floor(this.config.heartbeatTimeoutMs / 4))),
          },
          hostEnv: this.options.env ?? {},
          runDir,
          logPath: join(this.config.stateDir, 'logs', `${name}.log`),
          socketDir: join(runDir, 'socket'),
        }),
        { logger: this.log.child({ component: 'sandbox', agent: name }) },
      );
      live.sandbox = sandbox;
      this.live.set(name, live);
      addAgent(this.world, {
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
      setStatus(this.world, name, AgentStatus.starting, nowMs);
      this.transaction(() => {
        this.putAgentRow(name, 'starting', nowMs, null, sandbox.pid);
        this.record({
          actor: SUPERVISOR,
          action: woken ? 'agent.wake' : 'agent.start',
          object: `agent:${name}`,
          details: { template: template.name, uid: account.uid, gid: account.gid, pid: sandbox.pid, home: account.home, isolation: template.isolation, unsafe: sandbox.unsafe },
        });
      });
      if (sandbox.unsafe) this.log.warn({ agent: name, isolation: template.isolation }, 'UNSAFE agent started: weaker isolation asked for by its template');
      this.log.info({ agent: name, uid: account.uid, sandboxPid: sandbox.pid, woken }, 'agent started');
      void sandbox.exited.then((exit) => this.queue({ kind: 'exit', agent: name, exit }));
    } catch (error) {
      await gateway.close();
      this.policy.removeSubject(name);
      throw error;
    }
  }

  private queue(event: QueuedEvent): void {
    this.events.push(event);
    this.loop?.requestTick();
  }

  private authorizeMessage(from: string, to: string): string | null {
    const allowed = this.policy.enforce(from, `agent:${to}`, 'message');
    this.record({ actor: `agent:${from}`, action: 'policy.decide', object: `agent:${to}`, decision: allowed ? 'allow' : 'deny', details: { act: 'message' } });
    if (!allowed) return `policy denies ${from} sending to ${to}`;
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(to) || !this.accounts.get(to)) return `no agent named ${JSON.stringify(to)}`;
    return null;
  }

  /**
   * The watchdog: reads each agent's cgroup (memory, pids, CPU time) into its ECS `Resources`
   * component and kills, as a whole tree, an agent that stays over its template's thresholds for
   * longer than their grace. The exit kind is `watchdog`, the reason goes to the audit and, through
   * the exit, onto the task.
   */
  private runWatchdog(nowMs: number): void {
    for (const [name, agent] of this.live) {
      const sandbox = agent.sandbox;
      if (!sandbox || agent.stopping) continue;
      const usage = sandbox.usage();
      recordUsage(this.world, name, usage);
      const finding = agent.watch.observe(usage, nowMs, agent.template);
      if (!finding) continue;
      const { detail, reason } = finding;
      this.log.warn({ agent: name, detail, reason }, 'watchdog: killing agent');
      this.record({ actor: SUPERVISOR, action: 'agent.watchdog', object: `agent:${name}`, details: { detail, reason, usage } });
      agent.stopping = 'watchdog';
      agent.stopDetail = `stopped by the watchdog: ${detail}`;
      agent.failTasks = finding.taskFailure;
      setStatus(this.world, name, AgentStatus.stopping, nowMs);
      void sandbox.stop(this.config.killGraceMs, { reason: 'watchdog', detail });
    }
  }

  /** Homes of live agents that run a task (an idle agent's home does not grow). */
  private *busyHomes(): Iterable<WatchedHome> {
    const busy = new Set(this.state.openAssignments().map((a) => a.agent));
    for (const [name, agent] of this.live) {
      if (busy.has(name) && agent.sandbox && !agent.stopping) yield { agent: name, dir: agent.account.home, limitBytes: agent.template.homeLimitBytes };
    }
  }

  /**
   * Measures the workspace (`<home>/work/<task id>`) of each result waiting to be applied: a task
   * that ended faster than the periodic home scan but left more than its home's limit there is
   * stopped for `disk` before its result is applied (which then changes nothing).
   */
  private async checkResultWorkspaces(): Promise<void> {
    const checks = this.events.flatMap((e) => {
      const agent = e.kind === 'result' ? this.live.get(e.delivery.data.agent) : undefined;
      return e.kind === 'result' && agent && !agent.stopping ? [{ name: e.delivery.data.agent, agent, taskId: e.delivery.data.taskId }] : [];
    });
    if (checks.length === 0) return;
    await Promise.all(
      checks.map(async ({ name, agent, taskId }) => {
        if (!/^[^/\0]+$/.test(taskId) || taskId === '.' || taskId === '..') return;
        const limitBytes = agent.template.homeLimitBytes;
        const usage = await homeUsage(join(agent.account.home, 'work', taskId), 20_000, limitBytes + 1);
        if (usage.bytes > limitBytes) {
          this.stopForDisk(name, `home over its ${formatBytes(limitBytes)} limit (the workspace of ${taskId} holds ${formatBytes(usage.bytes)})`, usage.bytes, limitBytes);
        }
      }),
    );
  }

  /**
   * Stops an agent whose home grew past its template's `homeLimit`, or the `offender` that filled a
   * shared filesystem: its open executions fail for good with the reason `disk: <detail>`, then its
   * sandbox is stopped. An offender is frozen first and, when it filled the state directory's
   * filesystem, the space Warren holds back is released before anything is written, so the
   * failure, the audit rows and the other tasks' results can be stored. The files stay in the home.
   */
  private stopForDisk(name: string, detail: string, usedBytes: number, limitBytes: number, offender?: DiskOffender): void {
    const agent = this.live.get(name);
    if (!agent?.sandbox || agent.stopping || this.stateValue !== SupervisorState.running) return;
    const frozen = offender !== undefined && agent.sandbox.freeze();
    if (offender?.filesystem === 'state') this.releaseDiskReserve(detail);
    const nowMs = Date.now();
    const reason = `disk: ${detail}`;
    const open = this.state.openAssignments().filter((a) => a.agent === name);
    const found = offender ? { grownBytes: offender.grownBytes, freeBytes: offender.freeBytes, filesystem: offender.filesystem } : {};
    this.transaction(() => {
      this.record({ actor: SUPERVISOR, action: 'agent.disk', object: `agent:${name}`, details: { detail, usedBytes, limitBytes, ...found, openTasks: open.map((a) => a.taskId) } });
      for (const a of open) {
        if (!this.state.finishAssignment(a.taskId, a.attempt, { outcome: 'failed', exitCode: null, summary: reason, outputs: [] }, nowMs)) continue;
        // No template: a task stopped for its disk use is not retried.
        if (this.settleTask(a.taskId, a.attempt, 'failed', reason, nowMs, undefined) === undefined) continue;
        this.record({ actor: SUPERVISOR, action: 'task.fail', object: `task:${a.taskId}`, details: { attempt: a.attempt, outcome: 'failed', reason } });
        this.log.info({ taskId: a.taskId, agent: name, outcome: 'failed', reason }, 'task finished');
      }
    });
    this.log.warn({ agent: name, detail }, 'disk: stopping agent');
    agent.stopping = 'watchdog';
    agent.stopDetail = `stopped: ${reason}`;
    setStatus(this.world, name, AgentStatus.stopping, nowMs);
    // A frozen sandbox cannot act on SIGTERM: it is killed at once.
    void agent.sandbox.stop(frozen ? 0 : this.config.killGraceMs, { reason: 'watchdog', detail: reason });
    this.loop?.requestTick();
  }

  /**
   * Stops the agent that filled a filesystem its home shares with the state directory or other
   * homes (see DiskPressure). When the state directory's filesystem is full, the busy agents with
   * homes on it are frozen and the space Warren holds back is released at once, before anything
   * is written; the agents not found responsible then go on.
   */
  private relieveDisk(nowMs: number): void {
    this.diskPressure.check(this.diskReserve.check(nowMs), nowMs, {
      busy: () => this.busyHomes(),
      full: (agents, freeBytes) => {
        for (const name of agents) this.live.get(name)?.sandbox?.freeze();
        this.releaseDiskReserve(`the filesystem of the state directory is full (${formatBytes(freeBytes)} free)`);
      },
      stop: (offender) => {
        try {
          this.stopForDisk(offender.agent, offender.detail, offender.usedBytes, offender.limitBytes, offender);
        } catch (error) {
          this.log.error({ err: error, agent: offender.agent }, 'cannot stop the agent that filled the disk');
        }
      },
      resume: (agents) => {
        for (const name of agents) {
          const agent = this.live.get(name);
          if (agent && !agent.stopping) agent.sandbox?.thaw();
        }
      },
    });
  }

  /** Deletes the reserve file (see DiskReserve) so Warren's own writes have room; logs why. */
  private releaseDiskReserve(why: string): void {
    const released = this.diskReserve.release();
    if (released > 0) this.log.warn({ releasedBytes: released }, `disk: ${why}; released the ${formatBytes(released)} held for Warren's own writes`);
  }

  /**
   * Whether new work may start: not while free space on the state directory's filesystem is below
   * the reserve. Each change is logged and audited once (`supervisor.disk_low`, `supervisor.disk_ok`).
   */
  private diskAllowsWork(nowMs: number): boolean {
    const reading = this.diskReserve.check(nowMs);
    if (reading.changed) {
      const details = { stateDir: this.config.stateDir, freeBytes: reading.freeBytes, reserveBytes: reading.reserveBytes };
      const space = `${formatBytes(reading.freeBytes)} free, reserve ${formatBytes(reading.reserveBytes)}`;
      if (reading.low) this.log.error(details, `disk: free space of the state directory's filesystem is below the reserve (${space}); no new work starts until space returns`);
      else this.log.info(details, `disk: free space is above the reserve again (${space}); work resumes`);
      try {
        this.record({ actor: SUPERVISOR, action: reading.low ? 'supervisor.disk_low' : 'supervisor.disk_ok', object: 'supervisor', details });
      } catch (error) {
        this.log.error({ err: error }, 'cannot record the disk reading in the audit trail');
      }
    }
    return !reading.low;
  }

  /** Kills agents that have said nothing for longer than the heartbeat timeout; their tasks are re-queued on exit. */
  private checkLiveness(nowMs: number): void {
    for (const intent of livenessSystem(this.world, { nowMs, heartbeatTimeoutMs: this.config.heartbeatTimeoutMs })) {
      const agent = this.live.get(intent.agent);
      if (!agent || agent.stopping) continue;
      this.log.warn({ agent: intent.agent, reason: intent.reason }, 'agent unresponsive; killing it');
      this.record({ actor: SUPERVISOR, action: 'agent.unresponsive', object: `agent:${intent.agent}`, details: { reason: intent.reason } });
      void this.stopAgent(agent, 'unresponsive');
    }
  }

  /**
   * Executes the operator commands queued in SQLite (`warren agent …`, `warren task …`), oldest
   * first, each once: the policy decides (`sub` = the requesting user, `obj` = `agent:<name>` or
   * `task:<id>`, `act` = the verb), and the outcome is written back for the CLI and audited.
   */
  private processCommands(nowMs: number): void {
    for (const command of this.state.queuedCommands()) {
      let state: 'done' | 'failed' = 'done';
      let outcome: string;
      const [kind, act] = command.kind.split('.') as [string, string];
      const obj = `${kind}:${command.target}`;
      const allowed = this.policy.enforce(command.requestedBy, obj, act);
      this.record({ actor: command.requestedBy, action: 'policy.decide', object: obj, decision: allowed ? 'allow' : 'deny', details: { act } });
      try {
        if (!allowed) throw new WarrenError('WARREN_POLICY_DENIED', `policy denies ${command.requestedBy} ${act} on ${obj}`);
        outcome = this.executeCommand(command, nowMs);
      } catch (error) {
        state = 'failed';
        outcome = (error as Error).message;
      }
      this.transaction(() => {
        this.state.finishCommand(command.id, state, outcome, nowMs);
        this.record({ actor: command.requestedBy, action: `command.${command.kind}`, object: obj, details: { id: command.id, state, outcome } });
      });
      this.log.info({ command: command.kind, target: command.target, state, outcome }, 'operator command');
    }
  }

  /** @returns what was done. @throws {WarrenError} when the command cannot apply. */
  private executeCommand(command: CommandRow, nowMs: number): string {
    const name = command.target;
    const live = this.live.get(name);
    const fail = (message: string): never => {
      throw new WarrenError('WARREN_COMMAND', message);
    };
    switch (command.kind) {
      case CommandKind.agentStop:
      case CommandKind.agentSleep:
      case CommandKind.agentDelete: {
        const why: StopReason = command.kind === CommandKind.agentSleep ? 'sleep' : command.kind === CommandKind.agentDelete ? 'delete' : 'operator';
        if (live) {
          if (live.stopping) return `${name} is already stopping`;
          void this.stopAgent(live, why);
          return `${name} is stopping (${why})`;
        }
        if (!this.accounts.get(name)) fail(`no agent named ${name}`);
        if (command.kind === CommandKind.agentDelete) {
          void this.deleteAccount(name);
          return `${name} deleted`;
        }
        if (command.kind === CommandKind.agentSleep) this.putAgentRow(name, 'sleeping', nowMs);
        return `${name} is not running`;
      }
      case CommandKind.agentStart:
      case CommandKind.agentWake: {
        if (live || this.spawning.has(name)) return `${name} is already running`;
        const account = this.accounts.get(name) ?? fail(`no agent named ${name}`);
        if (!this.templates.has(account.template)) fail(`${name}'s template ${account.template} is not loaded`);
        this.startAgent(account.template, nowMs, name);
        return `${name} is starting`;
      }
      case CommandKind.agentRestart: {
        if (!live) {
          const account = this.accounts.get(name) ?? fail(`no agent named ${name}`);
          this.startAgent(account.template, nowMs, name);
          return `${name} was not running; it is starting`;
        }
        live.restartAfterExit = true;
        void this.stopAgent(live, 'operator');
        return `${name} is restarting`;
      }
      case CommandKind.taskCancel: {
        const row = this.state.task(name) ?? fail(`no task ${name} known to Warren`);
        if (isTerminal(row.state)) fail(`task ${name} has already ended (${row.state})`);
        const open = this.state.openAssignments().find((a) => a.taskId === name && a.attempt === row.attempt);
        if (open && this.live.get(open.agent)?.gateway.connected) {
          this.cancelRequested.add(`${name}:${row.attempt}`);
          this.live.get(open.agent)!.gateway.cancel(name, row.attempt, `cancelled by ${command.requestedBy}`);
          return `cancel sent to ${open.agent}; the task ends when the agent reports`;
        }
        if (open) {
          this.state.finishAssignment(name, row.attempt, { outcome: 'cancelled', exitCode: null, summary: 'cancelled', outputs: [] }, nowMs);
        }
        this.state.putTask({ ...row, state: TaskState.cancelled, reason: `cancelled by ${command.requestedBy}`, boardSync: 'pending', updatedMs: nowMs, queuePosition: null, queueReason: null });
        return `task ${name} cancelled`;
      }
      case CommandKind.taskRetry: {
        const row = this.state.task(name) ?? fail(`no task ${name} known to Warren`);
        if (!isTerminal(row.state)) fail(`task ${name} is ${row.state}; only an ended task can be retried`);
        this.state.putTask({ ...row, state: TaskState.ready, agent: null, reason: `retry requested by ${command.requestedBy}`, boardSync: 'pending', updatedMs: nowMs, notBeforeMs: null, readySinceMs: nowMs });
        return `task ${name} is ready again (attempt ${row.attempt + 1} next)`;
      }
    }
  }

  /** Puts idle `sleep` agents to sleep and stops `autodelete` agents after their task. */
  private async tendLifecycles(nowMs: number): Promise<void> {
    const loads = new Map(agentSlots(this.world).map((s) => [s.name, s.load]));
    const busyAgents = new Set(this.state.openAssignments().map((a) => a.agent));
    for (const [name, agent] of this.live) {
      if (agent.stopping || !agent.sandbox || (loads.get(name) ?? 0) > 0) continue;
      if (busyAgents.has(name)) continue;
      const mode = agent.template.lifecycle;
      if (mode === 'sleep' && nowMs - agent.lastActiveMs >= agent.template.sleepAfterIdleMs) {
        this.stopAgent(agent, 'sleep');
      } else if (mode === 'autodelete' && agent.workedMs !== undefined) {
        this.stopAgent(agent, 'delete');
      }
    }
  }

  private stopAgent(agent: LiveAgent, why: StopReason): Promise<unknown> {
    agent.stopping = why;
    setStatus(this.world, agent.account.name, AgentStatus.stopping, Date.now());
    agent.gateway.requestShutdown(why);
    return agent.sandbox?.stop(this.config.killGraceMs) ?? Promise.resolve();
  }

  private async deleteAccount(name: string): Promise<void> {
    const account = this.accounts.get(name);
    if (account) await releaseHomeImage(account.home).catch(() => false);
    await rm(join(this.config.stateDir, 'home-images', `${name}.ext4`), { force: true });
    await this.accounts.remove(name);
    await this.broker.deleteAgentConsumers(name).catch(() => undefined);
    this.transaction(() => {
      this.state.deleteAgent(name);
      this.record({ actor: SUPERVISOR, action: 'account.delete', object: `agent:${name}`, details: {} });
    });
  }

  private putAgentRow(name: string, state: string, nowMs: number, lastExit: string | null = null, pid?: number): void {
    const previous = this.state.agent(name);
    const account = this.accounts.get(name);
    if (!account) return;
    this.state.putAgent({
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

  // ---------------------------------------------------------------------------------------------
  // Idle, summary, close

  private isIdle(plan: Plan): boolean {
    if (!this.board || this.boardDirty || this.boardFlush || this.events.length > 0 || this.spawning.size > 0) return false;
    if (plan.assignments.length > 0 || plan.spawns.length > 0) return false;
    if (this.state.openAssignments().length > 0) return false;
    // A template backing off after failed starts will try again: not idle yet.
    if ([...this.spawnFailures.values()].some((f) => f.count < MAX_SPAWN_FAILURES)) return false;
    // A task backing off before its next attempt is not idle work; one whose wait is over and
    // that nothing can take (its template failed) is, and the summary says why it waits.
    const nowMs = Date.now();
    const readyColumn = new Set(this.board.tasks.filter((t) => t.status === this.board!.config.roles.ready).map((t) => t.id));
    if (readyColumn.size > 0 && [...readyColumn].some((id) => {
      const row = this.state.task(id);
      return row?.state === TaskState.ready && row.notBeforeMs !== null && row.notBeforeMs > nowMs;
    })) return false;
    if (this.state.pendingBoardTasks().length > 0) return false;
    const loads = new Map(agentSlots(this.world).map((s) => [s.name, s.load]));
    for (const [name, agent] of this.live) {
      // An agent still starting may be about to take a waiting task.
      if (!agent.ready && !agent.stopping) return false;
      if (loads.get(name)) return false;
    }
    return true;
  }

  private summary(): RunSummary {
    const held = (this.board?.errors ?? []).map((e) => ({ path: e.path, message: e.message }));
    const unplaced = (this.lastPlan?.unplaced ?? []).map((u) => {
      const template = [...this.spawnFailures.entries()].find(([, f]) => f.count >= MAX_SPAWN_FAILURES);
      return template ? { taskId: u.taskId, reason: `${u.reason}; template ${template[0]} failed to start: ${template[1].reason}` } : u;
    });
    const templateErrors = [
      ...this.templateErrors.map((e) => e.message),
      ...[...this.spawnFailures].filter(([, f]) => f.count >= MAX_SPAWN_FAILURES).map(([name, f]) => `${name} failed to start: ${f.reason}`),
    ];
    const blocked = [...(this.blocked?.tasks ?? [])];
    return {
      succeeded: [...this.succeeded],
      failed: [...this.failedTasks],
      held,
      unplaced,
      blocked,
      templateErrors,
      board: [...this.boardEdits.notes],
      ok: this.failedTasks.length === 0 && held.length === 0 && unplaced.length === 0 && blocked.length === 0 && templateErrors.length === 0,
    };
  }

  private async close(): Promise<void> {
    await this.loop?.stop();
    await this.strandedWatch.close();
    await this.watcher?.close();
    const stops = [...this.live.values()].map((agent) =>
      agent.stopping ? (agent.sandbox?.exited ?? Promise.resolve()) : this.stopAgent(agent, 'shutdown'),
    );
    const results = await Promise.allSettled(stops);
    for (const r of results) if (r.status === 'rejected') this.log.error({ err: r.reason }, 'agent did not stop cleanly');
    // Apply the exits (and any results that raced them) so the database says what happened.
    await this.applyEvents(Date.now()).catch((error: unknown) => this.log.error({ err: error }, 'cannot apply final events'));
    // Write what the exits changed (tasks put back to ready) while the board is still ours.
    await this.drainBoard().catch((error: unknown) => this.log.error({ err: error }, 'cannot write the board'));
    await this.results?.stop().catch(() => undefined);
    // A result that arrived while the consumer stopped is left unacknowledged for the next run.
    for (const event of this.events.splice(0)) if (event.kind === 'result') event.done();
    for (const agent of this.live.values()) await agent.gateway.close();
    await clearPhantomDeliveries(this.broker, this.state.agents().map((a) => a.name), this.log.child({ component: 'stranded' }));
    try {
      this.record({ actor: SUPERVISOR, action: 'supervisor.stop', object: 'supervisor', details: { succeeded: this.succeeded.length, failed: this.failedTasks.length } });
    } catch (error) {
      this.log.error({ err: error }, 'cannot record the stop in the audit trail');
    }
    const closers: [string, () => Promise<void>][] = [
      ['broker', () => this.broker.close()],
      ['nats-server', () => this.nats?.close() ?? Promise.resolve()],
    ];
    for (const [what, close] of closers) {
      await close().catch((error: unknown) => this.log.error({ err: error }, `cannot close ${what}`));
    }
    this.db.close();
  }

  /** Dies with SIGKILL if this run was told to (fault-injection tests only). */
  private crashAt(point: CrashPoint): void {
    if (this.config.crashAt === point) crashNow();
  }

  private transaction(fn: () => void): void {
    this.db.transaction(fn)();
  }

  private record(entry: AuditEntry): void {
    this.audit.append(entry);
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

/** The template of an instance name `<template>-<n>`. */
function templateOfAgentName(name: string): string {
  return name.slice(0, name.lastIndexOf('-'));
}

/** Runs `fn` over `items`, at most `limit` at a time; results keep the input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) results[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** Frontmatter may hold dates; the broker carries JSON. */
function jsonSafe(fields: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(fields)) as Record<string, unknown>;
}


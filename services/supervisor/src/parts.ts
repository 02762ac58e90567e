import type { Plan } from '@warren/scheduler';
import { AgentHealth } from './agents/health.js';
import { AgentLifecycle, MAX_SPAWN_FAILURES } from './agents/lifecycle.js';
import { BoardEdits } from './board-edits.js';
import { BoardMirror } from './board/mirror.js';
import { BoardWriter } from './board/writer.js';
import type { SupervisorContext } from './context.js';
import { Inbox, type StepTracker } from './executions/inbox.js';
import { Outbox } from './executions/outbox.js';
import { RunTally, Settler } from './executions/settle.js';
import { isIdle, templateBackingOff } from './idle.js';
import type { InspectedAgent, SupervisorInspection } from './inspect.js';
import { OperatorCommands } from './operator/commands.js';
import { Planner } from './planning.js';
import { summarize, type RunSummary } from './run-summary.js';
import { TaskState } from '@warren/registry';
import { StrandedWatch } from './stranded-watch.js';
import { Repositories } from './repositories.js';
import { RuntimeHealth } from './runtime-health.js';
import { MessageService } from './messaging/service.js';
import { messageServiceOptions } from './messaging/wiring.js';

/** The supervisor's stage modules, wired to one another over one context. */
export interface SupervisorParts {
  readonly tally: RunTally;
  readonly settler: Settler;
  readonly agents: AgentLifecycle;
  readonly inbox: Inbox;
  readonly edits: BoardEdits;
  readonly mirror: BoardMirror;
  readonly writer: BoardWriter;
  readonly health: AgentHealth;
  readonly planner: Planner;
  readonly outbox: Outbox;
  readonly commands: OperatorCommands;
  /** Checks the consumers of executions that wait too long for messages a broker restart stranded. */
  readonly stranded: StrandedWatch;
  /** The repositories' mirrors tasks work on. */
  readonly repositories: Repositories;
  /** Whether each template's runtime can run (CLI installed, providers known, repository fetched). */
  readonly runtimes: RuntimeHealth;
  /** Messages between agents (and from people): policy, audit, counts, inboxes, topics, presence. */
  readonly messages: MessageService;
}

/** Builds the stage modules over `ctx`; `track` names the step the tick awaits (see inspect.ts). */
export function assembleParts(ctx: SupervisorContext, track: StepTracker): SupervisorParts {
  const tally = new RunTally();
  const settler = new Settler(ctx, tally);
  // The lifecycle queues agents' events into the inbox, which applies exits through the lifecycle.
  const late: { inbox?: Inbox } = {};
  const messages = new MessageService(messageServiceOptions(ctx));
  ctx.messaging.port = messages;
  const agents = new AgentLifecycle(ctx, settler, (event) => late.inbox!.push(event), (from, to, body) => messages.send(from, { to, body }));
  const theInbox = (late.inbox = new Inbox(ctx, agents, settler, track));
  const edits = new BoardEdits({
    state: ctx.state,
    emit: (event, line) => ctx.emit(event, line),
    cancelExecution: (taskId, attempt, agent, reason) => theInbox.cancel(taskId, attempt, agent, reason),
    executionMoved: (taskId, attempt, reason, nowMs) => ctx.tracing.settled(taskId, attempt, 'cancelled', reason, nowMs, { cardWritten: false }),
  });
  const mirror = new BoardMirror(ctx, edits);
  const writer = new BoardWriter(ctx, mirror, edits);
  const health = new AgentHealth(ctx, agents, settler, theInbox);
  ctx.llm.late.stopForBudget = (taskId, attempt, agent, detail) => void theInbox.stopForBudget(taskId, attempt, agent, detail);
  ctx.llm.late.providerFailed = (taskId, attempt, detail) => theInbox.noteProviderFailure(taskId, attempt, detail);
  const repositories = new Repositories(ctx);
  const runtimes = new RuntimeHealth(ctx, ctx.providers, repositories);
  const planner = new Planner(ctx, mirror, agents, (agent, home) => health.taskStarted(agent, home), repositories, runtimes);
  const stranded = new StrandedWatch({
    broker: ctx.broker,
    logger: ctx.log.child({ component: 'stranded' }),
    emit: (event) => ctx.emit(event),
    onRepaired: () => ctx.requestTick(),
  });
  return {
    tally,
    settler,
    agents,
    inbox: theInbox,
    edits,
    mirror,
    writer,
    health,
    planner,
    outbox: new Outbox(ctx, mirror, agents, repositories),
    commands: new OperatorCommands(ctx, agents, theInbox),
    stranded,
    repositories,
    runtimes,
    messages,
  };
}

/** Whether nothing is left to do in a run until idle, after a tick that planned `plan`; see {@link isIdle}. */
export function idleNow(ctx: SupervisorContext, parts: SupervisorParts, plan: Plan, nowMs: number): boolean {
  const { mirror, agents } = parts;
  const board = mirror.board;
  return isIdle({
    boardLoaded: board !== undefined,
    boardBusy: mirror.dirty || parts.writer.running,
    queuedEvents: parts.inbox.events.length,
    spawning: agents.spawningNames().length,
    plan,
    openExecutions: ctx.state.openAssignments().length,
    templateBackingOff: templateBackingOff(agents.spawnFailures().values(), nowMs, MAX_SPAWN_FAILURES),
    taskBackingOff:
      board !== undefined &&
      board.tasks.some((task) => {
        if (task.status !== board.config.roles.ready) return false;
        const row = ctx.state.task(task.id);
        return row?.state === TaskState.ready && row.notBeforeMs !== null && row.notBeforeMs > nowMs;
      }),
    pendingBoardWrites: ctx.state.pendingBoardTasks().length,
    fetching: parts.repositories.fetching,
    agents: agents.started().map((a) => ({ ready: a.ready, stopping: a.stopping !== null, load: a.load })),
  });
}

/** The run's summary from what the parts hold at the end of the run. */
export function runSummary(ctx: SupervisorContext, parts: SupervisorParts): RunSummary {
  return summarize({
    succeeded: parts.tally.succeeded,
    failed: parts.tally.failed,
    held: (parts.mirror.board?.errors ?? []).map((e) => ({ path: e.path, message: e.message })),
    unplaced: parts.planner.lastPlan?.unplaced ?? [],
    blocked: parts.mirror.blocked?.tasks ?? [],
    templateErrors: ctx.templateErrors,
    failedTemplates: [...parts.agents.spawnFailures()].filter(([, f]) => f.count >= MAX_SPAWN_FAILURES),
    board: parts.edits.notes,
  });
}

/** What the parts hold in memory now, for {@link SupervisorInspection} (the caller adds state and tick). */
export function inspectParts(ctx: SupervisorContext, parts: SupervisorParts): Omit<SupervisorInspection, 'state' | 'tick'> {
  const { agents, planner } = parts;
  const inspected: InspectedAgent[] = agents.started().map((a) => ({
    name: a.name,
    ready: a.ready,
    stopping: a.stopping,
    load: a.load,
    connected: a.handle.instance.connected,
    sandboxPid: a.handle.instance.pid,
  }));
  return {
    agents: inspected,
    spawning: agents.spawningNames(),
    spawnFailures: Object.fromEntries(agents.spawnFailures()),
    queuedEvents: parts.inbox.events.length,
    boardDirty: parts.mirror.dirty,
    boardFlushRunning: parts.writer.running,
    readyWaiting: planner.readyWaiting,
    planWasPartial: planner.planWasPartial,
    lastPlan: planner.lastPlan ? { assignments: planner.lastPlan.assignments.length, spawns: planner.lastPlan.spawns.length, unplaced: planner.lastPlan.unplaced.length } : null,
  };
}

import { WarrenError } from '@warren/core';
import { requestRestartAfterExit } from '@warren/ecs';
import type { AgentLifecycle, StopReason } from '../agents/lifecycle.js';
import type { SupervisorContext } from '../context.js';
import type { Inbox } from '../executions/inbox.js';
import { commandRequest, runCommands, CommandKind, isTerminal, TaskState, type CommandHandlers, type CommandRow } from '@warren/registry';

/** Throws the {@link WarrenError} of a command that cannot apply. */
function fail(message: string): never {
  throw new WarrenError('WARREN_COMMAND', message);
}

/**
 * Operator commands (`warren agent …`, `warren task …`): queued durably in SQLite by the CLI (and
 * later the HTTP API and MCP), executed by the running supervisor oldest first, each once, through
 * one handler per command kind. The policy decides each (`sub` = the requesting user, `obj` =
 * `agent:<name>` or `task:<id>`, `act` = the verb); the outcome is written back and audited.
 */
export class OperatorCommands {
  private readonly handlers: CommandHandlers;

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly agents: AgentLifecycle,
    private readonly inbox: Inbox,
  ) {
    this.handlers = {
      [CommandKind.agentStop]: (c, nowMs) => this.stopAgent(c, 'operator', nowMs),
      [CommandKind.agentSleep]: (c, nowMs) => this.stopAgent(c, 'sleep', nowMs),
      [CommandKind.agentDelete]: (c, nowMs) => this.stopAgent(c, 'delete', nowMs),
      [CommandKind.agentStart]: (c, nowMs) => this.startAgent(c, nowMs),
      [CommandKind.agentWake]: (c, nowMs) => this.startAgent(c, nowMs),
      [CommandKind.agentRestart]: (c, nowMs) => this.restartAgent(c, nowMs),
      [CommandKind.taskCancel]: (c, nowMs) => this.cancelTask(c, nowMs),
      [CommandKind.taskRetry]: (c, nowMs) => this.retryTask(c, nowMs),
      [CommandKind.templateStart]: (c, nowMs) => this.startWorker(c, nowMs),
    };
  }

  /** Executes the queued commands, oldest first, each once (see `runCommands`). */
  process(nowMs: number): void {
    const { ctx } = this;
    runCommands(
      ctx.registry.commands,
      this.handlers,
      {
        authorize: (command) => {
          const { sub, obj, act } = commandRequest(command);
          return ctx.authorizer.authorize({ principal: sub, object: obj, action: act }).allowed;
        },
        onDone: (command, state, outcome) =>
          ctx.emit({ actor: command.requestedBy, action: `command.${command.kind}`, object: commandRequest(command).obj, details: { id: command.id, state, outcome } }),
        transaction: (fn) => ctx.transaction(fn),
      },
      nowMs,
    );
  }

  private stopAgent(command: CommandRow, why: StopReason, nowMs: number): string {
    const name = command.target;
    if (this.agents.handles.has(name)) {
      if (this.agents.isStopping(name)) return `${name} is already stopping`;
      this.agents.stop(name, why);
      return `${name} is stopping (${why})`;
    }
    if (!this.ctx.accounts.get(name)) fail(`no agent named ${name}`);
    if (why === 'delete') {
      this.agents.deleteAccount(name).catch((error: unknown) => this.ctx.log.error({ err: error, agent: name }, 'cannot delete the account'));
      return `${name} deleted`;
    }
    if (why === 'sleep') this.agents.putAgentRow(name, 'sleeping', nowMs);
    return `${name} is not running`;
  }

  private startAgent(command: CommandRow, nowMs: number): string {
    const name = command.target;
    if (this.agents.has(name)) return `${name} is already running`;
    const account = this.ctx.accounts.get(name) ?? fail(`no agent named ${name}`);
    if (!this.ctx.templates.has(account.template)) fail(`${name}'s template ${account.template} is not loaded`);
    this.agents.start(account.template, nowMs, name);
    return `${name} is starting`;
  }

  /**
   * A manager's `start_worker`: starts an agent of the template `command.target` for the manager
   * `command.requestedBy` and records it as its worker. Refused unless the requester's template is
   * a manager listing that template in `manager.templates`, under its `maxWorkers` quota (live
   * workers: started or being started) and the template's `maxInstances`.
   * @returns `<worker> is starting (worker n of max for <manager>)`: the worker's name comes first.
   */
  private startWorker(command: CommandRow, nowMs: number): string {
    const { ctx } = this;
    const manager = command.requestedBy;
    const quotas = (this.agents.templateOf(manager) ?? ctx.templates.get(ctx.accounts.get(manager)?.template ?? ''))?.manager ?? fail(`${manager} is not a manager (its template has no 'role: manager')`);
    const name = command.target;
    if (!quotas.templates.includes(name)) {
      fail(`${manager} may not start workers of template '${name}' (its manager.templates: ${quotas.templates.join(', ') || 'none'})`);
    }
    const template = ctx.templates.get(name) ?? fail(`no template '${name}' is loaded`);
    const live = liveWorkers(ctx, (agent) => this.agents.has(agent), manager);
    if (live.length >= quotas.maxWorkers) {
      fail(`quota maxWorkers refuses another worker: ${manager} has ${live.length} live workers of at most ${quotas.maxWorkers} (${live.join(', ')})`);
    }
    const instances = this.agents.instanceCounts().get(name) ?? 0;
    if (instances >= template.maxInstances) fail(`template ${name} has ${instances} agents of at most ${template.maxInstances} (maxInstances)`);
    if (!this.agents.mayStart(name, nowMs)) fail(`template ${name} cannot start agents now (it backs off after failed starts, or failed for this run)`);
    const before = new Set(this.agents.spawningNames());
    this.agents.start(name, nowMs);
    const worker = this.agents.spawningNames().find((n) => !before.has(n)) ?? fail(`no agent of template ${name} could be started`);
    ctx.managers.addWorker(manager, worker, name, nowMs);
    return `${worker} is starting (worker ${live.length + 1} of at most ${quotas.maxWorkers} for ${manager})`;
  }

  private restartAgent(command: CommandRow, nowMs: number): string {
    const name = command.target;
    if (!this.agents.handles.has(name)) {
      const account = this.ctx.accounts.get(name) ?? fail(`no agent named ${name}`);
      this.agents.start(account.template, nowMs, name);
      return `${name} was not running; it is starting`;
    }
    requestRestartAfterExit(this.ctx.world, name);
    this.agents.stop(name, 'operator');
    return `${name} is restarting`;
  }

  private cancelTask(command: CommandRow, nowMs: number): string {
    const { state } = this.ctx;
    const id = command.target;
    const row = state.task(id) ?? fail(`no task ${id} known to Warren`);
    if (isTerminal(row.state)) fail(`task ${id} has already ended (${row.state})`);
    const open = state.openAssignments().find((a) => a.taskId === id && a.attempt === row.attempt);
    if (open && this.inbox.cancel(id, row.attempt, open.agent, `cancelled by ${command.requestedBy}`)) {
      return `cancel sent to ${open.agent}; the task ends when the agent reports`;
    }
    if (open) {
      state.finishAssignment(id, row.attempt, { outcome: 'cancelled', exitCode: null, summary: 'cancelled', outputs: [] }, nowMs);
      this.ctx.tracing.settled(id, row.attempt, 'cancelled', `cancelled by ${command.requestedBy}`, nowMs);
    }
    state.putTask({ ...row, state: TaskState.cancelled, reason: `cancelled by ${command.requestedBy}`, boardSync: 'pending', updatedMs: nowMs, queuePosition: null, queueReason: null });
    return `task ${id} cancelled`;
  }

  private retryTask(command: CommandRow, nowMs: number): string {
    const id = command.target;
    const row = this.ctx.state.task(id) ?? fail(`no task ${id} known to Warren`);
    if (!isTerminal(row.state)) fail(`task ${id} is ${row.state}; only an ended task can be retried`);
    this.ctx.state.putTask({ ...row, state: TaskState.ready, agent: null, reason: `retry requested by ${command.requestedBy}`, boardSync: 'pending', updatedMs: nowMs, notBeforeMs: null, readySinceMs: nowMs });
    return `task ${id} is ready again (attempt ${row.attempt + 1} next)`;
  }
}

/**
 * The workers `manager` started that are live now (started or being started, per `isLive`), by name.
 */
export function liveWorkers(ctx: Pick<SupervisorContext, 'managers'>, isLive: (agent: string) => boolean, manager: string): string[] {
  return ctx.managers
    .workersOf(manager)
    .map((w) => w.worker)
    .filter(isLive);
}

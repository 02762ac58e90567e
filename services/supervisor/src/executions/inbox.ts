import type { Delivery, ResultMessage } from '@warren/broker';
import { agentView, recordFinished, takeOomKill } from '@warren/ecs';
import type { AgentExit } from '@warren/runtime';
import { TickReadings } from '../agents/tick-readings.js';
import type { AgentLifecycle } from '../agents/lifecycle.js';
import { SUPERVISOR, type SupervisorContext } from '../context.js';
import { CrashPoint } from '../crash.js';
import { taskFailureOf } from '../limit-watch.js';
import { TaskState } from '@warren/registry';
import { classifyResult } from './decisions.js';
import type { CommitBarrier } from './barrier.js';
import type { Settler } from './settle.js';

/** What reaches the supervisor between ticks: results from the broker, and hellos, acks and exits from agents. */
export type InboxEvent =
  | { kind: 'result'; delivery: Delivery<ResultMessage>; done: () => void }
  | { kind: 'hello'; agent: string }
  | { kind: 'acked'; agent: string; taskId: string; attempt: number }
  | { kind: 'exit'; agent: string; exit: AgentExit };

/** Runs `work`, naming it as the step the tick awaits (see inspect.ts). */
export type StepTracker = <T>(label: string, work: Promise<T>) => Promise<T>;

/**
 * The execution inbox: events queue here as they arrive and are applied on the next tick, in
 * order. Acks, results and hellos right behind each other are applied in one transaction, and
 * the results' broker messages acknowledged only after it committed (a burst costs one fsync; a
 * crash before the commit gets them delivered again).
 */
export class Inbox {
  readonly events: InboxEvent[] = [];
  /** Executions (`taskId:attempt`) an operator asked to cancel: their `cancelled` result is final. */
  private readonly cancelRequested = new Set<string>();
  /** Executions (`taskId:attempt`) stopped because an LLM budget ran out, with the budget's sentence. */
  private readonly overBudget = new Map<string, string>();
  /** Executions (`taskId:attempt`) whose LLM provider failed every attempt, with the gateway's sentence. */
  private readonly providerFailures = new Map<string, string>();
  /** The cgroup readings results took in this tick, for the watchdog (see AgentHealth.runWatchdog). */
  readonly readings = new TickReadings();

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly agents: AgentLifecycle,
    private readonly settler: Settler,
    private readonly step: StepTracker,
  ) {}

  /** Queues `event` for the next tick and asks for one. */
  push(event: InboxEvent): void {
    this.events.push(event);
    this.ctx.requestTick();
  }

  /** Results queued, not yet applied. */
  get resultsQueued(): number {
    return this.events.filter((e) => e.kind === 'result').length;
  }

  /**
   * Asks `agent` to cancel attempt `attempt` of `taskId`; the result it then reports (`cancelled`)
   * is final. @returns false if the agent is not connected (nothing was sent).
   */
  cancel(taskId: string, attempt: number, agent: string, reason: string): boolean {
    const live = this.agents.handles.get(agent);
    if (!live?.instance.connected) return false;
    this.cancelRequested.add(`${taskId}:${attempt}`);
    live.instance.cancel(taskId, attempt, reason);
    return true;
  }

  /**
   * Stops an execution whose LLM budget ran out (the gateway refused its agent's call): the agent
   * is asked to cancel it, and its result fails the task with `detail` as the reason. Records
   * `task.over_budget` once per execution.
   * @returns false if the execution is not open on `agent` any more.
   */
  stopForBudget(taskId: string, attempt: number, agent: string, detail: string): boolean {
    const key = `${taskId}:${attempt}`;
    const open = this.ctx.state.assignment(taskId, attempt);
    if (!open || open.agent !== agent || open.state === 'finished' || this.overBudget.has(key)) return false;
    this.overBudget.set(key, detail);
    this.ctx.emit({ actor: SUPERVISOR, action: 'task.over_budget', object: `task:${taskId}`, details: { attempt, detail } });
    this.agents.handles.get(agent)?.instance.cancel(taskId, attempt, `over its LLM budget: ${detail}`);
    return true;
  }

  /**
   * Keeps why an execution's LLM provider failed every attempt (the gateway's sentence): if the
   * execution then fails, that is its reason, not the CLI's last words.
   */
  noteProviderFailure(taskId: string, attempt: number, detail: string): void {
    this.providerFailures.set(`${taskId}:${attempt}`, detail);
    if (this.providerFailures.size > 10_000) this.providerFailures.delete(this.providerFailures.keys().next().value!);
  }

  /**
   * Applies every queued event, oldest first. With `barrier` (the tick's), acks and results commit
   * without an fsync and their broker messages are acknowledged once the barrier has passed;
   * without it (recovery, shutdown), each batch commits durably and is acknowledged at once.
   */
  async apply(nowMs: number, barrier?: CommitBarrier): Promise<void> {
    const { ctx } = this;
    for (let event = this.events.shift(); event; event = this.events.shift()) {
      switch (event.kind) {
        case 'result':
        case 'acked':
        case 'hello': {
          // Results, acks and hellos right behind each other: one transaction, applied in order (a
          // hello's readiness commits with them instead of alone).
          const batch: (InboxEvent & { kind: 'result' | 'acked' | 'hello' })[] = [event];
          for (let next = this.events[0]; next && next.kind !== 'exit'; next = this.events[0]) batch.push(this.events.shift() as (typeof batch)[number]);
          const acks: (() => void)[] = [];
          let started = false;
          const write = (): void =>
            ctx.transaction(() => {
              for (const e of batch) {
                if (e.kind === 'result') acks.push(this.applyResult(e.delivery, nowMs));
                else if (e.kind === 'hello') this.agents.markReady(e.agent, nowMs);
                else {
                  this.applyAck(e.agent, e.taskId, e.attempt, nowMs);
                  started = true;
                }
              }
            });
          if (barrier) barrier.commit(write);
          else write();
          if (started) ctx.crashAt(CrashPoint.taskAcked);
          const effects = (): void => {
            for (const ack of acks) ack();
            for (const e of batch) if (e.kind === 'result') e.done();
          };
          if (!barrier) effects();
          else if (acks.length > 0) barrier.after(effects);
          break;
        }
        case 'exit':
          await this.agents.applyExit(event.agent, event.exit, nowMs, this.step);
          break;
      }
    }
  }

  /** Leaves results queued at shutdown unacknowledged for the next run. */
  releaseResults(): void {
    for (const event of this.events.splice(0)) if (event.kind === 'result') event.done();
  }

  /** Records inside the caller's transaction that `agent` took (`taskId`, `attempt`): the task runs. */
  private applyAck(agent: string, taskId: string, attempt: number, nowMs: number): void {
    const { state } = this.ctx;
    const row = state.task(taskId);
    state.setAssignmentState(taskId, attempt, 'acked', nowMs);
    this.ctx.tracing.acked(taskId, attempt, nowMs);
    if (row && row.attempt === attempt && row.state === TaskState.assigned) {
      state.putTask({ ...row, state: TaskState.running, updatedMs: nowMs });
    }
    this.ctx.emit({ actor: `agent:${agent}`, action: 'task.start', object: `task:${taskId}`, details: { attempt } });
  }

  /**
   * Applies one result inside the caller's transaction, once per `(taskId, attempt)`.
   * @returns what to do with the broker message once the transaction has committed (ack it, or
   *   terminate it if it names no known execution).
   */
  private applyResult(delivery: Delivery<ResultMessage>, nowMs: number): () => void {
    const { ctx } = this;
    const r = delivery.data;
    const assignment = ctx.state.assignment(r.taskId, r.attempt);
    if (!assignment || assignment.agent !== r.agent) {
      ctx.log.warn({ taskId: r.taskId, attempt: r.attempt, agent: r.agent }, 'result for an unknown execution; dropped');
      return () => delivery.term('unknown execution');
    }
    const applied = ctx.state.finishAssignment(r.taskId, r.attempt, { outcome: r.outcome, exitCode: r.exitCode, summary: r.summary, outputs: r.outputs }, nowMs);
    if (!applied) return () => delivery.ack();
    const succeeded = r.outcome === 'succeeded';
    const handle = this.agents.handles.get(r.agent);
    const view = handle ? agentView(ctx.world, r.agent) : undefined;
    const failTasks = view?.failTasks ?? undefined;
    const cancelledByOperator = r.outcome === 'cancelled' && this.cancelRequested.delete(`${r.taskId}:${r.attempt}`);
    // Asked for every result, so that an OOM kill is blamed on the task it happened in.
    let oomKilled = false;
    if (handle !== undefined) {
      const usage = handle.instance.usage();
      this.readings.put(r.agent, handle.instance, nowMs, usage);
      oomKilled = takeOomKill(ctx.world, r.agent, usage.oomKills);
    }
    const key = `${r.taskId}:${r.attempt}`;
    const budget = this.overBudget.get(key);
    const provider = this.providerFailures.get(key);
    this.overBudget.delete(key);
    this.providerFailures.delete(key);
    // A budget, a provider down, an OOM kill or the process limit explains a failure better than its output ("Killed").
    const failure =
      budget !== undefined && !succeeded
        ? `over its LLM budget: ${budget}`
        : provider !== undefined && !succeeded && !cancelledByOperator
          ? `LLM provider unavailable: ${provider}`
          : taskFailureOf(handle && { failTasks, oomKilled, template: handle.template }, r.outcome, succeeded || cancelledByOperator);
    const { outcome, reason } = classifyResult(r, {
      stopping: view?.stopDetail ?? view?.stopping ?? undefined,
      cancelledByOperator,
      failure,
      failTasks,
    });
    this.settler.settle(r.taskId, r.attempt, outcome, reason, nowMs, this.agents.templateOf(r.agent));
    ctx.tracing.resultReceived(r, nowMs);
    ctx.state.countTaskDone(r.agent);
    ctx.emit({
      actor: `agent:${r.agent}`,
      action: succeeded ? 'task.complete' : 'task.fail',
      object: `task:${r.taskId}`,
      details: { attempt: r.attempt, outcome: r.outcome, exitCode: r.exitCode, durationMs: r.durationMs, outputs: r.outputs },
    });
    if (this.agents.handles.has(r.agent)) recordFinished(ctx.world, r.agent, nowMs);
    return () => {
      ctx.crashAt(CrashPoint.resultCommitted);
      delivery.ack();
    };
  }
}

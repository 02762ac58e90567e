import { resolve } from 'node:path';
import { agentSlots, agentSlotsUnchanged, recordAssigned } from '@warren/ecs';
import type { Task } from '@warren/kanban';
import { planAssignments, type AgentSlot, type Plan } from '@warren/scheduler';
import type { AgentLifecycle } from './agents/lifecycle.js';
import type { BoardMirror } from './board/mirror.js';
import { SUPERVISOR, type SupervisorContext } from './context.js';
import { TaskState, type TaskRow } from '@warren/registry';
import type { Repositories } from './repositories.js';
import type { RuntimeHealth } from './runtime-health.js';
import { managedTemplates } from './templates.js';
import { ReadyCandidates } from './ready-set.js';
import { mostUrgent, planFirstUrgent, plannerOrder, type PlannerTask } from './urgent-plan.js';
import { UrgentQueue } from './urgent-queue.js';

/** How often queue positions are recorded while assignments are being made, in ms. */
const QUEUE_REFRESH_MS = 250;
/**
 * How often a waiting task's reason is rewritten when only its details changed (the words before
 * the first parenthesis stay: how many agents are at their WIP limit, not accepting…), in ms:
 * those change on every assignment and result, and rewriting every waiting row for them made each
 * queue refresh cost the whole queue.
 */
const REASON_COUNTS_REFRESH_MS = 2_000;
/**
 * How many of the most urgent ready tasks the urgent queue keeps in order when it is set from a
 * scan (at least twice what the tick asking for it plans): assignments take tasks from its head,
 * so a scan comes back after about this many (or at the next queue refresh).
 */
const URGENT_KEEP = 512;

/** A ready task with its row and its index in the board's task array. */
export interface ReadyTask {
  readonly task: Task;
  readonly row: TaskRow;
  readonly index: number;
}

/**
 * Priority with ageing, so that a stream of urgent work cannot starve a task forever: a task
 * gains one priority level for every `agingMs` it has waited ready. A `low` task (rank 0) that has
 * waited three `agingMs` ranks with a fresh `urgent` one (rank 3).
 */
export function effectivePriority(priorityRank: number, readySinceMs: number | null, nowMs: number, agingMs: number): number {
  const waitedMs = Math.max(0, nowMs - (readySinceMs ?? nowMs));
  return priorityRank + Math.floor(waitedMs / agingMs);
}

/**
 * Planning and admission: which ready tasks go to which agents this tick (the policy deciding
 * each pairing), which templates must start agents for the rest, and where each waiting task
 * stands in the queue and why. Assigning commits the execution (the outbox) in the tick's
 * transaction.
 */
export class Planner {
  /** The last plan of every ready task (not only the most urgent; see planMostUrgent). */
  lastPlan: Plan | undefined;
  /** Ready tasks left unassigned by the last plan. */
  readyWaiting = 0;
  /** Whether this tick's plan covered only the most urgent ready tasks. */
  planWasPartial = false;
  /** When queue positions were last recorded, in ms (see {@link recordQueue}). */
  private queueRecordedMs = 0;
  /** When reasons that differed only in their numbers were last rewritten, in ms. */
  private reasonCountsMs = 0;
  /** Each reason's kind (see {@link sameKind}), a small cache. */
  private readonly reasonKinds = new Map<string, string>();
  /** The planner's view of each task version (see {@link plannerTask}). */
  private readonly plannerTasks = new WeakMap<Task, PlannerTask>();

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly mirror: BoardMirror,
    private readonly agents: AgentLifecycle,
    /** Called when an idle agent takes its first task (the disk watch measures its home from then on). */
    private readonly onFirstTask: (agent: string, home: string) => void,
    private readonly repositories: Repositories,
    private readonly runtimes: RuntimeHealth,
  ) {}

  /** Ready tasks held back this tick (their repository is not fetched yet), with why; recorded as their queue reason. */
  private held: ReadyTask[] = [];
  private readonly heldReasons = new Map<string, string>();

  /** The last plan that changed nothing, with what it was made from (see {@link memoHit}). */
  private memo: PlanMemo | undefined;

  /** The board's candidate tasks, kept from what changed (see {@link ReadyCandidates}). */
  private readonly candidates = new ReadyCandidates<Task, string | undefined>((task) => taskRepository(task, this.ctx.config.boardDir));

  /** The ready tasks, the most urgent in order, kept from what changed (see {@link followChanges}). */
  private readonly urgent = new UrgentQueue();
  /** Until when (ms since the epoch) {@link urgent} follows the ready set with no task ageing or leaving its back-off; -Infinity when it does not. */
  private urgentValidUntilMs = -Infinity;

  /**
   * Board tasks that may run now: in the ready column, dependencies done, not in flight, not
   * backing off. Time apart, the candidates are kept from what changed since the last tick; this
   * pass over them checks back-offs, repositories and ageing. Sets the urgent queue again from
   * them, its first `keep` in order, when no task names a repository (a fetch moves on with time);
   * `keep` 0 leaves it as it is (it followed every change up to this scan).
   */
  private readyTasks(nowMs: number, keep = URGENT_KEEP): ReadyTask[] {
    const { board, taskById } = this.mirror;
    this.held = [];
    this.heldReasons.clear();
    if (keep > 0 || !board) this.urgentValidUntilMs = -Infinity;
    if (!board) return [];
    const { state } = this.ctx;
    const { agingMs } = this.ctx.config;
    const ready: ReadyTask[] = [];
    let validUntilMs = Infinity;
    let timeless = true;
    this.candidates.update(board, this.mirror.version, taskById, state);
    for (const index of this.candidates.indices) {
      const task = board.tasks[index]!;
      let row = state.task(task.id);
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
        state.putTask(row);
      }
      if (row.state !== TaskState.ready || row.boardSync === 'pending') continue;
      if (row.notBeforeMs !== null && row.notBeforeMs > nowMs) {
        validUntilMs = Math.min(validUntilMs, row.notBeforeMs);
        continue;
      }
      const source = this.candidates.derived(index);
      // A repository's fetch moves on with time and no row or file changing: no memo then.
      if (source !== undefined) timeless = false;
      const hold = source === undefined ? undefined : this.repositories.holdReason(source, nowMs);
      if (hold !== undefined) {
        this.held.push({ task, row, index });
        this.heldReasons.set(task.id, hold);
        continue;
      }
      // Ageing raises the task's priority at the next multiple of agingMs it has waited.
      validUntilMs = Math.min(validUntilMs, agedAtMs(row, nowMs, agingMs));
      ready.push({ task, row, index });
    }
    this.readyValidUntilMs = timeless ? validUntilMs : -Infinity;
    // What changed up to this scan is in it: the urgent queue starts again from here.
    if (this.candidates.takeTouched()?.length !== 0) keep = Math.max(keep, URGENT_KEEP);
    if (keep > 0) {
      this.urgentValidUntilMs = this.readyValidUntilMs;
      if (timeless) this.urgent.reset(ready, (r) => this.plannerTask(r.task, r.row, nowMs), (r) => r.index, board.tasks.length, keep);
    }
    return ready;
  }

  /**
   * Brings the urgent queue up to date from what changed since the last tick (the tasks and rows
   * {@link ReadyCandidates} examined again), with the filters of {@link readyTasks}, instead of
   * a scan of every candidate: O(changes × log head). False when it cannot follow (the queue was
   * not set from a timeless scan, a task aged a level or left its back-off, the candidates were
   * scanned whole, a new task has no row yet, a task names a repository): the caller scans.
   */
  private followChanges(nowMs: number): boolean {
    const board = this.mirror.board;
    if (!board || nowMs >= this.urgentValidUntilMs) return false;
    const { state } = this.ctx;
    this.candidates.update(board, this.mirror.version, this.mirror.taskById, state);
    const touched = this.candidates.takeTouched();
    let validUntilMs = this.urgentValidUntilMs;
    this.urgentValidUntilMs = -Infinity;
    if (touched === undefined) return false;
    const { agingMs } = this.ctx.config;
    for (const index of touched) {
      if (!this.urgent.holds(index)) return false;
      this.urgent.remove(index);
      if (!this.candidates.isCandidateAt(index)) continue;
      const task = board.tasks[index]!;
      const row = state.task(task.id);
      // A new task's row is made by the scan; a repository's fetch moves on with time.
      if (!row || this.candidates.derived(index) !== undefined) return false;
      if (row.state !== TaskState.ready || row.boardSync === 'pending') continue;
      if (row.notBeforeMs !== null && row.notBeforeMs > nowMs) {
        validUntilMs = Math.min(validUntilMs, row.notBeforeMs);
        continue;
      }
      validUntilMs = Math.min(validUntilMs, agedAtMs(row, nowMs, agingMs));
      this.urgent.add(index, this.plannerTask(task, row, nowMs));
    }
    this.urgentValidUntilMs = validUntilMs;
    return true;
  }

  /**
   * The first `k` ready tasks in planner order (see planFirstUrgent): the urgent queue's head
   * when it follows the ready set and is long enough, else from a scan (`ready`, this tick's
   * when there was one), which sets the queue again with room for `k`.
   */
  private firstUrgent(k: number, nowMs: number, ready: readonly ReadyTask[] | undefined): readonly PlannerTask[] {
    if (nowMs < this.urgentValidUntilMs) {
      const known = this.urgent.first(k);
      if (known !== undefined) return known;
    }
    const keep = Math.max(URGENT_KEEP, 2 * k);
    const all = ready ?? this.readyTasks(nowMs, keep);
    if (nowMs < this.urgentValidUntilMs) {
      if (ready !== undefined) this.urgent.reset(ready, (r) => this.plannerTask(r.task, r.row, nowMs), (r) => r.index, this.mirror.board?.tasks.length ?? 0, keep);
      const known = this.urgent.first(k);
      if (known !== undefined) return known;
    }
    return mostUrgent(all.map((r) => this.plannerTask(r.task, r.row, nowMs)), k);
  }

  /** Until when (ms since the epoch) the last ready scan stays true with nothing else changing; -Infinity when time alone may change it. */
  private readyValidUntilMs = -Infinity;

  /**
   * Whether the last memoized plan is this tick's: nothing it was made from changed (the board's
   * version, the task rows' version, the policy's revision, the agents' slots, the templates that
   * may start agents) and no ready task aged a level or came out of its back-off since. The agents'
   * slots are compared in place, last: an idle tick with 1,000 agents allocates nothing for them.
   */
  private memoHit(key: string, nowMs: number): PlanMemo | undefined {
    const memo = this.memo;
    if (!memo || memo.key !== key || nowMs >= memo.validUntilMs) return undefined;
    if (memo.boardVersion !== this.mirror.version || memo.taskVersion !== this.ctx.state.taskVersion || memo.policyRevision !== this.ctx.policy.revision) return undefined;
    return agentSlotsUnchanged(this.ctx.world, memo.slots) ? memo : undefined;
  }

  /**
   * The planner's view of a ready task with its effective priority. Kept per task version (a new
   * parse or write gives a new `Task`) and made again only when ageing raised its priority, so a
   * tick over a long queue allocates nothing for the tasks that did not change.
   */
  private plannerTask(task: Task, row: TaskRow, nowMs: number): PlannerTask {
    const priorityRank = effectivePriority(task.priorityRank, row.readySinceMs, nowMs, this.ctx.config.agingMs);
    const known = this.plannerTasks.get(task);
    if (known?.priorityRank === priorityRank) return known;
    const made = { id: task.id, priorityRank, createdMs: task.createdMs ?? 0, capabilities: task.capabilities };
    this.plannerTasks.set(task, made);
    return made;
  }

  /**
   * Plans this tick: the ready tasks against the agents' free slots and the templates that may
   * start more, with the policy asked for each (agent or template, task) pairing. Between queue
   * refreshes only the most urgent tasks are planned when free capacity is far smaller than the
   * queue. Runs inside the tick's transaction (it writes new task rows and queue positions).
   */
  plan(nowMs: number): Plan {
    const { ctx, mirror, agents } = this;
    const board = mirror.board;
    const instances = agents.instanceCounts();
    // A template whose runtime cannot run starts no agents; its tasks wait with the reason.
    // A template some manager lists starts agents only when a manager asks (start_worker).
    const managed = managedTemplates(ctx.templates.values());
    const templates = [...ctx.templates.values()]
      .filter((t) => agents.mayStart(t.name, nowMs) && this.runtimes.unhealthy(t.name) === undefined && !managed.has(t.name))
      .map((t) => ({
        name: t.name,
        capabilities: t.capabilities,
        instances: instances.get(t.name) ?? 0,
        maxInstances: t.maxInstances,
        wipLimitPerInstance: t.wipPerInstance,
      }));
    const starting = agents.startingCounts();
    const key = templatesKey(templates, starting, ctx.templates.keys(), (name) => this.runtimes.unhealthy(name) ?? this.agents.unplaceable.get(name));
    const known = this.memoHit(key, nowMs);
    if (known) {
      this.readyWaiting = known.readyWaiting;
      this.planWasPartial = false;
      return { ...known.plan, plannedAtMs: nowMs };
    }
    // An autodelete agent runs one task in its fresh sandbox, then is deleted: agentSlots says
    // it accepts no more once it took one.
    const slots = agentSlots(ctx.world);
    this.held = [];
    this.heldReasons.clear();
    // Queue positions are for people reading `warren tasks`: while work is being handed out they
    // are refreshed at most every QUEUE_REFRESH_MS (sorting every waiting task on every tick is
    // what a 20,000-task board cannot afford).
    const queueDue = nowMs - this.queueRecordedMs >= QUEUE_REFRESH_MS;
    // Between refreshes the urgent queue follows what changed, when it can: no scan of every
    // ready task for the few a tick hands out.
    // A queue refresh scans every ready task anyway: the urgent queue is set again from that scan
    // only when it could not follow.
    const followed = this.followChanges(nowMs);
    let ready = queueDue || !followed ? this.readyTasks(nowMs, followed ? 0 : URGENT_KEEP) : undefined;
    const readyCount = ready?.length ?? this.urgent.count;
    this.readyWaiting = readyCount;
    const inProgress = board ? this.candidates.inProgress : 0;
    const wipColumn = board?.config.columns.find((c) => c.id === board.config.roles.in_progress);
    const columnWip = { limit: wipColumn?.wip ?? null, current: inProgress };
    const toReadyTask = ({ task, row }: ReadyTask) => this.plannerTask(task, row, nowMs);
    const input = {
      agents: slots,
      templates,
      columnWip,
      isAllowed: (agent: string, template: string, taskId: string) =>
        ctx.authorizer.authorize({ principal: agent || `template:${template}`, object: `task:${taskId}`, action: 'assign', memo: true }).allowed,
      nowMs,
    };
    // Between queue refreshes, plan the most urgent tasks alone when the free capacity is far
    // smaller than the queue; see planMostUrgent for why the outcome is the full plan's.
    const urgent = queueDue ? undefined : planFirstUrgent(readyCount, (k) => this.firstUrgent(k, nowMs, ready), input);
    this.planWasPartial = urgent !== undefined;
    let plan = urgent;
    if (plan === undefined) {
      // The whole queue: the urgent queue's when it holds every ready task in order.
      const all = ready === undefined && nowMs < this.urgentValidUntilMs ? this.urgent.first(Number.POSITIVE_INFINITY) : undefined;
      plan = planAssignments({ ...input, tasks: all ? [...all] : (ready ??= this.readyTasks(nowMs)).map(toReadyTask) });
    }
    // Agents still starting count as instances for the planner but offer no slots yet, so the
    // first spawns it asks of a template are the tasks those agents will take once ready: only
    // the spawns beyond them start new agents, side by side.
    const spawns = plan.spawns.filter((s) => {
      const waiting = starting.get(s.template) ?? 0;
      if (waiting === 0) return true;
      starting.set(s.template, waiting - 1);
      return false;
    });
    const result: Plan = spawns.length === plan.spawns.length ? plan : { ...plan, spawns };
    let settled = true;
    if (queueDue && ready !== undefined) {
      this.queueRecordedMs = nowMs;
      settled = this.recordQueue(plan, ready, nowMs);
    }
    // A full plan that hands out nothing, with the queue just recorded, is what every later tick
    // would make again until one of its inputs changes: kept, the idle tick skips the scan.
    this.memo =
      queueDue && settled && result.assignments.length === 0 && result.spawns.length === 0 && this.readyValidUntilMs > nowMs
        ? { key, slots, plan: result, readyWaiting: readyCount, validUntilMs: this.readyValidUntilMs, boardVersion: mirror.version, taskVersion: ctx.state.taskVersion, policyRevision: ctx.policy.revision }
        : undefined;
    return result;
  }

  /**
   * Keeps each waiting task's `queuePosition` and `queueReason` up to date. The stored positions
   * increase strictly in the order the scheduler would take the tasks (effective priority, then
   * age, then id) but need not be dense: readers number them 1, 2, 3… by stored value
   * (`queuePositions`). So a task leaving the queue (assigned, the common case) rewrites no
   * other row; only a task joining out of order, or a change of order or reason, writes rows. A
   * reason whose kind stays and details change is rewritten at most every
   * {@link REASON_COUNTS_REFRESH_MS}.
   * @returns false when such a rewrite was put off (the queue as stored is not yet the plan's).
   */
  private recordQueue(plan: Plan, ready: readonly ReadyTask[], nowMs: number): boolean {
    const troubled = this.troubledTemplates();
    const reasons = new Map(plan.unplaced.map((u) => [u.taskId, (troubled.length > 0 ? this.unhealthyReason(u.taskId, troubled) : undefined) ?? u.reason]));
    for (const [taskId, reason] of this.heldReasons) reasons.set(taskId, reason);
    const spawning = new Set(plan.spawns.flatMap((s) => s.taskIds));
    const waiting = [...ready, ...this.held]
      .filter(({ task }) => reasons.has(task.id) || spawning.has(task.id))
      .map((r) => ({ task: r.task, row: r.row, order: this.plannerTask(r.task, r.row, nowMs) }))
      .sort((a, b) => plannerOrder(a.order, b.order));
    const countsDue = nowMs - this.reasonCountsMs >= REASON_COUNTS_REFRESH_MS;
    if (countsDue) this.reasonCountsMs = nowMs;
    let settled = true;
    let previous = 0;
    for (const { task, row } of waiting) {
      const queueReason = reasons.get(task.id) ?? 'waiting for an agent to start';
      const queuePosition = row.queuePosition !== null && row.queuePosition > previous ? row.queuePosition : previous + 1;
      const reasonChanged = row.queueReason !== queueReason;
      if (row.queuePosition !== queuePosition || (reasonChanged && (countsDue || !this.sameKind(row.queueReason, queueReason)))) {
        this.ctx.state.putTask({ ...row, queuePosition, queueReason });
      } else if (reasonChanged) {
        settled = false;
      }
      previous = queuePosition;
    }
    return settled;
  }

  /**
   * Whether reasons `a` and `b` are of one kind: the same words before their first parenthesis
   * (`no capable agent can take it (3 capable: …)`), or the same text when there is none.
   */
  private sameKind(a: string | null, b: string): boolean {
    if (a === null) return false;
    return this.reasonKind(a) === this.reasonKind(b);
  }

  private reasonKind(reason: string): string {
    let kind = this.reasonKinds.get(reason);
    if (kind === undefined) {
      if (this.reasonKinds.size >= 1024) this.reasonKinds.clear();
      const open = reason.indexOf('(');
      kind = open === -1 ? reason : reason.slice(0, open);
      this.reasonKinds.set(reason, kind);
    }
    return kind;
  }

  /**
   * The templates whose runtime cannot run (unhealthy) or whose agents cannot be placed now (no
   * node or Kubernetes target can take them), in template order, each with the queue reason of the
   * tasks it alone could take.
   */
  private troubledTemplates(): { readonly capabilities: readonly string[]; readonly reason: string }[] {
    const troubled: { capabilities: readonly string[]; reason: string }[] = [];
    for (const template of this.ctx.templates.values()) {
      const why = this.runtimes.unhealthy(template.name);
      if (why !== undefined) {
        troubled.push({ capabilities: template.capabilities, reason: `template ${template.name} cannot run: ${why}` });
        continue;
      }
      const unplaceable = this.agents.unplaceable.get(template.name);
      if (unplaceable !== undefined) troubled.push({ capabilities: template.capabilities, reason: `template ${template.name} cannot be placed: ${unplaceable}` });
    }
    return troubled;
  }

  /**
   * Why task `taskId` waits when a template that offers all its capabilities is among `troubled`
   * (see {@link troubledTemplates}): the first such, or undefined.
   */
  private unhealthyReason(taskId: string, troubled: ReturnType<Planner['troubledTemplates']>): string | undefined {
    const task = this.mirror.taskById.get(taskId);
    if (!task) return undefined;
    for (const template of troubled) {
      if (task.capabilities.every((c) => template.capabilities.includes(c))) return template.reason;
    }
    return undefined;
  }

  /**
   * Assigns `taskId` to `agentName`: commits the execution (state `pending`, the outbox) and the
   * task's new state with its audit rows, and counts the agent's load. Nothing happens when the
   * task is no longer ready or the agent is gone. Inside a transaction (the tick's) the writes are
   * part of it, with no savepoint of their own: a failure rolls the whole transaction back.
   */
  assign(taskId: string, agentName: string, nowMs: number): void {
    const { ctx } = this;
    const task = this.mirror.taskById.get(taskId);
    const agent = this.agents.handles.get(agentName);
    if (!task || !agent) return;
    const previous = ctx.state.task(taskId);
    if (previous && previous.state !== TaskState.ready) return;
    const attempt = (previous?.attempt ?? 0) + 1;
    const write = (): void => {
      ctx.state.addAssignment(taskId, attempt, agentName, nowMs);
      ctx.tracing.assigned({ taskId, attempt, agent: agentName, readySinceMs: previous?.readySinceMs ?? nowMs, nowMs });
      ctx.metrics.observeAssignment(agent.template.name, Math.max(0, nowMs - (previous?.readySinceMs ?? nowMs)));
      ctx.state.putTask({
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
      ctx.emit({ actor: SUPERVISOR, action: 'task.assign', object: `task:${taskId}`, details: { agent: agentName, attempt } });
    };
    if (ctx.state.db.inTransaction) write();
    else ctx.transaction(write);
    if (recordAssigned(ctx.world, agentName, nowMs) === 1) this.onFirstTask(agentName, agent.account.home);
  }
}

/** A plan kept with what it was made from (see `Planner.memoHit`). */
interface PlanMemo {
  /** The startable templates, as {@link templatesKey} writes them. */
  readonly key: string;
  /** The agents' slots the plan was made for. */
  readonly slots: readonly AgentSlot[];
  readonly plan: Plan;
  readonly readyWaiting: number;
  /** When a ready task ages a level or leaves its back-off, ms since the epoch. */
  readonly validUntilMs: number;
  readonly boardVersion: number;
  readonly taskVersion: number;
  readonly policyRevision: number;
}

/**
 * The planning inputs that are neither the board, the task rows nor the agents' slots, as one
 * string: each template that may start agents (name, capabilities, instances, limits, agents still
 * starting), and why each template's runtime cannot run. O(templates).
 */
function templatesKey(
  templates: readonly { name: string; capabilities: readonly string[]; instances: number; maxInstances: number; wipLimitPerInstance: number }[],
  starting: ReadonlyMap<string, number>,
  allTemplates: Iterable<string>,
  unhealthy: (template: string) => string | undefined,
): string {
  let key = '';
  for (const t of templates) {
    key += `${t.name}\u0000${t.capabilities.join(',')}\u0000${t.instances}\u0000${t.maxInstances}\u0000${t.wipLimitPerInstance}\u0000${starting.get(t.name) ?? 0}\u0001`;
  }
  // Why a template cannot run is the queue reason of the tasks only it could take.
  key += '\u0002';
  for (const name of allTemplates) key += `${name}\u0000${unhealthy(name) ?? ''}\u0001`;
  return key;
}

/** When ready task `row` (waited since `readySinceMs`, or from `nowMs`) gains its next ageing level, ms since the epoch. */
function agedAtMs(row: TaskRow, nowMs: number, agingMs: number): number {
  const since = row.readySinceMs ?? nowMs;
  return since + (Math.floor(Math.max(0, nowMs - since) / agingMs) + 1) * agingMs;
}

/**
 * The repository a task names itself (frontmatter `repository:`, a URL or a path relative to the
 * board folder), or undefined. A template's repository is checked with its runtime instead.
 */
export function taskRepository(task: Task, boardDir: string): string | undefined {
  const source = task.fields['repository'];
  if (typeof source !== 'string' || source.trim() === '') return undefined;
  return /^[a-z][a-z0-9+.-]*:\/\/|^[^/]+@[^/]+:/i.test(source) ? source : resolve(boardDir, source);
}

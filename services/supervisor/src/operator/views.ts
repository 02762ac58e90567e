/**
 * What the HTTP API and the dashboard show that only the running supervisor knows: the registry's
 * rows joined with the ECS world (live status, load, cgroup usage), the accounts, the templates and
 * the board as the supervisor last read it. Plain JSON; times in ms since the epoch, sizes in bytes.
 */
import { basename } from 'node:path';
import { listAgents, type AgentView as WorldAgentView } from '@warren/ecs';
import { queuePositions } from '@warren/registry';
import type { AccountItem, AgentItem, BoardView, Card, TemplateItem } from '@warren/http';
import { WarrenError } from '@warren/core';
import { createTask, updateTask, type TaskDraft } from '@warren/kanban';
import type { BoardMirror } from '../board/mirror.js';
import type { SupervisorContext } from '../context.js';
import type { AgentTemplate } from '../templates.js';

/** Filters of {@link agentItems}; every given one must match. */
export interface AgentItemFilter {
  readonly template?: string;
  /** The row's state, or the live status. */
  readonly state?: string;
  readonly capability?: string;
}

/** The agents, sorted by name: every `agents` row, joined with its account, template and the world. */
export function agentItems(ctx: SupervisorContext, filter: AgentItemFilter = {}, nowMs = Date.now()): AgentItem[] {
  const live = new Map<string, WorldAgentView>(listAgents(ctx.world).map((v) => [v.name, v]));
  const accounts = new Map(ctx.accounts.list().map((a) => [a.name, a]));
  const items: AgentItem[] = [];
  for (const row of ctx.registry.agents()) {
    const view = live.get(row.name);
    const account = accounts.get(row.name);
    const template = ctx.templates.get(row.template);
    const item: AgentItem = {
      name: row.name,
      template: row.template,
      uid: row.uid,
      gid: account?.gid ?? null,
      home: account?.home ?? null,
      state: row.state,
      pid: row.pid,
      startedMs: row.startedMs,
      stoppedMs: row.stoppedMs,
      lastExit: row.lastExit,
      tasksDone: row.tasksDone,
      capabilities: view?.capabilities ?? [...(template?.capabilities ?? [])].sort(),
      wip: view?.wipLimit ?? template?.wipPerInstance ?? 1,
      unsafe: template?.isolation === 'unsafe-no-cgroups',
      live:
        view === undefined
          ? null
          : {
              status: view.status,
              statusSinceMs: view.statusSinceMs,
              load: view.load,
              lastHeartbeatMs: view.lastHeartbeatMs,
              uptimeMs: row.startedMs === null ? null : Math.max(0, nowMs - row.startedMs),
              cpuMs: view.resources.cpuMs,
              memoryBytes: view.resources.memoryBytes,
              memoryLimitBytes: view.resources.memoryMaxBytes,
              pids: view.resources.pids,
              restarts: view.restarts,
            },
    };
    if (filter.template !== undefined && item.template !== filter.template) continue;
    if (filter.state !== undefined && item.state !== filter.state && item.live?.status !== filter.state) continue;
    if (filter.capability !== undefined && !item.capabilities.includes(filter.capability)) continue;
    items.push(item);
  }
  return items;
}

/** Every agent account, sorted by name. */
export function accountItems(ctx: SupervisorContext): AccountItem[] {
  return ctx.accounts
    .list()
    .map((a) => ({ name: a.name, template: a.template, uid: a.uid, gid: a.gid, groups: [...a.groups], home: a.home, createdMs: a.createdMs }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The templates, sorted by name: each loaded one with its instance count, and each file that did not
 * load as a template named after the file with only its errors.
 */
export function templateItems(ctx: SupervisorContext): (TemplateItem & { readonly placement: AgentTemplate['placement'] | null })[] {
  const counts = new Map<string, number>();
  for (const view of listAgents(ctx.world)) counts.set(view.template, (counts.get(view.template) ?? 0) + 1);
  const items: (TemplateItem & { readonly placement: AgentTemplate['placement'] | null })[] = [...ctx.templates.values()].map((t) => ({
    name: t.name,
    description: t.description,
    capabilities: [...t.capabilities],
    wip: t.wipPerInstance,
    maxInstances: t.maxInstances,
    warm: t.warmPool,
    lifecycle: t.lifecycle,
    isolation: t.isolation,
    runtime: t.runtime.kind,
    taskTimeoutMs: t.taskTimeoutMs,
    resources: { memoryMaxBytes: t.resources.memoryMaxBytes, pidsMax: t.resources.pidsMax, cpuWeight: t.resources.cpuWeight, homeLimitBytes: t.homeLimitBytes },
    instances: counts.get(t.name) ?? 0,
    minInstances: 0,
    placement: { target: t.placement.target, labels: { ...t.placement.labels } },
    errors: [],
    role: t.role,
    manager: t.manager === null ? null : { maxWorkers: t.manager.maxWorkers, maxSubtasks: t.manager.maxSubtasks, templates: [...t.manager.templates] },
  }));
  for (const error of ctx.templateErrors) {
    const name = basename(error.path).replace(/\.(ya?ml|json)$/, '');
    items.push({
      name,
      description: '',
      capabilities: [],
      wip: 0,
      maxInstances: 0,
      warm: 0,
      lifecycle: '',
      isolation: '',
      runtime: '',
      taskTimeoutMs: 0,
      resources: { memoryMaxBytes: 0, pidsMax: 0, cpuWeight: 0, homeLimitBytes: 0 },
      instances: 0,
      minInstances: 0,
      placement: null,
      errors: [error.message],
    });
  }
  return items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const relativeTo = (dir: string, path: string): string => (path.startsWith(`${dir}/`) ? path.slice(dir.length + 1) : path);

/** The board as `mirror` last read it, each card joined with its task row and queue place. */
export function boardItem(ctx: SupervisorContext, mirror: BoardMirror): BoardView {
  const board = mirror.board;
  if (board === undefined) return { name: '', format: ctx.config.boardFormat ?? 'warren', columns: [], held: [], cards: [], readMs: null };
  // The state store's rows in memory (what the registry's query would read back from SQLite).
  const taskRows = ctx.state.tasks();
  const positions = queuePositions(taskRows);
  const rows = new Map(taskRows.map((t) => [t.id, { ...t, queuePosition: positions.get(t.id) ?? null }]));
  const roleOf = new Map<string, string>();
  for (const [role, column] of Object.entries(board.config.roles)) if (typeof column === 'string') roleOf.set(column, role);
  const counts = new Map<string, number>();
  const cards: Card[] = board.tasks.map((task) => {
    counts.set(task.status, (counts.get(task.status) ?? 0) + 1);
    const row = rows.get(task.id);
    return {
      id: task.id,
      title: task.title,
      column: task.status,
      priority: task.priority,
      capabilities: task.capabilities,
      labels: task.labels,
      dependsOn: task.dependsOn,
      state: row?.state ?? null,
      agent: row?.agent ?? null,
      attempt: row?.attempt ?? 0,
      queuePosition: row?.queuePosition ?? null,
      queueReason: row?.queueReason ?? null,
      path: relativeTo(board.dir, task.path),
    };
  });
  return {
    name: board.config.name,
    format: board.format ?? 'warren',
    columns: board.config.columns.map((c) => {
      const count = counts.get(c.id) ?? 0;
      return { id: c.id, name: c.name, wip: c.wip ?? null, count, over: c.wip !== undefined && count > c.wip, role: roleOf.get(c.id) ?? null };
    }),
    held: board.errors.map((e) => ({ path: relativeTo(board.dir, e.path), message: e.message })),
    cards,
    readMs: mirror.readMs ?? null,
  };
}

/** What the task detail adds to the registry's row: its card, and the last execution's output. */
export interface TaskExtras {
  readonly title: string | null;
  readonly column: string | null;
  readonly capabilities: readonly string[];
  /** The tail of the last finished execution's output (its result summary), '' when none. */
  readonly output: string;
}

/** The card of task `id` as last read, and the last execution's output. */
export function taskExtras(ctx: SupervisorContext, mirror: BoardMirror, id: string): TaskExtras {
  const task = mirror.taskById.get(id);
  const executions = ctx.registry.executions({ taskId: id, order: 'desc', limit: 1 });
  return { title: task?.title ?? null, column: task?.status ?? null, capabilities: task?.capabilities ?? [], output: executions[0]?.summary ?? '' };
}

/**
 * Writes a new card on the board in its own format (`createTask` of `@warren/kanban`: a task file,
 * a Backlog.md task, an Obsidian card), records `task.create` with `principal` as the actor and
 * asks for a tick, so the board is read again at once.
 * @returns the task's id and its file, relative to the board folder.
 * @throws {TaskCreateError} naming the field of a bad draft (nothing written); {@link BoardConfigError}
 *   when the board cannot be read; {@link TaskConflictError} when the board file changed meanwhile.
 */
export async function createBoardTask(ctx: SupervisorContext, mirror: BoardMirror, draft: TaskDraft, principal: string): Promise<{ id: string; path: string }> {
  const { id, path } = await createTask(ctx.config.boardDir, draft, {
    ...(ctx.config.boardFormat ? { format: ctx.config.boardFormat } : {}),
    ...(ctx.mapping ? { mapping: ctx.mapping } : {}),
  });
  const shown = relativeTo(ctx.config.boardDir, path);
  ctx.emit({ actor: principal, action: 'task.create', object: `task:${id}`, details: { path: shown, title: draft.title, column: draft.column ?? null } });
  mirror.markChanged(path);
  ctx.requestTick();
  return { id, path: shown };
}

/**
 * Moves task `id`'s card to `column` (its id, its value in the board's files, or its name) in the
 * board's own format, as `principal`, the way a person moves a card: the board's process rules
 * apply (`updateTask` of `@warren/kanban`), and the mirror then treats it as a person's move (a
 * running task moved out of in-progress is cancelled). Records `task.move` and asks for a tick.
 * @throws {WarrenError} `WARREN_TASK_NOT_FOUND` when the card is not on the board as last read,
 *   `WARREN_TASK_UPDATE` (field `column`) for a column the board has not; what `updateTask` throws
 *   ({@link MoveRefusedError}, {@link TaskConflictError}).
 */
export async function moveBoardTask(ctx: SupervisorContext, mirror: BoardMirror, id: string, column: string, principal: string): Promise<{ id: string; from: string; to: string; path: string }> {
  const board = mirror.board;
  const task = mirror.taskById.get(id);
  if (board === undefined || task === undefined) throw new WarrenError('WARREN_TASK_NOT_FOUND', `no task '${id}' on the board`);
  const wanted = column.trim().toLowerCase();
  const target = board.config.columns.find((c) => c.id === column) ?? board.config.columns.find((c) => [c.id, c.value ?? c.id, c.name].some((n) => n.toLowerCase() === wanted));
  if (target === undefined) {
    throw new WarrenError('WARREN_TASK_UPDATE', `'column' names no column of the board: '${column}' (columns: ${board.config.columns.map((c) => c.id).join(', ')})`);
  }
  const from = task.status;
  await updateTask(board, task, { status: target.id }, { expectedHash: task.hash });
  const path = relativeTo(board.dir, task.path);
  ctx.emit({ actor: principal, action: 'task.move', object: `task:${id}`, details: { from, to: target.id, path } });
  mirror.markChanged(task.path);
  ctx.requestTick();
  return { id, from, to: target.id, path };
}

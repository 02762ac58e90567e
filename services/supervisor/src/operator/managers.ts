/**
 * What manager agents' MCP tools do, over the supervisor (the `ManagerPorts` of `@warren/mcp`):
 * subtasks written on the board with their parent (in the board format's own parent field), workers started through the durable command
 * queue (`template.start`, run on the tick by OperatorCommands), ownership and quota checks. The
 * policy has already allowed the tool call (`(agent, mcp:<tool>, call)`, audited) when these run.
 */
import { relative } from 'node:path';
import { WarrenError } from '@warren/core';
import { createTask } from '@warren/kanban';
import type { ManagerPorts, SubtaskView } from '@warren/mcp';
import { CommandKind, isTerminal, TaskState } from '@warren/registry';
import type { SupervisorContext } from '../context.js';
import type { SupervisorParts } from '../parts.js';
import type { ManagerQuotas } from '../templates.js';
import { liveWorkers } from './commands.js';

/**
 * How long stop_worker and cancel_subtask wait for their command's outcome, ms: the next tick
 * takes it, which on a loaded host can be seconds away; the tool then answers `queued`.
 */
const COMMAND_WAIT_MS = 30_000;

/** The first non-empty lines of `text` (at most `lines`, each at most 200 characters), or null for none. */
function headOf(text: string | null | undefined, lines = 3): string | null {
  if (!text) return null;
  const head = text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '')
    .slice(0, lines)
    .map((l) => (l.length > 200 ? `${l.slice(0, 199)}…` : l));
  return head.length > 0 ? head.join('\n') : null;
}

/**
 * Starts again the workers a waiting parent needs, once, when the supervisor starts (after
 * recovery): for each parent a manager's succeeded execution left waiting while some of its
 * subtasks are still open (no row yet, or ready, assigned or running), the workers that manager
 * started (the ledger's `manager_workers`) that are not live are started again under their own
 * names, as long as the manager's template still lists their template and its `maxWorkers` quota
 * (live workers counted) and the template's backoff allow. Without this no agent would take the
 * subtasks after a restart: the planner starts no agent of a template a manager lists, and the
 * manager, whose execution is over, asks for none.
 * @returns the names of the workers started, in the ledger's order.
 */
export function resumeWorkers(ctx: SupervisorContext, agents: Pick<SupervisorParts['agents'], 'has' | 'start' | 'mayStart'>, nowMs: number): string[] {
  const started: string[] = [];
  const managers = new Set<string>();
  for (const { parent, manager } of ctx.managers.waitingParents()) {
    const open = ctx.managers.subtasksOf(parent).some((s) => {
      const row = ctx.state.task(s.subtask);
      return row === undefined || !isTerminal(row.state);
    });
    if (open) managers.add(manager);
  }
  for (const manager of managers) {
    const quotas = ctx.templates.get(ctx.accounts.get(manager)?.template ?? '')?.manager;
    if (!quotas) continue;
    let live = liveWorkers(ctx, (agent) => agents.has(agent), manager).length;
    for (const { worker, template } of ctx.managers.workersOf(manager)) {
      if (live >= quotas.maxWorkers) break;
      if (agents.has(worker) || !quotas.templates.includes(template) || !ctx.templates.has(template) || !ctx.accounts.get(worker)) continue;
      if (!agents.mayStart(template, nowMs)) continue;
      agents.start(template, nowMs, worker);
      if (!agents.has(worker)) continue;
      live += 1;
      started.push(worker);
    }
  }
  if (started.length > 0) ctx.log.info({ workers: started }, 'started again the workers of managers whose parents wait for open subtasks');
  return started;
}

/** The manager ports over the supervisor's context and stage modules. */
export function managerPorts(ctx: SupervisorContext, parts: Pick<SupervisorParts, 'agents' | 'mirror'>): ManagerPorts {
  const fail = (code: `WARREN_${string}`, message: string): never => {
    throw new WarrenError(code, message);
  };
  const quotasOf = (principal: string): ManagerQuotas => {
    const template = ctx.templates.get(ctx.accounts.get(principal)?.template ?? '');
    return template?.manager ?? fail('WARREN_MANAGER_NOT_MANAGER', `${principal} is not a manager (its template has no 'role: manager')`);
  };
  /** Whether `principal` works on task `id` now. */
  const workingOn = (principal: string, id: string): boolean => {
    const row = ctx.state.task(id);
    return row?.agent === principal && (row.state === TaskState.assigned || row.state === TaskState.running);
  };
  const openSubtasksBy = (principal: string): string[] =>
    ctx.managers
      .subtasksBy(principal)
      .filter((s) => {
        const row = ctx.state.task(s.subtask);
        return row === undefined || !isTerminal(row.state);
      })
      .map((s) => s.subtask);
  const lastResult = (taskId: string): string | null => headOf(ctx.registry.executions({ taskId, order: 'desc', limit: 1 })[0]?.summary);
  const command = async (kind: CommandKind, target: string, principal: string, waitMs: number) => {
    const id = ctx.registry.commands.enqueue(kind, target, principal, Date.now());
    ctx.requestTick();
    try {
      const row = await ctx.registry.commands.waitForOutcome(id, { timeoutMs: waitMs });
      return { command: id, state: row.state, outcome: row.outcome };
    } catch {
      const row = ctx.registry.commands.get(id);
      return { command: id, state: row?.state ?? 'queued', outcome: row?.outcome ?? null };
    }
  };

  return {
    async createSubtask(principal, input) {
      const quotas = quotasOf(principal);
      if (!ctx.state.task(input.parent) && !ctx.managers.subtask(input.parent)) fail('WARREN_TASK_NOT_FOUND', `no task '${input.parent}'`);
      const own = ctx.managers.subtask(input.parent);
      if (!workingOn(principal, input.parent) && !(own?.manager === principal && workingOn(principal, own.parent))) {
        fail('WARREN_MANAGER_NOT_OWNER', `${principal} is not working on task '${input.parent}' (a subtask's parent must be a task it works on now, or a subtask of one)`);
      }
      const open = openSubtasksBy(principal);
      if (open.length >= quotas.maxSubtasks) {
        fail('WARREN_MANAGER_QUOTA', `quota maxSubtasks refuses another subtask: ${principal} has ${open.length} open subtasks of at most ${quotas.maxSubtasks}`);
      }
      const { id, path } = await createTask(
        ctx.config.boardDir,
        { title: input.title, body: input.body, capabilities: input.capabilities, priority: input.priority, parent: input.parent },
        { ...(ctx.config.boardFormat ? { format: ctx.config.boardFormat } : {}), ...(ctx.mapping ? { mapping: ctx.mapping } : {}) },
      );
      const shown = relative(ctx.config.boardDir, path);
      ctx.transaction(() => {
        ctx.managers.addSubtask(principal, input.parent, id, input.title, Date.now());
        ctx.emit({ actor: principal, action: 'task.create', object: `task:${id}`, details: { path: shown, title: input.title, column: null } });
      });
      parts.mirror.markChanged(path);
      ctx.requestTick();
      return { id, parent: input.parent, path: shown };
    },

    async startWorker(principal, template, waitMs) {
      const quotas = quotasOf(principal);
      if (!quotas.templates.includes(template)) {
        fail('WARREN_MANAGER_TEMPLATE', `${principal} may not start workers of template '${template}' (its manager.templates: ${quotas.templates.join(', ') || 'none'})`);
      }
      const live = liveWorkers(ctx, (agent) => parts.agents.has(agent), principal);
      // Starts it asked for that the tick has not taken yet count too: on a slow tick the answer
      // to a start over the quota is then the same, and at once.
      const queued = ctx.registry.commands.queued().filter((c) => c.kind === CommandKind.templateStart && c.requestedBy === principal).length;
      if (live.length + queued >= quotas.maxWorkers) {
        const starting = queued > 0 ? ` and ${queued} queued to start` : '';
        fail('WARREN_MANAGER_QUOTA', `quota maxWorkers refuses another worker: ${principal} has ${live.length} live workers${starting} of at most ${quotas.maxWorkers} (${live.join(', ')})`);
      }
      const done = await command(CommandKind.templateStart, template, principal, waitMs);
      if (done.state === 'failed') fail(/^quota /.test(done.outcome ?? '') ? 'WARREN_MANAGER_QUOTA' : 'WARREN_COMMAND', done.outcome ?? 'refused');
      return { ...done, worker: done.state === 'done' ? (done.outcome?.split(' ', 1)[0] ?? null) : null };
    },

    listWorkers(principal) {
      quotasOf(principal);
      const open = ctx.state.openAssignments();
      return {
        workers: ctx.managers.workersOf(principal).map((w) => {
          const last = ctx.registry.executions({ agent: w.worker, order: 'desc', limit: 1 })[0];
          return {
            name: w.worker,
            template: w.template,
            state: ctx.state.agent(w.worker)?.state ?? 'starting',
            live: parts.agents.has(w.worker),
            currentTask: open.find((a) => a.agent === w.worker)?.taskId ?? null,
            lastResult: headOf(last?.summary),
          };
        }),
      };
    },

    stopWorker(principal, name) {
      quotasOf(principal);
      if (ctx.managers.managerOf(name) !== principal) fail('WARREN_MANAGER_NOT_OWNER', `${name} is not a worker of ${principal}`);
      return command(CommandKind.agentStop, name, principal, COMMAND_WAIT_MS);
    },

    cancelSubtask(principal, id) {
      quotasOf(principal);
      if (ctx.managers.subtask(id)?.manager !== principal) fail('WARREN_MANAGER_NOT_OWNER', `task '${id}' is not a subtask of ${principal}`);
      return command(CommandKind.taskCancel, id, principal, COMMAND_WAIT_MS);
    },

    subtaskResults(principal, parent) {
      quotasOf(principal);
      const subtasks = ctx.managers.subtasksOf(parent);
      if (ctx.state.task(parent)?.agent !== principal && !subtasks.some((s) => s.manager === principal)) {
        fail('WARREN_MANAGER_NOT_OWNER', `${principal} has no subtasks under task '${parent}'`);
      }
      const views: SubtaskView[] = subtasks.map((s) => {
        const row = ctx.state.task(s.subtask);
        return {
          id: s.subtask,
          title: s.title,
          state: row?.state ?? 'new',
          agent: row?.agent ?? null,
          result: lastResult(s.subtask) ?? (row?.reason ? headOf(row.reason) : null),
        };
      });
      return { parent, subtasks: views };
    },
  };
}

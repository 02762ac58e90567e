/**
 * The supervisor's view of a layout, read straight from its state database (read-only), for the
 * failure message of a run that did not reach quiescence: tasks that are not terminal with their
 * execution, and agents with their state.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { CliProcess } from '../support/cli.js';
import { finish, type Layout, type RunEnd } from './support.js';

/** A task that is not terminal, with its latest execution (if any). */
export interface OpenTaskView {
  readonly id: string;
  /** Warren's task state (`ready`, `assigned`, `running`, `held`). */
  readonly state: string;
  readonly attempt: number;
  /** `pending` when Warren has a board write for it still to do. */
  readonly boardSync: string;
  /** ms since the epoch before which a retry may not start, or null. */
  readonly notBeforeMs: number | null;
  readonly reason: string | null;
  /** The latest execution: `taskId:attempt` on `agent`, in `state` (pending, published, acked, finished). */
  readonly execution: { readonly agent: string; readonly attempt: number; readonly state: string; readonly outcome: string | null } | null;
}

/** One agent row. */
export interface AgentView {
  readonly name: string;
  readonly state: string;
  readonly pid: number | null;
  readonly lastExit: string | null;
  readonly tasksDone: number;
}

/** What {@link supervisorView} read. */
export interface SupervisorView {
  /** Count of tasks per Warren state (all tasks, terminal ones too). */
  readonly taskStates: Readonly<Record<string, number>>;
  readonly openTasks: readonly OpenTaskView[];
  readonly agents: readonly AgentView[];
  /** Executions not finished. */
  readonly openExecutions: number;
}

/**
 * Reads the layout's `warren.db` read-only (a running supervisor may hold it; WAL readers do not
 * block it). @returns undefined when there is no database yet.
 */
export function supervisorView(layout: Layout): SupervisorView | undefined {
  const path = join(layout.stateDir, 'warren.db');
  if (!existsSync(path)) return undefined;
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const states = db.prepare('SELECT state, count(*) AS n FROM tasks GROUP BY state').all() as { state: string; n: number }[];
    const open = db
      .prepare(
        `SELECT t.id, t.state, t.attempt, t.board_sync AS boardSync, t.not_before_ms AS notBeforeMs, t.reason,
                a.agent, a.attempt AS aAttempt, a.state AS aState, a.outcome
           FROM tasks t
           LEFT JOIN assignments a ON a.task_id = t.id AND a.attempt = (SELECT max(attempt) FROM assignments WHERE task_id = t.id)
          WHERE t.state NOT IN ('succeeded', 'failed', 'timed_out', 'cancelled')
          ORDER BY t.id`,
      )
      .all() as {
      id: string;
      state: string;
      attempt: number;
      boardSync: string;
      notBeforeMs: number | null;
      reason: string | null;
      agent: string | null;
      aAttempt: number | null;
      aState: string | null;
      outcome: string | null;
    }[];
    const agents = db.prepare('SELECT name, state, pid, last_exit AS lastExit, tasks_done AS tasksDone FROM agents ORDER BY name').all() as AgentView[];
    const openExecutions = (db.prepare("SELECT count(*) AS n FROM assignments WHERE state != 'finished'").get() as { n: number }).n;
    return {
      taskStates: Object.fromEntries(states.map((s) => [s.state, s.n])),
      openTasks: open.map((r) => ({
        id: r.id,
        state: r.state,
        attempt: r.attempt,
        boardSync: r.boardSync,
        notBeforeMs: r.notBeforeMs,
        reason: r.reason,
        execution: r.agent === null ? null : { agent: r.agent, attempt: r.aAttempt!, state: r.aState!, outcome: r.outcome },
      })),
      agents,
      openExecutions,
    };
  } finally {
    db.close();
  }
}

/**
 * {@link supervisorView} as text: the task states, the non-terminal tasks grouped by (state,
 * board sync, execution state) with up to `perGroup` ids each, and every agent.
 */
export function describeSupervisorView(layout: Layout, perGroup = 8): string {
  let view: SupervisorView | undefined;
  try {
    view = supervisorView(layout);
  } catch (error) {
    return `supervisor view: cannot read the state database: ${(error as Error).message}`;
  }
  if (!view) return 'supervisor view: no state database yet';
  const nowMs = Date.now();
  const groups = new Map<string, OpenTaskView[]>();
  for (const t of view.openTasks) {
    const e = t.execution;
    const key = `${t.state} (board ${t.boardSync}${t.notBeforeMs !== null && t.notBeforeMs > nowMs ? `, backing off` : ''}); execution ${e ? `${e.state}${e.outcome ? `/${e.outcome}` : ''}` : 'none'}`;
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  const lines = [
    `supervisor view: tasks by state ${JSON.stringify(view.taskStates)}, open executions ${view.openExecutions}`,
    `  not terminal: ${view.openTasks.length}`,
  ];
  for (const [key, tasks] of groups) {
    const shown = tasks.slice(0, perGroup).map((t) => `${t.id}#${t.attempt}${t.execution ? `@${t.execution.agent}` : ''}`);
    lines.push(`    ${tasks.length} ${key}: ${shown.join(', ')}${tasks.length > perGroup ? ', …' : ''}`);
  }
  lines.push(`  agents: ${view.agents.length}`);
  for (const a of view.agents) {
    lines.push(`    ${a.name} ${a.state}${a.pid === null ? '' : ` pid ${a.pid}`}, ${a.tasksDone} tasks done${a.lastExit ? `, last exit: ${a.lastExit}` : ''}`);
  }
  return lines.join('\n');
}

/**
 * Like {@link finish}, but `inspectBeforeMs` before the timeout the supervisor is sent SIGUSR2, so
 * its log holds its in-memory view (`supervisor view`) when the run is then killed as stalled.
 */
export async function finishInspecting(run: CliProcess, timeoutMs: number, inspectBeforeMs = 3_000): Promise<RunEnd> {
  const timer = setTimeout(() => {
    if (run.child.pid !== undefined && run.child.exitCode === null && run.child.signalCode === null) process.kill(run.child.pid, 'SIGUSR2');
  }, Math.max(0, timeoutMs - inspectBeforeMs));
  try {
    return await finish(run, timeoutMs);
  } finally {
    clearTimeout(timer);
  }
}

/** The last `supervisor view` the run logged (see `Supervisor.inspect`), as indented JSON, or a note that there is none. */
export function loggedInspection(run: CliProcess): string {
  const lines = run.stderr().split('\n').filter((l) => l.includes('"msg":"supervisor view"'));
  const last = lines[lines.length - 1];
  if (!last) return 'supervisor memory: not logged';
  try {
    return `supervisor memory: ${JSON.stringify((JSON.parse(last) as { view: unknown }).view, null, 1)}`;
  } catch {
    return `supervisor memory: ${last.slice(0, 4000)}`;
  }
}

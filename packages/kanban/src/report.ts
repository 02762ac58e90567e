/** `checkBoard`: everything Warren understood about a board, for `warren board check`. */
import { loadBoard } from './board.js';
import { checkDependencies } from './dependencies.js';
import { BoardConfigError } from './errors.js';
import { parentsToComplete, wipStatus, type ParentCompletion, type WipEntry } from './process.js';
import type { BoardFormatName, BoardSnapshot, DependencyProblem, LoadBoardOptions } from './types.js';

/** One task as `checkBoard` reports it. */
export interface TaskSummary {
  readonly id: string;
  readonly title: string;
  /** Column id, and the column's name. */
  readonly status: string;
  readonly column: string;
  readonly priority: string;
  readonly capabilities: string[];
  readonly labels: string[];
  readonly assignee: string | null;
  readonly dependsOn: string[];
  readonly parentTaskId: string | null;
  /** Relative to the board folder. */
  readonly path: string;
  /** 1-based line of the card (Obsidian boards), else null. */
  readonly line: number | null;
}

/** One problem with a file, as `checkBoard` reports it. */
export interface ReportedError {
  /** Absolute path. */
  readonly path: string;
  readonly line: number;
  readonly field: string | null;
  /** `backlog/tasks/x.md:4: 'status' must be one of …`. */
  readonly message: string;
}

/** What `checkBoard` returns; JSON-safe (`warren board check --json` prints it). */
export interface BoardReport {
  readonly dir: string;
  /** Null when the board config could not be read. */
  readonly format: BoardFormatName | null;
  /** False when there is any error (config or task file), WIP violation (over a limit) or dependency problem. */
  readonly ok: boolean;
  /** Column ids, names and limits in board order, and the roles. Empty when the config is unusable. */
  readonly columns: { id: string; name: string; wip: number | null; count: number }[];
  readonly roles: Record<string, string> | null;
  readonly tasks: TaskSummary[];
  /** The config error (if any) first, then one per task file or card that did not load. */
  readonly errors: ReportedError[];
  /** Columns and assignees over their WIP limits. */
  readonly wipViolations: WipEntry[];
  readonly dependencyProblems: DependencyProblem[];
  /** Parents whose subtasks are all done (informational; does not affect `ok`). */
  readonly parentsToComplete: ParentCompletion[];
}

/** Builds the report of an already loaded snapshot. */
export function reportOf(snapshot: BoardSnapshot): BoardReport {
  const names = new Map(snapshot.config.columns.map((c) => [c.id, c.name]));
  const errors: ReportedError[] = snapshot.errors.map((e) => ({ path: e.path, line: e.line, field: e.field ?? null, message: e.message }));
  const wipViolations = wipStatus(snapshot).filter((w) => w.over);
  const dependencyProblems = checkDependencies(snapshot.tasks);
  return {
    dir: snapshot.dir,
    format: snapshot.format ?? 'warren',
    ok: errors.length === 0 && wipViolations.length === 0 && dependencyProblems.length === 0,
    columns: snapshot.config.columns.map((c) => ({ id: c.id, name: c.name, wip: c.wip ?? null, count: snapshot.tasks.filter((t) => t.status === c.id).length })),
    roles: { ...snapshot.config.roles },
    tasks: snapshot.tasks.map((t) => ({
      id: t.id,
      title: t.title,
      status: t.status,
      column: names.get(t.status) ?? t.status,
      priority: t.priority,
      capabilities: [...t.capabilities],
      labels: [...t.labels],
      assignee: t.assignee,
      dependsOn: [...t.dependsOn],
      parentTaskId: t.parentTaskId ?? null,
      path: t.relativePath,
      line: t.card?.line ?? null,
    })),
    errors,
    wipViolations,
    dependencyProblems,
    parentsToComplete: parentsToComplete(snapshot),
  };
}

/**
 * Loads the board in `dir` (any format; `options.format`, `options.mapping` as for `loadBoard`)
 * and reports every task it understood, every error, every WIP violation and every dependency
 * problem. A board config that cannot be read is reported as the only error (format null), not
 * thrown. `ok` is false when anything is wrong; `warren board check` exits non-zero then.
 *
 * @throws only for unexpected failures (not `BoardConfigError`).
 */
export async function checkBoard(dir: string, options: LoadBoardOptions = {}): Promise<BoardReport> {
  try {
    return reportOf(await loadBoard(dir, options));
  } catch (error) {
    if (!(error instanceof BoardConfigError)) throw error;
    return {
      dir,
      format: null,
      ok: false,
      columns: [],
      roles: null,
      tasks: [],
      errors: [{ path: error.path, line: error.line, field: error.field ?? null, message: error.message }],
      wipViolations: [],
      dependencyProblems: [],
      parentsToComplete: [],
    };
  }
}

/**
 * The report as text for a terminal: a header line (`board DIR (format): N tasks, E errors, …`),
 * the columns with counts and limits, one line per task (`  id  [column] priority  title  caps`),
 * then sections `errors:`, `WIP violations:`, `dependency problems:`, `parents to complete:` (only
 * when not empty), and a final `ok` or `NOT ok` line.
 */
export function formatBoardReport(report: BoardReport): string {
  const out: string[] = [];
  out.push(
    `board ${report.dir} (${report.format ?? 'unreadable'}): ${report.tasks.length} task(s), ${report.errors.length} error(s), ` +
      `${report.wipViolations.length} WIP violation(s), ${report.dependencyProblems.length} dependency problem(s)`,
  );
  if (report.columns.length > 0) {
    out.push('columns:');
    for (const c of report.columns) {
      const roles = Object.entries(report.roles ?? {}).filter(([, id]) => id === c.id).map(([role]) => role);
      out.push(`  ${c.id} (${c.name}): ${c.count}${c.wip === null ? '' : `/${c.wip}`}${roles.length > 0 ? `  [${roles.join(', ')}]` : ''}`);
    }
  }
  if (report.tasks.length > 0) {
    out.push('tasks:');
    for (const t of report.tasks) {
      const extra = [
        t.capabilities.length > 0 ? `needs ${t.capabilities.join(', ')}` : '',
        t.dependsOn.length > 0 ? `after ${t.dependsOn.join(', ')}` : '',
        t.parentTaskId ? `parent ${t.parentTaskId}` : '',
        t.assignee ? `@${t.assignee}` : '',
      ].filter((s) => s !== '');
      out.push(`  ${t.id}  [${t.column}] ${t.priority}  ${t.title}${extra.length > 0 ? `  (${extra.join('; ')})` : ''}`);
    }
  }
  const section = (title: string, lines: string[]): void => {
    if (lines.length === 0) return;
    out.push(`${title}:`);
    for (const line of lines) out.push(`  ${line}`);
  };
  section('errors', report.errors.map((e) => e.message));
  section('WIP violations', report.wipViolations.map((w) => w.message));
  section('dependency problems', report.dependencyProblems.map((p) => p.message));
  section('parents to complete', report.parentsToComplete.map((p) => `${p.parentId}: subtasks ${p.subtaskIds.join(', ')} are done`));
  out.push(report.ok ? 'ok' : 'NOT ok');
  return `${out.join('\n')}\n`;
}

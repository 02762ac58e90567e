/**
 * Shared parts of the board-edit suite: reading a layout's audit trail and cards, waiting for a
 * card or an audit row, and the agent processes of a layout's uid block.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processesOfUids, waitFor, warrenSync, type AuditRow, type CliProcess, type TestLayout } from '../support/cli.js';

/** Replaces a file the way editors do: a temporary file renamed over it. */
export function writeAtomically(path: string, text: string): void {
  const temp = `${path}.edit`;
  writeFileSync(temp, text);
  renameSync(temp, path);
}

/** The layout's audit rows (all, or those matching `--action` patterns given in `filter`). */
export function audit(made: TestLayout, ...filter: string[]): AuditRow[] {
  if (!existsSync(join(made.dir, 'var', 'warren.db'))) return [];
  return JSON.parse(warrenSync(['audit', '--json', '--limit', '100000', ...filter, ...made.args()])) as AuditRow[];
}

/** The value of frontmatter key `key` in card `id` as written (quotes kept), or undefined. */
export function cardValue(made: TestLayout, id: string, key: string): string | undefined {
  const path = join(made.dir, 'kanban', 'tasks', `${id}.md`);
  if (!existsSync(path)) return undefined;
  return new RegExp(`^${key}: (.*)$`, 'm').exec(readFileSync(path, 'utf8'))?.[1];
}

/** Waits until `check` holds; on time-out the error carries the supervisor's last log lines. */
export async function waitDuring(run: CliProcess, what: string, check: () => boolean, timeoutMs = 90_000): Promise<void> {
  try {
    await waitFor(what, () => check() || run.child.exitCode !== null, timeoutMs);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${run.stderr().slice(-3000)}`);
  }
  if (!check()) throw new Error(`the supervisor ended before ${what}\n${run.stderr().slice(-3000)}`);
}

/** True once the audit shows attempt `attempt` of `taskId` started on its agent. */
export function started(made: TestLayout, taskId: string, attempt = 1): boolean {
  return audit(made, '--action', 'task.start').some((r) => r.object === `task:${taskId}` && r.details.attempt === attempt);
}

/** The uids of the layout's `--uid-range` block. */
export function layoutUids(made: TestLayout): Set<number> {
  const args = made.args();
  const [low, high] = args[args.indexOf('--uid-range') + 1]!.split('-').map(Number) as [number, number];
  const uids = new Set<number>();
  for (let uid = low; uid <= high; uid += 1) uids.add(uid);
  return uids;
}

/** Pids of processes running as one of the layout's agent uids. */
export function agentProcessesOf(made: TestLayout): number[] {
  return processesOfUids(layoutUids(made));
}

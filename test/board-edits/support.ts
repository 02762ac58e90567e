/**
 * Shared parts of the board-edit suite: reading a layout's audit trail and cards, waiting for a
 * card or an audit row, and the agent processes of a layout's uid block.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, processesOfUids, repo, waitFor, warrenSync, type AuditRow, type CliProcess, type CliResult, type TestLayout } from '../support/cli.js';

/** Starts `warren <args>` as `startWarren` does, with `env` added to the environment. */
export function startWarrenWithEnv(args: readonly string[], env: Readonly<Record<string, string>>): CliProcess {
  const child = spawn(process.execPath, [cli, ...args], {
    cwd: repo,
    env: { ...process.env, WARREN_LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, stderr: () => stderr, done };
}

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

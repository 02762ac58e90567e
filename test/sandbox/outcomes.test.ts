/**
 * What a task's card says when it hits a limit, through the real supervisor (`warren run
 * --until-idle`): a fork bomb whose parent stays alive is stopped at its process limit and its
 * card fails with `process limit reached (N)` (#44), an OOM kill is named with the memory limit
 * (#46), and `> /dev/stdout` and `> /dev/stderr` work in tasks (#75). A neighbour task finishes
 * meanwhile, and nothing of the agents is left afterwards.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeTestLayout, processesOfUids, requireMachine, shellTask, warren, type AuditRow, type TestLayout } from '../support/cli.js';

beforeAll(() => requireMachine());

const layouts: TestLayout[] = [];
afterEach(() => {
  for (const made of layouts.splice(0)) made.remove();
});

/** A layout whose shell template has `pidsMax` processes, a 2 s watchdog grace and a 10-minute task timeout. */
function layoutWith(tasks: Record<string, string>, pidsMax: number): TestLayout {
  const made = makeTestLayout(tasks, { copyAgents: true });
  layouts.push(made);
  const template = join(made.dir, 'agents', 'shell.yaml');
  writeFileSync(
    template,
    `${readFileSync(template, 'utf8').replace('  pids: 512', `  pids: ${pidsMax}`).replace('  timeout: 5m', '  timeout: 10m')}watchdog:\n  grace: 2s\n`,
  );
  return made;
}

/** The `result:` value of a task file, unquoted. */
function resultOf(text: string): string {
  const raw = /^result: (.*)$/m.exec(text)?.[1] ?? '';
  return raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
}

/** Agent uids of a layout's state (from `warren accounts`). */
async function agentUids(args: (...extra: string[]) => string[]): Promise<Set<number>> {
  const accounts = JSON.parse((await warren(['accounts', '--json', ...args()])).stdout) as { uid: number }[];
  return new Set(accounts.map((a) => a.uid));
}

/** Cgroups under warren/ named with the instance tag of the layout in `dir` (its state directory's). */
function leftoverCgroups(dir: string): string[] {
  const tag = `w${createHash('sha256').update(join(dir, 'var')).digest('hex').slice(0, 6)}-`;
  const found: string[] = [];
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const parent = join('/sys/fs/cgroup', hierarchy, 'warren');
    if (existsSync(parent)) found.push(...readdirSync(parent).filter((name) => name.startsWith(tag)).map((name) => join(parent, name)));
  }
  return found;
}

describe('task outcomes at the limits', () => {
  it('stops a fork bomb whose parent stays alive: the card fails with the process limit, the audit says why (#44)', { timeout: 300_000 }, async () => {
    // The bomb's loop runs for minutes at least and the task timeout is 10 minutes: only the
    // process-limit watchdog can end it before the run's deadline.
    const { dir, args, file } = layoutWith(
      {
        // Forks until the limit refuses them and keeps trying, its parent alive: 100 million tries,
        // over 100 s even at 1 µs a turn (a refused fork takes about a millisecond here).
        'a-bomb': shellTask('a-bomb', 'i=0; while [ $i -lt 100000000 ]; do (sleep 600 &) 2>/dev/null; i=$((i + 1)); done; sleep 600'),
        'b-normal': shellTask('b-normal', 'sleep 2; echo normal-done'),
      },
      64,
    );
    const run = await warren(args('run', '--until-idle', '--json', '--kill-grace', '1s'), 240_000);
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    const bomb = file('a-bomb');
    expect(bomb).toMatch(/^status: failed$/m);
    expect(resultOf(bomb)).toBe('failed: process limit reached (64)');
    expect(file('b-normal')).toMatch(/^status: done$/m);
    expect(resultOf(file('b-normal'))).toBe('normal-done');

    const rows = JSON.parse((await warren(['audit', '--json', ...args()])).stdout) as AuditRow[];
    // Stopped by the watchdog with reason `pids`, or (when the limit refused its runner a thread
    // first) ended with exit kind `pids`.
    const stopped = rows.filter(
      (r) => (r.action === 'agent.watchdog' && r.details.reason === 'pids') || (r.action === 'agent.exit' && (r.details.exit as { kind: string }).kind === 'pids'),
    );
    expect(stopped.length, JSON.stringify(rows.filter((r) => r.action.startsWith('agent.')))).toBeGreaterThan(0);
    const failed = rows.find((r) => r.action === 'task.fail' && r.object === 'task:a-bomb');
    expect(failed).toBeDefined();
    expect(rows.filter((r) => r.action === 'task.requeue' && r.object === 'task:a-bomb'), JSON.stringify(rows.filter((r) => r.object === 'task:a-bomb'))).toEqual([]);

    expect(processesOfUids(await agentUids(args))).toEqual([]);
    expect(leftoverCgroups(dir)).toEqual([]);
  });

  it('names an OOM kill with the memory limit, and lets tasks write to /dev/stdout and /dev/stderr (#46, #75)', { timeout: 300_000 }, async () => {
    const { args, file } = layoutWith(
      {
        'a-mem': shellTask('a-mem', `perl -e '$x = q(a) x (2 * 1024**3)'`),
        'b-devs': shellTask('b-devs', 'echo to-stderr > /dev/stderr; echo to-stdout > /dev/stdout'),
      },
      512,
    );
    const run = await warren(args('run', '--until-idle', '--json'), 240_000);
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    const mem = file('a-mem');
    expect(mem).toMatch(/^status: failed$/m);
    expect(resultOf(mem)).toBe('failed (exit 137): out of memory (limit 1 GiB)');
    const devs = file('b-devs');
    expect(devs, devs).toMatch(/^status: done$/m);
    expect(resultOf(devs)).toMatch(/to-stdout/);
    expect(resultOf(devs)).toMatch(/to-stderr/);
    expect(processesOfUids(await agentUids(args))).toEqual([]);
  });
});

import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  processesMentioning,
  processesOfUids,
  requireMachine,
  startWarren,
  waitFor,
  warren,
  makeTestLayout,
  shellTask,
  type TestLayout,
} from './support/cli.js';

const layouts: TestLayout[] = [];
afterEach(() => {
  for (const made of layouts.splice(0)) made.remove();
});

function layout(tasks: Record<string, string>): TestLayout {
  const made = makeTestLayout(tasks);
  layouts.push(made);
  return made;
}

const task = shellTask;

beforeAll(() => requireMachine());

describe('warren up', () => {
  it('works the board, then on SIGTERM stops its agents and its nats-server and exits 0', async () => {
    const { dir, args } = layout({
      quick: task('quick', 'echo quick > quick.txt'),
      sleeper: task('sleeper', 'sleep 600'),
    });
    const up = startWarren(args('up', '--kill-grace', '1s'));
    try {
      await waitFor('the quick task to be done', () => /^status: done$/m.test(readFileSync(join(dir, 'kanban', 'tasks', 'quick.md'), 'utf8')));
      await waitFor('the sleeper to be running', () => /^status: in_progress$/m.test(readFileSync(join(dir, 'kanban', 'tasks', 'sleeper.md'), 'utf8')));
      const status = JSON.parse((await warren(['status', '--json', ...args()])).stdout) as { supervisor: string; pid: number };
      expect(status.supervisor).toBe('running');
      expect(status.pid).toBe(up.child.pid);
      expect(processesMentioning(join(dir, 'var', 'nats')).length).toBeGreaterThan(0);
      up.child.kill('SIGTERM');
      const result = await up.done;
      expect(result.code, result.stderr.slice(-3000)).toBe(0);
    } finally {
      up.child.kill('SIGKILL');
    }
    const accounts = JSON.parse((await warren(['accounts', '--json', ...args()])).stdout) as { uid: number }[];
    expect(accounts.length).toBeGreaterThan(0);
    expect(processesOfUids(new Set(accounts.map((a) => a.uid)))).toEqual([]);
    expect(processesMentioning(join(dir, 'var', 'nats'))).toEqual([]);
    const stops = JSON.parse((await warren(['audit', '--json', '--action', 'agent.*', ...args()])).stdout) as {
      action: string;
      details: { reason?: string };
    }[];
    expect(stops.filter((r) => r.action === 'agent.stop').every((r) => r.details.reason === 'shutdown')).toBe(true);
    const after = JSON.parse((await warren(['status', '--json', ...args()])).stdout) as { supervisor: string };
    expect(after.supervisor).toBe('stopped');
  });
});

describe('policy', () => {
  it('leaves a denied task unassigned with the reason, audits the denial and runs the rest', async () => {
    const { dir, args } = layout({
      allowed: task('allowed', 'echo ok > ok.txt'),
      'secret-plan': task('secret-plan', 'echo leaked > leak.txt'),
    });
    appendFileSync(join(dir, 'policies', 'policy.csv'), '\np, role:worker, task:secret-*, assign, deny\n');
    const before = readFileSync(join(dir, 'kanban', 'tasks', 'secret-plan.md'), 'utf8');
    const run = await warren(args('run', '--until-idle', '--json'));
    expect(run.code).toBe(1);
    const summary = JSON.parse(run.stdout) as { succeeded: string[]; unplaced: { taskId: string; reason: string }[] };
    expect(summary.succeeded).toEqual(['allowed']);
    expect(summary.unplaced).toEqual([{ taskId: 'secret-plan', reason: expect.stringMatching(/policy denies/) }]);
    expect(readFileSync(join(dir, 'kanban', 'tasks', 'secret-plan.md'), 'utf8')).toBe(before);
    const denials = JSON.parse((await warren(['audit', '--json', '--decision', 'deny', ...args()])).stdout) as {
      object: string;
      action: string;
    }[];
    expect(denials.length).toBeGreaterThan(0);
    expect(denials.every((r) => r.object === 'task:secret-plan' && r.action === 'policy.decide')).toBe(true);
  });

  it('refuses to start with a broken policy file and names the file and line', async () => {
    const { dir, args } = layout({ allowed: task('allowed', 'true') });
    writeFileSync(
      join(dir, 'policies', 'policy.csv'),
      'g, template:shell, role:worker\n\np, role:worker, task:*\n',
    );
    const run = await warren(args('run', '--until-idle'));
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/policy\.csv:3: 'p' needs 4 fields/);
    expect(readFileSync(join(dir, 'kanban', 'tasks', 'allowed.md'), 'utf8')).toMatch(/^status: ready$/m);
  });
});

describe('task failures', () => {
  it('moves a failing task to the failed column with its exit code and output on the card', async () => {
    const { dir, args } = layout({ broken: task('broken', 'echo "disk full" >&2; exit 3') });
    const run = await warren(args('run', '--until-idle', '--json'));
    expect(run.code).toBe(1);
    const summary = JSON.parse(run.stdout) as { failed: { taskId: string; reason: string }[] };
    expect(summary.failed).toEqual([{ taskId: 'broken', reason: expect.stringMatching(/exit 3.*disk full/) }]);
    const text = readFileSync(join(dir, 'kanban', 'tasks', 'broken.md'), 'utf8');
    expect(text).toMatch(/^status: failed$/m);
    expect(text).toMatch(/^result: .*exit 3.*disk full/m);
  });
});

describe('warren exec', () => {
  it("runs a command in an agent's sandbox as its tasks run, streams its output, returns its code, and obeys the policy", async () => {
    const { dir, args } = layout({ quick: task('quick', 'echo hi > hi.txt') });
    expect((await warren(args('run', '--until-idle'))).code).toBe(0);
    const accounts = JSON.parse((await warren(['accounts', '--json', ...args()])).stdout) as { name: string; uid: number }[];
    const agent = accounts[0]!;
    const run = await warren(['exec', agent.name, ...args(), '--', 'sh', '-c', 'id -u; cat ~/work/quick/hi.txt; ls /etc/shadow; exit 5']);
    expect(run.code).toBe(5);
    expect(run.stdout).toContain(`${agent.uid}\nhi\n`);
    expect(run.stderr).toMatch(/\/etc\/shadow.*No such file or directory/);
    const audit = JSON.parse((await warren(['audit', '--json', '--action', 'agent.exec', ...args()])).stdout) as { actor: string; details: { argv: string[] } }[];
    expect(audit).toEqual([expect.objectContaining({ actor: 'user:root', details: expect.objectContaining({ argv: ['sh', '-c', expect.any(String)] }) })]);

    writeFileSync(
      join(dir, 'policies', 'policy.csv'),
      readFileSync(join(dir, 'policies', 'policy.csv'), 'utf8').replace(/^p, role:operator, agent:\*, exec, allow$/m, ''),
    );
    const denied = await warren(['exec', agent.name, ...args(), '--', 'true']);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/policy denies user:root exec into/);
  });
});

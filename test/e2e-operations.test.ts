import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  cleanUpAfterEach,
  makeTestLayout,
  processesOfUids,
  requireMachine,
  shellTask,
  startWarren,
  waitFor,
  warren,
  warrenSync,
  type AuditRow,
  type TestLayout,
} from './support/cli.js';

const { layouts, running } = cleanUpAfterEach();

function layout(tasks: Record<string, string>): TestLayout {
  const made = makeTestLayout(tasks, { copyAgents: true });
  layouts.push(made);
  return made;
}

const task = shellTask;

beforeAll(() => requireMachine());

describe('retry policy', () => {
  it('retries a failing task with the template backoff until it succeeds, and records each retry', async () => {
    const { dir, args, file } = layout({
      flaky: task('flaky', 'n=$(cat $HOME/flaky-count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $HOME/flaky-count; echo "try $n"; [ $n -ge 3 ]'),
    });
    appendFileSync(
      join(dir, 'agents', 'shell.yaml'),
      'retry:\n  initialInterval: 200ms\n  backoffCoefficient: 2\n  maximumInterval: 1s\n  maximumAttempts: 4\n',
    );
    const run = await warren(args('run', '--until-idle', '--json'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    expect(file('flaky')).toMatch(/^status: done$/m);
    const rows = JSON.parse((await warren(['audit', '--json', '--object', 'task:flaky', ...args()])).stdout) as AuditRow[];
    const retries = rows.filter((r) => r.action === 'task.retry');
    expect(retries.map((r) => [r.details.attempt, r.details.retryInMs])).toEqual([
      [1, 200],
      [2, 400],
    ]);
    const assigns = rows.filter((r) => r.action === 'task.assign');
    expect(assigns.map((r) => r.details.attempt)).toEqual([1, 2, 3]);
    // The backoff is honoured: attempt n+1 is assigned no sooner than the delay after the retry row.
    expect(assigns[1]!.timeMs - retries[0]!.timeMs).toBeGreaterThanOrEqual(200);
    expect(assigns[2]!.timeMs - retries[1]!.timeMs).toBeGreaterThanOrEqual(400);
    expect(rows.filter((r) => r.action === 'task.complete')).toHaveLength(1);
  });

  it('fails a task for good after its last attempt, with the reason on the card', async () => {
    const { args, file } = layout({ doomed: task('doomed', 'echo "no luck" >&2; exit 7') });
    const run = await warren(args('run', '--until-idle', '--json'));
    expect(run.code).toBe(1);
    expect(file('doomed')).toMatch(/^status: failed$/m);
    expect(file('doomed')).toMatch(/^result: .*exit 7.*no luck/m);
  });
});

describe('operator commands', () => {
  it('cancels a running task, retries an ended one, and stops and starts an agent, each audited', async () => {
    const { args, file } = layout({ sleeper: task('sleeper', 'sleep 600'), quick: task('quick', 'exit 1') });
    const up = startWarren(args('up', '--kill-grace', '1s'));
    running.push(up);
    await waitFor('the sleeper to run', () => /^status: in_progress$/m.test(file('sleeper')));
    await waitFor('the quick task to fail', () => /^status: failed$/m.test(file('quick')));

    const cancel = await warren(['task', 'cancel', 'sleeper', '--json', ...args()]);
    expect(cancel.code, cancel.stdout).toBe(0);
    await waitFor('the sleeper to be cancelled', () => /^status: failed$/m.test(file('sleeper')));
    expect(file("sleeper")).toMatch(/^result: "?cancelled/m);

    const retry = await warren(['task', 'retry', 'quick', ...args()]);
    expect(retry.code, retry.stdout).toBe(0);
    expect(retry.stdout).toMatch(/^done: task quick is ready again \(attempt 2 next\)/);
    const attempts = async () =>
      (JSON.parse((await warren(['audit', '--json', '--action', 'task.assign', '--object', 'task:quick', ...args()])).stdout) as AuditRow[]).length;
    const deadline = Date.now() + 30_000;
    while ((await attempts()) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await attempts()).toBe(2);

    const agents = JSON.parse((await warren(['agents', '--json', ...args()])).stdout) as { name: string; state: string }[];
    const name = agents.find((a) => a.state === 'running')!.name;
    const stop = await warren(['agent', 'stop', name, ...args()]);
    expect(stop.stdout).toMatch(new RegExp(`^done: ${name} is stopping`));
    await waitFor(`${name} to stop`, () => {
      const now = JSON.parse(warrenSync(['agents', '--json', ...args()])) as { name: string; state: string }[];
      return now.find((a) => a.name === name)?.state === 'stopped';
    });
    const start = await warren(['agent', 'start', 'no-such-agent', ...args()]);
    expect(start.code).toBe(1);
    expect(start.stdout).toMatch(/^failed: no agent named no-such-agent/);
    const commands = JSON.parse((await warren(['audit', '--json', '--action', 'command.*', ...args()])).stdout) as AuditRow[];
    expect(commands.map((c) => c.action)).toEqual(['command.task.cancel', 'command.task.retry', 'command.agent.stop', 'command.agent.start']);
  });

  it('keeps a command queued while no supervisor runs and executes it at the next start', async () => {
    const { args, file } = layout({ once: task('once', 'exit 3') });
    expect((await warren(args('run', '--until-idle'))).code).toBe(1);
    const queued = await warren(['task', 'retry', 'once', ...args()]);
    expect(queued.code).toBe(1);
    expect(queued.stdout).toMatch(/^queued as command \d+; no supervisor is running/);
    expect((await warren(args('run', '--until-idle'))).code).toBe(1);
    const assigns = JSON.parse((await warren(['audit', '--json', '--action', 'task.assign', ...args()])).stdout) as AuditRow[];
    expect(assigns.map((r) => r.details.attempt)).toEqual([1, 2]);
    expect(file('once')).toMatch(/^status: failed$/m);
  });
});

describe('admission queue and liveness', () => {
  it('shows the queue position and reason of tasks waiting for a slot', async () => {
    const { args } = layout({
      a: task('a', 'sleep 600', 'priority: high\n'),
      b: task('b', 'sleep 600', 'priority: high\n'),
      c: task('c', 'sleep 600', 'priority: low\n'),
      d: task('d', 'sleep 600', 'priority: normal\n'),
    });
    const up = startWarren(args('up', '--kill-grace', '1s'));
    running.push(up);
    let tasks: { id: string; state: string | null; queuePosition: number | null; queueReason: string | null }[] = [];
    await waitFor('two tasks running and two queued', () => {
      const out = JSON.parse(warrenSync(['tasks', '--json', ...args()])) as { tasks: typeof tasks };
      tasks = out.tasks;
      return tasks.filter((t) => t.queuePosition !== null && t.state === 'ready').length === 2 && tasks.filter((t) => t.state === 'running').length === 2;
    });
    const waiting = tasks.filter((t) => t.state === 'ready').sort((x, y) => x.queuePosition! - y.queuePosition!);
    expect(waiting.map((t) => [t.id, t.queuePosition])).toEqual([
      ['d', 1],
      ['c', 2],
    ]);
    expect(waiting[0]!.queueReason).toMatch(/max instances \(2/);
  });

  it('kills an agent that stops answering and runs its task elsewhere', async () => {
    const { args, file } = layout({ stuck: task('stuck', 'if [ "$WARREN_TASK_ATTEMPT" -gt 1 ]; then echo fine; else sleep 600; fi') });
    const up = startWarren(args('up', '--kill-grace', '1s', '--heartbeat-timeout', '2s'));
    running.push(up);
    await waitFor('the stuck task to run', () => /^status: in_progress$/m.test(file('stuck')));
    const accounts = JSON.parse((await warren(['accounts', '--json', ...args()])).stdout) as { uid: number }[];
    const pids = processesOfUids(new Set(accounts.map((a) => a.uid)));
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    await waitFor('the stuck task to finish on a later attempt', () => /^status: done$/m.test(file('stuck')), 60_000);
    const rows = JSON.parse((await warren(['audit', '--json', '--action', 'agent.*', ...args()])).stdout) as AuditRow[];
    expect(rows.some((r) => r.action === 'agent.unresponsive')).toBe(true);
  });
});

describe('watchdog', () => {
  it('kills an agent that stays over its memory threshold past the grace, records why, and re-runs the task', async () => {
    const { dir, args, file } = layout({
      hog: task('hog', 'if [ "$WARREN_TASK_ATTEMPT" -gt 1 ]; then echo calm; else node -e "globalThis.b = Buffer.alloc(200e6, 1); setInterval(() => {}, 1000)"; fi'),
    });
    appendFileSync(join(dir, 'agents', 'shell.yaml'), 'watchdog:\n  memory: 100MiB\n  grace: 1s\n');
    const run = await warren(args('run', '--until-idle', '--json', '--kill-grace', '1s'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    expect(file('hog')).toMatch(/^status: done$/m);
    const rows = JSON.parse((await warren(['audit', '--json', ...args()])).stdout) as AuditRow[];
    const watchdog = rows.find((r) => r.action === 'agent.watchdog');
    expect(watchdog?.details.detail).toMatch(/^memory \d+ bytes over 104857600 for \d+ s$/);
    const stop = rows.find((r) => r.action === 'agent.stop' && (r.details.exit as { kind: string }).kind === 'watchdog');
    expect(stop, JSON.stringify(rows.filter((r) => r.action.startsWith('agent.')))).toBeDefined();
    const requeue = rows.find((r) => r.action === 'task.requeue' && r.object === 'task:hog');
    expect(String(requeue?.details.reason)).toMatch(/watchdog: memory \d+ bytes over/);
  });
});

describe('home quota', () => {
  it('keeps an agent inside its home image: writing past the quota fails with ENOSPC and the host is untouched', async () => {
    const { dir, args, file } = layout({
      fill: task('fill', 'dd if=/dev/zero of=$HOME/big bs=1M count=64 2> dd.txt; grep -c "No space left on device" dd.txt; grep copied dd.txt'),
    });
    const template = join(dir, 'agents', 'shell.yaml');
    writeFileSync(template, readFileSync(template, 'utf8').replace('  tmp: 256MiB', '  tmp: 256MiB\n  home: 16MiB'));
    const run = await warren(args('run', '--until-idle', '--json'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    // dd stopped with ENOSPC (grep counted the message once) having written less than the quota.
    const result = /^result: "?1 (\d+) bytes/m.exec(file('fill'));
    expect(result, file('fill')).not.toBeNull();
    expect(Number(result![1])).toBeLessThan(16 * 1024 * 1024);
    const { statSync, readdirSync } = await import('node:fs');
    const image = join(dir, 'var', 'home-images', 'shell-1.ext4');
    expect(statSync(image).size).toBe(16 * 1024 * 1024);
    // The image is unmounted once the agent has stopped: the host directory under it is empty.
    expect(readdirSync(join(dir, 'home', 'shell', 'shell-1'))).toEqual([]);
  });
});

describe('crash-looping agents', () => {
  it('restarts an agent that dies at once with exponential backoff, then fails its template', async () => {
    const { dir, args } = layout({ starved: task('starved', 'true') });
    const template = join(dir, 'agents', 'shell.yaml');
    // 4 MiB is too little for the runner (Node) to start: each agent is OOM-killed before its hello.
    writeFileSync(template, readFileSync(template, 'utf8').replace('  memory: 1GiB', '  memory: 4MiB'));
    const run = await warren(args('run', '--until-idle', '--json', '--restart-backoff', '100ms'));
    expect(run.code).toBe(1);
    const summary = JSON.parse(run.stdout) as { unplaced: { taskId: string; reason: string }[] };
    expect(summary.unplaced, run.stdout + run.stderr.slice(-3000)).toEqual([{ taskId: 'starved', reason: expect.stringMatching(/template shell failed to start/) }]);
    const rows = JSON.parse((await warren(['audit', '--json', ...args()])).stdout) as AuditRow[];
    const loops = rows.filter((r) => r.action === 'agent.crash_loop');
    expect(loops.map((r) => r.details.retryInMs)).toEqual([100, 200, 400, 800]);
    expect(rows.filter((r) => r.action === 'template.failed')).toHaveLength(1);
    // The backoff is honoured, measured on the audit trail: each start comes no sooner than the
    // delay announced after the previous failure.
    const starts = rows.filter((r) => r.action === 'agent.start');
    expect(starts).toHaveLength(5);
    loops.forEach((loop, i) => expect(starts[i + 1]!.timeMs - loop.timeMs).toBeGreaterThanOrEqual(Number(loop.details.retryInMs)));
  });

  it('ends a run until idle once no task needs a template that failed to start and its backoff is over', async () => {
    const { dir, args, file } = layout({ one: task('one', 'true') });
    // Template `atiny` (one capability, so the planner tries it first) cannot start: 4 MiB is too
    // little for the runner. Its failure backs it off; `shell` takes the task meanwhile. Nothing
    // needs `atiny` afterwards, so no agent of it becomes ready to end its backoff: a run that
    // counted the backoff as work left never ended.
    const shell = readFileSync(join(dir, 'agents', 'shell.yaml'), 'utf8');
    writeFileSync(join(dir, 'agents', 'atiny.yaml'), shell.replace('name: shell', 'name: atiny').replace('capabilities: [shell, node]', 'capabilities: [shell]').replace('  memory: 1GiB', '  memory: 4MiB'));
    appendFileSync(join(dir, 'policies', 'policy.csv'), 'g, template:atiny, role:worker\n');
    const run = await warren(args('run', '--until-idle', '--json', '--restart-backoff', '2s'));
    const summary = JSON.parse(run.stdout) as { succeeded: string[]; failed: string[] };
    expect(summary.succeeded, run.stderr.slice(-3000)).toEqual(['one']);
    expect(summary.failed).toEqual([]);
    expect(file('one')).toMatch(/^status: done$/m);
    const rows = JSON.parse((await warren(['audit', '--json', ...args()])).stdout) as AuditRow[];
    expect(rows.filter((r) => r.action === 'agent.crash_loop' && r.object === 'template:atiny').length).toBeGreaterThanOrEqual(1);
  });
});

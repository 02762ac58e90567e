import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireMachine, startWarren, waitFor } from '../support/cli.js';
import { countStatus, finish, makeLayout, RestartableNats, shellTask } from './support.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

beforeAll(() => requireMachine());

interface LoggedView {
  state: string;
  tick: { runningForMs: number | null; step: string };
  agents: { name: string; ready: boolean; stopping: string | null; load: number; connected: boolean }[];
  spawning: string[];
  spawnFailures: Record<string, unknown>;
  queuedEvents: number;
}

describe('a supervisor sent SIGUSR2', () => {
  it('logs what it holds in memory (agents, spawns, back-offs, the tick) and keeps running', async () => {
    const nats = await RestartableNats.start();
    cleanups.push(() => nats.close());
    const layout = makeLayout({ tasks: { i1: shellTask('i1', 'true'), i2: shellTask('i2', 'true') }, natsUrl: nats.url, maxInstances: 1 });
    cleanups.push(() => layout.remove());
    const run = startWarren(layout.args(['up'], true));
    cleanups.push(() => {
      if (run.child.exitCode === null && run.child.signalCode === null && run.child.pid !== undefined) process.kill(run.child.pid, 'SIGKILL');
    });
    await waitFor('both tasks done', () => countStatus(layout, 'done') === 2, 90_000);

    process.kill(run.child.pid!, 'SIGUSR2');
    await waitFor('the logged view', () => run.stderr().includes('"msg":"supervisor view"'), 20_000);
    const line = run.stderr().split('\n').find((l) => l.includes('"msg":"supervisor view"'))!;
    const view = (JSON.parse(line) as { view: LoggedView }).view;
    expect(view.state).toBe('running');
    expect(view.agents).toEqual([expect.objectContaining({ name: `${layout.template}-1`, ready: true, stopping: null, load: 0, connected: true })]);
    expect(view.spawning).toEqual([]);
    expect(view.spawnFailures).toEqual({});
    expect(typeof view.tick.step).toBe('string');

    process.kill(run.child.pid!, 'SIGTERM');
    const end = await finish(run, 60_000);
    expect(end.code, end.stderr.slice(-3000)).toBe(0);
  }, 180_000);
});

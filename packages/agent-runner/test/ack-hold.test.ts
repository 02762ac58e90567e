import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ACK_HOLD_MS, runAgent, type AgentFrame, type TaskFrame } from '@warren/agent-runner';
import { tempDir, TestGateway } from './gateway.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function task(taskId: string, command: string): TaskFrame {
  return { type: 'task', taskId, attempt: 1, title: `task ${taskId}`, body: 'body', fields: {}, timeoutMs: 60_000, command };
}

/** Runs the runner in this process against a test gateway, with `ackHoldMs`; hello and welcome done. */
async function setup(ackHoldMs: number | undefined, maxConcurrent = 1): Promise<{ gateway: TestGateway; home: string; done: Promise<number> }> {
  const { dir, remove } = tempDir();
  cleanups.push(remove);
  const home = join(dir, 'home');
  mkdirSync(home);
  const gateway = await TestGateway.start(dir);
  cleanups.push(() => gateway.close());
  const controller = new AbortController();
  const done = runAgent({
    socketPath: gateway.socketPath,
    runtime: { kind: 'shell' },
    maxConcurrent,
    heartbeatMs: 600_000,
    home,
    env: { PATH: process.env['PATH'] },
    signal: controller.signal,
    log: () => undefined,
    ...(ackHoldMs === undefined ? {} : { ackHoldMs }),
  });
  cleanups.push(async () => {
    controller.abort();
    await done;
  });
  await gateway.accept();
  await gateway.next((f): f is AgentFrame => f.type === 'hello', 'hello');
  gateway.send({ type: 'welcome', agent: { name: 'a1', template: 'shell', uid: 1, gid: 1, home, capabilities: ['shell'] } });
  return { gateway, home, done };
}

describe('the runner\'s ack of a task', () => {
  it('holds 100 ms by default', () => {
    expect(ACK_HOLD_MS).toBe(100);
  });

  it('goes out in the same write as the result of a task that ends while it is held', async () => {
    const { gateway } = await setup(600_000);
    gateway.send(task('fast', 'true'));
    expect(await gateway.result('fast')).toMatchObject({ outcome: 'succeeded' });
    expect(gateway.ofType('ack', 'fast')).toEqual([{ type: 'ack', taskId: 'fast', attempt: 1 }]);
    // One chunk carried both, the ack first.
    expect(gateway.chunks.filter((types) => types.includes('ack') || types.includes('result'))).toEqual([['ack', 'result']]);
  });

  it('goes out alone once the hold is over while the task still runs, and a repeated task is acked again at once', async () => {
    const { gateway, home } = await setup(20);
    const go = join(home, 'go');
    gateway.send(task('slow', `while [ ! -e ${go} ]; do sleep 0.05; done; echo ok`));
    // The task cannot end before the test lets it: this ack came alone.
    await gateway.next((f): f is AgentFrame => f.type === 'ack', 'ack');
    expect(gateway.ofType('result')).toEqual([]);
    gateway.send(task('slow', 'true'));
    await until(() => gateway.ofType('ack', 'slow').length === 2);
    expect(existsSync(go)).toBe(false);
    writeFileSync(go, '');
    expect(await gateway.result('slow')).toMatchObject({ outcome: 'succeeded', summary: 'ok' });
    expect(gateway.ofType('result')).toHaveLength(1);
  });

  it('goes out at once while the runner has a slot left, and is held for the task that takes the last one', async () => {
    const { gateway, home } = await setup(600_000, 2);
    const go = join(home, 'go');
    const wait = `while [ ! -e ${go} ]; do sleep 0.05; done`;
    gateway.send(task('first', wait));
    // A slot is left: the gateway may take the agent's next assignment now.
    await gateway.next((f): f is AgentFrame => f.type === 'ack' && f.taskId === 'first', 'ack of first');
    gateway.send(task('second', wait));
    gateway.send(task('third', 'true'));
    // No slot left: held until the runner sends anything else (here the first result, once the tasks may end).
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(gateway.ofType('ack').map((f) => f.taskId)).toEqual(['first']);
    writeFileSync(go, '');
    for (const id of ['first', 'second', 'third']) await gateway.result(id);
    const order = gateway.frames.filter((f) => f.type === 'ack' || f.type === 'result').map((f) => `${f.type}:${(f as { taskId: string }).taskId}`);
    expect(order.indexOf('ack:second')).toBeLessThan(order.indexOf('result:second'));
    expect(order.indexOf('ack:third')).toBeLessThan(order.indexOf('result:third'));
  });

  it('goes out before the task\'s progress, and before the results sent at shutdown', async () => {
    const { gateway, home } = await setup(600_000);
    gateway.send(task('talk', `echo '::progress 10:: started'; while [ ! -e ${join(home, 'never')} ]; do sleep 0.05; done`));
    await gateway.next((f): f is AgentFrame => f.type === 'progress', 'progress');
    expect(gateway.frames.filter((f) => f.type !== 'hello').map((f) => f.type)).toEqual(['ack', 'progress']);
    gateway.send(task('queued', 'true'));
    gateway.send({ type: 'shutdown', reason: 'test over' });
    await gateway.result('queued');
    await gateway.result('talk');
    const types = gateway.frames.filter((f) => f.type === 'ack' || f.type === 'result').map((f) => `${f.type}:${(f as { taskId: string }).taskId}`);
    expect(types.indexOf('ack:queued')).toBeGreaterThanOrEqual(0);
    expect(types.indexOf('ack:queued')).toBeLessThan(types.indexOf('result:queued'));
  });
});

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in 30 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type AgentFrame, type TaskFrame } from '@warren/agent-runner';
import { buildRunner, startRunner, tempDir, TestGateway, type RunnerProcess } from './gateway.js';

beforeAll(() => buildRunner());

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

interface Setup {
  gateway: TestGateway;
  runner: RunnerProcess;
  home: string;
}

/** Starts a gateway and a runner, and completes hello/welcome. */
async function setup(env: Record<string, string> = {}): Promise<Setup> {
  const { dir, remove } = tempDir();
  cleanups.push(remove);
  const home = join(dir, 'home');
  mkdirSync(home);
  const gateway = await TestGateway.start(dir);
  cleanups.push(() => gateway.close());
  const runner = startRunner({ WARREN_AGENT_SOCKET: gateway.socketPath, HOME: home, WARREN_RUNTIME: '{"kind":"shell"}', ...env });
  cleanups.push(async () => {
    if (runner.child.exitCode === null && runner.child.signalCode === null) {
      runner.child.kill('SIGKILL');
      await runner.exited;
    }
  });
  await gateway.accept();
  const hello = await gateway.next((f): f is Extract<AgentFrame, { type: 'hello' }> => f.type === 'hello', 'hello');
  expect(hello).toEqual({ type: 'hello', version: PROTOCOL_VERSION, pid: runner.child.pid });
  gateway.send({ type: 'welcome', agent: { name: 'a1', template: 'shell', uid: 1, gid: 1, home, capabilities: ['shell'] } });
  return { gateway, runner, home };
}

function task(taskId: string, fields: Partial<TaskFrame> = {}): TaskFrame {
  return { type: 'task', taskId, attempt: 1, title: `task ${taskId}`, body: 'body', fields: { priority: 2 }, timeoutMs: 60_000, ...fields };
}

describe('the runner as a child process', () => {
  it('acks, reports progress and a succeeded result listing the outputs; heartbeats; exits 0 on shutdown', async () => {
    const { gateway, runner, home } = await setup({ WARREN_HEARTBEAT_MS: '50' });
    gateway.send(task('t1', { command: "echo hi > out.txt; echo '::progress 50:: half'; echo done" }));
    const result = await gateway.result('t1');
    expect(gateway.ofType('ack', 't1')).toEqual([{ type: 'ack', taskId: 't1', attempt: 1 }]);
    expect(gateway.ofType('progress', 't1')).toEqual([{ type: 'progress', taskId: 't1', attempt: 1, message: 'half', percent: 50 }]);
    expect(gateway.frames.findIndex((f) => f.type === 'ack')).toBeLessThan(gateway.frames.findIndex((f) => f.type === 'progress'));
    expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0, signal: null, attempt: 1 });
    expect(result.outputs).toEqual(['work/t1/out.txt', 'work/t1/output.log']);
    expect(result.summary).toContain('done');
    expect(readFileSync(join(home, 'work/t1/out.txt'), 'utf8')).toBe('hi\n');
    expect(JSON.parse(readFileSync(join(home, 'work/t1/task.json'), 'utf8'))).toEqual(task('t1', { command: "echo hi > out.txt; echo '::progress 50:: half'; echo done" }));
    expect(readFileSync(join(home, 'work/t1/output.log'), 'utf8')).toBe('::progress 50:: half\ndone\n');
    await gateway.next((f): f is AgentFrame => f.type === 'heartbeat', 'heartbeat');
    gateway.send({ type: 'shutdown', reason: 'test over' });
    expect(await runner.exited).toEqual({ code: 0, signal: null });
    expect(gateway.protocolErrors).toEqual([]);
  });

  it('beats every WARREN_HEARTBEAT_MS while a task runs and every WARREN_IDLE_HEARTBEAT_MS while idle', async () => {
    const { gateway } = await setup({ WARREN_HEARTBEAT_MS: '50', WARREN_IDLE_HEARTBEAT_MS: '600000' });
    const beatsIn = (from: number, to = gateway.frames.length) => gateway.frames.slice(from, to).filter((f) => f.type === 'heartbeat').length;
    // Idle: its hello was its last frame, and the next beat is due ten minutes after it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(beatsIn(0)).toBe(0);
    gateway.send(task('slow', { command: 'sleep 2; echo ok' }));
    expect(await gateway.result('slow')).toMatchObject({ outcome: 'succeeded' });
    const ack = gateway.frames.findIndex((f) => f.type === 'ack');
    const result = gateway.frames.findIndex((f) => f.type === 'result');
    expect(beatsIn(ack, result)).toBeGreaterThan(0);
    // Idle again: the result was its last frame.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(beatsIn(result)).toBe(0);
  });

  it('reports a failing command as failed with its exit code and output tail', async () => {
    const { gateway } = await setup();
    gateway.send(task('bad', { command: 'echo oops >&2; exit 3' }));
    const result = await gateway.result('bad');
    expect(result).toMatchObject({ outcome: 'failed', exitCode: 3, signal: null });
    expect(result.summary).toBe('exit code 3\noops');
  });

  it('gives the task stdout and stderr that /dev/stdout and /dev/stderr open (pipes, not sockets) (#75)', async () => {
    const { gateway, home } = await setup();
    gateway.send(task('devs', { command: 'echo to-stdout > /dev/stdout; echo to-stderr > /dev/stderr; test -p /dev/stdout && test -p /dev/stderr && echo pipes' }));
    const result = await gateway.result('devs');
    expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0, signal: null });
    // Two pipes: the order between them is not kept.
    expect(readFileSync(join(home, 'work/devs/output.log'), 'utf8').split('\n').sort()).toEqual(['', 'pipes', 'to-stderr', 'to-stdout']);
  });

  it('fails a task without a command under the shell runtime, and one whose id tries to leave the workspace', async () => {
    const { gateway, home } = await setup();
    gateway.send(task('nocmd'));
    expect((await gateway.result('nocmd')).summary).toContain('has no command');
    gateway.send(task('../escape', { command: 'touch x' }));
    const result = await gateway.result('../escape');
    expect(result).toMatchObject({ outcome: 'failed', outputs: [] });
    expect(result.summary).toContain('invalid task id');
    expect(existsSync(join(home, 'escape'))).toBe(false);
  });

  it('times out a sleep 100: SIGTERM to the group, outcome timed_out', async () => {
    const { gateway } = await setup();
    gateway.send(task('slow', { command: 'sleep 100', timeoutMs: 200 }));
    const result = await gateway.result('slow');
    expect(result).toMatchObject({ outcome: 'timed_out', exitCode: null, signal: 'SIGTERM' });
    expect(result.summary).toBe('timed out after 200 ms');
  });

  it('SIGKILLs a task ignoring SIGTERM after the grace', async () => {
    const { gateway } = await setup();
    gateway.send(task('stubborn', { command: "trap '' TERM; echo started; while :; do sleep 0.1; done", timeoutMs: 200 }));
    const result = await gateway.result('stubborn');
    expect(result).toMatchObject({ outcome: 'timed_out', signal: 'SIGKILL' });
  });

  it('cancels a running task on a cancel frame', async () => {
    const { gateway } = await setup();
    gateway.send(task('long', { command: "echo '::progress:: running'; sleep 100" }));
    await gateway.next((f): f is AgentFrame => f.type === 'progress', 'progress');
    gateway.send({ type: 'cancel', taskId: 'long', attempt: 1, reason: 'operator' });
    const result = await gateway.result('long');
    expect(result).toMatchObject({ outcome: 'cancelled', signal: 'SIGTERM' });
    expect(result.summary).toMatch(/^cancelled: operator/);
  });

  it('on SIGTERM cancels running tasks, sends their results and exits 0', async () => {
    const { gateway, runner } = await setup();
    gateway.send(task('busy', { command: "echo '::progress:: up'; sleep 100" }));
    await gateway.next((f): f is AgentFrame => f.type === 'progress', 'progress');
    runner.child.kill('SIGTERM');
    expect(await runner.exited).toEqual({ code: 0, signal: null });
    expect(await gateway.result('busy')).toMatchObject({ outcome: 'cancelled' });
  });

  it('exits 1 when the gateway closes the channel, killing its tasks', async () => {
    const { dir, remove } = tempDir();
    cleanups.push(remove);
    const { gateway, runner } = await setup();
    const marker = join(dir, 'pid');
    gateway.send(task('orphan', { command: `echo $$ > ${marker}; echo '::progress:: up'; exec sleep 100` }));
    await gateway.next((f): f is AgentFrame => f.type === 'progress', 'progress');
    const pid = Number(readFileSync(marker, 'utf8'));
    gateway.drop();
    expect(await runner.exited).toEqual({ code: 1, signal: null });
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('ignores a malformed frame and keeps working', async () => {
    const { gateway, runner } = await setup();
    gateway.sendRaw('this is not json\n');
    gateway.sendRaw('{"type":"task","taskId":5}\n');
    gateway.send(task('after', { command: 'echo fine' }));
    expect(await gateway.result('after')).toMatchObject({ outcome: 'succeeded', summary: 'fine' });
    expect(runner.stderr()).toContain('malformed frame');
    expect(runner.stderr()).toContain('malformed task frame');
  });

  it('runs an exec runtime with the task in WARREN_TASK_* variables', async () => {
    const script = 'cp "$WARREN_TASK_FILE" copy.json; echo "$WARREN_TASK_ID $WARREN_TASK_ATTEMPT $WARREN_TASK_TITLE $(pwd) $WARREN_WORKSPACE"';
    const { gateway, home } = await setup({ WARREN_RUNTIME: JSON.stringify({ kind: 'exec', command: ['/bin/sh', '-c', script] }) });
    gateway.send(task('ex', { attempt: 2 }));
    const result = await gateway.result('ex');
    const ws = join(home, 'work/ex');
    expect(result).toMatchObject({ outcome: 'succeeded', attempt: 2, summary: `ex 2 task ex ${ws} ${ws}` });
    expect(result.outputs).toEqual(['work/ex/copy.json', 'work/ex/output.log']);
  });

  it('runs up to WARREN_MAX_CONCURRENT tasks at once', async () => {
    const { gateway } = await setup({ WARREN_MAX_CONCURRENT: '2' });
    // a waits for a file that only b creates: both finish only if they run together.
    gateway.send(task('a', { command: 'while [ ! -f ../b/flag ]; do sleep 0.05; done; echo a-done' }));
    gateway.send(task('b', { command: 'touch flag; echo b-done' }));
    expect(await gateway.result('a')).toMatchObject({ outcome: 'succeeded', summary: 'a-done' });
    expect(await gateway.result('b')).toMatchObject({ outcome: 'succeeded', summary: 'b-done' });
  });

  it('exits 2 on an invalid WARREN_RUNTIME', async () => {
    const { dir, remove } = tempDir();
    cleanups.push(remove);
    const runner = startRunner({ WARREN_AGENT_SOCKET: join(dir, 'none.sock'), HOME: dir, WARREN_RUNTIME: '{"kind":"magic"}' });
    expect(await runner.exited).toEqual({ code: 2, signal: null });
    expect(runner.stderr()).toContain('WARREN_RUNTIME');
  });
});

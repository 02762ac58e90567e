import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, RUNNER_BUNDLE_NAME, type AgentFrame } from '@warren/agent-runner';
import { SPAWN_ADDON_NAME } from '@warren/spawn';
import { buildRunnerBundle } from '../src/build.js';
import { buildRunner, startRunner, tempDir, TestGateway } from './gateway.js';

beforeAll(() => buildRunner());

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe('the runner bundle (dist/runner.cjs)', () => {
  it('is one CommonJS file requiring only Node built-ins, and serves the channel like dist/main.js', async () => {
    const { dir, remove } = tempDir();
    cleanups.push(remove);
    const built = await buildRunnerBundle(join(dir, RUNNER_BUNDLE_NAME));
    expect(built.bundle).toBe(join(dir, RUNNER_BUNDLE_NAME));
    const text = readFileSync(built.bundle, 'utf8');
    const required = [...text.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]!);
    expect(required.length).toBeGreaterThan(0);
    expect(required.filter((r) => !r.startsWith('node:') && !['child_process', 'crypto', 'fs', 'net', 'os', 'path', 'stream'].includes(r))).toEqual([]);

    const home = join(dir, 'home');
    mkdirSync(home);
    const gateway = await TestGateway.start(dir);
    cleanups.push(() => gateway.close());
    const runner = startRunner({ WARREN_AGENT_SOCKET: gateway.socketPath, HOME: home, WARREN_RUNTIME: '{"kind":"shell"}' }, built.bundle);
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
    gateway.send({ type: 'task', taskId: 't1', attempt: 1, title: 'task t1', body: 'body', fields: {}, timeoutMs: 60_000, command: 'echo hi > out.txt' });
    const result = await gateway.result('t1');
    expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0, attempt: 1 });
    expect(readFileSync(join(home, 'work', 't1', 'out.txt'), 'utf8')).toBe('hi\n');
    gateway.send({ type: 'shutdown', reason: 'test' });
    expect((await runner.exited).code).toBe(0);
    // The task's process was started with posix_spawn: the addon, copied beside the bundle, loaded.
    if (process.platform === 'linux' && process.arch === 'x64') {
      expect(existsSync(join(dir, SPAWN_ADDON_NAME))).toBe(true);
      expect(runner.stderr()).not.toContain('WARREN_SPAWN_FALLBACK');
    }
  });

  it('exits 2 naming the variable on invalid settings, as dist/main.js does', async () => {
    const { dir, remove } = tempDir();
    cleanups.push(remove);
    const built = await buildRunnerBundle(join(dir, RUNNER_BUNDLE_NAME));
    const runner = startRunner({ WARREN_RUNTIME: 'not json' }, built.bundle);
    expect((await runner.exited).code).toBe(2);
    expect(runner.stderr()).toMatch(/^warren-agent-runner: WARREN_RUNTIME/);
  });
});

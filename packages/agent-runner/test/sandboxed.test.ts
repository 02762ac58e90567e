import { chmodSync, chownSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RUNNER_BUNDLE_NAME, type AgentFrame } from '@warren/agent-runner';
import { assertIsolation, probeHost, processesOfUid, spawnSandbox } from '@warren/sandbox';
import { buildRunnerBundle } from '../src/build.js';
import { buildRunner, PACKAGE_DIR, tempDir, TestGateway } from './gateway.js';

beforeAll(async () => {
  // Fails with an install hint (bubblewrap, util-linux, root) rather than skipping.
  assertIsolation(await probeHost());
  await buildRunner();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe('the runner inside a real sandbox', () => {
  it('serves the channel through /run/warren and writes task outputs as the agent uid', async () => {
    await runInSandbox('main.js');
  });

  it('runs as the bundle too, starting tasks with posix_spawn (the addon beside the bundle loads in the sandbox)', async () => {
    const log = await runInSandbox(RUNNER_BUNDLE_NAME);
    if (process.platform === 'linux' && process.arch === 'x64') expect(log).not.toContain('WARREN_SPAWN_FALLBACK');
  });
});

/**
 * Starts the runner (`dist/<entry>`; the bundle is built into a package directory of its own) in a
 * sandbox, runs one task through it and shuts it down. @returns the sandbox's log.
 */
async function runInSandbox(entry: string): Promise<string> {
  const uid = 1_900_901_000 + (process.pid % 1000);
  const { dir, remove } = tempDir();
  cleanups.push(remove);
  let runnerDir = PACKAGE_DIR;
  if (entry === RUNNER_BUNDLE_NAME) {
    runnerDir = join(dir, 'runner');
    mkdirSync(join(runnerDir, 'dist'), { recursive: true, mode: 0o755 });
    chmodSync(runnerDir, 0o755);
    chmodSync(join(runnerDir, 'dist'), 0o755);
    await buildRunnerBundle(join(runnerDir, 'dist', RUNNER_BUNDLE_NAME));
  }
  const home = join(dir, 'home');
  const socketDir = join(dir, 'socket');
  mkdirSync(home);
  chownSync(home, uid, uid);
  chmodSync(home, 0o700);
  mkdirSync(socketDir);
  const gateway = await TestGateway.start(socketDir);
  cleanups.push(() => gateway.close());
  chownSync(gateway.socketPath, uid, uid);
  chmodSync(gateway.socketPath, 0o600);

  const sandbox = await spawnSandbox({
    name: `runner-${process.pid}`,
    uid,
    gid: uid,
    homeHostPath: home,
    homePath: '/home/runner',
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\nrunner:x:${uid}:${uid}::/home/runner:/bin/sh\n`,
    group: `root:x:0:\nrunner:x:${uid}:\n`,
    argv: ['/usr/bin/node', `/opt/warren/agent-runner/dist/${entry}`],
    env: { HOME: '/home/runner', PATH: '/usr/bin:/bin', WARREN_RUNTIME: '{"kind":"shell"}' },
    // The package directory (not only dist/) so that package.json marks dist/*.js as ES modules.
    readOnlyBinds: [{ source: runnerDir, target: '/opt/warren/agent-runner' }],
    binds: [{ source: socketDir, target: '/run/warren' }],
    limits: { memoryMaxBytes: 512 * 2 ** 20, pidsMax: 128, cpuWeight: 100, nofile: 1024, fsizeBytes: 64 * 2 ** 20, tmpfsBytes: 16 * 2 ** 20 },
    runDir: join(dir, 'run'),
    logPath: join(dir, 'runner.log'),
    logMaxBytes: 1024 * 1024,
  });
  cleanups.push(() => sandbox.close());

  await gateway.accept();
  const hello = await gateway.next((f): f is Extract<AgentFrame, { type: 'hello' }> => f.type === 'hello', 'hello');
  expect(hello.pid).toBeLessThan(10); // a pid in the sandbox's own pid namespace
  gateway.send({ type: 'welcome', agent: { name: 'runner', template: 'shell', uid, gid: uid, home: '/home/runner', capabilities: ['shell'] } });
  gateway.send({
    type: 'task',
    taskId: 'in-box',
    attempt: 1,
    title: 'inside',
    body: '',
    fields: {},
    timeoutMs: 30_000,
    // /dev/stdout and /dev/stderr open: the task's output goes to pipes of its own uid.
    command: ": > /dev/stdout && : > /dev/stderr || exit 9; echo hi > out.txt; echo \"$(id -u) $PWD\"; echo '::progress 50:: half'",
  });
  const result = await gateway.result('in-box');
  expect(result).toMatchObject({ outcome: 'succeeded', exitCode: 0, summary: `${uid} /home/runner/work/in-box\n::progress 50:: half` });
  expect(result.outputs).toEqual(['work/in-box/out.txt', 'work/in-box/output.log']);
  expect(gateway.ofType('progress', 'in-box')).toEqual([{ type: 'progress', taskId: 'in-box', attempt: 1, message: 'half', percent: 50 }]);
  const out = statSync(join(home, 'work/in-box/out.txt'));
  expect([out.uid, out.gid]).toEqual([uid, uid]);

  gateway.send({ type: 'shutdown', reason: 'test over' });
  expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
  expect(processesOfUid(uid)).toEqual([]);
  return readFileSync(join(dir, 'runner.log'), 'utf8');
}

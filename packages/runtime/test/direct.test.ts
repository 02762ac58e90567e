import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AssignmentMessage, ProgressMessage, ResultMessage, Subscription } from '@warren/broker';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@warren/core';
import { AgentGateway, homeInSandbox, type AgentInstance, type AgentStartSpec } from '../src/index.js';
import { DirectInstance, type DirectHost, type WaitingSandbox } from '../src/direct.js';
import { bubblewrapFixture, type BubblewrapFixture } from './support/bubblewrap.js';
import { RecordingEvents, waitFor } from './support/events.js';

// The direct mode of the bubblewrap driver: a per-task agent with a shell or exec runtime runs no
// agent runner; each task's process is the only process of its own sandbox, the host side reports.
// The first task's sandbox is started ahead: a shell waiting on its stdin for the script to exec.

let fixture: BubblewrapFixture;
const cleanups: (() => unknown)[] = [];
const results: ResultMessage[] = [];
const progress: ProgressMessage[] = [];
let resultConsumer: Subscription;
let progressSubscription: Subscription;

beforeAll(async () => {
  fixture = await bubblewrapFixture();
  resultConsumer = await fixture.broker.consumeResults(async (delivery) => {
    results.push(delivery.data);
    delivery.ack();
  });
  progressSubscription = fixture.broker.subscribeProgress((message) => progress.push(message));
});
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await progressSubscription?.stop();
  await resultConsumer?.stop();
  await fixture?.close();
});

/**
 * A per-task agent `name` (runtime `shell` unless given), started and said hello, its first
 * sandbox spawned (the instance says hello while it is being spawned).
 */
async function startDirect(name: string, runtime: unknown = { kind: 'shell' }): Promise<{ spec: AgentStartSpec; instance: AgentInstance; events: RecordingEvents }> {
  const base = await fixture.agent(name);
  const spec: AgentStartSpec = { ...base, runner: { ...base.runner, runtime, perTask: true } };
  const events = new RecordingEvents();
  const instance = await fixture.runtime.start(spec, events);
  cleanups.push(() => instance.close());
  await waitFor('the instance to say hello', () => events.hellos.length > 0);
  await waitFor('its first sandbox to be spawned', () => instance.pid > 0);
  return { spec, instance, events };
}

async function assign(agent: string, taskId: string, fields: Partial<AssignmentMessage> = {}): Promise<void> {
  await fixture.broker.publishAssignment({ taskId, attempt: 1, agent, title: taskId, body: '', fields: {}, timeoutMs: 60_000, assignedAtMs: Date.now(), ...fields });
}

/**
 * The host pids of every process in the pids cgroup (v1 `pids` controller, or the v2 tree) of host
 * pid `pid` and the cgroups below it, in order.
 */
function cgroupPids(pid: number): number[] {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
  const v1 = lines.find((l) => /^\d+:pids:/.test(l));
  const path = v1 ? v1.slice(v1.indexOf(':pids:') + 6) : lines.find((l) => l.startsWith('0::'))!.slice(3);
  // Not in its own cgroup yet (a loaded machine shows the recipe before it has moved itself): none.
  if (path === '/' || path === '') return [];
  const root = join(v1 ? '/sys/fs/cgroup/pids' : '/sys/fs/cgroup', path);
  const pids: number[] = [];
  const walk = (dir: string): void => {
    for (const text of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (text) pids.push(Number(text));
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(join(dir, entry.name));
  };
  walk(root);
  return pids.sort((a, b) => a - b);
}

/** The `sh` of `pid`'s cgroup that runs inside a pid namespace (two ids on its `NSpid` line), if any. */
function sandboxedShell(pid: number): number | undefined {
  return cgroupPids(pid).find((candidate) => {
    try {
      const status = readFileSync(`/proc/${candidate}/status`, 'utf8');
      return /^Name:\s+sh$/m.test(status) && (/^NSpid:((?:\s+\d+)+)$/m.exec(status)?.[1]?.trim().split(/\s+/).length ?? 0) >= 2;
    } catch {
      return false; // ended while we looked
    }
  });
}

/** The commands (`/proc/<pid>/comm`) of {@link cgroupPids}. */
function cgroupCommands(pid: number): string[] {
  return cgroupPids(pid).map((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim());
}

/** {@link cgroupCommands} without bwrap's own processes: what the agent runs. */
function agentCommands(pid: number): string[] {
  return cgroupCommands(pid).filter((command) => command !== 'bwrap');
}

async function resultOf(taskId: string): Promise<ResultMessage> {
  await waitFor(`the result of ${taskId}`, () => results.some((r) => r.taskId === taskId));
  return results.find((r) => r.taskId === taskId)!;
}

describe('the direct mode of the bubblewrap runtime', () => {
  it('runs a shell task with no runner: result, output.log, outputs, ::progress and ::send, as the agent in its workspace', async () => {
    const { spec, instance, events } = await startDirect('direct-a');
    // Ready at once, its sandbox started ahead: a shell waiting for its script, alone (no runner).
    expect(instance.connected).toBe(true);
    const waitingPid = instance.pid;
    await waitFor('the waiting shell', () => sandboxedShell(waitingPid) !== undefined);
    expect(agentCommands(waitingPid)).toEqual(['sh']);
    expect(instance.usage().pids).toBeGreaterThan(0);
    const script = [
      'echo "::progress 40:: half way"',
      'echo \'::send direct-b:: {"ready": true}\'',
      'echo made > report.txt',
      'echo to-stderr >&2',
      'echo "$(id -u) $(id -g) $PWD $WARREN_WORKSPACE $WARREN_TASK_ID"',
      'test -f "$WARREN_TASK_FILE" && echo task-file',
      'echo "runner=$(ps -e -o comm= | grep -c node)"',
    ].join('; ');
    await assign(spec.name, 'direct-shell', { command: script });
    const result = await resultOf('direct-shell');
    const workspace = `/home/${spec.name}/work/direct-shell`;
    expect(result).toMatchObject({ agent: spec.name, outcome: 'succeeded', exitCode: 0, signal: null });
    // stdout's lines in their order; stderr's, a pipe of its own, may come in between.
    const stdout = result.summary.split('\n').filter((line) => line !== 'to-stderr');
    expect(stdout.join('\n')).toContain(`${spec.uid} ${spec.gid} ${workspace} ${workspace} direct-shell\ntask-file\nrunner=0`);
    expect(result.outputs).toEqual(['work/direct-shell/output.log', 'work/direct-shell/report.txt']);
    const log = readFileSync(join(spec.homeDir, 'work', 'direct-shell', 'output.log'), 'utf8');
    expect(log).toContain('to-stderr\n');
    expect(log).toContain('half way');
    for (const file of ['output.log', 'task.json', 'report.txt']) {
      const info = statSync(join(spec.homeDir, 'work', 'direct-shell', file));
      expect([file, info.uid, info.gid]).toEqual([file, spec.uid, spec.gid]);
    }
    expect(events.acks).toEqual([{ agent: spec.name, taskId: 'direct-shell', attempt: 1 }]);
    expect(events.sent).toEqual([{ from: spec.name, to: 'direct-b', body: { ready: true } }]);
    await waitFor('the progress report', () => progress.some((p) => p.taskId === 'direct-shell'));
    expect(progress.find((p) => p.taskId === 'direct-shell')).toMatchObject({ agent: spec.name, message: 'half way', percent: 40 });
    expect(instance.resendResult('direct-shell', 1)).toBe(true);
    expect(instance.usage()).toMatchObject({ memoryBytes: 0, pids: 0 });
    // stop() with nothing running ends the instance as a runner's shutdown would.
    expect(await instance.stop(1_000)).toEqual({ kind: 'succeeded', exitCode: 0 });
  });

  it('reports exit codes and a task without a command', async () => {
    const { spec } = await startDirect('direct-c');
    await assign(spec.name, 'direct-exit3', { command: 'echo before; exit 3' });
    expect(await resultOf('direct-exit3')).toMatchObject({ outcome: 'failed', exitCode: 3, summary: 'exit code 3\nbefore' });
    await assign(spec.name, 'direct-nocommand');
    expect(await resultOf('direct-nocommand')).toMatchObject({ outcome: 'failed', exitCode: null, summary: expect.stringContaining('has no command') });
  });

  it('times a task out (SIGTERM, then SIGKILL after the grace) and reads the running sandbox usage', async () => {
    const { spec, instance } = await startDirect('direct-d');
    await assign(spec.name, 'direct-timeout', { command: "trap '' TERM; echo started; while :; do sleep 1; done", timeoutMs: 1_500 });
    await waitFor('the task to run', () => instance.pid > 0 && instance.usage().pids > 0);
    expect(instance.usage().memoryBytes).toBeGreaterThan(0);
    const result = await resultOf('direct-timeout');
    expect(result).toMatchObject({ outcome: 'timed_out', exitCode: null, signal: 'SIGKILL' });
    expect(result.summary).toContain('timed out after 1500 ms');
  });

  it('cancels a task on request, and stop() during a task cancels it and ends the instance', async () => {
    const { spec, instance } = await startDirect('direct-e');
    const waitingPid = instance.pid;
    await assign(spec.name, 'direct-cancel', { command: 'echo started; exec sleep 600' });
    await waitFor('the task to start', () => existsSync(join(spec.homeDir, 'work', 'direct-cancel', 'output.log')) && readFileSync(join(spec.homeDir, 'work', 'direct-cancel', 'output.log'), 'utf8').includes('started'));
    // The task runs in the sandbox started ahead, as its only process (the waiting shell became it).
    expect(instance.pid).toBe(waitingPid);
    await waitFor('the task to exec sleep', () => agentCommands(waitingPid).includes('sleep'));
    expect(agentCommands(waitingPid)).toEqual(['sleep']);
    instance.cancel('direct-cancel', 1, 'the operator asked');
    expect(await resultOf('direct-cancel')).toMatchObject({ outcome: 'cancelled', signal: 'SIGTERM', summary: 'cancelled: the operator asked\nstarted' });

    const second = await startDirect('direct-f');
    await assign(second.spec.name, 'direct-stopped', { command: "trap '' TERM; echo started; while :; do sleep 1; done" });
    const log = join(second.spec.homeDir, 'work', 'direct-stopped', 'output.log');
    await waitFor('the task to start', () => existsSync(log) && readFileSync(log, 'utf8').includes('started'));
    const exit = await second.instance.stop(500, { reason: 'watchdog', detail: 'memory over 1 MiB for 10 s' });
    expect(exit).toEqual({ kind: 'watchdog', detail: 'memory over 1 MiB for 10 s' });
    expect(await resultOf('direct-stopped')).toMatchObject({ outcome: 'cancelled', signal: 'SIGKILL' });
    expect(second.instance.usage()).toMatchObject({ memoryBytes: 0, pids: 0 });
  });

  it('runs a command and an environment with quotes, dollars, backslashes and newlines exactly, stdin at EOF', async () => {
    const { spec } = await startDirect('direct-k');
    const title = 'it\'s "q" $HOME `id` \\n \\\nline2\n';
    const command = [
      `printf '%s' "$WARREN_TASK_TITLE" > title.out`,
      `printf '%s' "$WARREN_TASK_COMMAND" > command.out`,
      `printf '%s' 'a "b" $c \\ d' > literal.out # it's`,
      'cat > stdin.out',
    ].join('\n');
    await assign(spec.name, 'direct-quoting', { title, command });
    expect(await resultOf('direct-quoting')).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    const read = (file: string): string => readFileSync(join(spec.homeDir, 'work', 'direct-quoting', file), 'utf8');
    expect(read('title.out')).toBe(title);
    expect(read('command.out')).toBe(command);
    expect(read('literal.out')).toBe('a "b" $c \\ d');
    expect(read('stdin.out')).toBe('');
  });

  it('gives the task in the sandbox started ahead the same environment as one in a sandbox of its own', async () => {
    const { spec } = await startDirect('direct-n', { kind: 'exec', command: ['/usr/bin/env'] });
    // The first task runs in the waiting sandbox (its shell set the environment), the second in its own.
    const seen: string[][] = [];
    for (const id of ['direct-env-1', 'direct-env-2']) {
      await assign(spec.name, id);
      const result = await resultOf(id);
      expect(result, result.summary).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      const env = readFileSync(join(spec.homeDir, 'work', id, 'output.log'), 'utf8').trim().split('\n');
      seen.push(env.map((line) => line.replaceAll(id, '<id>')).sort());
    }
    expect(seen[0]!.some((line) => line.startsWith('PATH='))).toBe(true);
    expect(seen[0]).toEqual(seen[1]);
  });

  it('gives a task pipes for stdout and stderr and /dev/null for stdin, as a runner does: /dev/stdout, /dev/stderr and /dev/stdin open', async () => {
    const { spec } = await startDirect('direct-p');
    const command = [
      'echo out > /dev/stdout',
      'echo err > /dev/stderr',
      'echo "stdin=$(readlink /proc/self/fd/0)"',
      'echo "types=$(stat -L -c %F /proc/self/fd/1 /proc/self/fd/2 | tr "\\n" " ")"',
      'cat /dev/stdin',
      'echo end',
    ].join('; ');
    // The first task runs in the sandbox started ahead (its shell read the script from a pipe),
    // the second in a sandbox of its own.
    for (const id of ['direct-stdio-1', 'direct-stdio-2']) {
      await assign(spec.name, id, { command });
      const result = await resultOf(id);
      expect(result, result.summary).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      const lines = result.summary.split('\n');
      expect(lines).toContain('out');
      expect(lines).toContain('err');
      expect(lines).toContain('stdin=/dev/null');
      expect(lines).toContain('types=fifo fifo ');
      expect(lines[lines.length - 1]).toBe('end');
    }
  });

  it('ends the instance when its waiting sandbox dies before a task, as with a dead runner', async () => {
    const { instance } = await startDirect('direct-l');
    const waitingPid = instance.pid;
    // The shell inside the sandbox's pid namespace, not the recipe's own `sh` on the host side,
    // which a loaded machine can show before it has exec'd prlimit.
    let shell: number | undefined;
    await waitFor('the waiting shell', () => (shell = sandboxedShell(waitingPid)) !== undefined);
    process.kill(shell!, 'SIGKILL');
    // signaled, or setup_error when bwrap's status had not reached the host yet: not a clean end either way.
    expect(['signaled', 'setup_error']).toContain((await instance.exited).kind);
    expect(instance.pid).toBe(0);

    // stop() before any task stops the waiting sandbox and ends the instance as a runner's shutdown would.
    const second = await startDirect('direct-m');
    const secondPid = second.instance.pid;
    await waitFor('the waiting shell', () => sandboxedShell(secondPid) !== undefined);
    expect(await second.instance.stop(1_000)).toEqual({ kind: 'succeeded', exitCode: 0 });
    expect(second.instance.pid).toBe(0);
    expect(existsSync(`/proc/${secondPid}`)).toBe(false);
  });

  it('runs an exec runtime task with the task file', async () => {
    const { spec } = await startDirect('direct-g', { kind: 'exec', command: ['/bin/sh', '-c', 'grep -o \'"title": "[^"]*"\' "$WARREN_TASK_FILE"; exit 0'] });
    await assign(spec.name, 'direct-exec', { title: 'exec title' });
    expect(await resultOf('direct-exec')).toMatchObject({ outcome: 'succeeded', summary: '"title": "exec title"' });
  });

  it('never writes through a symlink the task planted for output.log or its workspace', async () => {
    const { spec } = await startDirect('direct-h');
    const outside = join(fixture.dir, 'root-owned');
    mkdirSync(outside, { mode: 0o755 });
    const target = join(outside, 'secret.txt');
    writeFileSync(target, 'untouched\n', { mode: 0o644 });
    chmodSync(outside, 0o755);
    const script = [
      // The sandbox sees the host file only through its own links: make them point at the host path
      // as the host would resolve them.
      `rm -f output.log && ln -s ${target} output.log`,
      `cd .. && mv direct-attack gone && ln -s ${outside} direct-attack && cd gone`,
      'for i in 1 2 3 4 5; do echo "line $i"; echo "err $i" >&2; sleep 0.1; done',
      'echo last',
    ].join('; ');
    await assign(spec.name, 'direct-attack', { command: script });
    const result = await resultOf('direct-attack');
    expect(result.outcome).toBe('succeeded');
    expect(result.summary).toContain('last');
    expect(readFileSync(target, 'utf8')).toBe('untouched\n');
    expect(lstatSync(join(spec.homeDir, 'work', 'direct-attack')).isSymbolicLink()).toBe(true);
    // The outputs are not listed through the planted link.
    expect(result.outputs).toEqual([]);
  });

  it('hands a task with a repository to the runner, started on demand in the same instance', async () => {
    const { spec, instance, events } = await startDirect('direct-j');
    // The mirror does not exist: the runner, as the agent, reports that it cannot make the git workspace.
    await assign(spec.name, 'direct-git', { command: 'echo never', repository: { mirror: '/opt/warren/repos/none.git' } });
    const result = await resultOf('direct-git');
    expect(result).toMatchObject({ outcome: 'failed', summary: expect.stringContaining('cannot prepare the git workspace of direct-git') });
    // The runner said hello from inside its sandbox (the first hello is the instance's own, pid 0).
    expect(events.hellos.map((h) => h.pid > 0)).toEqual([false, true]);
    expect(events.acks).toEqual([{ agent: spec.name, taskId: 'direct-git', attempt: 1 }]);
    expect(instance.pid).toBeGreaterThan(0);
    expect(instance.connected).toBe(true);
    instance.requestShutdown('done');
    expect(await instance.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
  });

  it('ends the instance with a setup_error when its first sandbox cannot be spawned, after its hello', async () => {
    const base = await fixture.agent('direct-n');
    const spec: AgentStartSpec = { ...base, runner: { ...base.runner, perTask: true } };
    // A home the agent does not own is refused by the sandbox's spawn, not by anything before it.
    chownSync(spec.homeDir, spec.uid + 1, spec.gid + 1);
    const events = new RecordingEvents();
    // The start resolves (the spawn is not waited for); the failure ends the instance.
    const instance = await fixture.runtime.start(spec, events);
    cleanups.push(() => instance.close());
    const exit = await instance.exited;
    expect(exit).toMatchObject({ kind: 'setup_error', message: expect.stringContaining(`is owned by uid ${spec.uid + 1}, not ${spec.uid}`) });
    expect(instance.pid).toBe(0);
    // Nothing of it is left running: its sandbox name is free for the next start of the agent.
    chownSync(spec.homeDir, spec.uid, spec.gid);
    const again = await fixture.runtime.start(spec, new RecordingEvents());
    cleanups.push(() => again.close());
    await waitFor('the next start to spawn its sandbox', () => again.pid > 0);
  });

  it('leaves a task taken while the first sandbox was being spawned unacknowledged and unreported when the spawn fails', async () => {
    const spec = await fixture.agent('direct-o');
    const events = new RecordingEvents();
    const gateway = await AgentGateway.start({
      identity: { name: spec.name, template: spec.template, uid: spec.uid, gid: spec.gid, home: homeInSandbox(spec.name), capabilities: spec.capabilities },
      socketDir: join(fixture.stateDir, 'run', 'agents', spec.name, 'socket'),
      broker: fixture.broker,
      events,
      logger: silentLogger,
    });
    let failSpawn!: (error: Error) => void;
    const spawning = new Promise<WaitingSandbox>((_resolve, reject) => (failSpawn = reject));
    const host: DirectHost = {
      runtime: { kind: 'shell' },
      home: spec.homeDir,
      processHome: homeInSandbox(spec.name),
      uid: spec.uid,
      gid: spec.gid,
      unsafe: false,
      env: {},
      agentSdkBinPresent: false,
      waitingEnv: null,
      heartbeatIntervalMs: 1_000,
      spawnTask: () => Promise.reject(new Error('the first task runs in the sandbox started ahead')),
      spawnRunner: () => Promise.reject(new Error('no runner in this test')),
      log: silentLogger,
    };
    const instance = new DirectInstance(spec.name, host, gateway, () => Promise.resolve(), spawning);
    cleanups.push(() => instance.close());
    await waitFor('the instance to say hello', () => events.hellos.length > 0);
    expect(instance.pid).toBe(0);
    await assign(spec.name, 'direct-never-ran', { command: 'echo never' });
    // Taken: its workspace is made while the sandbox is (still) being spawned.
    await waitFor('the task to be taken', () => existsSync(join(spec.homeDir, 'work', 'direct-never-ran', 'task.json')));
    failSpawn(new Error('cgroup warren/x cannot be made'));
    expect(await instance.exited).toEqual({ kind: 'setup_error', message: 'cannot start the sandbox: cgroup warren/x cannot be made' });
    await instance.close();
    // Closed: whatever the instance was to report has reached the gateway by now, and it reported
    // neither a start nor a result (the supervisor settles the execution from the exit: lost).
    expect(events.acks).toEqual([]);
    expect(results.some((r) => r.taskId === 'direct-never-ran')).toBe(false);
  });

  it('refuses a workspace parent the agent replaced with a symlink, writing nothing there', async () => {
    const { spec } = await startDirect('direct-i');
    const outside = join(fixture.dir, 'root-owned-2');
    mkdirSync(outside, { mode: 0o755 });
    const { symlinkSync, readdirSync } = await import('node:fs');
    symlinkSync(outside, join(spec.homeDir, 'work'));
    await assign(spec.name, 'direct-parent', { command: 'echo never' });
    expect(await resultOf('direct-parent')).toMatchObject({ outcome: 'failed', summary: expect.stringContaining('cannot prepare workspace') });
    expect(readdirSync(outside)).toEqual([]);
  });
});

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AgentInstance } from '../src/index.js';
import { Collect } from './contract.js';
import { bubblewrapFixture, repo, RUNNER_DIR, type BubblewrapFixture } from './support/bubblewrap.js';
import { RecordingEvents, waitFor } from './support/events.js';

// What the bubblewrap driver does beyond the AgentRuntime contract: confinement of an exec, the
// home image of an agent with a quota, clean-up after a failed start and after a killed run.

let fixture: BubblewrapFixture;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  fixture = await bubblewrapFixture();
});
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await fixture?.close();
});

/** Mount points at or below `path` (from /proc/self/mountinfo). */
function mountsAt(path: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point === path || point.startsWith(`${path}/`));
}

/** The cgroup directories under `warren/` named `name`, in every hierarchy. */
function cgroupDirs(name: string): string[] {
  const found: string[] = [];
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const dir = join('/sys/fs/cgroup', hierarchy, 'warren', name);
    if (existsSync(dir)) found.push(dir);
  }
  if (existsSync(join('/sys/fs/cgroup/warren', name))) found.push(join('/sys/fs/cgroup/warren', name));
  return found;
}

describe('the bubblewrap agent runtime', () => {
  it('runs an exec as the agent uid, writing only in its home and seeing none of the state directory', async () => {
    const spec = await fixture.agent('confined');
    const stdout = new Collect();
    const script = [
      'echo hi > note.txt',
      'touch /usr/x 2>/dev/null && echo usr-writable',
      'touch /etc/x 2>/dev/null && echo etc-writable',
      'touch /x 2>/dev/null && echo root-writable',
      `ls ${fixture.stateDir} >/dev/null 2>&1 && echo state-visible`,
      'id -u',
    ].join('; ');
    const command = await fixture.runtime.exec(spec, ['/bin/sh', '-c', script], { stdout, stderr: new Collect() });
    expect(await command.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    expect(stdout.text).toBe(`${spec.uid}\n`);
    const note = statSync(join(spec.homeDir, 'note.txt'));
    expect([note.uid, note.gid]).toEqual([spec.uid, spec.gid]);
    expect(readFileSync(join(spec.homeDir, 'note.txt'), 'utf8')).toBe('hi\n');
    // Its sandbox's cgroups and run directory are gone once it ended.
    expect(cgroupDirs(`rt${process.pid}-confined-x${process.pid}`)).toEqual([]);
    expect(existsSync(join(fixture.stateDir, 'run', 'exec', String(process.pid)))).toBe(false);
  });

  it('runs execs side by side, each in a sandbox of its own, and removes each one once it ended', async () => {
    const spec = await fixture.agent('beside');
    const first = new Collect();
    const second = new Collect();
    // Each waits for the other's flag: they end only if both run at the same time.
    const one = await fixture.runtime.exec(spec, ['/bin/sh', '-c', 'touch a.flag; while [ ! -e b.flag ]; do sleep 0.05; done; echo one'], { stdout: first, stderr: new Collect() });
    const two = await fixture.runtime.exec(spec, ['/bin/sh', '-c', 'touch b.flag; while [ ! -e a.flag ]; do sleep 0.05; done; echo two'], { stdout: second, stderr: new Collect() });
    expect(existsSync(join(fixture.stateDir, 'run', 'exec', `${process.pid}-1`))).toBe(true);
    expect(await Promise.all([one.exited, two.exited])).toEqual([
      { kind: 'succeeded', exitCode: 0 },
      { kind: 'succeeded', exitCode: 0 },
    ]);
    expect([first.text, second.text]).toEqual(['one\n', 'two\n']);
    for (const name of [`rt${process.pid}-beside-x${process.pid}`, `rt${process.pid}-beside-x${process.pid}-1`]) expect(cgroupDirs(name)).toEqual([]);
    expect(existsSync(join(fixture.stateDir, 'run', 'exec', String(process.pid)))).toBe(false);
    expect(existsSync(join(fixture.stateDir, 'run', 'exec', `${process.pid}-1`))).toBe(false);
  });

  it('gives an agent with a quota its own home filesystem; detachStorage unmounts it, releaseStorage deletes its image', async () => {
    const spec = { ...(await fixture.agent('quota')), homeQuotaBytes: 16 * 2 ** 20 };
    const events = new RecordingEvents();
    const instance = await fixture.runtime.start(spec, events);
    cleanups.push(() => instance.close());
    await waitFor('the runner to say hello', () => events.hellos.length > 0);
    const image = join(fixture.stateDir, 'home-images', 'quota.ext4');
    expect(existsSync(image)).toBe(true);
    expect(mountsAt(realpathSync(spec.homeDir))).toEqual([realpathSync(spec.homeDir)]);
    instance.requestShutdown('sleep');
    expect(await instance.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    await instance.close();

    const ref = { name: spec.name, homeDir: spec.homeDir };
    expect(await fixture.runtime.detachStorage(ref)).toBe(true);
    expect(mountsAt(realpathSync(spec.homeDir))).toEqual([]);
    expect(existsSync(image)).toBe(true);
    expect(await fixture.runtime.detachStorage(ref)).toBe(false);
    await fixture.runtime.releaseStorage(ref);
    expect(existsSync(image)).toBe(false);
    await fixture.runtime.releaseStorage(ref);
  });

  it('closes the channel it opened when an instance cannot start', async () => {
    const spec = await fixture.agent('broken');
    const bad = { ...spec, resources: { ...spec.resources, cpuWeight: 0 } };
    await expect(fixture.runtime.start(bad, new RecordingEvents())).rejects.toMatchObject({ code: 'WARREN_SANDBOX', field: 'limits.cpuWeight' });
    expect(existsSync(join(fixture.stateDir, 'run', 'agents', 'broken', 'socket'))).toBe(false);
  });

  it('refuses to start without a broker and once closed; close() is idempotent', async () => {
    const spec = await fixture.agent('refused');
    const runtime = fixture.makeRuntime();
    await expect(runtime.start(spec, new RecordingEvents())).rejects.toMatchObject({ code: 'WARREN_RUNTIME', agent: 'refused' });
    await runtime.close();
    await runtime.close();
    await expect(runtime.exec(spec, ['true'], { stdout: new Collect(), stderr: new Collect() })).rejects.toMatchObject({ code: 'WARREN_RUNTIME' });
    await expect(runtime.reclaim()).rejects.toMatchObject({ code: 'WARREN_RUNTIME' });
  });

  it('reclaim() removes what a run killed with SIGKILL left: an exec sandbox, a mount under the homes, the instances run directory', async () => {
    const spec = await fixture.agent('orphan');
    const tag = `rt${process.pid}`;
    const options = { stateDir: fixture.stateDir, homeRoot: fixture.homeRoot, runnerDir: RUNNER_DIR, root: repo, instanceTag: tag };
    const killed = spawn(process.execPath, [join(import.meta.dirname, 'support', 'killed-exec.mjs'), JSON.stringify(options), JSON.stringify(spec)], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    killed.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    killed.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<void>((resolve) => killed.once('exit', () => resolve()));
    cleanups.push(async () => {
      killed.kill('SIGKILL');
      await exited;
    });
    await waitFor(`the exec to start (it said: ${output})`, () => output.includes('spawned'));
    killed.kill('SIGKILL');
    await exited;
    const sandboxName = `${tag}-orphan-x${killed.pid}`;
    const runDir = join(fixture.stateDir, 'run', 'exec', String(killed.pid));
    expect(cgroupDirs(sandboxName).length).toBeGreaterThan(0);
    expect(existsSync(runDir)).toBe(true);

    const stale = join(fixture.homeRoot, 'stale');
    mkdirSync(stale);
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', stale]).status).toBe(0);
    cleanups.push(() => {
      if (mountsAt(stale).length > 0) spawnSync('umount', [stale]);
    });
    const agentsRun = join(fixture.stateDir, 'run', 'agents', 'ghost', 'socket');
    mkdirSync(agentsRun, { recursive: true });

    const report = await fixture.runtime.reclaim();
    expect(report.storage).toEqual([stale]);
    expect(mountsAt(stale)).toEqual([]);
    expect(cgroupDirs(sandboxName)).toEqual([]);
    expect(existsSync(runDir)).toBe(false);
    expect(existsSync(join(fixture.stateDir, 'run', 'agents'))).toBe(false);
    expect(Array.isArray(report.instances)).toBe(true);
  });

  it('keeps the instance a runner is started in apart from its channel: the pid is the sandbox, connected follows the runner', async () => {
    const spec = await fixture.agent('channel');
    const events = new RecordingEvents();
    const instance: AgentInstance = await fixture.runtime.start(spec, events);
    cleanups.push(() => instance.close());
    expect(instance.connected).toBe(false);
    await waitFor('the runner to say hello', () => events.hellos.length > 0);
    expect(instance.connected).toBe(true);
    expect(events.hellos[0]!.pid).toBeLessThan(10); // a pid in the sandbox's own pid namespace
    expect(readFileSync(`/proc/${instance.pid}/comm`, 'utf8').trim()).toBe('bwrap');
    await waitFor('a heartbeat', () => events.alives > 1, 30_000);
    await instance.close();
    expect(await instance.exited).toMatchObject({ kind: expect.stringMatching(/^(succeeded|signaled|failed)$/) });
    expect(existsSync(join(fixture.stateDir, 'run', 'agents', 'channel', 'socket'))).toBe(false);
  });
});

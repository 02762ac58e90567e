import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  classifyExit,
  describeExit,
  probeHost,
  processesOfUid,
  SandboxUnavailableError,
  spawnSandbox,
  type ExitFacts,
  type HostCapabilities,
  type SandboxExit,
} from '@warren/sandbox';
import { cgroupDirsOf, cleanup, freshUid, makeSpec, readLog, requireSandboxHost, track, waitUntil } from './helpers.js';

let host: HostCapabilities;
beforeAll(async () => {
  await requireSandboxHost();
  host = await probeHost();
});
afterEach(cleanup);

describe('classifyExit and describeExit', () => {
  const base: ExitFacts = { setupError: null, stopReason: null, exitCode: 0, signal: null, oomKills: 0, pidsMaxEvents: 0 };

  it('classifies in the documented order', () => {
    expect(classifyExit(base)).toEqual({ kind: 'succeeded', exitCode: 0 });
    expect(classifyExit({ ...base, exitCode: 4 })).toEqual({ kind: 'failed', exitCode: 4 });
    expect(classifyExit({ ...base, exitCode: null, signal: 'SIGTERM' })).toEqual({ kind: 'signaled', signal: 'SIGTERM' });
    expect(classifyExit({ ...base, exitCode: null, signal: 'SIGKILL', oomKills: 1 })).toEqual({ kind: 'oom' });
    expect(classifyExit({ ...base, exitCode: 2, pidsMaxEvents: 3 })).toEqual({ kind: 'pids' });
    expect(classifyExit({ ...base, exitCode: 2, pidsMaxEvents: 3, oomKills: 1 })).toEqual({ kind: 'oom' });
    // a clean exit stays a success even if a fork was refused or something was OOM-killed on the way
    expect(classifyExit({ ...base, pidsMaxEvents: 3, oomKills: 1 })).toEqual({ kind: 'succeeded', exitCode: 0 });
    const stopReason = { reason: 'watchdog', detail: 'memory over 64 MiB for 2000 ms' } as const;
    expect(classifyExit({ ...base, exitCode: null, signal: 'SIGKILL', oomKills: 1, stopReason })).toEqual({
      kind: 'watchdog',
      detail: 'memory over 64 MiB for 2000 ms',
    });
    expect(classifyExit({ ...base, stopReason, setupError: 'bwrap: bad' })).toEqual({ kind: 'setup_error', message: 'bwrap: bad' });
  });

  it('describes every kind in one line', () => {
    const exits: [SandboxExit, string][] = [
      [{ kind: 'succeeded', exitCode: 0 }, 'exit code 0'],
      [{ kind: 'failed', exitCode: 3 }, 'exit code 3'],
      [{ kind: 'signaled', signal: 'SIGKILL' }, 'killed by SIGKILL'],
      [{ kind: 'oom' }, 'out of memory (killed by the OOM killer)'],
      [{ kind: 'pids' }, 'process limit reached (pids.max refused a fork)'],
      [{ kind: 'timeout', detail: 'task t1 over 60000 ms' }, 'timed out: task t1 over 60000 ms'],
      [{ kind: 'watchdog', detail: 'cpu' }, 'stopped by the watchdog: cpu'],
      [{ kind: 'setup_error', message: 'bwrap: x' }, 'sandbox setup failed: bwrap: x'],
    ];
    for (const [exit, text] of exits) expect(describeExit(exit)).toBe(text);
  });
});

describe('stop with a reason', () => {
  it('records timeout when the caller stops a running sandbox for it', async () => {
    const spec = makeSpec(['/bin/sh', '-c', 'echo ready; exec sleep 1000']);
    const sandbox = track(await spawnSandbox(spec));
    await waitUntil('ready', () => readLog(spec).includes('ready'));
    const exit = await sandbox.stop(5000, { reason: 'timeout', detail: 'task t1 ran over 100 ms' });
    expect(exit).toEqual({ kind: 'timeout', detail: 'task t1 ran over 100 ms' });
    expect(await sandbox.exited).toBe(exit);
  });

  it('records watchdog for a tree that ignores SIGTERM and is killed after the grace', async () => {
    const uid = freshUid();
    const spec = makeSpec(['/bin/sh', '-c', "trap '' TERM; echo ready; while :; do sleep 1; done"], { uid });
    const sandbox = track(await spawnSandbox(spec));
    await waitUntil('ready', () => readLog(spec).includes('ready'));
    const exit = await sandbox.stop(200, { reason: 'watchdog', detail: 'pids over 10 for 1000 ms' });
    expect(exit).toEqual({ kind: 'watchdog', detail: 'pids over 10 for 1000 ms' });
    expect(processesOfUid(uid)).toEqual([]);
    for (const dir of cgroupDirsOf(host, spec.name)) expect(existsSync(dir), dir).toBe(false);
  });

  it('keeps the real exit when the reason comes after the end', async () => {
    const spec = makeSpec(['/bin/sh', '-c', 'exit 0']);
    const sandbox = track(await spawnSandbox(spec));
    await sandbox.exited;
    expect(await sandbox.stop(0, { reason: 'timeout', detail: 'late' })).toEqual({ kind: 'succeeded', exitCode: 0 });
  });
});

describe('usage()', () => {
  it('reads memory, tasks and CPU time of the tree from its cgroups', async () => {
    // 64 MiB held, a busy loop until the process has used 400 ms of CPU (not of wall time: on a
    // loaded machine 600 ms of wall time can be far less CPU), and two extra sleeping processes.
    const program =
      "const b = Buffer.alloc(64 * 1024 * 1024, 1); console.log('ready', b.length); const spent = () => { const u = process.cpuUsage(); return u.user + u.system; }; while (spent() < 400000); setInterval(() => {}, 1000);";
    const spec = makeSpec(['/bin/sh', '-c', `sleep 1000 & sleep 1000 & exec /usr/bin/node -e "${program}"`]);
    const sandbox = track(await spawnSandbox(spec));
    expect(sandbox.unsafe).toBe(false);
    await waitUntil('64 MiB charged and 300 ms of CPU', () => {
      const usage = sandbox.usage();
      return usage.memoryBytes >= 64 * 1024 * 1024 && usage.cpuMs >= 300;
    });
    const usage = sandbox.usage();
    // node's threads + two sleeps + bwrap's two helpers
    expect(usage.pids).toBeGreaterThanOrEqual(5);
    expect(usage.pids).toBeLessThanOrEqual(spec.limits.pidsMax);
    expect(usage.memoryBytes).toBeLessThan(spec.limits.memoryMaxBytes);
    await sandbox.stop(0);
    const after = sandbox.usage();
    expect(after.memoryBytes).toBe(0);
    expect(after.pids).toBe(0);
    expect(after.cpuMs).toBeGreaterThanOrEqual(usage.cpuMs);
  });
});

describe('isolation modes', () => {
  const noCgroups = (): HostCapabilities => ({
    ...host,
    cgroup: { version: 'none', memory: false, pids: false, cpu: false, kill: false, paths: { unified: null, memory: null, pids: null, cpu: null, cpuacct: null } },
  });

  it('refuses a host without cgroups by default, naming what is missing', async () => {
    const spec = makeSpec(['/usr/bin/true']);
    const error = await spawnSandbox(spec, { host: noCgroups() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxUnavailableError);
    expect((error as SandboxUnavailableError).missing).toEqual(['cgroup memory and pids controller']);
  });

  it('runs unsafe-no-cgroups only when the spec asks for it, marked unsafe, still stopped as a whole', async () => {
    const uid = freshUid();
    const spec = makeSpec(['/bin/sh', '-c', "trap '' TERM; (setsid sh -c 'sleep 1000' &); id -u; echo ready; while :; do sleep 1; done"], {
      uid,
      isolation: 'unsafe-no-cgroups',
    });
    const sandbox = track(await spawnSandbox(spec, { host: noCgroups() }));
    expect(sandbox.unsafe).toBe(true);
    await waitUntil('ready', () => readLog(spec).includes('ready'));
    expect(readLog(spec)).toContain(`${uid}\n`);
    for (const dir of cgroupDirsOf(host, spec.name)) expect(existsSync(dir), dir).toBe(false);
    await waitUntil('usage from /proc', () => sandbox.usage().pids >= 3);
    expect(sandbox.usage().memoryBytes).toBeGreaterThan(0);
    expect(await sandbox.stop(200)).toEqual({ kind: 'signaled', signal: 'SIGKILL' });
    await waitUntil('no process of the uid', () => processesOfUid(uid).length === 0);
  });
});

describe('freeze', () => {
  it('freezes every process at once and thaws them; a frozen sandbox is killed by stop(0)', async () => {
    const uid = freshUid();
    const spec = makeSpec(['/bin/sh', '-c', 'echo ready; while :; do sleep 0.05; done'], { uid });
    const sandbox = track(await spawnSandbox(spec));
    await waitUntil('ready', () => readLog(spec).includes('ready'));
    const freezer = cgroupDirsOf(host, spec.name).find((dir) => existsSync(join(dir, 'cgroup.freeze')));
    if (!freezer) {
      // A host without a cgroup2 freezer: nothing is frozen, and the caller is told.
      expect(sandbox.freeze()).toBe(false);
      return;
    }
    const frozen = (): string | undefined => /^frozen (\d)$/m.exec(readFileSync(join(freezer, 'cgroup.events'), 'utf8'))?.[1];
    expect(sandbox.freeze()).toBe(true);
    await waitUntil('the sandbox frozen', () => frozen() === '1');
    sandbox.thaw();
    await waitUntil('the sandbox thawed', () => frozen() === '0');
    expect(sandbox.freeze()).toBe(true);
    await waitUntil('the sandbox frozen again', () => frozen() === '1');
    const exit = await sandbox.stop(0, { reason: 'watchdog', detail: 'disk: the filesystem is full' });
    expect(exit).toEqual({ kind: 'watchdog', detail: 'disk: the filesystem is full' });
    expect(processesOfUid(uid)).toEqual([]);
    expect(sandbox.freeze()).toBe(false);
    for (const dir of cgroupDirsOf(host, spec.name)) expect(existsSync(dir), dir).toBe(false);
  });
});

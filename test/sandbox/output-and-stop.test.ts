/**
 * Output floods and stopping. 1 GiB of output and a 100 MB line go through the supervisor (this
 * test process) into the agent's capped log: the supervisor's memory stays bounded, the log stays
 * under its cap and every byte is either in the log, in its `.1` or counted as dropped. A tree
 * that double-forks, calls setsid and ignores SIGTERM is killed whole by `stop()`, and a
 * supervisor killed with SIGKILL leaves no agent running.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cgroupsOf, succeeded, waitFor, Warren, type Agent } from './support/fixture.js';
import { STUBBORN_TREE } from './support/probes.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

let warren: Warren;
beforeAll(async () => {
  warren = await Warren.open();
});
afterAll(() => warren?.close());

/** Samples this process's RSS every 20 ms while `run` runs; resolves with its result and the peak growth. */
async function peakRssGrowth<T>(run: () => Promise<T>): Promise<{ result: T; growthBytes: number }> {
  const baseline = process.memoryUsage.rss();
  let peak = baseline;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 20);
  try {
    const result = await run();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, growthBytes: peak - baseline };
  } finally {
    clearInterval(timer);
  }
}

/** Sizes of the agent's log and its rotated `.1` (0 when absent). */
function logSizes(agent: Agent): [number, number] {
  const size = (path: string) => (existsSync(path) ? statSync(path).size : 0);
  return [size(agent.spec.logPath), size(`${agent.spec.logPath}.1`)];
}

describe('output floods', () => {
  it('1 GiB of output: the log stays under its cap, every byte is accounted for, supervisor memory stays bounded', async () => {
    const logMaxBytes = 8 * MiB;
    // Warm-up: 64 MiB through the same path first, so the baseline includes the allocator's
    // steady state and the growth measured below is what 1 GiB adds on top of it.
    const warmUp = await warren.spawn('warmup', ['/bin/sh', '-c', `head -c ${64 * MiB} /dev/zero`], { logMaxBytes });
    expect(succeeded(await warmUp.sandbox.exited)).toBe(true);
    const { result, growthBytes } = await peakRssGrowth(async () => {
      const agent = await warren.spawn('flood', ['/bin/sh', '-c', `head -c ${GiB} /dev/zero`], { logMaxBytes });
      const job = warren.neighbourJob();
      const [exit, neighbour] = await Promise.all([agent.sandbox.exited, job]);
      return { agent, exit, neighbour };
    });
    const { agent, exit, neighbour } = result;
    expect(succeeded(exit), JSON.stringify(exit)).toBe(true);
    expect(succeeded(neighbour.exit)).toBe(true);
    expect(neighbour.onHost).toBe(neighbour.expected);
    const [current, previous] = logSizes(agent);
    expect(current).toBeLessThanOrEqual(logMaxBytes);
    expect(previous).toBeLessThanOrEqual(logMaxBytes);
    expect(current + previous + agent.sandbox.logDroppedBytes).toBe(GiB);
    expect(growthBytes).toBeLessThan(64 * MiB);
  });

  it('a 100 MB line: kept as its newest bytes under the cap, supervisor memory stays bounded', async () => {
    const logMaxBytes = 8 * MiB;
    const lineBytes = 100_000_000;
    const { result, growthBytes } = await peakRssGrowth(async () => {
      const agent = await warren.spawn('longline', ['/bin/sh', '-c', `head -c ${lineBytes} /dev/zero | tr '\\0' a; echo`], { logMaxBytes });
      const [exit, neighbour] = await Promise.all([agent.sandbox.exited, warren.neighbourJob()]);
      return { agent, exit, neighbour };
    });
    const { agent, exit, neighbour } = result;
    expect(succeeded(exit), JSON.stringify(exit)).toBe(true);
    expect(succeeded(neighbour.exit)).toBe(true);
    expect(neighbour.onHost).toBe(neighbour.expected);
    const [current, previous] = logSizes(agent);
    expect(current).toBeLessThanOrEqual(logMaxBytes);
    expect(previous).toBeLessThanOrEqual(logMaxBytes);
    expect(current + previous + agent.sandbox.logDroppedBytes).toBe(lineBytes + 1);
    const tail = readFileSync(agent.spec.logPath);
    expect(tail.subarray(-2).toString()).toBe('a\n');
    expect(growthBytes).toBeLessThan(64 * MiB);
  });
});

/** The session id of a host process (field 6 of /proc/<pid>/stat), or null if it is gone. */
function sessionOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3] ?? null;
  } catch {
    return null;
  }
}

describe('stop', () => {
  it('kills a tree that double-forks, calls setsid and ignores SIGTERM: nothing left with the uid, cgroups gone', async () => {
    const agent = await warren.spawn('stubborn', ['/bin/sh', '-c', STUBBORN_TREE]);
    await agent.waitForLog('tree-ready');
    // Host side before the stop: at least 7 processes in at least 3 sessions (the main one, the
    // setsid'd shell's, the Perl orphan's), every one inside the agent's cgroups.
    const sessions = () => new Set(agent.hostPids().map((pid) => sessionOf(pid)).filter((s) => s !== null));
    await waitFor('the whole tree to start', () => agent.hostPids().length >= 7 && sessions().size >= 3, 20_000);
    for (const pid of agent.hostPids()) {
      const paths = cgroupsOf(pid);
      // (a process of the tree that exited meanwhile — the double fork's middle — is skipped)
      if (paths !== null) expect(paths, `cgroups of ${pid}`).toContain(`/warren/${agent.name}`);
    }
    const neighbour = warren.neighbourJob();
    const exit = await agent.sandbox.stop(300);
    expect(exit).toEqual({ kind: 'signaled', signal: 'SIGKILL' });
    expect(agent.hostPids()).toEqual([]);
    for (const dir of warren.cgroupDirs(agent.name)) expect(existsSync(dir), dir).toBe(false);
    const job = await neighbour;
    expect(succeeded(job.exit), `${JSON.stringify(job.exit)}\n${job.printed}`).toBe(true);
  });

  it('a stop with a reason (timeout, watchdog) is the exit kind, and still kills the whole tree', async () => {
    for (const reason of ['timeout', 'watchdog'] as const) {
      const agent = await warren.spawn(`stop-${reason}`, ['/bin/sh', '-c', STUBBORN_TREE]);
      await agent.waitForLog('tree-ready');
      const detail = `battery: ${reason} after 1 ms`;
      expect(await agent.sandbox.stop(300, { reason, detail })).toEqual({ kind: reason, detail });
      expect(agent.hostPids()).toEqual([]);
      for (const dir of warren.cgroupDirs(agent.name)) expect(existsSync(dir), dir).toBe(false);
    }
  });
});

/**
 * Exhaustion battery: fork bomb, memory bomb, /tmp fill and fd exhaustion, each held at its limit
 * while a second, well-behaved agent (another uid) runs a small job to the end. Every bomb is
 * bounded twice: by the limit under test and by a loop count / 30 s hold in the program itself.
 * Host side: the cgroup counters show the limit was hit and held (pids.events, memory OOM kills,
 * /proc/<pid>/limits), `usage()` stays within the limits, and after the end no process of the
 * agent's uid is left and its cgroups are gone.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E, parseProbe, succeeded, Warren, type Agent } from './support/fixture.js';
import { perl } from './support/probes.js';

const MiB = 1024 * 1024;

let warren: Warren;
beforeAll(async () => {
  warren = await Warren.open();
});
afterAll(() => warren?.close());

/** Runs the neighbour job to the end and checks it did all of its work. */
async function expectNeighbourFinishes(): Promise<void> {
  const job = await warren.neighbourJob();
  expect(succeeded(job.exit), `${JSON.stringify(job.exit)}\n${job.printed}`).toBe(true);
  expect(job.printed).toContain(job.expected);
  expect(job.printed).toContain('neighbour-done');
  expect(job.onHost).toBe(job.expected);
}

/** After the end: nothing of the agent's uid runs and its cgroups are gone. */
function expectGone(agent: Agent): void {
  expect(agent.hostPids()).toEqual([]);
  for (const dir of warren.cgroupDirs(agent.name)) expect(existsSync(dir), dir).toBe(false);
}

/** OOM kills recorded in the agent's memory cgroup (v1 memory.oom_control, v2 memory.events). */
function oomKills(agent: Agent): number {
  const file = warren.host.cgroup.version === 'v2' ? 'memory.events' : 'memory.oom_control';
  const text = warren.readCgroup(agent.name, 'memory', file) ?? '';
  return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
}

describe('exhaustion', () => {
  it('fork bomb: capped at pidsMax with EAGAIN, ends as kind pids, a neighbour finishes meanwhile', async () => {
    const pidsMax = 48;
    // Every process forks in a loop (exponential); a process whose fork fails parks; the leader
    // reports the errno and holds until released, then exits 3.
    const body = String.raw`
      my $leader = $$;
      for my $i (1 .. 500) {
        my $p = fork();
        next if defined $p;
        if ($$ == $leader) { out('fork_errno', err()); last }
        for (1 .. 600) { select(undef, undef, undef, 0.05) } POSIX::_exit(0);
      }
      if ($$ != $leader) { for (1 .. 600) { select(undef, undef, undef, 0.05) } POSIX::_exit(0) }
      print "bomb-saturated\n";
      for (1 .. 600) { last if -e "$ENV{HOME}/release"; select(undef, undef, undef, 0.05) }
      exit 3;
    `;
    const bomb = await warren.spawn('forkbomb', perl(body), { limits: { pidsMax } });
    await bomb.waitForLog('bomb-saturated');
    expect(parseProbe(bomb.log()).fork_errno).toBe(E('EAGAIN'));
    // Host side: the pids cgroup refused forks and holds the count at its limit.
    const events = warren.readCgroup(bomb.name, 'pids', 'pids.events') ?? '';
    expect(Number(/^max (\d+)$/m.exec(events)?.[1] ?? 0)).toBeGreaterThan(0);
    expect(Number(warren.readCgroup(bomb.name, 'pids', 'pids.current'))).toBeLessThanOrEqual(pidsMax);
    expect(bomb.hostPids().length).toBeLessThanOrEqual(pidsMax);
    expect(bomb.hostPids().length).toBeGreaterThan(pidsMax / 2);
    expect(bomb.sandbox.usage().pids).toBeLessThanOrEqual(pidsMax);

    await expectNeighbourFinishes();
    expect(bomb.hostPids().length).toBeGreaterThan(pidsMax / 2);

    warren.release(bomb);
    expect(await bomb.sandbox.exited).toEqual({ kind: 'pids' });
    expectGone(bomb);
  });

  it('memory bomb: OOM-killed inside its cgroup, ends as kind oom, a neighbour finishes meanwhile', async () => {
    const memoryMaxBytes = 64 * MiB;
    // The allocator is restarted each time the OOM killer takes it, until released (at most 100 times).
    const script = [
      'i=0',
      'while [ ! -e "$HOME/release" ] && [ $i -lt 100 ]; do',
      `  perl -e 'my @a; push @a, "x" x (1 << 20) for 1 .. 4096; print "allocated-all\\n"'`,
      '  echo "allocator-exit=$?"',
      '  i=$((i + 1))',
      'done',
      'exit 1',
    ].join('\n');
    const bomb = await warren.spawn('membomb', ['/bin/sh', '-c', script], { limits: { memoryMaxBytes } });
    await bomb.waitForLog('allocator-exit=137');
    expect(bomb.log()).not.toContain('allocated-all');
    // Host side: the kernel's OOM killer acted in the agent's own cgroup, under its limit.
    expect(oomKills(bomb)).toBeGreaterThan(0);
    if (warren.host.cgroup.version === 'v1') {
      expect(Number(warren.readCgroup(bomb.name, 'memory', 'memory.max_usage_in_bytes'))).toBeLessThanOrEqual(memoryMaxBytes);
    }
    expect(bomb.sandbox.usage().memoryBytes).toBeLessThanOrEqual(memoryMaxBytes);

    await expectNeighbourFinishes();
    expect(bomb.hostPids().length).toBeGreaterThan(0);

    warren.release(bomb);
    expect(await bomb.sandbox.exited).toEqual({ kind: 'oom' });
    expectGone(bomb);
  });

  it('/tmp fill: ENOSPC at the tmpfs size, charged to the agent, nothing on the host /tmp', async () => {
    const tmpfsBytes = 16 * MiB;
    const fileName = `warren-battery-fill-${Warren.marker()}`;
    const body = String.raw`
      open(my $f, '>', '/tmp/${fileName}') or die "open: $!";
      my ($written, $chunk) = (0, "z" x (1 << 20));
      for (1 .. 64) {
        my $n = syswrite($f, $chunk);
        if (!defined $n) { out('fill_errno', err()); last }
        $written += $n;
      }
      out('written', $written);
      hold();
    `;
    const agent = await warren.spawn('tmpfill', perl(body), { limits: { tmpfsBytes } });
    await agent.waitForLog('probes-done');
    const r = parseProbe(agent.log());
    expect(r.fill_errno).toBe(E('ENOSPC'));
    expect(Number(r.written)).toBeLessThanOrEqual(tmpfsBytes);
    expect(Number(r.written)).toBeGreaterThan(tmpfsBytes - MiB);
    // Host side: the bytes are in the agent's private tmpfs (charged to its memory cgroup), not on the host.
    expect(existsSync(join('/tmp', fileName))).toBe(false);
    expect(agent.sandbox.usage().memoryBytes).toBeGreaterThanOrEqual(Number(r.written));

    await expectNeighbourFinishes();

    warren.release(agent);
    expect(succeeded(await agent.sandbox.exited)).toBe(true);
    expectGone(agent);
  });

  it('fd exhaustion: EMFILE at nofile, the limit cannot be raised, a neighbour finishes meanwhile', async () => {
    const nofile = 64;
    const body = String.raw`
      my @fds;
      for (1 .. 100000) {
        open(my $fh, '<', '/dev/null') or do { out('open_errno', err()); last };
        push @fds, $fh;
      }
      out('opened', scalar @fds);
      # setrlimit(RLIMIT_NOFILE = 7, { 1048576, 1048576 }) must not raise the hard limit
      sc('raise_nofile', 160, 7, pack('QQ', 1048576, 1048576));
      hold();
    `;
    const agent = await warren.spawn('fds', perl(body), { limits: { nofile } });
    await agent.waitForLog('probes-done');
    const r = parseProbe(agent.log());
    expect(r.open_errno).toBe(E('EMFILE'));
    expect(r.raise_nofile).toBe(E('EPERM'));
    // stdin, stdout, stderr (and perl's own) take the rest of the 64.
    expect(Number(r.opened)).toBeGreaterThan(nofile - 8);
    expect(Number(r.opened)).toBeLessThan(nofile);
    // Host side: the kernel's view of the process's limit and its open descriptors.
    const [perlPid] = agent.hostPids();
    expect(perlPid).toBeDefined();
    expect(readFileSync(`/proc/${perlPid}/limits`, 'utf8')).toMatch(new RegExp(`^Max open files\\s+${nofile}\\s+${nofile}\\s+files`, 'm'));
    expect(readdirSync(`/proc/${perlPid}/fd`).length).toBeLessThanOrEqual(nofile);

    await expectNeighbourFinishes();

    warren.release(agent);
    expect(succeeded(await agent.sandbox.exited)).toBe(true);
    expectGone(agent);
  });
});

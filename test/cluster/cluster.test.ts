/**
 * The broker as a NATS cluster: the built `warren run --until-idle` against three nats-servers on
 * loopback (`--nats-url` with the three URLs, `--nats-replicas 3`), while a test kills servers with
 * SIGKILL. The run must finish with the durability invariants of `test/durability` (each task
 * settled exactly once, no execution lost or applied twice, consumers drained, audit verified).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startNatsCluster, type NatsCluster } from '@warren/testing';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireMachine, startWarren, type CliProcess } from '../support/cli.js';
import {
  agentProcesses,
  agentUids,
  checkInvariants,
  countStatus,
  finish,
  makeLayout,
  namespaceOf,
  shellTask,
  waitForRun,
  type Layout,
} from '../durability/support.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

beforeAll(() => requireMachine());

/** `count` shell tasks `<prefix>1…` that each run `command`. */
function tasksOf(prefix: string, count: number, command: string): Record<string, string> {
  return Object.fromEntries(Array.from({ length: count }, (_, i) => [`${prefix}${i + 1}`, shellTask(`${prefix}${i + 1}`, command)]));
}

/** Starts `warren run --until-idle --json` on `layout` against every server of `cluster`, streams with three replicas. */
function startClusterRun(layout: Layout, cluster: NatsCluster): CliProcess {
  const run = startWarren(layout.args(['run', '--until-idle', '--json', '--nats-url', cluster.urls.join(','), '--nats-replicas', '3']));
  cleanups.push(() => {
    if (run.child.exitCode === null && run.child.signalCode === null && run.child.pid !== undefined) process.kill(run.child.pid, 'SIGKILL');
  });
  return run;
}

/** Waits until `stream` has a running leader other than `not`, and returns its index. */
async function leaderOf(cluster: NatsCluster, stream: string, not?: number): Promise<number> {
  let leader: number | undefined;
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      leader = await cluster.streamLeader(stream);
    } catch {
      leader = undefined; // the stream is not made yet
    }
    if (leader !== undefined && leader !== not) return leader;
    if (Date.now() > deadline) throw new Error(`stream ${stream} has no running leader${not === undefined ? '' : ` other than n${not}`} after 90 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** SIGKILLs the leader of `stream`, waits for another server to be elected, then restarts the killed one. */
async function killLeader(cluster: NatsCluster, stream: string): Promise<number> {
  const leader = await leaderOf(cluster, stream);
  const exit = await cluster.kill(leader, 'SIGKILL');
  expect(exit.signal).toBe('SIGKILL');
  await leaderOf(cluster, stream, leader);
  await cluster.restart(leader);
  return leader;
}

/** The `num_replicas` of each of the layout's streams, asked of the server at `url`. */
async function streamReplicas(layout: Layout, url: string): Promise<number[]> {
  const nc = await connect({ servers: url, name: 'cluster-check', reconnect: false });
  try {
    const jsm = await jetstreamManager(nc);
    const out: number[] = [];
    for (const spec of namespaceOf(layout).streams) out.push((await jsm.streams.info(spec.name)).config.num_replicas);
    return out;
  } finally {
    await nc.close();
  }
}

describe('a 3-server NATS cluster with R3 streams', () => {
  it('the leader of the assignment stream, then of the result stream, killed with SIGKILL mid-run and restarted: every task done once', async () => {
    const cluster = await startNatsCluster({ size: 3 });
    cleanups.push(() => cluster.close());
    // One agent with two tasks at a time: at least 18 s of work, so both kills land mid-run.
    const layout = makeLayout({ tasks: tasksOf('a', 12, 'sleep 3'), natsUrl: cluster.urls[0]!, maxInstances: 1, wipPerInstance: 2 });
    cleanups.push(() => layout.remove());
    const ns = namespaceOf(layout);
    const run = startClusterRun(layout, cluster);

    await waitForRun(layout, run, 'the first task in progress', () => countStatus(layout, 'in_progress') + countStatus(layout, 'done') > 0, 120_000);
    const assignLeader = await killLeader(cluster, ns.assignStream);

    await waitForRun(layout, run, 'two tasks done after the assignment leader was replaced', () => countStatus(layout, 'done') >= 2, 120_000);
    expect(countStatus(layout, 'done')).toBeLessThan(12);
    const resultsLeader = await killLeader(cluster, ns.resultsStream);

    await waitForRun(layout, run, 'every task done', () => countStatus(layout, 'done') === 12, 180_000);
    const end = await finish(run, 120_000);
    expect(end.code, end.stderr.slice(-4000)).toBe(0);
    expect(cluster.servers[assignLeader]!.running && cluster.servers[resultsLeader]!.running).toBe(true);
    await cluster.waitForHealthy({ timeoutMs: 90_000 });
    expect(await streamReplicas(layout, cluster.urls[0]!)).toEqual(ns.streams.map(() => 3));
    expect(agentProcesses(layout, await agentUids(layout))).toEqual([]);
    const report = await checkInvariants(layout);
    expect(report.violations).toEqual([]);
    expect(report.succeeded.size).toBe(12);
  }, 600_000);

  it('a server that leads neither stream killed mid-run and left down: the run finishes with the invariants', async () => {
    const cluster = await startNatsCluster({ size: 3 });
    cleanups.push(() => cluster.close());
    const layout = makeLayout({ tasks: tasksOf('b', 12, 'sleep 1'), natsUrl: cluster.urls[0]!, maxInstances: 1, wipPerInstance: 2 });
    cleanups.push(() => layout.remove());
    const ns = namespaceOf(layout);
    const run = startClusterRun(layout, cluster);

    await waitForRun(layout, run, 'the first task in progress', () => countStatus(layout, 'in_progress') + countStatus(layout, 'done') > 0, 120_000);
    const leaders = new Set([await leaderOf(cluster, ns.assignStream), await leaderOf(cluster, ns.resultsStream)]);
    const victim = [0, 1, 2].find((i) => !leaders.has(i))!;
    expect(countStatus(layout, 'done')).toBeLessThan(12);
    await cluster.kill(victim, 'SIGKILL');
    expect(cluster.servers[victim]!.running).toBe(false);

    await waitForRun(layout, run, 'every task done with one server down', () => countStatus(layout, 'done') === 12, 180_000);
    const end = await finish(run, 120_000);
    expect(end.code, end.stderr.slice(-4000)).toBe(0);
    expect(cluster.servers[victim]!.running).toBe(false);
    await cluster.waitForHealthy({ timeoutMs: 90_000 });
    const survivor = cluster.urls[[0, 1, 2].find((i) => i !== victim)!]!;
    expect(await streamReplicas(layout, survivor)).toEqual(ns.streams.map(() => 3));
    expect(agentProcesses(layout, await agentUids(layout))).toEqual([]);
    // The invariants' broker check asks a server that is still up.
    const report = await checkInvariants({ ...layout, natsUrl: survivor });
    expect(report.violations).toEqual([]);
    expect(report.succeeded.size).toBe(12);
  }, 600_000);
});

import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { startNatsCluster, type NatsCluster } from '../src/index.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('startNatsCluster', () => {
  it('runs three servers with an R3 stream whose leader, killed, is replaced and comes back current', async () => {
    const cluster: NatsCluster = await startNatsCluster({ size: 3 });
    cleanups.push(() => cluster.close());
    expect(cluster.urls).toHaveLength(3);
    expect(new Set(cluster.servers.map((s) => s.name)).size).toBe(3);
    const nc = await connect({ servers: [...cluster.urls], maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'T', subjects: ['t.>'], num_replicas: 3, storage: StorageType.File, retention: RetentionPolicy.Limits });
    await cluster.waitForHealthy();
    const leader = await cluster.streamLeader('T');
    expect(leader).toBeTypeOf('number');
    const oldPid = cluster.servers[leader!]!.pid;
    const exit = await cluster.kill(leader!);
    expect(exit.signal).toBe('SIGKILL');
    expect(cluster.servers[leader!]!.running).toBe(false);
    await cluster.waitForHealthy();
    const next = await cluster.streamLeader('T');
    expect(next).not.toBe(leader);
    await cluster.restart(leader!);
    expect(cluster.servers[leader!]!.pid).not.toBe(oldPid);
    expect(cluster.servers[leader!]!.url).toBe(cluster.urls[leader!]);
    await cluster.waitForHealthy();
    const info = await jsm.streams.info('T');
    expect(info.cluster?.replicas?.map((r) => r.name).sort()).toEqual(cluster.servers.map((s) => s.name).filter((n) => n !== info.cluster?.leader).sort());
  }, 120_000);

  it('close() is idempotent and stops every server', async () => {
    const cluster = await startNatsCluster({ size: 3 });
    const pids = cluster.servers.map((s) => s.pid);
    await Promise.all([cluster.close(), cluster.close()]);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    await expect(startNatsCluster({ size: 0 })).rejects.toThrow(/size/);
  }, 60_000);
});

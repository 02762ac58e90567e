import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsCluster, type NatsCluster } from '@warren/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerError, connectBroker, isElectionError, startNatsServer, type AssignmentMessage, type Broker } from '../src/index.js';
import { Inbox, until } from './helpers.js';

// One 3-server cluster for the file; every test uses its own instance (its own streams).
let cluster: NatsCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;
const brokers: Broker[] = [];

beforeAll(async () => {
  cluster = await startNatsCluster({ size: 3 });
  nc = await connect({ servers: [...cluster.urls], maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  jsm = await jetstreamManager(nc);
}, 60_000);

afterAll(async () => {
  for (const b of brokers.splice(0)) await b.close();
  await nc?.close();
  await cluster?.close();
}, 60_000);

async function open(instance: string): Promise<Broker> {
  const broker = await connectBroker({ servers: [...cluster.urls], name: `cluster-test-${instance}`, instance, reconnectTimeWaitMs: 250 });
  brokers.push(broker);
  return broker;
}

function assignment(taskId: string): AssignmentMessage {
  return { taskId, attempt: 1, agent: 'shell-1', title: taskId, body: '', command: 'true', fields: {}, timeoutMs: 60_000, assignedAtMs: 1 };
}

async function replicasOf(stream: string): Promise<number> {
  return (await jsm.streams.info(stream)).config.num_replicas;
}

/** Peers of a consumer's Raft group: the leader and its replicas. */
async function consumerPeers(stream: string, durable: string): Promise<number> {
  const info = await jsm.consumers.info(stream, durable);
  return (info.cluster?.leader ? 1 : 0) + (info.cluster?.replicas?.length ?? 0);
}

describe('ensureStreams with replicas on a NATS cluster', () => {
  it('makes every stream with three replicas, and consumers follow their stream', async () => {
    const broker = await open('rthree');
    await broker.ensureStreams({ replicas: 3 });
    for (const spec of broker.namespace.streams) expect(await replicasOf(spec.name)).toBe(3);
    const sub = await broker.consumeResults(async (d) => d.ack());
    await cluster.waitForHealthy();
    expect(await consumerPeers(broker.namespace.resultsStream, broker.namespace.resultsConsumer)).toBe(3);
    await sub.stop();
  }, 60_000);

  it('raises a stream made with one replica to three, never lowers it, and its consumer follows', async () => {
    const broker = await open('raise');
    await broker.ensureStreams();
    expect(await replicasOf(broker.namespace.resultsStream)).toBe(1);
    const sub = await broker.consumeResults(async (d) => d.ack());
    await sub.stop();
    await broker.ensureStreams({ replicas: 3 });
    for (const spec of broker.namespace.streams) expect(await replicasOf(spec.name)).toBe(3);
    await cluster.waitForHealthy();
    expect(await consumerPeers(broker.namespace.resultsStream, broker.namespace.resultsConsumer)).toBe(3);
    await broker.ensureStreams({ replicas: 1 });
    expect(await replicasOf(broker.namespace.resultsStream)).toBe(3);
  }, 60_000);

  it('refuses replicas out of range and more replicas than servers, naming the stream', async () => {
    const broker = await open('refuse');
    await expect(broker.ensureStreams({ replicas: 0 })).rejects.toThrow(/ensureStreams replicas.*1 to 5/);
    await expect(broker.ensureStreams({ replicas: 2.5 })).rejects.toThrow(/1 to 5/);
    const error = await broker.ensureStreams({ replicas: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BrokerError);
    expect((error as Error).message).toContain(broker.namespace.assignStream);
  }, 60_000);
});

describe('a stream leader killed with SIGKILL', () => {
  it('publishes and consumption ride the election: every assignment stored once and delivered', async () => {
    const broker = await open('leader');
    await broker.ensureStreams({ replicas: 3 });
    const received = new Inbox<string>();
    // A short ack wait: an ack sent to the killed leader is lost and its message comes again soon.
    const sub = await broker.consumeAssignments('shell-1', async (d) => {
      received.push(d.data.taskId);
      d.ack();
    }, { maxInFlight: 8, ackWaitMs: 2_000 });
    await cluster.waitForHealthy();
    const leader = await cluster.streamLeader(broker.namespace.assignStream);
    expect(leader).toBeTypeOf('number');
    const ids = Array.from({ length: 40 }, (_, i) => `T-${i + 1}`);
    const seqs: number[] = [];
    let killed: Promise<unknown> | undefined;
    try {
      for (const [i, id] of ids.entries()) {
        if (i === 10) killed = cluster.kill(leader!);
        seqs.push((await broker.publishAssignment(assignment(id))).seq);
      }
      await killed;
      const seen = new Set<string>();
      while (seen.size < ids.length) seen.add(await received.next(`assignment ${seen.size + 1} of ${ids.length}`, 60_000));
      expect([...seen].sort()).toEqual([...ids].sort());
    } finally {
      await killed;
      if (!cluster.servers[leader!]!.running) await cluster.restart(leader!);
    }
    // Stored once each: a retried publish the stream had already stored is a duplicate of the same sequence.
    expect(new Set(seqs).size).toBe(ids.length);
    expect((await jsm.streams.info(broker.namespace.assignStream)).state.last_seq).toBe(ids.length);
    await until(async () => (await broker.pending('shell-1')).assignments, 0, 'assignments still pending', 60_000);
    await sub.stop();
  }, 120_000);
});

describe('startNatsServer cluster options', () => {
  it('names the option at fault before starting anything', async () => {
    const storeDir = '/nonexistent/warren-cluster-options';
    await expect(startNatsServer({ storeDir, cluster: { name: 'c', port: 6222, routes: [] } })).rejects.toThrow(/cluster: a clustered JetStream server needs a serverName/);
    await expect(startNatsServer({ storeDir, serverName: 'a b' })).rejects.toThrow(/serverName: must be 1 to 64/);
    await expect(startNatsServer({ storeDir, serverName: 'n0', cluster: { name: 'c', port: 0, routes: [] } })).rejects.toThrow(/cluster\.port: must be an integer from 1 to 65535/);
    await expect(startNatsServer({ storeDir, serverName: 'n0', cluster: { name: 'c', port: 6222, routes: ['nats://10.0.0.1:6222'] } })).rejects.toThrow(
      /cluster\.routes\[0\]: "nats:\/\/10\.0\.0\.1:6222" is not nats-route:\/\/127\.0\.0\.1:<port>/,
    );
  });
});

describe('isElectionError', () => {
  it('tells a JetStream 503 and timeouts from other errors', () => {
    expect(isElectionError(new Error('JetStream system temporarily unavailable'))).toBe(true);
    expect(isElectionError(new Error('stream not found'))).toBe(false);
    expect(isElectionError(new Error('wrapped', { cause: new Error('timeout') }))).toBe(true);
  });
});

import { connectBroker, type Broker, type EmbeddedNatsServer } from '@warren/broker';
import { silentLogger } from '@warren/core';
import { startTestNats } from '@warren/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChannelHub, encodePayload, nodeCommandSchema, nodeSubjects, RemoteNodeRuntime, decodePayload, type NodeHeartbeat } from '../src/index.js';
import { RecordingEvents, waitFor } from './support.js';

let nats: EmbeddedNatsServer;
let supervisor: Broker;
let host: Broker;

beforeAll(async () => {
  nats = await startTestNats();
  supervisor = await connectBroker({ servers: nats.url, name: 'remote-runtime-test-supervisor' });
  host = await connectBroker({ servers: nats.url, name: 'remote-runtime-test-node' });
});
afterAll(async () => {
  await host?.close();
  await supervisor?.close();
  await nats?.close();
});

const spec = {
  name: 'shell-1',
  template: 'shell',
  uid: 1_900_000_001,
  gid: 1_900_000_001,
  homeDir: '/home/shell-1',
  resources: { memoryMaxBytes: 2 ** 29, pidsMax: 256, cpuWeight: 100, nofile: 1024, fsizeBytes: 2 ** 26, tmpfsBytes: 2 ** 26 },
  capabilities: ['shell'],
  runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 2500 },
  homeQuotaBytes: null,
};

/** A node played by the test: it answers `start` and sends the heartbeats the test asks for. */
function scriptedNode(name: string) {
  const subjects = nodeSubjects(host.namespace, name);
  const started: string[] = [];
  const stops: string[] = [];
  const sub = host.nc.subscribe(subjects.cmd, {
    callback: (_error, msg) => {
      const decoded = decodePayload(nodeCommandSchema, msg.subject, msg.data);
      if (!decoded.ok) return;
      const command = decoded.value;
      if (command.op === 'start') {
        started.push(command.instance);
        msg.respond(encodePayload({ ok: true, pid: 4242, unsafe: false }));
      } else if (command.op === 'stop') {
        stops.push(command.instance);
        msg.respond(encodePayload({ ok: false, code: 'WARREN_NODE_NO_INSTANCE', message: 'gone' }));
      }
    },
  });
  const heartbeat = (startedMs: number, instances: string[]): void => {
    const payload: NodeHeartbeat = {
      node: name,
      version: '1',
      startedMs,
      seq: 1,
      labels: {},
      capacity: { cpus: 1, memoryBytes: 2 ** 30, maxAgents: 4 },
      instances: instances.map((instance) => ({ agent: 'shell-1', instance, pid: 4242, connected: true, usage: { memoryBytes: 7, pids: 1, cpuMs: 3, pidsRefused: 0, oomKills: 0 } })),
      driver: null,
    };
    host.nc.publish(subjects.hb, encodePayload(payload));
  };
  return { started, stops, heartbeat, close: () => sub.unsubscribe() };
}

describe('RemoteNodeRuntime against a scripted node', () => {
  it('ends an answered instance that a later heartbeat no longer lists, and stops one it does not know', async () => {
    const node = scriptedNode('script-1');
    const hub = new ChannelHub({ nc: supervisor.nc, ns: supervisor.namespace, logger: silentLogger });
    const remote = new RemoteNodeRuntime({ nc: supervisor.nc, ns: supervisor.namespace, node: 'script-1', hub, logger: silentLogger, requestTimeoutMs: 5_000 });
    try {
      await host.nc.flush();
      const instance = await remote.start(spec, new RecordingEvents());
      expect(instance.pid).toBe(4242);
      const id = node.started[0]!;
      node.heartbeat(1, [id]);
      await waitFor(() => instance.usage().memoryBytes === 7, 'the usage of the heartbeat');
      // The node lists an instance nobody here started: it is told to stop it.
      node.heartbeat(1, [id, 'feedfacefeedface']);
      await waitFor(() => node.stops.includes('feedfacefeedface'), 'a stop of the unknown instance');
      // The instance's `exited` event never came, and the node no longer lists it.
      node.heartbeat(1, []);
      await expect(instance.exited).resolves.toEqual({ kind: 'lost', detail: 'node script-1 no longer reports the instance and its exit never arrived' });
      expect(instance.usage()).toMatchObject({ memoryBytes: 0, pids: 0 });
      // A new instance, then a heartbeat of a new daemon run without it.
      const second = await remote.start(spec, new RecordingEvents());
      node.heartbeat(1, [node.started[1]!]);
      node.heartbeat(2, []);
      await expect(second.exited).resolves.toMatchObject({ kind: 'lost', detail: expect.stringContaining('node script-1 restarted') as unknown });
      await expect(second.stop()).resolves.toMatchObject({ kind: 'lost' });
    } finally {
      node.close();
      await remote.close();
      hub.close();
    }
  });

  it('an unanswered command fails with WARREN_NODE_UNREACHABLE, and a closed runtime refuses to start', async () => {
    const hub = new ChannelHub({ nc: supervisor.nc, ns: supervisor.namespace, logger: silentLogger });
    const remote = new RemoteNodeRuntime({ nc: supervisor.nc, ns: supervisor.namespace, node: 'nobody', hub, logger: silentLogger, requestTimeoutMs: 300 });
    try {
      await expect(remote.probe()).rejects.toMatchObject({ code: 'WARREN_NODE_UNREACHABLE', message: expect.stringContaining('node nobody did not answer probe') as unknown });
      await expect(remote.start(spec, new RecordingEvents())).rejects.toMatchObject({ code: 'WARREN_NODE_UNREACHABLE' });
      // The failed start left nothing attached: another start may try again.
      await expect(remote.start(spec, new RecordingEvents())).rejects.toMatchObject({ code: 'WARREN_NODE_UNREACHABLE' });
      await remote.close();
      await remote.close();
      await expect(remote.start(spec, new RecordingEvents())).rejects.toMatchObject({ code: 'WARREN_RUNTIME_CLOSED' });
    } finally {
      hub.close();
    }
  });
});

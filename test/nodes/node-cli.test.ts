import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brokerNamespace, connectBroker, startNatsServer, type Broker, type EmbeddedNatsServer, type ResultMessage } from '@warren/broker';
import { silentLogger } from '@warren/core';
import { ChannelHub, NodeRegistry, RemoteNodeRuntime, writeNodeJoin, type NodeView } from '@warren/node';
import type { AgentExit, AgentStartSpec } from '@warren/runtime';
import { makeTempDir, type TempDir } from '@warren/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireMachine, startWarren, type CliProcess } from '../support/cli.js';

/** This file's agents' uids: a block of 10 from 1_900_945_000, apart from other suites'. */
const UID_BASE = 1_900_945_000 + (process.pid % 100) * 10;
const INSTANCE = 'nodecli';
const HEARTBEAT_MS = 200;

let temp: TempDir;
let nats: EmbeddedNatsServer;
let supervisor: Broker;
let hub: ChannelHub;
let registry: NodeRegistry;
let remote: RemoteNodeRuntime;
let node: CliProcess | undefined;
const lost: NodeView[] = [];
let joinFile: string;

function waitFor<T>(check: () => T | undefined | false, what: string, guardMs = 30_000): Promise<T> {
  const deadline = Date.now() + guardMs;
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      const value = check();
      if (value !== undefined && value !== false) resolve(value);
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}; node log:\n${node?.stderr() ?? ''}`));
      else setTimeout(poll, 20);
    };
    poll();
  });
}

function agent(name: string, n: number): AgentStartSpec {
  const uid = UID_BASE + n;
  return {
    name,
    template: 'shell',
    uid,
    gid: uid,
    homeDir: `/srv/warren/home/shell/${name}`,
    resources: { memoryMaxBytes: 256 * 2 ** 20, pidsMax: 128, cpuWeight: 100, nofile: 1024, fsizeBytes: 64 * 2 ** 20, tmpfsBytes: 16 * 2 ** 20 },
    capabilities: ['shell'],
    runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 1_000 },
    homeQuotaBytes: null,
  };
}

function recording(): { hellos: number[]; events: Parameters<RemoteNodeRuntime['start']>[1] } {
  const hellos: number[] = [];
  return {
    hellos,
    events: {
      hello: (_agent, pid) => hellos.push(pid),
      taskAcked: () => undefined,
      alive: () => undefined,
      disconnected: () => undefined,
      protocolError: () => undefined,
      sendMessage: () => Promise.resolve({ id: 'm-1' }),
      authorizeAssignment: () => null,
    },
  };
}

beforeAll(async () => {
  requireMachine();
  temp = await makeTempDir('warren-node-cli-');
  chmodSync(temp.path, 0o755);
  const password = randomBytes(24).toString('base64url');
  nats = await startNatsServer({ storeDir: join(temp.path, 'nats'), authorization: { user: 'warren', password } });
  const signingKey = randomBytes(32);
  supervisor = await connectBroker({ servers: nats.url, name: 'node-cli-test', instance: INSTANCE, signingKey, credentials: { kind: 'user-password', user: 'warren', password } });
  await supervisor.ensureStreams();
  hub = new ChannelHub({ nc: supervisor.nc, ns: supervisor.namespace, logger: silentLogger });
  remote = new RemoteNodeRuntime({ nc: supervisor.nc, ns: supervisor.namespace, node: 'n1', hub, logger: silentLogger, requestTimeoutMs: 30_000 });
  registry = new NodeRegistry({
    nc: supervisor.nc,
    ns: supervisor.namespace,
    logger: silentLogger,
    heartbeatMs: HEARTBEAT_MS,
    // Generous: a loaded machine may stall a heartbeat; a stopped node stays silent longer.
    lostAfterMs: 3_000,
    onLost: (view) => {
      lost.push(view);
      if (view.name === 'n1') remote.nodeLost(`node n1 silent since ${new Date(view.lastHeartbeatMs).toISOString()}`);
    },
  });
  joinFile = join(temp.path, 'node-join.json');
  await writeNodeJoin(joinFile, {
    servers: [nats.url],
    user: 'warren',
    password,
    signingKey: signingKey.toString('hex'),
    instance: INSTANCE,
    subjectPrefix: brokerNamespace(INSTANCE).subjectPrefix,
  });
});

afterAll(async () => {
  if (node && node.child.exitCode === null && node.child.signalCode === null) {
    node.child.kill('SIGCONT');
    node.child.kill('SIGTERM');
    await node.done;
  }
  registry?.close();
  hub?.close();
  await remote?.close();
  await supervisor?.close();
  await nats?.close();
  await temp?.close();
});

async function runTask(agentName: string, taskId: string, command: string): Promise<ResultMessage> {
  const results: ResultMessage[] = [];
  const consumer = await supervisor.consumeResults(async (delivery) => {
    results.push(delivery.data);
    delivery.ack();
  });
  try {
    await supervisor.publishAssignment({ taskId, attempt: 1, agent: agentName, title: taskId, body: '', command, fields: {}, timeoutMs: 60_000, assignedAtMs: Date.now() });
    return await waitFor(() => results.find((r) => r.taskId === taskId), `the result of ${taskId}`, 60_000);
  } finally {
    await consumer.stop();
  }
}

describe('warren node start', () => {
  it('refuses bad flags with the option named', async () => {
    const bad = await startWarren(['node', 'start', '--join', joinFile, '--name', 'n1', '--labels', 'zone', '--state-dir', join(temp.path, 'bad')]).done;
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--labels');
    const missing = join(temp.path, 'missing.json');
    const noJoin = await startWarren(['node', 'start', '--join', missing, '--name', 'n1', '--state-dir', join(temp.path, 'bad')]).done;
    expect(noJoin.code).toBe(1);
    expect(noJoin.stderr).toContain(missing);
    mkdirSync(join(temp.path, 'broken'), { recursive: true });
    writeFileSync(join(temp.path, 'broken', 'join.json'), JSON.stringify({ servers: [nats.url] }));
    const broken = await startWarren(['node', 'start', '--join', join(temp.path, 'broken', 'join.json'), '--name', 'n1', '--state-dir', join(temp.path, 'bad')]).done;
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/join\.json: (user|password|signingKey)/);
  });

  it('joins with its labels and capacity, runs an agent, is marked lost while stopped and stops an ended instance when back; SIGTERM stops its agents and exits 0', async () => {
    node = startWarren([
      'node', 'start', '--join', joinFile, '--name', 'n1', '--labels', 'zone=b,gpu=1', '--max-agents', '2', '--memory', '2GiB',
      '--state-dir', join(temp.path, 'node-state'), '--heartbeat', `${HEARTBEAT_MS}ms`, '--kill-grace', '2s',
    ]);
    const view = await waitFor(() => registry.get('n1'), 'the node\'s first heartbeat');
    expect(view).toMatchObject({ state: 'ready', labels: { zone: 'b', gpu: '1' }, capacity: { memoryBytes: 2 * 2 ** 30, maxAgents: 2 } });
    await waitFor(() => node!.stderr().includes('node running'), 'the node\'s start logged');

    // An agent on the node takes a task; its result comes back signed.
    const first = recording();
    const a = await remote.start(agent('cli-a', 0), first.events);
    await waitFor(() => first.hellos.length > 0, 'cli-a hello');
    const result = await runTask('cli-a', 'on-node', 'id -u');
    expect(result).toMatchObject({ agent: 'cli-a', outcome: 'succeeded', summary: String(UID_BASE) });

    // Stopped, the node stops heartbeating: it is lost and its instance ends with kind lost.
    node.child.kill('SIGSTOP');
    let exit: AgentExit;
    try {
      exit = await a.exited;
    } finally {
      node.child.kill('SIGCONT');
    }
    expect(exit).toMatchObject({ kind: 'lost' });
    expect(lost.map((n) => n.name)).toEqual(['n1']);
    // Back, it still reports the instance: it is told to stop it.
    await waitFor(() => registry.get('n1')?.state === 'ready', 'n1 back');
    await waitFor(() => registry.get('n1')?.instances.length === 0, 'a heartbeat without the ended instance');

    const second = recording();
    const b = await remote.start(agent('cli-b', 1), second.events);
    await waitFor(() => second.hellos.length > 0, 'cli-b hello');
    node.child.kill('SIGTERM');
    const done = await node.done;
    expect(done.code).toBe(0);
    expect(done.stderr).toContain('node stopped');
    const ended = await b.exited;
    expect(['succeeded', 'signaled']).toContain(ended.kind);
  });
});

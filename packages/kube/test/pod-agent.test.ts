/**
 * An agent in a pod, end to end on one host: the fake Kubernetes API, its kubelet running the pod
 * as a bubblewrap sandbox, a real nats-server with the agent's own NKey user (`runner: true`
 * permissions), the real `warren-pod-agent` bundle (gateway + relayed channel + the agent runner),
 * and the supervisor's side: a broker with the master signing key and a `ChannelHub`.
 */
import { readFileSync } from 'node:fs';
import { chmod, cp, mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeAll, expect, test } from 'vitest';
import {
  agentNatsPermissions,
  brokerNamespace,
  connectBroker,
  createAgentNkey,
  startNatsServer,
  type AgentNkey,
  type Broker,
  type Delivery,
  type EmbeddedNatsServer,
  type ResultMessage,
} from '@warren/broker';
import { silentLogger } from '@warren/core';
import { KubernetesRuntime } from '@warren/kube';
import type { KubernetesAgentInstance } from '@warren/kube';
import { ChannelHub } from '@warren/node';
import type { AgentEvents, AgentStartSpec } from '@warren/runtime';
import { makeTempDir, startFakeKubeApi, startSandboxKubelet, type TempDir } from '@warren/testing';
import type { FakeKubeApi, SandboxKubelet } from '@warren/testing';
import { buildPodAgent } from '../src/build.js';

const NS = 'warren';
const MiB = 1024 * 1024;
const AGENT = 'pod-1';
const POD = `warren-${AGENT}`;
const IMAGE = 'warren/agent:test';
const AUTH = { user: 'warren', password: 'supervisor-password-0123' };
const MASTER = new TextEncoder().encode('a-master-signing-key-for-pod-tests');
const RUNNER_DIST = resolve(import.meta.dirname, '..', '..', 'agent-runner', 'dist');

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

let imageDir: TempDir;
beforeAll(async () => {
  // The image: the pod agent bundle built from these sources, and the agent runner beside it.
  imageDir = await makeTempDir('warren-pod-image-');
  await chmod(imageDir.path, 0o755); // an image's files are readable by the pod's user
  await buildPodAgent(join(imageDir.path, 'warren-pod-agent.mjs'));
  await mkdir(join(imageDir.path, 'agent-runner'), { recursive: true });
  await cp(RUNNER_DIST, join(imageDir.path, 'agent-runner', 'dist'), { recursive: true });
  return () => imageDir.close();
}, 120_000);

/** A queue of what callbacks report, awaited with a deadline that only turns a hang into a failure. */
class Seen<T> {
  readonly items: T[] = [];
  /** What to add to a timeout's message (the pod's log). */
  context: () => string = () => '';
  private waiters: (() => void)[] = [];
  push(item: T): void {
    this.items.push(item);
    for (const w of this.waiters.splice(0)) w();
  }
  async until(check: (items: readonly T[]) => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check(this.items)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; saw ${JSON.stringify(this.items)}; ${this.context()}`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, Math.min(left, 500));
        this.waiters.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }
}

interface World {
  api: FakeKubeApi;
  kubelet: SandboxKubelet;
  runtime: KubernetesRuntime;
  broker: Broker;
  server: EmbeddedNatsServer;
  events: AgentEvents;
  seen: Seen<string>;
  results: Seen<ResultMessage>;
}

async function world(): Promise<World> {
  const dir = await makeTempDir('warren-pod-agent-');
  cleanups.push(() => dir.close());
  const key: AgentNkey = createAgentNkey();
  const server = await startNatsServer({
    storeDir: join(dir.path, 'nats'),
    authorization: AUTH,
    users: [{ nkey: key.publicKey, permissions: agentNatsPermissions(brokerNamespace('e2e'), AGENT, { messageTo: [], publishTopics: [], subscribeTopics: [] }, { runner: true }) }],
  });
  cleanups.push(() => server.close());
  const broker = await connectBroker({ servers: server.url, name: 'supervisor', instance: 'e2e', credentials: { kind: 'user-password', ...AUTH }, signingKey: MASTER });
  cleanups.push(() => broker.close());
  await broker.ensureStreams();
  const results = new Seen<ResultMessage>();
  const resultSub = await broker.consumeResults(async (d: Delivery<ResultMessage>) => {
    results.push(d.data);
    d.ack();
  });
  cleanups.push(() => resultSub.stop());
  const hub = new ChannelHub({ nc: broker.nc, ns: broker.namespace, logger: silentLogger });
  cleanups.push(async () => hub.close());

  const kubelet = await startSandboxKubelet({ stateDir: join(dir.path, 'kubelet'), images: { [IMAGE]: imageDir.path }, imageMountPath: '/opt/warren' });
  cleanups.push(() => kubelet.close());
  const api = await startFakeKubeApi({ namespaces: [NS], onPodCreated: kubelet.onPodCreated, onPodDeleting: kubelet.onPodDeleting });
  cleanups.push(() => api.close());
  const kc = new KubeConfig();
  kc.loadFromOptions(api.kubeconfig(NS));
  const port = Number(new URL(server.url).port);
  const runtime = new KubernetesRuntime({
    kubeConfig: kc,
    namespace: NS,
    image: IMAGE,
    command: ['/usr/bin/node', '/opt/warren/warren-pod-agent.mjs'],
    credentials: () => ({ servers: [server.url], nkeySeed: key.seed, inboxPrefix: broker.namespace.agentInboxPrefix(AGENT) }),
    brokerEndpoints: [{ cidr: '127.0.0.1', port }],
    channels: hub,
    broker,
    signingKey: MASTER,
    deleteTimeoutMs: 30_000,
  });
  cleanups.push(() => runtime.close());
  const seen = new Seen<string>();
  const podLog = (): string => {
    try {
      return `pod log: ${readFileSync(join(dir.path, 'kubelet', 'logs', `${NS}_${POD}.log`), 'utf8')}; pod status: ${JSON.stringify(api.getObject('pods', NS, POD)?.status ?? null)}`;
    } catch (error) {
      return `no pod log (${(error as Error).message})`;
    }
  };
  seen.context = podLog;
  results.context = podLog;
  const events: AgentEvents = {
    hello: () => seen.push('hello'),
    taskAcked: (_a, taskId) => seen.push(`acked ${taskId}`),
    alive: () => undefined,
    disconnected: () => seen.push('disconnected'),
    protocolError: (_a, message) => seen.push(`protocol error ${message}`),
    progressEvent: () => undefined,
    sendMessage: () => Promise.reject(new Error('no messaging in this test')),
    authorizeAssignment: () => null,
  };
  return { api, kubelet, runtime, broker, server, events, seen, results };
}

function startSpec(memoryMaxBytes = 256 * MiB): AgentStartSpec {
  return {
    name: AGENT,
    template: 'shell',
    uid: 42010,
    gid: 42010,
    homeDir: `/home/${AGENT}`,
    resources: { memoryMaxBytes, pidsMax: 128, cpuWeight: 100, nofile: 1024, fsizeBytes: 64 * MiB, tmpfsBytes: 16 * MiB },
    capabilities: ['shell'],
    runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 1000 },
    homeQuotaBytes: 256 * MiB,
  };
}

async function started(w: World): Promise<KubernetesAgentInstance> {
  const instance = await w.runtime.start(startSpec(), w.events);
  cleanups.push(() => instance.close());
  return instance;
}

function assignment(taskId: string, command: string) {
  return { taskId, attempt: 1, agent: AGENT, title: taskId, body: '', command, fields: {}, timeoutMs: 60_000, assignedAtMs: Date.now() };
}

test('an agent in a pod connects through its channel, takes an assignment and its result arrives', async () => {
  const w = await world();
  const instance = await started(w);
  await w.seen.until((s) => s.includes('hello'), 'the runner in the pod to say hello');
  expect(instance.connected).toBe(true);
  await w.broker.publishAssignment(assignment('T-1', 'echo from the pod > "$HOME/out" && id -u'));
  await w.results.until((r) => r.some((m) => m.taskId === 'T-1'), 'the result of T-1');
  expect(w.results.items.find((m) => m.taskId === 'T-1')).toMatchObject({ agent: AGENT, outcome: 'succeeded', exitCode: 0 });
  expect(w.seen.items).toContain('acked T-1');
  const volume = w.kubelet.volumePath(NS, `${POD}-home`);
  expect(await readFile(join(volume, 'out'), 'utf8')).toBe('from the pod\n');

  // Shut down through the channel: the runner finishes, the pod agent exits 0, the pod succeeds.
  instance.requestShutdown('test done');
  expect(await instance.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
  expect(instance.connected).toBe(false);
  expect(w.api.hookErrors).toEqual([]);
}, 120_000);

test('asleep, the pod is gone and the PVC keeps the home; the next start sees its files', async () => {
  const w = await world();
  const first = await started(w);
  await w.seen.until((s) => s.includes('hello'), 'the first hello');
  await w.broker.publishAssignment(assignment('T-1', 'echo remembered > "$HOME/memory"'));
  await w.results.until((r) => r.some((m) => m.taskId === 'T-1'), 'the result of T-1');
  await first.stop(5000);
  expect(await w.runtime.detachStorage({ name: AGENT })).toBe(false);
  expect(w.api.getObject('pods', NS, POD)).toBeUndefined();
  expect(w.api.getObject('persistentvolumeclaims', NS, `${POD}-home`)).toBeDefined();

  const second = await started(w);
  await w.seen.until((s) => s.filter((e) => e === 'hello').length === 2, 'the second hello');
  expect(second.connected).toBe(true);
  await w.broker.publishAssignment(assignment('T-2', 'cat "$HOME/memory" > "$HOME/seen"'));
  await w.results.until((r) => r.some((m) => m.taskId === 'T-2'), 'the result of T-2');
  expect(w.results.items.find((m) => m.taskId === 'T-2')).toMatchObject({ outcome: 'succeeded' });
  expect(await readFile(join(w.kubelet.volumePath(NS, `${POD}-home`), 'seen'), 'utf8')).toBe('remembered\n');
  await second.stop(5000);
}, 120_000);

/**
 * The supervisor's kubernetes target: `warren up --kube-*` options, and `createKubernetesDriver`
 * running an agent end to end (fake Kubernetes API whose kubelet runs pods as bubblewrap
 * sandboxes, a real nats-server with the agent's NKey user, the real `warren-pod-agent` bundle).
 */
import { chmod, cp, mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeAll, expect, test } from 'vitest';
import {
  agentNatsConfig,
  agentNatsPermissions,
  brokerNamespace,
  connectBroker,
  createAgentNkey,
  readOrCreateSecret,
  startNatsServer,
  type Delivery,
  type ResultMessage,
} from '@warren/broker';
import { silentLogger } from '@warren/core';
import type { PodStartSpec } from '@warren/kube';
import type { AgentEvents } from '@warren/runtime';
import { makeTempDir, startFakeKubeApi, startSandboxKubelet, type TempDir } from '@warren/testing';
import { buildPodAgent } from '../../packages/kube/src/build.js';
import { brokerSecretPaths } from '../../services/supervisor/src/broker-access.js';
import { resolveConfig } from '../../services/supervisor/src/config.js';
import type { SupervisorContext } from '../../services/supervisor/src/context.js';
import { brokerEndpointsOf, createKubernetesDriver, podNatsCredentials } from '../../services/supervisor/src/kube-driver.js';
import { runsInPod } from '../../services/supervisor/src/messaging/nats-users.js';

const RUNNER_DIR = resolve(import.meta.dirname, '..', '..', 'packages', 'agent-runner');
const MiB = 1024 * 1024;
const AGENT = 'kube-1';
const IMAGE = 'warren/agent:driver-test';
const AUTH = { user: 'warren', password: 'supervisor-password-0123' };

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

let image: TempDir;
beforeAll(async () => {
  image = await makeTempDir('warren-kube-image-');
  await chmod(image.path, 0o755);
  await buildPodAgent(join(image.path, 'warren-pod-agent.mjs'));
  await mkdir(join(image.path, 'agent-runner'), { recursive: true });
  await cp(join(RUNNER_DIR, 'dist'), join(image.path, 'agent-runner', 'dist'), { recursive: true });
  return () => image.close();
}, 120_000);

function homeFile(path: string, text: string, mode = 0o600) {
  return { path, contentBase64: Buffer.from(text).toString('base64'), mode };
}

test('warren up --kube-* options make the kubernetes target; without --kube-image the others are refused', () => {
  const config = resolveConfig({ kubeImage: 'registry.example/warren-agent:1', kubeNamespace: 'agents', kubeRuntimeClass: 'gvisor' }, RUNNER_DIR);
  expect(config.kubernetes).toEqual({ namespace: 'agents', image: 'registry.example/warren-agent:1', context: undefined, runtimeClassName: 'gvisor' });
  expect(resolveConfig({}, RUNNER_DIR).kubernetes).toBeUndefined();
  expect(resolveConfig({ kubeImage: 'i:1' }, RUNNER_DIR).kubernetes?.namespace).toBe('warren');
  expect(() => resolveConfig({ kubeNamespace: 'agents' }, RUNNER_DIR)).toThrow(/option 'kube-namespace': needs option 'kube-image'/);
  expect(() => resolveConfig({ kubeImage: 'i:1', kubeNamespace: 'Not_A_Label' }, RUNNER_DIR)).toThrow(/kubeNamespace|kube-namespace/);
});

test('the pod gets the credentials the supervisor issued, and a NetworkPolicy egress to the broker', () => {
  const seed = createAgentNkey().seed;
  const spec = {
    name: AGENT,
    homeFiles: [homeFile('.warren/nats.json', JSON.stringify(agentNatsConfig(brokerNamespace('x'), AGENT, ['nats://127.0.0.1:4300'], seed)))],
  } as unknown as PodStartSpec;
  expect(podNatsCredentials(spec)).toEqual({ servers: ['nats://127.0.0.1:4300'], nkeySeed: seed, inboxPrefix: '_INBOX.warren.x.agent.kube-1' });
  expect(() => podNatsCredentials({ name: AGENT, homeFiles: [] } as unknown as PodStartSpec)).toThrow(/no ~\/\.warren\/nats\.json was issued/);
  const ctx = {
    accounts: new Map([['kube-1', { template: 'podded' }], ['local-1', { template: 'plain' }]]),
    templates: new Map<string, unknown>([['podded', { placement: { target: 'kubernetes' } }], ['plain', { placement: { target: 'nodes' } }]]),
  } as unknown as SupervisorContext;
  expect([runsInPod(ctx, 'kube-1'), runsInPod(ctx, 'local-1'), runsInPod(ctx, 'gone')]).toEqual([true, false, false]);
  expect(brokerEndpointsOf(['nats://127.0.0.1:4300', 'nats://[fd00::7]:4222', 'nats://nats.example:4222', 'tls://10.0.0.5'])).toEqual([
    { cidr: '127.0.0.1', port: 4300 },
    { cidr: 'fd00::7', port: 4222 },
    { cidr: '10.0.0.5', port: 4222 },
  ]);
});

test('createKubernetesDriver runs an agent as a pod: seed files written, connected, its result arrives', async () => {
  const dir = await makeTempDir('warren-kube-driver-');
  cleanups.push(() => dir.close());
  const stateDir = join(dir.path, 'state');
  const master = Buffer.from(await readOrCreateSecret(brokerSecretPaths(stateDir).signingKey), 'utf8');
  const ns = brokerNamespace('kd');
  const key = createAgentNkey();
  const server = await startNatsServer({
    storeDir: join(dir.path, 'nats'),
    authorization: AUTH,
    users: [{ nkey: key.publicKey, permissions: agentNatsPermissions(ns, AGENT, { messageTo: [], publishTopics: [], subscribeTopics: [] }, { runner: true }) }],
  });
  cleanups.push(() => server.close());
  const broker = await connectBroker({ servers: server.url, name: 'supervisor', instance: 'kd', credentials: { kind: 'user-password', ...AUTH }, signingKey: master });
  cleanups.push(() => broker.close());
  await broker.ensureStreams();
  const results: ResultMessage[] = [];
  const sub = await broker.consumeResults(async (d: Delivery<ResultMessage>) => {
    results.push(d.data);
    d.ack();
  });
  cleanups.push(() => sub.stop());

  const kubelet = await startSandboxKubelet({ stateDir: join(dir.path, 'kubelet'), images: { [IMAGE]: image.path }, imageMountPath: '/opt/warren' });
  cleanups.push(() => kubelet.close());
  const api = await startFakeKubeApi({ namespaces: ['agents'], onPodCreated: kubelet.onPodCreated, onPodDeleting: kubelet.onPodDeleting });
  cleanups.push(() => api.close());
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions(api.kubeconfig('agents'));

  const config = resolveConfig({ root: dir.path, stateDir, kubeImage: IMAGE, kubeNamespace: 'agents' }, RUNNER_DIR);
  const ctx = { config, broker, nats: server, log: silentLogger } as unknown as SupervisorContext;
  const runtime = await createKubernetesDriver(ctx, { kubeConfig });
  cleanups.push(() => runtime.close());

  const seen: string[] = [];
  const events: AgentEvents = {
    hello: () => seen.push('hello'),
    taskAcked: (_a, taskId) => seen.push(`acked ${taskId}`),
    alive: () => undefined,
    disconnected: () => seen.push('disconnected'),
    protocolError: (_a, message) => seen.push(`protocol error ${message}`),
    progressEvent: () => undefined,
    sendMessage: () => Promise.reject(new Error('no messaging here')),
    authorizeAssignment: () => null,
  };
  const spec: PodStartSpec = {
    name: AGENT,
    template: 'shell',
    uid: 42020,
    gid: 42020,
    homeDir: `/home/${AGENT}`,
    resources: { memoryMaxBytes: 256 * MiB, pidsMax: 128, cpuWeight: 100, nofile: 1024, fsizeBytes: 64 * MiB, tmpfsBytes: 16 * MiB },
    capabilities: ['shell'],
    runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 1000 },
    homeQuotaBytes: 256 * MiB,
    homeFiles: [
      homeFile('.warren/nats.json', JSON.stringify(agentNatsConfig(ns, AGENT, [server.url], key.seed))),
      homeFile('notes/seed.txt', 'seeded by the template\n', 0o640),
    ],
  };
  const instance = await runtime.start(spec, events);
  cleanups.push(() => instance.close());
  const deadline = Date.now() + 30_000;
  const waitFor = async (check: () => boolean, what: string): Promise<void> => {
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; saw ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  await waitFor(() => seen.includes('hello'), 'the hello');
  expect(instance.connected).toBe(true);
  const pod = api.getObject('pods', 'agents', `warren-${AGENT}`);
  expect((pod?.spec as { containers: { command: string[] }[] }).containers[0]?.command).toEqual(['/usr/bin/node', '/opt/warren/warren-pod-agent.mjs']);
  await broker.publishAssignment({ taskId: 'T-1', attempt: 1, agent: AGENT, title: 'T-1', body: '', command: 'cat "$HOME/notes/seed.txt"', fields: {}, timeoutMs: 60_000, assignedAtMs: Date.now() });
  await waitFor(() => results.some((r) => r.taskId === 'T-1'), 'the result');
  expect(results[0]).toMatchObject({ agent: AGENT, outcome: 'succeeded' });
  const volume = kubelet.volumePath('agents', `warren-${AGENT}-home`);
  expect(await readFile(join(volume, 'notes', 'seed.txt'), 'utf8')).toBe('seeded by the template\n');
  await instance.stop(5000);
  expect(api.hookErrors).toEqual([]);
}, 120_000);

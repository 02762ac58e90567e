import { Writable } from 'node:stream';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterEach, expect, test } from 'vitest';
import { KubernetesRuntime } from '@warren/kube';
import type { KubernetesAgentInstance, KubernetesRuntimeOptions } from '@warren/kube';
import type { AgentEvents, AgentStartSpec } from '@warren/runtime';
import { startFakeKubeApi } from '@warren/testing';
import type { FakeKubeApi, StartFakeKubeApiOptions } from '@warren/testing';
import { FAKE_SEED } from './support.js';

const NS = 'warren';
const MiB = 1024 * 1024;
const POD = 'warren-coder-1';

/** What a test opened, closed after it in reverse order. */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** The events of an instance whose runner never connects (pods reach the broker directly). */
const events = {} as AgentEvents;

function startSpec(name = 'coder-1'): AgentStartSpec {
  return {
    name,
    template: 'coder',
    uid: 10001,
    gid: 10001,
    homeDir: `/home/${name}`,
    resources: { memoryMaxBytes: 512 * MiB, pidsMax: 256, cpuWeight: 100, nofile: 1024, fsizeBytes: 1024 * MiB, tmpfsBytes: 64 * MiB },
    capabilities: ['shell'],
    runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 1000 },
    homeQuotaBytes: 2 * 1024 * MiB,
  };
}

async function fakeApi(options: StartFakeKubeApiOptions = {}): Promise<FakeKubeApi> {
  const api = await startFakeKubeApi({ namespaces: [NS], ...options });
  cleanups.push(() => api.close());
  return api;
}

function kubeConfigOf(api: FakeKubeApi): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions(api.kubeconfig(NS));
  return kc;
}

function runtimeOn(api: FakeKubeApi, options: Partial<KubernetesRuntimeOptions> = {}): KubernetesRuntime {
  const runtime = new KubernetesRuntime({
    kubeConfig: kubeConfigOf(api),
    namespace: NS,
    image: 'ghcr.io/warren/agent-runner:0.1.0',
    credentials: (agent) => ({ servers: ['nats://10.0.0.7:4222'], nkeySeed: FAKE_SEED, inboxPrefix: `_INBOX.${agent.name}` }),
    brokerEndpoints: [{ cidr: '10.0.0.7', port: 4222 }],
    deleteTimeoutMs: 20_000,
    ...options,
  });
  cleanups.push(() => runtime.close());
  return runtime;
}

async function started(runtime: KubernetesRuntime, name = 'coder-1'): Promise<KubernetesAgentInstance> {
  const instance = await runtime.start(startSpec(name), events);
  cleanups.push(() => instance.close());
  return instance;
}

/** Polls `condition` every 20 ms until it holds; fails after `timeoutMs`. */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const phaseOf = (instance: KubernetesAgentInstance): string => instance.phase;
const reasonOf = (instance: KubernetesAgentInstance): string | null => instance.terminationReason;

test('probe reports the namespace and the Pod Security level it enforces', async () => {
  const api = await fakeApi({ metricsServer: true });
  const host = await runtimeOn(api).probe();
  expect(host.driver).toBe('kubernetes');
  expect(host.details).toMatchObject({ namespace: NS, podSecurity: { enforce: 'restricted' }, metricsApi: true });
  await expect(runtimeOn(api, { namespace: 'absent' }).probe()).rejects.toThrow(/namespace absent is missing/);
});

test('a template with host mounts is refused before anything is created', async () => {
  const api = await fakeApi();
  await expect(runtimeOn(api).start({ ...startSpec(), mounts: [{ source: '/srv/data', target: '/data' }] }, events)).rejects.toThrow(
    /agent coder-1: start spec field mounts: host directories cannot be mounted into a pod/,
  );
  expect(api.listObjects('serviceaccounts', NS).map((a) => a.metadata?.name)).toEqual(['default']);
});

test("start creates the template's five objects, which the restricted admission takes, and the pod runs", async () => {
  const api = await fakeApi();
  const instance = await started(runtimeOn(api));
  expect(instance.connected).toBe(false);
  expect(instance.podName).toBe(POD);
  expect(api.getObject('pods', NS, POD)?.spec).toMatchObject({ serviceAccountName: POD, restartPolicy: 'Never', automountServiceAccountToken: false });
  expect(api.getObject('serviceaccounts', NS, POD)).toBeDefined();
  expect(api.getObject('networkpolicies', NS, POD)).toBeDefined();
  expect(api.getObject('persistentvolumeclaims', NS, 'warren-coder-1-home')?.spec).toMatchObject({ resources: { requests: { storage: '2Gi' } } });
  const secret = api.getObject('secrets', NS, 'warren-coder-1-nats') as { data: Record<string, string> };
  expect(JSON.parse(Buffer.from(secret.data['nats.json'] ?? '', 'base64').toString())).toEqual({
    servers: ['nats://10.0.0.7:4222'],
    nkeySeed: FAKE_SEED,
    inboxPrefix: '_INBOX.coder-1',
  });
  expect(phaseOf(instance)).toBe('Pending');
  api.runPod(NS, POD);
  await waitFor(() => phaseOf(instance) === 'Running', 'the pod to run');
  api.finishPod(NS, POD, { exitCode: 0 });
  expect(await instance.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
  expect(api.getObject('pods', NS, POD)).toBeUndefined();
});

test('a privileged pod is refused: by the local restricted check naming the rule, else by the API server with its 403', async () => {
  const api = await fakeApi();
  const privileged = (pod: Parameters<NonNullable<KubernetesRuntimeOptions['podOverrides']>>[0]) => {
    const container = pod.spec?.containers[0];
    if (container?.securityContext !== undefined) container.securityContext.privileged = true;
    return pod;
  };
  await expect(runtimeOn(api, { podOverrides: privileged }).start(startSpec(), events)).rejects.toThrow(
    /agent coder-1: pod warren-coder-1 breaks the Pod Security Standards baseline rule privileged at spec\.containers\[0\]\.securityContext\.privileged/,
  );
  expect(api.getObject('serviceaccounts', NS, POD)).toBeUndefined();
  const error = await runtimeOn(api, { podOverrides: privileged, checkRestricted: false }).start(startSpec(), events).then(
    () => null,
    (e: unknown) => e as Error,
  );
  expect(error?.message).toMatch(/agent coder-1: create pod warren-coder-1: 403 Forbidden: pods "warren-coder-1" is forbidden: violates PodSecurity "restricted:latest": privileged/);
  expect(api.getObject('pods', NS, POD)).toBeUndefined();
});

test.each([
  ['oomKillPod', (api: FakeKubeApi) => api.oomKillPod(NS, POD), { kind: 'oom' }, 'OOMKilled'],
  ['evictPod', (api: FakeKubeApi) => api.evictPod(NS, POD, 'The node was low on resource: memory.'), { kind: 'signaled', signal: 'SIGKILL' }, 'Evicted: The node was low on resource: memory.'],
  ['finishPod 0', (api: FakeKubeApi) => api.finishPod(NS, POD, { exitCode: 0 }), { kind: 'succeeded', exitCode: 0 }, 'Completed'],
  ['finishPod 3', (api: FakeKubeApi) => api.finishPod(NS, POD, { exitCode: 3 }), { kind: 'failed', exitCode: 3 }, 'Error'],
] as const)('%s maps to the exit %j', async (_name, end, exit, reason) => {
  const api = await fakeApi();
  const instance = await started(runtimeOn(api));
  api.runPod(NS, POD);
  await waitFor(() => phaseOf(instance) === 'Running', 'the pod to run');
  end(api);
  expect(await instance.exited).toEqual(exit);
  expect(reasonOf(instance)).toBe(reason);
  expect(api.getObject('pods', NS, POD)).toBeUndefined();
});

test('stop deletes the pod with the grace period and resolves on its deletion; it is idempotent and keeps a reason', async () => {
  const api = await fakeApi();
  const runtime = runtimeOn(api);
  const instance = await started(runtime);
  api.runPod(NS, POD);
  await waitFor(() => phaseOf(instance) === 'Running', 'the pod to run');
  const first = instance.stop(3000);
  expect(instance.stop(0)).toBe(first);
  expect(await first).toEqual({ kind: 'signaled', signal: 'SIGTERM' });
  expect(api.getObject('pods', NS, POD)).toBeUndefined();
  const deletion = api.requests.find((r) => r.method === 'DELETE' && r.url.includes(`/pods/${POD}`));
  expect(deletion?.url).toContain('gracePeriodSeconds=3');

  const second = await started(runtime);
  api.runPod(NS, POD);
  expect(await second.stop(1000, { reason: 'timeout', detail: 'ran 60 s' })).toEqual({ kind: 'timeout', detail: 'ran 60 s' });
});

test('a pod deleted by someone else ends the instance', async () => {
  const api = await fakeApi();
  const instance = await started(runtimeOn(api));
  api.runPod(NS, POD);
  await waitFor(() => phaseOf(instance) === 'Running', 'the pod to run');
  await kubeConfigOf(api).makeApiClient(CoreV1Api).deleteNamespacedPod({ name: POD, namespace: NS, gracePeriodSeconds: 0 });
  expect(await instance.exited).toEqual({ kind: 'signaled', signal: 'SIGTERM' });
  expect(reasonOf(instance)).toBe('Deleted');
});

test('sleep (detachStorage) deletes the pod and keeps the PVC and Secret; the next start reuses the PVC', async () => {
  const api = await fakeApi();
  const runtime = runtimeOn(api);
  const instance = await started(runtime);
  api.runPod(NS, POD);
  const pvcUid = api.getObject('persistentvolumeclaims', NS, 'warren-coder-1-home')?.metadata?.uid;
  await instance.stop(0);
  expect(await runtime.detachStorage({ name: 'coder-1' })).toBe(false);
  expect(api.getObject('persistentvolumeclaims', NS, 'warren-coder-1-home')?.metadata?.uid).toBe(pvcUid);
  expect(api.getObject('secrets', NS, 'warren-coder-1-nats')).toBeDefined();

  const again = await started(runtime);
  expect(api.getObject('persistentvolumeclaims', NS, 'warren-coder-1-home')?.metadata?.uid).toBe(pvcUid);
  api.runPod(NS, POD);
  expect(await runtime.detachStorage({ name: 'coder-1' })).toBe(true);
  expect(await again.exited).toEqual({ kind: 'signaled', signal: 'SIGTERM' });
  expect(api.getObject('pods', NS, POD)).toBeUndefined();
  expect(api.getObject('persistentvolumeclaims', NS, 'warren-coder-1-home')?.metadata?.uid).toBe(pvcUid);
});

test('autodelete (releaseStorage) removes the pod, PVC, Secret, NetworkPolicy and ServiceAccount', async () => {
  const api = await fakeApi();
  const runtime = runtimeOn(api);
  const instance = await started(runtime);
  api.runPod(NS, POD);
  await runtime.releaseStorage({ name: 'coder-1' });
  expect(await instance.exited).toMatchObject({ kind: 'signaled' });
  for (const resource of ['pods', 'networkpolicies', 'serviceaccounts'] as const) expect(api.getObject(resource, NS, POD)).toBeUndefined();
  expect(api.getObject('persistentvolumeclaims', NS, 'warren-coder-1-home')).toBeUndefined();
  expect(api.getObject('secrets', NS, 'warren-coder-1-nats')).toBeUndefined();
  await runtime.releaseStorage({ name: 'coder-1' });
});

test('reclaim deletes the pods an earlier run left and names them', async () => {
  const api = await fakeApi();
  const earlier = runtimeOn(api);
  await earlier.start(startSpec('coder-1'), events);
  await earlier.start(startSpec('coder-2'), events);
  api.runPod(NS, 'warren-coder-2');
  await earlier.close();
  const report = await runtimeOn(api).reclaim();
  expect([...report.instances].sort()).toEqual(['warren-coder-1', 'warren-coder-2']);
  expect(api.listObjects('pods', NS)).toEqual([]);
  expect(api.getObject('persistentvolumeclaims', NS, 'warren-coder-2-home')).toBeDefined();
});

test("exec runs through the exec API and returns the hook's output and exit code", async () => {
  const api = await fakeApi({
    onPodExec: ({ container, command, stdout, stderr }) => {
      stdout?.write(`${container}: ${command.join(' ')}\n`);
      stderr?.write('warning\n');
      return command[1] === 'fail' ? 7 : 0;
    },
  });
  const runtime = runtimeOn(api);
  await started(runtime);
  api.runPod(NS, POD);
  const run = async (argv: string[]): Promise<{ exit: unknown; out: string; err: string }> => {
    let out = '';
    let err = '';
    const sink = (add: (s: string) => void) =>
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          add(chunk.toString());
          callback();
        },
      });
    const process = await runtime.exec(startSpec(), argv, { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)) });
    return { exit: await process.exited, out, err };
  };
  expect(await run(['echo', 'hello'])).toEqual({ exit: { kind: 'succeeded', exitCode: 0 }, out: 'agent: echo hello\n', err: 'warning\n' });
  expect(await run(['sh', 'fail'])).toMatchObject({ exit: { kind: 'failed', exitCode: 7 }, out: 'agent: sh fail\n' });
});

test('usage reads the metrics API when it is served', async () => {
  const api = await fakeApi({ metricsServer: true });
  const instance = await started(runtimeOn(api, { metricsIntervalMs: 0 }));
  api.runPod(NS, POD);
  api.setPodMetrics(NS, POD, [{ name: 'agent', cpu: '250m', memory: '64Mi' }]);
  expect(instance.usage().memoryBytes).toBe(0);
  await waitFor(() => instance.usage().memoryBytes === 64 * MiB, 'the metrics sample');
  expect(instance.freeze()).toBe(false);
});

test('a watch resumed from a compacted version gets 410, relists and still sees the exit', async () => {
  const api = await fakeApi();
  const errors: unknown[] = [];
  const instance = await started(runtimeOn(api, { watchTimeoutSeconds: 1, retryMs: 50, onError: (error) => errors.push(error) }));
  api.runPod(NS, POD);
  await waitFor(() => phaseOf(instance) === 'Running', 'the pod to run');
  // Newer versions the agent's watch does not see, then compaction: its resume point is expired.
  await kubeConfigOf(api).makeApiClient(CoreV1Api).createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'other' } } });
  api.compact();
  const lists = (): number => api.requests.filter((r) => r.method === 'GET' && r.url.startsWith(`/api/v1/namespaces/${NS}/pods?`) && !r.url.includes('watch=true')).length;
  const before = lists();
  await waitFor(() => lists() > before, 'a relist after 410 Expired');
  api.finishPod(NS, POD, { exitCode: 0 });
  expect(await instance.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
  // The relist came from the expiry, not from a failed request.
  expect(errors).toEqual([]);
});

test('a second start replaces the Secret with new credentials, and a start while the pod exists is refused with the 409', async () => {
  const api = await fakeApi();
  let inbox = '_INBOX.first';
  const runtime = runtimeOn(api, { credentials: () => ({ servers: ['nats://10.0.0.7:4222'], nkeySeed: FAKE_SEED, inboxPrefix: inbox }) });
  const first = await started(runtime);
  await expect(runtime.start(startSpec(), events)).rejects.toThrow(/agent coder-1: create pod warren-coder-1: 409 AlreadyExists: pods "warren-coder-1" already exists/);
  await first.stop(0);
  inbox = '_INBOX.second';
  await started(runtime);
  const secret = api.getObject('secrets', NS, 'warren-coder-1-nats') as { data: Record<string, string> };
  expect(JSON.parse(Buffer.from(secret.data['nats.json'] ?? '', 'base64').toString())).toMatchObject({ inboxPrefix: '_INBOX.second' });
});

/**
 * The pod driver against the fake API server whose kubelet runs each pod as a real bubblewrap
 * sandbox (`startSandboxKubelet`): real processes, real exits, the PVC a real directory.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, expect, test } from 'vitest';
import { KubernetesRuntime } from '@warren/kube';
import type { KubernetesAgentInstance } from '@warren/kube';
import type { AgentEvents, AgentStartSpec } from '@warren/runtime';
import { makeTempDir, startFakeKubeApi, startSandboxKubelet } from '@warren/testing';
import type { FakeKubeApi, SandboxKubelet } from '@warren/testing';
import { FAKE_SEED } from './support.js';

const NS = 'warren';
const MiB = 1024 * 1024;
const POD = 'warren-coder-1';
const IMAGE = 'warren/pod-test:dev';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

const events = {} as AgentEvents;

function startSpec(memoryMaxBytes = 256 * MiB): AgentStartSpec {
  return {
    name: 'coder-1',
    template: 'coder',
    uid: 42001,
    gid: 42001,
    homeDir: '/home/coder-1',
    resources: { memoryMaxBytes, pidsMax: 64, cpuWeight: 100, nofile: 1024, fsizeBytes: 64 * MiB, tmpfsBytes: 16 * MiB },
    capabilities: ['shell'],
    runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 1000 },
    homeQuotaBytes: 256 * MiB,
  };
}

async function world(command: string): Promise<{ api: FakeKubeApi; kubelet: SandboxKubelet; runtime: KubernetesRuntime }> {
  const dir = await makeTempDir('warren-sandbox-kubelet-');
  cleanups.push(() => dir.close());
  const image = join(dir.path, 'image');
  await mkdir(image, { recursive: true });
  const kubelet = await startSandboxKubelet({ stateDir: join(dir.path, 'kubelet'), images: { [IMAGE]: image } });
  cleanups.push(() => kubelet.close());
  const api = await startFakeKubeApi({ namespaces: [NS], onPodCreated: kubelet.onPodCreated, onPodDeleting: kubelet.onPodDeleting });
  cleanups.push(() => api.close());
  const kc = new KubeConfig();
  kc.loadFromOptions(api.kubeconfig(NS));
  const runtime = new KubernetesRuntime({
    kubeConfig: kc,
    namespace: NS,
    image: IMAGE,
    command: ['/bin/sh', '-c', command],
    credentials: (agent) => ({ servers: ['nats://127.0.0.1:4222'], nkeySeed: FAKE_SEED, inboxPrefix: `_INBOX.${agent.name}` }),
    brokerEndpoints: [{ cidr: '127.0.0.1', port: 4222 }],
    deleteTimeoutMs: 20_000,
  });
  cleanups.push(() => runtime.close());
  return { api, kubelet, runtime };
}

async function started(runtime: KubernetesRuntime, spec = startSpec()): Promise<KubernetesAgentInstance> {
  const instance = (await runtime.start(spec, events));
  cleanups.push(() => instance.close());
  return instance;
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

test("a pod's process runs as its uid with the PVC as its home and the Secret's nats.json; its exit code is the instance's", async () => {
  const { api, kubelet, runtime } = await world('id -u > "$HOME/uid" && cat "$HOME/.warren/nats.json" > /tmp/n && grep -q nkeySeed /tmp/n && pwd > "$HOME/cwd" && exit 3');
  const instance = await started(runtime);
  expect(await instance.exited).toEqual({ kind: 'failed', exitCode: 3 });
  expect(instance.terminationReason).toBe('Error');
  const volume = kubelet.volumePath(NS, 'warren-coder-1-home');
  expect((await readFile(join(volume, 'uid'), 'utf8')).trim()).toBe('42001');
  expect((await readFile(join(volume, 'cwd'), 'utf8')).trim()).toBe('/home/agent');
  expect(api.hookErrors).toEqual([]);
});

test('sleep deletes the running pod and keeps the PVC and its files; the next start sees them', async () => {
  const { api, kubelet, runtime } = await world('echo started >> "$HOME/notes"; exec sleep 600');
  const volume = kubelet.volumePath(NS, 'warren-coder-1-home');
  const instance = await started(runtime);
  await waitFor(() => instance.phase === 'Running', 'the pod to run');
  await waitFor(async () => (await readFile(join(volume, 'notes'), 'utf8').catch(() => '')) === 'started\n', 'the first note');
  expect(kubelet.sandbox(NS, POD)).toBeDefined();
  expect(await runtime.detachStorage({ name: 'coder-1' })).toBe(true);
  expect(await instance.exited).toMatchObject({ kind: 'signaled' });
  expect(api.getObject('pods', NS, POD)).toBeUndefined();
  // A pod deleted without grace goes first; the kubelet then kills its process.
  await waitFor(() => kubelet.sandbox(NS, POD) === undefined, 'the sandbox to be killed');
  expect(api.getObject('persistentvolumeclaims', NS, 'warren-coder-1-home')).toBeDefined();

  const again = await started(runtime);
  await waitFor(async () => (await readFile(join(volume, 'notes'), 'utf8').catch(() => '')) === 'started\nstarted\n', 'the second note');
  await again.stop(1000);
  expect(api.hookErrors).toEqual([]);
});

test('a pod over its memory limit is OOM-killed by its cgroup and the instance exits oom', async () => {
  const { api, runtime } = await world('exec tail /dev/zero');
  const instance = await started(runtime, startSpec(32 * MiB));
  expect(await instance.exited).toEqual({ kind: 'oom' });
  expect(instance.terminationReason).toBe('OOMKilled');
  expect(api.hookErrors).toEqual([]);
});

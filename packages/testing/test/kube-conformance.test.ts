/**
 * What the fake Kubernetes API server must answer exactly as a real one does, checked against the
 * fake always and also against the cluster in `KUBECONFIG` when that is set (in a fresh namespace
 * enforcing the restricted profile, deleted afterwards), so a run against a real cluster shows
 * where the fake drifts.
 */
import { randomBytes } from 'node:crypto';
import { ApiException, CoreV1Api, KubeConfig, Watch, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeKubeApi, type KubeStatus } from '../src/index.js';

interface Target {
  readonly name: string;
  connect(): Promise<{ kc: KubeConfig; close: () => Promise<void> }>;
}

const targets: Target[] = [
  {
    name: 'the fake API server',
    async connect() {
      const api = await startFakeKubeApi();
      const kc = new KubeConfig();
      kc.loadFromOptions(api.kubeconfig());
      return { kc, close: () => api.close() };
    },
  },
];
const kubeconfigPath = process.env.KUBECONFIG;
if (kubeconfigPath !== undefined && kubeconfigPath !== '') {
  targets.push({
    name: `the cluster in KUBECONFIG (${kubeconfigPath})`,
    connect() {
      const kc = new KubeConfig();
      kc.loadFromDefault();
      return Promise.resolve({ kc, close: () => Promise.resolve() });
    },
  });
}

async function statusOf(call: Promise<unknown>): Promise<{ code: number; status: KubeStatus }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof ApiException) return { code: error.code, status: JSON.parse(error.body as string) as KubeStatus };
    throw error;
  }
  throw new Error('the call succeeded; an ApiException was expected');
}

async function eventually<T>(read: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await read().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function pod(name: string, image = 'warren/agent-runner:0.1.0'): V1Pod {
  return {
    metadata: { name },
    spec: {
      automountServiceAccountToken: false,
      restartPolicy: 'Never',
      securityContext: { runAsNonRoot: true, runAsUser: 1001, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{ name: 'runner', image, securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
    },
  };
}

describe.each(targets)('Kubernetes API answers of $name', (target) => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  let close: () => Promise<void>;
  const namespace = `warren-conformance-${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    ({ kc, close } = await target.connect());
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: namespace, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } } });
    // A real cluster's service account controller makes `default` shortly after the namespace.
    await eventually(() => core.readNamespacedServiceAccount({ namespace, name: 'default' }), 'the default service account');
  });

  afterAll(async () => {
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    await close();
  });

  it('answers a missing pod with 404 NotFound', async () => {
    const { code, status } = await statusOf(core.readNamespacedPod({ namespace, name: 'nope' }));
    expect(code).toBe(404);
    expect(status).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'pods "nope" not found',
      reason: 'NotFound',
      details: { name: 'nope', kind: 'pods' },
      code: 404,
    });
  });

  it('answers a second create with 409 AlreadyExists and a stale update with 409 Conflict', async () => {
    const created = await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'settings' }, data: { a: '1' } } });
    const again = await statusOf(core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'settings' } } }));
    expect(again.code).toBe(409);
    expect(again.status).toMatchObject({ reason: 'AlreadyExists', message: 'configmaps "settings" already exists', details: { name: 'settings', kind: 'configmaps' } });
    await core.replaceNamespacedConfigMap({ namespace, name: 'settings', body: { ...created, data: { a: '2' } } });
    const stale = await statusOf(core.replaceNamespacedConfigMap({ namespace, name: 'settings', body: { ...created, data: { a: '3' } } }));
    expect(stale.code).toBe(409);
    expect(stale.status).toMatchObject({
      reason: 'Conflict',
      message: 'Operation cannot be fulfilled on configmaps "settings": the object has been modified; please apply your changes to the latest version and try again',
    });
  });

  it('answers a pod without an image with 422 Invalid naming the field', async () => {
    const { code, status } = await statusOf(core.createNamespacedPod({ namespace, body: pod('no-image', '') }));
    expect(code).toBe(422);
    expect(status).toMatchObject({
      reason: 'Invalid',
      message: 'Pod "no-image" is invalid: spec.containers[0].image: Required value',
      details: { name: 'no-image', kind: 'Pod', causes: [{ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.containers[0].image' }] },
    });
  });

  it('rejects a pod that breaks the restricted profile with the PodSecurity 403 and admits one that keeps it', async () => {
    const loose: V1Pod = { metadata: { name: 'loose' }, spec: { containers: [{ name: 'runner', image: 'warren/agent-runner:0.1.0' }] } };
    const { code, status } = await statusOf(core.createNamespacedPod({ namespace, body: loose }));
    expect(code).toBe(403);
    expect(status).toMatchObject({
      reason: 'Forbidden',
      message:
        'pods "loose" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "runner" must set securityContext.allowPrivilegeEscalation=false), ' +
        'unrestricted capabilities (container "runner" must set securityContext.capabilities.drop=["ALL"]), ' +
        'runAsNonRoot != true (pod or container "runner" must set securityContext.runAsNonRoot=true), ' +
        'seccompProfile (pod or container "runner" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
    });
    const admitted = await core.createNamespacedPod({ namespace, body: pod('kept') });
    expect(admitted.status?.phase).toBe('Pending');
    await core.deleteNamespacedPod({ namespace, name: 'kept', gracePeriodSeconds: 0 });
  });

  it('lists by set-based label selectors', async () => {
    for (const [name, tier] of [['l-a', 'agents'], ['l-b', 'gateway'], ['l-c', 'other']] as const) {
      await core.createNamespacedConfigMap({ namespace, body: { metadata: { name, labels: { suite: 'labels', tier } } } });
    }
    const list = await core.listNamespacedConfigMap({ namespace, labelSelector: 'suite=labels,tier in (agents,gateway)' });
    expect(list.items.map((item) => item.metadata?.name).sort()).toEqual(['l-a', 'l-b']);
    expect(Number(list.metadata?.resourceVersion)).toBeGreaterThan(0);
  });

  it('streams ADDED, MODIFIED and DELETED of a watch in order', async () => {
    const start = (await core.listNamespacedConfigMap({ namespace })).metadata?.resourceVersion ?? '';
    const events: string[] = [];
    const controller = await new Watch(kc).watch(
      `/api/v1/namespaces/${namespace}/configmaps`,
      { resourceVersion: start, fieldSelector: 'metadata.name=watched' },
      (type) => events.push(type),
      () => undefined,
    );
    try {
      await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'watched' }, data: { a: '1' } } });
      await core.patchNamespacedConfigMap({ namespace, name: 'watched', body: [{ op: 'replace', path: '/data/a', value: '2' }] });
      await core.deleteNamespacedConfigMap({ namespace, name: 'watched' });
      await eventually(() => Promise.resolve(events.length >= 3 ? events : undefined), 'three watch events');
      expect(events).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
    } finally {
      controller.abort();
    }
  });
});

import {
  ApiException,
  CoreV1Api,
  Exec,
  KubeConfig,
  KubernetesObjectApi,
  makeInformer,
  Metrics,
  NetworkingV1Api,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type V1NetworkPolicy,
  type V1Pod,
  type V1Status,
} from '@kubernetes/client-node';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeKubeApi, type FakeKubeApi, type KubeObject, type KubeStatus } from '../src/index.js';

/** A pod the restricted profile admits, as the pod driver writes one. */
function restrictedPod(name: string, labels: Record<string, string> = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels },
    spec: {
      automountServiceAccountToken: false,
      restartPolicy: 'Never',
      securityContext: { runAsNonRoot: true, runAsUser: 1001, runAsGroup: 1001, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'runner',
          image: 'warren/agent-runner:0.1.0',
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true },
        },
      ],
    },
  };
}

/** The ApiException a call rejects with, its body parsed as the `Status` it carries. */
async function statusOf(call: Promise<unknown>): Promise<{ code: number; status: KubeStatus }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof ApiException) return { code: error.code, status: JSON.parse(error.body as string) as KubeStatus };
    throw error;
  }
  throw new Error('the call succeeded; an ApiException was expected');
}

interface Event {
  type: string;
  object: { kind?: string; code?: number; reason?: string; metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string> }; status?: Record<string, unknown> };
}

/** A watch through the client's `Watch`, gathering its events; `until` waits for a condition on them. */
async function watchEvents(kc: KubeConfig, path: string, query: Record<string, string | number | boolean> = {}) {
  const events: Event[] = [];
  const waiters = new Set<() => void>();
  let doneError: unknown = 'open';
  const notify = (): void => {
    for (const waiter of waiters) waiter();
  };
  const controller = await new Watch(kc).watch(
    path,
    query,
    (type, object) => {
      events.push({ type, object: object as Event['object'] });
      notify();
    },
    (error: unknown) => {
      doneError = error ?? null;
      notify();
    },
  );
  const until = async (condition: () => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 10_000;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(events.map((e) => [e.type, e.object.metadata?.name]))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        waiters.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      waiters.clear();
    }
  };
  return { events, controller, until, done: () => doneError !== 'open', doneError: () => doneError };
}

describe('startFakeKubeApi with @kubernetes/client-node', () => {
  let api: FakeKubeApi;
  let kc: KubeConfig;
  let core: CoreV1Api;

  beforeEach(async () => {
    api = await startFakeKubeApi();
    kc = new KubeConfig();
    kc.loadFromOptions(api.kubeconfig());
    core = kc.makeApiClient(CoreV1Api);
  });

  afterEach(async () => {
    await api.close();
  });

  it('creates, reads and lists pods by equality, set-based and field selectors', async () => {
    const created = await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a', { app: 'warren', agent: 'a' }) });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(created.status?.phase).toBe('Pending');
    expect(created.spec?.serviceAccountName).toBe('default');
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-b', { app: 'warren', agent: 'b' }) });
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('other', { app: 'else' }) });
    const generated = await core.createNamespacedPod({
      namespace: 'default',
      body: { ...restrictedPod(''), metadata: { generateName: 'agent-', labels: { app: 'warren', agent: 'c' } } },
    });
    expect(generated.metadata?.name).toMatch(/^agent-[bcdfghjklmnpqrstvwxz2456789]{5}$/);

    const read = await core.readNamespacedPod({ namespace: 'default', name: 'agent-a' });
    expect(read.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);

    const names = async (query: { labelSelector?: string; fieldSelector?: string }): Promise<string[]> =>
      ((await core.listNamespacedPod({ namespace: 'default', ...query })).items).map((pod) => pod.metadata?.name ?? '');
    expect(await names({ labelSelector: 'app=warren,agent!=c' })).toEqual(['agent-a', 'agent-b']);
    expect(await names({ labelSelector: 'agent in (a, b)' })).toEqual(['agent-a', 'agent-b']);
    expect(await names({ labelSelector: 'app notin (warren)' })).toEqual(['other']);
    expect(await names({ labelSelector: '!agent' })).toEqual(['other']);
    expect(await names({ fieldSelector: 'metadata.name=agent-b' })).toEqual(['agent-b']);
    const all = await core.listPodForAllNamespaces({ labelSelector: 'agent' });
    expect(all.items).toHaveLength(3);
    expect(all.metadata?.resourceVersion).toBe(String(api.resourceVersion()));

    const bad = await statusOf(core.listNamespacedPod({ namespace: 'default', labelSelector: 'app in (a' }));
    expect(bad.code).toBe(400);
    expect(bad.status.reason).toBe('BadRequest');
  });

  it('answers a missing object with 404 NotFound as the API server writes it', async () => {
    const { code, status } = await statusOf(core.readNamespacedPod({ namespace: 'default', name: 'nope' }));
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
    const missingNamespace = await statusOf(core.createNamespacedPod({ namespace: 'ghost', body: restrictedPod('a') }));
    expect(missingNamespace.code).toBe(404);
    expect(missingNamespace.status.message).toBe('namespaces "ghost" not found');
  });

  it('answers a second create with 409 AlreadyExists and a PUT of a stale resourceVersion with 409 Conflict', async () => {
    const first = await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a') });
    const again = await statusOf(core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a') }));
    expect(again.code).toBe(409);
    expect(again.status.reason).toBe('AlreadyExists');
    expect(again.status.message).toBe('pods "agent-a" already exists');

    const labelled = await core.replaceNamespacedPod({
      namespace: 'default',
      name: 'agent-a',
      body: { ...first, metadata: { ...first.metadata, labels: { step: 'one' } } },
    });
    expect(Number(labelled.metadata?.resourceVersion)).toBeGreaterThan(Number(first.metadata?.resourceVersion));
    const stale = await statusOf(
      core.replaceNamespacedPod({ namespace: 'default', name: 'agent-a', body: { ...first, metadata: { ...first.metadata, labels: { step: 'two' } } } }),
    );
    expect(stale.code).toBe(409);
    expect(stale.status.reason).toBe('Conflict');
    expect(stale.status.message).toBe(
      'Operation cannot be fulfilled on pods "agent-a": the object has been modified; please apply your changes to the latest version and try again',
    );
    expect((await core.readNamespacedPod({ namespace: 'default', name: 'agent-a' })).metadata?.labels).toEqual({ step: 'one' });
  });

  it('answers invalid objects with 422 Invalid and one cause per field', async () => {
    const pod = restrictedPod('Bad_Name');
    const spec = pod.spec;
    if (spec === undefined) throw new Error('fixture has a spec');
    spec.containers = [{ name: 'runner', image: '' }, { name: 'runner', image: 'x:1' }];
    const { code, status } = await statusOf(core.createNamespacedPod({ namespace: 'default', body: pod }));
    expect(code).toBe(422);
    expect(status.reason).toBe('Invalid');
    expect(status.details?.kind).toBe('Pod');
    expect(status.details?.causes?.map((cause) => [cause.reason, cause.field])).toEqual([
      ['FieldValueInvalid', 'metadata.name'],
      ['FieldValueRequired', 'spec.containers[0].image'],
      ['FieldValueDuplicate', 'spec.containers[1].name'],
    ]);
    expect(status.message).toMatch(/^Pod "Bad_Name" is invalid: \[metadata\.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/);

    const pvc = await statusOf(core.createNamespacedPersistentVolumeClaim({ namespace: 'default', body: { metadata: { name: 'home' }, spec: {} } }));
    expect(pvc.code).toBe(422);
    expect(pvc.status.message).toBe(
      'PersistentVolumeClaim "home" is invalid: [spec.accessModes: Required value: at least 1 access mode is required, spec.resources[storage]: Required value]',
    );
  });

  it('rejects a privileged pod with the PodSecurity 403 and admits a restricted one', async () => {
    const privileged: V1Pod = {
      metadata: { name: 'root' },
      spec: { hostNetwork: true, containers: [{ name: 'shell', image: 'busybox:1.36', securityContext: { privileged: true } }] },
    };
    const { code, status } = await statusOf(core.createNamespacedPod({ namespace: 'default', body: privileged }));
    expect(code).toBe(403);
    expect(status.reason).toBe('Forbidden');
    expect(status.message).toBe(
      'pods "root" is forbidden: violates PodSecurity "restricted:latest": ' +
        'host namespaces (hostNetwork=true), ' +
        'privileged (container "shell" must not set securityContext.privileged=true), ' +
        'allowPrivilegeEscalation != false (container "shell" must set securityContext.allowPrivilegeEscalation=false), ' +
        'unrestricted capabilities (container "shell" must set securityContext.capabilities.drop=["ALL"]), ' +
        'runAsNonRoot != true (pod or container "shell" must set securityContext.runAsNonRoot=true), ' +
        'seccompProfile (pod or container "shell" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
    );
    expect(api.getObject('pods', 'default', 'root')).toBeUndefined();

    const admitted = await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a') });
    expect(admitted.metadata?.name).toBe('agent-a');

    // A namespace labelled privileged admits what restricted rejects.
    await core.createNamespace({ body: { metadata: { name: 'lab', labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } } });
    await expect(core.createNamespacedPod({ namespace: 'lab', body: privileged })).resolves.toMatchObject({ metadata: { name: 'root' } });
  });

  it('checks the pod service account exists and mounts its token unless automount is off', async () => {
    const missing = await statusOf(
      core.createNamespacedPod({ namespace: 'default', body: { ...restrictedPod('a'), spec: { ...restrictedPod('a').spec!, serviceAccountName: 'agent-a' } } }),
    );
    expect(missing.code).toBe(403);
    expect(missing.status.message).toBe('pods "a" is forbidden: error looking up service account default/agent-a: serviceaccount "agent-a" not found');

    await core.createNamespacedServiceAccount({ namespace: 'default', body: { metadata: { name: 'agent-a' }, automountServiceAccountToken: false } });
    const withToken = { ...restrictedPod('b'), spec: { ...restrictedPod('b').spec!, serviceAccountName: 'default' } };
    delete withToken.spec.automountServiceAccountToken;
    const mounted = await core.createNamespacedPod({ namespace: 'default', body: withToken });
    expect(mounted.spec?.containers[0]?.volumeMounts?.[0]?.mountPath).toBe('/var/run/secrets/kubernetes.io/serviceaccount');
    const own = { ...restrictedPod('c'), spec: { ...restrictedPod('c').spec!, serviceAccountName: 'agent-a' } };
    delete own.spec.automountServiceAccountToken;
    const unmounted = await core.createNamespacedPod({ namespace: 'default', body: own });
    expect(unmounted.spec?.volumes ?? []).toEqual([]);
  });

  it('patches with JSON Patch, the client default, and with merge patch', async () => {
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a', { app: 'warren' }) });
    const jsonPatched = await core.patchNamespacedPod({
      namespace: 'default',
      name: 'agent-a',
      body: [{ op: 'add', path: '/metadata/labels/warren.dev~1state', value: 'asleep' }],
    });
    expect(jsonPatched.metadata?.labels).toEqual({ app: 'warren', 'warren.dev/state': 'asleep' });
    const merged = await core.patchNamespacedPod(
      { namespace: 'default', name: 'agent-a', body: { metadata: { labels: { app: null, tier: 'agents' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(merged.metadata?.labels).toEqual({ 'warren.dev/state': 'asleep', tier: 'agents' });
    const failedTest = await statusOf(
      core.patchNamespacedPod({ namespace: 'default', name: 'agent-a', body: [{ op: 'test', path: '/metadata/labels/tier', value: 'x' }] }),
    );
    expect(failedTest.code).toBe(422);
    const immutable = await statusOf(
      core.patchNamespacedPod({ namespace: 'default', name: 'agent-a', body: [{ op: 'replace', path: '/spec/restartPolicy', value: 'Always' }] }),
    );
    expect(immutable.code).toBe(422);
    expect(immutable.status.details?.causes?.[0]?.field).toBe('spec');
  });

  it('serves PVCs, Secrets, ServiceAccounts and NetworkPolicies at their real paths', async () => {
    const networking = kc.makeApiClient(NetworkingV1Api);
    const pvc = await core.createNamespacedPersistentVolumeClaim({
      namespace: 'default',
      body: { metadata: { name: 'home-a' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
    });
    expect(pvc.status?.phase).toBe('Bound');
    expect(pvc.status?.capacity).toEqual({ storage: '1Gi' });
    const secret = await core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'creds-a' }, stringData: { 'nats.creds': 'x' } } });
    expect(secret.data).toEqual({ 'nats.creds': Buffer.from('x').toString('base64') });
    expect(secret.type).toBe('Opaque');
    await core.createNamespacedServiceAccount({ namespace: 'default', body: { metadata: { name: 'agent-a' }, automountServiceAccountToken: false } });
    const policy = await networking.createNamespacedNetworkPolicy({
      namespace: 'default',
      body: {
        metadata: { name: 'agent-a' },
        spec: { podSelector: { matchLabels: { agent: 'a' } }, policyTypes: ['Ingress', 'Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.5/32' } }], ports: [{ protocol: 'TCP', port: 4222 }] }] },
      },
    });
    expect(policy.metadata?.uid).toBeDefined();
    expect((await networking.listNamespacedNetworkPolicy({ namespace: 'default' })).items.map((p) => p.metadata?.name)).toEqual(['agent-a']);
    const paths = api.requests.map((r) => `${r.method} ${r.url.split('?')[0]}`);
    expect(paths).toContain('POST /apis/networking.k8s.io/v1/namespaces/default/networkpolicies');
    expect(paths).toContain('POST /api/v1/namespaces/default/persistentvolumeclaims');

    const deleted = await core.deleteNamespacedSecret({ namespace: 'default', name: 'creds-a' });
    expect(deleted).toMatchObject({ status: 'Success', details: { name: 'creds-a', kind: 'secrets' } });
    const gone = await statusOf(networking.readNamespacedNetworkPolicy({ namespace: 'default', name: 'nope' }));
    expect(gone.status.message).toBe('networkpolicies.networking.k8s.io "nope" not found');
  });

  it('deleting a running pod keeps its PVC; owner references cascade unless orphaned', async () => {
    const pod = await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a') });
    await core.createNamespacedPersistentVolumeClaim({
      namespace: 'default',
      body: { metadata: { name: 'home-a' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
    });
    const owner = { apiVersion: 'v1', kind: 'Pod', name: 'agent-a', uid: pod.metadata?.uid ?? '' };
    await core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'owned', ownerReferences: [owner] } } });
    await core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'kept', ownerReferences: [owner] } } });
    api.runPod('default', 'agent-a');
    const watch = await watchEvents(kc, '/api/v1/namespaces/default/pods', { resourceVersion: String(api.resourceVersion()) });
    const terminating = await core.deleteNamespacedPod({ namespace: 'default', name: 'agent-a' });
    expect(terminating.metadata?.deletionTimestamp).toBeInstanceOf(Date);
    await watch.until(() => watch.events.some((e) => e.type === 'DELETED'), 'the pod DELETED');
    expect(watch.events.map((e) => e.type)).toEqual(['MODIFIED', 'DELETED']);
    expect(api.getObject('persistentvolumeclaims', 'default', 'home-a')).toBeDefined();
    expect(api.getObject('secrets', 'default', 'owned')).toBeUndefined();
    expect(api.getObject('secrets', 'default', 'kept')).toBeUndefined();
    watch.controller.abort();

    const second = await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-b') });
    await core.createNamespacedSecret({
      namespace: 'default',
      body: { metadata: { name: 'orphan', ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: 'agent-b', uid: second.metadata?.uid ?? '' }] } },
    });
    await core.deleteNamespacedPod({ namespace: 'default', name: 'agent-b', propagationPolicy: 'Orphan' });
    expect(api.getObject('pods', 'default', 'agent-b')).toBeUndefined();
    expect(api.getObject('secrets', 'default', 'orphan')?.metadata?.ownerReferences).toEqual([]);

    // Owners that own each other, and a dependent of both: one delete removes all three once.
    const a = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'cycle-a' } } });
    const b = await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'cycle-b', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'cycle-a', uid: a.metadata?.uid ?? '' }] } },
    });
    await core.patchNamespacedConfigMap({
      namespace: 'default',
      name: 'cycle-a',
      body: [{ op: 'add', path: '/metadata/ownerReferences', value: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'cycle-b', uid: b.metadata?.uid ?? '' }] }],
    });
    await core.createNamespacedConfigMap({
      namespace: 'default',
      body: {
        metadata: {
          name: 'shared',
          ownerReferences: [
            { apiVersion: 'v1', kind: 'ConfigMap', name: 'cycle-a', uid: a.metadata?.uid ?? '' },
            { apiVersion: 'v1', kind: 'ConfigMap', name: 'cycle-b', uid: b.metadata?.uid ?? '' },
          ],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ namespace: 'default', name: 'cycle-a' });
    expect(api.listObjects('configmaps')).toEqual([]);
  });

  it('holds a PVC a pod mounts with pvc-protection until the pod is gone', async () => {
    const claim = await core.createNamespacedPersistentVolumeClaim({
      namespace: 'default',
      body: { metadata: { name: 'home-a' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
    });
    expect(claim.metadata?.finalizers).toEqual(['kubernetes.io/pvc-protection']);
    const body = restrictedPod('agent-a');
    if (body.spec === undefined) throw new Error('fixture has a spec');
    body.spec.volumes = [{ name: 'home', persistentVolumeClaim: { claimName: 'home-a' } }];
    await core.createNamespacedPod({ namespace: 'default', body });
    api.runPod('default', 'agent-a');
    const watch = await watchEvents(kc, '/api/v1/namespaces/default/persistentvolumeclaims', { resourceVersion: String(api.resourceVersion()) });
    const terminating = await core.deleteNamespacedPersistentVolumeClaim({ namespace: 'default', name: 'home-a' });
    expect(terminating.metadata?.deletionTimestamp).toBeInstanceOf(Date);
    expect(api.getObject('persistentvolumeclaims', 'default', 'home-a')).toBeDefined();
    await core.deleteNamespacedPod({ namespace: 'default', name: 'agent-a', gracePeriodSeconds: 0 });
    await watch.until(() => watch.events.some((e) => e.type === 'DELETED'), 'the claim DELETED');
    expect(watch.events.map((e) => e.type)).toEqual(['MODIFIED', 'DELETED']);
    expect(api.getObject('persistentvolumeclaims', 'default', 'home-a')).toBeUndefined();
    watch.controller.abort();
  });

  it('loads from the kubeconfig text and requires the bearer token when one is set', async () => {
    await using guarded = await startFakeKubeApi({ token: 'sekrit', namespaces: ['warren'] });
    const fromFile = new KubeConfig();
    fromFile.loadFromString(guarded.kubeconfigYaml('warren'));
    expect(fromFile.getContextObject(fromFile.getCurrentContext())?.namespace).toBe('warren');
    const client = fromFile.makeApiClient(CoreV1Api);
    expect((await client.readNamespace({ name: 'warren' })).metadata?.labels).toEqual({
      'kubernetes.io/metadata.name': 'warren',
      'pod-security.kubernetes.io/enforce': 'restricted',
    });
    const anonymous = new KubeConfig();
    anonymous.loadFromOptions({ ...guarded.kubeconfig(), users: [{ name: 'fake' }] });
    // The generated client drops the body of a 401, so only the code shows.
    const denied = await anonymous.makeApiClient(CoreV1Api).listNamespace().catch((error: unknown) => error);
    expect(denied).toBeInstanceOf(ApiException);
    expect((denied as ApiException<unknown>).code).toBe(401);
    const raw = await fetch(`${guarded.url}/api/v1/namespaces`);
    expect(raw.status).toBe(401);
    expect(await raw.json()).toMatchObject({ kind: 'Status', reason: 'Unauthorized', code: 401 });
  });
});

describe('startFakeKubeApi watches', () => {
  let api: FakeKubeApi;
  let kc: KubeConfig;
  let core: CoreV1Api;

  beforeEach(async () => {
    api = await startFakeKubeApi({ bookmarkIntervalMs: 50 });
    kc = new KubeConfig();
    kc.loadFromOptions(api.kubeconfig());
    core = kc.makeApiClient(CoreV1Api);
  });

  afterEach(async () => {
    await api.close();
  });

  it('sees ADDED, MODIFIED and DELETED in order and resumes from a resourceVersion', async () => {
    const start = String(api.resourceVersion());
    const watch = await watchEvents(kc, '/api/v1/namespaces/default/pods', { resourceVersion: start });
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a') });
    await core.patchNamespacedPod({ namespace: 'default', name: 'agent-a', body: [{ op: 'add', path: '/metadata/labels/step', value: '1' }] });
    await core.deleteNamespacedPod({ namespace: 'default', name: 'agent-a' });
    await watch.until(() => watch.events.length >= 3, 'three events');
    expect(watch.events.map((e) => [e.type, e.object.metadata?.name])).toEqual([
      ['ADDED', 'agent-a'],
      ['MODIFIED', 'agent-a'],
      ['DELETED', 'agent-a'],
    ]);
    const versions = watch.events.map((e) => Number(e.object.metadata?.resourceVersion));
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    expect(new Set(versions).size).toBe(3);
    watch.controller.abort();

    // Resuming after the first event replays the rest, in order.
    const resumed = await watchEvents(kc, '/api/v1/namespaces/default/pods', { resourceVersion: String(versions[0]) });
    await resumed.until(() => resumed.events.length >= 2, 'the two later events');
    expect(resumed.events.map((e) => e.type)).toEqual(['MODIFIED', 'DELETED']);
    expect(resumed.events[0]?.object.metadata?.labels).toEqual({ step: '1' });
    resumed.controller.abort();
  });

  it('starts a watch without a resourceVersion with ADDED for what exists, filtered by labelSelector', async () => {
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a', { app: 'warren' }) });
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('other', { app: 'else' }) });
    const watch = await watchEvents(kc, '/api/v1/namespaces/default/pods', { labelSelector: 'app=warren', allowWatchBookmarks: true });
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-b', { app: 'warren' }) });
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('other-2', { app: 'else' }) });
    await watch.until(() => watch.events.some((e) => e.type === 'BOOKMARK') && watch.events.filter((e) => e.type === 'ADDED').length >= 2, 'two ADDED and a BOOKMARK');
    expect(watch.events.filter((e) => e.type === 'ADDED').map((e) => e.object.metadata?.name)).toEqual(['agent-a', 'agent-b']);
    const bookmark = watch.events.find((e) => e.type === 'BOOKMARK');
    expect(bookmark?.object).toMatchObject({ kind: 'Pod', apiVersion: 'v1' });
    expect(Number(bookmark?.object.metadata?.resourceVersion)).toBeGreaterThan(0);
    watch.controller.abort();
  });

  it('answers a watch from a compacted resourceVersion with an ERROR event carrying 410 Expired, then ends it', async () => {
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a') });
    const old = api.resourceVersion() - 1;
    api.compact();
    const watch = await watchEvents(kc, '/api/v1/namespaces/default/pods', { resourceVersion: String(old) });
    await watch.until(() => watch.done(), 'the watch to end');
    expect(watch.events).toHaveLength(1);
    expect(watch.events[0]?.type).toBe('ERROR');
    expect(watch.events[0]?.object).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 });
  });

  it('ends a watch after timeoutSeconds', async () => {
    const watch = await watchEvents(kc, '/api/v1/namespaces/default/pods', { timeoutSeconds: 1 });
    await watch.until(() => watch.done(), 'the watch to end');
    expect(watch.doneError()).toBeNull();
  });

  it('reports the kubelet helpers as MODIFIED events: running, OOMKilled, evicted, finished', async () => {
    for (const name of ['oom', 'evicted', 'done', 'crashing']) {
      const body = restrictedPod(name);
      if (name === 'crashing' && body.spec !== undefined) body.spec.restartPolicy = 'Always';
      await core.createNamespacedPod({ namespace: 'default', body });
    }
    const watch = await watchEvents(kc, '/api/v1/namespaces/default/pods', { resourceVersion: String(api.resourceVersion()) });
    api.runPod('default', 'oom');
    api.oomKillPod('default', 'oom');
    api.runPod('default', 'evicted');
    api.evictPod('default', 'evicted');
    api.runPod('default', 'done');
    api.finishPod('default', 'done', { exitCode: 0 });
    api.runPod('default', 'crashing');
    api.finishPod('default', 'crashing', { exitCode: 2 });
    await watch.until(() => watch.events.length >= 8, 'eight MODIFIED events');
    expect(watch.events.every((e) => e.type === 'MODIFIED')).toBe(true);
    const status = (i: number): Record<string, unknown> => watch.events[i]?.object.status ?? {};
    expect(status(0)).toMatchObject({ phase: 'Running', containerStatuses: [{ name: 'runner', ready: true, state: { running: {} } }] });
    expect(watch.events[0]?.object).toMatchObject({ spec: { nodeName: 'fake-node' } });
    expect(status(1)).toMatchObject({ phase: 'Failed', containerStatuses: [{ state: { terminated: { exitCode: 137, reason: 'OOMKilled' } } }] });
    expect(status(3)).toMatchObject({ phase: 'Failed', reason: 'Evicted', conditions: expect.arrayContaining([expect.objectContaining({ type: 'DisruptionTarget', status: 'True' })]) });
    expect(status(5)).toMatchObject({ phase: 'Succeeded', containerStatuses: [{ state: { terminated: { exitCode: 0, reason: 'Completed' } } }] });
    expect(status(7)).toMatchObject({
      phase: 'Running',
      containerStatuses: [{ restartCount: 1, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 2, reason: 'Error' } } }],
    });
    const read = await core.readNamespacedPod({ namespace: 'default', name: 'oom' });
    expect(read.status?.containerStatuses?.[0]?.state?.terminated?.reason).toBe('OOMKilled');
    expect(() => api.runPod('default', 'ghost')).toThrow('pods "ghost" not found in namespace "default"');
    watch.controller.abort();
  });

  it('runs the client informer: list, then watch, through adds, updates and deletes', async () => {
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a', { app: 'warren' }) });
    const informer = makeInformer(kc, '/api/v1/namespaces/default/pods', () => core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=warren' }), 'app=warren');
    const seen: string[] = [];
    informer.on('add', (pod) => seen.push(`add ${pod.metadata?.name ?? ''}`));
    informer.on('update', (pod) => seen.push(`update ${pod.metadata?.name ?? ''} ${String(pod.status?.phase)}`));
    informer.on('delete', (pod) => seen.push(`delete ${pod.metadata?.name ?? ''}`));
    await informer.start();
    try {
      const until = async (entry: string): Promise<void> => {
        const deadline = Date.now() + 10_000;
        while (!seen.includes(entry)) {
          if (Date.now() > deadline) throw new Error(`informer never saw ${entry}; saw ${JSON.stringify(seen)}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      };
      await until('add agent-a');
      await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-b', { app: 'warren' }) });
      await until('add agent-b');
      api.runPod('default', 'agent-b');
      await until('update agent-b Running');
      await core.deleteNamespacedPod({ namespace: 'default', name: 'agent-a' });
      await until('delete agent-a');
      expect(informer.list('default').map((pod) => pod.metadata?.name)).toEqual(['agent-b']);
    } finally {
      await informer.stop();
    }
  });

  it('close() ends open watches', async () => {
    const watch = await watchEvents(kc, '/api/v1/namespaces/default/pods');
    const cluster = await watchEvents(kc, '/api/v1/pods', { resourceVersion: String(api.resourceVersion()) });
    await api.close();
    await watch.until(() => watch.done() && cluster.done(), 'both watches to end');
    expect(api.close()).toBe(api.close());
  });
});

describe('startFakeKubeApi beyond the typed clients', () => {
  it('serves the generic KubernetesObjectApi: discovery, create, server-side apply, read, delete', async () => {
    await using api = await startFakeKubeApi({ namespaces: ['warren'] });
    const kc = new KubeConfig();
    kc.loadFromOptions(api.kubeconfig('warren'));
    const objects = KubernetesObjectApi.makeApiClient(kc);
    const policy: V1NetworkPolicy = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'agent-a', namespace: 'warren' },
      spec: { podSelector: { matchLabels: { agent: 'a' } }, policyTypes: ['Egress'] },
    };
    await objects.create(policy);
    const applied = await objects.patch(
      { ...policy, metadata: { ...policy.metadata, labels: { app: 'warren' } } },
      undefined,
      undefined,
      'warren',
      true,
      PatchStrategy.ServerSideApply,
    );
    expect(applied.metadata?.labels).toEqual({ app: 'warren' });
    // KubernetesObjectApi patches with a strategic merge patch by default.
    const strategic = await objects.patch({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'agent-a', namespace: 'warren', labels: { tier: 'agents' } },
    });
    expect(strategic.metadata?.labels).toEqual({ app: 'warren', tier: 'agents' });
    expect(api.requests.at(-1)?.contentType).toBe('application/strategic-merge-patch+json');
    const pod = { ...restrictedPod('agent-a'), metadata: { name: 'agent-a', namespace: 'warren' } };
    const created = await objects.patch(pod, undefined, undefined, 'warren', true, PatchStrategy.ServerSideApply);
    expect(created.metadata?.uid).toBeDefined();
    const read = await objects.read<V1Pod>({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'agent-a', namespace: 'warren' } });
    expect(read.status?.phase).toBe('Pending');
    await objects.delete({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'agent-a', namespace: 'warren' } });
    expect(api.listObjects('networkpolicies')).toEqual([]);
    expect(api.requests.map((r) => r.url)).toContain('/apis/networking.k8s.io/v1');
  });

  it('runs onPodCreated after ADDED and onPodDeleting before the pod is removed, keeping hook errors', async () => {
    const calls: string[] = [];
    let release: () => void = () => undefined;
    const stopped = new Promise<void>((resolve) => {
      release = resolve;
    });
    await using api = await startFakeKubeApi({
      onPodCreated: (pod, fake) => {
        calls.push(`created ${pod.metadata?.name ?? ''}`);
        if (pod.metadata?.name === 'broken') throw new Error('no sandbox');
        fake.runPod(pod.metadata?.namespace ?? '', pod.metadata?.name ?? '');
      },
      onPodDeleting: async (pod) => {
        calls.push(`deleting ${pod.metadata?.name ?? ''} ${pod.metadata?.deletionTimestamp === undefined ? 'no' : 'with'} deletionTimestamp`);
        await stopped;
      },
    });
    const kc = new KubeConfig();
    kc.loadFromOptions(api.kubeconfig());
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a') });
    const deadline = Date.now() + 10_000;
    while (api.getObject('pods', 'default', 'agent-a')?.status?.['phase'] !== 'Running') {
      if (Date.now() > deadline) throw new Error('the hook never ran the pod');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await core.deleteNamespacedPod({ namespace: 'default', name: 'agent-a' });
    while (!calls.some((c) => c.startsWith('deleting'))) {
      if (Date.now() > deadline) throw new Error('onPodDeleting never ran');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(api.getObject('pods', 'default', 'agent-a')?.metadata?.deletionTimestamp).toBeDefined();
    release();
    while (api.getObject('pods', 'default', 'agent-a') !== undefined) {
      if (Date.now() > deadline) throw new Error('the pod was never removed');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('broken') });
    while (api.hookErrors.length === 0) {
      if (Date.now() > deadline) throw new Error('the hook error was never kept');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(calls).toEqual(['created agent-a', 'deleting agent-a with deletionTimestamp', 'created broken']);
    expect(String(api.hookErrors[0])).toBe('Error: no sandbox');
  });

  it('updates status through the status subresource only, pages lists, deletes collections and honours dryRun', async () => {
    await using api = await startFakeKubeApi();
    const kc = new KubeConfig();
    kc.loadFromOptions(api.kubeconfig());
    const core = kc.makeApiClient(CoreV1Api);
    for (const name of ['a', 'b', 'c']) await core.createNamespacedPod({ namespace: 'default', body: restrictedPod(name, { app: 'warren' }) });

    const pod = await core.readNamespacedPod({ namespace: 'default', name: 'a' });
    const ignored = await core.replaceNamespacedPod({ namespace: 'default', name: 'a', body: { ...pod, status: { phase: 'Running' } } });
    expect(ignored.status?.phase).toBe('Pending');
    const viaStatus = await core.replaceNamespacedPodStatus({ namespace: 'default', name: 'a', body: { ...pod, status: { phase: 'Running' } } });
    expect(viaStatus.status?.phase).toBe('Running');

    const first = await core.listNamespacedPod({ namespace: 'default', limit: 2 });
    expect(first.items.map((p) => p.metadata?.name)).toEqual(['a', 'b']);
    expect(first.metadata?.remainingItemCount).toBe(1);
    const rest = await core.listNamespacedPod({ namespace: 'default', limit: 2, _continue: first.metadata?._continue });
    expect(rest.items.map((p) => p.metadata?.name)).toEqual(['c']);
    expect(rest.metadata?._continue).toBeUndefined();

    const dry = await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('d'), dryRun: 'All' });
    expect(dry.metadata?.name).toBe('d');
    expect(api.getObject('pods', 'default', 'd')).toBeUndefined();

    await core.deleteCollectionNamespacedPod({ namespace: 'default', labelSelector: 'app=warren', fieldSelector: 'metadata.name!=c' });
    expect(api.listObjects('pods').map((p: KubeObject) => p.metadata?.name)).toEqual(['c']);
  });
});

describe('startFakeKubeApi metrics API', () => {
  it('serves pod usage through the client Metrics class only when metricsServer is set', async () => {
    await using api = await startFakeKubeApi({ metricsServer: true });
    const kc = new KubeConfig();
    kc.loadFromOptions(api.kubeconfig());
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a', { agent: 'a' }) });
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-b', { agent: 'b' }) });
    api.runPod('default', 'agent-a');
    api.setPodMetrics('default', 'agent-a', [{ name: 'runner', cpu: '250m', memory: '64Mi' }]);
    const metrics = await new Metrics(kc).getPodMetrics('default');
    expect(metrics.kind).toBe('PodMetricsList');
    expect(metrics.items.map((m) => [m.metadata.name, m.containers])).toEqual([['agent-a', [{ name: 'runner', usage: { cpu: '250m', memory: '64Mi' } }]]]);
    const one = await fetch(`${api.url}/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/agent-b`);
    expect(one.status).toBe(404);
    expect(await one.json()).toMatchObject({ reason: 'NotFound', message: 'pods.metrics.k8s.io "agent-b" not found' });
    expect(() => api.setPodMetrics('default', 'ghost', [])).toThrow('not found');

    await using bare = await startFakeKubeApi();
    const none = await fetch(`${bare.url}/apis/metrics.k8s.io/v1beta1/namespaces/default/pods`);
    expect(none.status).toBe(404);
  });
});

describe('startFakeKubeApi exec', () => {
  /** Runs `Exec.exec` and gathers stdout, stderr and the final status. */
  async function runExec(kc: KubeConfig, pod: string, command: string[], input?: string) {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    stdout.on('data', (chunk: Buffer) => out.push(chunk));
    stderr.on('data', (chunk: Buffer) => err.push(chunk));
    const status = await new Promise<V1Status>((resolve, reject) => {
      new Exec(kc)
        .exec('default', pod, 'runner', command, stdout, stderr, input === undefined ? null : Readable.from([input]), false, resolve)
        .catch(reject);
    });
    return { status, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  }

  it('runs a command in a running pod through onPodExec with stdin, stdout, stderr and the exit code', async () => {
    const seen: string[] = [];
    await using api = await startFakeKubeApi({
      onPodExec: async ({ pod, container, command, stdin, stdout, stderr }) => {
        seen.push(`${pod.metadata?.name ?? ''}/${container}: ${command.join(' ')}`);
        let input = '';
        if (stdin !== undefined) for await (const chunk of stdin) input += String(chunk);
        stdout?.write(`ran ${command.join(' ')}\n`);
        stderr?.write(input.toUpperCase());
        return command.at(-1) === 'fail' ? 3 : 0;
      },
    });
    const kc = new KubeConfig();
    kc.loadFromOptions(api.kubeconfig());
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a') });
    api.runPod('default', 'agent-a');

    const ok = await runExec(kc, 'agent-a', ['sh', '-c', 'ok'], 'hello');
    expect(ok).toEqual({ status: { metadata: {}, status: 'Success' }, stdout: 'ran sh -c ok\n', stderr: 'HELLO' });
    const failed = await runExec(kc, 'agent-a', ['sh', '-c', 'fail']);
    expect(failed.stdout).toBe('ran sh -c fail\n');
    expect(failed.status).toEqual({
      metadata: {},
      status: 'Failure',
      message: 'command terminated with non-zero exit code: error executing command [sh -c fail], exit code 3',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '3' }] },
    });
    expect(seen).toEqual(['agent-a/runner: sh -c ok', 'agent-a/runner: sh -c fail']);
  });

  it('refuses exec into a missing or pending pod and reports a missing handler as a Failure status', async () => {
    await using api = await startFakeKubeApi();
    const kc = new KubeConfig();
    kc.loadFromOptions(api.kubeconfig());
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedPod({ namespace: 'default', body: restrictedPod('agent-a') });
    await expect(runExec(kc, 'agent-a', ['true'])).rejects.toThrow('Unexpected server response: 400');
    await expect(runExec(kc, 'ghost', ['true'])).rejects.toThrow('Unexpected server response: 404');
    api.runPod('default', 'agent-a');
    const unhandled = await runExec(kc, 'agent-a', ['true']);
    expect(unhandled.status).toMatchObject({ status: 'Failure', reason: 'InternalError' });
    expect(api.requests.filter((r) => r.url.includes('/exec?')).map((r) => r.status)).toEqual([400, 404, 101]);
  });
});

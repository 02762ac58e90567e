/**
 * Pod defaults and admission in the fake Kubernetes API server: the fields the API server defaults
 * on a pod, its QoS class, the ServiceAccount admission plugin and the Pod Security level a
 * namespace enforces.
 */
import { isRecord, NAMESPACES, PODS, record, SERVICE_ACCOUNTS, StatusError, type FakeKubeContext } from './context.js';
import { PodSecurityLevel } from './pod-security.js';
import { forbiddenStatus } from './status.js';
import { randomSuffix } from './store.js';
import type { KubeObject } from './types.js';

/** The namespace label that sets the Pod Security level enforced (https://kubernetes.io/docs/concepts/security/pod-security-admission/). */
export const ENFORCE_LABEL = 'pod-security.kubernetes.io/enforce';
const ENFORCE_VERSION_LABEL = 'pod-security.kubernetes.io/enforce-version';
const TOKEN_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The image pull policy the API server defaults: `Always` for `:latest` or no tag, else `IfNotPresent`. */
function defaultPullPolicy(image: unknown): string {
  if (typeof image !== 'string') return 'IfNotPresent';
  const name = image.split('@')[0] ?? image;
  const lastSegment = name.slice(name.lastIndexOf('/') + 1);
  if (image.includes('@')) return 'IfNotPresent';
  return !lastSegment.includes(':') || lastSegment.endsWith(':latest') ? 'Always' : 'IfNotPresent';
}

/** Fills the fields the API server defaults on a pod (pkg/apis/core/v1 `SetDefaults_Pod`, `SetDefaults_PodSpec`, `SetDefaults_Container`). */
export function defaultPod(pod: KubeObject): void {
  const spec = (pod.spec = record(pod.spec));
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.schedulerName ??= 'default-scheduler';
  spec.securityContext ??= {};
  spec.serviceAccountName ??= spec.serviceAccount ?? 'default';
  spec.serviceAccount = spec.serviceAccountName;
  spec.enableServiceLinks ??= true;
  spec.priority ??= 0;
  spec.preemptionPolicy ??= 'PreemptLowerPriority';
  for (const listName of ['initContainers', 'containers'] as const) {
    const containers = spec[listName];
    if (!Array.isArray(containers)) continue;
    for (const container of containers) {
      if (!isRecord(container)) continue;
      container.terminationMessagePath ??= '/dev/termination-log';
      container.terminationMessagePolicy ??= 'File';
      container.imagePullPolicy ??= defaultPullPolicy(container.image);
      const resources = (container.resources = record(container.resources));
      if (isRecord(resources.limits)) resources.requests = { ...resources.limits, ...record(resources.requests) };
    }
  }
}

/** The pod's QoS class (https://kubernetes.io/docs/concepts/workloads/pods/pod-qos/). */
export function qosClass(pod: KubeObject): 'Guaranteed' | 'Burstable' | 'BestEffort' {
  const containers = [...(Array.isArray(record(pod.spec).containers) ? (record(pod.spec).containers as unknown[]) : [])].map(record);
  let any = false;
  let guaranteed = containers.length > 0;
  for (const container of containers) {
    const resources = record(container.resources);
    const requests = record(resources.requests);
    const limits = record(resources.limits);
    if (Object.keys(requests).length > 0 || Object.keys(limits).length > 0) any = true;
    for (const name of ['cpu', 'memory']) {
      if (limits[name] === undefined || requests[name] !== limits[name]) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

function parseLevel(value: unknown, fallback: PodSecurityLevel): PodSecurityLevel {
  if (value === undefined) return fallback;
  return value === 'privileged' || value === 'baseline' || value === 'restricted' ? value : PodSecurityLevel.restricted;
}

/** The Pod Security level a namespace enforces (its `pod-security.kubernetes.io/enforce` label, else the server's default) and the version it names. */
export function levelOf(ctx: FakeKubeContext, namespace: string): { level: PodSecurityLevel; version: string } {
  const labels = ctx.store.get(NAMESPACES, '', namespace)?.metadata?.labels ?? {};
  return { level: parseLevel(labels[ENFORCE_LABEL], ctx.defaultLevel), version: labels[ENFORCE_VERSION_LABEL] ?? 'latest' };
}

/**
 * The ServiceAccount admission plugin: the account must exist; its token is mounted unless automount is off.
 * @throws {StatusError} 403 Forbidden when the pod's service account does not exist.
 */
export function admitServiceAccount(ctx: FakeKubeContext, pod: KubeObject, namespace: string, name: string): void {
  const spec = record(pod.spec);
  const accountName = String(spec.serviceAccountName);
  const account = ctx.store.get(SERVICE_ACCOUNTS, namespace, accountName);
  if (account === undefined) {
    throw new StatusError(forbiddenStatus(PODS, name, `error looking up service account ${namespace}/${accountName}: serviceaccount "${accountName}" not found`));
  }
  const automount = spec.automountServiceAccountToken ?? account.automountServiceAccountToken ?? true;
  if (automount === false) return;
  const volumes = Array.isArray(spec.volumes) ? (spec.volumes as unknown[]) : [];
  if (volumes.some((v) => String(record(v).name).startsWith('kube-api-access-'))) return;
  const volumeName = `kube-api-access-${randomSuffix()}`;
  spec.volumes = [
    ...volumes,
    {
      name: volumeName,
      projected: {
        defaultMode: 420,
        sources: [
          { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
        ],
      },
    },
  ];
  for (const listName of ['initContainers', 'containers'] as const) {
    const containers = spec[listName];
    if (!Array.isArray(containers)) continue;
    for (const container of containers) {
      if (!isRecord(container)) continue;
      const mounts = Array.isArray(container.volumeMounts) ? (container.volumeMounts as unknown[]) : [];
      container.volumeMounts = [...mounts, { name: volumeName, readOnly: true, mountPath: TOKEN_MOUNT_PATH }];
    }
  }
}

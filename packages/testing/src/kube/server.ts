/**
 * The fake Kubernetes API server: an HTTP server on 127.0.0.1 that answers the REST paths, query
 * parameters, PATCH content types and watch streams `@kubernetes/client-node` 1.4 uses, over an
 * in-memory store with Kubernetes' resource versions, `Status` errors and Pod Security admission.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { execEndpoint } from './exec.js';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, PatchError } from './patch.js';
import { checkPodSecurity, podSecurityMessage, PodSecurityLevel } from './pod-security.js';
import { apiGroupList, apiResourceList, findResourceType, RESOURCE_TYPES, type ResourceType } from './resources.js';
import { parseFieldSelector, parseLabelSelector, SelectorSyntaxError } from './selectors.js';
import {
  alreadyExistsStatus,
  badRequestStatus,
  conflictStatus,
  expiredStatus,
  forbiddenStatus,
  invalidStatus,
  methodNotAllowedStatus,
  notFoundStatus,
  pathNotFoundStatus,
  preconditionStatus,
  successStatus,
  tooLargeStatus,
  unauthorizedStatus,
  unprocessableStatus,
  unsupportedMediaTypeStatus,
  type KubeStatus,
} from './status.js';
import { KubeStore, nowTimestamp, randomSuffix, type StoredEvent, type StoreWatcher, type WatchEventType } from './store.js';
import type {
  FakeContainerStatus,
  FakeKubeApi,
  FakeKubeConfig,
  FakeKubeRequest,
  FakeKubeResource,
  FakePodExit,
  FakePodStatusUpdate,
  KubeObject,
  StartFakeKubeApiOptions,
} from './types.js';
import { validateObject, validateUpdate } from './validation.js';

type Json = Record<string, unknown>;

/** The API server's default request body limit, 3 MiB (apiserver `MaxRequestBodyBytes`). */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
const ENFORCE_LABEL = 'pod-security.kubernetes.io/enforce';
const ENFORCE_VERSION_LABEL = 'pod-security.kubernetes.io/enforce-version';
const TOKEN_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
/** The finalizer that keeps a PVC while a pod uses it (https://kubernetes.io/docs/concepts/storage/persistent-volumes/#storage-object-in-use-protection). */
const PVC_PROTECTION = 'kubernetes.io/pvc-protection';
/** Server-side apply's content type; its body must be JSON here (JSON is YAML), as client-node sends it. */
const APPLY_PATCH = 'application/apply-patch+yaml';
/** The resource metrics API metrics-server serves (https://github.com/kubernetes/metrics). */
const METRICS_GROUP = 'metrics.k8s.io';
const METRICS_VERSION = 'v1beta1';

/** A failure answered as a Kubernetes `Status`. */
class StatusError extends Error {
  constructor(readonly status: KubeStatus) {
    super(status.message ?? status.reason ?? `status ${status.code}`);
    this.name = 'StatusError';
  }
}

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function record(value: unknown): Json {
  return isRecord(value) ? value : {};
}

function sameJson(a: unknown, b: unknown): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, i) => sameJson(item, b[i]));
  if (isRecord(a)) {
    if (!isRecord(b)) return false;
    const keys = Object.keys(a).filter((k) => a[k] !== undefined);
    return keys.length === Object.keys(b).filter((k) => b[k] !== undefined).length && keys.every((k) => sameJson(a[k], b[k]));
  }
  return a === b;
}

/** A parsed request path. */
type Route =
  | { kind: 'document'; body: unknown }
  | { kind: 'podMetrics'; namespace: string; name: string | undefined }
  | { kind: 'collection'; type: ResourceType; namespace: string }
  | { kind: 'object'; type: ResourceType; namespace: string; name: string; sub: string | undefined };

/** Options of a DELETE, from the query and a `DeleteOptions` body. */
interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy: 'Orphan' | 'Background' | 'Foreground';
  dryRun: boolean;
  preconditions?: { uid?: string; resourceVersion?: string };
}

/** The image pull policy the API server defaults: `Always` for `:latest` or no tag, else `IfNotPresent`. */
function defaultPullPolicy(image: unknown): string {
  if (typeof image !== 'string') return 'IfNotPresent';
  const name = image.split('@')[0] ?? image;
  const lastSegment = name.slice(name.lastIndexOf('/') + 1);
  if (image.includes('@')) return 'IfNotPresent';
  return !lastSegment.includes(':') || lastSegment.endsWith(':latest') ? 'Always' : 'IfNotPresent';
}

/** Fills the fields the API server defaults on a pod (pkg/apis/core/v1 `SetDefaults_Pod`, `SetDefaults_PodSpec`, `SetDefaults_Container`). */
function defaultPod(pod: KubeObject): void {
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
function qosClass(pod: KubeObject): 'Guaranteed' | 'Burstable' | 'BestEffort' {
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

/**
 * Starts a fake Kubernetes API server on 127.0.0.1 and a free port, for tests of code that drives a
 * cluster through `@kubernetes/client-node` 1.4 where no real API server can run. It serves:
 * - core/v1 `namespaces`, `pods` (with `status` and `log`), `persistentvolumeclaims` (with `status`),
 *   `secrets`, `serviceaccounts`, `configmaps`, `events`, and networking.k8s.io/v1 `networkpolicies`,
 *   at their real paths (`/api/v1/namespaces/{ns}/pods/{name}`, `/apis/networking.k8s.io/v1/…`),
 *   plus discovery (`/api`, `/api/v1`, `/apis`, `/apis/{group}/{version}`), `/version`, `/healthz`,
 *   `pods/{name}/exec` over WebSocket (run by `onPodExec`), and with `metricsServer: true` the
 *   resource metrics API (`metrics.k8s.io/v1beta1` `pods`, from `setPodMetrics`);
 * - GET, list (`labelSelector` equality- and set-based, `fieldSelector` on `metadata.name`,
 *   `metadata.namespace` and the kind's selectable fields, `limit`/`continue`), POST (with
 *   `generateName`, `dryRun=All`), PUT (409 Conflict on a stale `metadata.resourceVersion`), PATCH
 *   (`application/json-patch+json` per RFC 6902, the client's default; `application/merge-patch+json`
 *   per RFC 7386; `application/strategic-merge-patch+json` with the merge keys of the served types;
 *   server-side apply, `application/apply-patch+yaml` with a JSON body,
 *   creates a missing object and otherwise merges like a merge patch, without field managers), DELETE (`gracePeriodSeconds`, `propagationPolicy` over
 *   `ownerReferences`, `preconditions`) and DELETE on a collection;
 * - watches (`?watch=true`): chunked newline-delimited JSON `{"type":…,"object":…}` events, from
 *   `resourceVersion` (older than the kept history: an `ERROR` event carrying a 410 Expired `Status`,
 *   then the stream ends, as the API server does), from now with synthetic ADDED events when none is
 *   given, `BOOKMARK`s with `allowWatchBookmarks`, `sendInitialEvents`, `timeoutSeconds`.
 *
 * Writes follow the API server: one global resource version counter; `uid`, `creationTimestamp`,
 * `generation`; defaults on pods (restart policy, service account, pull policy, QoS class); the
 * ServiceAccount admission (a pod's service account must exist; every namespace gets `default`; the
 * token volume is mounted unless `automountServiceAccountToken: false`); validation answered with 422
 * Invalid and `details.causes`; Pod Security admission from the namespace label
 * `pod-security.kubernetes.io/enforce` (else `options.podSecurityLevel`) answered with 403 Forbidden
 * `pods "x" is forbidden: violates PodSecurity "restricted:latest": …`. Pods stay `Pending` until the
 * test plays the kubelet with `setPodPhase`, `runPod`, `finishPod`, `oomKillPod`, `evictPod`; PVCs
 * are bound at once (immediate binding).
 *
 * ```ts
 * await using api = await startFakeKubeApi();
 * const kc = new KubeConfig();
 * kc.loadFromOptions(api.kubeconfig());
 * const core = kc.makeApiClient(CoreV1Api);
 * await core.createNamespacedPod({ namespace: 'default', body: pod });
 * api.oomKillPod('default', pod.metadata.name);
 * ```
 * @throws {Error} if it cannot listen (`EADDRINUSE` for a `port` in use).
 */
export async function startFakeKubeApi(options: StartFakeKubeApiOptions = {}): Promise<FakeKubeApi> {
  const defaultLevel = options.podSecurityLevel ?? PodSecurityLevel.restricted;
  const bookmarkIntervalMs = options.bookmarkIntervalMs ?? 60_000;
  const nodeName = options.nodeName ?? 'fake-node';
  const store = new KubeStore(Math.max(1, options.historyLimit ?? 1000));
  const requests: FakeKubeRequest[] = [];
  const hookErrors: unknown[] = [];
  const podLogs = new Map<string, string>();
  /** Container usage per `ns/name`, served by the metrics API when `options.metricsServer` is set. */
  const podMetrics = new Map<string, { at: string; containers: { name: string; usage: { cpu: string; memory: string } }[] }>();
  const openWatches = new Set<() => void>();
  const sockets = new Set<Socket>();
  let closing: Promise<void> | undefined;

  const typeOf = (plural: FakeKubeResource): ResourceType => {
    const type = RESOURCE_TYPES.find((t) => t.plural === plural);
    if (type === undefined) throw new TypeError(`fake kube API: unknown resource ${JSON.stringify(plural)}`);
    return type;
  };
  const NAMESPACES = typeOf('namespaces');
  const PODS = typeOf('pods');
  const SERVICE_ACCOUNTS = typeOf('serviceaccounts');
  const PVCS = typeOf('persistentvolumeclaims');

  const runHook = (hook: StartFakeKubeApiOptions['onPodCreated'], pod: KubeObject, then?: () => void): void => {
    const copy = structuredClone(pod);
    const run = async (): Promise<void> => {
      // After the request that caused it has been answered, as the kubelet acts after the write.
      await new Promise<void>((resolve) => setImmediate(resolve));
      try {
        if (hook !== undefined && closing === undefined) await hook(copy, api);
      } catch (error) {
        hookErrors.push(error);
      }
      if (closing === undefined) then?.();
    };
    // run() never rejects: a hook's failure is kept in hookErrors.
    run().catch(() => undefined);
  };

  // ---- writes ----

  const checkKindAndVersion = (type: ResourceType, object: KubeObject): void => {
    const apiVersion = object.apiVersion ?? type.apiVersion;
    const kind = object.kind ?? type.kind;
    if (apiVersion !== type.apiVersion || kind !== type.kind) {
      throw new StatusError(badRequestStatus(`${kind} in version "${apiVersion}" cannot be handled as a ${type.kind}: the object's apiVersion and kind do not match the request path (want ${type.apiVersion} ${type.kind})`));
    }
    object.apiVersion = apiVersion;
    object.kind = kind;
  };

  const levelOf = (namespace: string): { level: PodSecurityLevel; version: string } => {
    const labels = store.get(NAMESPACES, '', namespace)?.metadata?.labels ?? {};
    return { level: parseLevel(labels[ENFORCE_LABEL], defaultLevel), version: labels[ENFORCE_VERSION_LABEL] ?? 'latest' };
  };

  /** The ServiceAccount admission plugin: the account must exist; its token is mounted unless automount is off. */
  const admitServiceAccount = (pod: KubeObject, namespace: string, name: string): void => {
    const spec = record(pod.spec);
    const accountName = String(spec.serviceAccountName);
    const account = store.get(SERVICE_ACCOUNTS, namespace, accountName);
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
  };

  /**
   * Creates an object as `POST` does: defaults, mutating admission, validation, validating
   * admission, then the name check.
   * @throws {StatusError} with the answer for a request that fails.
   */
  const createObject = (type: ResourceType, namespace: string, body: unknown, dryRun: boolean): KubeObject => {
    if (!isRecord(body)) throw new StatusError(badRequestStatus(`the body of the request must be a JSON object`));
    const object = structuredClone(body) as KubeObject;
    checkKindAndVersion(type, object);
    const metadata = (object.metadata = record(object.metadata));
    if (metadata.resourceVersion !== undefined && metadata.resourceVersion !== '') {
      throw new StatusError(badRequestStatus('resourceVersion should not be set on objects to be created'));
    }
    if (type.namespaced) {
      if (metadata.namespace !== undefined && metadata.namespace !== '' && metadata.namespace !== namespace) {
        throw new StatusError(badRequestStatus('the namespace of the provided object does not match the namespace sent on the request'));
      }
      metadata.namespace = namespace;
    } else {
      delete metadata.namespace;
    }
    for (const field of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'resourceVersion']) delete metadata[field];
    if ((typeof metadata.name !== 'string' || metadata.name === '') && typeof metadata.generateName === 'string' && metadata.generateName !== '') {
      metadata.name = `${metadata.generateName}${randomSuffix()}`;
    }
    const name = typeof metadata.name === 'string' ? metadata.name : '';
    if (type.namespaced && store.get(NAMESPACES, '', namespace) === undefined) {
      throw new StatusError(notFoundStatus(NAMESPACES, namespace));
    }
    switch (type.plural) {
      case 'namespaces':
        metadata.labels = { ...record(metadata.labels), 'kubernetes.io/metadata.name': name };
        object.spec = { finalizers: ['kubernetes'], ...record(object.spec) };
        object.status = { phase: 'Active' };
        break;
      case 'pods':
        defaultPod(object);
        object.status = { phase: 'Pending', qosClass: qosClass(object) };
        break;
      case 'persistentvolumeclaims': {
        object.spec = { volumeMode: 'Filesystem', ...record(object.spec) };
        object.status = { phase: 'Pending' };
        const finalizers = Array.isArray(metadata.finalizers) ? (metadata.finalizers as unknown[]) : [];
        if (!finalizers.includes(PVC_PROTECTION)) metadata.finalizers = [...finalizers, PVC_PROTECTION];
        break;
      }
      case 'secrets': {
        object.type ??= 'Opaque';
        const stringData = object.stringData;
        if (isRecord(stringData)) {
          const data = record(object.data);
          for (const [key, value] of Object.entries(stringData)) data[key] = Buffer.from(String(value)).toString('base64');
          object.data = data;
          delete object.stringData;
        }
        break;
      }
      default:
        break;
    }
    if (type === PODS && name !== '') admitServiceAccount(object, namespace, name);
    const causes = validateObject(type, object);
    if (causes.length > 0) throw new StatusError(invalidStatus(type.kind, type.group, name, causes));
    if (type === PODS) {
      const { level, version } = levelOf(namespace);
      const violations = checkPodSecurity(object, level);
      if (violations.length > 0) throw new StatusError(forbiddenStatus(PODS, name, podSecurityMessage(level, violations, version)));
    }
    if (store.get(type, namespace, name) !== undefined) throw new StatusError(alreadyExistsStatus(type, name));
    if (dryRun) return object;
    const stored = store.create(type, object);
    if (type === NAMESPACES) {
      createObject(SERVICE_ACCOUNTS, name, { metadata: { name: 'default' } }, false);
    } else if (type.plural === 'persistentvolumeclaims') {
      const spec = record(stored.spec);
      const bound = structuredClone(stored);
      bound.spec = { ...spec, volumeName: `pvc-${stored.metadata?.uid ?? ''}` };
      bound.status = { phase: 'Bound', accessModes: spec.accessModes, capacity: { storage: record(record(spec.resources).requests).storage } };
      return store.update(type, bound, false);
    } else if (type === PODS) {
      runHook(options.onPodCreated, stored);
    }
    return stored;
  };

  /**
   * Replaces an object (`sub` `status`: only its status) as `PUT` does.
   * @throws {StatusError} 404, 400 for a name or namespace that differs from the path, 409 on a
   *   stale `resourceVersion`, 422 for invalid fields.
   */
  const updateObject = (type: ResourceType, namespace: string, name: string, body: unknown, sub: string | undefined, dryRun: boolean): KubeObject => {
    const stored = store.get(type, namespace, name);
    if (stored === undefined) throw new StatusError(notFoundStatus(type, name));
    if (!isRecord(body)) throw new StatusError(badRequestStatus('the body of the request must be a JSON object'));
    const incoming = structuredClone(body) as KubeObject;
    checkKindAndVersion(type, incoming);
    const metadata = (incoming.metadata = record(incoming.metadata));
    if (metadata.name !== undefined && metadata.name !== name) {
      throw new StatusError(badRequestStatus(`the name of the object (${typeof metadata.name === 'string' ? metadata.name : JSON.stringify(metadata.name)}) does not match the name on the URL (${name})`));
    }
    if (type.namespaced && metadata.namespace !== undefined && metadata.namespace !== '' && metadata.namespace !== namespace) {
      throw new StatusError(badRequestStatus('the namespace of the provided object does not match the namespace sent on the request'));
    }
    if (metadata.resourceVersion !== undefined && metadata.resourceVersion !== '' && metadata.resourceVersion !== stored.metadata?.resourceVersion) {
      throw new StatusError(conflictStatus(type, name));
    }
    let next: KubeObject;
    if (sub === 'status') {
      next = structuredClone(stored);
      next.status = incoming.status;
    } else {
      next = incoming;
      const kept = stored.metadata ?? {};
      next.metadata = {
        ...metadata,
        name,
        ...(type.namespaced ? { namespace } : {}),
        uid: kept.uid,
        creationTimestamp: kept.creationTimestamp,
        resourceVersion: kept.resourceVersion,
        ...(kept.generation === undefined ? {} : { generation: kept.generation }),
        ...(kept.deletionTimestamp === undefined ? {} : { deletionTimestamp: kept.deletionTimestamp, deletionGracePeriodSeconds: kept.deletionGracePeriodSeconds }),
      };
      if (type.hasStatus) next.status = structuredClone(stored.status);
      if (type === PODS) defaultPod(next);
      if (type === NAMESPACES) {
        next.metadata.labels = { ...record(next.metadata.labels), 'kubernetes.io/metadata.name': name };
      }
    }
    const causes = [...validateObject(type, next), ...(sub === 'status' ? [] : validateUpdate(type, stored, next))];
    if (causes.length > 0) throw new StatusError(invalidStatus(type.kind, type.group, name, causes));
    if (sameJson(next, stored) || dryRun) return dryRun ? next : stored;
    return store.update(type, next, !sameJson(stored.spec, next.spec));
  };

  /** Applies a PATCH body by its content type, then updates as `PUT` would. */
  const patchObject = (type: ResourceType, namespace: string, name: string, body: unknown, contentType: string, sub: string | undefined, dryRun: boolean): KubeObject => {
    const stored = store.get(type, namespace, name);
    if (stored === undefined) throw new StatusError(notFoundStatus(type, name));
    const current = structuredClone(stored);
    let patched: unknown;
    try {
      if (contentType === 'application/json-patch+json') patched = applyJsonPatch(current, body);
      else if (contentType === 'application/merge-patch+json' || contentType === APPLY_PATCH) {
        if (!isRecord(body)) throw new StatusError(badRequestStatus('a merge patch must be a JSON object'));
        patched = applyMergePatch(current, body);
      } else if (contentType === 'application/strategic-merge-patch+json') {
        if (!isRecord(body)) throw new StatusError(badRequestStatus('a strategic merge patch must be a JSON object'));
        patched = applyStrategicMergePatch(current, body);
      } else throw new StatusError(unsupportedMediaTypeStatus(contentType));
    } catch (error) {
      if (error instanceof PatchError) throw new StatusError(unprocessableStatus(error.message));
      throw error;
    }
    const patchedMeta = record(record(patched).metadata);
    if (patchedMeta.resourceVersion === stored.metadata?.resourceVersion) delete patchedMeta.resourceVersion;
    return updateObject(type, namespace, name, patched, sub, dryRun);
  };

  /** Whether a pod that is not yet removed mounts the claim. */
  const claimInUse = (namespace: string, claim: string): boolean =>
    store.list(PODS, namespace).some((pod) => {
      const volumes = record(pod.spec).volumes;
      return Array.isArray(volumes) && volumes.some((v) => record(record(v).persistentVolumeClaim).claimName === claim);
    });

  /** The PVC protection controller: removes claims being deleted that no pod uses any more. */
  const releaseClaims = (namespace: string): void => {
    for (const claim of store.list(PVCS, namespace)) {
      const name = claim.metadata?.name ?? '';
      if (claim.metadata?.deletionTimestamp !== undefined && !claimInUse(namespace, name)) finalizeDelete(PVCS, namespace, name, 'Background');
    }
  };

  /** Removes an object for good, then deletes or orphans its dependents (the garbage collector). */
  const finalizeDelete = (type: ResourceType, namespace: string, name: string, propagation: DeleteOptions['propagationPolicy']): KubeObject | undefined => {
    if (type === NAMESPACES) {
      for (const [resource, object] of [...store.all()]) {
        if (resource.namespaced && object.metadata?.namespace === name) store.remove(resource, name, object.metadata.name ?? '');
      }
    }
    const removed = store.remove(type, namespace, name);
    if (type === PODS) releaseClaims(namespace);
    const uid = removed?.metadata?.uid;
    if (uid === undefined) return removed;
    for (const [resource, object] of [...store.all()]) {
      const refs = object.metadata?.ownerReferences ?? [];
      if (!refs.some((ref) => ref.uid === uid)) continue;
      const objectNamespace = object.metadata?.namespace ?? '';
      const objectName = object.metadata?.name ?? '';
      // Gone already: deleted earlier in this cascade (shared or cyclic owners).
      if (store.get(resource, objectNamespace, objectName) !== object) continue;
      if (propagation === 'Orphan') {
        const next = structuredClone(object);
        (next.metadata ??= {}).ownerReferences = refs.filter((ref) => ref.uid !== uid);
        store.update(resource, next, false);
      } else {
        deleteObject(resource, objectNamespace, objectName, { propagationPolicy: 'Background', dryRun: false });
      }
    }
    return removed;
  };

  /**
   * Deletes an object as `DELETE` does. A pod bound to a node and not finished is deleted
   * gracefully: its `deletionTimestamp` is set (MODIFIED), `onPodDeleting` runs, then it is removed
   * (DELETED). A PVC a pod still mounts keeps its `kubernetes.io/pvc-protection` finalizer: it gets a
   * `deletionTimestamp` and goes when the last such pod does. Everything else is removed at once.
   * @returns the object (or a Success `Status` for kinds whose API answers so).
   */
  const deleteObject = (type: ResourceType, namespace: string, name: string, deleteOptions: DeleteOptions): KubeObject | KubeStatus => {
    const stored = store.get(type, namespace, name);
    if (stored === undefined) throw new StatusError(notFoundStatus(type, name));
    const pre = deleteOptions.preconditions;
    if (pre?.uid !== undefined && pre.uid !== stored.metadata?.uid) {
      throw new StatusError(preconditionStatus(type, name, 'UID', pre.uid, stored.metadata?.uid ?? ''));
    }
    if (pre?.resourceVersion !== undefined && pre.resourceVersion !== stored.metadata?.resourceVersion) {
      throw new StatusError(preconditionStatus(type, name, 'ResourceVersion', pre.resourceVersion, stored.metadata?.resourceVersion ?? ''));
    }
    const answer = (object: KubeObject): KubeObject | KubeStatus =>
      type.returnsDeletedObject ? structuredClone(object) : successStatus(type, name, object.metadata?.uid);
    if (deleteOptions.dryRun) return answer(stored);
    if (type === PODS) {
      const spec = record(stored.spec);
      const phase = record(stored.status).phase;
      const grace = deleteOptions.gracePeriodSeconds ?? (typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : 30);
      const bound = typeof spec.nodeName === 'string' && spec.nodeName !== '';
      const graceful = bound && grace > 0 && phase !== 'Succeeded' && phase !== 'Failed';
      if (graceful) {
        if (stored.metadata?.deletionTimestamp !== undefined) return answer(stored);
        const next = structuredClone(stored);
        const metadata = (next.metadata ??= {});
        metadata.deletionTimestamp = new Date(Date.now() + grace * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
        metadata.deletionGracePeriodSeconds = grace;
        const terminating = store.update(type, next, false);
        runHook(options.onPodDeleting, terminating, () => {
          if (store.get(type, namespace, name)?.metadata?.uid === terminating.metadata?.uid) {
            finalizeDelete(type, namespace, name, deleteOptions.propagationPolicy);
          }
        });
        return answer(terminating);
      }
    }
    if (type === PVCS && claimInUse(namespace, name)) {
      if (stored.metadata?.deletionTimestamp !== undefined) return answer(stored);
      const next = structuredClone(stored);
      (next.metadata ??= {}).deletionTimestamp = nowTimestamp();
      next.metadata.deletionGracePeriodSeconds = 0;
      return answer(store.update(type, next, false));
    }
    if (type === NAMESPACES) {
      const next = structuredClone(stored);
      (next.metadata ??= {}).deletionTimestamp = nowTimestamp();
      next.status = { phase: 'Terminating' };
      const terminating = store.update(type, next, false);
      finalizeDelete(type, namespace, name, deleteOptions.propagationPolicy);
      return answer(terminating);
    }
    const removed = finalizeDelete(type, namespace, name, deleteOptions.propagationPolicy);
    return answer(removed ?? stored);
  };

  // ---- pods: the scheduler's and the kubelet's part ----

  const requirePod = (namespace: string, name: string): KubeObject => {
    const pod = store.get(PODS, namespace, name);
    if (pod === undefined) throw new Error(`fake kube API: pods "${name}" not found in namespace "${namespace}"`);
    return pod;
  };

  const containerNames = (pod: KubeObject, listName: 'containers' | 'initContainers'): { name: string; image: string }[] => {
    const containers = record(pod.spec)[listName];
    return (Array.isArray(containers) ? containers : []).map((c) => ({ name: String(record(c).name), image: String(record(c).image) }));
  };

  const baseStatus = (container: { name: string; image: string }): FakeContainerStatus => ({
    name: container.name,
    ready: false,
    restartCount: 0,
    image: container.image,
    imageID: `${container.image}@sha256:${'0'.repeat(64)}`,
    containerID: `containerd://${container.name}-${randomSuffix()}`,
  });

  const setPodPhase = (namespace: string, name: string, update: FakePodStatusUpdate): KubeObject => {
    const pod = requirePod(namespace, name);
    const next = structuredClone(pod);
    const spec = (next.spec = record(next.spec));
    const status = (next.status = record(next.status));
    const now = nowTimestamp();
    if (update.phase !== 'Pending' || update.nodeName !== undefined) {
      if (typeof spec.nodeName !== 'string' || spec.nodeName === '') spec.nodeName = update.nodeName ?? nodeName;
      status.hostIP ??= '127.0.0.1';
      status.startTime ??= now;
      const conditions = Array.isArray(status.conditions) ? (status.conditions as Json[]) : [];
      if (!conditions.some((c) => c.type === 'PodScheduled')) {
        status.conditions = [...conditions, { type: 'PodScheduled', status: 'True', lastTransitionTime: now }];
      }
    }
    status.phase = update.phase;
    for (const field of ['reason', 'message', 'containerStatuses', 'initContainerStatuses', 'podIP'] as const) {
      if (update[field] !== undefined) status[field] = structuredClone(update[field]);
    }
    if (update.podIP !== undefined) status.podIPs = [{ ip: update.podIP }];
    if (update.conditions !== undefined) {
      const given = update.conditions.map((c) => ({ lastTransitionTime: now, ...c }));
      const kept = (Array.isArray(status.conditions) ? (status.conditions as Json[]) : []).filter((c) => !given.some((g) => g.type === c.type));
      status.conditions = [...kept, ...given];
    }
    return structuredClone(store.update(PODS, next, false));
  };

  const runPod = (namespace: string, name: string): KubeObject => {
    const pod = requirePod(namespace, name);
    const now = nowTimestamp();
    const containers = containerNames(pod, 'containers');
    return setPodPhase(namespace, name, {
      phase: 'Running',
      podIP: '127.0.0.1',
      containerStatuses: containers.map((c) => ({ ...baseStatus(c), ready: true, started: true, state: { running: { startedAt: now } } })),
      conditions: ['Initialized', 'Ready', 'ContainersReady'].map((type) => ({ type, status: 'True' as const })),
    });
  };

  const finishPod = (namespace: string, name: string, exit: FakePodExit): KubeObject => {
    const pod = requirePod(namespace, name);
    const spec = record(pod.spec);
    const now = nowTimestamp();
    const previous = record(pod.status).containerStatuses;
    const previousByName = new Map((Array.isArray(previous) ? (previous as FakeContainerStatus[]) : []).map((s) => [s.name, s]));
    const ending = new Set(exit.containers ?? containerNames(pod, 'containers').map((c) => c.name));
    const reason = exit.reason ?? (exit.exitCode === 0 ? 'Completed' : 'Error');
    const restartPolicy = spec.restartPolicy;
    const restarts = restartPolicy === 'Always' || (restartPolicy === 'OnFailure' && exit.exitCode !== 0);
    const statuses = containerNames(pod, 'containers').map((c): FakeContainerStatus => {
      const before = previousByName.get(c.name) ?? baseStatus(c);
      if (!ending.has(c.name)) return before;
      const startedAt = before.state?.running?.startedAt ?? now;
      const terminated = {
        exitCode: exit.exitCode,
        reason,
        ...(exit.message === undefined ? {} : { message: exit.message }),
        startedAt,
        finishedAt: now,
        ...(before.containerID === undefined ? {} : { containerID: before.containerID }),
      };
      if (restarts) {
        return {
          ...before,
          ready: false,
          started: false,
          restartCount: before.restartCount + 1,
          lastState: { terminated },
          state: { waiting: { reason: 'CrashLoopBackOff', message: `back-off 10s restarting failed container=${c.name} pod=${name}_${namespace}(${pod.metadata?.uid ?? ''})` } },
        };
      }
      return { ...before, ready: false, started: false, state: { terminated } };
    });
    const allEnded = statuses.every((s) => s.state?.terminated !== undefined);
    const failed = statuses.some((s) => (s.state?.terminated?.exitCode ?? 0) !== 0);
    const phase = restarts || !allEnded ? 'Running' : failed ? 'Failed' : 'Succeeded';
    return setPodPhase(namespace, name, {
      phase,
      containerStatuses: statuses,
      conditions: [
        { type: 'Ready', status: 'False', reason: phase === 'Running' ? 'ContainersNotReady' : 'PodCompleted' },
        { type: 'ContainersReady', status: 'False', reason: phase === 'Running' ? 'ContainersNotReady' : 'PodCompleted' },
      ],
    });
  };

  const evictPod = (namespace: string, name: string, message?: string): KubeObject => {
    const pod = requirePod(namespace, name);
    const now = nowTimestamp();
    const text = message ?? 'The node was low on resource: memory. ';
    const previous = record(pod.status).containerStatuses;
    const previousByName = new Map((Array.isArray(previous) ? (previous as FakeContainerStatus[]) : []).map((s) => [s.name, s]));
    return setPodPhase(namespace, name, {
      phase: 'Failed',
      reason: 'Evicted',
      message: text,
      containerStatuses: containerNames(pod, 'containers').map((c) => {
        const before = previousByName.get(c.name) ?? baseStatus(c);
        return { ...before, ready: false, started: false, state: { terminated: { exitCode: 137, reason: 'Error', startedAt: before.state?.running?.startedAt ?? now, finishedAt: now } } };
      }),
      conditions: [
        { type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', message: text },
        { type: 'Ready', status: 'False', reason: 'PodFailed' },
        { type: 'ContainersReady', status: 'False', reason: 'PodFailed' },
      ],
    });
  };

  // ---- HTTP ----

  const groupList = (): Json => {
    const list = apiGroupList();
    if (options.metricsServer !== true) return list;
    const version = { groupVersion: `${METRICS_GROUP}/${METRICS_VERSION}`, version: METRICS_VERSION };
    return { ...list, groups: [...(list.groups as Json[]), { name: METRICS_GROUP, versions: [version], preferredVersion: version }] };
  };

  /** Routes under `/apis/metrics.k8s.io/…`: `v1beta1`, its `pods` list, a namespace's pods, one pod. */
  const metricsRoute = (rest: string[]): Route | undefined => {
    if (rest[0] !== METRICS_VERSION) return undefined;
    const path = rest.slice(1);
    if (path.length === 0) {
      return {
        kind: 'document',
        body: {
          kind: 'APIResourceList',
          apiVersion: 'v1',
          groupVersion: `${METRICS_GROUP}/${METRICS_VERSION}`,
          resources: [{ name: 'pods', singularName: '', namespaced: true, kind: 'PodMetrics', verbs: ['get', 'list'] }],
        },
      };
    }
    if (path.length === 1 && path[0] === 'pods') return { kind: 'podMetrics', namespace: '', name: undefined };
    if ((path.length === 3 || path.length === 4) && path[0] === 'namespaces' && path[2] === 'pods') {
      return { kind: 'podMetrics', namespace: path[1] ?? '', name: path[3] };
    }
    return undefined;
  };

  /** The `PodMetrics` of a pod that has usage set, as metrics-server writes it. */
  const podMetricsOf = (pod: KubeObject): Json | undefined => {
    const metrics = podMetrics.get(`${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`);
    if (metrics === undefined) return undefined;
    return {
      kind: 'PodMetrics',
      apiVersion: `${METRICS_GROUP}/${METRICS_VERSION}`,
      metadata: { name: pod.metadata?.name, namespace: pod.metadata?.namespace, creationTimestamp: nowTimestamp(), ...(pod.metadata?.labels === undefined ? {} : { labels: pod.metadata.labels }) },
      timestamp: metrics.at,
      window: '15s',
      containers: structuredClone(metrics.containers),
    };
  };

  const parseRoute = (pathname: string): Route | undefined => {
    const parts = pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
    if (parts.length === 1 && parts[0] === 'version') {
      return { kind: 'document', body: { major: '1', minor: '31', gitVersion: 'v1.31.0-fake', platform: 'linux/amd64' } };
    }
    let group: string;
    let version: string;
    let rest: string[];
    if (parts[0] === 'api') {
      if (parts.length === 1) return { kind: 'document', body: { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] } };
      group = '';
      version = parts[1] ?? '';
      rest = parts.slice(2);
    } else if (parts[0] === 'apis') {
      if (parts.length === 1) return { kind: 'document', body: groupList() };
      group = parts[1] ?? '';
      if (group === METRICS_GROUP && options.metricsServer === true) return metricsRoute(parts.slice(2));
      if (parts.length === 2) {
        const entry = (groupList().groups as Json[]).find((g) => g.name === group);
        return entry === undefined ? undefined : { kind: 'document', body: { kind: 'APIGroup', apiVersion: 'v1', ...entry } };
      }
      version = parts[2] ?? '';
      rest = parts.slice(3);
    } else {
      return undefined;
    }
    if (!RESOURCE_TYPES.some((t) => t.group === group && t.version === version)) return undefined;
    if (rest.length === 0) return { kind: 'document', body: apiResourceList(group, version) };
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const type = findResourceType(group, version, rest[2] ?? '');
      if (type?.namespaced === true) {
        if (rest.length > 5) return undefined;
        const namespace = rest[1] ?? '';
        const name = rest[3];
        return name === undefined ? { kind: 'collection', type, namespace } : { kind: 'object', type, namespace, name, sub: rest[4] };
      }
    }
    const type = findResourceType(group, version, rest[0] ?? '');
    if (type === undefined || rest.length > 3) return undefined;
    const name = rest[1];
    if (name === undefined) return { kind: 'collection', type, namespace: '' };
    if (type.namespaced) return undefined;
    return { kind: 'object', type, namespace: '', name, sub: rest[2] };
  };

  const sendJson = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-cache, private' });
    res.end(text);
  };

  const sendStatus = (res: ServerResponse, status: KubeStatus): void => sendJson(res, status.code, status);

  const readBody = async (req: IncomingMessage): Promise<unknown> => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) throw new StatusError(tooLargeStatus(MAX_BODY_BYTES));
      chunks.push(chunk);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new StatusError(badRequestStatus(`couldn't get version/kind; json parse error: ${(error as Error).message}`));
    }
  };

  /** A list of copies without `kind`/`apiVersion` on the items, as typed lists are written. */
  const listBody = (type: ResourceType, items: KubeObject[], continueToken?: string, remaining?: number): Json => ({
    kind: `${type.kind}List`,
    apiVersion: type.apiVersion,
    metadata: {
      resourceVersion: String(store.revision),
      ...(continueToken === undefined ? {} : { continue: continueToken }),
      ...(remaining === undefined ? {} : { remainingItemCount: remaining }),
    },
    items: items.map((item) => {
      const copy = structuredClone(item);
      delete copy.kind;
      delete copy.apiVersion;
      return copy;
    }),
  });

  const selectorsOf = (type: ResourceType, query: URLSearchParams): ((object: KubeObject) => boolean) => {
    try {
      const labels = parseLabelSelector(query.get('labelSelector') ?? '');
      const fields = parseFieldSelector(query.get('fieldSelector') ?? '', ['metadata.name', 'metadata.namespace', ...type.selectableFields]);
      return (object) => labels(object.metadata?.labels) && fields(object);
    } catch (error) {
      if (error instanceof SelectorSyntaxError) throw new StatusError(badRequestStatus(error.message));
      throw error;
    }
  };

  const list = (res: ServerResponse, type: ResourceType, namespace: string, query: URLSearchParams): void => {
    const matches = selectorsOf(type, query);
    let items = store.list(type, namespace).filter(matches);
    const token = query.get('continue');
    if (token !== null && token !== '') {
      let after: unknown;
      try {
        after = (JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Json).after;
      } catch {
        after = undefined;
      }
      if (typeof after !== 'string') throw new StatusError(badRequestStatus('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)'));
      items = items.filter((item) => `${item.metadata?.namespace ?? ''}/${item.metadata?.name ?? ''}` > after);
    }
    const limit = Number(query.get('limit') ?? '0');
    if (Number.isInteger(limit) && limit > 0 && items.length > limit) {
      const page = items.slice(0, limit);
      const last = page[page.length - 1];
      const next = Buffer.from(JSON.stringify({ after: `${last?.metadata?.namespace ?? ''}/${last?.metadata?.name ?? ''}`, rv: store.revision })).toString('base64url');
      sendJson(res, 200, listBody(type, page, next, items.length - limit));
      return;
    }
    sendJson(res, 200, listBody(type, items));
  };

  const watch = (req: IncomingMessage, res: ServerResponse, type: ResourceType, namespace: string, query: URLSearchParams): void => {
    const matches = selectorsOf(type, query);
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const write = (eventType: WatchEventType, object: unknown): void => {
      if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify({ type: eventType, object })}\n`);
    };
    let ended = false;
    const timers: NodeJS.Timeout[] = [];
    const watcher: StoreWatcher = {
      resource: type,
      namespace,
      matches,
      send: (event: StoredEvent) => write(event.type, event.object),
    };
    const end = (): void => {
      if (ended) return;
      ended = true;
      store.unwatch(watcher);
      for (const timer of timers) clearTimeout(timer);
      openWatches.delete(end);
      if (!res.writableEnded) res.end();
    };
    openWatches.add(end);
    req.on('close', end);
    res.on('close', end);
    const bookmark = (annotations?: Record<string, string>): void =>
      write('BOOKMARK', { kind: type.kind, apiVersion: type.apiVersion, metadata: { resourceVersion: String(store.revision), ...(annotations === undefined ? {} : { annotations }) } });
    const rv = query.get('resourceVersion') ?? '';
    const sendInitial = query.get('sendInitialEvents') === 'true';
    if (rv === '' || rv === '0' || sendInitial) {
      for (const object of store.list(type, namespace)) if (matches(object)) write('ADDED', object);
      if (sendInitial && query.get('allowWatchBookmarks') === 'true') bookmark({ 'k8s.io/initial-events-end': 'true' });
      store.watchNow(watcher);
    } else {
      const from = Number(rv);
      if (!Number.isInteger(from) || from < 0) {
        write('ERROR', badRequestStatus(`invalid resource version: ${JSON.stringify(rv)}`));
        end();
        return;
      }
      if (!store.watchFrom(watcher, from)) {
        write('ERROR', expiredStatus(from, store.compactedRevision + 1));
        end();
        return;
      }
    }
    if (query.get('allowWatchBookmarks') === 'true') {
      const tick = (): void => {
        bookmark();
        timers[0] = setTimeout(tick, bookmarkIntervalMs).unref();
      };
      timers[0] = setTimeout(tick, bookmarkIntervalMs).unref();
    }
    const timeoutSeconds = Number(query.get('timeoutSeconds') ?? '0');
    if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) timers.push(setTimeout(end, timeoutSeconds * 1000).unref());
  };

  const deleteOptionsOf = async (req: IncomingMessage, query: URLSearchParams): Promise<DeleteOptions> => {
    const body = record(await readBody(req));
    const graceText = query.get('gracePeriodSeconds');
    const grace = graceText !== null ? Number(graceText) : typeof body.gracePeriodSeconds === 'number' ? body.gracePeriodSeconds : undefined;
    const policy = query.get('propagationPolicy') ?? body.propagationPolicy ?? (body.orphanDependents === true ? 'Orphan' : 'Background');
    if (policy !== 'Orphan' && policy !== 'Background' && policy !== 'Foreground') {
      throw new StatusError(badRequestStatus(`propagationPolicy: Unsupported value: ${JSON.stringify(policy)}: supported values: "Foreground", "Background", "Orphan"`));
    }
    const dryRun = query.getAll('dryRun').includes('All') || (Array.isArray(body.dryRun) && body.dryRun.includes('All'));
    const pre = record(body.preconditions);
    return {
      ...(grace === undefined || !Number.isFinite(grace) ? {} : { gracePeriodSeconds: grace }),
      propagationPolicy: policy,
      dryRun,
      ...(body.preconditions === undefined
        ? {}
        : { preconditions: { ...(typeof pre.uid === 'string' ? { uid: pre.uid } : {}), ...(typeof pre.resourceVersion === 'string' ? { resourceVersion: pre.resourceVersion } : {}) } }),
    };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const query = url.searchParams;
    const method = req.method ?? 'GET';
    if (['/healthz', '/livez', '/readyz'].includes(url.pathname)) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return;
    }
    if (options.token !== undefined && url.pathname !== '/version' && req.headers.authorization !== `Bearer ${options.token}`) {
      sendStatus(res, unauthorizedStatus());
      return;
    }
    const route = parseRoute(url.pathname);
    if (route === undefined) {
      sendStatus(res, pathNotFoundStatus());
      return;
    }
    if (route.kind === 'podMetrics') {
      if (method !== 'GET') throw new StatusError(methodNotAllowedStatus());
      const metricsResource = { group: METRICS_GROUP, plural: 'pods' };
      if (route.name !== undefined) {
        const pod = store.get(PODS, route.namespace, route.name);
        const metrics = pod === undefined ? undefined : podMetricsOf(pod);
        if (metrics === undefined) throw new StatusError(notFoundStatus(metricsResource, route.name));
        sendJson(res, 200, metrics);
        return;
      }
      const labels = selectorsOf(PODS, new URLSearchParams({ labelSelector: query.get('labelSelector') ?? '' }));
      const items = store.list(PODS, route.namespace).filter(labels).flatMap((pod) => podMetricsOf(pod) ?? []);
      sendJson(res, 200, { kind: 'PodMetricsList', apiVersion: `${METRICS_GROUP}/${METRICS_VERSION}`, metadata: {}, items });
      return;
    }
    if (route.kind === 'document') {
      if (method !== 'GET') throw new StatusError(methodNotAllowedStatus());
      sendJson(res, 200, route.body);
      return;
    }
    const dryRun = query.getAll('dryRun').includes('All');
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    if (route.kind === 'collection') {
      const { type, namespace } = route;
      if (method === 'GET') {
        if (query.get('watch') === 'true' || query.get('watch') === '1') {
          watch(req, res, type, namespace, query);
          return;
        }
        list(res, type, namespace, query);
        return;
      }
      if (type.namespaced && namespace === '') throw new StatusError(methodNotAllowedStatus());
      if (method === 'POST') {
        const created = createObject(type, namespace, await readBody(req), dryRun);
        sendJson(res, 201, created);
        return;
      }
      if (method === 'DELETE') {
        const deleteOptions = await deleteOptionsOf(req, query);
        const matches = selectorsOf(type, query);
        const deleted: KubeObject[] = [];
        for (const object of store.list(type, namespace).filter(matches)) {
          const answer = deleteObject(type, namespace, object.metadata?.name ?? '', deleteOptions);
          deleted.push(answer.kind === 'Status' ? object : (answer as KubeObject));
        }
        sendJson(res, 200, listBody(type, deleted));
        return;
      }
      throw new StatusError(methodNotAllowedStatus());
    }
    const { type, namespace, name, sub } = route;
    if (sub === 'log' && type === PODS) {
      if (method !== 'GET') throw new StatusError(methodNotAllowedStatus());
      if (store.get(type, namespace, name) === undefined) throw new StatusError(notFoundStatus(type, name));
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(podLogs.get(`${namespace}/${name}`) ?? '');
      return;
    }
    if (sub !== undefined && !(sub === 'status' && type.hasStatus)) {
      sendStatus(res, pathNotFoundStatus());
      return;
    }
    switch (method) {
      case 'GET': {
        const object = store.get(type, namespace, name);
        if (object === undefined) throw new StatusError(notFoundStatus(type, name));
        sendJson(res, 200, object);
        return;
      }
      case 'PUT':
        sendJson(res, 200, updateObject(type, namespace, name, await readBody(req), sub, dryRun));
        return;
      case 'PATCH': {
        const body = await readBody(req);
        if (contentType === APPLY_PATCH && sub === undefined && store.get(type, namespace, name) === undefined) {
          const metadata = record(record(body).metadata);
          sendJson(res, 201, createObject(type, namespace, { ...record(body), metadata: { ...metadata, name } }, dryRun));
          return;
        }
        sendJson(res, 200, patchObject(type, namespace, name, body, contentType, sub, dryRun));
        return;
      }
      case 'DELETE': {
        if (sub !== undefined) throw new StatusError(methodNotAllowedStatus());
        const answer = deleteObject(type, namespace, name, await deleteOptionsOf(req, query));
        sendJson(res, 200, answer);
        return;
      }
      default:
        throw new StatusError(methodNotAllowedStatus());
    }
  };

  const server = createServer((req, res) => {
    const entry: FakeKubeRequest = { method: req.method ?? 'GET', url: req.url ?? '/', contentType: req.headers['content-type'], status: 0 };
    requests.push(entry);
    res.on('finish', () => {
      entry.status = res.statusCode;
    });
    handle(req, res).catch((error: unknown) => {
      const status = error instanceof StatusError ? error.status : ({ ...badRequestStatus(''), code: 500, reason: 'InternalError', message: `Internal error occurred: ${String(error)}` } as KubeStatus);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendStatus(res, status);
    });
  });
  const exec = execEndpoint({
    getPod: (namespace, name) => store.get(PODS, namespace, name),
    token: options.token,
    handler:
      options.onPodExec === undefined
        ? undefined
        : async (request) => {
            const hook = options.onPodExec;
            return hook === undefined ? 1 : await hook(request, api);
          },
    record: (method, requestUrl, status) => {
      requests.push({ method, url: requestUrl, contentType: undefined, status });
    },
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (closing !== undefined) {
      socket.destroy();
      return;
    }
    exec.handleUpgrade(req, socket, head);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(options.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  for (const namespace of options.namespaces ?? ['default']) {
    createObject(NAMESPACES, '', { metadata: { name: namespace, labels: { [ENFORCE_LABEL]: defaultLevel } } }, false);
  }

  const kubeconfig = (namespace = 'default'): FakeKubeConfig => ({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'fake', ...(options.token === undefined ? {} : { token: options.token }) }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake', namespace }],
    currentContext: 'fake',
  });

  const api: FakeKubeApi = {
    url,
    port,
    requests,
    hookErrors,
    kubeconfig,
    kubeconfigYaml(namespace = 'default') {
      const file = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'fake', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'fake', user: options.token === undefined ? {} : { token: options.token } }],
        contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake', namespace } }],
        'current-context': 'fake',
      };
      return `${JSON.stringify(file, null, 2)}\n`;
    },
    resourceVersion: () => store.revision,
    getObject(resource, namespace, name) {
      const object = store.get(typeOf(resource), namespace, name);
      return object === undefined ? undefined : structuredClone(object);
    },
    listObjects(resource, namespace = '') {
      return store.list(typeOf(resource), namespace).map((object) => structuredClone(object));
    },
    setPodPhase,
    runPod,
    finishPod,
    oomKillPod: (namespace, name, containers) =>
      finishPod(namespace, name, { exitCode: 137, reason: 'OOMKilled', ...(containers === undefined ? {} : { containers }) }),
    evictPod,
    setPodLog(namespace, name, text) {
      podLogs.set(`${namespace}/${name}`, text);
    },
    setPodMetrics(namespace, name, containers) {
      requirePod(namespace, name);
      podMetrics.set(`${namespace}/${name}`, { at: nowTimestamp(), containers: containers.map((c) => ({ name: c.name, usage: { cpu: c.cpu, memory: c.memory } })) });
    },
    compact: () => store.compact(),
    close() {
      closing ??= (async () => {
        for (const end of [...openWatches]) end();
        exec.close();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        for (const socket of sockets) socket.destroy();
        await closed;
      })();
      return closing;
    },
    [Symbol.asyncDispose]() {
      return api.close();
    },
  };
  return api;
}

/**
 * The resource handlers of the fake Kubernetes API server: create, update, patch and delete as the
 * API server's REST storage does them, with defaults, admission, validation, resource versions,
 * graceful pod deletion, PVC protection and the garbage collector's propagation over
 * `ownerReferences`.
 */
import { admitServiceAccount, defaultPod, levelOf, qosClass } from './admission.js';
import { isRecord, NAMESPACES, PODS, PVCS, record, sameJson, SERVICE_ACCOUNTS, StatusError, type FakeKubeContext } from './context.js';
import { runHook } from './kubelet.js';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, PatchError } from './patch.js';
import { checkPodSecurity, podSecurityMessage } from './pod-security.js';
import type { ResourceType } from './resources.js';
import {
  alreadyExistsStatus,
  badRequestStatus,
  conflictStatus,
  forbiddenStatus,
  invalidStatus,
  notFoundStatus,
  preconditionStatus,
  successStatus,
  unprocessableStatus,
  unsupportedMediaTypeStatus,
  type KubeStatus,
} from './status.js';
import { nowTimestamp, randomSuffix } from './store.js';
import type { KubeObject } from './types.js';
import { validateObject, validateUpdate } from './validation.js';

/** The finalizer that keeps a PVC while a pod uses it (https://kubernetes.io/docs/concepts/storage/persistent-volumes/#storage-object-in-use-protection). */
const PVC_PROTECTION = 'kubernetes.io/pvc-protection';
/** Server-side apply's content type; its body must be JSON here (JSON is YAML), as client-node sends it. */
export const APPLY_PATCH = 'application/apply-patch+yaml';

/** Options of a DELETE, from the query and a `DeleteOptions` body. */
export interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy: 'Orphan' | 'Background' | 'Foreground';
  dryRun: boolean;
  preconditions?: { uid?: string; resourceVersion?: string };
}

function checkKindAndVersion(type: ResourceType, object: KubeObject): void {
  const apiVersion = object.apiVersion ?? type.apiVersion;
  const kind = object.kind ?? type.kind;
  if (apiVersion !== type.apiVersion || kind !== type.kind) {
    throw new StatusError(badRequestStatus(`${kind} in version "${apiVersion}" cannot be handled as a ${type.kind}: the object's apiVersion and kind do not match the request path (want ${type.apiVersion} ${type.kind})`));
  }
  object.apiVersion = apiVersion;
  object.kind = kind;
}

/**
 * Creates an object as `POST` does: defaults, mutating admission, validation, validating
 * admission, then the name check.
 * @throws {StatusError} with the answer for a request that fails.
 */
export function createObject(ctx: FakeKubeContext, type: ResourceType, namespace: string, body: unknown, dryRun: boolean): KubeObject {
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
  if (type.namespaced && ctx.store.get(NAMESPACES, '', namespace) === undefined) {
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
  if (type === PODS && name !== '') admitServiceAccount(ctx, object, namespace, name);
  const causes = validateObject(type, object);
  if (causes.length > 0) throw new StatusError(invalidStatus(type.kind, type.group, name, causes));
  if (type === PODS) {
    const { level, version } = levelOf(ctx, namespace);
    const violations = checkPodSecurity(object, level);
    if (violations.length > 0) throw new StatusError(forbiddenStatus(PODS, name, podSecurityMessage(level, violations, version)));
  }
  if (ctx.store.get(type, namespace, name) !== undefined) throw new StatusError(alreadyExistsStatus(type, name));
  if (dryRun) return object;
  const stored = ctx.store.create(type, object);
  if (type === NAMESPACES) {
    createObject(ctx, SERVICE_ACCOUNTS, name, { metadata: { name: 'default' } }, false);
  } else if (type.plural === 'persistentvolumeclaims') {
    const spec = record(stored.spec);
    const bound = structuredClone(stored);
    bound.spec = { ...spec, volumeName: `pvc-${stored.metadata?.uid ?? ''}` };
    bound.status = { phase: 'Bound', accessModes: spec.accessModes, capacity: { storage: record(record(spec.resources).requests).storage } };
    return ctx.store.update(type, bound, false);
  } else if (type === PODS) {
    runHook(ctx, ctx.options.onPodCreated, stored);
  }
  return stored;
}

/**
 * Replaces an object (`sub` `status`: only its status) as `PUT` does.
 * @throws {StatusError} 404, 400 for a name or namespace that differs from the path, 409 on a
 *   stale `resourceVersion`, 422 for invalid fields.
 */
export function updateObject(ctx: FakeKubeContext, type: ResourceType, namespace: string, name: string, body: unknown, sub: string | undefined, dryRun: boolean): KubeObject {
  const stored = ctx.store.get(type, namespace, name);
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
  return ctx.store.update(type, next, !sameJson(stored.spec, next.spec));
}

/**
 * Applies a PATCH body by its content type (JSON Patch, merge patch, strategic merge patch, server-side apply), then updates as `PUT` would.
 * @throws {StatusError} 404, 415 for another content type, 422 for a patch that cannot apply, and what `updateObject` throws.
 */
export function patchObject(ctx: FakeKubeContext, type: ResourceType, namespace: string, name: string, body: unknown, contentType: string, sub: string | undefined, dryRun: boolean): KubeObject {
  const stored = ctx.store.get(type, namespace, name);
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
  return updateObject(ctx, type, namespace, name, patched, sub, dryRun);
}

/** Whether a pod that is not yet removed mounts the claim. */
function claimInUse(ctx: FakeKubeContext, namespace: string, claim: string): boolean {
  return ctx.store.list(PODS, namespace).some((pod) => {
    const volumes = record(pod.spec).volumes;
    return Array.isArray(volumes) && volumes.some((v) => record(record(v).persistentVolumeClaim).claimName === claim);
  });
}

/** The PVC protection controller: removes claims being deleted that no pod uses any more. */
function releaseClaims(ctx: FakeKubeContext, namespace: string): void {
  for (const claim of ctx.store.list(PVCS, namespace)) {
    const name = claim.metadata?.name ?? '';
    if (claim.metadata?.deletionTimestamp !== undefined && !claimInUse(ctx, namespace, name)) finalizeDelete(ctx, PVCS, namespace, name, 'Background');
  }
}

/** Removes an object for good, then deletes or orphans its dependents (the garbage collector). */
function finalizeDelete(ctx: FakeKubeContext, type: ResourceType, namespace: string, name: string, propagation: DeleteOptions['propagationPolicy']): KubeObject | undefined {
  if (type === NAMESPACES) {
    for (const [resource, object] of [...ctx.store.all()]) {
      if (resource.namespaced && object.metadata?.namespace === name) ctx.store.remove(resource, name, object.metadata.name ?? '');
    }
  }
  const removed = ctx.store.remove(type, namespace, name);
  if (type === PODS) releaseClaims(ctx, namespace);
  const uid = removed?.metadata?.uid;
  if (uid === undefined) return removed;
  for (const [resource, object] of [...ctx.store.all()]) {
    const refs = object.metadata?.ownerReferences ?? [];
    if (!refs.some((ref) => ref.uid === uid)) continue;
    const objectNamespace = object.metadata?.namespace ?? '';
    const objectName = object.metadata?.name ?? '';
    // Gone already: deleted earlier in this cascade (shared or cyclic owners).
    if (ctx.store.get(resource, objectNamespace, objectName) !== object) continue;
    if (propagation === 'Orphan') {
      const next = structuredClone(object);
      (next.metadata ??= {}).ownerReferences = refs.filter((ref) => ref.uid !== uid);
      ctx.store.update(resource, next, false);
    } else {
      deleteObject(ctx, resource, objectNamespace, objectName, { propagationPolicy: 'Background', dryRun: false });
    }
  }
  return removed;
}

/**
 * Deletes an object as `DELETE` does. A pod bound to a node and not finished is deleted
 * gracefully: its `deletionTimestamp` is set (MODIFIED), `onPodDeleting` runs, then it is removed
 * (DELETED); deleted with grace 0, it is removed at once and `onPodDeleting` runs after (the
 * kubelet kills the process of a pod that is gone). A PVC a pod still mounts keeps its `kubernetes.io/pvc-protection` finalizer: it gets a
 * `deletionTimestamp` and goes when the last such pod does. Everything else is removed at once.
 * @returns the object (or a Success `Status` for kinds whose API answers so).
 */
export function deleteObject(ctx: FakeKubeContext, type: ResourceType, namespace: string, name: string, deleteOptions: DeleteOptions): KubeObject | KubeStatus {
  const stored = ctx.store.get(type, namespace, name);
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
      const terminating = ctx.store.update(type, next, false);
      runHook(ctx, ctx.options.onPodDeleting, terminating, () => {
        if (ctx.store.get(type, namespace, name)?.metadata?.uid === terminating.metadata?.uid) {
          finalizeDelete(ctx, type, namespace, name, deleteOptions.propagationPolicy);
        }
      });
      return answer(terminating);
    }
  }
  if (type === PVCS && claimInUse(ctx, namespace, name)) {
    if (stored.metadata?.deletionTimestamp !== undefined) return answer(stored);
    const next = structuredClone(stored);
    (next.metadata ??= {}).deletionTimestamp = nowTimestamp();
    next.metadata.deletionGracePeriodSeconds = 0;
    return answer(ctx.store.update(type, next, false));
  }
  if (type === NAMESPACES) {
    const next = structuredClone(stored);
    (next.metadata ??= {}).deletionTimestamp = nowTimestamp();
    next.status = { phase: 'Terminating' };
    const terminating = ctx.store.update(type, next, false);
    finalizeDelete(ctx, type, namespace, name, deleteOptions.propagationPolicy);
    return answer(terminating);
  }
  const removed = finalizeDelete(ctx, type, namespace, name, deleteOptions.propagationPolicy);
  if (type === PODS) {
    // Deleted at once (grace 0) while running: the kubelet kills its process after the removal.
    const spec = record(stored.spec);
    const phase = record(stored.status).phase;
    if (typeof spec.nodeName === 'string' && spec.nodeName !== '' && phase !== 'Succeeded' && phase !== 'Failed') {
      const gone = structuredClone(stored);
      (gone.metadata ??= {}).deletionTimestamp = nowTimestamp();
      gone.metadata.deletionGracePeriodSeconds = 0;
      runHook(ctx, ctx.options.onPodDeleting, gone);
    }
  }
  return answer(removed ?? stored);
}

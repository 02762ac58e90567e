/**
 * The field validation the fake API server runs before storing an object, with the field paths and
 * messages of the API server's validation (k8s.io/apimachinery/pkg/util/validation and
 * pkg/apis/core/validation). It covers what a driver gets wrong in practice: names, labels,
 * required pod, container, PVC and secret fields, duplicate container names, pod updates that
 * change immutable fields. Unknown fields are dropped silently, as with `fieldValidation=Ignore`.
 */
import { duplicateCause, forbiddenCause, invalidCause, requiredCause, type KubeStatusCause } from './status.js';
import type { ResourceType } from './resources.js';

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const SUBDOMAIN_MESSAGE =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MESSAGE =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/** Field errors of a DNS-1123 label (`namespaces`, container names). */
function checkDnsLabel(field: string, value: string, causes: KubeStatusCause[]): void {
  if (value.length > 63) causes.push(invalidCause(field, value, 'must be no more than 63 characters'));
  if (!DNS1123_LABEL.test(value)) causes.push(invalidCause(field, value, LABEL_MESSAGE));
}

function checkLabels(field: string, labels: unknown, causes: KubeStatusCause[]): void {
  if (labels === undefined || labels === null) return;
  if (!isRecord(labels)) {
    causes.push(invalidCause(field, labels, 'must be a map of string keys to string values'));
    return;
  }
  for (const [key, value] of Object.entries(labels)) {
    const slash = key.lastIndexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : '';
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    if ((slash >= 0 && !DNS1123_SUBDOMAIN.test(prefix)) || !LABEL_NAME.test(name) || name.length > 63) {
      causes.push(invalidCause(field, key, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
    }
    if (typeof value !== 'string' || !LABEL_VALUE.test(value) || value.length > 63) {
      causes.push(invalidCause(`${field}`, value, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
    }
  }
}

function checkMetadata(type: ResourceType, metadata: Json, causes: KubeStatusCause[]): void {
  const name = metadata.name;
  if (typeof name !== 'string' || name === '') {
    if (typeof metadata.generateName !== 'string' || metadata.generateName === '') {
      causes.push(requiredCause('metadata.name', 'name or generateName is required'));
    }
  } else if (type.plural === 'namespaces') {
    checkDnsLabel('metadata.name', name, causes);
  } else {
    if (name.length > 253) causes.push(invalidCause('metadata.name', name, 'must be no more than 253 characters'));
    if (!DNS1123_SUBDOMAIN.test(name)) causes.push(invalidCause('metadata.name', name, SUBDOMAIN_MESSAGE));
  }
  checkLabels('metadata.labels', metadata.labels, causes);
}

function checkContainers(spec: Json, causes: KubeStatusCause[]): void {
  const seen = new Set<string>();
  for (const listName of ['initContainers', 'containers'] as const) {
    const containers = spec[listName];
    if (listName === 'containers' && (!Array.isArray(containers) || containers.length === 0)) {
      causes.push(requiredCause('spec.containers'));
      continue;
    }
    if (!Array.isArray(containers)) continue;
    for (const [i, container] of containers.entries()) {
      const at = `spec.${listName}[${i}]`;
      if (!isRecord(container)) {
        causes.push(invalidCause(at, container, 'must be an object'));
        continue;
      }
      if (typeof container.name !== 'string' || container.name === '') causes.push(requiredCause(`${at}.name`));
      else {
        checkDnsLabel(`${at}.name`, container.name, causes);
        if (seen.has(container.name)) causes.push(duplicateCause(`${at}.name`, container.name));
        seen.add(container.name);
      }
      if (typeof container.image !== 'string' || container.image.trim() === '') causes.push(requiredCause(`${at}.image`));
    }
  }
  const restart = spec.restartPolicy;
  if (restart !== undefined && restart !== 'Always' && restart !== 'OnFailure' && restart !== 'Never') {
    causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: ${JSON.stringify(restart)}: supported values: "Always", "OnFailure", "Never"`, field: 'spec.restartPolicy' });
  }
}

function checkPvc(spec: Json, causes: KubeStatusCause[]): void {
  const modes = spec.accessModes;
  if (!Array.isArray(modes) || modes.length === 0) causes.push(requiredCause('spec.accessModes', 'at least 1 access mode is required'));
  const resources = isRecord(spec.resources) ? spec.resources : {};
  const requests = isRecord(resources.requests) ? resources.requests : {};
  if (requests.storage === undefined) causes.push(requiredCause('spec.resources[storage]'));
}

function checkSecret(object: Json, causes: KubeStatusCause[]): void {
  const data = object.data;
  if (data === undefined || data === null) return;
  if (!isRecord(data)) {
    causes.push(invalidCause('data', data, 'must be a map of keys to base64 values'));
    return;
  }
  let bytes = 0;
  for (const [key, value] of Object.entries(data)) {
    if (!/^[-._a-zA-Z0-9]+$/.test(key)) {
      causes.push(invalidCause(`data[${key}]`, key, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
    }
    if (typeof value !== 'string' || !BASE64.test(value)) {
      causes.push(invalidCause(`data[${key}]`, '<value omitted>', 'must be base64 encoded'));
    } else {
      bytes += Buffer.byteLength(value, 'base64');
    }
  }
  if (bytes > 1024 * 1024) causes.push({ reason: 'FieldValueTooLong', message: 'Too long: must have at most 1048576 bytes', field: 'data' });
}

/**
 * Validates an object about to be created or to replace another.
 * @returns field errors for a 422 Invalid answer; empty when it is valid.
 */
export function validateObject(type: ResourceType, object: Json): KubeStatusCause[] {
  const causes: KubeStatusCause[] = [];
  checkMetadata(type, isRecord(object.metadata) ? object.metadata : {}, causes);
  const spec = isRecord(object.spec) ? object.spec : {};
  if (type.plural === 'pods') checkContainers(spec, causes);
  if (type.plural === 'persistentvolumeclaims') checkPvc(spec, causes);
  if (type.plural === 'secrets') checkSecret(object, causes);
  return causes;
}

/** Pod spec fields an update may change (pkg/apis/core/validation `ValidatePodUpdate`). */
function mutablePodSpecView(spec: unknown): unknown {
  if (!isRecord(spec)) return spec;
  const view: Json = structuredClone(spec);
  delete view.activeDeadlineSeconds;
  delete view.tolerations;
  for (const listName of ['containers', 'initContainers'] as const) {
    const containers = view[listName];
    if (Array.isArray(containers)) for (const c of containers) if (isRecord(c)) delete c.image;
  }
  return view;
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

/**
 * Validates an update against the stored object: a pod's spec may change only in its images,
 * `activeDeadlineSeconds` and `tolerations`; a PVC's spec only in its storage request.
 * @returns field errors for a 422 Invalid answer; empty when the update is allowed.
 */
export function validateUpdate(type: ResourceType, stored: Json, next: Json): KubeStatusCause[] {
  if (type.plural === 'pods' && !sameJson(mutablePodSpecView(stored.spec), mutablePodSpecView(next.spec))) {
    return [
      forbiddenCause(
        'spec',
        'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
      ),
    ];
  }
  if (type.plural === 'persistentvolumeclaims') {
    const strip = (spec: unknown): unknown => {
      if (!isRecord(spec)) return spec;
      const view: Json = structuredClone(spec);
      delete view.resources;
      return view;
    };
    if (!sameJson(strip(stored.spec), strip(next.spec))) {
      return [forbiddenCause('spec', 'spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims')];
    }
  }
  return [];
}

/**
 * What the fake Kubernetes API server's modules share: the running server's state
 * (`FakeKubeContext`), the `StatusError` a request handler throws to answer with a `Status`, the
 * served types the handlers single out, and small JSON helpers.
 */
import type { PodSecurityLevel } from './pod-security.js';
import { RESOURCE_TYPES, type ResourceType } from './resources.js';
import type { KubeStatus } from './status.js';
import type { KubeStore } from './store.js';
import type { FakeKubeApi, FakeKubeResource, StartFakeKubeApiOptions } from './types.js';

/** A JSON object. */
export type Json = Record<string, unknown>;

/** The usage of a pod's containers, as `setPodMetrics` sets it; `at` is an RFC 3339 timestamp. */
export interface PodUsage {
  at: string;
  containers: { name: string; usage: { cpu: string; memory: string } }[];
}

/** The state of one running fake API server, shared by its request handlers and pod helpers. */
export interface FakeKubeContext {
  readonly options: StartFakeKubeApiOptions;
  /** The Pod Security level of a namespace without the enforce label (`options.podSecurityLevel`, default `restricted`). */
  readonly defaultLevel: PodSecurityLevel;
  /** The node `runPod` binds pods to (`options.nodeName`, default `fake-node`). */
  readonly nodeName: string;
  /** Interval of watch `BOOKMARK` events, in ms (`options.bookmarkIntervalMs`, default 60,000). */
  readonly bookmarkIntervalMs: number;
  readonly store: KubeStore;
  /** What the pod hooks threw. */
  readonly hookErrors: unknown[];
  /** Log text per `ns/name`, served by `pods/{name}/log`. */
  readonly podLogs: Map<string, string>;
  /** Container usage per `ns/name`, served by the metrics API when `options.metricsServer` is set. */
  readonly podMetrics: Map<string, PodUsage>;
  /** The `end` of every open watch stream. */
  readonly openWatches: Set<() => void>;
  /** Whether `close()` has been called. */
  closing(): boolean;
  /** The server's public handle, passed to the hooks. */
  api(): FakeKubeApi;
}

/** A failure answered as a Kubernetes `Status`. */
export class StatusError extends Error {
  constructor(readonly status: KubeStatus) {
    super(status.message ?? status.reason ?? `status ${status.code}`);
    this.name = 'StatusError';
  }
}

/** Whether a value is a JSON object (not an array, not null). */
export function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value if it is a JSON object, else a new empty one. */
export function record(value: unknown): Json {
  return isRecord(value) ? value : {};
}

/** Deep equality of JSON values; object keys whose value is `undefined` count as absent. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, i) => sameJson(item, b[i]));
  if (isRecord(a)) {
    if (!isRecord(b)) return false;
    const keys = Object.keys(a).filter((k) => a[k] !== undefined);
    return keys.length === Object.keys(b).filter((k) => b[k] !== undefined).length && keys.every((k) => sameJson(a[k], b[k]));
  }
  return a === b;
}

/**
 * The served type of a `FakeKubeResource`.
 * @throws {TypeError} for a plural the fake does not serve.
 */
export function resourceType(plural: FakeKubeResource): ResourceType {
  const type = RESOURCE_TYPES.find((t) => t.plural === plural);
  if (type === undefined) throw new TypeError(`fake kube API: unknown resource ${JSON.stringify(plural)}`);
  return type;
}

export const NAMESPACES = resourceType('namespaces');
export const PODS = resourceType('pods');
export const SERVICE_ACCOUNTS = resourceType('serviceaccounts');
export const PVCS = resourceType('persistentvolumeclaims');

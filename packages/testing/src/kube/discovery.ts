/**
 * Routing and discovery in the fake Kubernetes API server: request paths parsed into routes, the
 * discovery documents (`/api`, `/apis`, `/apis/{group}`, `/version`) and the resource metrics API
 * metrics-server serves (https://github.com/kubernetes/metrics).
 */
import type { ServerResponse } from 'node:http';
import { PODS, StatusError, type FakeKubeContext, type Json } from './context.js';
import { selectorsOf, sendJson } from './http.js';
import { apiGroupList, apiResourceList, findResourceType, RESOURCE_TYPES, type ResourceType } from './resources.js';
import { methodNotAllowedStatus, notFoundStatus } from './status.js';
import { nowTimestamp } from './store.js';
import type { KubeObject } from './types.js';

/** The resource metrics API metrics-server serves (https://github.com/kubernetes/metrics). */
const METRICS_GROUP = 'metrics.k8s.io';
const METRICS_VERSION = 'v1beta1';

/** A parsed request path. */
export type Route =
  | { kind: 'document'; body: unknown }
  | { kind: 'podMetrics'; namespace: string; name: string | undefined }
  | { kind: 'collection'; type: ResourceType; namespace: string }
  | { kind: 'object'; type: ResourceType; namespace: string; name: string; sub: string | undefined };

/** The `APIGroupList` of `/apis`, with `metrics.k8s.io` when `metricsServer` is set. */
function groupList(ctx: FakeKubeContext): Json {
  const list = apiGroupList();
  if (ctx.options.metricsServer !== true) return list;
  const version = { groupVersion: `${METRICS_GROUP}/${METRICS_VERSION}`, version: METRICS_VERSION };
  return { ...list, groups: [...(list.groups as Json[]), { name: METRICS_GROUP, versions: [version], preferredVersion: version }] };
}

/** Routes under `/apis/metrics.k8s.io/…`: `v1beta1`, its `pods` list, a namespace's pods, one pod. */
function metricsRoute(rest: string[]): Route | undefined {
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
}

/** The `PodMetrics` of a pod that has usage set, as metrics-server writes it. */
function podMetricsOf(ctx: FakeKubeContext, pod: KubeObject): Json | undefined {
  const metrics = ctx.podMetrics.get(`${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`);
  if (metrics === undefined) return undefined;
  return {
    kind: 'PodMetrics',
    apiVersion: `${METRICS_GROUP}/${METRICS_VERSION}`,
    metadata: { name: pod.metadata?.name, namespace: pod.metadata?.namespace, creationTimestamp: nowTimestamp(), ...(pod.metadata?.labels === undefined ? {} : { labels: pod.metadata.labels }) },
    timestamp: metrics.at,
    window: '15s',
    containers: structuredClone(metrics.containers),
  };
}

/** The route of a request path, or `undefined` for a path the server does not serve (404). */
export function parseRoute(ctx: FakeKubeContext, pathname: string): Route | undefined {
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
    if (parts.length === 1) return { kind: 'document', body: groupList(ctx) };
    group = parts[1] ?? '';
    if (group === METRICS_GROUP && ctx.options.metricsServer === true) return metricsRoute(parts.slice(2));
    if (parts.length === 2) {
      const entry = (groupList(ctx).groups as Json[]).find((g) => g.name === group);
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
}

/**
 * Answers a GET of the metrics API's pods: one pod's `PodMetrics`, or a `PodMetricsList` of the
 * namespace's (or every) pod with usage set, filtered by `labelSelector`.
 * @throws {StatusError} 405 for another method, 404 for a pod without usage, 400 for a bad selector.
 */
export function servePodMetrics(
  ctx: FakeKubeContext,
  res: ServerResponse,
  method: string,
  route: { namespace: string; name: string | undefined },
  query: URLSearchParams,
): void {
  if (method !== 'GET') throw new StatusError(methodNotAllowedStatus());
  const metricsResource = { group: METRICS_GROUP, plural: 'pods' };
  if (route.name !== undefined) {
    const pod = ctx.store.get(PODS, route.namespace, route.name);
    const metrics = pod === undefined ? undefined : podMetricsOf(ctx, pod);
    if (metrics === undefined) throw new StatusError(notFoundStatus(metricsResource, route.name));
    sendJson(res, 200, metrics);
    return;
  }
  const labels = selectorsOf(PODS, new URLSearchParams({ labelSelector: query.get('labelSelector') ?? '' }));
  const items = ctx.store.list(PODS, route.namespace).filter(labels).flatMap((pod) => podMetricsOf(ctx, pod) ?? []);
  sendJson(res, 200, { kind: 'PodMetricsList', apiVersion: `${METRICS_GROUP}/${METRICS_VERSION}`, metadata: {}, items });
}

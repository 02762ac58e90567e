/**
 * The fake Kubernetes API server: an HTTP server on 127.0.0.1 that answers the REST paths, query
 * parameters, PATCH content types and watch streams `@kubernetes/client-node` 1.4 uses, over an
 * in-memory store with Kubernetes' resource versions, `Status` errors and Pod Security admission.
 * This module starts and closes it and dispatches requests; `discovery.ts` parses paths,
 * `objects.ts` writes, `http.ts` reads and answers, `watch.ts` streams, `kubelet.ts` plays the
 * kubelet and `exec.ts` serves `pods/{name}/exec`.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ENFORCE_LABEL } from './admission.js';
import { NAMESPACES, PODS, record, resourceType, StatusError, type FakeKubeContext, type PodUsage } from './context.js';
import { parseRoute, servePodMetrics } from './discovery.js';
import { execEndpoint } from './exec.js';
import { deleteOptionsOf, list, listBody, readBody, selectorsOf, sendJson, sendStatus } from './http.js';
import { evictPod, finishPod, requirePod, runPod, setPodPhase } from './kubelet.js';
import { APPLY_PATCH, createObject, deleteObject, patchObject, updateObject } from './objects.js';
import { PodSecurityLevel } from './pod-security.js';
import { badRequestStatus, methodNotAllowedStatus, notFoundStatus, pathNotFoundStatus, unauthorizedStatus, type KubeStatus } from './status.js';
import { KubeStore, nowTimestamp } from './store.js';
import type { FakeKubeApi, FakeKubeConfig, FakeKubeRequest, KubeObject, StartFakeKubeApiOptions } from './types.js';
import { watch } from './watch.js';

/**
 * Answers one request: health checks, the bearer token, then the route's handler.
 * @throws {StatusError} with the answer for a request that fails (the caller writes it).
 */
async function handle(ctx: FakeKubeContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const query = url.searchParams;
  const method = req.method ?? 'GET';
  if (['/healthz', '/livez', '/readyz'].includes(url.pathname)) {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('ok');
    return;
  }
  if (ctx.options.token !== undefined && url.pathname !== '/version' && req.headers.authorization !== `Bearer ${ctx.options.token}`) {
    sendStatus(res, unauthorizedStatus());
    return;
  }
  const route = parseRoute(ctx, url.pathname);
  if (route === undefined) {
    sendStatus(res, pathNotFoundStatus());
    return;
  }
  if (route.kind === 'podMetrics') {
    servePodMetrics(ctx, res, method, route, query);
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
        watch(ctx, req, res, type, namespace, query);
        return;
      }
      list(ctx, res, type, namespace, query);
      return;
    }
    if (type.namespaced && namespace === '') throw new StatusError(methodNotAllowedStatus());
    if (method === 'POST') {
      const created = createObject(ctx, type, namespace, await readBody(req), dryRun);
      sendJson(res, 201, created);
      return;
    }
    if (method === 'DELETE') {
      const deleteOptions = await deleteOptionsOf(req, query);
      const matches = selectorsOf(type, query);
      const deleted: KubeObject[] = [];
      for (const object of ctx.store.list(type, namespace).filter(matches)) {
        const answer = deleteObject(ctx, type, namespace, object.metadata?.name ?? '', deleteOptions);
        deleted.push(answer.kind === 'Status' ? object : (answer as KubeObject));
      }
      sendJson(res, 200, listBody(ctx, type, deleted));
      return;
    }
    throw new StatusError(methodNotAllowedStatus());
  }
  const { type, namespace, name, sub } = route;
  if (sub === 'log' && type === PODS) {
    if (method !== 'GET') throw new StatusError(methodNotAllowedStatus());
    if (ctx.store.get(type, namespace, name) === undefined) throw new StatusError(notFoundStatus(type, name));
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(ctx.podLogs.get(`${namespace}/${name}`) ?? '');
    return;
  }
  if (sub !== undefined && !(sub === 'status' && type.hasStatus)) {
    sendStatus(res, pathNotFoundStatus());
    return;
  }
  switch (method) {
    case 'GET': {
      const object = ctx.store.get(type, namespace, name);
      if (object === undefined) throw new StatusError(notFoundStatus(type, name));
      sendJson(res, 200, object);
      return;
    }
    case 'PUT':
      sendJson(res, 200, updateObject(ctx, type, namespace, name, await readBody(req), sub, dryRun));
      return;
    case 'PATCH': {
      const body = await readBody(req);
      if (contentType === APPLY_PATCH && sub === undefined && ctx.store.get(type, namespace, name) === undefined) {
        const metadata = record(record(body).metadata);
        sendJson(res, 201, createObject(ctx, type, namespace, { ...record(body), metadata: { ...metadata, name } }, dryRun));
        return;
      }
      sendJson(res, 200, patchObject(ctx, type, namespace, name, body, contentType, sub, dryRun));
      return;
    }
    case 'DELETE': {
      if (sub !== undefined) throw new StatusError(methodNotAllowedStatus());
      const answer = deleteObject(ctx, type, namespace, name, await deleteOptionsOf(req, query));
      sendJson(res, 200, answer);
      return;
    }
    default:
      throw new StatusError(methodNotAllowedStatus());
  }
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
  const store = new KubeStore(Math.max(1, options.historyLimit ?? 1000));
  const requests: FakeKubeRequest[] = [];
  const hookErrors: unknown[] = [];
  const podLogs = new Map<string, string>();
  const podMetrics = new Map<string, PodUsage>();
  const openWatches = new Set<() => void>();
  const sockets = new Set<Socket>();
  let closing: Promise<void> | undefined;
  const ctx: FakeKubeContext = {
    options,
    defaultLevel,
    nodeName: options.nodeName ?? 'fake-node',
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
    store,
    hookErrors,
    podLogs,
    podMetrics,
    openWatches,
    closing: () => closing !== undefined,
    api: () => api,
  };

  const server = createServer((req, res) => {
    const entry: FakeKubeRequest = { method: req.method ?? 'GET', url: req.url ?? '/', contentType: req.headers['content-type'], status: 0 };
    requests.push(entry);
    res.on('finish', () => {
      entry.status = res.statusCode;
    });
    handle(ctx, req, res).catch((error: unknown) => {
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
    createObject(ctx, NAMESPACES, '', { metadata: { name: namespace, labels: { [ENFORCE_LABEL]: defaultLevel } } }, false);
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
      const object = store.get(resourceType(resource), namespace, name);
      return object === undefined ? undefined : structuredClone(object);
    },
    listObjects(resource, namespace = '') {
      return store.list(resourceType(resource), namespace).map((object) => structuredClone(object));
    },
    setPodPhase: (namespace, name, update) => setPodPhase(ctx, namespace, name, update),
    runPod: (namespace, name) => runPod(ctx, namespace, name),
    finishPod: (namespace, name, exit) => finishPod(ctx, namespace, name, exit),
    oomKillPod: (namespace, name, containers) =>
      finishPod(ctx, namespace, name, { exitCode: 137, reason: 'OOMKilled', ...(containers === undefined ? {} : { containers }) }),
    evictPod: (namespace, name, message) => evictPod(ctx, namespace, name, message),
    setPodLog(namespace, name, text) {
      podLogs.set(`${namespace}/${name}`, text);
    },
    setPodMetrics(namespace, name, containers) {
      requirePod(ctx, namespace, name);
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

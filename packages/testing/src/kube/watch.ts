/**
 * Watch streams of the fake Kubernetes API server, as the API server writes them and
 * `@kubernetes/client-node`'s `Watch` and informers read them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FakeKubeContext } from './context.js';
import { selectorsOf } from './http.js';
import type { ResourceType } from './resources.js';
import { badRequestStatus, expiredStatus } from './status.js';
import type { StoredEvent, StoreWatcher, WatchEventType } from './store.js';

/**
 * Answers a watch (`?watch=true`): chunked newline-delimited JSON `{"type","object"}` events, from
 * `resourceVersion` (older than the kept history: one `ERROR` event with a 410 `Expired` `Status`,
 * then the end) or from now after ADDED events for what exists; `BOOKMARK`s with
 * `allowWatchBookmarks`, `sendInitialEvents`, `timeoutSeconds`. The stream is in `openWatches`
 * until it ends.
 * @throws {StatusError} 400 for a bad selector, before the answer starts.
 */
export function watch(ctx: FakeKubeContext, req: IncomingMessage, res: ServerResponse, type: ResourceType, namespace: string, query: URLSearchParams): void {
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
    ctx.store.unwatch(watcher);
    for (const timer of timers) clearTimeout(timer);
    ctx.openWatches.delete(end);
    if (!res.writableEnded) res.end();
  };
  ctx.openWatches.add(end);
  req.on('close', end);
  res.on('close', end);
  const bookmark = (annotations?: Record<string, string>): void =>
    write('BOOKMARK', { kind: type.kind, apiVersion: type.apiVersion, metadata: { resourceVersion: String(ctx.store.revision), ...(annotations === undefined ? {} : { annotations }) } });
  const rv = query.get('resourceVersion') ?? '';
  const sendInitial = query.get('sendInitialEvents') === 'true';
  if (rv === '' || rv === '0' || sendInitial) {
    for (const object of ctx.store.list(type, namespace)) if (matches(object)) write('ADDED', object);
    if (sendInitial && query.get('allowWatchBookmarks') === 'true') bookmark({ 'k8s.io/initial-events-end': 'true' });
    ctx.store.watchNow(watcher);
  } else {
    const from = Number(rv);
    if (!Number.isInteger(from) || from < 0) {
      write('ERROR', badRequestStatus(`invalid resource version: ${JSON.stringify(rv)}`));
      end();
      return;
    }
    if (!ctx.store.watchFrom(watcher, from)) {
      write('ERROR', expiredStatus(from, ctx.store.compactedRevision + 1));
      end();
      return;
    }
  }
  if (query.get('allowWatchBookmarks') === 'true') {
    const tick = (): void => {
      bookmark();
      timers[0] = setTimeout(tick, ctx.bookmarkIntervalMs).unref();
    };
    timers[0] = setTimeout(tick, ctx.bookmarkIntervalMs).unref();
  }
  const timeoutSeconds = Number(query.get('timeoutSeconds') ?? '0');
  if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) timers.push(setTimeout(end, timeoutSeconds * 1000).unref());
}

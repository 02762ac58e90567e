import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { AuditRecord } from '@warren/audit';
import type { Registry } from '@warren/registry';
import type { EventPayload } from './ports.js';

/** Options of the event streams (`GET /api/v1/events`). */
export interface EventStreamOptions {
  /** How often a `: ping` comment is sent on an idle stream, in ms. Default 15,000. */
  readonly pingIntervalMs?: number;
  /**
   * The most bytes a client may leave unread in its socket buffer; a client further behind is
   * disconnected and resumes with `Last-Event-ID`. Default 1 MiB.
   */
  readonly maxBufferedBytes?: number;
  /** Audit rows read per page while catching up. Default 500. */
  readonly pageSize?: number;
}

/** A filter on event kinds: `task.*` (a prefix), `task.assign` (exact), `*` (all). */
export type KindFilter = (kind: string) => boolean;

/**
 * The filter of a `kinds` query value: comma-separated kinds or prefixes ending in `*`; empty or
 * absent selects every kind.
 */
export function kindFilter(kinds: string | undefined): KindFilter {
  const parts = (kinds ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
  if (parts.length === 0 || parts.includes('*')) return () => true;
  const exact = new Set(parts.filter((p) => !p.endsWith('*')));
  const prefixes = parts.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return (kind) => exact.has(kind) || prefixes.some((p) => kind.startsWith(p));
}

/** The event an audit row records (what the supervisor publishes for it). */
export function eventOfRow(row: AuditRecord): EventPayload {
  return { seq: row.seq, ts: row.timeMs, kind: row.action, actor: row.actor, object: row.object, decision: row.decision, details: row.details ?? null };
}

/** One event as a server-sent event: `id`, `event` and one `data` line (HTML Living Standard, "Server-sent events"). */
const frames = new WeakMap<EventPayload, string>();
function frameOf(event: EventPayload): string {
  let frame = frames.get(event);
  if (frame === undefined) {
    frame = `id: ${event.seq}\nevent: ${event.kind.replace(/[\r\n]/g, ' ')}\ndata: ${JSON.stringify(event)}\n\n`;
    frames.set(event, frame);
  }
  return frame;
}

/** What an event stream needs from the server. */
export interface EventSource {
  readonly registry: Registry;
  subscribe(listener: (event: EventPayload) => void): () => void;
}

/** The open event streams of one server, closed together when it closes. */
export class EventStreams {
  private readonly open = new Set<() => void>();
  private closed = false;
  private readonly pingIntervalMs: number;
  private readonly maxBufferedBytes: number;
  private readonly pageSize: number;

  constructor(
    private readonly source: EventSource,
    options: EventStreamOptions = {},
  ) {
    this.pingIntervalMs = options.pingIntervalMs ?? 15_000;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024;
    this.pageSize = options.pageSize ?? 500;
  }

  /** Streams open now. */
  get size(): number {
    return this.open.size;
  }

  /**
   * Streams the events to `raw` (a response whose headers are not sent yet), from the audit row
   * after `after` when given, then live; without `after`, live events only.
   *
   * Catching up reads the audit trail page by page (waiting for the socket to drain between
   * pages) while live events are ignored, then switches to live in the same synchronous step as
   * the read that found no more rows. The listener is called only after an event's row is
   * committed, so every event ignored while catching up is in a later page, and every event after
   * the switch has a seq above the last one sent: live events at or below it are dropped. The
   * result is each event once, in seq order, without gaps.
   */
  serve(raw: ServerResponse, headers: Record<string, string>, after: number | undefined, filter: KindFilter): void {
    if (this.closed) {
      raw.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"closing","message":"the server is closing"}');
      return;
    }
    raw.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    raw.write('retry: 2000\n\n');
    let lastSent = after ?? 0;
    let live = after === undefined;
    let ended = false;

    const send = (event: EventPayload): void => {
      lastSent = event.seq;
      if (filter(event.kind) && !raw.destroyed && !raw.writableEnded) raw.write(frameOf(event));
    };
    // A socket error ends the stream ('close' follows); it must not become an unhandled 'error'.
    raw.on('error', () => raw.destroy());
    const end = (): void => {
      if (ended) return;
      ended = true;
      unsubscribe();
      clearInterval(ping);
      this.open.delete(end);
      if (!raw.destroyed) raw.end();
    };
    const unsubscribe = this.source.subscribe((event) => {
      if (!live || ended || event.seq <= lastSent) return;
      send(event);
      // A client that cannot keep up is cut off; it resumes with Last-Event-ID.
      if (raw.writableLength > this.maxBufferedBytes) raw.destroy();
    });
    const ping = setInterval(() => {
      if (raw.destroyed || raw.writableEnded) return;
      if (raw.writableLength <= this.maxBufferedBytes) raw.write(': ping\n\n');
      else raw.destroy();
    }, this.pingIntervalMs);
    this.open.add(end);
    raw.once('close', end);

    if (live) return;
    const catchUp = async (): Promise<void> => {
      while (!ended) {
        // A transaction open on the shared connection could still roll back its rows: read after it.
        if (this.source.registry.db.inTransaction) {
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        const page = this.source.registry.auditPage({ after: lastSent, limit: this.pageSize });
        for (const row of page.rows) send(eventOfRow(row));
        if (!page.more) {
          live = true;
          return;
        }
        if (raw.writableNeedDrain) await Promise.race([once(raw, 'drain'), once(raw, 'close')]);
      }
    };
    catchUp().catch(() => raw.destroy());
  }

  /** Ends every open stream and refuses new ones. Idempotent. */
  close(): void {
    this.closed = true;
    for (const end of [...this.open]) end();
  }
}

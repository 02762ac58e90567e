import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** An attribute value as OTLP's `AnyValue` carries it, decoded to plain JSON. */
export type OtlpValue = string | number | boolean | null | OtlpValue[] | { [key: string]: OtlpValue };

/** One span as an OTLP/HTTP receiver got it. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** The parent span's id; undefined for a trace's root. */
  readonly parentSpanId: string | undefined;
  readonly name: string;
  /** OTLP `SpanKind`: 1 internal, 2 server, 3 client, 4 producer, 5 consumer (0 unspecified). */
  readonly kind: number;
  /** Start and end in ms since the Unix epoch (from the `…UnixNano` fields; sub-ms digits kept as a fraction). */
  readonly startTimeMs: number;
  readonly endTimeMs: number;
  readonly attributes: Readonly<Record<string, OtlpValue>>;
  /** OTLP `Status`: code 0 unset, 1 ok, 2 error. */
  readonly status: { readonly code: number; readonly message?: string };
  /** The attributes of the resource that sent it (`service.name`, …). */
  readonly resource: Readonly<Record<string, OtlpValue>>;
  /** The instrumentation scope's name. */
  readonly scope: string;
}

/** Options of {@link startOtlpReceiver}. */
export interface StartOtlpReceiverOptions {
  /** The largest request body accepted, in bytes (after gunzip). Default 16 MiB; larger ones get 413. */
  readonly maxBodyBytes?: number;
}

/**
 * An OTLP/HTTP trace receiver on 127.0.0.1 for tests: it takes `POST /v1/traces` with a JSON
 * body (the OTLP JSON encoding of `ExportTraceServiceRequest`, https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding),
 * gzip or not, keeps every span and answers `200 {}`. Other paths get 404, other methods 405,
 * other content types 415 (this receiver does not decode protobuf), bodies that are not such JSON 400.
 */
export interface OtlpReceiver {
  /** The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT` (`http://127.0.0.1:<port>`). */
  readonly url: string;
  /** The traces URL, for `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (`<url>/v1/traces`). */
  readonly tracesUrl: string;
  /** Every span received so far, in arrival order. */
  readonly spans: readonly ReceivedSpan[];
  /** Export requests answered 200 so far. */
  readonly requests: number;
  /** The spans received so far, grouped by trace id (in order of each trace's first span). */
  traces(): Map<string, ReceivedSpan[]>;
  /**
   * Resolves once `predicate(spans)` holds, checking now and after each request.
   * @throws {Error} after `timeoutMs` (default 30000), naming `what` and listing the spans received.
   */
  waitFor(predicate: (spans: readonly ReceivedSpan[]) => boolean, options?: { timeoutMs?: number; what?: string }): Promise<void>;
  /** Stops listening and closes open connections. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The bad request a body was: why, for the 400 answer. */
class OtlpBodyError extends Error {}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function list(value: unknown, where: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new OtlpBodyError(`${where} must be a list`);
  return value;
}

/** Decodes an OTLP `AnyValue` (JSON mapping: int64 may be a string, bytes are base64). */
function anyValue(value: unknown): OtlpValue {
  if (!isRecord(value)) return null;
  if (typeof value.stringValue === 'string') return value.stringValue;
  if (typeof value.boolValue === 'boolean') return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return Number(value.doubleValue);
  if (typeof value.bytesValue === 'string') return value.bytesValue;
  if (isRecord(value.arrayValue)) return list(value.arrayValue.values, 'arrayValue.values').map(anyValue);
  if (isRecord(value.kvlistValue)) return attributes(value.kvlistValue.values, 'kvlistValue.values');
  return null;
}

function attributes(value: unknown, where: string): Record<string, OtlpValue> {
  const out: Record<string, OtlpValue> = {};
  for (const kv of list(value, where)) {
    if (!isRecord(kv) || typeof kv.key !== 'string') throw new OtlpBodyError(`${where}: each attribute needs a string key`);
    out[kv.key] = anyValue(kv.value);
  }
  return out;
}

/** Nanoseconds since the epoch (a decimal string or number) to ms, keeping the sub-ms part. */
function nanosToMs(value: unknown, where: string): number {
  if (typeof value !== 'string' && typeof value !== 'number') throw new OtlpBodyError(`${where} must be a decimal number of nanoseconds`);
  const nanos = BigInt(value);
  return Number(nanos / 1_000_000n) + Number(nanos % 1_000_000n) / 1e6;
}

const HEX = /^[0-9a-f]+$/;

function hexId(value: unknown, length: number, where: string): string {
  if (typeof value !== 'string' || value.length !== length || !HEX.test(value)) {
    throw new OtlpBodyError(`${where} must be ${length} lowercase hex digits (the OTLP JSON encoding), got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Decodes an `ExportTraceServiceRequest` in the OTLP JSON encoding. @throws {OtlpBodyError} naming the field at fault. */
function decodeRequest(body: unknown): ReceivedSpan[] {
  if (!isRecord(body)) throw new OtlpBodyError('the body must be a JSON object');
  const spans: ReceivedSpan[] = [];
  for (const rs of list(body.resourceSpans, 'resourceSpans')) {
    if (!isRecord(rs)) throw new OtlpBodyError('resourceSpans[] must be objects');
    const resource = attributes(isRecord(rs.resource) ? rs.resource.attributes : undefined, 'resource.attributes');
    for (const ss of list(rs.scopeSpans, 'scopeSpans')) {
      if (!isRecord(ss)) throw new OtlpBodyError('scopeSpans[] must be objects');
      const scope = isRecord(ss.scope) && typeof ss.scope.name === 'string' ? ss.scope.name : '';
      for (const s of list(ss.spans, 'spans')) {
        if (!isRecord(s)) throw new OtlpBodyError('spans[] must be objects');
        const parent = s.parentSpanId === undefined || s.parentSpanId === '' ? undefined : hexId(s.parentSpanId, 16, 'parentSpanId');
        const status = isRecord(s.status) ? s.status : {};
        spans.push({
          traceId: hexId(s.traceId, 32, 'traceId'),
          spanId: hexId(s.spanId, 16, 'spanId'),
          parentSpanId: parent,
          name: typeof s.name === 'string' ? s.name : '',
          kind: typeof s.kind === 'number' ? s.kind : 0,
          startTimeMs: nanosToMs(s.startTimeUnixNano, 'startTimeUnixNano'),
          endTimeMs: nanosToMs(s.endTimeUnixNano, 'endTimeUnixNano'),
          attributes: attributes(s.attributes, 'attributes'),
          status: { code: typeof status.code === 'number' ? status.code : 0, ...(typeof status.message === 'string' ? { message: status.message } : {}) },
          resource,
          scope,
        });
      }
    }
  }
  return spans;
}

/**
 * Starts an {@link OtlpReceiver} on 127.0.0.1 and a free port.
 * @throws {Error} if it cannot listen.
 */
export async function startOtlpReceiver(options: StartOtlpReceiverOptions = {}): Promise<OtlpReceiver> {
  const maxBodyBytes = options.maxBodyBytes ?? 16 * 1024 * 1024;
  const spans: ReceivedSpan[] = [];
  const waiters = new Set<() => void>();
  const sockets = new Set<Socket>();
  let requests = 0;

  const answer = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (path !== '/v1/traces') return answer(res, 404, { message: `no such path ${path}; POST to /v1/traces` });
    if (req.method !== 'POST') return answer(res, 405, { message: 'use POST' });
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') return answer(res, 415, { message: `content type ${type || '(none)'} is not decoded here; send application/json` });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBodyBytes) return answer(res, 413, { message: `the body is larger than ${maxBodyBytes} bytes` });
      chunks.push(chunk);
    }
    let decoded: ReceivedSpan[];
    try {
      let raw = Buffer.concat(chunks);
      if ((req.headers['content-encoding'] ?? '').toLowerCase() === 'gzip') raw = gunzipSync(raw, { maxOutputLength: maxBodyBytes });
      decoded = decodeRequest(JSON.parse(raw.toString('utf8')));
    } catch (error) {
      return answer(res, 400, { message: (error as Error).message });
    }
    spans.push(...decoded);
    requests += 1;
    answer(res, 200, {});
    for (const wake of [...waiters]) wake();
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) answer(res, 500, { message: (error as Error).message });
      else res.destroy();
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  let closing: Promise<void> | undefined;

  const receiver: OtlpReceiver = {
    url,
    tracesUrl: `${url}/v1/traces`,
    spans,
    get requests() {
      return requests;
    },
    traces() {
      const byTrace = new Map<string, ReceivedSpan[]>();
      for (const span of spans) {
        const trace = byTrace.get(span.traceId);
        if (trace) trace.push(span);
        else byTrace.set(span.traceId, [span]);
      }
      return byTrace;
    },
    waitFor(predicate, waitOptions = {}) {
      const timeoutMs = waitOptions.timeoutMs ?? 30_000;
      return new Promise<void>((resolve, reject) => {
        const check = (): boolean => {
          if (!predicate(spans)) return false;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          const seen = spans.map((s) => `${s.name} ${s.traceId.slice(0, 8)}/${s.spanId.slice(0, 8)}<-${s.parentSpanId?.slice(0, 8) ?? 'root'}`);
          reject(new Error(`OTLP receiver: ${waitOptions.what ?? 'condition'} not met within ${timeoutMs} ms; ${spans.length} spans received: ${seen.join(', ').slice(0, 4000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
    [Symbol.asyncDispose]() {
      return receiver.close();
    },
  };
  return receiver;
}

import { randomBytes } from 'node:crypto';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { ConfigError, type Logger } from '@warren/core';
import type { TraceContext } from './traceparent.js';

/** Options of {@link createTracing}. */
export interface CreateTracingOptions {
  /** `service.name` of every span (`warren-supervisor`). */
  readonly serviceName: string;
  /** `service.instance.id`: which Warren instance (state directory, broker namespace) made the spans. */
  readonly instance?: string;
  /** `service.version`, when known. */
  readonly serviceVersion?: string;
  /**
   * The environment to read the OpenTelemetry variables from (the caller passes `process.env`;
   * packages never read it themselves). See {@link createTracing} for the variables read.
   */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Receives export failures (at most one line per {@link EXPORT_FAILURE_REPORT_MS}). Default: silent. */
  readonly logger?: Logger;
}

/** How to start a span with {@link Tracing.startSpan}. */
export interface StartSpanOptions {
  /** When it started, in ms since the Unix epoch. Default: now. */
  readonly startTimeMs?: number;
  /** Its parent; none: the span starts a new trace. */
  readonly parent?: TraceContext;
  readonly attributes?: Attributes;
  /** Default `internal`. */
  readonly kind?: SpanKind;
}

/** How a finished span ended, as {@link SpanRecord} gives it. */
export type SpanRecordStatus = { readonly code: 'unset' } | { readonly code: 'ok' } | { readonly code: 'error'; readonly message?: string };

/**
 * A finished span whose ids were chosen before it was recorded: one made by a process that cannot
 * export (the agent runner in its sandbox), or a trace's root whose id its children carry since
 * before a restart.
 */
export interface SpanRecord {
  readonly name: string;
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lowercase hex digits, not all zero. */
  readonly spanId: string;
  /** The parent span's id (16 hex digits); none: the trace's root. */
  readonly parentSpanId?: string;
  /** When it started and ended, in ms since the Unix epoch; an end before the start is taken as the start. */
  readonly startTimeMs: number;
  readonly endTimeMs: number;
  readonly attributes?: Attributes;
  readonly status?: SpanRecordStatus;
  readonly kind?: SpanKind;
}

/**
 * Traces for one service. When tracing is off every method is a no-op: spans are non-recording,
 * contexts are undefined, nothing is exported.
 */
export interface Tracing {
  /** Whether spans are recorded and exported (an OTLP endpoint is configured). */
  readonly enabled: boolean;
  /** The OTLP/HTTP traces URL spans are sent to (`http://host:4318/v1/traces`), when enabled. */
  readonly endpoint: string | undefined;
  /** The underlying OpenTelemetry tracer (a no-op tracer when disabled). */
  readonly tracer: Tracer;
  /** Starts a span (see {@link StartSpanOptions}); end it with `span.end(endTimeMs)`. */
  startSpan(name: string, options?: StartSpanOptions): Span;
  /**
   * Runs `fn` in a span named `name`: an exception is recorded on the span and its status set
   * to error, and the span always ends when `fn` settles. @returns what `fn` returns; rethrows what it throws.
   */
  withSpan<T>(name: string, options: StartSpanOptions, fn: (span: Span) => T | Promise<T>): Promise<T>;
  /** The trace context of `span` (for a `traceparent`), or undefined if it records nothing. */
  contextOf(span: Span): TraceContext | undefined;
  /**
   * Exports a finished span with the ids it gives (see {@link SpanRecord}). No-op when disabled.
   * @throws {ConfigError} if an id is not valid hex of the right length.
   */
  recordSpan(record: SpanRecord): void;
  /** A random trace id (32 hex digits, never all zero). */
  newTraceId(): string;
  /** A random span id (16 hex digits, never all zero). */
  newSpanId(): string;
  /** Exports every ended span now. Never rejects (a failure is logged). */
  flush(): Promise<void>;
  /** Flushes, then stops exporting; later spans are dropped. Idempotent; never rejects. */
  shutdown(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** How often an export failure is logged again while exports keep failing, in ms. */
export const EXPORT_FAILURE_REPORT_MS = 60_000;

/** A random id of `bytes` bytes in lowercase hex, never all zero (W3C trace context §3.2.2.3). */
export function randomId(bytes: number): string {
  for (;;) {
    const id = randomBytes(bytes).toString('hex');
    if (!/^0+$/.test(id)) return id;
  }
}

/** What {@link tracingConfigFromEnv} read. */
export interface TracingEnvConfig {
  /** The traces URL, or undefined when tracing is off. */
  readonly endpoint: string | undefined;
  /** Headers sent with each export request. */
  readonly headers: Record<string, string>;
  /** How long one export request (with its retries) may take, in ms. */
  readonly exportTimeoutMs: number;
  /** `OTEL_SERVICE_NAME`, which replaces the service's own name when set. */
  readonly serviceName: string | undefined;
  /** `OTEL_RESOURCE_ATTRIBUTES`: more resource attributes for every span. */
  readonly resourceAttributes: Record<string, string>;
  /** The batch span processor's settings. */
  readonly batch: {
    readonly scheduledDelayMillis: number;
    readonly maxQueueSize: number;
    readonly maxExportBatchSize: number;
    readonly exportTimeoutMillis: number;
  };
}

function nonEmpty(env: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

function positiveInteger(env: Readonly<Record<string, string | undefined>>, name: string, fallback: number): number {
  const raw = nonEmpty(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new ConfigError(name, `must be a positive integer, got ${JSON.stringify(raw)}`);
  return value;
}

function httpUrl(name: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(name, `must be an http(s) URL, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(name, `must be an http(s) URL, got ${JSON.stringify(value)}`);
  }
  return url;
}

/**
 * Parses `key=value,key2=value2` (values percent-encoded), as the OTLP exporter spec defines
 * `OTEL_EXPORTER_OTLP_HEADERS` and the resource SDK `OTEL_RESOURCE_ATTRIBUTES`.
 */
function parseKeyValues(name: string, raw: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  if (!raw) return headers;
  for (const pair of raw.split(',')) {
    if (pair.trim() === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ConfigError(name, `each entry must be key=value, got ${JSON.stringify(pair.trim().slice(0, 40))}`);
    try {
      headers[decodeURIComponent(pair.slice(0, eq).trim())] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      throw new ConfigError(name, `entry ${JSON.stringify(pair.trim().slice(0, 40))} is not percent-encoded correctly`);
    }
  }
  return headers;
}

/**
 * Reads the OpenTelemetry SDK variables Warren honours from `env`
 * (https://opentelemetry.io/docs/specs/otel/protocol/exporter/ and
 * https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/):
 * - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is), else `OTEL_EXPORTER_OTLP_ENDPOINT` with
 *   `v1/traces` appended: where spans go. Neither set: tracing is off.
 * - `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`: tracing is off.
 * - `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/json` (what is
 *   sent) or `http/protobuf` (accepted: OTLP/HTTP receivers take JSON on the same path); `grpc`
 *   is refused.
 * - `OTEL_EXPORTER_OTLP_TRACES_HEADERS` over `OTEL_EXPORTER_OTLP_HEADERS`: request headers.
 * - `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` over `OTEL_EXPORTER_OTLP_TIMEOUT`: ms one export request
 *   may take with its retries (default 10000); a collector that is down delays shutdown by this much.
 * - `OTEL_SERVICE_NAME`: the service name to report instead of the caller's;
 *   `OTEL_RESOURCE_ATTRIBUTES` (`key=value,…`): more resource attributes (the service's name,
 *   instance and version win over the same keys there).
 * - `OTEL_BSP_SCHEDULE_DELAY` (ms, default 5000), `OTEL_BSP_MAX_QUEUE_SIZE` (2048),
 *   `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512), `OTEL_BSP_EXPORT_TIMEOUT` (ms, 30000).
 * @throws {ConfigError} naming the variable that is invalid.
 */
export function tracingConfigFromEnv(env: Readonly<Record<string, string | undefined>>): TracingEnvConfig {
  const batch = {
    scheduledDelayMillis: positiveInteger(env, 'OTEL_BSP_SCHEDULE_DELAY', 5_000),
    maxQueueSize: positiveInteger(env, 'OTEL_BSP_MAX_QUEUE_SIZE', 2_048),
    maxExportBatchSize: positiveInteger(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512),
    exportTimeoutMillis: positiveInteger(env, 'OTEL_BSP_EXPORT_TIMEOUT', 30_000),
  };
  if (batch.maxExportBatchSize > batch.maxQueueSize) {
    throw new ConfigError('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', `must not exceed OTEL_BSP_MAX_QUEUE_SIZE (${batch.maxQueueSize})`);
  }
  const timeoutVar = nonEmpty(env, 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT') !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT' : 'OTEL_EXPORTER_OTLP_TIMEOUT';
  const exportTimeoutMs = positiveInteger(env, timeoutVar, 10_000);
  const serviceName = nonEmpty(env, 'OTEL_SERVICE_NAME');
  const resourceAttributes = parseKeyValues('OTEL_RESOURCE_ATTRIBUTES', nonEmpty(env, 'OTEL_RESOURCE_ATTRIBUTES'));
  const off = { endpoint: undefined, headers: {}, exportTimeoutMs, serviceName, resourceAttributes, batch };
  if (nonEmpty(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return off;
  if (nonEmpty(env, 'OTEL_TRACES_EXPORTER')?.toLowerCase() === 'none') return off;
  const specific = nonEmpty(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const general = nonEmpty(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  let endpoint: string | undefined;
  if (specific !== undefined) {
    endpoint = httpUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', specific).href;
  } else if (general !== undefined) {
    const base = httpUrl('OTEL_EXPORTER_OTLP_ENDPOINT', general).href;
    endpoint = `${base.endsWith('/') ? base : `${base}/`}v1/traces`;
  }
  if (endpoint === undefined) return off;
  const protocolVar = nonEmpty(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = nonEmpty(env, protocolVar);
  if (protocol !== undefined && protocol !== 'http/json' && protocol !== 'http/protobuf') {
    throw new ConfigError(protocolVar, `must be http/json or http/protobuf (Warren exports OTLP/HTTP with JSON), got ${JSON.stringify(protocol)}`);
  }
  const headers = {
    ...parseKeyValues('OTEL_EXPORTER_OTLP_HEADERS', nonEmpty(env, 'OTEL_EXPORTER_OTLP_HEADERS')),
    ...parseKeyValues('OTEL_EXPORTER_OTLP_TRACES_HEADERS', nonEmpty(env, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS')),
  };
  return { ...off, endpoint, headers };
}

export function toStatus(status: SpanRecordStatus | undefined): { code: SpanStatusCode; message?: string } | undefined {
  switch (status?.code) {
    case undefined:
    case 'unset':
      return undefined;
    case 'ok':
      return { code: SpanStatusCode.OK };
    case 'error':
      return { code: SpanStatusCode.ERROR, ...(status.message === undefined ? {} : { message: status.message }) };
  }
}

export function parentContext(parent: TraceContext | undefined): Context {
  if (!parent) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.traceFlags, isRemote: true });
}

const noopTracer: Tracer = trace.getTracerProvider().getTracer('warren-noop');

/** A span that records nothing (the invalid, all-zero context). */
export const noopSpan = (): Span => trace.wrapSpanContext({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 });

/** A {@link Tracing} that records nothing. */
function disabledTracing(): Tracing {
  const tracing: Tracing = {
    enabled: false,
    endpoint: undefined,
    tracer: noopTracer,
    startSpan: () => noopSpan(),
    withSpan: async (_name, _options, fn) => fn(noopSpan()),
    contextOf: () => undefined,
    recordSpan: () => undefined,
    newTraceId: () => randomId(16),
    newSpanId: () => randomId(8),
    flush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
  return tracing;
}

/**
 * Sets up tracing for one service: an OpenTelemetry tracer provider (SDK 2.x,
 * `BasicTracerProvider`) that records every span (always-on sampler) and sends them in batches
 * (`BatchSpanProcessor`) to an OTLP/HTTP endpoint as JSON, when the environment names one (see
 * {@link tracingConfigFromEnv}); otherwise a no-op {@link Tracing} that costs next to nothing. No
 * global provider, context manager or propagator is registered: callers pass parents explicitly.
 * Close it with {@link Tracing.shutdown}, which flushes. The SDK and the exporter (~10 MiB of a
 * process's memory) are loaded only when an endpoint is named.
 * @throws {ConfigError} (as a rejection) if an OpenTelemetry variable is invalid.
 */
export async function createTracing(options: CreateTracingOptions): Promise<Tracing> {
  const config = tracingConfigFromEnv(options.env);
  const endpoint = config.endpoint;
  if (endpoint === undefined) return disabledTracing();
  const { sdkTracing } = await import('./tracing-sdk.js');
  return sdkTracing({ ...config, endpoint }, options);
}

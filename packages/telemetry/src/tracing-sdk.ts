/**
 * The recording half of {@link createTracing}: the OpenTelemetry SDK's tracer provider and the
 * OTLP/HTTP exporter, in a module of its own so that a process that traces nothing never loads
 * them (`createTracing` imports it only when an endpoint is named).
 */
import { SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  type IdGenerator,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { ConfigError, silentLogger, type Logger } from '@warren/core';
import { isValidSpanId, isValidTraceId, TRACE_FLAG_SAMPLED } from './traceparent.js';
import {
  EXPORT_FAILURE_REPORT_MS,
  noopSpan,
  parentContext,
  randomId,
  toStatus,
  type CreateTracingOptions,
  type StartSpanOptions,
  type Tracing,
  type TracingEnvConfig,
} from './tracing.js';

/**
 * Random ids, except for the next span when {@link ChosenIdGenerator.next} says otherwise: the
 * SDK's tracer asks for the span id, then (for a root) the trace id, synchronously inside
 * `startSpan`, so setting `next` right before that call gives that one span its ids.
 */
class ChosenIdGenerator implements IdGenerator {
  next: { traceId: string; spanId: string } | undefined;

  generateTraceId(): string {
    const chosen = this.next?.traceId;
    return chosen ?? randomId(16);
  }

  generateSpanId(): string {
    const chosen = this.next?.spanId;
    return chosen ?? randomId(8);
  }
}

/** The OTLP/HTTP exporter, with its failures reported on our logger instead of the global `diag`. */
class ReportingExporter implements SpanExporter {
  private lastReportMs = 0;
  private failing = false;

  constructor(
    private readonly inner: SpanExporter,
    private readonly endpoint: string,
    private readonly log: Logger,
  ) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      const nowMs = Date.now();
      if (result.code === ExportResultCode.SUCCESS) {
        if (this.failing) this.log.info({ endpoint: this.endpoint }, 'trace export works again');
        this.failing = false;
      } else if (!this.failing || nowMs - this.lastReportMs >= EXPORT_FAILURE_REPORT_MS) {
        this.failing = true;
        this.lastReportMs = nowMs;
        this.log.warn({ endpoint: this.endpoint, spans: spans.length, err: result.error }, 'cannot export spans; they are dropped');
      }
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * A recording {@link Tracing} for `config` (its `endpoint` set): see {@link createTracing}, whose
 * options `options` are.
 */
export function sdkTracing(config: TracingEnvConfig & { readonly endpoint: string }, options: CreateTracingOptions): Tracing {
  const endpoint = config.endpoint;
  const log = options.logger ?? silentLogger;
  const ids = new ChosenIdGenerator();
  const exporter = new ReportingExporter(
    new OTLPTraceExporter({ url: endpoint, headers: config.headers, timeoutMillis: config.exportTimeoutMs }),
    endpoint,
    log,
  );
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      ...config.resourceAttributes,
      [ATTR_SERVICE_NAME]: config.serviceName ?? options.serviceName,
      ...(options.instance === undefined ? {} : { [ATTR_SERVICE_INSTANCE_ID]: options.instance }),
      ...(options.serviceVersion === undefined ? {} : { [ATTR_SERVICE_VERSION]: options.serviceVersion }),
    }),
    sampler: new AlwaysOnSampler(),
    idGenerator: ids,
    spanProcessors: [new BatchSpanProcessor(exporter, config.batch)],
  });
  const tracer = provider.getTracer('@warren/telemetry');
  let closing: Promise<void> | undefined;

  const startSpan = (name: string, opts: StartSpanOptions = {}): Span => {
    if (closing) return noopSpan();
    return tracer.startSpan(
      name,
      {
        kind: opts.kind ?? SpanKind.INTERNAL,
        ...(opts.startTimeMs === undefined ? {} : { startTime: opts.startTimeMs }),
        ...(opts.attributes === undefined ? {} : { attributes: opts.attributes }),
        root: opts.parent === undefined,
      },
      parentContext(opts.parent),
    );
  };

  const tracing: Tracing = {
    enabled: true,
    endpoint,
    tracer,
    startSpan,
    async withSpan(name, opts, fn) {
      const span = startSpan(name, opts);
      try {
        return await fn(span);
      } catch (error) {
        span.recordException(error instanceof Error ? error : String(error));
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
        throw error;
      } finally {
        span.end();
      }
    },
    contextOf(span) {
      const context = span.spanContext();
      if (!span.isRecording() || !isValidTraceId(context.traceId) || !isValidSpanId(context.spanId)) return undefined;
      return { traceId: context.traceId, spanId: context.spanId, traceFlags: context.traceFlags };
    },
    recordSpan(record) {
      if (!isValidTraceId(record.traceId)) throw new ConfigError('span.traceId', `must be 32 lowercase hex digits, not all zero, got ${JSON.stringify(record.traceId)}`);
      if (!isValidSpanId(record.spanId)) throw new ConfigError('span.spanId', `must be 16 lowercase hex digits, not all zero, got ${JSON.stringify(record.spanId)}`);
      if (record.parentSpanId !== undefined && !isValidSpanId(record.parentSpanId)) {
        throw new ConfigError('span.parentSpanId', `must be 16 lowercase hex digits, not all zero, got ${JSON.stringify(record.parentSpanId)}`);
      }
      if (closing) return;
      const parent = record.parentSpanId === undefined ? undefined : { traceId: record.traceId, spanId: record.parentSpanId, traceFlags: TRACE_FLAG_SAMPLED };
      ids.next = { traceId: record.traceId, spanId: record.spanId };
      let span: Span;
      try {
        span = startSpan(record.name, {
          startTimeMs: record.startTimeMs,
          ...(parent ? { parent } : {}),
          ...(record.attributes ? { attributes: record.attributes } : {}),
          ...(record.kind === undefined ? {} : { kind: record.kind }),
        });
      } finally {
        ids.next = undefined;
      }
      const status = toStatus(record.status);
      if (status) span.setStatus(status);
      span.end(Math.max(record.startTimeMs, record.endTimeMs));
    },
    newTraceId: () => randomId(16),
    newSpanId: () => randomId(8),
    async flush() {
      await provider.forceFlush().catch((error: unknown) => log.warn({ err: error, endpoint }, 'cannot flush spans'));
    },
    shutdown() {
      closing ??= provider.shutdown().catch((error: unknown) => log.warn({ err: error, endpoint }, 'cannot shut tracing down cleanly'));
      return closing;
    },
    [Symbol.asyncDispose]() {
      return tracing.shutdown();
    },
  };
  return tracing;
}

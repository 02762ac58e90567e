/**
 * @warren/telemetry: OpenTelemetry tracing for Warren — a tracer provider that exports over
 * OTLP/HTTP only when the environment names an endpoint (a no-op otherwise), spans with explicit
 * times and parents, spans recorded with ids chosen elsewhere (an agent's run), and the W3C
 * `traceparent` / `tracestate` helpers that carry a trace across NATS and into the sandbox.
 *
 * ```ts
 * import { createTracing, formatTraceparent, parseTraceparent } from '@warren/telemetry';
 *
 * await using tracing = createTracing({ serviceName: 'warren-supervisor', instance: 'default', env: process.env });
 * const span = tracing.startSpan('publish', { startTimeMs: Date.now() });
 * const context = tracing.contextOf(span); // undefined when tracing is off
 * const traceparent = context && formatTraceparent(context); // '00-<trace id>-<span id>-01'
 * span.end();
 * parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01').traceId; // '0af76519…'
 * ```
 */
export { createTracing, tracingConfigFromEnv, EXPORT_FAILURE_REPORT_MS } from './tracing.js';
export type { CreateTracingOptions, StartSpanOptions, SpanRecord, SpanRecordStatus, Tracing, TracingEnvConfig } from './tracing.js';
export {
  parseTraceparent,
  tryParseTraceparent,
  formatTraceparent,
  isSampled,
  isValidTraceId,
  isValidSpanId,
  parseTracestate,
  isValidTracestate,
  TRACE_FLAG_SAMPLED,
  TRACEPARENT_VERSION,
  MAX_TRACESTATE_MEMBERS,
} from './traceparent.js';
export type { TraceContext } from './traceparent.js';
export { TraceparentError } from './errors.js';
export { SpanKind, SpanStatusCode } from '@opentelemetry/api';
export type { Span, Attributes } from '@opentelemetry/api';

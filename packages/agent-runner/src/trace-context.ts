import { randomBytes } from 'node:crypto';

/**
 * The few W3C trace context operations the runner needs (https://www.w3.org/TR/trace-context/),
 * with Node's built-ins alone: the runner runs in the sandbox, where `@warren/telemetry` and the
 * OpenTelemetry SDK are not installed. The supervisor side uses `@warren/telemetry`'s full parser.
 */

/** A parsed `traceparent`: the trace, the parent span and the flags (2 lowercase hex digits). */
export interface ParentContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly flags: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * Reads a `traceparent` as Trace Context Level 1 §3.2 says: version not `ff`; version `00` exactly
 * 55 characters; a higher version read for its first four fields; ids lowercase hex, not all zero.
 * @returns the context, or undefined for a missing or invalid value (the execution then runs
 *   without a trace, as the spec asks of a receiver).
 */
export function parseParentContext(value: unknown): ParentContext | undefined {
  if (typeof value !== 'string') return undefined;
  const match = TRACEPARENT.exec(value.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined;
  return { traceId: traceId!, spanId: spanId!, flags: flags! };
}

/** A random span id: 16 lowercase hex digits, never all zero. */
export function newSpanId(): string {
  for (;;) {
    const id = randomBytes(8).toString('hex');
    if (id !== '0000000000000000') return id;
  }
}

/** Formats a version `00` `traceparent` for span `spanId` of the trace. */
export function formatTraceparent(traceId: string, spanId: string, flags: string): string {
  return `00-${traceId}-${spanId}-${flags}`;
}

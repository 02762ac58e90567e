import { TraceparentError } from './errors.js';

/**
 * The W3C trace context of one span, as a `traceparent` header carries it
 * (https://www.w3.org/TR/trace-context/#traceparent-header).
 */
export interface TraceContext {
  /** The trace id: 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** The id of the span the receiver's spans become children of (the header's `parent-id`): 16 lowercase hex digits, not all zero. */
  readonly spanId: string;
  /** The trace flags, 0–255; bit 0 (`0x01`) is `sampled`. */
  readonly traceFlags: number;
}

/** The `sampled` bit of the trace flags (W3C trace context §3.2.2.5). */
export const TRACE_FLAG_SAMPLED = 0x01;

/** The only `traceparent` version this module writes. */
export const TRACEPARENT_VERSION = '00';

const HEX_LC = /^[0-9a-f]+$/;
const ALL_ZERO = /^0+$/;

/** Whether `id` is a valid trace id: 32 lowercase hex digits, not all zero. */
export function isValidTraceId(id: string): boolean {
  return id.length === 32 && HEX_LC.test(id) && !ALL_ZERO.test(id);
}

/** Whether `id` is a valid span (parent) id: 16 lowercase hex digits, not all zero. */
export function isValidSpanId(id: string): boolean {
  return id.length === 16 && HEX_LC.test(id) && !ALL_ZERO.test(id);
}

/**
 * Parses a `traceparent` header value, following W3C Trace Context Level 1 §3.2 and the
 * versioning rules of §3.2.4: version `00` must be exactly `00-<trace-id>-<parent-id>-<flags>`
 * (55 characters); a higher version (not `ff`) is read for its first four fields when it is at
 * least 55 characters long and, if longer, continues with `-`. Hex digits must be lowercase;
 * all-zero trace and parent ids are invalid. Leading and trailing spaces or tabs (HTTP's OWS) are
 * ignored.
 * @returns the trace id, the parent id (as `spanId`) and the flags.
 * @throws {TraceparentError} (`WARREN_TRACEPARENT`) naming the field at fault.
 */
export function parseTraceparent(header: string): TraceContext {
  const value = header.replace(/^[ \t]+|[ \t]+$/g, '');
  const version = value.slice(0, 2);
  if (version.length !== 2 || !HEX_LC.test(version) || value[2] !== '-') {
    throw new TraceparentError('version', header, 'must be two lowercase hex digits followed by "-"');
  }
  if (version === 'ff') throw new TraceparentError('version', header, 'ff is forbidden');
  if (value.length < 55) throw new TraceparentError('format', header, 'is shorter than 55 characters');
  if (version === TRACEPARENT_VERSION && value.length !== 55) {
    throw new TraceparentError('format', header, 'of version 00 must be exactly 55 characters');
  }
  if (value.length > 55 && value[55] !== '-') {
    throw new TraceparentError('format', header, 'must continue with "-" after trace-flags');
  }
  const traceId = value.slice(3, 35);
  const spanId = value.slice(36, 52);
  const flags = value.slice(53, 55);
  if (value[35] !== '-' || value[52] !== '-') throw new TraceparentError('format', header, 'must separate its fields with "-"');
  if (!isValidTraceId(traceId)) throw new TraceparentError('trace-id', header, 'must be 32 lowercase hex digits, not all zero');
  if (!isValidSpanId(spanId)) throw new TraceparentError('parent-id', header, 'must be 16 lowercase hex digits, not all zero');
  if (!HEX_LC.test(flags)) throw new TraceparentError('trace-flags', header, 'must be two lowercase hex digits');
  return { traceId, spanId, traceFlags: Number.parseInt(flags, 16) };
}

/** {@link parseTraceparent}, returning undefined for a missing or invalid value instead of throwing. */
export function tryParseTraceparent(header: string | undefined): TraceContext | undefined {
  if (header === undefined) return undefined;
  try {
    return parseTraceparent(header);
  } catch (error) {
    if (error instanceof TraceparentError) return undefined;
    throw error;
  }
}

/**
 * Formats a version `00` `traceparent`: `00-<traceId>-<spanId>-<flags as 2 hex digits>`.
 * @throws {TraceparentError} if an id is invalid or the flags are not an integer 0–255.
 */
export function formatTraceparent(context: TraceContext): string {
  const { traceId, spanId, traceFlags } = context;
  const shown = `${traceId}-${spanId}`;
  if (!isValidTraceId(traceId)) throw new TraceparentError('trace-id', shown, 'must be 32 lowercase hex digits, not all zero');
  if (!isValidSpanId(spanId)) throw new TraceparentError('parent-id', shown, 'must be 16 lowercase hex digits, not all zero');
  if (!Number.isInteger(traceFlags) || traceFlags < 0 || traceFlags > 255) {
    throw new TraceparentError('trace-flags', shown, `must be an integer from 0 to 255, got ${traceFlags}`);
  }
  return `${TRACEPARENT_VERSION}-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}`;
}

/** Whether the `sampled` flag is set. */
export function isSampled(context: TraceContext): boolean {
  return (context.traceFlags & TRACE_FLAG_SAMPLED) === TRACE_FLAG_SAMPLED;
}

/** The most list members a `tracestate` may have (W3C trace context §3.3.1.1). */
export const MAX_TRACESTATE_MEMBERS = 32;

// §3.3.1.3: simple-key, or tenant-id@system-id (multi-tenant key); value: printable ASCII without
// ',' and '=', not ending in a space.
const TRACESTATE_KEY = /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$/;
const TRACESTATE_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * Parses a `tracestate` header value (W3C trace context §3.3): comma-separated `key=value` list
 * members, optional spaces or tabs around each, empty members skipped, at most
 * {@link MAX_TRACESTATE_MEMBERS}, each key at most once.
 * @returns the members in order, as `[key, value]` pairs.
 * @throws {TraceparentError} with field `tracestate` naming the member at fault.
 */
export function parseTracestate(header: string): [string, string][] {
  const members: [string, string][] = [];
  const seen = new Set<string>();
  for (const raw of header.split(',')) {
    const member = raw.replace(/^[ \t]+|[ \t]+$/g, '');
    if (member === '') continue;
    const eq = member.indexOf('=');
    const key = eq === -1 ? member : member.slice(0, eq);
    const value = eq === -1 ? '' : member.slice(eq + 1);
    if (eq === -1 || !TRACESTATE_KEY.test(key) || !TRACESTATE_VALUE.test(value)) {
      throw new TraceparentError('tracestate', header, `member ${JSON.stringify(member.slice(0, 40))} is not key=value as §3.3.1.3 defines them`);
    }
    if (seen.has(key)) throw new TraceparentError('tracestate', header, `key ${JSON.stringify(key)} appears twice`);
    seen.add(key);
    members.push([key, value]);
  }
  if (members.length > MAX_TRACESTATE_MEMBERS) {
    throw new TraceparentError('tracestate', header, `has ${members.length} members; at most ${MAX_TRACESTATE_MEMBERS} are allowed`);
  }
  return members;
}

/** Whether `header` is a valid `tracestate` value (see {@link parseTracestate}). */
export function isValidTracestate(header: string): boolean {
  try {
    parseTracestate(header);
    return true;
  } catch (error) {
    if (error instanceof TraceparentError) return false;
    throw error;
  }
}

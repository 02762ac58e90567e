import { describe, expect, it } from 'vitest';
import {
  formatTraceparent,
  isSampled,
  isValidTracestate,
  parseTraceparent,
  parseTracestate,
  tryParseTraceparent,
  TraceparentError,
} from '@warren/telemetry';

// The examples of W3C Trace Context Level 1, §3.2.2 and §3.3.
const SPEC_EXAMPLE = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';

function fieldOf(value: string): string {
  try {
    parseTraceparent(value);
  } catch (error) {
    expect(error).toBeInstanceOf(TraceparentError);
    expect((error as TraceparentError).code).toBe('WARREN_TRACEPARENT');
    return (error as TraceparentError).field;
  }
  throw new Error(`${value} parsed`);
}

describe('parseTraceparent', () => {
  it('reads the specification example', () => {
    expect(parseTraceparent(SPEC_EXAMPLE)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 });
    expect(isSampled(parseTraceparent(SPEC_EXAMPLE))).toBe(true);
    expect(isSampled(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-00`))).toBe(false);
  });

  it('ignores spaces and tabs around the value', () => {
    expect(parseTraceparent(` \t${SPEC_EXAMPLE}\t `).traceId).toBe(TRACE_ID);
  });

  it('rejects version ff and versions that are not two lowercase hex digits', () => {
    expect(fieldOf(`ff-${TRACE_ID}-${SPAN_ID}-01`)).toBe('version');
    expect(fieldOf(`0g-${TRACE_ID}-${SPAN_ID}-01`)).toBe('version');
    expect(fieldOf(`0A-${TRACE_ID}-${SPAN_ID}-01`)).toBe('version');
    expect(fieldOf(`000-${TRACE_ID}-${SPAN_ID}-01`)).toBe('version');
  });

  it('rejects all-zero trace and parent ids', () => {
    expect(fieldOf(`00-${'0'.repeat(32)}-${SPAN_ID}-01`)).toBe('trace-id');
    expect(fieldOf(`00-${TRACE_ID}-${'0'.repeat(16)}-01`)).toBe('parent-id');
  });

  it('rejects uppercase or non-hex ids and flags', () => {
    expect(fieldOf(`00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`)).toBe('trace-id');
    expect(fieldOf(`00-${TRACE_ID}-${SPAN_ID.replace('f', 'x')}-01`)).toBe('parent-id');
    expect(fieldOf(`00-${TRACE_ID}-${SPAN_ID}-0G`)).toBe('trace-flags');
  });

  it('rejects version 00 with anything after the flags, short values and wrong separators', () => {
    expect(fieldOf(`${SPEC_EXAMPLE}-extra`)).toBe('format');
    expect(fieldOf(SPEC_EXAMPLE.slice(0, 54))).toBe('format');
    expect(fieldOf(`00-${TRACE_ID}_${SPAN_ID}-01`)).toBe('format');
    expect(fieldOf('')).toBe('version');
  });

  it('reads a future version for its first four fields, which must then continue with "-"', () => {
    expect(parseTraceparent(`cc-${TRACE_ID}-${SPAN_ID}-01-what-the-future-brings`)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 });
    expect(parseTraceparent(`01-${TRACE_ID}-${SPAN_ID}-09`).traceFlags).toBe(9);
    expect(fieldOf(`01-${TRACE_ID}-${SPAN_ID}-01x`)).toBe('format');
  });

  it('tryParseTraceparent returns undefined for missing or invalid values', () => {
    expect(tryParseTraceparent(undefined)).toBeUndefined();
    expect(tryParseTraceparent('nope')).toBeUndefined();
    expect(tryParseTraceparent(SPEC_EXAMPLE)?.spanId).toBe(SPAN_ID);
  });
});

describe('formatTraceparent', () => {
  it('writes version 00 and round-trips through the parser', () => {
    const header = formatTraceparent({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 });
    expect(header).toBe(SPEC_EXAMPLE);
    expect(parseTraceparent(header)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 });
    expect(formatTraceparent({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 0 })).toBe(`00-${TRACE_ID}-${SPAN_ID}-00`);
  });

  it('refuses invalid ids and flags', () => {
    expect(() => formatTraceparent({ traceId: '0'.repeat(32), spanId: SPAN_ID, traceFlags: 1 })).toThrow(TraceparentError);
    expect(() => formatTraceparent({ traceId: TRACE_ID, spanId: 'abc', traceFlags: 1 })).toThrow(/parent-id/);
    expect(() => formatTraceparent({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 256 })).toThrow(/trace-flags/);
    expect(() => formatTraceparent({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1.5 })).toThrow(/trace-flags/);
  });
});

describe('parseTracestate', () => {
  it('reads the specification examples, skipping empty members', () => {
    expect(parseTracestate('congo=t61rcWkgMzE')).toEqual([['congo', 't61rcWkgMzE']]);
    expect(parseTracestate('rojo=00f067aa0ba902b7, congo=t61rcWkgMzE ,,')).toEqual([
      ['rojo', '00f067aa0ba902b7'],
      ['congo', 't61rcWkgMzE'],
    ]);
    expect(parseTracestate('fw529a3039@dt=value')).toEqual([['fw529a3039@dt', 'value']]);
    expect(parseTracestate('')).toEqual([]);
  });

  it('refuses invalid keys and values, duplicate keys and more than 32 members', () => {
    expect(isValidTracestate('Congo=x')).toBe(false);
    expect(isValidTracestate('congo')).toBe(false);
    expect(isValidTracestate('congo=a=b')).toBe(false);
    expect(isValidTracestate('congo=')).toBe(false);
    expect(isValidTracestate('congo=t\u00e9')).toBe(false);
    expect(isValidTracestate('congo=two words ')).toBe(true);
    expect(isValidTracestate('congo=1,congo=2')).toBe(false);
    const members = Array.from({ length: 33 }, (_, i) => `k${i}=v`);
    expect(isValidTracestate(members.slice(0, 32).join(','))).toBe(true);
    expect(isValidTracestate(members.join(','))).toBe(false);
  });
});

describe('@warren/telemetry public surface', () => {
  it('exports exactly these values', async () => {
    const telemetry = await import('@warren/telemetry');
    expect(Object.keys(telemetry).sort()).toEqual([
      'EXPORT_FAILURE_REPORT_MS',
      'MAX_TRACESTATE_MEMBERS',
      'SpanKind',
      'SpanStatusCode',
      'TRACEPARENT_VERSION',
      'TRACE_FLAG_SAMPLED',
      'TraceparentError',
      'createTracing',
      'formatTraceparent',
      'isSampled',
      'isValidSpanId',
      'isValidTraceId',
      'isValidTracestate',
      'parseTraceparent',
      'parseTracestate',
      'tracingConfigFromEnv',
      'tryParseTraceparent',
    ]);
  });
});

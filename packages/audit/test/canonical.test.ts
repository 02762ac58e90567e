import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, GENESIS_HASH, rowHash } from '@warren/audit';
import { canonicalize } from '../src/canonical.js';

/** The definition of canonical JSON, written out plainly: reduce with JSON.stringify, then sort keys. */
function referenceCanonicalJson(value: unknown): string {
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) return 'null';
  const write = (v: unknown): string => {
    if (Array.isArray(v)) return `[${v.map(write).join(',')}]`;
    if (v !== null && typeof v === 'object') {
      const keys = Object.keys(v).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${write((v as Record<string, unknown>)[k])}`).join(',')}}`;
    }
    return JSON.stringify(v);
  };
  return write(JSON.parse(text));
}

function outcome(fn: () => string): { text: string } | { error: string } {
  try {
    return { text: fn() };
  } catch (error) {
    return { error: (error as Error).constructor.name };
  }
}

describe('canonicalJson', () => {
  it('sorts keys at every depth and follows JSON.stringify for the rest', () => {
    expect(canonicalJson({ b: 1, a: [{ z: 1, y: undefined, x: NaN }], c: new Date(0) })).toBe(
      '{"a":[{"x":null,"z":1}],"b":1,"c":"1970-01-01T00:00:00.000Z"}',
    );
  });

  it('agrees with the definition on edge cases', () => {
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = { cycle };
    const sparse: unknown[] = [];
    sparse[0] = 1;
    sparse[2] = 3;
    let deep: unknown = { leaf: true };
    for (let i = 0; i < 200; i++) deep = { [`k${i % 3}`]: [deep], z: i };
    const values: unknown[] = [
      { 10: 'a', 9: 'b', '1a': 'c', '': 'd', 'é': 1, Z: 2, a: 3, '\ud83d\ude00': 4, '\u00ff': 5 },
      { s: 'quote " backslash \\ newline \n tab \t nul \u0000 lone \ud800 pair \ud83d\ude00 line sep \u2028' },
      { n: [-0, 0, 1e21, 1e-7, -1.5, Number.MAX_VALUE, Number.MIN_VALUE, Infinity, -Infinity, NaN] },
      { u: undefined, f: () => 1, s: Symbol('x'), arr: [undefined, () => 1, Symbol('y'), null] },
      { sparse },
      { date: new Date(86_400_000), nested: { date: new Date(0) } },
      { boxed: [new Number(1), new String('ab'), new Boolean(false)] },
      { custom: { toJSON: (key: string) => ({ key, b: 2, a: 1 }) } },
      { toJSON: 'not a function', b: 1 },
      Object.assign(Object.create(null) as object, { b: 1, a: { d: 2, c: 3 } }),
      { map: new Map([['a', 1]]), set: new Set([1]), typed: new Uint8Array([1, 2]) },
      { instance: new (class Point { constructor(readonly y = 2, readonly x = 1) {} })() },
      JSON.parse('{"__proto__": {"b": 1, "a": 2}, "x": 1}') as unknown,
      { big: 10n },
      cycle,
      deep,
      { empty: {}, emptyArray: [], nestedEmpty: [{}, []] },
      [3, { b: 1, a: 2 }],
      'text',
      42,
      null,
      undefined,
      true,
    ];
    for (const value of values) {
      expect(outcome(() => canonicalJson(value))).toEqual(outcome(() => referenceCanonicalJson(value)));
    }
  });

  it('agrees with the definition on generated values', () => {
    fc.assert(
      fc.property(
        fc.anything({
          withBoxedValues: true,
          withDate: true,
          withMap: true,
          withSet: true,
          withNullPrototype: true,
          withSparseArray: true,
          withTypedArray: true,
          withObjectString: true,
        }),
        (value) => {
          expect(outcome(() => canonicalJson(value))).toEqual(outcome(() => referenceCanonicalJson(value)));
        },
      ),
      { numRuns: 2_000 },
    );
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(canonicalJson(value)).toBe(referenceCanonicalJson(value));
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('canonicalize', () => {
  it('returns the canonical text and a fresh copy equal to parsing it', () => {
    const details = { b: [-0, NaN, undefined, { d: new Date(0), c: 1 }], a: 'x', u: undefined, 10: 'ten' };
    const { json, data } = canonicalize(details);
    expect(json).toBe(canonicalJson(details));
    expect(data).toEqual(JSON.parse(json));
    const plain = { list: [{ y: 1, x: [2] }], n: -0 };
    const copied = canonicalize(plain).data as typeof plain;
    expect(copied).toEqual({ list: [{ x: [2], y: 1 }], n: 0 });
    expect(copied.list).not.toBe(plain.list);
    expect(copied.list[0]).not.toBe(plain.list[0]);
  });

  it('gives data equal to the parsed text on generated values', () => {
    fc.assert(
      fc.property(fc.anything({ withBoxedValues: true, withDate: true, withNullPrototype: true, withSparseArray: true }), (value) => {
        let result: ReturnType<typeof canonicalize>;
        try {
          result = canonicalize(value);
        } catch {
          return;
        }
        expect(result.json).toBe(referenceCanonicalJson(value));
        expect(result.data).toEqual(JSON.parse(result.json));
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('rowHash', () => {
  it('is SHA-256 of the documented JSON array', () => {
    const fields = {
      seq: 7,
      timeMs: 1_764_979_200_000,
      actor: 'agent:shell-1',
      action: 'task.complete',
      object: 'task:"quoted"\u00e9',
      decision: null,
      detailsJson: '{"a":"\\n"}',
      prevHash: GENESIS_HASH,
    } as const;
    const expected = createHash('sha256')
      .update(
        JSON.stringify([
          fields.seq,
          fields.timeMs,
          fields.actor,
          fields.action,
          fields.object,
          fields.decision,
          fields.detailsJson,
          fields.prevHash,
        ]),
        'utf8',
      )
      .digest('hex');
    expect(rowHash(fields)).toBe(expected);
  });
});

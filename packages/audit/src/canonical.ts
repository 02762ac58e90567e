import * as crypto from 'node:crypto';

/** The hash that precedes the first row of a trail: 64 zeros. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Serializes `value` as canonical JSON: first reduced to plain JSON data exactly as `JSON.stringify`
 * does (`toJSON` is called, `undefined` members are dropped, non-finite numbers become `null`), then
 * written with the keys of every object sorted by UTF-16 code unit order and no whitespace.
 * Two values that are equal as JSON data give the same string.
 * @throws {TypeError} for values `JSON.stringify` rejects (BigInt, cycles).
 */
export function canonicalJson(value: unknown): string {
  return canonicalize(value).json;
}

/** {@link canonicalJson}'s text of a value, and the JSON data that text stands for. */
export interface Canonical {
  /** The canonical JSON text. */
  readonly json: string;
  /** A fresh copy of the value as JSON data: what `JSON.parse(json)` returns, deeply equal. */
  readonly data: unknown;
}

/**
 * The canonical JSON of `value` (see {@link canonicalJson}) together with the JSON data it stands
 * for, without parsing the text again: plain data is copied into objects whose keys are inserted
 * in sorted order, and that copy is written with one `JSON.stringify`.
 * @throws {TypeError} for values `JSON.stringify` rejects (BigInt, cycles).
 */
export function canonicalize(value: unknown): Canonical {
  const data = copySorted(value, 0);
  if (data !== NOT_PLAIN) return { json: JSON.stringify(data), data };
  const json = writeReduced(value);
  return { json, data: JSON.parse(json) as unknown };
}

/** What {@link copySorted} returns for a value it leaves to {@link writeReduced}. */
const NOT_PLAIN: unique symbol = Symbol('not plain JSON data');

/** Deeper plain data than this is left to {@link writeReduced}, which also reports cycles. */
const MAX_PLAIN_DEPTH = 64;

/**
 * Copies plain data (strings, numbers, booleans, null, arrays, and objects whose prototype is
 * `Object.prototype` or null and that have no `toJSON`) as `JSON.parse(JSON.stringify(value))`
 * would, with every object's keys inserted in sorted order, so that `JSON.stringify` of the copy is
 * the canonical text. Returns {@link NOT_PLAIN} for anything else, and for objects with keys that
 * start with a digit (JavaScript enumerates array-index keys first, whatever the insertion order)
 * or a `__proto__` key (assigning it would set the prototype).
 */
function copySorted(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      // JSON writes -0 as 0 and non-finite numbers as null.
      return Number.isFinite(value) ? value + 0 : null;
    case 'object':
      break;
    default:
      return NOT_PLAIN;
  }
  if (value === null) return null;
  if (depth >= MAX_PLAIN_DEPTH || typeof (value as { toJSON?: unknown }).toJSON === 'function') return NOT_PLAIN;
  if (Array.isArray(value)) {
    const copy = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      // JSON.stringify writes array members it cannot represent as null.
      const copied = item === undefined || typeof item === 'function' || typeof item === 'symbol' ? null : copySorted(item, depth + 1);
      if (copied === NOT_PLAIN) return NOT_PLAIN;
      copy[i] = copied;
    }
    return copy;
  }
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return NOT_PLAIN;
  const record = value as Record<string, unknown>;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(record).sort()) {
    const first = key.charCodeAt(0);
    if ((first >= 0x30 && first <= 0x39) || key === '__proto__') return NOT_PLAIN;
    const member = record[key];
    // JSON.stringify drops object members it cannot represent.
    if (member === undefined || typeof member === 'function' || typeof member === 'symbol') continue;
    const copied = copySorted(member, depth + 1);
    if (copied === NOT_PLAIN) return NOT_PLAIN;
    copy[key] = copied;
  }
  return copy;
}

/** The definition: reduce to JSON data with `JSON.stringify`, then write it with sorted keys. */
function writeReduced(value: unknown): string {
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) return 'null';
  return writeSorted(JSON.parse(text) as unknown);
}

function writeSorted(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map(writeSorted).join(',')}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${writeSorted((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Lowercase hex SHA-256 of the UTF-8 bytes of `text`: one-shot `crypto.hash` where Node has it (20.12+). */
const sha256Hex: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'hex')
    : (text) => crypto.createHash('sha256').update(text, 'utf8').digest('hex');

/** The fields of one row that its hash covers. */
export interface HashedFields {
  readonly seq: number;
  readonly timeMs: number;
  readonly actor: string;
  readonly action: string;
  readonly object: string;
  readonly decision: 'allow' | 'deny' | null;
  /** The canonical JSON text of the details as stored, or null when the entry had none. */
  readonly detailsJson: string | null;
  readonly prevHash: string;
}

/**
 * The hash of one audit row: lowercase hex SHA-256 (FIPS 180-4) of the UTF-8 bytes of
 * `JSON.stringify([seq, timeMs, actor, action, object, decision, detailsJson, prevHash])`, where
 * `decision` is `"allow"`, `"deny"` or `null`, `detailsJson` is the canonical JSON text of the details
 * (see {@link canonicalJson}) as a JSON string, or `null`, and `prevHash` is the previous row's hash
 * (64 zeros for the first row).
 */
export function rowHash(fields: HashedFields): string {
  return hashRow(
    fields.seq,
    fields.timeMs,
    fields.actor,
    fields.action,
    fields.object,
    fields.decision,
    fields.detailsJson,
    fields.prevHash,
  );
}

/**
 * {@link rowHash} with the fields as arguments, for the append and verify loops (no object per row).
 * `decision` is typed as read from a stored row; callers check its value.
 */
export function hashRow(
  seq: number,
  timeMs: number,
  actor: string,
  action: string,
  object: string,
  decision: string | null,
  detailsJson: string | null,
  prevHash: string,
): string {
  return sha256Hex(JSON.stringify([seq, timeMs, actor, action, object, decision, detailsJson, prevHash]));
}

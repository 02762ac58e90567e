import { createHash } from 'node:crypto';

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
  const text = JSON.stringify(value);
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
  const serialized = JSON.stringify([
    fields.seq,
    fields.timeMs,
    fields.actor,
    fields.action,
    fields.object,
    fields.decision,
    fields.detailsJson,
    fields.prevHash,
  ]);
  return createHash('sha256').update(serialized, 'utf8').digest('hex');
}

/**
 * Byte- and text-level helpers shared by the parser and the updater: UTF-8 validation, locating the
 * frontmatter, timestamps and hashes.
 */
import { isUtf8 } from 'node:buffer';
import * as crypto from 'node:crypto';
import { relative, sep } from 'node:path';

/** The largest task file read: 1 MiB. Larger files are reported, not parsed. */
export const MAX_TASK_FILE_BYTES = 1024 * 1024;

/** Task ids and column ids: letters, digits, `.`, `_`, `-`. */
export const ID_PATTERN = /^[A-Za-z0-9._-]+$/;

const BOM = '\uFEFF';

/** `crypto.hash` (Node >= 20.12): one call, no Hash object. */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'hex') => string }).hash;

/** sha256 of `bytes` as lowercase hex. */
export function sha256Hex(bytes: Uint8Array): string {
  return oneShotHash === undefined ? crypto.createHash('sha256').update(bytes).digest('hex') : oneShotHash('sha256', bytes, 'hex');
}

/**
 * Offset of the first byte that breaks UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above
 * U+10FFFF), or -1 when `bytes` is valid UTF-8.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  // Node's validator follows the same rules; only a file that fails it is scanned for the offset.
  if (isUtf8(bytes)) return -1;
  return scanUtf8(bytes);
}

/** {@link firstInvalidUtf8}, byte by byte. */
export function scanUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i += 1;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
    } else if (b === 0xe0) {
      need = 2;
      lo = 0xa0;
    } else if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) {
      need = 2;
    } else if (b === 0xed) {
      need = 2;
      hi = 0x9f;
    } else if (b === 0xf0) {
      need = 3;
      lo = 0x90;
    } else if (b >= 0xf1 && b <= 0xf3) {
      need = 3;
    } else if (b === 0xf4) {
      need = 3;
      hi = 0x8f;
    } else {
      return i;
    }
    if (i + need >= n) return i; // the sequence is cut short by the end of the bytes
    const second = bytes[i + 1]!;
    if (second < lo || second > hi) return i;
    for (let k = 2; k <= need; k += 1) {
      const c = bytes[i + k]!;
      if (c < 0x80 || c > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

/** 1-based line of byte `offset` in `bytes` (counts `\n`). */
export function lineOfByte(bytes: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < bytes.length; i += 1) if (bytes[i] === 0x0a) line += 1;
  return line;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes UTF-8, keeping a leading BOM as U+FEFF. Call only after `firstInvalidUtf8` returned -1. */
export function decodeUtf8(bytes: Uint8Array): string {
  return UTF8.decode(bytes);
}

/** Where the frontmatter sits in a task file's text (string offsets). */
export interface FrontmatterSpan {
  /** The text starts with a UTF-8 byte order mark. */
  readonly bom: boolean;
  /** The opening line's line ending: the file's line ending. */
  readonly eol: '\n' | '\r\n';
  /** Offset of the first character of the YAML (after the opening `---` line). */
  readonly yamlStart: number;
  /** Offset of the closing `---` line (end of the YAML, exclusive). */
  readonly yamlEnd: number;
  /** Offset of the body (after the closing line and its line ending). */
  readonly bodyStart: number;
}

/** Why there is no usable frontmatter. */
export interface FrontmatterProblem {
  readonly line: number;
  readonly reason: string;
}

const DELIMITER = /^---[ \t]*$/;

/**
 * Finds the frontmatter: the text (after an optional BOM) must start with a `---` line; the YAML
 * runs to the next line that is `---` (trailing blanks allowed), at column 0. The YAML's first line
 * is line 2 of the file.
 */
export function findFrontmatter(text: string): FrontmatterSpan | FrontmatterProblem {
  const bom = text.startsWith(BOM);
  const start = bom ? 1 : 0;
  const open = /^---[ \t]*(\r?\n)/.exec(text.slice(start, start + 64));
  if (!open) {
    return { line: 1, reason: "no frontmatter: the file must begin with a '---' line" };
  }
  const eol = open[1] === '\r\n' ? '\r\n' : '\n';
  const yamlStart = start + open[0].length;
  let lineStart = yamlStart;
  while (lineStart <= text.length) {
    const newline = text.indexOf('\n', lineStart);
    const lineEnd = newline === -1 ? text.length : newline;
    let content = text.slice(lineStart, lineEnd);
    if (content.endsWith('\r')) content = content.slice(0, -1);
    if (DELIMITER.test(content)) {
      return { bom, eol, yamlStart, yamlEnd: lineStart, bodyStart: newline === -1 ? text.length : newline + 1 };
    }
    if (newline === -1) break;
    lineStart = newline + 1;
  }
  return { line: 1, reason: "frontmatter is not closed: no '---' line after the opening one" };
}

/** Type guard for {@link findFrontmatter}'s failure case. */
export function isFrontmatterProblem(value: FrontmatterSpan | FrontmatterProblem): value is FrontmatterProblem {
  return 'reason' in value;
}

const TIMESTAMP =
  /^(\d{4})-(\d{1,2})-(\d{1,2})(?:(?:[Tt]|[ \t]+)(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:[ \t]*(Z|z|[+-]\d{1,2}(?::?\d{2})?))?)?$/;

/**
 * Milliseconds since the epoch for an ISO 8601 extended-format timestamp or a YAML 1.1 timestamp
 * (https://yaml.org/type/timestamp.html): `2026-11-20`, `2026-11-20T09:00:00Z`,
 * `2026-11-20T09:00:00.123+02:00`, `2001-12-14 21:59:43.10 -5`. Without a zone the time is UTC.
 * Returns `undefined` when the text is not such a timestamp or names an impossible date.
 */
export function parseTimestampMs(text: string): number | undefined {
  const m = TIMESTAMP.exec(text.trim());
  if (!m) return undefined;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = m[4] === undefined ? 0 : Number(m[4]);
  const minute = m[5] === undefined ? 0 : Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) return undefined;
  if (day > daysInMonth(year, month)) return undefined;
  let offsetMinutes = 0;
  const zone = m[8];
  if (zone !== undefined && zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const hours = Number(digits.length <= 2 ? digits : digits.slice(0, digits.length - 2));
    const minutes = digits.length <= 2 ? 0 : Number(digits.slice(-2));
    if (hours > 23 || minutes > 59) return undefined;
    offsetMinutes = sign * (hours * 60 + minutes);
  }
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  // Date.UTC maps years 0-99 to 1900-1999; fix that up.
  const fixed = year < 100 ? new Date(utc).setUTCFullYear(year) : utc;
  return fixed - offsetMinutes * 60_000;
}

/**
 * Days in `month` (1-12) of `year` in the proleptic Gregorian calendar, except that years 0-99
 * count as 1900-1999, as `Date.UTC` reads them.
 */
function daysInMonth(year: number, month: number): number {
  if (month === 2) {
    const y = year < 100 ? year + 1900 : year;
    return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  }
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** `path` relative to `root` with `/` separators (how paths appear in messages and `relativePath`). */
export function displayPath(root: string, path: string): string {
  const rel = relative(root, path);
  return (rel === '' ? '.' : rel).split(sep).join('/');
}

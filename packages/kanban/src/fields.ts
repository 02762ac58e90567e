/**
 * Reading YAML frontmatter fields with their lines, for the board formats that keep one task per
 * markdown file (Backlog.md, JSON-config boards). Warren's own format has its stricter parser in
 * `task.ts`.
 */
import { isMap, isScalar, isSeq, type Node, type Pair, type Scalar } from 'yaml';
import { TaskFileError } from './errors.js';
import {
  decodeUtf8,
  findFrontmatter,
  firstInvalidUtf8,
  isFrontmatterProblem,
  lineOfByte,
  MAX_TASK_FILE_BYTES,
  parseTimestampMs,
  sha256Hex,
  type FrontmatterSpan,
} from './text.js';
import { isYamlProblem, parseYamlSource, type YamlSource, type YamlSyntaxProblem } from './yaml-source.js';

/** A markdown file's text, where its frontmatter sits, and the frontmatter's YAML. */
export interface FrontmatterSource {
  readonly text: string;
  readonly span: FrontmatterSpan;
  /** The YAML between the `---` lines (its line 1 is the file's line 2), or its syntax problem. */
  readonly yaml: YamlSource | YamlSyntaxProblem;
}

/**
 * The checks every one-file-per-task format makes before reading fields: at most
 * {@link MAX_TASK_FILE_BYTES} (1 MiB), UTF-8 (a BOM allowed), YAML frontmatter first in the file
 * between `---` lines; then parses the YAML.
 *
 * @param fail called with the file line (0 for the size, the line of the first bad byte for UTF-8)
 *   and the reason when a check fails; it must throw.
 * @returns the decoded text, the frontmatter span and the parsed YAML or its problem (for the
 *   caller to report, as formats differ in how).
 */
export function readFrontmatter(bytes: Uint8Array, fail: (line: number, reason: string) => never): FrontmatterSource {
  if (bytes.length > MAX_TASK_FILE_BYTES) {
    fail(0, `the file is ${bytes.length} bytes; task files may be at most ${MAX_TASK_FILE_BYTES} bytes (1 MiB)`);
  }
  const invalid = firstInvalidUtf8(bytes);
  if (invalid !== -1) {
    fail(lineOfByte(bytes, invalid), `not valid UTF-8: byte 0x${bytes[invalid]!.toString(16).padStart(2, '0')} at offset ${invalid}`);
  }
  const text = decodeUtf8(bytes);
  const span = findFrontmatter(text);
  if (isFrontmatterProblem(span)) return fail(span.line, span.reason);
  return { text, span, yaml: parseYamlSource(text.slice(span.yamlStart, span.yamlEnd)) };
}

/** The frontmatter of one markdown file, with helpers that name the file line of each field. */
export class FrontmatterFields {
  /** Every frontmatter field as parsed (YAML 1.2 core schema). */
  readonly fields: Record<string, unknown>;
  /** The text after the closing `---` line, exactly as in the file. */
  readonly body: string;
  /** sha256 (hex) of the file's bytes. */
  readonly hash: string;
  private readonly pairs = new Map<string, Pair>();

  private constructor(
    /** Absolute path of the file. */
    readonly path: string,
    private readonly shown: string,
    private readonly source: YamlSource,
    body: string,
    hash: string,
  ) {
    this.fields = source.value as Record<string, unknown>;
    this.body = body;
    this.hash = hash;
    const contents = source.doc.contents;
    if (isMap(contents)) {
      for (const pair of contents.items) if (isScalar(pair.key)) this.pairs.set(String(pair.key.value), pair);
    }
  }

  /**
   * Parses a file's bytes: at most 1 MiB, UTF-8 (a BOM allowed), YAML frontmatter first in the file
   * between `---` lines, a mapping.
   *
   * @param shown how the path appears in messages.
   * @throws {TaskFileError} with the file line of the problem.
   */
  static parse(path: string, bytes: Buffer, shown: string): FrontmatterFields {
    const fail = (line: number, reason: string): never => {
      throw new TaskFileError({ path, line, reason, displayPath: shown });
    };
    const { text, span, yaml: parsed } = readFrontmatter(bytes, fail);
    if (isYamlProblem(parsed)) {
      const line = parsed.line + 1;
      const lineText = text.slice(span.yamlStart, span.yamlEnd).split('\n')[parsed.line - 1] ?? '';
      const field = /^([A-Za-z0-9_.-]+)[ \t]*:/.exec(lineText)?.[1];
      throw new TaskFileError({ path, line, field, reason: `invalid YAML in the frontmatter: ${parsed.message}`, displayPath: shown });
    }
    if (!isMap(parsed.doc.contents) || parsed.value === null || typeof parsed.value !== 'object' || Array.isArray(parsed.value)) {
      return fail(2, 'the frontmatter must be a YAML mapping of fields');
    }
    return new FrontmatterFields(path, shown, parsed, text.slice(span.bodyStart), sha256Hex(bytes));
  }

  /** Throws the file's {@link TaskFileError} for `field` at `line`. */
  fail(line: number, reason: string, field?: string): never {
    throw new TaskFileError({ path: this.path, line, field, reason, displayPath: this.shown });
  }

  /** Whether the frontmatter has the key. */
  has(name: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.fields, name);
  }

  private lineAt(node: unknown): number | undefined {
    const start = (node as Node | null | undefined)?.range?.[0];
    return start === undefined ? undefined : this.source.lineCounter.linePos(start).line + 1;
  }

  /** File line of the key (line 2, the first frontmatter line, when it is missing). */
  keyLine(name: string): number {
    return this.lineAt(this.pairs.get(name)?.key) ?? 2;
  }

  /** File line of the value (of the key when the value is empty). */
  valueLine(name: string): number {
    const value = this.pairs.get(name)?.value as Node | null | undefined;
    if (value?.range && value.range[0] !== value.range[1]) return this.lineAt(value) ?? this.keyLine(name);
    return this.keyLine(name);
  }

  /**
   * A scalar as text: strings as they are, a plain number or boolean as its source text (`id: 42`),
   * `null`/empty as null, missing as undefined.
   * @throws {TaskFileError} when the value is a list or mapping.
   */
  text(name: string): string | null | undefined {
    if (!this.has(name)) return undefined;
    const value = this.fields[name];
    const t = scalarText(this.pairs.get(name)?.value, value);
    if (t === undefined) return this.fail(this.valueLine(name), `'${name}' must be a single value, not a list or mapping`, name);
    return t;
  }

  /**
   * A list of scalars as text. A single scalar reads as a one-item list (`labels: bug`), a
   * comma-separated string is not split; null, empty or missing read as `[]`.
   * @throws {TaskFileError} on the item's line when an item is not a scalar.
   */
  list(name: string): string[] {
    if (!this.has(name)) return [];
    const value = this.fields[name];
    if (value === null || value === '') return [];
    const node = this.pairs.get(name)?.value;
    if (!Array.isArray(value)) {
      const t = scalarText(node, value);
      if (t === undefined) return this.fail(this.valueLine(name), `'${name}' must be a list of values`, name);
      return t === null ? [] : [t];
    }
    const items = isSeq(node) ? node.items : [];
    const out: string[] = [];
    value.forEach((item: unknown, index) => {
      const t = scalarText(items[index], item);
      if (t === undefined) this.fail(this.lineAt(items[index]) ?? this.valueLine(name), `'${name}' must be a list of values`, name);
      if (t !== null && t !== undefined && t !== '') out.push(t);
    });
    return out;
  }

  /**
   * A timestamp in ms since the epoch (see `parseTimestampMs`; YAML dates too); undefined when
   * missing or empty.
   * @throws {TaskFileError} when the value is not a timestamp.
   */
  timestampMs(name: string): number | undefined {
    if (!this.has(name)) return undefined;
    const value = this.fields[name];
    if (value === null || value === '') return undefined;
    if (value instanceof Date && !Number.isNaN(value.getTime())) return value.getTime();
    const ms = typeof value === 'string' ? parseTimestampMs(value) : undefined;
    if (ms === undefined) return this.fail(this.valueLine(name), `'${name}' must be a date or timestamp (such as 2026-11-20 09:00)`, name);
    return ms;
  }
}

function scalarText(node: unknown, value: unknown): string | null | undefined {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return null;
  if (value instanceof Date) {
    const source = isScalar(node) ? (node as Scalar & { source?: unknown }).source : undefined;
    return typeof source === 'string' ? source : value.toISOString();
  }
  if (typeof value === 'number' || typeof value === 'boolean') {
    const source = isScalar(node) ? (node as Scalar & { source?: unknown }).source : undefined;
    return typeof source === 'string' ? source : String(value);
  }
  return undefined;
}

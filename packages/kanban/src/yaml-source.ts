/** YAML parsing with positions, so that problems can name the line of a key or value. */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';

/** A YAML document parsed with positions. */
export interface YamlSource {
  readonly value: unknown;
  readonly doc: Document.Parsed;
  readonly lineCounter: LineCounter;
}

/** A YAML syntax (or alias expansion) problem: the 1-based line within the YAML text and a message. */
export interface YamlSyntaxProblem {
  readonly line: number;
  readonly message: string;
}

/**
 * Parses YAML 1.2 (core schema, duplicate keys are errors) keeping node ranges and source tokens.
 * @returns the document and its plain value, or the first problem with its line.
 */
export function parseYamlSource(text: string): YamlSource | YamlSyntaxProblem {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, keepSourceTokens: true });
  const first = doc.errors[0];
  if (first) {
    return { line: lineCounter.linePos(first.pos[0]).line, message: firstLine(first.message) };
  }
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }) as unknown, doc, lineCounter };
  } catch (error) {
    return { line: 1, message: firstLine((error as Error).message) };
  }
}

/** Type guard for {@link parseYamlSource}'s failure case. */
export function isYamlProblem(value: YamlSource | YamlSyntaxProblem): value is YamlSyntaxProblem {
  return 'message' in value;
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

/**
 * The node at `path` (keys and indexes, as in a zod issue path) and the offset that best locates
 * it. Walks as far as the path exists, so a missing key points at its nearest existing parent; a
 * key of a map is located at the key itself.
 */
export function locate(source: YamlSource, path: readonly PropertyKey[]): { node: unknown; offset: number } {
  let node: unknown = source.doc.contents;
  let offset = (node as Node | null)?.range?.[0] ?? 0;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(key));
      if (!pair) break;
      offset = (pair.key as Node | null)?.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      const item = node.items[key] as Node | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return { node, offset };
}

/** 1-based line (within the YAML text) of the node at `path`; see {@link locate}. */
export function lineOf(source: YamlSource, path: readonly PropertyKey[]): number {
  return source.lineCounter.linePos(locate(source, path).offset).line;
}

/** 1-based line (within the YAML text) of the value at `path` itself, rather than of its key. */
export function valueLineOf(source: YamlSource, path: readonly PropertyKey[]): number {
  const { node } = locate(source, path);
  const start = (node as Node | null)?.range?.[0];
  return start === undefined ? lineOf(source, path) : source.lineCounter.linePos(start).line;
}

/** `columns[2].wip` for the path `['columns', 2, 'wip']`. */
export function fieldName(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

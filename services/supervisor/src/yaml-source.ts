import { isMap, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';

/** A YAML document parsed with positions, so that errors can name the line of a key. */
export interface YamlSource {
  readonly value: unknown;
  readonly doc: Document.Parsed;
  readonly lineCounter: LineCounter;
}

/** A YAML syntax error: the 1-based line and the parser's message. */
export interface YamlSyntaxProblem {
  readonly line: number;
  readonly message: string;
}

/**
 * Parses YAML text keeping node ranges (yaml's `parseDocument` with a `LineCounter`).
 * @returns the document and its plain value, or the first syntax error with its line.
 */
export function parseYamlSource(text: string): YamlSource | YamlSyntaxProblem {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const offset = first.pos[0];
    return { line: lineCounter.linePos(offset).line, message: first.message.split('\n')[0] ?? first.message };
  }
  return { value: doc.toJS({ maxAliasCount: 100 }) as unknown, doc, lineCounter };
}

/**
 * The 1-based line of the node at `path` (keys and indexes, as in a zod issue path). Walks as far
 * as the path exists, so an unknown or missing key points at its nearest existing parent.
 * For a key of a map, the line is the key's own line.
 */
export function lineOf(source: YamlSource, path: readonly PropertyKey[]): number {
  let node: unknown = source.doc.contents;
  let offset = (node as Node | null)?.range?.[0] ?? 0;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => (item.key as { value?: unknown } | null)?.value === key);
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
  return source.lineCounter.linePos(offset).line;
}

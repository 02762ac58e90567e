/**
 * Where the values of a frontmatter's top-level keys sit, remembered by the frontmatter's exact
 * text, so that a rewrite of a frontmatter already parsed (by the loader, or the result of an
 * earlier rewrite) splices the new values in without parsing the YAML again.
 *
 * Only the simplest shape is remembered as splicable: a `key: value` line whose value is a plain,
 * single- or double-quoted scalar on that one line (no tag, no anchor), followed on its line by
 * nothing but spaces and an optional comment, with no more-indented line after it (which could
 * continue a plain scalar). Replacing such a value with another one-line scalar that reads back as
 * the intended string (as `formatOwnedValue` and `keepQuoting` write them) changes that value only;
 * every other key, comment and byte stays where it was. Appending a key is splicable when the
 * frontmatter ends with such a line (then blank lines at most). Anything else takes the parser.
 */
import { isMap, isScalar, Scalar, type Document, type Node } from 'yaml';

/** How a splicable value is written in the text. */
export type ValueQuote = 'plain' | 'single' | 'double';

/** A top-level key whose value can be replaced in place: `start`..`end` is the value's text. */
export interface SplicableValue {
  readonly start: number;
  readonly end: number;
  readonly quote: ValueQuote;
}

/**
 * The remembered layout of one frontmatter (offsets within the YAML text between the `---` lines).
 * `keys` holds every top-level key: a {@link SplicableValue}, or `undefined` for a key that is
 * there but not splicable (a rewrite of it takes the parser). `indent` is the first key's
 * indentation; `appendable` says whether a key may be appended at the end without the parser.
 */
export interface FrontmatterPlan {
  readonly keys: ReadonlyMap<string, SplicableValue | undefined>;
  readonly indent: string;
  readonly appendable: boolean;
}

/** At most this many frontmatters are remembered (least recently used first out). */
const MAX_PLANS = 2048;
/**
 * Files longer than this (UTF-16 code units) are not remembered: the frontmatter's text, the key,
 * may be a slice that keeps the whole file's string alive.
 */
const MAX_FILE_TEXT = 8192;

const plans = new Map<string, FrontmatterPlan>();

/** The plan remembered for exactly this YAML text, if any (it becomes the most recently used). */
export function recalledPlan(yamlText: string): FrontmatterPlan | undefined {
  const plan = plans.get(yamlText);
  if (plan !== undefined) {
    plans.delete(yamlText);
    plans.set(yamlText, plan);
  }
  return plan;
}

/**
 * Remembers `plan` for `yamlText`, unless `fileLength` (the length of the file's text the YAML
 * was cut from) is over {@link MAX_FILE_TEXT}.
 */
export function rememberPlan(yamlText: string, plan: FrontmatterPlan, fileLength: number): void {
  if (fileLength > MAX_FILE_TEXT) return;
  plans.delete(yamlText);
  plans.set(yamlText, plan);
  if (plans.size > MAX_PLANS) plans.delete(plans.keys().next().value!);
}

/**
 * Forgets the plan of `yamlText`: a rewrite calls it for the text it replaced, which the file no
 * longer holds once the write lands, so that the cache keeps about one plan a file (not one per
 * version written) and a board of up to {@link MAX_PLANS} cards keeps all of them.
 */
export function forgetPlan(yamlText: string): void {
  plans.delete(yamlText);
}

/** Forgets every remembered plan (tests compare the spliced and the parsed rewrites with it). */
export function forgetPlans(): void {
  plans.clear();
}

/**
 * Remembers the layout of `yamlText` from its parsed document (which must parse without errors),
 * for a later rewrite of the same text. Does nothing for a frontmatter that is not a non-empty
 * block mapping, or when `fileLength` is too long to keep (see {@link rememberPlan}).
 */
export function rememberParsed(yamlText: string, doc: Document.Parsed, fileLength: number): void {
  if (fileLength > MAX_FILE_TEXT) return;
  const plan = planOf(yamlText, doc);
  if (plan) rememberPlan(yamlText, plan, fileLength);
}

/** The plan of a parsed frontmatter, or undefined when it is not a non-empty block mapping. */
export function planOf(yamlText: string, doc: Document.Parsed): FrontmatterPlan | undefined {
  const contents = doc.contents;
  if (!isMap(contents) || contents.flow || contents.items.length === 0) return undefined;
  const firstKey = contents.items[0]!.key as Node | null;
  const keyStart = firstKey?.range?.[0];
  if (keyStart === undefined) return undefined;
  const lineStart = yamlText.lastIndexOf('\n', keyStart - 1) + 1;
  const indent = yamlText.slice(lineStart, keyStart);
  if (!/^[ ]*$/.test(indent)) return undefined;
  const keys = new Map<string, SplicableValue | undefined>();
  let lastEnd = -1;
  for (const pair of contents.items) {
    if (!isScalar(pair.key) || typeof pair.key.value !== 'string') return undefined;
    const splicable = splicableValue(yamlText, pair.srcToken?.sep ?? [], pair.value, indent.length);
    keys.set(pair.key.value, splicable);
    lastEnd = splicable ? splicable.end : -1;
  }
  // Appending after the last key is plain sailing when it is a splicable line and only blank lines follow.
  const appendable = lastEnd !== -1 && /^[ \t]*(?:#[^\n]*)?(?:\n[ \t\r]*)*$/.test(yamlText.slice(lastEnd));
  return { keys, indent, appendable };
}

/** The splicable value of one pair (see the module's description), or undefined. */
function splicableValue(yamlText: string, sep: readonly { type: string; offset: number }[], node: Node | null, keyColumn: number): SplicableValue | undefined {
  if (!isScalar(node)) return undefined;
  const colon = sep.find((token) => token.type === 'map-value-ind');
  if (!colon || sep.some((token) => (token.type === 'anchor' || token.type === 'tag') && token.offset > colon.offset)) return undefined;
  if (node.anchor !== undefined || node.tag !== undefined) return undefined;
  const quote: ValueQuote | undefined =
    node.type === Scalar.PLAIN ? 'plain' : node.type === Scalar.QUOTE_SINGLE ? 'single' : node.type === Scalar.QUOTE_DOUBLE ? 'double' : undefined;
  const range = node.range;
  if (quote === undefined || !range || range[0] === range[1]) return undefined;
  let end = range[1];
  while (end > range[0] && /[ \t\r\n]/.test(yamlText[end - 1]!)) end -= 1;
  const start = range[0];
  // The value on the colon's line, alone there but for a comment.
  if (/[\r\n]/.test(yamlText.slice(colon.offset, end))) return undefined;
  const lineEnd = yamlText.indexOf('\n', end);
  const restOfLine = yamlText.slice(end, lineEnd === -1 ? yamlText.length : lineEnd);
  if (!/^(?:[ \t]+#.*|[ \t]*)\r?$/.test(restOfLine)) return undefined;
  // The next line with anything on it is not indented past the key (it would continue a plain scalar).
  if (lineEnd !== -1) {
    const next = /\n([ \t]*)[^ \t\r\n]/.exec(yamlText.slice(lineEnd));
    if (next && (next[1]!.length > keyColumn || next[1]!.includes('\t'))) return undefined;
  }
  return { start, end, quote };
}

/** One value spliced by {@link splicePlan}: `text` replaces the value of `key` (or is appended as `key: text`). */
export interface SplicedValue {
  readonly key: string;
  readonly text: string;
}

/**
 * Rewrites `yamlText` by its plan: each existing key's value replaced by its `text`, each missing
 * key appended as `indent key: text` lines (with `eol`) at the end, exactly as the parser-based
 * rewrite places them. @returns the new YAML text and its plan, or undefined when some key is
 * there but not splicable, or must be appended and the plan does not allow it.
 */
export function splicePlan(yamlText: string, plan: FrontmatterPlan, values: readonly SplicedValue[], eol: string): { text: string; plan: FrontmatterPlan } | undefined {
  const edits: { key: string; start: number; end: number; text: string }[] = [];
  const appended: SplicedValue[] = [];
  for (const value of values) {
    if (!plan.keys.has(value.key)) {
      if (!plan.appendable) return undefined;
      appended.push(value);
      continue;
    }
    const at = plan.keys.get(value.key);
    if (at === undefined) return undefined;
    edits.push({ key: value.key, start: at.start, end: at.end, text: value.text });
  }
  edits.sort((a, b) => a.start - b.start);
  // The new text, and where each remembered value now sits.
  let out = '';
  let from = 0;
  const replaced = new Map<string, SplicableValue>();
  for (const edit of edits) {
    out += yamlText.slice(from, edit.start);
    replaced.set(edit.key, { start: out.length, end: out.length + edit.text.length, quote: quoteOf(edit.text) });
    out += edit.text;
    from = edit.end;
  }
  out += yamlText.slice(from);
  const shift = (offset: number): number => {
    let delta = 0;
    for (const edit of edits) if (edit.end <= offset) delta += edit.text.length - (edit.end - edit.start);
    return offset + delta;
  };
  const keys = new Map<string, SplicableValue | undefined>();
  for (const [key, at] of plan.keys) {
    const done = replaced.get(key);
    if (done) keys.set(key, done);
    else if (at === undefined) keys.set(key, undefined);
    else {
      const start = shift(at.start);
      keys.set(key, { start, end: start + (at.end - at.start), quote: at.quote });
    }
  }
  if (appended.length > 0) {
    out += out === '' || out.endsWith('\n') ? '' : eol;
    for (const value of appended) {
      const line = `${plan.indent}${value.key}: `;
      keys.set(value.key, { start: out.length + line.length, end: out.length + line.length + value.text.length, quote: quoteOf(value.text) });
      out += `${line}${value.text}${eol}`;
    }
  }
  return { text: out, plan: { keys, indent: plan.indent, appendable: appended.length > 0 || plan.appendable } };
}

function quoteOf(text: string): ValueQuote {
  return text.startsWith('"') ? 'double' : text.startsWith("'") ? 'single' : 'plain';
}

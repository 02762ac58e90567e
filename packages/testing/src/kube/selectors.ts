/**
 * Label and field selectors as the API server parses them from `?labelSelector=` and
 * `?fieldSelector=` (k8s.io/apimachinery/pkg/labels and pkg/fields; grammar in
 * https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors).
 */

/** One requirement of a label selector. */
type LabelRequirement =
  | { readonly op: 'exists' | 'notExists'; readonly key: string }
  | { readonly op: 'in' | 'notIn'; readonly key: string; readonly values: ReadonlySet<string> };

/** One requirement of a field selector. */
interface FieldRequirement {
  readonly field: string;
  readonly equal: boolean;
  readonly value: string;
}

/** A label selector that does not parse; the server answers it with 400 BadRequest. */
export class SelectorSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SelectorSyntaxError';
  }
}

const KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** Splits at top-level commas (not those inside `in (…)` sets). */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

function checkKey(key: string, selector: string): string {
  if (!KEY.test(key) || key.length > 316) {
    throw new SelectorSyntaxError(`unable to parse requirement: invalid label key ${JSON.stringify(key)} in ${JSON.stringify(selector)}`);
  }
  return key;
}

function checkValue(value: string, selector: string): string {
  if (!VALUE.test(value) || value.length > 63) {
    throw new SelectorSyntaxError(`unable to parse requirement: invalid label value ${JSON.stringify(value)} in ${JSON.stringify(selector)}`);
  }
  return value;
}

/**
 * Parses a label selector: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`,
 * requirements joined by commas (all must hold). An empty selector matches everything.
 * @throws {SelectorSyntaxError} naming the part that does not parse.
 */
export function parseLabelSelector(selector: string): (labels: Readonly<Record<string, string>> | undefined) => boolean {
  const requirements: LabelRequirement[] = [];
  if (selector.trim() !== '') {
    for (const rawPart of splitTopLevel(selector)) {
      const part = rawPart.trim();
      let match: RegExpExecArray | null;
      if ((match = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(part)) !== null) {
        const key = checkKey(match[1] ?? '', selector);
        const values = (match[3] ?? '').split(',').map((v) => checkValue(v.trim(), selector));
        requirements.push({ op: match[2] === 'in' ? 'in' : 'notIn', key, values: new Set(values) });
      } else if ((match = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part)) !== null) {
        const key = checkKey(match[1] ?? '', selector);
        const value = checkValue(match[3] ?? '', selector);
        requirements.push({ op: match[2] === '!=' ? 'notIn' : 'in', key, values: new Set([value]) });
      } else if ((match = /^!\s*(\S+)$/.exec(part)) !== null) {
        requirements.push({ op: 'notExists', key: checkKey(match[1] ?? '', selector) });
      } else if (/^\S+$/.test(part)) {
        requirements.push({ op: 'exists', key: checkKey(part, selector) });
      } else {
        throw new SelectorSyntaxError(`unable to parse requirement: ${JSON.stringify(part)} in label selector ${JSON.stringify(selector)}`);
      }
    }
  }
  return (labels) =>
    requirements.every((req) => {
      const value = labels?.[req.key];
      switch (req.op) {
        case 'exists':
          return value !== undefined;
        case 'notExists':
          return value === undefined;
        case 'in':
          return value !== undefined && req.values.has(value);
        case 'notIn':
          return value === undefined || !req.values.has(value);
      }
    });
}

/** Reads a dotted path (`status.phase`) of an object; undefined when a step is missing. */
function readPath(object: unknown, path: string): unknown {
  let current: unknown = object;
  for (const step of path.split('.')) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[step];
  }
  return current;
}

/**
 * Parses a field selector, `field=value`, `field==value`, `field!=value` joined by commas, over the
 * fields the resource supports (`metadata.name` and `metadata.namespace` for every resource).
 * A missing field reads as `''`, as the API server's field sets do.
 * @param supported field paths the resource can be selected by.
 * @throws {SelectorSyntaxError} for a malformed requirement or a field the resource does not support
 *   (`field label not supported: spec.x`).
 */
export function parseFieldSelector(selector: string, supported: readonly string[]): (object: unknown) => boolean {
  const requirements: FieldRequirement[] = [];
  if (selector.trim() !== '') {
    for (const rawPart of selector.split(',')) {
      const match = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(rawPart);
      if (match === null) {
        throw new SelectorSyntaxError(`invalid selector: ${JSON.stringify(rawPart)}; can't understand ${JSON.stringify(rawPart)}`);
      }
      const field = match[1] ?? '';
      if (!supported.includes(field)) throw new SelectorSyntaxError(`field label not supported: ${field}`);
      requirements.push({ field, equal: match[2] !== '!=', value: match[3] ?? '' });
    }
  }
  return (object) =>
    requirements.every((req) => {
      const raw = readPath(object, req.field);
      const value = raw === undefined || raw === null ? '' : typeof raw === 'string' ? raw : JSON.stringify(raw);
      return (value === req.value) === req.equal;
    });
}

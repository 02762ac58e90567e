import { PolicyLoadError } from './errors.js';

/** One `key = value` definition of a model file. */
export interface ModelDefinition {
  /** `r`, `p`, `p2`, `g`, `e`, `m`, ... */
  readonly key: string;
  /** The section letter: `r`, `p`, `g`, `e` or `m`. */
  readonly section: SectionLetter;
  readonly value: string;
  /** The 1-based line the definition starts on. */
  readonly line: number;
  /** For `r`, `p` and `g` keys: the declared field names (`sub, obj, act` or `_, _`). */
  readonly fields: readonly string[];
}

/** The parts of a model file Warren checks before Casbin sees it. */
export interface ParsedModel {
  readonly path: string;
  /** Every definition of the five known sections, by key. */
  readonly definitions: ReadonlyMap<string, ModelDefinition>;
}

type SectionLetter = 'r' | 'p' | 'g' | 'e' | 'm';

const SECTIONS: Readonly<Record<string, SectionLetter>> = {
  request_definition: 'r',
  policy_definition: 'p',
  role_definition: 'g',
  policy_effect: 'e',
  matchers: 'm',
};
const REQUIRED: readonly [string, SectionLetter][] = [
  ['request_definition', 'r'],
  ['policy_definition', 'p'],
  ['policy_effect', 'e'],
  ['matchers', 'm'],
];

/** The effect expressions Casbin's default effector implements (casbin-node `DefaultEffectorStream`). */
const SUPPORTED_EFFECTS: readonly string[] = [
  'some(where (p.eft == allow))',
  '!some(where (p.eft == deny))',
  'some(where (p.eft == allow)) && !some(where (p.eft == deny))',
  'priority(p.eft) || deny',
  'subjectPriority(p.eft) || deny',
];

/** The fields of a Warren request, in order; `r` must declare exactly these many. */
const REQUEST_FIELDS = 3;

/**
 * Parses a Casbin model file the way Casbin's own INI reader does (sections in brackets,
 * `key = value`, comments from `#` or `;` to the end of the line, a trailing `\` continues a
 * definition on the next line), keeping line numbers, and checks what Casbin would otherwise
 * accept silently or reject without saying where:
 * - the sections request_definition, policy_definition, policy_effect and matchers are present and
 *   define `r`, `p`, `e` and `m`; a section is not repeated;
 * - keys are numbered the way Casbin loads them (`p`, `p2`, `p3`, ...: a gap would drop the rest);
 * - `r` declares three fields (Warren asks `(sub, obj, act)`), field lists have no empty names;
 * - `e` is one of the effects Casbin implements.
 * @throws {PolicyLoadError} naming `path` and the line.
 */
export function parseModelFile(text: string, path: string): ParsedModel {
  const lines = text.split('\n');
  const sectionLines = new Map<string, number>();
  const definitions = new Map<string, ModelDefinition>();
  let section: string | undefined;
  let pending: { text: string; line: number } | undefined;

  const define = (raw: string, line: number): void => {
    const equals = raw.indexOf('=');
    if (equals === -1) {
      throw new PolicyLoadError(path, line, `expected 'key = value', got '${raw}'`);
    }
    if (section === undefined) {
      throw new PolicyLoadError(path, line, `'${raw}' is outside any [section]`);
    }
    const letter = SECTIONS[section];
    if (letter === undefined) return; // Casbin ignores sections it does not know; so do we.
    const key = raw.slice(0, equals).trim();
    const value = raw.slice(equals + 1).trim();
    const suffix = key.slice(1);
    if (key[0] !== letter || !/^(?:|[2-9]|[1-9][0-9]+)$/.test(suffix)) {
      throw new PolicyLoadError(path, line, `[${section}] defines '${key}'; its keys are ${letter}, ${letter}2, ${letter}3, ...`);
    }
    if (definitions.has(key)) {
      throw new PolicyLoadError(path, line, `'${key}' is defined twice (first on line ${definitions.get(key)?.line})`);
    }
    if (value === '') {
      throw new PolicyLoadError(path, line, `'${key}' has an empty value`);
    }
    let fields: string[] = [];
    if (letter === 'r' || letter === 'p' || letter === 'g') {
      fields = value.split(',').map((f) => f.trim());
      if (fields.some((f) => f === '')) {
        throw new PolicyLoadError(path, line, `'${key} = ${value}' has an empty field name`);
      }
    }
    definitions.set(key, { key, section: letter, value, line, fields });
  };

  lines.forEach((rawLine, index) => {
    const lineNumber = index + 1;
    let content = rawLine;
    for (const marker of ['#', ';']) {
      const at = content.indexOf(marker);
      if (at !== -1) content = content.slice(0, at);
    }
    content = content.trim();
    if (content === '') return;
    if (content.startsWith('[') && content.endsWith(']')) {
      if (pending !== undefined) {
        define(pending.text, pending.line);
        pending = undefined;
      }
      section = content.slice(1, -1).trim();
      const seen = sectionLines.get(section);
      if (seen !== undefined) {
        throw new PolicyLoadError(path, lineNumber, `section [${section}] repeats the one on line ${seen}`);
      }
      sectionLines.set(section, lineNumber);
      return;
    }
    const continues = content.endsWith('\\');
    const piece = continues ? content.slice(0, -1).trim() : content;
    pending = pending === undefined ? { text: piece, line: lineNumber } : { text: pending.text + piece, line: pending.line };
    if (!continues) {
      define(pending.text, pending.line);
      pending = undefined;
    }
  });
  if (pending !== undefined) define(pending.text, pending.line);

  const missing = REQUIRED.filter(([name]) => !sectionLines.has(name)).map(([name]) => `[${name}]`);
  if (missing.length > 0) {
    throw new PolicyLoadError(path, undefined, `missing section${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  }
  for (const [name, letter] of REQUIRED) {
    if (!definitions.has(letter)) {
      throw new PolicyLoadError(path, sectionLines.get(name), `section [${name}] must define '${letter}'`);
    }
  }
  // Casbin loads p, p2, p3, ... and stops at the first gap.
  for (const def of definitions.values()) {
    const n = def.key.length > 1 ? Number(def.key.slice(1)) : 1;
    const previous = n === 2 ? def.section : `${def.section}${n - 1}`;
    if (n > 1 && !definitions.has(previous)) {
      throw new PolicyLoadError(path, def.line, `'${def.key}' would be ignored by Casbin because '${previous}' is not defined`);
    }
  }
  const request = definitions.get('r');
  if (request !== undefined && request.fields.length !== REQUEST_FIELDS) {
    throw new PolicyLoadError(
      path,
      request.line,
      `'r' must declare ${REQUEST_FIELDS} fields (sub, obj, act) for Warren's requests, got ${request.fields.length} (${request.fields.join(', ')})`,
    );
  }
  const effect = definitions.get('e');
  if (effect !== undefined) {
    const normalized = effect.value.replace(/\s+/g, ' ');
    if (!SUPPORTED_EFFECTS.includes(normalized)) {
      throw new PolicyLoadError(
        path,
        effect.line,
        `policy effect '${effect.value}' is not one Casbin implements: ${SUPPORTED_EFFECTS.map((e) => `'${e}'`).join(', ')}`,
      );
    }
  }
  return { path, definitions };
}

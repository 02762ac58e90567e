import { PolicyLoadError } from './errors.js';
import type { ParsedModel } from './model-file.js';

/** One rule of a policy file, checked against the model. */
export interface PolicyRule {
  /** `p`, `p2`, `g`, `g2`, ... */
  readonly ptype: string;
  /** `p` or `g`: the model section the ptype belongs to. */
  readonly section: 'p' | 'g';
  readonly fields: readonly string[];
  /** The 1-based line of the policy file. */
  readonly line: number;
}

/**
 * Splits one CSV line the way Casbin's policy loader does (casbin-node `BracketAwareCsvParser`:
 * comma-separated, fields trimmed, a field in double quotes may hold commas and `""` for a quote,
 * and commas inside parentheses do not split; the pieces of such a field are joined with `,`).
 * Returns the fields, or why the line cannot be split.
 */
function splitCsvLine(line: string): { fields: string[] } | { error: string } {
  const raw: string[] = [];
  let i = 0;
  for (;;) {
    while (line[i] === ' ' || line[i] === '\t') i += 1;
    let field = '';
    if (line[i] === '"') {
      i += 1;
      let closed = false;
      while (i < line.length) {
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          closed = true;
          i += 1;
          break;
        }
        field += line[i];
        i += 1;
      }
      if (!closed) return { error: 'a quoted field is not closed' };
      const rest = line.indexOf(',', i);
      const trailing = (rest === -1 ? line.slice(i) : line.slice(i, rest)).trim();
      if (trailing !== '') return { error: `text after a closing quote: '${trailing}'` };
      raw.push(field);
      if (rest === -1) break;
      i = rest + 1;
    } else {
      const rest = line.indexOf(',', i);
      raw.push((rest === -1 ? line.slice(i) : line.slice(i, rest)).trim());
      if (rest === -1) break;
      i = rest + 1;
    }
  }
  const fields: string[] = [];
  let current: string | undefined;
  let depth = 0;
  for (const piece of raw) {
    for (const ch of piece) {
      if (ch === '(') depth += 1;
      else if (ch === ')') depth -= 1;
    }
    current = current === undefined ? piece : `${current},${piece}`;
    if (depth === 0) {
      fields.push(current);
      current = undefined;
    }
  }
  if (depth !== 0) return { error: 'unbalanced parentheses' };
  return { fields };
}

/**
 * Parses and checks a policy CSV file against its model: blank lines and lines whose first
 * non-blank character is `#` are skipped; every other line must start with a policy type the model
 * defines (`p`, `p2`, `g`, ... from policy_definition and role_definition) and hold exactly the
 * number of fields that type declares; when the type declares an `eft` field its value must be
 * `allow` or `deny`. Casbin itself ignores unknown types and mis-sized lines without a word.
 * @throws {PolicyLoadError} naming `path` and the line, e.g.
 *   `policies/policy.csv:7: 'p' needs 4 fields (sub, obj, act, eft), got 2`.
 */
export function parsePolicyFile(text: string, path: string, model: ParsedModel): PolicyRule[] {
  const rules: PolicyRule[] = [];
  const known = [...model.definitions.values()].filter((d) => d.section === 'p' || d.section === 'g');
  text.split('\n').forEach((rawLine, index) => {
    const line = index + 1;
    const content = rawLine.trim();
    if (content === '' || content.startsWith('#')) return;
    const split = splitCsvLine(content);
    if ('error' in split) throw new PolicyLoadError(path, line, split.error);
    const [ptype, ...fields] = split.fields;
    const definition = model.definitions.get(ptype ?? '');
    if (ptype === undefined || definition === undefined || (definition.section !== 'p' && definition.section !== 'g')) {
      throw new PolicyLoadError(
        path,
        line,
        `'${ptype ?? ''}' is not a policy type of ${model.path} (it defines ${known.map((d) => `'${d.key}'`).join(', ')})`,
      );
    }
    if (fields.length !== definition.fields.length) {
      throw new PolicyLoadError(
        path,
        line,
        `'${ptype}' needs ${definition.fields.length} fields (${definition.fields.join(', ')}), got ${fields.length}`,
      );
    }
    fields.forEach((value, i) => {
      if (value === '') {
        throw new PolicyLoadError(path, line, `field ${i + 1} (${definition.fields[i]}) of '${ptype}' is empty`);
      }
    });
    const eftIndex = definition.section === 'p' ? definition.fields.indexOf('eft') : -1;
    const eft = fields[eftIndex];
    if (eftIndex !== -1 && eft !== 'allow' && eft !== 'deny') {
      throw new PolicyLoadError(path, line, `'${ptype}' field eft must be 'allow' or 'deny', got '${eft}'`);
    }
    rules.push({ ptype, section: definition.section, fields, line });
  });
  return rules;
}

import fc from 'fast-check';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { findFrontmatter, isFrontmatterProblem } from '../src/text.js';
import { forgetPlans, recalledPlan } from '../src/frontmatter-plan.js';
import { readsAsItself } from '../src/update.js';
import { OWNED_FIELDS, parseBoardConfig, parseTaskFile, rewriteOwnedFields, TaskFileError, type OwnedFieldChanges } from '../src/index.js';
import { BOARD_YAML } from './helpers.js';

// A rewrite of a frontmatter whose layout is remembered (by the loader, or by the rewrite before)
// splices the values in without parsing; it must give exactly the bytes the parser-based rewrite gives.

const config = parseBoardConfig(BOARD_YAML, '/srv/kanban/board.yaml');
const COLUMNS = config.columns.map((c) => c.id);
const RESERVED = new Set<string>(['id', 'title', 'capabilities', ...OWNED_FIELDS]);

const printable = fc.string({ unit: fc.constantFrom(...'abcXYZ019 _-.:#,\'"\\[]{}&*!|>%@`éß日本🙂'.split(/(?:)/u)), maxLength: 16 });
const word = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
const timestamp = fc.date({ min: new Date(Date.UTC(1970, 0, 1)), max: new Date(Date.UTC(9999, 11, 31)), noInvalidDate: true }).map((d) => d.toISOString());
const scalar = fc.oneof(
  word,
  printable.map((v) => `'${v.replace(/'/g, "''")}'`),
  printable.map((v) => JSON.stringify(v)),
  fc.constantFrom('null', '~', '42', 'true', ''),
);
const suffix = fc.constantFrom('', '   ', ' # a comment', '  # note: keep me  ', '\t', ' #');

/** An owned key's line: a scalar in some style, or shapes the splice must leave to the parser. */
function ownedLine(field: string): fc.Arbitrary<string> {
  const value =
    field === 'status'
      ? fc.constantFrom(...COLUMNS).chain((c) => fc.constantFrom(c, `'${c}'`, `"${c}"`, `!!str ${c}`, `&s ${c}`))
      : fc.oneof(scalar, timestamp, fc.constant('!!str x'), fc.constant('&a x'), fc.constant('first\n  second'), fc.constant('"two\n  lines"'), fc.constant('|\n  block'));
  return fc.tuple(value, suffix).map(([v, s]) => (v === '' ? `${field}:${s}` : `${field}: ${v}${s}`));
}

const otherLine = fc.oneof(
  fc.tuple(word.filter((k) => !RESERVED.has(k)), scalar, suffix).map(([k, v, s]) => `${k}: ${v}${s}`),
  word.filter((k) => !RESERVED.has(k)).map((k) => `${k}:\n  - a\n  - b`),
  word.filter((k) => !RESERVED.has(k)).map((k) => `${k}: |\n  text\n\n  more`),
  fc.constantFrom('# a comment line', '', '   ', '  # an indented comment', '  continued'),
);

const document = fc
  .record({
    owned: fc.tuple(...OWNED_FIELDS.map((field) => fc.option(ownedLine(field), { nil: undefined }))),
    others: fc.array(otherLine, { maxLength: 6 }),
    order: fc.integer({ min: 0, max: 1_000_000 }),
    eol: fc.constantFrom('\n', '\r\n'),
    trailing: fc.constantFrom('', '\n', '\n\n', '\n# last comment'),
  })
  .map(({ owned, others, order, eol, trailing }) => {
    const lines = ['id: task-1', "title: 'A task'", 'capabilities: [shell]', ...others, ...owned.filter((l): l is string => l !== undefined)];
    let seed = order;
    for (let i = lines.length - 1; i > 0; i -= 1) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      const j = seed % (i + 1);
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
    }
    return `---${eol}${(lines.join('\n') + trailing).replace(/\n/g, eol)}${eol}---${eol}Body.${eol}`;
  });

const changes: fc.Arbitrary<OwnedFieldChanges> = fc.record(
  {
    status: fc.constantFrom(...COLUMNS),
    assignee: fc.option(fc.oneof(printable, word, fc.constantFrom('null', 'true', '42', '...', 'a: b', ' x'))),
    result: fc.option(fc.oneof(printable, fc.string({ unit: 'binary', maxLength: 20 }))),
    started: fc.option(timestamp),
    completed: fc.option(timestamp),
    updated: fc.option(timestamp),
  },
  { requiredKeys: [] },
);

/** `rewriteOwnedFields`, or its error message. */
function rewrite(text: string, change: OwnedFieldChanges): string {
  try {
    return rewriteOwnedFields(text, change, 'p.md');
  } catch (error) {
    return `error: ${(error as Error).message}`;
  }
}

function remembered(text: string): boolean {
  const span = findFrontmatter(text);
  return !isFrontmatterProblem(span) && recalledPlan(text.slice(span.yamlStart, span.yamlEnd)) !== undefined;
}

describe('rewriteOwnedFields by a remembered layout (property)', () => {
  it('gives the same bytes as the parser, write after write', () => {
    let spliced = 0;
    fc.assert(
      fc.property(document, fc.array(changes, { minLength: 1, maxLength: 3 }), (input, steps) => {
        // The parser's rewrites, with nothing remembered.
        const expected: string[] = [];
        let text = input;
        for (const change of steps) {
          forgetPlans();
          text = text.startsWith('error: ') ? text : rewrite(text, change);
          expected.push(text);
        }
        // The loader reads the file first (remembering its layout), then each write uses the layout before.
        forgetPlans();
        try {
          parseTaskFile('/srv/kanban/tasks/p.md', Buffer.from(input, 'utf8'), config, '/srv/kanban');
        } catch (error) {
          if (!(error instanceof TaskFileError)) throw error;
        }
        text = input;
        steps.forEach((change, i) => {
          if (text.startsWith('error: ')) return;
          if (remembered(text)) spliced += 1;
          text = rewrite(text, change);
          expect(text).toBe(expected[i]);
        });
      }),
      { numRuns: 400 },
    );
    // The splice was taken often enough for the comparison to mean something.
    expect(spliced).toBeGreaterThan(100);
  });
});

describe('readsAsItself (property)', () => {
  it('agrees with the YAML parser on words, timestamps and near misses', () => {
    const candidates = fc.oneof(
      fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_-]{0,12}$/),
      fc.constantFrom('null', 'Null', 'NULL', 'nULL', 'true', 'True', 'TRUE', 'tRUE', 'false', 'False', 'FALSE', 'yes', 'no', 'on', 'off', 'inf', 'nan', '_', 'in_progress', '...', '.inf', '0x1F', '0o17', '1e3', '12', '-'),
      fc.date({ min: new Date(Date.UTC(1970, 0, 1)), max: new Date(Date.UTC(9999, 11, 31)), noInvalidDate: true }).map((d) => d.toISOString()),
      fc.stringMatching(/^[0-9T:.Z+-]{1,26}$/),
    );
    fc.assert(
      fc.property(candidates, (value) => {
        expect(readsAsItself(value)).toBe(parse(value) === value);
      }),
      { numRuns: 2000 },
    );
  });
});

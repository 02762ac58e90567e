
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyOwnedChanges, formatOwnedValue, OWNED_FIELDS, parseBoardConfig, parseTaskFile, rewriteOwnedFields, type OwnedFieldChanges } from '@warren/kanban';
import { BOARD_YAML } from './helpers.js';

const config = parseBoardConfig(BOARD_YAML, '/srv/kanban/board.yaml');
const COLUMNS = config.columns.map((c) => c.id);
const RESERVED = new Set<string>(['id', 'title', 'capabilities', ...OWNED_FIELDS]);

// Printable characters, some needing quotes in YAML and some outside ASCII.
const printable = fc.string({
  unit: fc.constantFrom(...'abcXYZ019 _-.:#,\'"\\[]{}&*!|>%@`éß日本🙂'.split(/(?:)/u)),
  maxLength: 20,
});
const word = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);

/** A YAML scalar for `s` in one of the styles people write. */
const styled = (s: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.oneof(
    s.map((v) => `'${v.replace(/'/g, "''")}'`),
    s.map((v) => JSON.stringify(v)),
  );

const plainOrStyled = fc.oneof(word, styled(printable));
const suffix = fc.constantFrom('', '   ', ' # a comment', '  # note: keep me  ', '\t');
const timestamp = fc
  .date({ min: new Date(Date.UTC(1970, 0, 1)), max: new Date(Date.UTC(9999, 11, 31)), noInvalidDate: true })
  .map((d) => d.toISOString());

/** The written value of an owned key already in the file: a style of a valid value, null, or empty. */
function ownedInitial(field: (typeof OWNED_FIELDS)[number]): fc.Arbitrary<string> {
  if (field === 'status') return fc.constantFrom(...COLUMNS).chain((c) => fc.constantFrom(c, `'${c}'`, `"${c}"`));
  if (field === 'assignee' || field === 'result') return fc.oneof(fc.constant('null'), fc.constant(''), plainOrStyled);
  return fc.oneof(fc.constant('null'), fc.constant(''), timestamp, timestamp.map((t) => `'${t}'`));
}

interface Line {
  readonly key: string | undefined;
  readonly text: string;
  readonly suffix: string;
}

const otherLine: fc.Arbitrary<Line> = fc.oneof(
  fc.record({ key: word.filter((k) => !RESERVED.has(k)), value: fc.oneof(plainOrStyled, fc.integer().map(String), fc.array(word, { maxLength: 3 }).map((ws) => `[${ws.join(', ')}]`)), suffix }).map(
    ({ key, value, suffix: s }) => ({ key, text: `${key}: ${value}`, suffix: s }),
  ),
  fc.constantFrom('# a comment line', '', '   ', '#---').map((text) => ({ key: undefined, text, suffix: '' })),
);

const document = fc
  .record({
    others: fc.uniqueArray(otherLine, { selector: (l) => l.key ?? Symbol('not a key'), maxLength: 8 }),
    owned: fc.tuple(
      ...OWNED_FIELDS.map((field) =>
        fc.record({
          present: field === 'status' ? fc.constant(true) : fc.boolean(),
          value: ownedInitial(field),
          suffix,
        }),
      ),
    ),
    order: fc.integer({ min: 0, max: 1_000_000 }),
    eol: fc.constantFrom('\n', '\r\n'),
    bom: fc.boolean(),
    body: fc.string({ unit: 'binary', maxLength: 60 }),
  })
  .map(({ others, owned, order, eol, bom, body }) => {
    const lines: Line[] = [
      { key: 'id', text: 'id: task-1', suffix: '' },
      { key: 'title', text: "title: 'A task'", suffix: '' },
      { key: 'capabilities', text: 'capabilities: [shell]', suffix: '' },
      ...others,
    ];
    OWNED_FIELDS.forEach((field, i) => {
      const o = owned[i]!;
      if (o.present) lines.push({ key: field, text: o.value === '' ? `${field}:` : `${field}: ${o.value}`, suffix: o.suffix });
    });
    // A deterministic shuffle driven by `order`.
    let seed = order;
    for (let i = lines.length - 1; i > 0; i -= 1) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      const j = seed % (i + 1);
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
    }
    return { lines, eol, bom, body };
  });

const anyString = fc.oneof(
  printable,
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 10 }),
);
const changes: fc.Arbitrary<OwnedFieldChanges> = fc.record(
  {
    status: fc.constantFrom(...COLUMNS),
    assignee: fc.option(anyString),
    result: fc.option(anyString),
    started: fc.option(timestamp),
    completed: fc.option(timestamp),
    updated: fc.option(timestamp),
  },
  { requiredKeys: [] },
);

describe('rewriteOwnedFields (property)', () => {
  it('gives the new owned values and leaves every other line byte-identical', () => {
    fc.assert(
      fc.property(document, changes, ({ lines, eol, bom, body }, change) => {
        const fm = lines.map((l) => l.text + l.suffix);
        const input = `${bom ? '\uFEFF' : ''}---${eol}${fm.join(eol)}${eol}---${eol}${body}`;
        const output = rewriteOwnedFields(input, change, 'p.md');

        // It parses, with the new values.
        const task = parseTaskFile('/srv/kanban/tasks/p.md', Buffer.from(output, 'utf8'), config, '/srv/kanban');
        const changed = OWNED_FIELDS.filter((f) => change[f] !== undefined);
        for (const field of changed) expect(task.fields[field]).toBe(change[field]);
        if (change.status !== undefined) expect(task.status).toBe(change.status);
        if (change.assignee !== undefined) expect(task.assignee).toBe(change.assignee === '' ? null : change.assignee);
        if (change.result !== undefined) expect(task.result).toBe(change.result ?? undefined);
        if (change.started) expect(task.startedMs).toBe(Date.parse(change.started));
        expect(task.body).toBe(body);
        // Applying the changes to the task read before gives the task read after, field for field.
        const before = parseTaskFile('/srv/kanban/tasks/p.md', Buffer.from(input, 'utf8'), config, '/srv/kanban');
        expect(applyOwnedChanges(before, change, task.hash)).toEqual(task);

        // Byte for byte: the prefix, every non-owned line, and the suffix of every owned line stay.
        const prefix = `${bom ? '\uFEFF' : ''}---${eol}`;
        expect(output.startsWith(prefix)).toBe(true);
        const outLines = output.slice(prefix.length).split(eol);
        lines.forEach((line, i) => {
          const field = OWNED_FIELDS.find((f) => f === line.key && change[f] !== undefined);
          if (field) {
            // A string replacing a quoted value keeps its quotes (single ones become double only
            // when they cannot hold it); otherwise it is written as formatOwnedValue writes it.
            const value = change[field]!;
            const was = line.text.slice(`${field}: `.length)[0];
            const written = outLines[i]!.slice(`${field}: `.length, outLines[i]!.length - line.suffix.length);
            expect(outLines[i]!.startsWith(`${field}: `) && outLines[i]!.endsWith(line.suffix)).toBe(true);
            if (value !== null && was === '"') expect(written[0]).toBe('"');
            else if (value !== null && was === "'") expect(`'"`).toContain(written[0]);
            else expect(written).toBe(formatOwnedValue(value));
          }
          else expect(outLines[i]).toBe(line.text + line.suffix);
        });
        const present = new Set(lines.map((l) => l.key));
        const appended = changed.filter((f) => !present.has(f)).map((f) => `${f}: ${formatOwnedValue(change[f]!)}`);
        expect(outLines.slice(lines.length, lines.length + appended.length)).toEqual(appended);
        expect(outLines.slice(lines.length + appended.length).join(eol)).toBe(`---${eol}${body}`);
      }),
      { numRuns: 300 },
    );
  });

  it('is the identity when nothing changes', () => {
    fc.assert(
      fc.property(document, ({ lines, eol, bom, body }) => {
        const input = `${bom ? '\uFEFF' : ''}---${eol}${lines.map((l) => l.text + l.suffix).join(eol)}${eol}---${eol}${body}`;
        expect(rewriteOwnedFields(input, {})).toBe(input);
      }),
    );
  });
});



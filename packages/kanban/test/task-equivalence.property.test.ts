import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseBoardConfig, parseTaskFile, TaskFileError, type BoardConfig, type Task } from '@warren/kanban';
import { firstInvalidUtf8, parseTimestampMs, scanUtf8 } from '../src/text.js';
import { BOARD_YAML } from './helpers.js';
import { parseTaskFile as parseTaskFileV1 } from './reference/task-v1.js';

const config: BoardConfig = parseBoardConfig(BOARD_YAML, '/srv/kanban/board.yaml');
const BOARD = '/srv/kanban';

/** A field line (or lines) of the frontmatter, valid or not. */
const idValue = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/),
  fc.constantFrom('42', '1.5', 'true', 'null', '', '"a b"', "'quoted-id'", '[a]', '{ a: 1 }', '0x1F', '1e3', '~', '"t-1"'),
);
const titleValue = fc.oneof(
  fc.string({ maxLength: 16 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('A task', '""', '"   "', '12', 'false', '[x]', '|\n  two\n  lines', '>-\n  folded\n  text', "'it''s'", 'null'),
);
const statusValue = fc.constantFrom('ready', 'backlog', 'in_progress', 'done', 'failed', 'Ready', 'nope', '""', '12', '[ready]', 'null', '"done"');
const scalarItem = fc.constantFrom('shell', 'node', '""', '12', 'true', 'null', '[x]', '{ a: b }', '"a b"', 'bad id', 't-2', '~');
const listValue = fc.oneof(
  fc.array(scalarItem, { maxLength: 4 }).map((items) => `[${items.join(', ')}]`),
  fc.array(scalarItem, { minLength: 1, maxLength: 3 }).map((items) => items.map((i) => `\n  - ${i}`).join('')),
  fc.constantFrom('[]', 'null', '', 'shell', '12', '{ a: b }', '*caps', '[*one, two]'),
);
const priorityValue = fc.constantFrom('low', 'normal', 'high', 'urgent', 'HIGH', 'critical', '""', '', 'null', '3', '[high]');
const assigneeValue = fc.constantFrom('null', '', '""', 'agent-1', '"@someone"', '42', '[a]', '{ a: b }');
const timestampValue = fc.oneof(
  fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 })).map(
    ([y, m, d]) => `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`,
  ),
  fc.constantFrom(
    '2026-11-20T09:00:00Z', '2026-11-20 10:30:00 +01:00', '2001-12-14 21:59:43.10 -5', '2001-12-14t21:59:43.10-05:00', '2026-02-29',
    '2024-02-29', '0000-02-29', '0096-02-29', '1900-02-29', '2000-02-29', '2026-04-31', '"2026-11-20T09:00:00Z"', 'yesterday', '12', '[2026-01-01]', 'null', '',
    '2026-11-20T24:00:00Z', '2026-11-20T09:00:60Z', '2026-11-20T09:00:00+25:00',
  ),
);
const textValue = fc.constantFrom('npm test', '"true"', "''", '', 'null', '12', '[a]', '{ a: 1 }', '|\n  echo hi\n  echo there', 't-2', '"quoted # not a comment"');
const otherKey = fc.stringMatching(/^[a-z][a-z0-9_]{0,6}$/);
const otherValue = fc.constantFrom('3', 'x', '{ team: web }', '[1, 2]', '&caps [shell]', '&one node', 'null', '2026-01-01', '"&not-anchor"', '!!str 5', '\n  nested: true\n  more: [a]');

/** Mostly a valid value, so that most files parse; otherwise anything from `any`. */
const mostly = (good: fc.Arbitrary<string>, any: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: any, weight: 1 });

type Line = { key: string; text: string };
const field = (key: string, value: fc.Arbitrary<string>): fc.Arbitrary<Line> =>
  value.map((v) => ({ key, text: `${key}:${v === '' || v.startsWith('\n') ? '' : ' '}${v}` }));
const lines = fc.tuple(
  fc.option(field('id', mostly(fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/), idValue)), { freq: 40 }),
  fc.option(field('title', mostly(fc.constantFrom('A task', '"Fix: it"', 'Task t-1'), titleValue)), { freq: 40 }),
  fc.option(field('status', mostly(fc.constantFrom('ready', 'done', 'backlog'), statusValue)), { freq: 40 }),
  fc.option(field('capabilities', mostly(fc.constantFrom('[shell]', '[]', '\n  - node\n  - shell'), listValue)), { freq: 40 }),
  fc.option(field('priority', mostly(fc.constantFrom('low', 'high', ''), priorityValue))),
  fc.option(field('labels', mostly(fc.constantFrom('[bug, web]', '[]', '[12, true]'), listValue))),
  fc.option(field('assignee', assigneeValue)),
  fc.option(field('depends_on', mostly(fc.constantFrom('[t-1, t.2]', '[]', '\n  - a_b'), listValue))),
  fc.option(field('created', mostly(fc.constantFrom('2026-11-20T09:00:00Z', '2026-11-20', '2001-12-14 21:59:43.10 -5'), timestampValue))),
  fc.option(field('updated', mostly(fc.constantFrom('2026-11-20T09:00:00Z', '2026-11-20', '2001-12-14 21:59:43.10 -5'), timestampValue))),
  fc.option(field('started', mostly(fc.constantFrom('2026-11-20T09:00:00Z', '2026-11-20', '2001-12-14 21:59:43.10 -5'), timestampValue))),
  fc.option(field('completed', mostly(fc.constantFrom('2026-11-20T09:00:00Z', '2026-11-20', '2001-12-14 21:59:43.10 -5'), timestampValue))),
  fc.option(field('parent', textValue)),
  fc.option(field('command', textValue)),
  fc.option(field('result', textValue)),
  fc.array(fc.tuple(otherKey, otherValue).map(([k, v]) => ({ key: k, text: `${k}:${v.startsWith('\n') ? '' : ' '}${v}` })), { maxLength: 3 }),
);
const breakage = fc.constantFrom(
  'none', 'none', 'none', 'none', 'none', 'none', 'none', 'none', 'none', 'none', 'none', 'none', 'comment', 'blank', 'duplicate', 'syntax', 'tab', 'list', 'scalar', 'empty', 'unclosed', 'no-frontmatter', 'bad-utf8', 'multi-doc',
);

/** A whole task file from the generated lines, in a shuffled key order, maybe broken on purpose. */
const taskFile = fc
  .tuple(lines, fc.func(fc.integer()), breakage, fc.boolean(), fc.boolean(), fc.string({ maxLength: 40 }), fc.nat())
  .map(([[...parts], order, broken, crlf, bom, body, at]) => {
    const others = parts.pop() as Line[];
    const fields = [...(parts as (Line | null)[]).filter((l): l is Line => l !== null), ...others];
    // One anchor-free reading of the aliases used above: define them first when used.
    const anchors = ['caps: &caps [shell, node]', 'one: &one shell'];
    const sorted = fields.map((l, i) => ({ l, k: order(i) })).sort((a, b) => a.k - b.k).map((x) => x.l.text);
    let yaml = [...(sorted.some((t) => t.includes('*caps') || t.includes('*one')) ? anchors : []), ...sorted];
    const pos = yaml.length === 0 ? 0 : at % (yaml.length + 1);
    if (broken === 'comment') yaml.splice(pos, 0, '# a comment line');
    if (broken === 'blank') yaml.splice(pos, 0, '');
    if (broken === 'duplicate') yaml.splice(pos, 0, yaml[0] ?? 'id: dup');
    if (broken === 'syntax') yaml.splice(pos, 0, 'bad: [unclosed');
    if (broken === 'tab') yaml.splice(pos, 0, '\tindented: with a tab');
    if (broken === 'list') yaml = ['- a', '- b'];
    if (broken === 'scalar') yaml = ['just text'];
    if (broken === 'empty') yaml = [];
    if (broken === 'multi-doc') yaml.splice(pos, 0, '...');
    const eol = crlf ? '\r\n' : '\n';
    let text = `${bom ? '\uFEFF' : ''}---${eol}${yaml.join('\n').split('\n').join(eol)}${yaml.length ? eol : ''}---${eol}${body}`;
    if (broken === 'unclosed') text = text.replace(/---\r?\n(?![\s\S]*---\r?\n)/, '');
    if (broken === 'no-frontmatter') text = `# Title${eol}${text}`;
    const bytes = Buffer.from(text, 'utf8');
    if (broken === 'bad-utf8') bytes[Math.min(bytes.length - 1, at % Math.max(1, bytes.length))] = 0xff;
    return bytes;
  });

const filePath = fc.constantFrom('/srv/kanban/tasks/a.md', '/srv/kanban/tasks/sub/b.md', '/srv/elsewhere/c.md', '/srv/kanban/x.md', '/srv/kanban/tasks/../tasks/./d.md');
const displayRoot = fc.constantFrom(undefined, '/srv', '/', '/srv/kanban', '/elsewhere');

type Outcome = { task: Task; keys: string[][] } | { error: Record<string, unknown> };

function outcome(parse: () => Task): Outcome {
  try {
    const task = parse();
    return { task, keys: [Object.keys(task), Object.keys(task.fields)] };
  } catch (error) {
    if (!(error instanceof TaskFileError)) throw error;
    const { name, message, code, path, line, field, reason, displayPath } = error as TaskFileError & Record<string, unknown>;
    return { error: { name, message, code, path, line, field, reason, displayPath } };
  }
}

describe('parseTaskFile matches the reference parser (property)', () => {
  it('gives deep-equal tasks (same key order) and the same errors, lines and fields on varied files', () => {
    let parsed = 0;
    fc.assert(
      fc.property(taskFile, filePath, displayRoot, (bytes, path, root) => {
        const options = root === undefined ? {} : { displayRoot: root };
        const actual = outcome(() => parseTaskFile(path, bytes, config, BOARD, options));
        const expected = outcome(() => parseTaskFileV1(path, bytes, config, BOARD, options));
        expect(actual).toStrictEqual(expected);
        if ('task' in actual) parsed += 1;
      }),
      { numRuns: 3000 },
    );
    // The inputs must exercise the success path too, not only the errors.
    expect(parsed).toBeGreaterThan(100);
  });

  it('checks UTF-8 as the byte-by-byte scanner does', () => {
    const nearUtf8 = fc.array(
      fc.oneof(fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0x80, max: 0xff }), fc.constantFrom(0xc0, 0xc1, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xbf, 0x80, 0xa0, 0x9f, 0x8f, 0x90)),
      { maxLength: 24 },
    );
    fc.assert(
      fc.property(fc.oneof(nearUtf8, fc.string({ unit: 'binary' }).map((s) => Array.from(Buffer.from(s, 'utf8')))), (numbers) => {
        const bytes = Uint8Array.from(numbers);
        expect(firstInvalidUtf8(bytes)).toBe(scanUtf8(bytes));
      }),
      { numRuns: 5000 },
    );
  });

  it('reads every calendar date of years 0-9999 as Date.UTC does', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 31 }), (year, month, day) => {
        const text = `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
        const lastDay = new Date(Date.UTC(year, month, 0)).getUTCDate();
        const utc = Date.UTC(year, month - 1, day);
        expect(parseTimestampMs(text)).toBe(day > lastDay ? undefined : year < 100 ? new Date(utc).setUTCFullYear(year) : utc);
      }),
      { numRuns: 5000 },
    );
  });
});

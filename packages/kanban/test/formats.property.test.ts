import { join } from 'node:path';
import fc from 'fast-check';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { backlogMdFormat, loadBoard, rewriteFields, statusKey, capabilitiesFromTags, mapPriority } from '../src/index.js';
import { backlogWrites } from '../src/formats/backlog-md.js';
import { jsonConfigWrites } from '../src/formats/json-config.js';
import type { BoardConfig } from '../src/index.js';
import { FIXTURES } from './formats-helpers.js';

const config: BoardConfig = {
  name: 'p',
  columns: [
    { id: 'to_do', name: 'To Do', value: 'To Do' },
    { id: 'in_progress', name: 'In Progress', value: 'In Progress' },
    { id: 'done', name: 'Done', value: 'Done' },
  ],
  roles: { ready: 'to_do', in_progress: 'in_progress', done: 'done', failed: 'to_do' },
  priorities: ['low', 'normal', 'high', 'urgent'],
  defaultPriority: 'normal',
};

const key = fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/).filter((k) => !['id', 'title', 'status', 'assignee', 'updated_date', 'updated_at', 'started_at', 'completed_at', 'result'].includes(k));
const scalar = fc.oneof(
  fc.stringMatching(/^[A-Za-z][A-Za-z0-9 ._-]{0,12}$/).map((s) => s.trimEnd()),
  fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.string({ maxLength: 12 }).map((s) => `'${s.replace(/'/g, "''").replace(/[\n\r]/g, ' ')}'`),
  fc.integer().map(String),
);
const otherLine = fc.oneof(
  fc.tuple(key, scalar).map(([k, v]) => ({ key: k, lines: [`${k}: ${v}`] })),
  fc.tuple(key, fc.array(scalar, { minLength: 1, maxLength: 3 })).map(([k, vs]) => ({ key: k, lines: [`${k}:`, ...vs.map((v) => `  - ${v}`)] })),
  fc.tuple(key, scalar, fc.stringMatching(/^[a-z ]{0,10}$/)).map(([k, v, c]) => ({ key: k, lines: [`${k}: ${v} # ${c}`] })),
);
const assigneeValue = fc.oneof(fc.constant('[]'), fc.constant("\n  - '@someone'"), fc.constant('\n  - "@a"\n  - "@b"'), fc.constant(''));
const agent = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
const body = fc.array(fc.oneof(fc.string({ maxLength: 30 }).map((s) => s.replace(/\r/g, '')), fc.constant('literal \\n here'), fc.constant('---')), { maxLength: 4 }).map((ls) => ls.join('\n'));

describe('frontmatter round trip (property)', () => {
  it('Backlog.md writes change only the owned keys, read back as written, and keep every other line', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(otherLine, { selector: (l) => l.key, maxLength: 6 }),
        fc.boolean(),
        assigneeValue,
        fc.constantFrom('To Do', 'In Progress', "'Done'", '"To Do"'),
        fc.constantFrom('to_do', 'in_progress', 'done'),
        fc.option(agent, { nil: null }),
        fc.boolean(),
        fc.boolean(),
        body,
        (others, crlf, assignee, status, newStatus, newAgent, bom, withUpdate, bodyText) => {
          const eol = crlf ? '\r\n' : '\n';
          const head = ['id: BACK-1', 'title: A task', `status: ${status}`, `assignee:${assignee === '' ? '' : assignee.startsWith('[') ? ` ${assignee}` : assignee}`, ...others.flatMap((o) => o.lines)];
          const text = `${bom ? '\uFEFF' : ''}---${eol}${head.join('\n').split('\n').join(eol)}${eol}---${eol}${bodyText.split('\n').join(eol)}`;
          const changes = { status: newStatus, assignee: newAgent, ...(withUpdate ? { updated: '2026-01-02T03:04:05Z' } : {}) };
          const out = rewriteFields(text, backlogWrites(config, changes, 'x.md'), 'x.md');
          const fm = /^\uFEFF?---\r?\n([\s\S]*?)\r?\n---/.exec(out)![1]!;
          const fields = parse(fm) as Record<string, unknown>;
          expect(fields['status']).toBe(config.columns.find((c) => c.id === newStatus)!.value);
          expect(fields['assignee']).toEqual(newAgent === null ? [] : [`@${newAgent}`]);
          if (withUpdate) expect(fields['updated_date']).toBe('2026-01-02 03:04');
          // Every non-owned line is byte-identical, in order; the body is untouched.
          const owned = /^(status|assignee|updated_date):|^ {2}- ['"]@/;
          const keep = (s: string): string[] => s.split(eol).filter((l) => !owned.test(l));
          expect(keep(out)).toEqual(keep(text));
          expect(out.endsWith(`---${eol}${bodyText.split('\n').join(eol)}`)).toBe(true);
          expect(out.startsWith(bom ? '\uFEFF---' : '---')).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('JSON-config writes keep every non-owned line', () => {
    fc.assert(
      fc.property(fc.uniqueArray(otherLine, { selector: (l) => l.key, maxLength: 6 }), fc.constantFrom('to_do', 'done'), fc.string({ maxLength: 40 }), (others, status, result) => {
        const text = `---\nuuid: "x1"\ntitle: "T"\nstatus: "todo"\n${others.flatMap((o) => o.lines).join('\n')}\n---\nBody \\n stays\n`;
        const out = rewriteFields(text, jsonConfigWrites(config, { status, result, completed: '2026-01-02T03:04:05Z' }, 'x.md'), 'x.md');
        const fields = parse(/^---\n([\s\S]*?)\n---/.exec(out)![1]!) as Record<string, unknown>;
        expect(fields['result']).toBe(result);
        expect(fields['completed_at']).toBe('2026-01-02T03:04:05Z');
        const owned = /^(status|result|completed_at):/;
        expect(out.split('\n').filter((l) => !owned.test(l))).toEqual(text.split('\n').filter((l) => !owned.test(l)));
      }),
      { numRuns: 150 },
    );
  });
});

describe('mapping', () => {
  it('folds case, spelling, emoji and WIP counts of statuses into one key', () => {
    expect(new Set(['In Progress', 'in_progress', 'in-progress', '🟡 In Progress (4)', 'IN PROGRESS'].map(statusKey)).size).toBe(1);
    expect(statusKey("Won't Do")).toBe('wontdo');
  });

  it('turns prefixed tags and labels into capabilities, and maps priorities', () => {
    expect(capabilitiesFromTags(['#cap:codegen', '#tool:codex', 'env:no-egress', '#role:engineer', 'bug', '#cap:'], {})).toEqual([
      'cap:codegen',
      'tool:codex',
      'env:no-egress',
      'role:engineer',
    ]);
    expect(capabilitiesFromTags(['codex-task'], { capabilities: { 'codex-task': ['tool:codex'] } })).toEqual(['tool:codex']);
    expect(['P0', 'P1', 'medium', 'low', 'whatever'].map((p) => mapPriority(p))).toEqual(['urgent', 'high', 'normal', 'low', undefined]);
    expect(mapPriority('whatever', { priorities: { whatever: 'high' } })).toBe('high');
  });

  it('an alias or role naming no column is a config error', async () => {
    const dir = join(FIXTURES, 'backlog-md');
    await expect(loadBoard(dir, { mapping: { statuses: { "Won't Do": 'Cancelled' } } })).rejects.toThrow(/maps 'Won't Do' to 'Cancelled', which is no column/);
    await expect(backlogMdFormat.load(dir, { mapping: { roles: { failed: 'Nope' } } })).rejects.toThrow(/mapping.roles.failed/);
  });
});

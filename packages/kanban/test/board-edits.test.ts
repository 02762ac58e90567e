import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keepQuoting, loadBoard, parseBoardConfig, refreshWarrenBoard, rewriteOwnedFields, transitionPath } from '@warren/kanban';
import { parse } from 'yaml';
import { BOARD_YAML, makeBoard, taskText, type TempBoard } from './helpers.js';

const file = (status: string, extra = '') => `---\nid: t1\ntitle: T\nstatus: ${status}\n${extra}capabilities: [shell]\n---\nBody.\n`;

describe('write-back keeps the quoting of the value it replaces', () => {
  it('keeps double quotes, single quotes and plain values as they were', () => {
    expect(rewriteOwnedFields(file('"ready"'), { status: 'in_progress' })).toBe(file('"in_progress"'));
    expect(rewriteOwnedFields(file("'ready'"), { status: 'in_progress' })).toBe(file("'in_progress'"));
    expect(rewriteOwnedFields(file('ready'), { status: 'in_progress' })).toBe(file('in_progress'));
    expect(rewriteOwnedFields(file('ready', "assignee: 'someone'\n"), { assignee: 'shell-1' })).toBe(file('ready', "assignee: 'shell-1'\n"));
    expect(rewriteOwnedFields(file('ready', 'result: "old"\n'), { result: 'it said: done' })).toBe(file('ready', 'result: "it said: done"\n'));
  });

  it('uses double quotes when single quotes cannot hold the value on one line, and null plain', () => {
    expect(rewriteOwnedFields(file('ready', "result: 'old'\n"), { result: 'two\nlines' })).toBe(file('ready', 'result: "two\\nlines"\n'));
    expect(rewriteOwnedFields(file('ready', "result: 'old'\n"), { result: "it's" })).toBe(file('ready', "result: 'it''s'\n"));
    expect(rewriteOwnedFields(file('ready', 'assignee: "x"\n'), { assignee: null })).toBe(file('ready', 'assignee: null\n'));
  });

  it('writes, for any string, a value that reads back as that string in the old style (property)', () => {
    const text = fc.string({ unit: fc.constantFrom(...'ab \'"\\:#\n\té日🙂'.split(/(?:)/u)), maxLength: 12 });
    fc.assert(
      fc.property(text, fc.constantFrom('"old"', "'old'", 'old'), (value, old) => {
        const out = rewriteOwnedFields(file('ready', `result: ${old}\n`), { result: value });
        const line = out.split('\n').find((l) => l.startsWith('result: '))!;
        expect(parse(line.slice('result: '.length))).toBe(value);
        if (old.startsWith('"')) expect(line[8]).toBe('"');
        if (old.startsWith("'")) expect(`'"`).toContain(line[8]);
      }),
      { numRuns: 300 },
    );
  });

  it('leaves non-string writes and values that were not scalars to the writer', () => {
    expect(keepQuoting(undefined, 'x', 'x')).toBe('x');
  });
});

describe('duplicate ids: the file the caller names keeps the id', () => {
  let board: TempBoard;
  beforeEach(async () => {
    board = await makeBoard();
  });
  afterEach(() => board.cleanup());

  it('holds the earlier file in name order when the later one is the one to keep', async () => {
    const running = await board.task('dup.md', taskText('dup'));
    const newcomer = await board.task('aaa.md', taskText('dup', '', 'Impostor.\n'));
    const plain = await loadBoard(board.dir);
    expect(plain.tasks.map((t) => t.path)).toEqual([newcomer]);
    const kept = await loadBoard(board.dir, { keepPathOf: (id) => (id === 'dup' ? running : undefined) });
    expect(kept.tasks.map((t) => t.path)).toEqual([running]);
    expect(kept.errors).toHaveLength(1);
    expect(kept.errors[0]!.path).toBe(newcomer);
    expect(kept.errors[0]!.message).toMatch(/^kanban\/tasks\/aaa\.md:2: .*id 'dup' is already used by kanban\/tasks\/dup\.md/);
  });

  it('keeps the named file when a duplicate appears in a refresh', async () => {
    const running = await board.task('dup.md', taskText('dup'));
    const options = { keepPathOf: (id: string) => (id === 'dup' ? running : undefined) };
    const before = await loadBoard(board.dir, options);
    const newcomer = await board.task('aaa.md', taskText('dup', '', 'Impostor.\n'));
    const after = await refreshWarrenBoard(before, [newcomer], options);
    expect(after.tasks.map((t) => t.path)).toEqual([running]);
    expect(after.errors.map((e) => e.path)).toEqual([newcomer]);
  });

  it('falls back to name order when the named file is not among them', async () => {
    const first = await board.task('a.md', taskText('dup'));
    await board.task('b.md', taskText('dup'));
    const snapshot = await loadBoard(board.dir, { keepPathOf: () => '/nowhere.md' });
    expect(snapshot.tasks.map((t) => t.path)).toEqual([first]);
  });
});

describe('transitionPath', () => {
  const config = parseBoardConfig(
    `${BOARD_YAML}transitions:\n  ready: [in_progress]\n  in_progress: [review, ready]\n  review: [done, in_progress]\n`.replace(
      '  - { id: done, name: Done }',
      '  - { id: review, name: Review }\n  - { id: done, name: Done }',
    ),
    '/srv/kanban/board.yaml',
  );

  it('walks the allowed moves toward the target, shortest first', () => {
    expect(transitionPath(config, 'in_progress', 'done')).toEqual(['review', 'done']);
    expect(transitionPath(config, 'ready', 'done')).toEqual(['in_progress', 'review', 'done']);
    expect(transitionPath(config, 'done', 'done')).toEqual([]);
  });

  it('is null when no allowed moves reach the target, and direct on a board without rules', () => {
    expect(transitionPath(config, 'in_progress', 'failed')).toBeNull();
    expect(transitionPath(config, 'done', 'ready')).toBeNull();
    expect(transitionPath(parseBoardConfig(BOARD_YAML, '/srv/kanban/board.yaml'), 'in_progress', 'done')).toEqual(['done']);
  });
});

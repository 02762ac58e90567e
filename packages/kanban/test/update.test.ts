import { createHash } from 'node:crypto';
import { chmod, readdir, readFile, stat, symlink, writeFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  formatOwnedValue,
  loadBoard,
  OWNED_FIELDS,
  rewriteOwnedFields,
  TaskConflictError,
  TaskUpdateError,
  updateTaskFile,
} from '@warren/kanban';
import { makeBoard, taskText, type TempBoard } from './helpers.js';

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

describe('updateTaskFile', () => {
  let board: TempBoard;
  beforeEach(async () => {
    board = await makeBoard();
  });
  afterEach(() => board.cleanup());

  it('replaces only the owned values and keeps every other byte (CRLF, BOM, comments, quoting, trailing blanks)', async () => {
    const input = [
      '\uFEFF---',
      '# Owned keys first, in an odd order',
      "updated: '2026-11-20T09:00:00Z'   # when it last changed",
      'status: "ready" # moved by hand',
      "title: 'Fix the login form'",
      'id: fix-login',
      'assignee:',
      'custom_field: {a: 1, b: "two"}  ',
      "quoted: 'it''s kept'\t",
      'capabilities: [shell]',
      'result: |',
      '  old',
      '  result',
      'started: null',
      'notes: "keep \\"this\\""',
      '---',
      'Body line with trailing blanks  ',
      '',
      '---',
      'status: not frontmatter',
      '',
    ].join('\r\n');
    const expected = [
      '\uFEFF---',
      '# Owned keys first, in an odd order',
      "updated: '2026-11-21T10:05:00.000Z'   # when it last changed",
      'status: "in_progress" # moved by hand',
      "title: 'Fix the login form'",
      'id: fix-login',
      'assignee: shell-1',
      'custom_field: {a: 1, b: "two"}  ',
      "quoted: 'it''s kept'\t",
      'capabilities: [shell]',
      'result: "exit 0\\nall \\"good\\""',
      'started: 2026-11-21T10:00:00.000Z',
      'notes: "keep \\"this\\""',
      'completed: 2026-11-21T10:05:00.000Z',
      '---',
      'Body line with trailing blanks  ',
      '',
      '---',
      'status: not frontmatter',
      '',
    ].join('\r\n');
    const path = await board.task('fix-login.md', input);
    const { hash } = await updateTaskFile(
      path,
      {
        status: 'in_progress',
        assignee: 'shell-1',
        result: 'exit 0\nall "good"',
        started: '2026-11-21T10:00:00.000Z',
        completed: '2026-11-21T10:05:00.000Z',
        updated: '2026-11-21T10:05:00.000Z',
      },
      { expectedHash: sha256(input) },
    );
    const written = await readFile(path);
    expect(written.toString('utf8')).toBe(expected);
    expect(written.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    expect(hash).toBe(sha256(written));

    const snapshot = await loadBoard(board.dir);
    expect(snapshot.errors).toEqual([]);
    const task = snapshot.tasks[0]!;
    expect(task).toMatchObject({ status: 'in_progress', assignee: 'shell-1', result: 'exit 0\nall "good"', hash });
    expect(task.fields).toMatchObject({ quoted: "it's kept", notes: 'keep "this"', custom_field: { a: 1, b: 'two' } });
  });

  it('appends missing owned keys at the end of the frontmatter, in OWNED_FIELDS order', async () => {
    const input = '---\nid: a\ntitle: A\nstatus: ready\ncapabilities: []\n# last comment\n---\nBody\n';
    const path = await board.task('a.md', input);
    await updateTaskFile(path, {
      updated: '2026-11-21T10:00:00.000Z',
      result: null,
      assignee: 'null',
      started: null,
      completed: '2026-11-21',
    });
    expect(await readFile(path, 'utf8')).toBe(
      '---\nid: a\ntitle: A\nstatus: ready\ncapabilities: []\n# last comment\n' +
        'assignee: "null"\nresult: null\nstarted: null\ncompleted: 2026-11-21\nupdated: 2026-11-21T10:00:00.000Z\n---\nBody\n',
    );
    expect(OWNED_FIELDS).toEqual(['status', 'assignee', 'result', 'started', 'completed', 'updated']);
  });

  it('writes null, keeps a comment after an empty value, and replaces tagged or block values whole', () => {
    const input =
      '---\nid: a\nassignee: agent-7 # was\nresult:   # none yet\nstarted: !!str 2026-11-20\n' +
      'completed:\n  - a list\n  - of things\nstatus: &s ready\n---\n';
    const out = rewriteOwnedFields(input, {
      assignee: null,
      result: 'ok',
      started: '2026-11-21T00:00:00Z',
      completed: '2026-11-22T00:00:00Z',
      status: 'done',
    });
    expect(out).toBe(
      '---\nid: a\nassignee: null # was\nresult: ok   # none yet\nstarted: 2026-11-21T00:00:00Z\n' +
        'completed: 2026-11-22T00:00:00Z\nstatus: done\n---\n',
    );
  });

  it('keeps the indentation of an indented frontmatter when appending', () => {
    const out = rewriteOwnedFields('---\n  id: a\n  status: ready\n---\n', { assignee: 'x' });
    expect(out).toBe('---\n  id: a\n  status: ready\n  assignee: x\n---\n');
  });

  it('quotes values that would not read back as the same string', () => {
    expect(formatOwnedValue('in_progress')).toBe('in_progress');
    expect(formatOwnedValue('exit code 1')).toBe('exit code 1');
    expect(formatOwnedValue(null)).toBe('null');
    expect(formatOwnedValue('null')).toBe('"null"');
    expect(formatOwnedValue('true')).toBe('"true"');
    expect(formatOwnedValue('42')).toBe('"42"');
    expect(formatOwnedValue('')).toBe('""');
    expect(formatOwnedValue(' leading')).toBe('" leading"');
    expect(formatOwnedValue('failed: exit 2')).toBe('"failed: exit 2"');
    expect(formatOwnedValue('a # not a comment')).toBe('"a # not a comment"');
    expect(formatOwnedValue('- item')).toBe('"- item"');
    expect(formatOwnedValue('tab\there\u0007bell\u2028ls\\')).toBe('"tab\\there\\x07bell\\u2028ls\\\\"');
  });

  it('throws TaskConflictError when the file changed, and writes nothing', async () => {
    const original = taskText('a');
    const path = await board.task('a.md', original);
    const staleHash = sha256(original);
    const edited = original.replace('status: ready', 'status: backlog');
    await writeFile(path, edited);
    const error = await updateTaskFile(path, { status: 'in_progress' }, { expectedHash: staleHash }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskConflictError);
    expect(error).toMatchObject({ code: 'WARREN_TASK_CONFLICT', path, expectedHash: staleHash, actualHash: sha256(edited) });
    expect(await readFile(path, 'utf8')).toBe(edited);
    expect(await readdir(join(board.dir, 'tasks'))).toEqual(['a.md']);
  });

  it('replaces the file by rename, keeps its mode, and leaves no temporary file', async () => {
    const path = await board.task('a.md', taskText('a'));
    await chmod(path, 0o640);
    const before = await stat(path);
    const { hash } = await updateTaskFile(path, { status: 'done', completed: '2026-11-21T10:00:00.000Z' });
    const after = await stat(path);
    expect(after.ino).not.toBe(before.ino);
    expect(after.mode & 0o7777).toBe(0o640);
    expect(await readdir(join(board.dir, 'tasks'))).toEqual(['a.md']);
    // Nothing to change: nothing is written.
    const again = await updateTaskFile(path, {});
    expect(again.hash).toBe(hash);
    expect((await stat(path)).ino).toBe(after.ino);
  });

  it('writes through a symlink to its target and keeps the link', async () => {
    const target = join(board.dir, 'real.md');
    await writeFile(target, taskText('a'));
    const link = join(board.dir, 'tasks', 'a.md');
    await symlink(target, link);
    await updateTaskFile(link, { status: 'done' });
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readFile(target, 'utf8')).toContain('status: done\n');
    expect((await readdir(board.dir)).sort()).toEqual(['board.yaml', 'real.md', 'tasks']);
  });

  it('refuses a rewrite that would change another value, and keeps the original', async () => {
    const input = '---\nid: a\ntitle: A\nstatus: &s ready\nmirror: *s\ncapabilities: []\n---\n';
    const path = await board.task('a.md', input);
    const error = await updateTaskFile(path, { status: 'done' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskUpdateError);
    expect((error as TaskUpdateError).code).toBe('WARREN_TASK_UPDATE');
    expect((error as TaskUpdateError).message).toMatch(/would not read back as intended/);
    expect(await readFile(path, 'utf8')).toBe(input);
    expect(await readdir(join(board.dir, 'tasks'))).toEqual(['a.md']);
  });

  it('refuses files it cannot rewrite safely, naming the problem', async () => {
    const flow = await board.task('flow.md', '---\n{id: a, status: ready}\n---\n');
    await expect(updateTaskFile(flow, { status: 'done' })).rejects.toThrow(/must be a block mapping/);
    const none = await board.task('none.md', 'no frontmatter\n');
    await expect(updateTaskFile(none, { status: 'done' })).rejects.toThrow(/no frontmatter/);
    await expect(updateTaskFile(join(board.dir, 'tasks', 'missing.md'), { status: 'done' })).rejects.toMatchObject({
      code: 'WARREN_TASK_UPDATE',
      cause: { code: 'ENOENT' },
    });
  });

  it('validates the new values before touching the file', async () => {
    const path = await board.task('a.md', taskText('a'));
    await expect(updateTaskFile(path, { started: 'yesterday' })).rejects.toMatchObject({ code: 'WARREN_TASK_UPDATE', field: 'started' });
    await expect(updateTaskFile(path, { status: '' })).rejects.toMatchObject({ field: 'status' });
    await expect(updateTaskFile(path, { title: 'x' } as never)).rejects.toMatchObject({ field: 'title' });
    expect(await readFile(path, 'utf8')).toBe(taskText('a'));
  });
});

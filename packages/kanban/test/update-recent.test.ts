import { chmod, lstat, readdir, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyOwnedChanges, loadBoard, TaskConflictError, updateTaskFile } from '@warren/kanban';
import { makeBoard, taskText, type TempBoard } from './helpers.js';

// A card write whose expected hash names bytes this process read (the loader) or wrote (the last
// write) does not read the file first; the whole-file check before the rename still guards it.

describe('updateTaskFile after a load or a write of the same file', () => {
  let board: TempBoard;
  beforeEach(async () => {
    board = await makeBoard();
  });
  afterEach(() => board.cleanup());

  const loaded = async (name: string) => (await loadBoard(board.dir)).tasks.find((t) => t.path.endsWith(name))!;

  it('writes twice in a row from the remembered bytes, giving what a reader reads', async () => {
    await board.task('a.md', taskText('a', '# keep me\n'));
    const task = await loaded('a.md');
    const first = { status: 'in_progress', assignee: 'agent-1', started: '2026-12-01T10:00:00.000Z' };
    const { hash } = await updateTaskFile(task.path, first, { expectedHash: task.hash });
    const second = { status: 'done', result: 'succeeded', completed: '2026-12-01T10:00:01.000Z' };
    const { hash: hash2 } = await updateTaskFile(task.path, second, { expectedHash: hash });
    const text = await readFile(task.path, 'utf8');
    expect(text).toBe(taskText('a', '# keep me\nassignee: agent-1\nstarted: 2026-12-01T10:00:00.000Z\nresult: succeeded\ncompleted: 2026-12-01T10:00:01.000Z\n').replace('status: ready', 'status: done'));
    expect(await loaded('a.md')).toEqual(applyOwnedChanges(applyOwnedChanges(task, first, hash), second, hash2));
  });

  it('refuses as a conflict when the file was edited since it was read, keeping the edit and leaving no temporary file', async () => {
    const path = await board.task('a.md', taskText('a'));
    const task = await loaded('a.md');
    const edited = taskText('a', 'priority: high\n');
    await writeFile(path, edited);
    await expect(updateTaskFile(path, { status: 'done' }, { expectedHash: task.hash })).rejects.toBeInstanceOf(TaskConflictError);
    expect(await readFile(path, 'utf8')).toBe(edited);
    expect((await readdir(join(board.dir, 'tasks'))).sort()).toEqual(['a.md']);
  });

  it('keeps a mode a person set after the file was read', async () => {
    const path = await board.task('a.md', taskText('a'));
    await chmod(path, 0o640);
    const task = await loaded('a.md');
    await chmod(path, 0o604);
    await updateTaskFile(path, { status: 'done' }, { expectedHash: task.hash });
    expect((await stat(path)).mode & 0o777).toBe(0o604);
    expect(await readFile(path, 'utf8')).toBe(taskText('a').replace('status: ready', 'status: done'));
  });

  it('does not write over a symlink that replaced the file, even one to the same bytes', async () => {
    const path = await board.task('a.md', taskText('a'));
    const task = await loaded('a.md');
    const elsewhere = join(board.root, 'a-copy.md');
    await writeFile(elsewhere, taskText('a'));
    await symlink(elsewhere, join(board.dir, 'tasks', '.a.md.link'));
    await rename(join(board.dir, 'tasks', '.a.md.link'), path);
    await expect(updateTaskFile(path, { status: 'done' }, { expectedHash: task.hash })).rejects.toBeInstanceOf(TaskConflictError);
    expect((await lstat(path)).isSymbolicLink()).toBe(true);
    expect(await readFile(elsewhere, 'utf8')).toBe(taskText('a'));
    // Read afresh, the write goes to the symlink's target as before.
    await updateTaskFile(path, { status: 'done' }, { expectedHash: task.hash });
    expect((await lstat(path)).isSymbolicLink()).toBe(true);
    expect(await readFile(elsewhere, 'utf8')).toBe(taskText('a').replace('status: ready', 'status: done'));
  });
});

import { cpSync, mkdtempSync, rmSync, statSync, unlinkSync, writeFileSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyOwnedChanges, loadWarrenBoard, refreshWarrenBoard, updateTaskFile, type BoardSnapshot } from '@warren/kanban';

const repoBoard = join(import.meta.dirname, '..', '..', '..', 'kanban');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function summary(s: BoardSnapshot) {
  return {
    tasks: s.tasks.map((t) => [t.id, t.path, t.hash, t.status]),
    errors: s.errors.map((e) => e.message),
  };
}

function task(id: string, status = 'ready'): string {
  return `---\nid: ${id}\ntitle: ${id}\nstatus: ${status}\ncapabilities: [shell]\n---\nbody\n`;
}

describe('refreshWarrenBoard', () => {
  it('gives the same snapshot as a full load after edits, additions, removals and broken files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-refresh-'));
    dirs.push(dir);
    cpSync(repoBoard, dir, { recursive: true });
    const tasks = join(dir, 'tasks');
    let snapshot = await loadWarrenBoard(dir);
    writeFileSync(join(tasks, 'count-lines.md'), task('count-lines', 'done'));
    writeFileSync(join(tasks, 'new-one.md'), task('new-one'));
    unlinkSync(join(tasks, 'dashboard.md'));
    writeFileSync(join(tasks, 'broken.md'), '---\nid: [\n---\n');
    snapshot = await refreshWarrenBoard(snapshot, ['count-lines.md', 'new-one.md', 'dashboard.md', 'broken.md'].map((f) => join(tasks, f)));
    expect(summary(snapshot)).toEqual(summary(await loadWarrenBoard(dir)));
    expect(snapshot.tasks.find((t) => t.id === 'count-lines')?.status).toBe('done');
  });

  it('falls back to a full load when an id collides, so the duplicate is reported as a full load would', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-refresh-'));
    dirs.push(dir);
    cpSync(repoBoard, dir, { recursive: true });
    const tasks = join(dir, 'tasks');
    const before = await loadWarrenBoard(dir);
    writeFileSync(join(tasks, 'aaa-copy.md'), task('test-core'));
    const after = await refreshWarrenBoard(before, [join(tasks, 'aaa-copy.md')]);
    expect(summary(after)).toEqual(summary(await loadWarrenBoard(dir)));
    expect(after.errors.some((e) => /already used by/.test(e.message))).toBe(true);
  });

  it('keeps the parsed task of a reported file whose bytes did not change, and re-reads one that did', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-refresh-'));
    dirs.push(dir);
    cpSync(repoBoard, dir, { recursive: true });
    const tasks = join(dir, 'tasks');
    writeFileSync(join(tasks, 'same.md'), task('same'));
    writeFileSync(join(tasks, 'edited.md'), task('edited'));
    const before = await loadWarrenBoard(dir);
    writeFileSync(join(tasks, 'same.md'), task('same'));
    writeFileSync(join(tasks, 'edited.md'), task('edited', 'done'));
    const after = await refreshWarrenBoard(before, [join(tasks, 'same.md'), join(tasks, 'edited.md')]);
    expect(after.tasks.find((t) => t.id === 'same')).toBe(before.tasks.find((t) => t.id === 'same'));
    expect(after.tasks.find((t) => t.id === 'edited')?.status).toBe('done');
    expect(summary(after)).toEqual(summary(await loadWarrenBoard(dir)));
  });

  it("takes the task Warren wrote for bytes of that hash instead of parsing them, and parses other bytes", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-refresh-'));
    dirs.push(dir);
    cpSync(repoBoard, dir, { recursive: true });
    const tasks = join(dir, 'tasks');
    writeFileSync(join(tasks, 'mine.md'), task('mine'));
    writeFileSync(join(tasks, 'theirs.md'), task('theirs'));
    const before = await loadWarrenBoard(dir);
    const mine = before.tasks.find((t) => t.id === 'mine')!;
    const theirs = before.tasks.find((t) => t.id === 'theirs')!;
    const { hash } = await updateTaskFile(mine.path, { status: 'in_progress', assignee: 'agent-1' }, { expectedHash: mine.hash });
    const written = applyOwnedChanges(mine, { status: 'in_progress', assignee: 'agent-1' }, hash);
    // Someone else's edit of the other file, noted with a stale hash: it is parsed.
    writeFileSync(join(tasks, 'theirs.md'), task('theirs', 'done'));
    const stale = { ...theirs, title: 'not parsed' };
    const asked: string[] = [];
    const after = await refreshWarrenBoard(before, [mine.path, theirs.path], {
      writtenTask: (path, h) => {
        asked.push(path);
        return path === mine.path && h === hash ? written : path === theirs.path ? (h === theirs.hash ? stale : undefined) : undefined;
      },
    });
    expect(after.tasks.find((t) => t.id === 'mine')).toBe(written);
    expect(after.tasks.find((t) => t.id === 'theirs')?.status).toBe('done');
    expect(after.tasks.find((t) => t.id === 'theirs')?.title).toBe('theirs');
    expect(asked.sort()).toEqual([mine.path, theirs.path].sort());
    // What Warren wrote reads as the task it noted.
    expect(summary(after)).toEqual(summary(await loadWarrenBoard(dir)));
    expect(written).toEqual((await loadWarrenBoard(dir)).tasks.find((t) => t.id === 'mine'));
  });

  it('reports the fstat of each file it reads, and drops a removed file without reporting it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-refresh-'));
    dirs.push(dir);
    cpSync(repoBoard, dir, { recursive: true });
    const tasks = join(dir, 'tasks');
    writeFileSync(join(tasks, 'one.md'), task('one'));
    writeFileSync(join(tasks, 'gone.md'), task('gone'));
    const before = await loadWarrenBoard(dir);
    writeFileSync(join(tasks, 'one.md'), task('one', 'done'));
    unlinkSync(join(tasks, 'gone.md'));
    const seen = new Map<string, Stats>();
    const after = await refreshWarrenBoard(before, [join(tasks, 'one.md'), join(tasks, 'gone.md')], { onRead: (path, info) => seen.set(path, info) });
    expect([...seen.keys()]).toEqual([join(tasks, 'one.md')]);
    const now = statSync(join(tasks, 'one.md'));
    expect([seen.get(join(tasks, 'one.md'))!.ino, seen.get(join(tasks, 'one.md'))!.size, seen.get(join(tasks, 'one.md'))!.mtimeMs]).toEqual([now.ino, now.size, now.mtimeMs]);
    expect(after.tasks.some((t) => t.id === 'gone')).toBe(false);
    expect(after.errors).toEqual([]);
    expect(summary(after)).toEqual(summary(await loadWarrenBoard(dir)));
  });
});

import { cpSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadWarrenBoard, refreshWarrenBoard, type BoardSnapshot } from '@warren/kanban';

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
});

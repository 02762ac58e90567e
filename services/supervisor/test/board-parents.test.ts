import { parentsToComplete, type BoardSnapshot, type Task } from '@warren/kanban';
import { describe, expect, it } from 'vitest';
import { ParentChecks } from '../src/board/parents.js';

const config = { roles: { ready: 'ready', in_progress: 'in_progress', done: 'done', failed: 'failed' } } as unknown as BoardSnapshot['config'];

function task(id: string, status: string, parentTaskId?: string): Task {
  return { id, status, ...(parentTaskId === undefined ? {} : { parentTaskId }) } as unknown as Task;
}

/** A map that counts its lookups. */
class CountingMap extends Map<string, Task> {
  lookups = 0;
  override get(key: string): Task | undefined {
    this.lookups += 1;
    return super.get(key);
  }
}

function board(tasks: Task[]): { snapshot: Pick<BoardSnapshot, 'config' | 'tasks'>; byId: CountingMap } {
  return { snapshot: { config, tasks }, byId: new CountingMap(tasks.map((t) => [t.id, t])) };
}

/** Replaces a task in place, as the mirror does after a write. */
function replace(b: ReturnType<typeof board>, updated: Task): void {
  b.snapshot.tasks[b.snapshot.tasks.findIndex((t) => t.id === updated.id)] = updated;
  b.byId.set(updated.id, updated);
}

describe('ParentChecks', () => {
  it('checks every parent after a new snapshot, as parentsToComplete does', () => {
    const b = board([task('p', 'ready'), task('a', 'done', 'p'), task('q', 'backlog'), task('b', 'done', 'q'), task('c', 'ready', 'q'), task('r', 'done'), task('d', 'done', 'r')]);
    const checks = new ParentChecks();
    expect(checks.dirty).toBe(true);
    expect(checks.take(b.snapshot, b.byId)).toEqual(parentsToComplete(b.snapshot));
    expect(checks.take(b.snapshot, b.byId)).toEqual([]);
    expect(checks.dirty).toBe(false);
  });

  it('then checks only the parents of the cards noted, looking up those parents and their subtasks alone', () => {
    const tasks = [task('p', 'ready'), task('a', 'done', 'p'), task('b', 'in_progress', 'p')];
    for (let i = 0; i < 1000; i += 1) tasks.push(task(`x${i}`, 'ready'), task(`y${i}`, 'ready', `x${i}`));
    const b = board(tasks);
    const checks = new ParentChecks();
    expect(checks.take(b.snapshot, b.byId)).toEqual([]);
    // An unrelated card settles: nothing to complete, and no scan of the board.
    b.byId.lookups = 0;
    checks.note(b.byId.get('x5')!);
    expect(checks.take(b.snapshot, b.byId)).toEqual([]);
    expect(b.byId.lookups).toBeLessThan(10);
    // The last subtask of p is written done: p is complete.
    const done = task('b', 'done', 'p');
    replace(b, done);
    b.byId.lookups = 0;
    checks.note(done);
    expect(checks.take(b.snapshot, b.byId)).toEqual([{ parentId: 'p', subtaskIds: ['a', 'b'] }]);
    expect(b.byId.lookups).toBeLessThan(10);
    expect(checks.dirty).toBe(false);
  });

  it('checks a completed parent’s own parent, a retried parent again, and every parent after a reset', () => {
    const b = board([task('g', 'ready'), task('p', 'ready', 'g'), task('a', 'done', 'p')]);
    const checks = new ParentChecks();
    expect(checks.take(b.snapshot, b.byId)).toEqual([{ parentId: 'p', subtaskIds: ['a'] }]);
    // The write of p failed: it is checked again.
    checks.retry('p');
    expect(checks.take(b.snapshot, b.byId)).toEqual([{ parentId: 'p', subtaskIds: ['a'] }]);
    // p written done: its parent g is complete.
    const p = task('p', 'done', 'g');
    replace(b, p);
    checks.note(p);
    expect(checks.take(b.snapshot, b.byId)).toEqual([{ parentId: 'g', subtaskIds: ['p'] }]);
    // A new snapshot with a new subtask of g: every parent is looked at again.
    const next = board([task('g', 'ready'), task('p', 'done', 'g'), task('q', 'done', 'g'), task('a', 'done', 'p')]);
    checks.reset();
    expect(checks.take(next.snapshot, next.byId)).toEqual([{ parentId: 'g', subtaskIds: ['p', 'q'] }]);
  });

  it('finds nothing when the board turns the rule off', () => {
    const b = board([task('p', 'ready'), task('a', 'done', 'p')]);
    const off = { ...b.snapshot, config: { ...config, parentDoneWhenSubtasksDone: false } as BoardSnapshot['config'] };
    expect(new ParentChecks().take(off, b.byId)).toEqual([]);
  });
});

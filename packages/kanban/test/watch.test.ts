import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadBoard, updateTaskFile, watchBoard, type BoardChangeEvent, type BoardWatcher } from '@warren/kanban';
import { makeBoard, taskText, type TempBoard } from './helpers.js';

/** Collects events; `next(predicate)` resolves with the first (past or future) event that matches. */
function recorder() {
  const events: BoardChangeEvent[] = [];
  const waiters: { match: (e: BoardChangeEvent) => boolean; resolve: (e: BoardChangeEvent) => void }[] = [];
  return {
    events,
    onChange(event: BoardChangeEvent) {
      events.push(event);
      for (const w of [...waiters]) {
        if (w.match(event)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(event);
        }
      }
    },
    next(match: (e: BoardChangeEvent) => boolean, from = 0): Promise<BoardChangeEvent> {
      const seen = events.slice(from).find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
  };
}

describe('watchBoard', () => {
  let board: TempBoard;
  let watcher: BoardWatcher | undefined;
  beforeEach(async () => {
    board = await makeBoard();
  });
  afterEach(async () => {
    await watcher?.close();
    watcher = undefined;
    await board.cleanup();
  });

  it('reports edits, new files, renames over a file, and board.yaml changes', async () => {
    const a = await board.task('a.md', taskText('a'));
    const r = recorder();
    watcher = watchBoard(board.dir, (e) => r.onChange(e), { debounceMs: 20 });

    await writeFile(a, taskText('a').replace('status: ready', 'status: done'));
    await r.next((e) => e.paths.includes(a));

    let from = r.events.length;
    const b = join(board.dir, 'tasks', 'b.md');
    await writeFile(join(board.dir, 'tasks', '.b.md.tmp'), taskText('b'));
    await rename(join(board.dir, 'tasks', '.b.md.tmp'), b);
    await r.next((e) => e.paths.includes(b), from);

    from = r.events.length;
    const config = join(board.dir, 'board.yaml');
    await writeFile(config, `${await readFile(config, 'utf8')}# edited\n`);
    await r.next((e) => e.paths.includes(config), from);
    expect(r.events.every((e) => e.paths.every((p) => p.startsWith(board.dir)))).toBe(true);
  });

  it('finds changes by rescanning when fs.watch has nothing to report (tasks folder created later)', async () => {
    await rm(join(board.dir, 'tasks'), { recursive: true });
    const r = recorder();
    // A long debounce would not matter; the rescan interval is what brings the change in.
    watcher = watchBoard(board.dir, (e) => r.onChange(e), { debounceMs: 10, rescanIntervalMs: 30 });
    await mkdir(join(board.dir, 'tasks'));
    const c = join(board.dir, 'tasks', 'c.md');
    await writeFile(c, taskText('c'));
    await r.next((e) => e.paths.includes(c));
    // Now the tasks folder is watched too: a further edit arrives.
    const from = r.events.length;
    await writeFile(c, taskText('c', 'priority: high\n'));
    await r.next((e) => e.paths.includes(c), from);
  });

  it("takes a read's fstat as a file's signature: the rescan reports the file only when it differs", async () => {
    const a = await board.task('a.md', taskText('a'));
    // A folder only the rescan looks at: a file written there shows that a rescan ran since.
    const extra = join(board.dir, 'extra');
    await mkdir(extra);
    const r = recorder();
    watcher = watchBoard(board.dir, (e) => r.onChange(e), { debounceMs: 5, rescanIntervalMs: 20, paths: [extra] });
    const info = await stat(a);
    // A signature the file no longer has (read before a change): the rescan reports the file.
    watcher.seen(a, { ino: info.ino, size: info.size + 1, mtimeMs: info.mtimeMs, ctimeMs: info.ctimeMs });
    await r.next((e) => e.paths.includes(a));
    // The signature it has: later rescans do not report it.
    watcher.seen(a, await stat(a));
    const from = r.events.length;
    for (const name of ['x.md', 'y.md']) {
      const sentinel = join(extra, name);
      await writeFile(sentinel, taskText('x'));
      await r.next((e) => e.paths.includes(sentinel), from);
    }
    expect(r.events.slice(from).some((e) => e.paths.includes(a))).toBe(false);
  });

  it("does not report the rename of the caller's own write, and reports any change after it", async () => {
    const a = await board.task('a.md', taskText('a'));
    const task = (await loadBoard(board.dir)).tasks[0]!;
    const r = recorder();
    watcher = watchBoard(board.dir, (e) => r.onChange(e), { debounceMs: 5 });
    const { hash } = await updateTaskFile(a, { status: 'in_progress', assignee: 'agent-1' }, { expectedHash: task.hash, replaceObserver: watcher });
    // A person's file written after it: its event comes after the write's, so once it is reported the write's was handled.
    const b = join(board.dir, 'tasks', 'b.md');
    await writeFile(b, taskText('b'));
    await r.next((e) => e.paths.includes(b));
    expect(r.events.some((e) => e.paths.includes(a))).toBe(false);
    // Two own writes in a row: neither is reported.
    const { hash: hash2 } = await updateTaskFile(a, { status: 'done' }, { expectedHash: hash, replaceObserver: watcher });
    await updateTaskFile(a, { result: 'succeeded' }, { expectedHash: hash2, replaceObserver: watcher });
    let from = r.events.length;
    await writeFile(b, taskText('b', 'priority: high\n'));
    await r.next((e) => e.paths.includes(b), from);
    expect(r.events.some((e) => e.paths.includes(a))).toBe(false);
    // A person's edit right after an own write is reported.
    from = r.events.length;
    const { hash: hash3 } = await updateTaskFile(a, { result: 'failed' }, { expectedHash: (await loadBoard(board.dir)).tasks[0]!.hash, replaceObserver: watcher });
    expect(hash3).not.toBe(hash2);
    await writeFile(a, taskText('a', 'priority: low\n'));
    await r.next((e) => e.paths.includes(a), from);
  });

  it('takes the fstat of its own write as the signature, and reports an own rename whose event never came once the rescan interval is over', async () => {
    const a = await board.task('a.md', taskText('a'));
    const c = await board.task('c.md', taskText('c'));
    const task = (await loadBoard(board.dir)).tasks[0]!;
    const extra = join(board.dir, 'extra');
    await mkdir(extra);
    const r = recorder();
    watcher = watchBoard(board.dir, (e) => r.onChange(e), { debounceMs: 5, rescanIntervalMs: 20, paths: [extra] });
    await updateTaskFile(a, { status: 'done' }, { expectedHash: task.hash, replaceObserver: watcher });
    // Rescans (each shown by a file appearing where only they look) do not report the written file.
    let from = r.events.length;
    for (const name of ['x.md', 'y.md']) {
      const sentinel = join(extra, name);
      await writeFile(sentinel, taskText('x'));
      await r.next((e) => e.paths.includes(sentinel), from);
    }
    expect(r.events.slice(from).some((e) => e.paths.includes(a))).toBe(false);
    // A rename announced but never made (as when the watch misses its event): c is reported after about 1 s.
    from = r.events.length;
    watcher.beforeRename(c).renamed(undefined);
    await r.next((e) => e.paths.includes(c), from);
    // An announced rename that failed is withdrawn: the next rename event of the file is reported.
    watcher.beforeRename(c).failed();
    from = r.events.length;
    await writeFile(join(board.dir, 'tasks', '.c.md.tmp'), taskText('c', 'priority: high\n'));
    await rename(join(board.dir, 'tasks', '.c.md.tmp'), c);
    await r.next((e) => e.paths.includes(c), from);
  });

  it('stops calling onChange after close, and close is idempotent', async () => {
    const a = await board.task('a.md', taskText('a'));
    const r = recorder();
    const w = watchBoard(board.dir, (e) => r.onChange(e), { debounceMs: 10, rescanIntervalMs: 20 });
    await writeFile(a, taskText('a', 'labels: [x]\n'));
    await r.next((e) => e.paths.includes(a));
    const closing = w.close();
    expect(w.close()).toBe(closing);
    await closing;
    await w[Symbol.asyncDispose]();
    const count = r.events.length;
    await writeFile(a, taskText('a', 'labels: [y]\n'));
    // The latch: a second, open watcher with a longer debounce sees a later edit; had the closed
    // watcher still been live, its shorter debounce would have reported the earlier edit before that.
    const control = recorder();
    watcher = watchBoard(board.dir, (e) => control.onChange(e), { debounceMs: 40, rescanIntervalMs: 20 });
    await writeFile(a, taskText('a', 'labels: [z]\n'));
    await control.next((e) => e.paths.includes(a));
    expect(r.events.length).toBe(count);
  });

  it('logs an error thrown by onChange and keeps watching', async () => {
    const a = await board.task('a.md', taskText('a'));
    const errors: unknown[] = [];
    const logger = {
      trace() {},
      debug() {},
      info() {},
      warn() {},
      error(obj: object) {
        errors.push((obj as { err: unknown }).err);
      },
      child() {
        return logger;
      },
    };
    const r = recorder();
    let calls = 0;
    watcher = watchBoard(
      board.dir,
      (e) => {
        calls += 1;
        r.onChange(e);
        if (calls === 1) throw new Error('handler broke');
      },
      { debounceMs: 10, logger },
    );
    await writeFile(a, taskText('a', 'labels: [x]\n'));
    await r.next((e) => e.paths.includes(a));
    const from = r.events.length;
    await writeFile(a, taskText('a', 'labels: [y]\n'));
    await r.next((e) => e.paths.includes(a), from);
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('handler broke');
  });
});

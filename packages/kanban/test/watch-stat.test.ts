import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { statSignatures } from '../src/watch.js';
import { makeBoard, taskText, type TempBoard } from './helpers.js';

describe('statSignatures (the rescan of a board)', () => {
  let board: TempBoard;
  beforeEach(async () => {
    board = await makeBoard();
  });
  afterEach(() => board.cleanup());

  it('gives each existing file its inode, size, mtime and ctime, in order, and leaves out missing ones', async () => {
    const paths: string[] = [];
    for (let i = 0; i < 50; i += 1) {
      const path = join(board.dir, 'tasks', `t-${i}.md`);
      if (i % 5 !== 0) await writeFile(path, taskText(`t-${i}`));
      paths.push(path);
    }
    const out = await statSignatures(paths);
    const expected = new Map<string, string>();
    for (const path of paths) {
      const info = await stat(path).catch(() => undefined);
      if (info) expected.set(path, `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`);
    }
    expect([...out]).toEqual([...expected]);
    expect(out.size).toBe(40);
  });

  it('lets the event loop run between slices of a long scan', async () => {
    // 20,000 paths in a folder that does not exist: every stat fails fast, and none is slow.
    const paths = Array.from({ length: 20_000 }, (_, i) => join(board.dir, 'nowhere', `t-${i}.md`));
    let turns = 0;
    let running = true;
    const spin = (): void => {
      turns += 1;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    const out = await statSignatures(paths);
    running = false;
    expect(out.size).toBe(0);
    expect(turns).toBeGreaterThan(1);
  });
});

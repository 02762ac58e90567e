/**
 * The board watcher's extra paths: a Warren board's own `board.yaml` and `tasks/` folder are left
 * to the watcher (whose scan covers their files), so that the folder's mtime, which every card
 * write changes, never turns a refresh into a full reload.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { boardWatchPaths, loadBoard } from '@warren/kanban';
import { makeTempDir, type TempDir } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { extraWatchPaths } from '../src/board/mirror.js';

const dirs: TempDir[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await dir.close();
});

const BOARD = `name: t
columns:
  - { id: ready, name: Ready }
  - { id: in_progress, name: In progress }
  - { id: done, name: Done }
  - { id: failed, name: Failed }
roles: { ready: ready, in_progress: in_progress, done: done, failed: failed }
`;

describe('extraWatchPaths', () => {
  it("leaves out a Warren board's board.yaml and tasks folder, which boardWatchPaths lists", async () => {
    const dir = await makeTempDir('warren-watch-paths-');
    dirs.push(dir);
    const boardDir = join(dir.path, 'kanban');
    mkdirSync(join(boardDir, 'tasks'), { recursive: true });
    writeFileSync(join(boardDir, 'board.yaml'), BOARD);
    writeFileSync(join(boardDir, 'tasks', 't1.md'), '---\nid: t1\ntitle: One\nstatus: ready\ncapabilities: []\ncommand: "true"\ncreated: 2026-11-20T09:00:00Z\n---\nA task.\n');
    const snapshot = await loadBoard(boardDir);
    expect(snapshot.tasks.map((t) => t.id), JSON.stringify(snapshot.errors)).toEqual(['t1']);
    expect(boardWatchPaths(snapshot)).toContain(join(boardDir, 'tasks'));
    expect(extraWatchPaths(snapshot, boardDir)).toEqual([]);
  });
});

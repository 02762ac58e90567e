import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBoard, type FileSignatureInfo, type ReplaceObserver } from '@warren/kanban';
import { afterEach, describe, expect, it } from 'vitest';
import { BoardEdits, type BoardEditsContext } from '../src/board-edits.js';

const BOARD = `name: t
columns:
  - { id: ready, name: Ready }
  - { id: in_progress, name: In progress }
  - { id: done, name: Done }
  - { id: failed, name: Failed }
roles: { ready: ready, in_progress: in_progress, done: done, failed: failed }
`;

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('BoardEdits.write with a replace observer', () => {
  it('tells the observer of each step’s rename, with the fstat of the file as written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warren-edits-'));
    dirs.push(dir);
    await mkdir(join(dir, 'tasks'));
    await writeFile(join(dir, 'board.yaml'), BOARD);
    const path = join(dir, 'tasks', 'a.md');
    await writeFile(path, '---\nid: a\ntitle: A\nstatus: ready\ncapabilities: [shell]\n---\n');
    const board = await loadBoard(dir);
    const calls: { path: string; info: FileSignatureInfo | undefined }[] = [];
    const observer: ReplaceObserver = {
      beforeRename: (renamed) => ({
        renamed: (info) => calls.push({ path: renamed, info }),
        failed: () => calls.push({ path: `failed:${renamed}`, info: undefined }),
      }),
    };
    const edits = new BoardEdits({} as BoardEditsContext);
    const steps = [
      { status: 'in_progress', assignee: 'agent-1' },
      { status: 'done', result: 'succeeded' },
    ];
    const outcome = await edits.write(board, board.tasks[0]!, steps, observer);
    expect(outcome.ok).toBe(true);
    expect(calls.map((c) => c.path)).toEqual([path, path]);
    const bytes = await readFile(path);
    expect(calls[1]!.info?.size).toBe(bytes.length);
    expect(bytes.toString()).toContain('status: done\n');
  });
});

/**
 * A subtask's parent field, set in the board's own format after the card is written: Warren's
 * `parent` and Backlog.md's `parent_task_id`, read back by `@warren/kanban` as the task's parent.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createTask, loadBoard } from '@warren/kanban';
import { setParentField } from '../../services/supervisor/src/operator/managers.js';
import { repo } from '../support/cli.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('the parent field of a subtask card', () => {
  it('is written in a Warren board as parent, keeping the rest of the file, and read back as the parent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-parent-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'tasks'));
    cpSync(join(repo, 'kanban', 'board.yaml'), join(dir, 'board.yaml'));
    const { id, path } = await createTask(dir, { title: 'Write part A', body: 'Two\nlines.', capabilities: ['shell'] });
    const before = readFileSync(path, 'utf8');
    setParentField(path, 'parent', 'epic-1');
    const after = readFileSync(path, 'utf8');
    expect(after.replace('parent: epic-1\n', '')).toBe(before);
    expect((await loadBoard(dir)).tasks.find((t) => t.id === id)?.parentTaskId).toBe('epic-1');
    // Set again: replaced, not repeated.
    setParentField(path, 'parent', 'epic 2');
    expect(readFileSync(path, 'utf8').match(/^parent:/gm)).toHaveLength(1);
    expect((await loadBoard(dir)).tasks.find((t) => t.id === id)?.parentTaskId).toBe('epic 2');
  });

  it('keeps CRLF line ends and refuses a file without front matter', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-parent-'));
    dirs.push(dir);
    const crlf = join(dir, 'task-2 - Part.md');
    writeFileSync(crlf, '---\r\nid: TASK-2\r\ntitle: Part\r\n---\r\n\r\nBody\r\n');
    setParentField(crlf, 'parent_task_id', 'TASK-1');
    expect(readFileSync(crlf, 'utf8')).toBe('---\r\nid: TASK-2\r\ntitle: Part\r\nparent_task_id: TASK-1\r\n---\r\n\r\nBody\r\n');
    const bare = join(dir, 'bare.md');
    writeFileSync(bare, 'no front matter\n');
    expect(() => setParentField(bare, 'parent', 'x')).toThrow(/no front matter to set 'parent' in/);
  });
});

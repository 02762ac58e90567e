import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { boardWatchPaths, checkBoard, loadBoard, MoveRefusedError, TaskConflictError, updateTask, watchBoard, wipStatus } from '../src/index.js';
import { copyFixture, FIXTURES, OWN_FIXTURES } from './formats-helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
async function board(source: string, name: string): Promise<string> {
  const copy = await copyFixture(source, name);
  cleanups.push(copy.cleanup);
  return copy.dir;
}

describe('Obsidian Kanban board (own fixture)', () => {
  it('reads columns, cards, linked notes and tokens; reports each bad card once with its line', async () => {
    const dir = await board(join(OWN_FIXTURES, 'obsidian'), 'vault');
    const snapshot = await loadBoard(dir);
    expect(snapshot.format).toBe('obsidian');
    expect(snapshot.config.columns.map((c) => [c.id, c.wip ?? null])).toEqual([
      ['backlog', null],
      ['to_do', 8],
      ['doing', 1],
      ['qa', null],
      ['done', null],
    ]);
    expect(snapshot.config.roles).toEqual({ ready: 'to_do', in_progress: 'doing', done: 'done', failed: 'to_do' });
    const byId = new Map(snapshot.tasks.map((t) => [t.id, t]));
    const login = byId.get('fix-login')!;
    expect(login.path).toBe(join(dir, 'notes', 'Fix @agent login.md'));
    expect(login.capabilities).toEqual(['shell', 'cap:codegen']);
    expect(login.priority).toBe('high');
    expect(login.assignee).toBeNull();
    expect(login.card?.line).toBe(9);
    expect(byId.get('add-metrics')!.capabilities).toEqual(['tool:codex', 'env:no-egress']);
    expect(byId.get('write-the-release-notes')!.priority).toBe('normal'); // empty `prio:`
    expect(byId.get('escape-card')!.title).toBe('Escape test: a literal \\n stays as it is');
    expect(byId.get('already-doing-two')!.assignee).toBe('bob');
    expect(byId.has('an-archived-card')).toBe(false);
    expect(snapshot.errors.map((e) => [e.line, e.field ?? null])).toEqual([
      [12, 'id'],
      [18, 'priority'],
    ]);
    expect(snapshot.errors[0]!.message).toBe("vault/kanban.md:12: id 'write-the-release-notes' is already used by the card on line 10");
    expect(wipStatus(snapshot).find((w) => w.name === 'doing')).toMatchObject({ count: 2, limit: 1, over: true });
  });

  it('moves a card to its column and ticks it when done, leaving every other byte', async () => {
    const dir = await board(join(OWN_FIXTURES, 'obsidian'), 'vault');
    const path = join(dir, 'kanban.md');
    const original = await readFile(path, 'utf8');
    let snapshot = await loadBoard(dir);
    const metrics = snapshot.tasks.find((t) => t.id === 'add-metrics')!;
    // The in-progress column is already over its limit: nothing more is pulled into it.
    const refused = await updateTask(snapshot, metrics, { status: 'doing', assignee: 'codex-1' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(MoveRefusedError);
    expect((refused as MoveRefusedError).refusal).toMatchObject({ kind: 'wip', column: 'doing', count: 2, limit: 1 });
    expect(await readFile(path, 'utf8')).toBe(original);

    const { hash } = await updateTask(snapshot, metrics, { status: 'done', completed: '2026-11-20T10:00:00Z', assignee: 'codex-1' }, { expectedHash: metrics.hash });
    const after = await readFile(path, 'utf8');
    const card = '- [x] [Add metrics](notes/Add%20metrics.md) #tool:codex #env:no-egress @codex-1 ✅ 2026-11-20';
    const expected = original
      .replace('- [ ] [Add metrics](notes/Add%20metrics.md) #tool:codex #env:no-egress\n', '')
      .replace('- [x] Shipped the first thing ✅ 2025-07-30\n', `- [x] Shipped the first thing ✅ 2025-07-30\n${card}\n`);
    expect(after).toBe(expected);
    snapshot = await loadBoard(dir);
    const moved = snapshot.tasks.find((t) => t.id === 'add-metrics')!;
    expect(moved).toMatchObject({ status: 'done', assignee: 'codex-1', hash });
    expect(moved.card?.checked).toBe(true);

    // Back to the queue: unticked, moved under the To Do heading (an empty column now).
    await updateTask(snapshot, moved, { status: 'to_do', assignee: null });
    const back = await readFile(path, 'utf8');
    expect(back).toContain('## 🟢 To Do (8)\n\n- [ ] Card with an unknown priority prio:P9\n- [ ] [Add metrics](notes/Add%20metrics.md) #tool:codex #env:no-egress ✅ 2026-11-20\n');
  });

  it('merges with edits to other cards and refuses when the card itself changed', async () => {
    const dir = await board(join(OWN_FIXTURES, 'obsidian'), 'vault');
    const path = join(dir, 'kanban.md');
    const snapshot = await loadBoard(dir);
    const login = snapshot.tasks.find((t) => t.id === 'fix-login')!;
    const escape = snapshot.tasks.find((t) => t.id === 'escape-card')!;
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.replace('- [ ] Write the release notes #docs prio:', '- [ ] Write the release notes #docs prio: (edited)').replace('#cap:codegen prio:P1', '#cap:codegen prio:P0'));
    await expect(updateTask(snapshot, login, { status: 'to_do' }, { expectedHash: login.hash })).rejects.toBeInstanceOf(TaskConflictError);
    await updateTask(snapshot, escape, { status: 'to_do' }, { expectedHash: escape.hash });
    const after = await readFile(path, 'utf8');
    expect(after).toContain('(edited)');
    expect(after).toContain('- [ ] Card with an unknown priority prio:P9\n- [ ] Escape test: a literal \\n stays as it is id:escape-card\n');
  });
});

describe('watching an Obsidian board', () => {
  it('reports an edit of the board note through boardWatchPaths', async () => {
    const dir = await board(join(OWN_FIXTURES, 'obsidian'), 'vault');
    const snapshot = await loadBoard(dir);
    const path = join(dir, 'kanban.md');
    expect(boardWatchPaths(snapshot)).toEqual([dir, path, join(dir, 'notes')]);
    let seen: (paths: string[]) => void = () => undefined;
    const changed = new Promise<string[]>((resolve) => (seen = resolve));
    const watcher = watchBoard(dir, ({ paths }) => seen(paths), { paths: boardWatchPaths(snapshot), rescanIntervalMs: 50 });
    try {
      await writeFile(path, `${await readFile(path, 'utf8')}\n`);
      expect(await changed).toContain(path);
    } finally {
      await watcher.close();
    }
  });
});

describe('Obsidian Kanban board (real Promethean fixture)', () => {
  it('loads the board, holds duplicate and empty cards, and moves a card byte-exactly', async () => {
    const dir = await board(join(FIXTURES, 'promethean-2025-08'), 'promethean');
    const report = await checkBoard(dir);
    expect(report.format).toBe('obsidian');
    expect(report.errors.map((e) => e.line)).toEqual([34, 35, 36, 63, 109, 131]);
    const snapshot = await loadBoard(dir);
    const task = snapshot.tasks.find((t) => t.id === 'add_unit_tests_for_gui_helpers')!;
    expect(task.status).toBe('ready');
    expect(task.path).toBe(join(dir, 'tasks', 'Add_unit_tests_for_gui_helpers.md'));
    const path = join(dir, 'boards', 'kanban.md');
    const before = await readFile(path, 'utf8');
    await updateTask(snapshot, task, { status: 'to_do' }, { expectedHash: task.hash });
    const after = await readFile(path, 'utf8');
    const line = '- [ ] [Add unit tests for GUI helpers](../tasks/Add_unit_tests_for_gui_helpers.md) #codex-task #testing\n';
    const last = '- [ ] [Add unit tests for date_tools.py](../tasks/Add_unit_tests_for_date_tools.py.md) #codex-task #testing\n';
    expect(after).toBe(before.replace(line, '').replace(last, last + line));
  });
});

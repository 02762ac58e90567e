import { access, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { boardFormat, CREATE_LOCK_NAME, createTask, loadBoard, TaskConflictError, TaskCreateError, type BoardSnapshot, type TaskDraft } from '../src/index.js';
import { copyFixture, FIXTURES, OWN_FIXTURES, snapshotFiles } from './formats-helpers.js';

const DEMO_BOARD = join(import.meta.dirname, '..', '..', '..', 'kanban');

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function board(source: string, name: string): Promise<string> {
  const copy = await copyFixture(source, name);
  cleanups.push(copy.cleanup);
  return copy.dir;
}

interface BoardCase {
  readonly name: string;
  readonly source: string;
  readonly folder: string;
  /** The file holding every card, whose other bytes must stay (Obsidian), relative to the copy. */
  readonly sharedFile?: string;
  /** The text that names a parent `id` in the new task's file (a card: with or without a note). */
  readonly parentText: (id: string, note: boolean) => string;
}

const frontmatterParent = (key: string, quote = '') => (id: string) => `\n${key}: ${quote}${id}${quote}\n`;
const obsidianParent = (id: string, note: boolean) => (note ? `\nparent: "${id}"\n` : ` parent:${id}`);

const BOARDS: readonly BoardCase[] = [
  { name: 'Warren (the demo board)', source: DEMO_BOARD, folder: 'kanban', parentText: frontmatterParent('parent') },
  { name: 'Backlog.md', source: join(FIXTURES, 'backlog-md'), folder: 'backlog', parentText: frontmatterParent('parent_task_id') },
  {
    name: 'Obsidian Kanban (Promethean, cards linking notes)',
    source: join(FIXTURES, 'promethean-2025-08'),
    folder: 'agile',
    sharedFile: 'boards/kanban.md',
    parentText: obsidianParent,
  },
  { name: 'Obsidian Kanban (plain cards)', source: join(OWN_FIXTURES, 'obsidian'), folder: 'vault', sharedFile: 'kanban.md', parentText: obsidianParent },
  { name: 'JSON-config (Promethean)', source: join(OWN_FIXTURES, 'json-config'), folder: 'json', parentText: frontmatterParent('parent', '"') },
];

const NOW = new Date('2026-12-01T10:20:30.000Z');

/** The board's errors without line numbers (a card added above one moves it down a line). */
function problems(snapshot: BoardSnapshot): string[] {
  return snapshot.errors.map((e) => `${e.field ?? ''}: ${e.reason.replace(/line \d+/g, 'line N')}`);
}

/** Lines of `after` that `before` lacks, and whether `after` without them is `before`, byte for byte. */
function addedLines(before: string, after: string): { added: string[]; restIsSame: boolean } {
  const old = before.split('\n');
  const next = after.split('\n');
  const added: string[] = [];
  let i = 0;
  const kept: string[] = [];
  for (const line of next) {
    if (i < old.length && line === old[i]) {
      kept.push(line);
      i += 1;
    } else added.push(line);
  }
  return { added, restIsSame: kept.join('\n') === before };
}

describe.each(BOARDS)('createTask on a $name board', (c) => {
  it('writes a task that reloads with its title, column, priority, capabilities, labels, dependencies and body; no other file changes', async () => {
    const dir = await board(c.source, c.folder);
    const filesBefore = await snapshotFiles(dir);
    const before = await loadBoard(dir);
    const dependency = before.tasks[0]!;
    const column = before.config.columns[0]!;
    const draft: TaskDraft = {
      title: 'Write the release notes for 2.0',
      body: 'Cover the new API.\n\nAnd the migration.\n',
      column: column.name,
      priority: 'high',
      capabilities: ['tool:codex'],
      labels: ['docs'],
      dependsOn: [dependency.id],
    };
    const created = await createTask(dir, draft, { now: NOW });

    const after = await loadBoard(dir);
    expect(problems(after)).toEqual(problems(before));
    expect(after.tasks).toHaveLength(before.tasks.length + 1);
    const task = after.tasks.find((t) => t.id === created.id)!;
    expect(task).toBeDefined();
    expect(task.path).toBe(created.path);
    expect(task.title).toBe(draft.title);
    expect(task.status).toBe(column.id);
    expect(task.priority).toBe('high');
    expect(task.capabilities).toContain('tool:codex');
    expect(task.labels).toContain('docs');
    expect(task.dependsOn).toEqual([dependency.id]);
    expect(task.body).toContain('Cover the new API.\n\nAnd the migration.');

    const filesAfter = await snapshotFiles(dir);
    const changed = [...filesAfter.keys()].filter((path) => !filesBefore.get(path)?.equals(filesAfter.get(path)!));
    const newFile = join(dir, [...changed].find((path) => !filesBefore.has(path)) ?? '');
    expect(newFile).toBe(created.path);
    if (c.sharedFile === undefined) {
      expect(changed).toHaveLength(1);
    } else {
      // The note and the board file: the board gained exactly one line and kept every other byte.
      expect(changed.sort()).toEqual([c.sharedFile, created.path.slice(dir.length + 1)].sort());
      const { added, restIsSame } = addedLines(filesBefore.get(c.sharedFile)!.toString('utf8'), filesAfter.get(c.sharedFile)!.toString('utf8'));
      expect(restIsSame).toBe(true);
      expect(added).toHaveLength(1);
      expect(added[0]).toMatch(/^- \[ \] \[Write the release notes for 2\.0\]\(.+\.md\) #docs #tool:codex prio:P1 dep:/);
    }
    await expect(access(join(after.dir, CREATE_LOCK_NAME))).rejects.toThrow();
  });

  it('gives concurrent creates different ids, each a task on the board', async () => {
    const dir = await board(c.source, c.folder);
    const before = await loadBoard(dir);
    // The same title (same file name, same slug) and different ones (Backlog.md: different file names, one number sequence).
    const titles = ['Same title', 'Same title', 'Other title one', 'Same title', 'Other title two', 'Other title three'];
    const results = await Promise.all(titles.map((title, i) => createTask(dir, { title, ...(i % 2 === 0 ? { body: `body ${i}` } : {}) })));
    expect(new Set(results.map((r) => r.id)).size).toBe(titles.length);
    const after = await loadBoard(dir);
    expect(problems(after)).toEqual(problems(before));
    results.forEach((result, i) => expect(after.tasks.find((t) => t.id === result.id)?.title).toBe(titles[i]));
  });

  it('rejects every bad draft naming its field, writing nothing', async () => {
    const dir = await board(c.source, c.folder);
    const filesBefore = await snapshotFiles(dir);
    const bad: [unknown, string][] = [
      [{ title: '' }, 'title'],
      [{ title: '   ' }, 'title'],
      [{ title: '?!… — ...' }, 'title'],
      [{ title: 'x'.repeat(201) }, 'title'],
      [{ title: 'two\nlines' }, 'title'],
      [{ title: 'tab\there' }, 'title'],
      [{ title: 42 }, 'title'],
      [{ title: 'Fine', column: 'no such column' }, 'column'],
      [{ title: 'Fine', capabilities: ['has spaces'] }, 'capabilities'],
      [{ title: 'Fine', capabilities: 'tool:codex' }, 'capabilities'],
      [{ title: 'Fine', dependsOn: ['no-such-task-anywhere'] }, 'dependsOn'],
      [{ title: 'Fine', parent: 'no-such-task-anywhere' }, 'parent'],
      [{ title: 'Fine', parent: '' }, 'parent'],
      [{ title: 'Fine', parent: 7 }, 'parent'],
      [{ title: 'Fine', priority: 'whenever' }, 'priority'],
      [{ title: 'Fine', labels: [''] }, 'labels'],
      [{ title: 'Fine', body: 'a lone \ud800 surrogate' }, 'body'],
      [{ title: 'Fine', colour: 'red' }, 'colour'],
    ];
    for (const [draft, field] of bad) {
      const error = await createTask(dir, draft as TaskDraft).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, JSON.stringify(draft)).toBeInstanceOf(TaskCreateError);
      expect((error as TaskCreateError).field, JSON.stringify(draft)).toBe(field);
    }
    const filesAfter = await snapshotFiles(dir);
    expect([...filesAfter.keys()].sort()).toEqual([...filesBefore.keys()].sort());
    for (const [path, bytes] of filesBefore) expect(filesAfter.get(path)!.equals(bytes), path).toBe(true);
  });

  it('writes a parent as the format stores it: the subtask reloads with parentTaskId, with and without a body', async () => {
    const dir = await board(c.source, c.folder);
    const before = await loadBoard(dir);
    const parent = before.tasks.find((t) => t.status !== before.config.roles.done) ?? before.tasks[0]!;
    for (const body of ['', 'What the subtask is for.\n']) {
      const title = `Subtask ${body === '' ? 'one' : 'two'} of the parent`;
      const created = await createTask(dir, { title, body, parent: parent.id }, { now: NOW });
      const after = await loadBoard(dir);
      expect(problems(after)).toEqual(problems(before));
      const task = after.tasks.find((t) => t.id === created.id)!;
      expect(task.title).toBe(title);
      expect(task.parentTaskId).toBe(parent.id);
      const file = task.card && body === '' ? task.card.boardPath : created.path;
      expect(await readFile(file, 'utf8')).toContain(c.parentText(parent.id, body !== ''));
    }
    const plain = await createTask(dir, { title: 'A task without a parent', body: 'Nothing above it.' });
    expect((await loadBoard(dir)).tasks.find((t) => t.id === plain.id)?.parentTaskId).toBeUndefined();
  });

  it('takes a 200-character title of any script', async () => {
    const dir = await board(c.source, c.folder);
    const title = `${'é語Ж'.repeat(66)}ok`;
    expect([...title]).toHaveLength(200);
    const created = await createTask(dir, { title });
    const after = await loadBoard(dir);
    expect(after.tasks.find((t) => t.id === created.id)?.title).toBe(title);
    expect(Buffer.byteLength(basename(created.path))).toBeLessThanOrEqual(255);
  });
});

describe('createTask, format by format', () => {
  it('Backlog.md: the next number after every task in tasks/, completed/, drafts/ and archive/, named as Backlog.md names files', async () => {
    const dir = await board(join(FIXTURES, 'backlog-md'), 'backlog');
    let highest = 0;
    for (const folder of ['tasks', 'completed', 'drafts', 'archive/tasks']) {
      const names = await readdir(join(dir, folder)).catch(() => [] as string[]);
      for (const name of names) highest = Math.max(highest, Number(/^back-(\d+)/i.exec(name)?.[1] ?? 0));
    }
    const created = await createTask(dir, { title: 'Ship it: the (final) release!', body: 'Notes.' }, { now: NOW });
    expect(created.id).toBe(`BACK-${highest + 1}`);
    expect(basename(created.path)).toBe(`back-${highest + 1} - Ship-it-the-final-release.md`);
    expect(await readFile(created.path, 'utf8')).toBe(
      [
        '---',
        `id: BACK-${highest + 1}`,
        "title: 'Ship it: the (final) release!'",
        'status: To Do',
        'assignee: []',
        "created_date: '2026-12-01 10:20'",
        'labels: []',
        'dependencies: []',
        '---',
        '',
        '## Description',
        '',
        '<!-- SECTION:DESCRIPTION:BEGIN -->',
        'Notes.',
        '<!-- SECTION:DESCRIPTION:END -->',
        '',
      ].join('\n'),
    );
  });

  it('Backlog.md: a parent named as Backlog.md compares ids (task-355 is BACK-355) is written as the board spells it, after dependencies', async () => {
    const dir = await board(join(FIXTURES, 'backlog-md'), 'backlog');
    const created = await createTask(dir, { title: 'A subtask of 355', parent: 'task-355', dependsOn: ['back-355.02'] }, { now: NOW });
    const text = await readFile(created.path, 'utf8');
    expect(text).toContain("dependencies:\n  - BACK-355.02\nparent_task_id: BACK-355\n---\n");
    const after = await loadBoard(dir);
    expect(after.tasks.find((t) => t.id === created.id)?.parentTaskId).toBe('BACK-355');
  });

  it('JSON-config: a board whose requiredFields name parent takes a draft with a parent and refuses one without', async () => {
    const dir = await board(join(OWN_FIXTURES, 'json-config'), 'json');
    const before = await loadBoard(dir);
    const config = before.configPath!;
    const raw = JSON.parse(await readFile(config, 'utf8')) as Record<string, unknown>;
    await writeFile(config, JSON.stringify({ ...raw, requiredFields: ['title', 'status', 'priority', 'parent'] }, null, 2));
    const snapshot = await loadBoard(dir);
    const parent = snapshot.tasks[0]!.id;
    const refused = await createTask(dir, { title: 'Orphan' }).catch((e: unknown) => e);
    expect((refused as TaskCreateError).field).toBe('parent');
    const created = await createTask(dir, { title: 'Child', parent });
    expect((await loadBoard(dir)).tasks.find((t) => t.id === created.id)?.parentTaskId).toBe(parent);
  });

  it('Backlog.md: a capability is written as the label the mapping names for it, and refused when the board has none', async () => {
    const dir = await board(join(FIXTURES, 'backlog-md'), 'backlog');
    const refused = await createTask(dir, { title: 'Needs a shell', capabilities: ['shell'] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TaskCreateError);
    expect((refused as TaskCreateError).field).toBe('capabilities');
    const mapping = { capabilities: { 'needs-shell': ['shell'] } };
    const created = await createTask(dir, { title: 'Needs a shell', capabilities: ['shell'] }, { mapping });
    const task = (await loadBoard(dir, { mapping })).tasks.find((t) => t.id === created.id)!;
    expect(task.labels).toEqual(['needs-shell']);
    expect(task.capabilities).toEqual(['shell']);
  });

  it('Obsidian: a plain card for a plain title, appended after the column’s last card', async () => {
    const dir = await board(join(OWN_FIXTURES, 'obsidian'), 'vault');
    const path = join(dir, 'kanban.md');
    const original = await readFile(path, 'utf8');
    const created = await createTask(dir, { title: 'Plain card', column: 'Doing', labels: ['ops'] });
    expect(created).toEqual({ id: 'plain-card', path });
    const text = await readFile(path, 'utf8');
    expect(text).toBe(original.replace('\twith a second line\n', '\twith a second line\n- [ ] Plain card #ops\n'));
  });

  it('Obsidian: an id the title’s slug would repeat is written as an id: token', async () => {
    const dir = await board(join(OWN_FIXTURES, 'obsidian'), 'vault');
    const first = await createTask(dir, { title: 'Already doing one' });
    expect(first.id).toBe('already-doing-one-2');
    const text = await readFile(join(dir, 'kanban.md'), 'utf8');
    expect(text).toContain('- [ ] Already doing one id:already-doing-one-2\n');
  });

  it('Obsidian: a create from a snapshot the board file has outgrown is refused with TaskConflictError, nothing written', async () => {
    const dir = await board(join(OWN_FIXTURES, 'obsidian'), 'vault');
    const path = join(dir, 'kanban.md');
    const snapshot: BoardSnapshot = await loadBoard(dir);
    const edited = (await readFile(path, 'utf8')).replace('## QA\n', '## QA\n\n- [ ] Added by a person\n');
    await writeFile(path, edited);
    const filesBefore = await snapshotFiles(dir);
    const error = await boardFormat('obsidian')
      .create(snapshot, { title: 'Too late', body: 'with a note' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskConflictError);
    const filesAfter = await snapshotFiles(dir);
    expect([...filesAfter.keys()].sort()).toEqual([...filesBefore.keys()].sort());
    expect(await readFile(path, 'utf8')).toBe(edited);
    // Through createTask, which reads the board again under the lock, the same create succeeds.
    const created = await createTask(dir, { title: 'Too late', body: 'with a note' });
    expect((await loadBoard(dir)).tasks.find((t) => t.id === created.id)?.body).toBe('with a note\n');
  });

  it('JSON-config: fills the required priority with the board’s spelling of the default and writes a UUID', async () => {
    const dir = await board(join(OWN_FIXTURES, 'json-config'), 'json');
    const created = await createTask(dir, { title: 'Fix @agent login' }, { now: NOW });
    expect(created.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(basename(created.path)).toBe('Fix @agent login 2.md');
    expect(await readFile(created.path, 'utf8')).toBe(
      ['---', `uuid: "${created.id}"`, 'title: "Fix @agent login"', 'status: "todo"', 'priority: "P2"', 'created_at: "2026-12-01T10:20:30.000Z"', '---', ''].join('\n'),
    );
  });

  it('waits for a create lock another process holds, and names it when it is not freed in time', async () => {
    const dir = await board(DEMO_BOARD, 'kanban');
    const lock = join(dir, CREATE_LOCK_NAME);
    await mkdir(lock);
    const error = await createTask(dir, { title: 'Blocked' }, { lockTimeoutMs: 50 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskCreateError);
    expect((error as TaskCreateError).field).toBeUndefined();
    expect((error as TaskCreateError).message).toContain(CREATE_LOCK_NAME);
    await expect(access(join(dir, 'tasks', 'blocked.md'))).rejects.toThrow();
    await rmdir(lock);
    expect((await createTask(dir, { title: 'Blocked' })).id).toBe('blocked');
  });

  it('Warren: the id is a slug of the title, unique against the files in tasks/', async () => {
    const dir = await board(DEMO_BOARD, 'kanban');
    const a = await createTask(dir, { title: 'Count lines!' });
    const b = await createTask(dir, { title: 'Count lines?' });
    expect([a.id, b.id]).toEqual(['count-lines-2', 'count-lines-3']);
    const none = await createTask(dir, { title: '日本語のタスク' });
    expect(none.id).toBe('task');
    expect(none.path).toBe(join(dir, 'tasks', 'task.md'));
  });

  it("Warren: a command is written as the task's command field and reads back exactly; other formats refuse one", async () => {
    const dir = await board(DEMO_BOARD, 'kanban');
    const command = 'printf "%s\\n" "it\'s: #1" | wc -c && echo $HOME';
    const made = await createTask(dir, { title: 'Run a command', command, capabilities: ['shell'] });
    const task = (await loadBoard(dir)).tasks.find((t) => t.id === made.id)!;
    expect(task.command).toBe(command);
    await expect(createTask(dir, { title: 'Empty', command: '  ' })).rejects.toMatchObject({ field: 'command' });
    await expect(createTask(dir, { title: 'NUL', command: 'a\u0000b' })).rejects.toMatchObject({ field: 'command' });
    const backlog = await board(join(FIXTURES, 'backlog-md'), 'backlog');
    const before = await snapshotFiles(backlog);
    await expect(createTask(backlog, { title: 'Run it', command: 'true' })).rejects.toMatchObject({ field: 'command' });
    expect(await snapshotFiles(backlog)).toEqual(before);
  });
});

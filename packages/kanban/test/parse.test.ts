import { execFileSync } from 'node:child_process';
import { chmod, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadBoard, loadBoardConfig, MAX_TASK_FILE_BYTES, parseTaskFile, TaskFileError, type BoardConfig, type BoardSnapshot } from '@warren/kanban';
import { makeBoard, taskText, type TempBoard } from './helpers.js';

const FULL = `---
id: fix-login
title: Fix the login form
status: ready
priority: high
labels: [bug, web]
capabilities: [shell, node]
assignee: null
depends_on: [setup]
created: 2026-11-20T09:00:00Z
updated: 2026-11-20 10:30:00 +01:00
command: npm test
result: "not run"
estimate: 3
owner: { team: web }
---
The login form rejects valid passwords.
`;

describe('parseTaskFile', () => {
  let board: TempBoard;
  let config: BoardConfig;
  beforeEach(async () => {
    board = await makeBoard();
    config = await loadBoardConfig(board.dir);
  });
  afterEach(() => board.cleanup());

  const parse = (name: string, text: string | Buffer) =>
    parseTaskFile(join(board.dir, 'tasks', name), Buffer.isBuffer(text) ? text : Buffer.from(text), config, board.dir);

  const parseError = (name: string, text: string | Buffer): TaskFileError => {
    try {
      parse(name, text);
    } catch (error) {
      expect(error).toBeInstanceOf(TaskFileError);
      return error as TaskFileError;
    }
    throw new Error('expected a TaskFileError');
  };

  it('reads every field of a valid file', () => {
    const task = parse('fix-login.md', FULL);
    expect(task).toEqual({
      id: 'fix-login',
      title: 'Fix the login form',
      status: 'ready',
      priority: 'high',
      priorityRank: 2,
      labels: ['bug', 'web'],
      capabilities: ['shell', 'node'],
      assignee: null,
      dependsOn: ['setup'],
      createdMs: Date.UTC(2026, 10, 20, 9, 0, 0),
      updatedMs: Date.UTC(2026, 10, 20, 9, 30, 0),
      command: 'npm test',
      result: 'not run',
      body: 'The login form rejects valid passwords.\n',
      fields: {
        id: 'fix-login',
        title: 'Fix the login form',
        status: 'ready',
        priority: 'high',
        labels: ['bug', 'web'],
        capabilities: ['shell', 'node'],
        assignee: null,
        depends_on: ['setup'],
        created: '2026-11-20T09:00:00Z',
        updated: '2026-11-20 10:30:00 +01:00',
        command: 'npm test',
        result: 'not run',
        estimate: 3,
        owner: { team: 'web' },
      },
      path: join(board.dir, 'tasks', 'fix-login.md'),
      relativePath: 'tasks/fix-login.md',
      hash: createHash('sha256').update(FULL).digest('hex'),
    });
  });

  it('applies defaults: priority, labels, dependencies, assignee', () => {
    const task = parse('a.md', taskText('a', 'priority:\n'));
    expect(task.priority).toBe('normal');
    expect(task.priorityRank).toBe(1);
    expect(task.labels).toEqual([]);
    expect(task.dependsOn).toEqual([]);
    expect(task.assignee).toBeNull();
    expect(task.createdMs).toBeUndefined();
    expect('command' in task).toBe(false);
  });

  it('accepts a BOM and CRLF line endings, and a YAML date', () => {
    const text = `\uFEFF---\r\nid: a\r\ntitle: A\r\nstatus: done\r\ncapabilities: []\r\ncreated: 2026-11-20\r\n---\r\nBody\r\nmore\r\n`;
    const task = parse('a.md', text);
    expect(task.id).toBe('a');
    expect(task.status).toBe('done');
    expect(task.capabilities).toEqual([]);
    expect(task.createdMs).toBe(Date.UTC(2026, 10, 20));
    expect(task.body).toBe('Body\r\nmore\r\n');
  });

  it('reads a plain numeric id as its text', () => {
    expect(parse('a.md', taskText('0042')).id).toBe('0042');
  });

  it('rejects a file without frontmatter at line 1', () => {
    const error = parseError('a.md', '# Just markdown\n');
    expect(error.line).toBe(1);
    expect(error.message).toBe("kanban/tasks/a.md:1: no frontmatter: the file must begin with a '---' line");
  });

  it('rejects frontmatter that is not the first thing in the file', () => {
    expect(parseError('a.md', `\n${taskText('a')}`).line).toBe(1);
  });

  it('rejects frontmatter that is never closed', () => {
    expect(parseError('a.md', '---\nid: a\ntitle: A\n').reason).toMatch(/^frontmatter is not closed/);
  });

  it('reports invalid YAML at the line the parser names', () => {
    const error = parseError('a.md', '---\nid: a\ntitle: A\nstatus: ready\ncapabilities: [shell\nlabels: []\n---\n');
    expect(error.message).toMatch(/^kanban\/tasks\/a\.md:6: invalid YAML in the frontmatter: /);
    expect(error.line).toBe(6);
  });

  it('reports a duplicate key as invalid YAML on its line', () => {
    const error = parseError('a.md', '---\nid: a\ntitle: A\nid: b\nstatus: ready\ncapabilities: []\n---\n');
    expect(error.line).toBe(4);
    expect(error.reason).toMatch(/unique/);
  });

  it('reports a missing required field', () => {
    const error = parseError('a.md', '---\nid: a\nstatus: ready\ncapabilities: []\n---\n');
    expect(error.field).toBe('title');
    expect(error.line).toBe(1);
    expect(error.message).toBe("kanban/tasks/a.md:1: 'title' is required");
  });

  it('reports a wrongly typed required field on its line', () => {
    const error = parseError('a.md', '---\nid: a\ntitle: A\nstatus: ready\ncapabilities: shell\n---\n');
    expect(error.field).toBe('capabilities');
    expect(error.message).toBe("kanban/tasks/a.md:5: 'capabilities' must be a list of strings");
  });

  it('reports a bad list item on the item line', () => {
    const error = parseError('a.md', '---\nid: a\ntitle: A\nstatus: ready\ncapabilities:\n  - shell\n  - { x: 1 }\n---\n');
    expect(error.line).toBe(7);
  });

  it('rejects an id with characters outside [A-Za-z0-9._-]', () => {
    const error = parseError('a.md', taskText('fix login'));
    expect(error.field).toBe('id');
    expect(error.line).toBe(2);
  });

  it('rejects a status that is not a column', () => {
    const error = parseError('a.md', '---\nid: a\ntitle: A\nstatus: doing\ncapabilities: []\n---\n');
    expect(error.message).toBe("kanban/tasks/a.md:4: 'status' must be one of backlog, ready, in_progress, done, failed");
  });

  it('rejects a priority the board does not allow', () => {
    const error = parseError('fix-login.md', '---\nid: fix-login\ntitle: Fix login\npriority: critical\nstatus: ready\ncapabilities: []\n---\n');
    expect(error.message).toBe("kanban/tasks/fix-login.md:4: 'priority' must be one of low, normal, high, urgent");
    expect(error.field).toBe('priority');
    expect(error.path).toBe(join(board.dir, 'tasks', 'fix-login.md'));
  });

  it('rejects a timestamp that is not one', () => {
    const error = parseError('a.md', taskText('a', 'created: yesterday\n'));
    expect(error.field).toBe('created');
    expect(error.line).toBe(6);
  });

  it('rejects a file over 1 MiB', () => {
    const big = Buffer.concat([Buffer.from(taskText('a')), Buffer.alloc(MAX_TASK_FILE_BYTES, 0x61)]);
    const error = parseError('a.md', big);
    expect(error.line).toBe(0);
    expect(error.reason).toMatch(/at most 1048576 bytes/);
  });

  it('rejects non-UTF-8 bytes with the line they are on', () => {
    const bytes = Buffer.concat([Buffer.from('---\nid: a\ntitle: caf'), Buffer.from([0xe9]), Buffer.from('\nstatus: ready\ncapabilities: []\n---\n')]);
    const error = parseError('a.md', bytes);
    expect(error.line).toBe(3);
    expect(error.reason).toBe('not valid UTF-8: byte 0xe9 at offset 20');
  });
});

describe('loadBoard', () => {
  let board: TempBoard;
  beforeEach(async () => {
    board = await makeBoard();
  });
  afterEach(() => board.cleanup());

  const errorFor = (snapshot: BoardSnapshot, name: string): TaskFileError[] =>
    snapshot.errors.filter((e) => e.path === join(board.dir, 'tasks', name));

  it('loads the good files and gives exactly one error per bad file', async () => {
    await board.task('a.md', taskText('a'));
    await board.task('b.md', taskText('b', 'depends_on: [a]\n'));
    await board.task('c-bad.md', '---\nid: c\ntitle: C\nstatus: ready\npriority: critical\ncapabilities: []\n---\n');
    await board.task('d-dup.md', taskText('a'));
    await board.task('e-nofm.md', 'nothing here\n');
    await board.task('notes.txt', 'ignored: not a .md file');
    await board.task('.#a.md', 'ignored: a hidden editor file');
    const snapshot = await loadBoard(board.dir);
    expect(snapshot.dir).toBe(board.dir);
    expect(snapshot.tasks.map((t) => t.id)).toEqual(['a', 'b']);
    expect(snapshot.errors.map((e) => e.message)).toEqual([
      "kanban/tasks/c-bad.md:5: 'priority' must be one of low, normal, high, urgent",
      "kanban/tasks/d-dup.md:2: id 'a' is already used by kanban/tasks/a.md",
      "kanban/tasks/e-nofm.md:1: no frontmatter: the file must begin with a '---' line",
    ]);
    expect(errorFor(snapshot, 'd-dup.md')[0]).toMatchObject({ line: 2, field: 'id', code: 'WARREN_TASK_PARSE' });
  });

  it('reports a file over 1 MiB without reading it', async () => {
    await board.task('big.md', Buffer.alloc(MAX_TASK_FILE_BYTES + 1, 0x61));
    const snapshot = await loadBoard(board.dir);
    expect(snapshot.errors).toHaveLength(1);
    expect(snapshot.errors[0]!.message).toBe('kanban/tasks/big.md: the file is 1048577 bytes; task files may be at most 1048576 bytes (1 MiB)');
  });

  it('follows a symlink inside the board and rejects one that leads outside', async () => {
    await mkdir(join(board.dir, 'archive'));
    await writeFile(join(board.dir, 'archive', 'inner.md'), taskText('inner'));
    await writeFile(join(board.root, 'outside.md'), taskText('outside'));
    await symlink(join(board.dir, 'archive', 'inner.md'), join(board.dir, 'tasks', 'inner.md'));
    await symlink('../../outside.md', join(board.dir, 'tasks', 'outside.md'));
    await symlink('missing-target.md', join(board.dir, 'tasks', 'dangling.md'));
    const snapshot = await loadBoard(board.dir);
    expect(snapshot.tasks.map((t) => [t.id, t.relativePath])).toEqual([['inner', 'tasks/inner.md']]);
    expect(snapshot.errors.map((e) => [e.message, e.line])).toEqual([
      ['kanban/tasks/dangling.md: a symlink to a file that does not exist', 0],
      [`kanban/tasks/outside.md: a symlink that leads outside the board (to ${join(board.root, 'outside.md')})`, 0],
    ]);
  });

  it('reports a FIFO or a folder named like a task file without blocking on it, and loads the rest', async () => {
    await board.task('a.md', taskText('a'));
    execFileSync('mkfifo', [join(board.dir, 'tasks', 'pipe.md')]);
    await mkdir(join(board.dir, 'tasks', 'folder.md'));
    const snapshot = await loadBoard(board.dir);
    expect(snapshot.tasks.map((t) => t.id)).toEqual(['a']);
    expect(snapshot.errors.map((e) => e.message).sort()).toEqual([
      'kanban/tasks/folder.md: not a regular file',
      'kanban/tasks/pipe.md: not a regular file',
    ]);
  });

  it('reports a file it cannot read, and loads the rest', async () => {
    await board.task('a.md', taskText('a'));
    const secret = await board.task('secret.md', taskText('secret'));
    await chmod(secret, 0o000);
    let snapshot: BoardSnapshot;
    if (process.getuid?.() === 0) {
      // Root reads any file: look at the board as the unprivileged user 65534 (nobody) instead.
      await chmod(board.root, 0o755);
      process.setegid!(65534);
      process.seteuid!(65534);
      try {
        snapshot = await loadBoard(board.dir);
      } finally {
        process.seteuid!(0);
        process.setegid!(0);
      }
    } else {
      snapshot = await loadBoard(board.dir);
    }
    expect(snapshot.tasks.map((t) => t.id)).toEqual(['a']);
    expect(snapshot.errors).toHaveLength(1);
    expect(snapshot.errors[0]!.line).toBe(0);
    expect(snapshot.errors[0]!.message).toMatch(/^kanban\/tasks\/secret\.md: cannot read the file: EACCES/);
    expect(snapshot.errors[0]!.cause).toMatchObject({ code: 'EACCES' });
  });

  it('reports a task file that is a folder', async () => {
    await mkdir(join(board.dir, 'tasks', 'folder.md'));
    const snapshot = await loadBoard(board.dir);
    expect(snapshot.errors.map((e) => e.message)).toEqual(['kanban/tasks/folder.md: not a regular file']);
  });

  it('treats a board without a tasks folder as empty', async () => {
    const empty = await makeBoard();
    try {
      await rm(join(empty.dir, 'tasks'), { recursive: true });
      const snapshot = await loadBoard(empty.dir);
      expect(snapshot.tasks).toEqual([]);
      expect(snapshot.errors).toEqual([]);
    } finally {
      await empty.cleanup();
    }
  });

  it('shows paths relative to displayRoot when given', async () => {
    await board.task('x.md', 'no frontmatter\n');
    const snapshot = await loadBoard(board.dir, { displayRoot: board.dir });
    expect(snapshot.errors[0]!.message).toBe("tasks/x.md:1: no frontmatter: the file must begin with a '---' line");
  });
});

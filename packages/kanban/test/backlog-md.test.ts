import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backlogIdKey, checkBoard, isReady, loadBoard, MoveRefusedError, TaskConflictError, updateTask, type BoardSnapshot } from '../src/index.js';
import { withResultNote } from '../src/formats/backlog-md.js';
import { copyFixture, FIXTURES, snapshotFiles } from './formats-helpers.js';

/** Task files as Backlog.md lists them: `<prefix>-*.md` in tasks/ and completed/. */
async function taskFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const folder of ['tasks', 'completed']) {
    for (const name of await readdir(join(dir, folder))) if (/^back-.*\.md$/.test(name)) out.push(join(dir, folder, name));
  }
  return out.sort();
}

/** Independent check: whether the frontmatter of a file is valid YAML (the `yaml` package, no Warren code). */
async function frontmatterParses(path: string): Promise<boolean> {
  const text = await readFile(path, 'utf8');
  const m = /^---\r?\n([\s\S]*?)\r?\n---/.exec(text);
  return m !== null && parseDocument(m[1]!).errors.length === 0;
}

/** The file's lines without the owned keys' lines (`status`, `assignee` and its list items, `updated_date`). */
function withoutOwned(text: string): string {
  const out: string[] = [];
  let skipping = false;
  for (const line of text.split('\n')) {
    if (/^(status|assignee|updated_date):/.test(line)) {
      skipping = /^assignee:\s*$/.test(line);
      continue;
    }
    if (skipping && /^ {2}- /.test(line)) continue;
    skipping = false;
    out.push(line);
  }
  return out.join('\n');
}

describe('Backlog.md board (real fixture, 697 files)', () => {
  let board: { dir: string; root: string; cleanup: () => Promise<void> };
  let snapshot: BoardSnapshot;
  beforeAll(async () => {
    board = await copyFixture(join(FIXTURES, 'backlog-md'), 'backlog');
    snapshot = await loadBoard(board.dir);
  });
  afterAll(async () => board.cleanup());

  it('is detected as Backlog.md and maps its statuses to columns and roles', () => {
    expect(snapshot.format).toBe('backlog-md');
    expect(snapshot.config.columns.map((c) => [c.id, c.value])).toEqual([
      ['to_do', 'To Do'],
      ['in_progress', 'In Progress'],
      ['done', 'Done'],
    ]);
    expect(snapshot.config.roles).toEqual({ ready: 'to_do', in_progress: 'in_progress', done: 'done', failed: 'to_do' });
  });

  it('loads every valid task and gives exactly one error, with path, line and field, per invalid file', async () => {
    const files = await taskFiles(board.dir);
    const invalid = new Set<string>();
    for (const file of files) if (!(await frontmatterParses(file))) invalid.add(file);
    expect(invalid.size).toBeGreaterThan(0);
    const errorPaths = snapshot.errors.map((e) => e.path);
    expect(new Set(errorPaths).size).toBe(errorPaths.length);
    expect(new Set(errorPaths)).toEqual(invalid);
    for (const error of snapshot.errors) {
      expect(error.line).toBeGreaterThan(1);
      expect(['assignee', 'reporter']).toContain(error.field);
      const line = (await readFile(error.path, 'utf8')).split('\n')[error.line - 1]!;
      expect(line.startsWith(`${error.field}: @`)).toBe(true);
      expect(error.message).toContain(`backlog/${relative(board.dir, error.path)}:${error.line}:`);
    }
    const loaded = new Set(snapshot.tasks.map((t) => t.path));
    expect(loaded.size + invalid.size).toBe(files.length);
    for (const file of files) expect(loaded.has(file) || invalid.has(file)).toBe(true);
  });

  it('resolves dependencies and parents written with the old task- prefix', () => {
    const byId = new Map(snapshot.tasks.map((t) => [t.id, t]));
    const sub = byId.get('BACK-355.02')!;
    expect(sub.dependsOn).toEqual(['BACK-355.01']);
    expect(sub.parentTaskId).toBe('BACK-355');
    expect(sub.status).toBe('done');
    expect(backlogIdKey('task-355.01')).toBe(backlogIdKey('BACK-355.01'));
  });

  it('reads a status spelled with another case as its column, and reports an unknown one with its line', async () => {
    const archived = await loadBoard(board.dir, { mapping: { taskFolders: ['archive/tasks'] } });
    const variant = archived.tasks.find((t) => t.fields['status'] === 'To do');
    expect(variant?.status).toBe('to_do');
    const wontDo = archived.errors.filter((e) => e.field === 'status');
    expect(wontDo).toHaveLength(6);
    expect(wontDo[0]!.message).toMatch(/'status' must be one of To Do, In Progress, Done \(got 'Won't Do'\)/);
    expect(wontDo[0]!.line).toBe(4);
    const mapped = await loadBoard(board.dir, { mapping: { taskFolders: ['archive/tasks'], statuses: { "Won't Do": 'Done' } } });
    expect(mapped.errors.filter((e) => e.field === 'status')).toHaveLength(0);
  });

  it('a run that moves tasks changes only the owned fields of those files', async () => {
    const before = await snapshotFiles(board.dir);
    const fresh = await loadBoard(board.dir);
    const byId = new Map(fresh.tasks.map((t) => [t.id, t]));
    const ready = fresh.tasks.filter((t) => isReady(t, byId, fresh.config) && t.relativePath.startsWith('tasks/')).slice(0, 3);
    expect(ready).toHaveLength(3);
    const moved = new Set<string>();
    const finished = relative(board.dir, ready[0]!.path);
    for (const [index, task] of ready.entries()) {
      const now = '2026-11-20T09:30:00.000Z';
      const { hash } = await updateTask(fresh, task, { status: 'in_progress', assignee: `codex-${index}`, started: now, updated: now }, { expectedHash: task.hash });
      moved.add(relative(board.dir, task.path));
      if (index === 0) {
        await updateTask(fresh, { ...task, status: 'in_progress', hash }, { status: 'done', result: 'ok', completed: now, updated: now }, { expectedHash: hash });
      }
    }
    const after = await snapshotFiles(board.dir);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [path, bytes] of before) {
      const now = after.get(path)!;
      if (!moved.has(path)) {
        expect(now.equals(bytes), path).toBe(true);
        continue;
      }
      expect(now.equals(bytes)).toBe(false);
      // The finished task's result went into its Implementation Notes; nothing else moved.
      const expected = path === finished ? withResultNote(bytes.toString('utf8'), 'ok') : bytes.toString('utf8');
      expect(withoutOwned(now.toString('utf8'))).toBe(withoutOwned(expected));
    }
    const reread = await loadBoard(board.dir);
    const first = reread.tasks.find((t) => t.id === ready[0]!.id)!;
    expect(first.status).toBe('done');
    expect(first.fields['status']).toBe('Done');
    expect(first.fields['assignee']).toEqual(['@codex-0']);
    expect(first.fields['updated_date']).toBe('2026-11-20 09:30');
    const second = reread.tasks.find((t) => t.id === ready[1]!.id)!;
    expect(second.status).toBe('in_progress');
    expect(second.assignee).toBe('codex-1');
    expect(reread.errors).toHaveLength(snapshot.errors.length);
  });

  it('refuses to write over a file changed since it was read', async () => {
    const fresh = await loadBoard(board.dir);
    const task = fresh.tasks.find((t) => t.status === 'to_do')!;
    await expect(updateTask(fresh, task, { status: 'in_progress' }, { expectedHash: '0'.repeat(64) })).rejects.toBeInstanceOf(TaskConflictError);
  });

  it('enforces a per-agent WIP limit from the mapping', async () => {
    const limited = await loadBoard(board.dir, { mapping: { wipPerAgent: 1 } });
    const todo = limited.tasks.filter((t) => t.status === 'to_do');
    const holder = { ...todo[0]!, status: 'in_progress', assignee: 'solo' };
    const withHolder = { ...limited, tasks: limited.tasks.map((t) => (t.id === holder.id ? holder : t)) };
    const error = await updateTask(withHolder, todo[1]!, { status: 'in_progress', assignee: 'solo' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MoveRefusedError);
    expect((error as MoveRefusedError).refusal.kind).toBe('agent-wip');
  });

  it('checkBoard reports the held files and the unknown dependencies', async () => {
    const report = await checkBoard(board.dir);
    expect(report.format).toBe('backlog-md');
    expect(report.ok).toBe(false);
    expect(report.errors.length).toBe(snapshot.errors.length);
    expect(report.tasks.length).toBeGreaterThan(500);
    expect(report.dependencyProblems.some((p) => p.kind === 'unknown')).toBe(true);
  });
});

describe("Warren's result in a Backlog.md task's Implementation Notes", () => {
  const task = "---\nid: TASK-1\ntitle: T\nstatus: Done\n---\n\n## Description\n\nDo it.\n";
  it('appends the section when there is none, then replaces only its own block, and removes it for null', () => {
    const once = withResultNote(task, 'branch warren/claude-1/TASK-1: 1 commit');
    expect(once).toBe(`${task}\n## Implementation Notes\n\n<!-- SECTION:NOTES:BEGIN -->\n<!-- WARREN:RESULT:BEGIN -->\nWarren: branch warren/claude-1/TASK-1: 1 commit\n<!-- WARREN:RESULT:END -->\n<!-- SECTION:NOTES:END -->\n`);
    const twice = withResultNote(once, 'failed: over its LLM budget');
    expect(twice).toBe(once.replace('branch warren/claude-1/TASK-1: 1 commit', 'failed: over its LLM budget'));
    expect(withResultNote(twice, null)).toBe(`${task}\n## Implementation Notes\n\n<!-- SECTION:NOTES:BEGIN -->\n<!-- SECTION:NOTES:END -->\n`);
    expect(withResultNote(task, null)).toBe(task);
  });

  it("keeps people's notes, puts the block first inside them, keeps CRLF, and defuses comment markers in the result", () => {
    const noted = `${task}\n## Implementation Notes\n\n<!-- SECTION:NOTES:BEGIN -->\nReused the old fix.\n<!-- SECTION:NOTES:END -->\n`;
    const written = withResultNote(noted, 'done --> <!-- x');
    expect(written).toContain('<!-- SECTION:NOTES:BEGIN -->\n<!-- WARREN:RESULT:BEGIN -->\nWarren: done —> <!— x\n<!-- WARREN:RESULT:END -->\nReused the old fix.\n<!-- SECTION:NOTES:END -->');
    const crlf = withResultNote(task.replace(/\n/g, '\r\n'), 'ok');
    expect(crlf.split('\r\n').length - 1).toBe(crlf.split('\n').length - 1);
  });
});

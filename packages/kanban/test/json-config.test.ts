import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  checkBoard,
  checkTransition,
  detectBoardFormat,
  formatBoardReport,
  illegalMoves,
  importToWarrenBoard,
  isReady,
  loadBoard,
  MoveRefusedError,
  parentsToComplete,
  updateTask,
  wipStatus,
} from '../src/index.js';
import { copyFixture, OWN_FIXTURES } from './formats-helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
async function board(): Promise<{ dir: string; root: string }> {
  const copy = await copyFixture(join(OWN_FIXTURES, 'json-config'), 'promethean');
  cleanups.push(copy.cleanup);
  return copy;
}

describe('JSON-config board', () => {
  it('loads tasks, maps status spellings and reports each defect once with path, line and field', async () => {
    const { dir } = await board();
    expect(await detectBoardFormat(dir)).toBe('json-config');
    const snapshot = await loadBoard(dir);
    expect(snapshot.format).toBe('json-config');
    const byId = new Map(snapshot.tasks.map((t) => [t.id, t]));
    expect(byId.get('b1')).toMatchObject({ status: 'done', priority: 'high', capabilities: ['tool:codex'], parentTaskId: 'a1' });
    expect(byId.get('b2')).toMatchObject({ status: 'in_progress', assignee: 'alice', dependsOn: ['b1'] });
    expect(byId.get('c1')!.status).toBe('in_progress'); // `in-progress`
    expect(byId.get('d1')!.status).toBe('todo'); // `TODO`
    expect(byId.get('a1')!.path).toBe(join(dir, 'tasks', 'Parent task.md'));
    expect(snapshot.errors.map((e) => [e.path.slice(dir.length + 1), e.line, e.field])).toEqual([
      ['tasks/empty priority.md', 5, 'priority'],
      ['tasks/interleaved.md', 4, undefined],
      ['tasks/not a column.md', 4, 'status'],
      ['tasks/zz duplicate.md', 2, 'uuid'],
    ]);
    expect(snapshot.errors[2]!.message).toBe(
      "promethean/tasks/not a column.md:4: 'status' must be one of incoming, todo, in_progress, review, done, rejected (got 'qa')",
    );
  });

  it('reports a column already over its WIP limit and pulls nothing more into it', async () => {
    const { dir } = await board();
    const snapshot = await loadBoard(dir);
    expect(wipStatus(snapshot).filter((w) => w.over).map((w) => w.message)).toEqual(['column in_progress holds 2 task(s), over its WIP limit of 1']);
    const a1 = snapshot.tasks.find((t) => t.id === 'a1')!;
    const error = await updateTask(snapshot, a1, { status: 'in_progress', assignee: 'codex-1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MoveRefusedError);
    expect((error as MoveRefusedError).message).toContain('over its WIP limit of 1');
  });

  it('refuses a move the transition rules forbid, naming the rules', async () => {
    const { dir } = await board();
    const snapshot = await loadBoard(dir);
    expect(checkTransition(snapshot.config, 'todo', 'in_progress')).toBeNull();
    const refusal = checkTransition(snapshot.config, 'in_progress', 'done')!;
    expect(refusal.allowed).toEqual(['review', 'todo']);
    expect(refusal.rules.map((r) => r.description)).toEqual(['Submit for review or pause']);
    const c1 = snapshot.tasks.find((t) => t.id === 'c1')!;
    const error = (await updateTask(snapshot, c1, { status: 'done' }).catch((e: unknown) => e)) as MoveRefusedError;
    expect(error).toBeInstanceOf(MoveRefusedError);
    expect(error.message).toContain('no transition rule allows in_progress -> done (allowed from in_progress: review, todo)');
    // A move made by a person between two readings is reported.
    const moved = { ...snapshot, tasks: snapshot.tasks.map((t) => (t.id === 'h1' ? { ...t, status: 'done' } : t)) };
    expect(illegalMoves(snapshot, moved).map((m) => m.message)).toEqual(['task \'h1\': no transition rule allows incoming -> done (allowed from incoming: rejected, todo)']);
  });

  it('writes the status value and timestamps in place, keeping literal \\n in the body and every other byte', async () => {
    const { dir } = await board();
    const snapshot = await loadBoard(dir);
    const b2 = snapshot.tasks.find((t) => t.id === 'b2')!;
    const path = join(dir, 'tasks', 'second subtask.md');
    const before = await readFile(path, 'utf8');
    await updateTask(snapshot, b2, { status: 'review', assignee: null, updated: '2026-11-20T10:00:00.000Z' }, { expectedHash: b2.hash });
    const after = await readFile(path, 'utf8');
    expect(after).toBe(
      before
        .replace('status: "In Progress"', 'status: "review"')
        .replace('assignee: "alice"', 'assignee: null')
        .replace('---\nBody', 'updated_at: 2026-11-20T10:00:00.000Z\n---\nBody'),
    );
    expect(after).toContain('Body with a literal \\n and CRLF-free text.');
  });

  it('finds parents whose subtasks are done, and dependencies that block', async () => {
    const { dir } = await board();
    const snapshot = await loadBoard(dir);
    expect(parentsToComplete(snapshot)).toEqual([]);
    const done = { ...snapshot, tasks: snapshot.tasks.map((t) => (t.id === 'b2' ? { ...t, status: 'done' } : t)) };
    expect(parentsToComplete(done)).toEqual([{ parentId: 'a1', subtaskIds: ['b1', 'b2'] }]);
    const off = { ...done, config: { ...done.config, parentDoneWhenSubtasksDone: false } };
    expect(parentsToComplete(off)).toEqual([]);
    const byId = new Map(snapshot.tasks.map((t) => [t.id, t]));
    expect(isReady(byId.get('a1')!, byId, snapshot.config)).toBe(true);
    expect(isReady(byId.get('d1')!, byId, snapshot.config)).toBe(false);
  });

  it('checkBoard reports everything and the text report lists it; import writes a Warren board that loads', async () => {
    const { dir, root } = await board();
    const report = await checkBoard(dir);
    expect(report.ok).toBe(false);
    expect(report.tasks.map((t) => t.id)).toEqual(['b1', 'a1', 'c1', 'h1', 'd1', 'b2']);
    expect(report.dependencyProblems.map((p) => p.message)).toEqual(["task 'd1' depends on unknown task(s) zz9"]);
    const text = formatBoardReport(report);
    expect(text).toContain('in_progress (in_progress): 2/1  [in_progress]');
    expect(text).toContain("promethean/tasks/zz duplicate.md:2: id 'a1' is already used by promethean/tasks/Parent task.md");
    expect(text.trim().endsWith('NOT ok')).toBe(true);

    const out = join(root, 'imported');
    const written = await importToWarrenBoard(await loadBoard(dir), out);
    expect(written).toHaveLength(7);
    const imported = await loadBoard(out);
    expect(imported.format).toBe('warren');
    expect(imported.errors).toEqual([]);
    expect(imported.tasks.map((t) => [t.id, t.status, t.priority]).sort()).toEqual(
      report.tasks.map((t) => [t.id, t.status, t.priority]).sort(),
    );
    expect(checkTransition(imported.config, 'in_progress', 'done')).not.toBeNull();
    await expect(importToWarrenBoard(await loadBoard(dir), out)).rejects.toThrow(/cannot write/);
  });

  it('a missing board is a config error in the report, not a throw', async () => {
    const report = await checkBoard(join(OWN_FIXTURES, 'no-such-board'));
    expect(report).toMatchObject({ ok: false, format: null });
    expect(report.errors[0]!.message).toMatch(/no board found/);
  });
});

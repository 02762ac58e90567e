import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repo, warren } from './support/cli.js';

const backlog = join(repo, '..', 'shared', 'fixtures', 'boards', 'backlog-md');
const out = mkdtempSync(join(tmpdir(), 'warren-import-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

interface Report {
  format: string;
  ok: boolean;
  tasks: unknown[];
  errors: { path: string; line: number; message: string }[];
}

describe('warren board', () => {
  it('checks the Backlog.md board people keep: every valid task understood, each invalid file one error with its line', async () => {
    const run = await warren(['board', 'check', '--json', '--board', backlog]);
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout) as Report;
    expect(report.format).toBe('backlog-md');
    expect(report.tasks).toHaveLength(592);
    expect(report.errors).toHaveLength(21);
    for (const error of report.errors) {
      expect(error.message).toMatch(/^backlog-md\/completed\/.+\.md:\d+: /);
      expect(error.line).toBeGreaterThan(0);
    }
  });

  it('imports it as a Warren board that then checks clean, leaving the source untouched', async () => {
    const target = join(out, 'imported');
    const run = await warren(['board', 'import', '--board', backlog, '--out', target]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/files written; 21 files could not be read/);
    const check = await warren(['board', 'check', '--json', '--board', target]);
    const report = JSON.parse(check.stdout) as Report;
    expect(report.format).toBe('warren');
    expect(report.errors).toEqual([]);
    expect(report.tasks).toHaveLength(592);
  });
});

describe('process rules while the supervisor runs', () => {
  it('completes a parent when its subtasks are done, and reports a column over its WIP limit', async () => {
    const { mkdirSync, writeFileSync, readFileSync, cpSync } = await import('node:fs');
    const { requireMachine, uniqueUidRange } = await import('./support/cli.js');
    requireMachine();
    const dir = mkdtempSync(join(tmpdir(), 'warren-rules-'));
    try {
      mkdirSync(join(dir, 'kanban', 'tasks'), { recursive: true });
      writeFileSync(
        join(dir, 'kanban', 'board.yaml'),
        readFileSync(join(repo, 'kanban', 'board.yaml'), 'utf8').replace('{ id: done, name: Done }', '{ id: done, name: Done, wip: 1 }'),
      );
      const task = (id: string, status: string, extra = '') =>
        `---\nid: ${id}\ntitle: ${id}\nstatus: ${status}\ncapabilities: [shell]\n${extra}command: "true"\n---\n`;
      writeFileSync(join(dir, 'kanban', 'tasks', 'epic.md'), task('epic', 'backlog'));
      writeFileSync(join(dir, 'kanban', 'tasks', 'part-1.md'), task('part-1', 'ready', 'parent: epic\n'));
      writeFileSync(join(dir, 'kanban', 'tasks', 'part-2.md'), task('part-2', 'ready', 'parent: epic\n'));
      cpSync(join(repo, 'policies'), join(dir, 'policies'), { recursive: true });
      const args = ['--uid-range', uniqueUidRange(), '--root', repo, '--board', join(dir, 'kanban'), '--home', join(dir, 'home'), '--state-dir', join(dir, 'var')];
      const run = await warren(['run', '--until-idle', ...args]);
      expect(run.code, run.stderr.slice(-2000)).toBe(0);
      expect(readFileSync(join(dir, 'kanban', 'tasks', 'epic.md'), 'utf8')).toMatch(/^status: done$/m);
      const rows = JSON.parse((await warren(['audit', '--json', '--action', 'board.*', ...args])).stdout) as { action: string; object: string }[];
      expect(rows.some((r) => r.action === 'board.wip_over' && r.object === 'column:done')).toBe(true);
      const parent = JSON.parse((await warren(['audit', '--json', '--action', 'task.parent_done', ...args])).stdout) as { object: string }[];
      expect(parent.map((r) => r.object)).toEqual(['task:epic']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

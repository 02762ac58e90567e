import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyTrackedBoard, processesOfUids, repo, requireMachine, uniqueUidRange, warren, type CliResult } from './support/cli.js';

const OWNED = /^(status|assignee|result|started|completed|updated):/;

function frontmatterLines(text: string): string[] {
  return text.split('\n').filter((line) => !OWNED.test(line));
}

describe('warren run --until-idle on a copy of the demo board', () => {
  let dir: string;
  let run: CliResult;
  const originals = new Map<string, string>();
  const uidRange = uniqueUidRange();
  const paths = (extra: string[] = []) => [
    '--uid-range', uidRange,
    '--root', repo,
    '--board', join(dir, 'kanban'),
    '--home', join(dir, 'home'),
    '--state-dir', join(dir, 'var'),
    ...extra,
  ];

  beforeAll(async () => {
    requireMachine();
    dir = mkdtempSync(join(tmpdir(), 'warren-e2e-'));
    copyTrackedBoard(join(dir, 'kanban'));
    writeFileSync(
      join(dir, 'kanban', 'tasks', 'broken.md'),
      '---\nid: broken\ntitle: A task whose frontmatter is not YAML\nstatus: ready\ncapabilities: [shell\n---\nbody\n',
    );
    for (const file of readdirSync(join(dir, 'kanban', 'tasks'))) {
      originals.set(file, readFileSync(join(dir, 'kanban', 'tasks', file), 'utf8'));
    }
    run = await warren(['run', '--until-idle', '--json', '--kill-grace', '2s', ...paths()]);
  }, 300_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finishes every ready task and reports the malformed file with its path and line', () => {
    const summary = JSON.parse(run.stdout) as {
      succeeded: string[];
      failed: unknown[];
      held: { path: string; message: string }[];
      unplaced: unknown[];
      ok: boolean;
    };
    expect(summary.failed, run.stderr.slice(-3000)).toEqual([]);
    expect(summary.succeeded.sort()).toEqual(['count-lines', 'dependency-report', 'disk-usage', 'license-report', 'test-core']);
    expect(summary.held).toHaveLength(1);
    expect(summary.held[0]!.message).toMatch(/tasks\/broken\.md:\d+/);
    expect(summary.unplaced).toEqual([]);
    expect(summary.ok).toBe(false);
    expect(run.code).toBe(1);
  });

  it('changes only the fields Warren owns in the task files', () => {
    for (const [file, before] of originals) {
      const after = readFileSync(join(dir, 'kanban', 'tasks', file), 'utf8');
      expect(frontmatterLines(after), file).toEqual(frontmatterLines(before));
      const status = /^status: (.*)$/m.exec(after)?.[1];
      if (/^status: ready$/m.test(before) && file !== 'broken.md') {
        expect(status, file).toBe('done');
        expect(after).toMatch(/^assignee: (shell|reporter)-\d+$/m);
        expect(after).toMatch(/^result: .+$/m);
      } else {
        expect(after, file).toBe(before);
      }
    }
  });

  it("leaves each task's output in its agent's home, owned by the agent's uid", async () => {
    const accounts = JSON.parse((await warren(['accounts', '--json', ...paths()])).stdout) as {
      name: string;
      uid: number;
      gid: number;
      home: string;
    }[];
    const byName = new Map(accounts.map((a) => [a.name, a]));
    const expected: Record<string, string> = {
      'count-lines': 'line-counts.md',
      'dependency-report': 'dependencies.md',
      'license-report': 'licenses.md',
      'test-core': 'core-tests.txt',
      'disk-usage': 'disk-usage.txt',
    };
    for (const [taskId, output] of Object.entries(expected)) {
      const text = readFileSync(join(dir, 'kanban', 'tasks', `${taskId}.md`), 'utf8');
      const agent = byName.get(/^assignee: (.+)$/m.exec(text)![1]!)!;
      expect(agent, taskId).toBeDefined();
      const path = join(agent.home, 'work', taskId, output);
      const stat = statSync(path);
      expect(stat.uid, path).toBe(agent.uid);
      expect(stat.gid, path).toBe(agent.gid);
      expect(stat.size, path).toBeGreaterThan(0);
      expect(statSync(agent.home).mode & 0o777).toBe(0o700);
    }
    const counts = readFileSync(
      join(byName.get(/^assignee: (.+)$/m.exec(readFileSync(join(dir, 'kanban', 'tasks', 'count-lines.md'), 'utf8'))![1]!)!.home, 'work', 'count-lines', 'line-counts.md'),
      'utf8',
    );
    expect(counts).toMatch(/\| kanban \| \d+ \| \d+ \|/);
    expect(run.stderr).not.toMatch(/"level":(50|60)/);
  });

  it('audits every assignment and every completion, in an intact hash chain', async () => {
    const rows = JSON.parse((await warren(['audit', '--json', '--action', 'task.*', ...paths()])).stdout) as {
      action: string;
      object: string;
    }[];
    for (const taskId of ['count-lines', 'dependency-report', 'disk-usage', 'license-report', 'test-core']) {
      expect(rows.filter((r) => r.action === 'task.assign' && r.object === `task:${taskId}`), taskId).toHaveLength(1);
      expect(rows.filter((r) => r.action === 'task.complete' && r.object === `task:${taskId}`), taskId).toHaveLength(1);
    }
    expect(rows.some((r) => r.action === 'task.held' && r.object.includes('broken.md'))).toBe(true);
    const verify = await warren(['audit', '--verify', ...paths()]);
    expect(verify.stdout).toMatch(/^ok: \d+ rows/);
    // The supervisor signed a checkpoint of its last row as it closed: every row is covered.
    const verdict = JSON.parse((await warren(['audit', 'verify', '--json', ...paths()])).stdout) as { ok: boolean; signed: boolean; rows: number; checkpoints: { lastSeq: number } };
    expect(verdict).toMatchObject({ ok: true, signed: true });
    expect(verdict.checkpoints.lastSeq).toBe(verdict.rows);
  });

  it('leaves no process running as an agent uid', async () => {
    const accounts = JSON.parse((await warren(['accounts', '--json', ...paths()])).stdout) as { uid: number }[];
    expect(accounts.length).toBeGreaterThan(0);
    expect(processesOfUids(new Set(accounts.map((a) => a.uid)))).toEqual([]);
  });
});

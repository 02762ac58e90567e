import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTestLayout, repo, requireMachine, shellTask, warren } from '../support/cli.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A Backlog.md board (config.yml, one task `Doing`) and a Warren board, in a temp dir. */
function boards(): { dir: string; backlog: string; warrenBoard: string } {
  const dir = mkdtempSync(join(tmpdir(), 'warren-mapping-'));
  dirs.push(dir);
  const backlog = join(dir, 'bl');
  mkdirSync(join(backlog, 'tasks'), { recursive: true });
  writeFileSync(join(backlog, 'config.yml'), 'project_name: "Test"\ndefault_status: "To Do"\nstatuses: ["To Do", "In Progress", "Done"]\n');
  writeFileSync(join(backlog, 'tasks', 'task-1 - One.md'), '---\nid: task-1\ntitle: One\nstatus: Doing\n---\nBody.\n');
  const warrenBoard = join(dir, 'kanban');
  mkdirSync(join(warrenBoard, 'tasks'), { recursive: true });
  writeFileSync(join(warrenBoard, 'board.yaml'), spawnSync('cat', [join(repo, 'kanban', 'board.yaml')]).stdout);
  return { dir, backlog, warrenBoard };
}

describe('--mapping files (attack cases 22, 23, 24)', () => {
  it('blames a status mapped to no column on the mapping file and line, not the board config (22)', async () => {
    const { dir, backlog } = boards();
    const mapping = join(dir, 'm.yaml');
    writeFileSync(mapping, '# statuses of the team board\nstatuses:\n  Doing: nowhere\n');
    const run = await warren(['board', 'check', '--board', backlog, '--mapping', mapping]);
    expect(run.code).not.toBe(0);
    expect(run.stdout).toContain(`${mapping}:3: 'statuses' maps 'Doing' to 'nowhere', which is no column`);
    expect(run.stdout).not.toContain('config.yml');
  });

  it('refuses a mapping given for a Warren board instead of ignoring it (22)', async () => {
    const { dir, warrenBoard } = boards();
    const mapping = join(dir, 'm.yaml');
    writeFileSync(mapping, 'statuses:\n  Doing: nowhere\n');
    const run = await warren(['board', 'check', '--board', warrenBoard, '--mapping', mapping]);
    expect(run.code).not.toBe(0);
    expect(run.stdout).toMatch(new RegExp(`${mapping}: a mapping applies to Backlog\\.md, Obsidian Kanban and JSON-config boards; .* is a Warren board`));
    const plain = await warren(['board', 'check', '--board', warrenBoard]);
    expect(plain.code).toBe(0);
  });

  it('refuses a FIFO at once instead of hanging (23)', async () => {
    const { dir, backlog } = boards();
    const fifo = join(dir, 'f.yaml');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const run = await warren(['board', 'check', '--board', backlog, '--mapping', fifo], 30_000);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(`${fifo}: cannot read the mapping file: not a regular file (a FIFO)`);
  });

  it('refuses /dev/zero without reading it, and a file over 1 MiB (24)', async () => {
    const { dir, backlog } = boards();
    const zero = await warren(['board', 'check', '--board', backlog, '--mapping', '/dev/zero'], 30_000);
    expect(zero.code).not.toBe(0);
    expect(zero.stderr).toContain('/dev/zero: cannot read the mapping file: not a regular file (a character device)');
    const big = join(dir, 'big.yaml');
    writeFileSync(big, `# ${'x'.repeat(2 * 1024 * 1024)}\n`);
    const run = await warren(['board', 'check', '--board', backlog, '--mapping', big]);
    expect(run.stderr).toMatch(/big\.yaml: cannot read the mapping file: the file is \d+ bytes; at most 1048576 bytes \(1 MiB\) are read/);
  });

  it('refuses to start a run with a mapping for a Warren board, naming the mapping file (22)', async () => {
    requireMachine();
    const layout = makeTestLayout({ t1: shellTask('t1', 'echo ok') });
    dirs.push(layout.dir);
    const mapping = join(layout.dir, 'm.yaml');
    writeFileSync(mapping, 'statuses:\n  Doing: ready\n');
    const run = await warren(layout.args('run', '--until-idle', '--mapping', mapping), 60_000);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${mapping}: a mapping applies to Backlog.md, Obsidian Kanban and JSON-config boards`);
    expect(run.stderr).not.toContain('nats-server started');
    expect(layout.file('t1')).toMatch(/^status: ready$/m);
  });

  it('ends a run until idle whose board cannot be read at all, instead of waiting for one', async () => {
    requireMachine();
    const { dir, backlog } = boards();
    const layout = makeTestLayout({});
    dirs.push(layout.dir);
    const mapping = join(dir, 'm.yaml');
    writeFileSync(mapping, 'statuses:\n  Doing: nowhere\n');
    const args = layout.args('run', '--until-idle', '--mapping', mapping);
    args[args.indexOf('--board') + 1] = backlog;
    const run = await warren(args, 60_000);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${mapping}:2: 'statuses' maps 'Doing' to 'nowhere', which is no column`);
    expect(run.stderr).toMatch(/the board cannot be read \(see the message above\); nothing to run/);
  });
});

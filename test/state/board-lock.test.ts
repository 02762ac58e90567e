import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  cleanUpAfterEach,
  makeTestLayout,
  requireMachine,
  shellTask,
  startWarren,
  uniqueUidRange,
  waitFor,
  warren,
  type TestLayout,
} from '../support/cli.js';

const { layouts, running } = cleanUpAfterEach();

function layout(tasks: Record<string, string>): TestLayout {
  const made = makeTestLayout(tasks);
  layouts.push(made);
  return made;
}

/** `args` with the state dir, home and uid range replaced: another supervisor on the same board. */
function otherSupervisor(args: string[], dir: string): string[] {
  const replaced = [...args];
  replaced[replaced.indexOf('--state-dir') + 1] = join(dir, 'var-2');
  replaced[replaced.indexOf('--home') + 1] = join(dir, 'home-2');
  replaced[replaced.indexOf('--uid-range') + 1] = uniqueUidRange();
  return replaced;
}

const logLines = (stderr: string, msg: string) => stderr.split('\n').filter((line) => line.includes(`"msg":"${msg}"`));

beforeAll(() => requireMachine());

describe('board lock (attack case 64)', () => {
  it('refuses a second supervisor on a board in use, naming the holder, and the task runs once', async () => {
    const { dir, args, file } = layout({});
    const lockPath = join(dir, 'kanban', '.warren.lock');
    const first = startWarren(args('up'));
    running.push(first);
    await waitFor('the first supervisor to run', () => logLines(first.stderr(), 'supervisor running').length > 0);
    const holder = JSON.parse(readFileSync(lockPath, 'utf8')) as { pid: number; stateDir: string; hostname: string };
    expect(holder).toMatchObject({ pid: first.child.pid, stateDir: join(dir, 'var'), hostname: hostname() });

    const second = await warren(otherSupervisor(args('run', '--until-idle'), dir), 120_000);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`pid ${first.child.pid}`);
    expect(second.stderr).toContain(join(dir, 'var'));
    expect(second.stderr).toContain('WARREN_BUSY');
    // It refused before opening its own state: no database, and the holder's lock is untouched.
    expect(existsSync(join(dir, 'var-2', 'warren.db'))).toBe(false);
    expect(JSON.parse(readFileSync(lockPath, 'utf8'))).toMatchObject({ pid: first.child.pid });

    // Read-only commands do not take the lock.
    const tasks = await warren(['tasks', ...otherSupervisor(args(), dir)]);
    expect(tasks.code, tasks.stderr).toBe(0);

    writeFileSync(join(dir, 'kanban', 'tasks', 'dbl.md'), shellTask('dbl', 'echo ran'));
    await waitFor('dbl to be done', () => /^status: done$/m.test(file('dbl')));
    expect(logLines(first.stderr(), 'task assigned')).toHaveLength(1);

    first.child.kill('SIGTERM');
    const end = await first.done;
    expect(end.code).toBe(0);
    expect(existsSync(lockPath)).toBe(false);
  }, 300_000);

  it('names a missing board folder', async () => {
    const { dir, args } = layout({});
    const missing = args('run', '--until-idle');
    missing[missing.indexOf('--board') + 1] = join(dir, 'no-such-board');
    const run = await warren(missing);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`no board folder ${join(dir, 'no-such-board')} [WARREN_NO_BOARD]`);
  });

  it('takes over a lock left by a supervisor that is gone, saying so', async () => {
    const { dir, args, file } = layout({ t1: shellTask('t1', 'echo ok') });
    const lockPath = join(dir, 'kanban', '.warren.lock');
    // A pid above pid_max never runs.
    writeFileSync(lockPath, `${JSON.stringify({ pid: 4_194_305, hostname: hostname(), stateDir: '/gone/var', since: '2026-12-01T00:00:00Z' })}\n`);
    const run = await warren(args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    expect(logLines(run.stderr, 'taking over a board lock left by a supervisor that is gone')).toHaveLength(1);
    expect(file('t1')).toMatch(/^status: done$/m);
    expect(existsSync(lockPath)).toBe(false);
  }, 300_000);
});

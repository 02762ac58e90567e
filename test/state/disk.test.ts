import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, startWarren, waitFor, warren, type AuditRow, type TestLayout } from '../support/cli.js';
import { mountsUnder, mountTmpfs, type TestTmpfs } from './support.js';

const { layouts, running } = cleanUpAfterEach();
const mounts: TestTmpfs[] = [];

afterEach(() => {
  for (const mount of mounts.splice(0)) mount.unmount();
});

/** A layout whose homes and state dir are on one tmpfs of `size`, mounted at `<layout>/fs`. */
function layoutOnTmpfs(tasks: Record<string, string>, size: string): { made: TestLayout; args: (...extra: string[]) => string[] } {
  const made = makeTestLayout(tasks, { copyAgents: true });
  layouts.push(made);
  const fs = mountTmpfs(join(made.dir, 'fs'), size);
  mounts.push(fs);
  mkdirSync(join(fs.dir, 'home'));
  const args = (...extra: string[]) => {
    const all = made.args(...extra);
    all[all.indexOf('--home') + 1] = join(fs.dir, 'home');
    all[all.indexOf('--state-dir') + 1] = join(fs.dir, 'var');
    return all;
  };
  return { made, args };
}

/** The agent a card names as its assignee ('' before it has one). */
function agentOf(made: TestLayout, id: string): string {
  return /^assignee: (\S+)$/m.exec(made.file(id))?.[1] ?? '';
}

async function audit(args: (...extra: string[]) => string[], action: string): Promise<AuditRow[]> {
  return JSON.parse((await warren(args('audit', '--json', '--action', action))).stdout) as AuditRow[];
}

beforeAll(() => requireMachine());

describe('disk (attack case 49)', () => {
  it('stops an agent filling its home past its limit with the reason disk; its neighbour finishes and the run ends', async () => {
    const { made, args } = layoutOnTmpfs(
      {
        'a-fill': shellTask('a-fill', 'for i in 1 2 3 4; do dd if=/dev/zero of=f$i bs=1M count=250; done; exit 0'),
        'b-normal': shellTask('b-normal', 'sleep 6; echo normal-done'),
      },
      '300m',
    );
    const template = join(made.dir, 'agents', 'shell.yaml');
    writeFileSync(template, readFileSync(template, 'utf8').replace(/^resources:\n/m, 'resources:\n  homeLimit: 64MiB\n'));
    const run = await warren(args('run', '--until-idle'), 240_000);
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    expect(made.file('a-fill')).toMatch(/^status: failed$/m);
    expect(made.file('a-fill')).toMatch(/^result: .*disk: home over its 64 MiB limit/m);
    expect(made.file('b-normal')).toMatch(/^status: done$/m);
    expect(made.file('b-normal')).toMatch(/normal-done/);
    const stops = await audit(args, 'agent.disk');
    expect(stops).toHaveLength(1);
    expect(stops[0]!.details).toMatchObject({ limitBytes: 64 * 1024 * 1024, openTasks: ['a-fill'] });
    // The offender's files stay in its home for a person to look at.
    const agent = String(/^assignee: (\S+)$/m.exec(made.file('a-fill'))?.[1]);
    expect(readFileSync('/proc/self/mounts', 'utf8')).toContain(join(made.dir, 'fs'));
    expect(() => readFileSync(join(made.dir, 'fs', 'home', 'shell', agent, 'work', 'a-fill', 'f1'), { flag: 'r' }).length).not.toThrow();
    mounts.splice(0).forEach((m) => m.unmount());
    expect(mountsUnder(made.dir)).toEqual([]);
  }, 300_000);

  it('with the default template, stops the agent that filled the filesystem homes share with the state dir; its neighbour finishes and the run ends', async () => {
    const { made, args } = layoutOnTmpfs({ 'b-normal': shellTask('b-normal', 'sleep 6; echo normal-done') }, '300m');
    expect(readFileSync(join(made.dir, 'agents', 'shell.yaml'), 'utf8')).not.toMatch(/homeLimit/);
    const started = startWarren(args('run', '--until-idle'));
    running.push(started);
    // The neighbour's workspace is made before the disk fills (a workspace made while it is full
    // fails with ENOSPC, whatever Warren does next).
    await waitFor('the workspace of b-normal', () => existsSync(join(made.dir, 'fs', 'home', 'shell', agentOf(made, 'b-normal'), 'work', 'b-normal')), 60_000);
    writeFileSync(join(made.dir, 'kanban', 'tasks', 'a-fill.md'), shellTask('a-fill', 'for i in 1 2 3 4; do dd if=/dev/zero of=f$i bs=1M count=250; done; exit 0'));
    const run = await started.done;
    running.splice(running.indexOf(started), 1);
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    expect(made.file('a-fill')).toMatch(/^status: failed$/m);
    expect(made.file('a-fill')).toMatch(/^result: .*disk: the filesystem of the state directory is below its reserve \(.+ free\); shell-\d+ wrote .+ to its home/m);
    expect(made.file('b-normal')).toMatch(/^status: done$/m);
    expect(made.file('b-normal')).toMatch(/normal-done/);
    const stops = await audit(args, 'agent.disk');
    expect(stops).toHaveLength(1);
    expect(stops[0]!.details).toMatchObject({ openTasks: ['a-fill'] });
    expect(Number(stops[0]!.details.grownBytes)).toBeGreaterThan(200 * 1024 * 1024);
    expect((await audit(args, 'task.assign')).filter((r) => r.object === 'task:a-fill')).toHaveLength(1);
    expect((await audit(args, 'supervisor.*')).map((r) => r.action)).toContain('supervisor.disk_low');
    expect((await warren(args('audit', '--verify'))).code).toBe(0);
    mounts.splice(0).forEach((m) => m.unmount());
    expect(mountsUnder(made.dir)).toEqual([]);
  }, 240_000);

  it('with homes on a filesystem of their own, stops the agent that filled it; the state dir is not held up and its neighbour finishes', async () => {
    const made = makeTestLayout(
      {
        'a-fill': shellTask('a-fill', 'sleep 2; for i in 1 2 3 4; do dd if=/dev/zero of=f$i bs=1M count=250; done; sleep 120; exit 0'),
        'b-normal': shellTask('b-normal', 'sleep 6; echo normal-done'),
      },
      { copyAgents: true },
    );
    layouts.push(made);
    const homes = mountTmpfs(join(made.dir, 'homes'), '100m');
    mounts.push(homes);
    const args = (...extra: string[]) => {
      const all = made.args(...extra);
      all[all.indexOf('--home') + 1] = homes.dir;
      return all;
    };
    const run = await warren(args('run', '--until-idle'), 180_000);
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    expect(made.file('a-fill')).toMatch(/^status: failed$/m);
    expect(made.file('a-fill')).toMatch(/^result: .*disk: the filesystem of the homes is full \(.+ free\); shell-\d+ wrote .+ to its home/m);
    expect(made.file('b-normal')).toMatch(/^status: done$/m);
    expect(made.file('b-normal')).toMatch(/normal-done/);
    const stops = await audit(args, 'agent.disk');
    expect(stops).toHaveLength(1);
    expect(stops[0]!.details).toMatchObject({ filesystem: 'homes', openTasks: ['a-fill'] });
    expect(run.stderr).not.toMatch(/below the reserve/);
    expect((await warren(args('audit', '--verify'))).code).toBe(0);
    mounts.splice(0).forEach((m) => m.unmount());
    expect(mountsUnder(made.dir)).toEqual([]);
  }, 240_000);

  it('stops a task still running once its home is over the limit, without retrying it', async () => {
    const { made, args } = layoutOnTmpfs(
      { slow: shellTask('slow', 'for i in $(seq 1 20); do dd if=/dev/zero of=g$i bs=1M count=8 2>/dev/null; sleep 0.2; done; sleep 120') },
      '300m',
    );
    const template = join(made.dir, 'agents', 'shell.yaml');
    writeFileSync(template, readFileSync(template, 'utf8').replace(/^resources:\n/m, 'resources:\n  homeLimit: 64MiB\n'));
    const run = await warren(args('run', '--until-idle'), 240_000);
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    expect(made.file('slow')).toMatch(/^status: failed$/m);
    expect(made.file('slow')).toMatch(/^result: .*disk: home over its 64 MiB limit \(\d+(\.\d)? MiB used\)/m);
    expect((await audit(args, 'task.assign')).map((r) => r.details.attempt)).toEqual([1]);
  }, 300_000);

  it('starts no work while the state dir is below its free-space reserve, says why once, and resumes when space returns', async () => {
    const { made, args } = layoutOnTmpfs({ t1: shellTask('t1', 'echo ok') }, '64m');
    const filler = join(made.dir, 'fs', 'filler');
    writeFileSync(filler, Buffer.alloc(56 * 1024 * 1024));
    const run = startWarren([...args('run', '--until-idle'), '--disk-reserve', '16MiB']);
    running.push(run);
    await waitFor('the reserve to be reported', () => /below the reserve/.test(run.stderr()), 60_000);
    // Ticks go on for a while (the reserve is read each second); nothing is assigned or started.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(run.stderr()).not.toMatch(/"msg":"task assigned"|"msg":"agent started"/);
    expect(made.file('t1')).toMatch(/^status: ready$/m);
    rmSync(filler);
    const end = await run.done;
    running.splice(running.indexOf(run), 1);
    expect(end.code, end.stderr.slice(-3000)).toBe(0);
    expect(end.stderr).toMatch(/work resumes/);
    expect(end.stderr.match(/below the reserve/g)).toHaveLength(1);
    expect(made.file('t1')).toMatch(/^status: done$/m);
    const rows = (await audit(args, 'supervisor.*')).filter((r) => r.action.startsWith('supervisor.disk_'));
    expect(rows.map((r) => r.action)).toEqual(['supervisor.disk_low', 'supervisor.disk_ok']);
  }, 300_000);
});

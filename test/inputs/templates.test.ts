import { existsSync, readFileSync, rmSync, appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, warren, type AuditRow, type TestLayout } from '../support/cli.js';

const { layouts } = cleanUpAfterEach();

/** A layout with t1 (shell) and tb (needs capability `bad`), a policy that lets template `bad` work, and agents/bad.yaml = `template`. */
function withBadTemplate(template: string): TestLayout {
  const layout = makeTestLayout({ t1: shellTask('t1', 'echo ok'), tb: shellTask('tb', 'echo tb').replace('capabilities: [shell]', 'capabilities: [bad]') }, { copyAgents: true });
  layouts.push(layout);
  appendFileSync(join(layout.dir, 'policies', 'policy.csv'), 'g, template:bad, role:worker\n');
  writeFileSync(join(layout.dir, 'agents', 'bad.yaml'), template);
  return layout;
}

async function auditRows(layout: TestLayout, action: string): Promise<AuditRow[]> {
  return JSON.parse((await warren(['audit', '--json', '--action', action, ...layout.args()])).stdout) as AuditRow[];
}

describe('templates refused at load leave nothing behind (attack cases 4, 5, 43)', () => {
  it('refuses memory: 1e30 as a YAML number with file:line, creates no account or home, audits input.rejected', async () => {
    requireMachine();
    const layout = withBadTemplate('name: bad\ncapabilities: [bad]\nruntime: { kind: shell }\nresources: { memory: 1e30 }\n');
    writeFileSync(join(layout.dir, 'kanban', 'tasks', 'broken.md'), '---\nid: broken\ntitle: [unclosed\n---\n');
    const run = await warren(layout.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    expect(run.stdout).toMatch(/^ {2}template \S*agents\/bad\.yaml:4: 'resources\.memory' size 1e\+30 must be a whole number of bytes/m);
    expect(layout.file('t1')).toMatch(/^status: done$/m);
    expect(existsSync(join(layout.dir, 'home', 'bad'))).toBe(false);
    expect((await warren(['accounts', ...layout.args()])).stdout).not.toMatch(/^bad-/m);
    const rows = await auditRows(layout, 'input.rejected');
    const template = rows.filter((r) => r.details.kind === 'template');
    expect(template).toHaveLength(1);
    expect(template[0]!.object).toMatch(/^file:\S*agents\/bad\.yaml$/);
    expect(template[0]!.details).toMatchObject({ line: 4 });
    expect(String(template[0]!.details.message)).toContain("'resources.memory' size 1e+30");
    const task = rows.filter((r) => r.details.kind === 'task');
    expect(task.map((r) => r.object)).toEqual(['file:tasks/broken.md']);
    expect(task[0]!.details.line).toBeGreaterThan(0);
  });

  it('refuses an exec runtime with a relative program at its line, without starting anything', async () => {
    requireMachine();
    const layout = withBadTemplate('name: bad\ncapabilities: [bad]\nruntime:\n  kind: exec\n  command: [bin/report.mjs]\n');
    const run = await warren(layout.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    expect(run.stdout).toMatch(/^ {2}template \S*agents\/bad\.yaml:5: 'runtime\.command\.0' 'bin\/report\.mjs' must be an absolute path/m);
    expect(run.stderr).not.toContain('agent bad-1');
    expect(existsSync(join(layout.dir, 'home', 'bad'))).toBe(false);
    expect(existsSync(join(layout.dir, 'var', 'logs', 'bad-1.log'))).toBe(false);
  });
});

describe('agent starts', () => {
  it('runs with an agents folder that has no bin/', async () => {
    requireMachine();
    const layout = makeTestLayout({ t1: shellTask('t1', 'echo ok') }, { copyAgents: true });
    layouts.push(layout);
    rmSync(join(layout.dir, 'agents', 'bin'), { recursive: true });
    const run = await warren(layout.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    expect(layout.file('t1')).toMatch(/^status: done$/m);
  });

  it('names the real reason a template cannot start in the console and in the summary', async () => {
    requireMachine();
    // Loads fine, but bubblewrap cannot bind a mount source that does not exist.
    const layout = withBadTemplate('name: bad\ncapabilities: [bad]\nruntime: { kind: shell }\nmounts:\n  - { source: no-such-folder-for-warren-tests, target: /repo/x }\n');
    const run = await warren(layout.args('run', '--until-idle', '--restart-backoff', '50ms'));
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    const failed = run.stderr.split('\n').find((l) => l.includes('template failed after'));
    expect(failed, run.stderr.slice(-3000)).toBeDefined();
    expect(failed).toMatch(/Can't find source path/);
    expect(run.stdout).toMatch(/^ {2}template bad failed to start: agent bad-\d+ exited before it was ready \([^)]*\): .*Can't find source path/m);
    expect(readFileSync(join(layout.dir, 'kanban', 'tasks', 't1.md'), 'utf8')).toMatch(/^status: done$/m);
  });
});

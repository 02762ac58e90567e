import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, warren, type AuditRow } from '../support/cli.js';

const { layouts } = cleanUpAfterEach();

/** Rewrites a file of the layout's policies. */
function edit(path: string, change: (text: string) => string): string {
  const text = change(readFileSync(path, 'utf8'));
  writeFileSync(path, text);
  return text;
}

describe('policy mistakes found at start (attack cases 18, 20)', () => {
  it('refuses to start when the matcher calls an unknown function, naming model.conf:line', async () => {
    requireMachine();
    const layout = makeTestLayout({ t1: shellTask('t1', 'echo ok') });
    layouts.push(layout);
    const model = join(layout.dir, 'policies', 'model.conf');
    const text = edit(model, (t) => t.replace('keyMatch(r.obj', 'fooMatch(r.obj'));
    const line = text.split('\n').findIndex((l) => l.startsWith('m = ')) + 1;
    const run = await warren(layout.args('run', '--until-idle'), 60_000);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(`model.conf:${line}: unknown function 'fooMatch' in the matcher (known: `);
    expect(run.stderr).not.toContain('nats-server started');
    expect(layout.file('t1')).toMatch(/^status: ready$/m);
  });

  it('warns about a role that gives nothing, with policy.csv:line', async () => {
    requireMachine();
    const layout = makeTestLayout({ t1: shellTask('t1', 'echo ok') });
    layouts.push(layout);
    const policy = join(layout.dir, 'policies', 'policy.csv');
    const text = edit(policy, (t) => t.replace(/^g, template:shell, role:worker$/m, 'g, template:shell, role:wrker'));
    const line = text.split('\n').indexOf('g, template:shell, role:wrker') + 1;
    const run = await warren(layout.args('run', '--until-idle'));
    // Nothing may assign t1 now: it waits, and the run says why.
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    const warning = run.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; msg: string })
      .find((l) => l.msg.includes('role:wrker'));
    expect(warning).toMatchObject({ level: 40, msg: `${policy}:${line}: role:wrker has no permissions: no 'p' line names it and no 'g' line makes it a member of a role` });
  });

  it('denies, logs and audits a decision Casbin cannot make, and the run goes on to its end', async () => {
    requireMachine();
    const layout = makeTestLayout({ t1: shellTask('t1', 'echo ok') });
    layouts.push(layout);
    // Loads (the functions are known, the first check request stops at g()), but 'task:**' is no
    // regular expression: Casbin throws when an agent's request reaches it.
    edit(join(layout.dir, 'policies', 'model.conf'), (t) => t.replace('keyMatch(r.obj, p.obj)', 'regexMatch(r.obj, p.obj)'));
    edit(join(layout.dir, 'policies', 'policy.csv'), (t) => t.replace('p, role:worker, task:*, assign, allow', 'p, role:worker, task:**, assign, allow'));
    const run = await warren(layout.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    expect(run.stdout).toMatch(/^ {2}waiting t1: .*policy denies/m);
    const errors = run.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; msg: string; reason?: string });
    const failed = errors.filter((l) => l.msg === 'the policy could not decide; the request is denied');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.level).toBe(50);
    expect(failed[0]!.reason).toMatch(/Invalid regular expression/);
    expect(errors.some((l) => l.msg === 'tick failed' || l.level >= 60)).toBe(false);
    const rows = JSON.parse((await warren(['audit', '--json', '--action', 'policy.error', ...layout.args()])).stdout) as AuditRow[];
    expect(rows.map((r) => [r.object, r.details.act])).toEqual([['task:t1', 'assign']]);
    expect(layout.file('t1')).toMatch(/^status: ready$/m);
  });
});

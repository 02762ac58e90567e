import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, warren } from '../support/cli.js';

const { layouts } = cleanUpAfterEach();

/** The 1-based line of `text` in the layout's policy.csv. */
function lineOf(dir: string, text: string): number {
  return readFileSync(join(dir, 'policies', 'policy.csv'), 'utf8').split('\n').indexOf(text) + 1;
}

interface CheckJson {
  decision: 'allow' | 'deny';
  sub: string;
  obj: string;
  act: string;
  rule: string | null;
  file: string | null;
  line: number | null;
  error: string | null;
  roles: { account: string; role: string }[];
}

describe('warren policy check', () => {
  it('prints allow with the rule and its line and exits 0; deny with the deny rule, or no rule, and exits 1', async () => {
    requireMachine();
    const layout = makeTestLayout({});
    layouts.push(layout);
    const csv = join(layout.dir, 'policies', 'policy.csv');

    const allow = await warren(layout.args('policy', 'check', 'user:root', 'agent:shell-1', 'exec'));
    expect(allow.code, allow.stderr).toBe(0);
    expect(allow.stdout).toBe(`allow\nrule: p, role:operator, agent:*, exec, allow (${csv}:${lineOf(layout.dir, 'p, role:operator, agent:*, exec, allow')})\n`);

    const denyRule = 'p, template:reporter, task:shell-*, assign, deny';
    const denied = await warren(layout.args('policy', 'check', 'template:reporter', 'task:shell-cleanup', 'assign'));
    expect(denied.code).toBe(1);
    expect(denied.stdout).toBe(`deny\nrule: ${denyRule} (${csv}:${lineOf(layout.dir, denyRule)})\n`);

    const none = await warren(layout.args('policy', 'check', 'user:alice', 'agent:shell-1', 'exec'));
    expect(none.code).toBe(1);
    expect(none.stdout).toBe('deny\nno rule matched; the default denies\n');

    const json = await warren(layout.args('policy', 'check', 'template:shell', 'task:x', 'assign', '--json'));
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout) as CheckJson).toEqual({
      decision: 'allow',
      sub: 'template:shell',
      obj: 'task:x',
      act: 'assign',
      rule: 'p, role:worker, task:*, assign, allow',
      file: csv,
      line: lineOf(layout.dir, 'p, role:worker, task:*, assign, allow'),
      error: null,
      roles: [],
    });
  });

  it("answers for an agent as the running supervisor would, by giving each account its template's role", async () => {
    requireMachine();
    const layout = makeTestLayout({ quick: shellTask('quick', 'echo hi > hi.txt') });
    layouts.push(layout);
    // Before any run there is no account: shell-1 is nobody.
    const before = await warren(layout.args('policy', 'check', 'shell-1', 'task:anything', 'assign'));
    expect(before.code).toBe(1);
    expect(before.stdout).toBe('deny\nno rule matched; the default denies\n');

    const run = await warren(layout.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    const accounts = JSON.parse((await warren(['accounts', '--json', ...layout.args()])).stdout) as { name: string; template: string }[];
    const agent = accounts[0]!;
    expect(agent.template).toBe('shell');

    const after = await warren(layout.args('policy', 'check', agent.name, 'task:anything', 'assign', '--json'));
    expect(after.code, after.stderr).toBe(0);
    expect(JSON.parse(after.stdout) as CheckJson).toMatchObject({
      decision: 'allow',
      rule: 'p, role:worker, task:*, assign, allow',
      roles: [{ account: agent.name, role: 'template:shell' }],
    });
    const text = await warren(layout.args('policy', 'check', agent.name, 'task:anything', 'assign'));
    expect(text.stdout).toMatch(new RegExp(`^${agent.name} is a member of template:shell \\(its account\\)$`, 'm'));

    // A deny rule for the template wins, and is the rule shown.
    appendFileSync(join(layout.dir, 'policies', 'policy.csv'), '\np, template:shell, task:secret-*, assign, deny\n');
    const secret = await warren(layout.args('policy', 'check', agent.name, 'task:secret-plan', 'assign'));
    expect(secret.code).toBe(1);
    expect(secret.stdout).toMatch(/^deny\nrule: p, template:shell, task:secret-\*, assign, deny \(.*policy\.csv:\d+\)\n/);
  });

  it('names the file and line of a broken policy and exits 1', async () => {
    requireMachine();
    const layout = makeTestLayout({});
    layouts.push(layout);
    appendFileSync(join(layout.dir, 'policies', 'policy.csv'), '\np, role:worker, task:*\n');
    const line = readFileSync(join(layout.dir, 'policies', 'policy.csv'), 'utf8').split('\n').indexOf('p, role:worker, task:*') + 1;
    const run = await warren(layout.args('policy', 'check', 'user:root', 'agent:shell-1', 'exec'));
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`policy.csv:${line}: 'p' needs 4 fields (sub, obj, act, eft), got 2 [WARREN_POLICY_LOAD]`);
  });
});

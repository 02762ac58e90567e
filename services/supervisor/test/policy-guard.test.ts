import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadPolicy } from '@warren/policy';
import { failClosed, type FailedDecision } from '../src/policy-guard.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const MODEL = `[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act, eft
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))
[matchers]
m = g(r.sub, p.sub) && regexMatch(r.obj, p.obj) && r.act == p.act
`;

describe('a decision Casbin cannot make', () => {
  it('is a denial reported once per request, and later decisions still work', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-guard-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'model.conf'), MODEL);
    // 'task:**' is no regular expression: Casbin throws when a request reaches it.
    writeFileSync(join(dir, 'policy.csv'), 'p, bob, task:**, assign, allow\np, alice, ^task:.*$, assign, allow\n');
    const raw = await loadPolicy({ modelPath: join(dir, 'model.conf'), policyPath: join(dir, 'policy.csv') });
    expect(() => raw.enforce('bob', 'task:t1', 'assign')).toThrow(/Casbin failed to decide/);
    const failures: FailedDecision[] = [];
    const policy = failClosed(raw, (f) => failures.push(f));
    expect(policy.enforce('bob', 'task:t1', 'assign')).toBe(false);
    expect(policy.decide('bob', 'task:t1', 'assign')).toEqual({ allowed: false, sub: 'bob', obj: 'task:t1', act: 'assign' });
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ sub: 'bob', obj: 'task:t1', act: 'assign' });
    expect(failures[0]!.error.message).toMatch(/Invalid regular expression/);
    expect(policy.enforce('alice', 'task:t1', 'assign')).toBe(true);
  });
});

import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WarrenError } from '@warren/core';
import { PolicyDeniedError, PolicyError, PolicyLoadError, loadPolicy } from '@warren/policy';
import type { PolicyEnforcer } from '@warren/policy';

const repoPolicies = resolve(import.meta.dirname, '../../../policies');
const fixtures = join(import.meta.dirname, '..', '..', '..', '..', 'shared', 'fixtures', 'casbin');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warren-policy-'));
  dirs.push(dir);
  return dir;
}

function expectDecision(e: PolicyEnforcer, sub: string, obj: string, act: string, expected: boolean): void {
  expect(e.enforce(sub, obj, act), `${sub}, ${obj}, ${act}`).toBe(expected);
  expect(e.decide(sub, obj, act)).toEqual({ allowed: expected, sub, obj, act });
}
type Row = [sub: string, obj: string, act: string, expected: boolean];
function expectTable(e: PolicyEnforcer, rows: readonly Row[]): void {
  for (const [sub, obj, act, expected] of rows) expectDecision(e, sub, obj, act, expected);
}

/** Loads a model and policy given as text, written to files in a temp dir. */
async function loadText(model: string, policy: string) {
  const dir = tempDir();
  const modelPath = join(dir, 'model.conf');
  const policyPath = join(dir, 'policy.csv');
  writeFileSync(modelPath, model);
  writeFileSync(policyPath, policy);
  return { modelPath, policyPath, load: () => loadPolicy({ modelPath, policyPath }) };
}

/** The error `promise` rejects with, which must be a PolicyLoadError. */
async function loadError(promise: Promise<unknown>): Promise<PolicyLoadError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PolicyLoadError);
  return error as PolicyLoadError;
}

const RBAC_MODEL = `[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
`;

describe("Warren's shipped policy", () => {
  const load = () =>
    loadPolicy({ modelPath: join(repoPolicies, 'model.conf'), policyPath: join(repoPolicies, 'policy.csv') });

  it('decides the requests Warren makes', async () => {
    const e = await load();
    e.addRoleForSubject('shell-1', 'template:shell');
    e.addRoleForSubject('reporter-1', 'template:reporter');
    expectTable(e, [
      // assignment: workers take any task
      ['shell-1', 'task:count-lines', 'assign', true],
      ['shell-1', 'task:shell-cleanup', 'assign', true],
      ['reporter-1', 'task:dependency-report', 'assign', true],
      // the explicit deny: a reporter never takes a shell- task, although workers may
      ['reporter-1', 'task:shell-cleanup', 'assign', false],
      ['reporter-1', 'task:shell-', 'assign', false],
      ['reporter-1', 'task:shellfish', 'assign', true],
      // messages between agents
      ['shell-1', 'agent:reporter-1', 'message', true],
      ['reporter-1', 'agent:shell-1', 'message', true],
      // no other verb is granted to agents
      ['shell-1', 'task:count-lines', 'exec', false],
      ['shell-1', 'agent:reporter-1', 'exec', false],
      ['shell-1', 'task:count-lines', 'delete', false],
      // an agent that was never started (no template role) gets nothing
      ['shell-9', 'task:count-lines', 'assign', false],
      ['shell-9', 'agent:shell-1', 'message', false],
      // people: only root may exec
      ['user:root', 'agent:shell-1', 'exec', true],
      ['user:root', 'agent:reporter-1', 'exec', true],
      ['user:alice', 'agent:shell-1', 'exec', false],
      ['user:root', 'task:count-lines', 'assign', false],
      ['user:root', 'agent:shell-1', 'message', true], // an operator may message an agent (the API, MCP)
      ['template:shell', 'agent:shell-1', 'exec', false],
    ]);
  });

  it('forgets an agent after removeSubject and keeps the roles of the file', async () => {
    const e = await load();
    e.addRoleForSubject('shell-1', 'template:shell');
    e.addRoleForSubject('shell-2', 'template:shell');
    expectDecision(e, 'shell-1', 'task:a', 'assign', true);
    e.removeSubject('shell-1');
    e.removeSubject('never-seen');
    expectDecision(e, 'shell-1', 'task:a', 'assign', false);
    expectDecision(e, 'shell-2', 'task:a', 'assign', true);
    // template:shell's membership of role:worker comes from the file and is untouched
    expectDecision(e, 'template:shell', 'task:a', 'assign', true);
  });
});

describe('fixture models', () => {
  const fixture = (name: string, policy = name) =>
    loadPolicy({ modelPath: join(fixtures, `${name}_model.conf`), policyPath: join(fixtures, `${policy}_policy.csv`) });

  it('rbac with deny', async () => {
    expectTable(await fixture('rbac_with_deny'), [
      ['alice', 'data1', 'read', true],
      ['alice', 'data1', 'write', false],
      ['alice', 'data2', 'read', true],
      ['alice', 'data2', 'write', false], // denied although data2_admin may
      ['bob', 'data2', 'write', true],
      ['bob', 'data2', 'read', false],
      ['data2_admin', 'data2', 'write', true],
    ]);
  });

  it('keyMatch with regexMatch actions', async () => {
    expectTable(await fixture('keymatch'), [
      ['alice', '/alice_data/anything', 'GET', true],
      ['alice', '/alice_data/resource1', 'POST', true],
      ['alice', '/alice_data/resource2', 'POST', false],
      ['bob', '/alice_data/resource2', 'GET', true],
      ['bob', '/bob_data/x/y', 'POST', true],
      ['bob', '/bob_data/x', 'GET', false],
      ['cathy', '/cathy_data', 'GET', true],
      ['cathy', '/cathy_data', 'POST', true],
      ['cathy', '/cathy_data', 'DELETE', false],
    ]);
  });

  it('globMatch', async () => {
    expectTable(await fixture('glob'), [
      ['u1', '/foo/bar', 'read', true],
      ['u1', '/foo', 'read', false],
      ['u2', '/foobar', 'read', true],
      ['u2', '/foo/bar', 'read', false],
      ['u3', '/x/foo/y', 'read', true],
      ['u4', 'anything', 'read', true],
      ['u4', 'anything', 'write', false],
    ]);
  });

  it('rbac with resource roles (g2), plus a role added in memory', async () => {
    const e = await fixture('rbac_with_resource_roles');
    expectTable(e, [
      ['alice', 'data1', 'read', true],
      ['alice', 'data1', 'write', true],
      ['alice', 'data2', 'write', true],
      ['alice', 'data2', 'read', false],
      ['bob', 'data1', 'write', false],
      ['bob', 'data2', 'write', true],
    ]);
    e.addRoleForSubject('bob', 'data_group_admin');
    expectDecision(e, 'bob', 'data1', 'write', true);
    e.removeSubject('bob');
    expectDecision(e, 'bob', 'data1', 'write', false);
  });

  it('priority effect', async () => {
    expectTable(await fixture('priority'), [
      ['alice', 'data1', 'read', true],
      ['alice', 'data1', 'write', false],
      ['bob', 'data2', 'read', true],
      ['bob', 'data2', 'write', false],
    ]);
  });
});

describe('broken files', () => {
  it('names a missing section', async () => {
    const model = RBAC_MODEL.replace('[matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n', '');
    const { modelPath, load } = await loadText(model, 'p, a, b, c, allow\n');
    const error = await loadError(load());
    expect(error).toMatchObject({ code: 'WARREN_POLICY_LOAD', path: modelPath, line: undefined });
    expect(error.message).toBe(`${modelPath}: missing section [matchers]`);
  });

  it('names a section without its definition, at the section line', async () => {
    const model = RBAC_MODEL.replace('e = some', 'x = some');
    const { modelPath, load } = await loadText(model, '');
    const error = await loadError(load());
    expect(error).toMatchObject({ path: modelPath, line: 11 });
    expect(error.message).toMatch(/\[policy_effect\] defines 'x'/);
    const empty = await loadText(RBAC_MODEL.replace("e = some(where (p.eft == allow)) && !some(where (p.eft == deny))", ''), '');
    expect(await loadError(empty.load())).toMatchObject({ path: empty.modelPath, line: 10 });
  });

  it('names an unknown policy type with its line', async () => {
    const { policyPath, load } = await loadText(RBAC_MODEL, '# comment\n\np, alice, data1, read, allow\ng2, alice, admin\n');
    const error = await loadError(load());
    expect(error).toMatchObject({ path: policyPath, line: 4 });
    expect(error.message).toBe(`${policyPath}:4: 'g2' is not a policy type of ${policyPath.replace('policy.csv', 'model.conf')} (it defines 'p', 'g')`);
  });

  it('names a line with the wrong number of fields', async () => {
    const policy = ['# rules', 'p, alice, data1, read, allow', '', 'g, alice, admin', '', '', 'p, bob, data2', ''].join('\n');
    const { policyPath, load } = await loadText(RBAC_MODEL, policy);
    const error = await loadError(load());
    expect(error).toMatchObject({ path: policyPath, line: 7 });
    expect(error.message).toBe(`${policyPath}:7: 'p' needs 4 fields (sub, obj, act, eft), got 2`);
    const g = await loadText(RBAC_MODEL, 'g, alice, admin, extra\n');
    expect((await loadError(g.load())).message).toBe(`${g.policyPath}:1: 'g' needs 2 fields (_, _), got 3`);
  });

  it('counts quoted and parenthesised fields as Casbin does', async () => {
    const ok = await loadText(RBAC_MODEL, 'p, "a,b", data1, read, allow\np, carol, "x ""y""", (read, write), allow\n');
    const e = await ok.load();
    expectDecision(e, 'a,b', 'data1', 'read', true);
    // Casbin joins the pieces of a parenthesised field with a bare comma.
    expectDecision(e, 'carol', 'x "y"', '(read,write)', true);
    const open = await loadText(RBAC_MODEL, 'p, "alice, data1, read, allow\n');
    expect(await loadError(open.load())).toMatchObject({ path: open.policyPath, line: 1 });
  });

  it('rejects an eft that is neither allow nor deny', async () => {
    const { policyPath, load } = await loadText(RBAC_MODEL, 'p, alice, data1, read, alow\n');
    expect(await loadError(load())).toMatchObject({ path: policyPath, line: 1, message: expect.stringMatching(/'alow'/) });
  });

  it('wraps a model Casbin rejects with the path and the matcher line', async () => {
    const model = RBAC_MODEL.replace('r.obj == p.obj && r.act', 'r.obj == p.obj & r.act');
    const { modelPath, load } = await loadText(model, 'p, alice, data1, read, allow\n');
    const error = await loadError(load());
    expect(error).toMatchObject({ path: modelPath, line: 14 });
    expect(error.message).toMatch(/Casbin rejects the model: Invalid operator in matcher/);
    expect(error.cause).toBeInstanceOf(Error);
  });

  it('turns a matcher that does not compile into a load error', async () => {
    const model = RBAC_MODEL.replace('r.act == p.act', 'r.act == (p.act');
    const { modelPath, load } = await loadText(model, 'p, alice, data1, read, allow\n');
    const error = await loadError(load());
    expect(error).toMatchObject({ path: modelPath, line: 14 });
    expect(error.message).toMatch(/cannot evaluate the matcher/);
  });

  it('rejects an effect Casbin does not implement', async () => {
    const model = RBAC_MODEL.replace('e = some(where (p.eft == allow)) && !some(where (p.eft == deny))', 'e = some(where (p.eft == allow)) || deny');
    const { modelPath, load } = await loadText(model, '');
    expect(await loadError(load())).toMatchObject({ path: modelPath, line: 11 });
  });

  it('rejects a request that is not (sub, obj, act), a repeated section and a line without =', async () => {
    const fourFields = await loadText(RBAC_MODEL.replace('r = sub, obj, act', 'r = sub, dom, obj, act'), '');
    expect(await loadError(fourFields.load())).toMatchObject({ path: fourFields.modelPath, line: 2 });
    const repeated = await loadText(`${RBAC_MODEL}\n[matchers]\nm = true\n`, '');
    expect(await loadError(repeated.load())).toMatchObject({ path: repeated.modelPath, line: 16 });
    const noEquals = await loadText(RBAC_MODEL.replace('g = _, _', 'g _, _'), '');
    expect(await loadError(noEquals.load())).toMatchObject({ path: noEquals.modelPath, line: 8 });
  });

  it('names a file that cannot be read', async () => {
    const dir = tempDir();
    const error = await loadError(loadPolicy({ modelPath: join(dir, 'nope.conf'), policyPath: join(dir, 'nope.csv') }));
    expect(error.path).toMatch(/nope\.(conf|csv)$/);
    expect(error.message).toMatch(/cannot read/);
  });
});

describe('roles in memory and reload', () => {
  it('reload picks up an edited policy and keeps the roles given in memory', async () => {
    const { policyPath, load } = await loadText(RBAC_MODEL, 'p, worker, task1, assign, allow\n');
    const e = await load();
    e.addRoleForSubject('shell-1', 'worker');
    expectDecision(e, 'shell-1', 'task1', 'assign', true);
    expectDecision(e, 'shell-1', 'task2', 'assign', false);
    writeFileSync(policyPath, 'p, worker, task2, assign, allow\n');
    await e.reload();
    expectDecision(e, 'shell-1', 'task1', 'assign', false);
    expectDecision(e, 'shell-1', 'task2', 'assign', true);
  });

  it('keeps the old policy when a reload fails, and throws', async () => {
    const { policyPath, modelPath, load } = await loadText(RBAC_MODEL, 'p, alice, data1, read, allow\n');
    const e = await load();
    writeFileSync(policyPath, 'p, alice, data2, read, allow\np, broken\n');
    const error = await loadError(e.reload());
    expect(error).toMatchObject({ path: policyPath, line: 2 });
    expectDecision(e, 'alice', 'data1', 'read', true);
    expectDecision(e, 'alice', 'data2', 'read', false);
    writeFileSync(modelPath, '[request_definition]\nr = sub, obj, act\n');
    await loadError(e.reload());
    expectDecision(e, 'alice', 'data1', 'read', true);
    // a later good reload still works
    writeFileSync(modelPath, RBAC_MODEL);
    writeFileSync(policyPath, 'p, alice, data2, read, allow\n');
    await e.reload();
    expectDecision(e, 'alice', 'data2', 'read', true);
  });

  it('never writes the in-memory roles to the policy file', async () => {
    const dir = tempDir();
    const modelPath = join(dir, 'model.conf');
    const policyPath = join(dir, 'policy.csv');
    copyFileSync(join(repoPolicies, 'model.conf'), modelPath);
    copyFileSync(join(repoPolicies, 'policy.csv'), policyPath);
    const before = readFileSync(policyPath, 'utf8');
    const e = await loadPolicy({ modelPath, policyPath });
    e.addRoleForSubject('shell-1', 'template:shell');
    await e.reload();
    expectDecision(e, 'shell-1', 'task:x', 'assign', true);
    expect(readFileSync(policyPath, 'utf8')).toBe(before);
  });

  it('refuses a role when the model has no role definition', async () => {
    const { load } = await loadText(
      RBAC_MODEL.replace('[role_definition]\ng = _, _\n', '').replace('g(r.sub, p.sub)', 'r.sub == p.sub'),
      'p, alice, data1, read, allow\n',
    );
    const e = await load();
    expect(() => e.addRoleForSubject('bob', 'alice')).toThrow(PolicyError);
    expectDecision(e, 'alice', 'data1', 'read', true);
  });

  it('logs loads and failed reloads', async () => {
    const lines: { level: string; msg: string | undefined }[] = [];
    const logger = {
      trace: (_: object, msg?: string) => lines.push({ level: 'trace', msg }),
      debug: (_: object, msg?: string) => lines.push({ level: 'debug', msg }),
      info: (_: object, msg?: string) => lines.push({ level: 'info', msg }),
      warn: (_: object, msg?: string) => lines.push({ level: 'warn', msg }),
      error: (_: object, msg?: string) => lines.push({ level: 'error', msg }),
      child() {
        return logger;
      },
    };
    const { modelPath, policyPath } = await loadText(RBAC_MODEL, 'p, a, b, c, allow\n');
    const e = await loadPolicy({ modelPath, policyPath, logger });
    writeFileSync(policyPath, 'q, a\n');
    await loadError(e.reload());
    expect(lines).toEqual([
      { level: 'info', msg: 'policy loaded' },
      { level: 'warn', msg: 'policy reload failed; the previous policy stays in force' },
    ]);
  });
});

describe('explain and revision', () => {
  const load = () =>
    loadPolicy({ modelPath: join(repoPolicies, 'model.conf'), policyPath: join(repoPolicies, 'policy.csv') });
  const lineOf = (text: string) => readFileSync(join(repoPolicies, 'policy.csv'), 'utf8').split('\n').indexOf(text) + 1;

  it('names the rule that decided and its line in policy.csv, or none when the default denies', async () => {
    const e = await load();
    e.addRoleForSubject('shell-1', 'template:shell');
    e.addRoleForSubject('reporter-1', 'template:reporter');
    const allow = 'p, role:worker, task:*, assign, allow';
    const deny = 'p, template:reporter, task:shell-*, assign, deny';
    expect(e.explain('shell-1', 'task:count-lines', 'assign')).toEqual({ allowed: true, rule: allow, line: lineOf(allow) });
    expect(e.explain('reporter-1', 'task:shell-cleanup', 'assign')).toEqual({ allowed: false, rule: deny, line: lineOf(deny) });
    expect(e.explain('user:alice', 'agent:shell-1', 'exec')).toEqual({ allowed: false, rule: null, line: null });
    expect(e.explain('user:root', 'agent:shell-1', 'exec')).toEqual({
      allowed: true,
      rule: 'p, role:operator, agent:*, exec, allow',
      line: lineOf('p, role:operator, agent:*, exec, allow'),
    });
  });

  it('gives the same rules on every fast path', async () => {
    const requests = [
      ['shell-1', 'task:count-lines', 'assign'],
      ['reporter-1', 'task:shell-x', 'assign'],
      ['reporter-1', 'agent:shell-1', 'message'],
      ['user:root', 'task:x', 'cancel'],
      ['nobody', 'task:x', 'assign'],
    ] as const;
    const answers = [];
    for (const fastPath of ['auto', 'cache', 'off'] as const) {
      const e = await loadPolicy({ modelPath: join(repoPolicies, 'model.conf'), policyPath: join(repoPolicies, 'policy.csv'), fastPath });
      e.addRoleForSubject('shell-1', 'template:shell');
      e.addRoleForSubject('reporter-1', 'template:reporter');
      answers.push(requests.map(([sub, obj, act]) => e.explain(sub, obj, act)));
    }
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
  });

  it('grows the revision with every change of the policy in force, and not with a failed reload', async () => {
    const { policyPath, load: loadIt } = await loadText(RBAC_MODEL, 'p, admin, data1, read, allow\n');
    const e = await loadIt();
    const seen = [e.revision];
    e.addRoleForSubject('alice', 'admin');
    seen.push(e.revision);
    e.removeSubject('alice');
    seen.push(e.revision);
    await e.reload();
    seen.push(e.revision);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(new Set(seen).size).toBe(4);
    writeFileSync(policyPath, 'p, admin\n');
    await expect(e.reload()).rejects.toThrow(PolicyLoadError);
    expect(e.revision).toBe(seen.at(-1));
  });
});

describe('PolicyDeniedError', () => {
  it('carries the decision and code WARREN_POLICY_DENIED, with the standard message or a given one', () => {
    const decision = { allowed: false, principal: 'user:bob', object: 'agent:shell-1', action: 'stop', rule: null };
    const error = new PolicyDeniedError(decision);
    expect(error).toBeInstanceOf(WarrenError);
    expect(error.code).toBe('WARREN_POLICY_DENIED');
    expect(error.name).toBe('PolicyDeniedError');
    expect(error.message).toBe('policy denies user:bob stop on agent:shell-1');
    expect(error.decision).toBe(decision);
    expect(new PolicyDeniedError(decision, 'policy denies user:bob exec into shell-1').message).toBe('policy denies user:bob exec into shell-1');
  });
});

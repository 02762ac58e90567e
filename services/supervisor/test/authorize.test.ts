import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '@warren/audit';
import { silentLogger } from '@warren/core';
import { loadPolicy, PolicyDeniedError } from '@warren/policy';
import { createAuthorizer } from '../src/authorize.js';
import { failClosed, type FailedDecision } from '../src/policy-guard.js';

const repoPolicies = resolve(import.meta.dirname, '../../../policies');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The shipped model and policy copied to a temp dir (so a test may edit them), loaded as the supervisor loads them. */
async function setup(policyText?: string, modelText?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'warren-authorize-'));
  dirs.push(dir);
  const modelPath = join(dir, 'model.conf');
  const policyPath = join(dir, 'policy.csv');
  writeFileSync(modelPath, modelText ?? readFileSync(join(repoPolicies, 'model.conf'), 'utf8'));
  writeFileSync(policyPath, policyText ?? readFileSync(join(repoPolicies, 'policy.csv'), 'utf8'));
  const failures: FailedDecision[] = [];
  const policy = failClosed(await loadPolicy({ modelPath, policyPath }), (f) => failures.push(f));
  const rows: AuditEntry[] = [];
  const authorizer = createAuthorizer({ policy, emit: (entry) => rows.push(entry), logger: silentLogger });
  return { policy, authorizer, rows, failures, policyPath };
}

const WORKER_ASSIGN = 'p, role:worker, task:*, assign, allow';

describe('authorize', () => {
  it('audits every decision as one row of one shape, with the rule that decided', async () => {
    const { policy, authorizer, rows } = await setup();
    policy.addRoleForSubject('shell-1', 'template:shell');
    const allowed = authorizer.authorize({ principal: 'shell-1', object: 'task:count-lines', action: 'assign' });
    const denied = authorizer.authorize({ principal: 'user:alice', object: 'agent:shell-1', action: 'exec' });
    expect(allowed).toEqual({ allowed: true, principal: 'shell-1', object: 'task:count-lines', action: 'assign', rule: WORKER_ASSIGN });
    expect(denied).toEqual({ allowed: false, principal: 'user:alice', object: 'agent:shell-1', action: 'exec', rule: null });
    expect(rows).toEqual([
      { actor: 'shell-1', action: 'policy.decide', object: 'task:count-lines', decision: 'allow', details: { sub: 'shell-1', act: 'assign', rule: WORKER_ASSIGN } },
      { actor: 'user:alice', action: 'policy.decide', object: 'agent:shell-1', decision: 'deny', details: { sub: 'user:alice', act: 'exec', rule: null } },
    ]);
    expect(authorizer.decisions).toBe(2);
    // What the asker adds goes into the row; the decision's own fields cannot be overwritten.
    authorizer.authorize({ principal: 'user:alice', object: 'mcp:run_command', action: 'call', context: { tool: 'run_command', argsSha256: 'ab12', sub: 'forged' } });
    expect(rows[2]!.details).toEqual({ tool: 'run_command', argsSha256: 'ab12', sub: 'user:alice', act: 'call', rule: null });
  });

  it('names the deny rule that wins over an allow', async () => {
    const { policy, authorizer } = await setup();
    policy.addRoleForSubject('reporter-1', 'template:reporter');
    expect(authorizer.authorize({ principal: 'reporter-1', object: 'task:shell-cleanup', action: 'assign' })).toMatchObject({
      allowed: false,
      rule: 'p, template:reporter, task:shell-*, assign, deny',
    });
  });

  it('asks and audits again for every request without memo', async () => {
    const { authorizer, rows } = await setup();
    for (let i = 0; i < 3; i++) authorizer.authorize({ principal: 'user:root', object: 'agent:shell-1', action: 'exec' });
    expect(rows).toHaveLength(3);
    expect(authorizer.decisions).toBe(3);
  });

  it('answers a memoized question from its cache, without the enforcer and without a row', async () => {
    const { policy, authorizer, rows } = await setup();
    policy.addRoleForSubject('shell-1', 'template:shell');
    const request = { principal: 'shell-1', object: 'task:a', action: 'assign', memo: true };
    const first = authorizer.authorize(request);
    for (let i = 0; i < 5; i++) expect(authorizer.authorize(request)).toEqual(first);
    expect(rows).toHaveLength(1);
    expect(authorizer.decisions).toBe(1);
    // A question not asked before is decided; a non-memo one is always decided.
    authorizer.authorize({ ...request, object: 'task:b' });
    authorizer.authorize({ ...request, memo: false });
    expect(rows).toHaveLength(3);
    expect(authorizer.decisions).toBe(3);
  });

  it('drops its memo when a role is given or taken away, and decides and audits again', async () => {
    const { policy, authorizer, rows } = await setup();
    const request = { principal: 'shell-1', object: 'task:a', action: 'assign', memo: true };
    expect(authorizer.authorize(request).allowed).toBe(false);
    policy.addRoleForSubject('shell-1', 'template:shell');
    expect(authorizer.authorize(request).allowed).toBe(true);
    expect(authorizer.authorize(request).allowed).toBe(true);
    policy.removeSubject('shell-1');
    expect(authorizer.authorize(request).allowed).toBe(false);
    expect(rows.map((r) => r.decision)).toEqual(['deny', 'allow', 'deny']);
    expect(authorizer.decisions).toBe(3);
  });

  it('forgets only the answers about a principal whose roles it gives or takes away', async () => {
    const { authorizer, rows } = await setup();
    const template = { principal: 'template:shell', object: 'task:a', action: 'assign', memo: true };
    const agent = { principal: 'shell-1', object: 'task:a', action: 'assign', memo: true };
    expect(authorizer.authorize(template).allowed).toBe(true);
    expect(authorizer.authorize(agent).allowed).toBe(false);
    authorizer.grantRole('shell-1', 'template:shell');
    expect(authorizer.authorize(agent).allowed).toBe(true);
    expect(authorizer.authorize(template).allowed).toBe(true);
    authorizer.dropPrincipal('shell-1');
    expect(authorizer.authorize(agent).allowed).toBe(false);
    expect(authorizer.authorize(template).allowed).toBe(true);
    // The template's question was decided once; the agent's once per change of its roles.
    expect(rows.map((r) => `${r.actor} ${r.decision}`)).toEqual(['template:shell allow', 'shell-1 deny', 'shell-1 allow', 'shell-1 deny']);
    expect(authorizer.decisions).toBe(4);
  });

  it('drops its memo when the policy is reloaded, and keeps it when a reload fails', async () => {
    const { policy, authorizer, rows, policyPath } = await setup();
    policy.addRoleForSubject('shell-1', 'template:shell');
    const request = { principal: 'shell-1', object: 'task:secret', action: 'assign', memo: true };
    expect(authorizer.authorize(request).allowed).toBe(true);
    const good = readFileSync(policyPath, 'utf8');
    writeFileSync(policyPath, `${good}\np, role:worker, task:secret, assign, deny\n`);
    await policy.reload();
    expect(authorizer.authorize(request)).toMatchObject({ allowed: false, rule: 'p, role:worker, task:secret, assign, deny' });
    writeFileSync(policyPath, `${good}\np, role:worker\n`);
    await expect(policy.reload()).rejects.toThrow(/policy\.csv:\d+: 'p' needs 4 fields/);
    expect(authorizer.authorize(request).allowed).toBe(false);
    expect(rows).toHaveLength(2);
  });

  it('keeps at most maxMemoized answers, the oldest dropped first', async () => {
    const { policy, rows } = await setup();
    const small = createAuthorizer({ policy, emit: (entry) => rows.push(entry), logger: silentLogger, maxMemoized: 2 });
    const ask = (object: string) => small.authorize({ principal: 'user:root', object, action: 'exec', memo: true });
    ask('agent:a');
    ask('agent:b');
    ask('agent:c'); // drops agent:a
    ask('agent:b');
    ask('agent:a');
    expect(rows.map((r) => r.object)).toEqual(['agent:a', 'agent:b', 'agent:c', 'agent:a']);
    expect(() => createAuthorizer({ policy, emit: () => {}, logger: silentLogger, maxMemoized: -1 })).toThrow(RangeError);
  });

  it('require returns an allowing decision and throws a PolicyDeniedError carrying a denial', async () => {
    const { authorizer, rows } = await setup();
    expect(authorizer.require({ principal: 'user:root', object: 'agent:shell-1', action: 'stop' })).toMatchObject({
      allowed: true,
      rule: 'p, role:operator, agent:*, stop, allow',
    });
    let thrown: unknown;
    try {
      authorizer.require({ principal: 'user:bob', object: 'agent:shell-1', action: 'stop' });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(PolicyDeniedError);
    const denied = thrown as PolicyDeniedError;
    expect(denied.code).toBe('WARREN_POLICY_DENIED');
    expect(denied.message).toBe('policy denies user:bob stop on agent:shell-1');
    expect(denied.decision).toEqual({ allowed: false, principal: 'user:bob', object: 'agent:shell-1', action: 'stop', rule: null });
    expect(() => authorizer.require({ principal: 'user:bob', object: 'agent:shell-1', action: 'exec' }, 'policy denies user:bob exec into shell-1')).toThrow(
      'policy denies user:bob exec into shell-1',
    );
    expect(rows).toHaveLength(3);
  });

  it('denies a decision Casbin cannot make, with no rule, reports it once and audits each decision', async () => {
    const model = readFileSync(join(repoPolicies, 'model.conf'), 'utf8').replace('keyMatch(r.obj, p.obj)', 'regexMatch(r.obj, p.obj)');
    const { policy, authorizer, rows, failures } = await setup('g, template:shell, role:worker\np, role:worker, task:**, assign, allow\n', model);
    policy.addRoleForSubject('shell-1', 'template:shell');
    const request = { principal: 'shell-1', object: 'task:t1', action: 'assign', memo: true };
    expect(authorizer.authorize(request)).toEqual({ allowed: false, principal: 'shell-1', object: 'task:t1', action: 'assign', rule: null });
    policy.addRoleForSubject('shell-2', 'template:shell'); // a change: the question is asked again
    expect(authorizer.authorize(request).allowed).toBe(false);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.error.message).toMatch(/Invalid regular expression/);
    expect(rows).toEqual([
      expect.objectContaining({ decision: 'deny', details: { sub: 'shell-1', act: 'assign', rule: null } }),
      expect.objectContaining({ decision: 'deny', details: { sub: 'shell-1', act: 'assign', rule: null } }),
    ]);
    expect(authorizer.decisions).toBe(2);
  });
});

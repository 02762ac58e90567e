import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { newEnforcer } from 'casbin';
import type { Enforcer } from 'casbin';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { FastPath, loadPolicy } from '@warren/policy';
import type { LoadPolicyOptions } from '@warren/policy';
import { CompiledPolicy } from '../src/compiled-policy.js';
import { DecisionCache, MAX_CACHED_REQUEST_LENGTH } from '../src/decision-cache.js';

const repoPolicies = resolve(import.meta.dirname, '../../../policies');
const SHIPPED_MODEL = readFileSync(join(repoPolicies, 'model.conf'), 'utf8');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Writes a model and a policy to a fresh temp dir and returns their paths. */
function writeFiles(model: string, policy: string): { modelPath: string; policyPath: string } {
  const dir = mkdtempSync(join(tmpdir(), 'warren-policy-fast-'));
  dirs.push(dir);
  const modelPath = join(dir, 'model.conf');
  const policyPath = join(dir, 'policy.csv');
  writeFileSync(modelPath, model);
  writeFileSync(policyPath, policy);
  return { modelPath, policyPath };
}

/** Plain Casbin over the same files, with `roles` added in memory as the supervisor adds them. */
async function plainCasbin(modelPath: string, policyPath: string, roles: ReadonlyMap<string, ReadonlySet<string>> = new Map()): Promise<Enforcer> {
  const enforcer = await newEnforcer(modelPath, policyPath);
  enforcer.enableAutoSave(false);
  for (const [sub, groups] of roles) for (const role of groups) await enforcer.addRoleForUser(sub, role);
  return enforcer;
}

/** A model for (sub, obj, act) requests with one role definition `g = _, _`. */
function model(policyFields: string, effect: string, matcher: string): string {
  return [
    '[request_definition]',
    'r = sub, obj, act',
    '[policy_definition]',
    `p = ${policyFields}`,
    '[role_definition]',
    'g = _, _',
    '[policy_effect]',
    `e = ${effect}`,
    '[matchers]',
    `m = ${matcher}`,
    '',
  ].join('\n');
}

const ALLOW_AND_DENY = 'some(where (p.eft == allow)) && !some(where (p.eft == deny))';
const SHIPPED_MATCHER = 'g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && (r.act == p.act || p.act == "*")';

// Small alphabets, so that generated requests hit the generated rules, roles chain and repeat.
const AGENTS = ['shell-1', 'reporter-1', 'a'] as const;
const GROUPS = ['template:shell', 'template:reporter', 'role:worker', 'role:ops', 'user:root'] as const;
const PATTERNS = ['task:*', 'task:shell-*', 'task:shell-', 'task:a', 'agent:*', 'agent:a', '*', 'task*', 'task:*x', 'x', 'template:shell', 'role:worker'] as const;
const OBJECTS = ['task:a', 'task:b', 'task:shell-1', 'task:shell-', 'task:shell', 'task:', 'task', 'agent:a', 'agent:b', '*', 'x', '', 'task:*x', 'shell-1', 'template:shell'] as const;
const POLICY_ACTS = ['assign', 'message', 'exec', '*'] as const;
const ACTS = [...POLICY_ACTS, 'delete', ''] as const;

const group = fc.constantFrom(...GROUPS);
const anyName = fc.constantFrom(...AGENTS, ...GROUPS);

/** Policy files: `p` rules mostly for groups (with or without an `eft` field, some denying), and `g` links. */
function policyText(withEft: boolean): fc.Arbitrary<string> {
  const sub = fc.oneof({ arbitrary: group, weight: 3 }, { arbitrary: fc.constantFrom(...AGENTS), weight: 1 });
  const p = fc
    .tuple(sub, fc.constantFrom(...PATTERNS), fc.constantFrom(...POLICY_ACTS), fc.constantFrom('allow', 'allow', 'deny'))
    .map(([s, obj, act, eft]) => (withEft ? `p, ${s}, ${obj}, ${act}, ${eft}` : `p, ${s}, ${obj}, ${act}`));
  const g = fc.tuple(anyName, group).map(([member, role]) => `g, ${member}, ${role}`);
  return fc
    .array(fc.oneof({ arbitrary: p, weight: 3 }, { arbitrary: g, weight: 1 }), { maxLength: 24, size: 'medium' })
    .map((lines) => `${lines.join('\n')}\n`);
}

type Request = readonly [sub: string, obj: string, act: string];

/** The requests one run asks about, again after every change: 1 to 8 of them. */
const requestPool: fc.Arbitrary<Request[]> = fc.array(
  fc.tuple(fc.constantFrom(...AGENTS, ...GROUPS, 'nobody', ''), fc.constantFrom(...OBJECTS), fc.constantFrom(...ACTS)),
  { minLength: 1, maxLength: 8 },
);

type Step = { kind: 'grant'; sub: string; role: string } | { kind: 'revoke'; sub: string } | { kind: 'reload'; policy: string };

function steps(withEft: boolean): fc.Arbitrary<Step[]> {
  const grant = fc.record({ kind: fc.constant('grant' as const), sub: anyName, role: group });
  const revoke = fc.record({ kind: fc.constant('revoke' as const), sub: anyName });
  const reload = fc.record({ kind: fc.constant('reload' as const), policy: policyText(withEft) });
  return fc.array(fc.oneof({ arbitrary: grant, weight: 4 }, { arbitrary: revoke, weight: 2 }, { arbitrary: reload, weight: 1 }), {
    maxLength: 20,
  });
}

interface Case {
  readonly name: string;
  readonly model: string;
  /** Whether the model's `p` declares an `eft` field. */
  readonly withEft: boolean;
  readonly options?: Partial<LoadPolicyOptions>;
  readonly fastPath: FastPath;
  /** Generated runs; the shipped model's paths get the most. */
  readonly runs: number;
}

const CASES: readonly Case[] = [
  { name: 'the shipped model (keyMatch objects, `*` actions, deny rules)', model: SHIPPED_MODEL, withEft: true, fastPath: FastPath.compiled, runs: 150 },
  {
    name: 'the shipped model, keeping the rules of 2 subjects at most',
    model: SHIPPED_MODEL,
    withEft: true,
    options: { maxCompiledSubjects: 2 },
    fastPath: FastPath.compiled,
    runs: 50,
  },
  { name: 'the shipped model on the cache path', model: SHIPPED_MODEL, withEft: true, options: { fastPath: 'cache' }, fastPath: FastPath.cache, runs: 100 },
  {
    name: 'the shipped model on the cache path, keeping 3 decisions at most',
    model: SHIPPED_MODEL,
    withEft: true,
    options: { fastPath: 'cache', maxCachedDecisions: 3 },
    fastPath: FastPath.cache,
    runs: 50,
  },
  {
    name: 'exact objects and actions, allow rules only',
    model: model('sub, obj, act', 'some(where (p.eft == allow))', 'g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act'),
    withEft: false,
    fastPath: FastPath.compiled,
    runs: 50,
  },
  {
    name: 'some allow, with deny rules that do not count',
    model: model('sub, obj, act, eft', 'some(where (p.eft == allow))', SHIPPED_MATCHER),
    withEft: true,
    fastPath: FastPath.compiled,
    runs: 50,
  },
  {
    name: 'no deny, terms in another order',
    model: model('sub, obj, act, eft', '!some(where (p.eft == deny))', '(p.act == "*" || r.act == p.act) && keyMatch(r.obj, p.obj) && g(r.sub, p.sub)'),
    withEft: true,
    fastPath: FastPath.compiled,
    runs: 50,
  },
  {
    name: 'subjects compared without roles',
    model: model('sub, obj, act, eft', ALLOW_AND_DENY, 'r.sub == p.sub && keyMatch(r.obj, p.obj) && r.act == p.act'),
    withEft: true,
    fastPath: FastPath.compiled,
    runs: 50,
  },
  {
    name: 'roles tested on objects too (not compiled; a role change drops every cached decision)',
    model: model('sub, obj, act, eft', ALLOW_AND_DENY, 'g(r.sub, p.sub) && (keyMatch(r.obj, p.obj) || g(r.obj, p.obj)) && r.act == p.act'),
    withEft: true,
    fastPath: FastPath.cache,
    runs: 50,
  },
  {
    name: 'globMatch objects (not compiled)',
    model: model('sub, obj, act, eft', ALLOW_AND_DENY, 'g(r.sub, p.sub) && globMatch(r.obj, p.obj) && r.act == p.act'),
    withEft: true,
    fastPath: FastPath.cache,
    runs: 50,
  },
  {
    name: 'the priority effect (not compiled)',
    model: model('sub, obj, act, eft', 'priority(p.eft) || deny', SHIPPED_MATCHER),
    withEft: true,
    fastPath: FastPath.cache,
    runs: 50,
  },
];

/** The path a case takes for a policy: Casbin decides a policy without `p` rules its own way. */
function expectedPath(c: Case, policy: string): FastPath {
  return c.fastPath === FastPath.compiled && !/^p,/m.test(policy) ? FastPath.cache : c.fastPath;
}

describe('the fast path agrees with plain Casbin', () => {
  for (const c of CASES) {
    it(`on random policies, requests, role changes and reloads: ${c.name}`, async () => {
      await fc.assert(
        fc.asyncProperty(policyText(c.withEft), requestPool, steps(c.withEft), async (initial, pool, script) => {
          const { modelPath, policyPath } = writeFiles(c.model, initial);
          const policy = await loadPolicy({ modelPath, policyPath, ...c.options });
          expect(policy.fastPath).toBe(expectedPath(c, initial));
          const roles = new Map<string, Set<string>>();
          /** Asks every pooled request twice (a new request, then a repeated one) of both. */
          const agree = async (after: string): Promise<Awaited<ReturnType<typeof plainCasbin>>> => {
            const oracle = await plainCasbin(modelPath, policyPath, roles);
            for (const [sub, obj, act] of pool) {
              const expected = oracle.enforceSync(sub, obj, act);
              expect(policy.enforce(sub, obj, act), `(${sub}, ${obj}, ${act}) after ${after}`).toBe(expected);
              expect(policy.decide(sub, obj, act)).toEqual({ allowed: expected, sub, obj, act });
              const [allowed, fields] = oracle.enforceExSync(sub, obj, act);
              expect(policy.explain(sub, obj, act), `explain (${sub}, ${obj}, ${act}) after ${after}`).toEqual({
                allowed,
                rule: fields.length === 0 ? null : `p, ${fields.join(', ')}`,
                line: fields.length === 0 ? null : expect.any(Number),
              });
            }
            return oracle;
          };
          /** Subjects of one decision class get the oracle's same answer to every pooled request (`oracle` from {@link agree}). */
          const sameClassAgrees = (oracle: Awaited<ReturnType<typeof plainCasbin>>, after: string) => {
            const subjects = [...AGENTS, ...GROUPS, 'nobody', ''];
            const firstOfClass = new Map<string, string>();
            for (const sub of subjects) {
              const cls = policy.decisionClass(sub);
              if (c.fastPath === FastPath.compiled && policy.fastPath === FastPath.compiled) expect(cls, sub).toBeDefined();
              if (cls === undefined) continue;
              const first = firstOfClass.get(cls);
              if (first === undefined) {
                firstOfClass.set(cls, sub);
                continue;
              }
              for (const [, obj, act] of pool) {
                expect(oracle.enforceSync(sub, obj, act), `${first} and ${sub} (class ${cls}) on (${obj}, ${act}) after ${after}`).toBe(oracle.enforceSync(first, obj, act));
                expect(policy.explain(sub, obj, act).rule).toBe(policy.explain(first, obj, act).rule);
              }
            }
          };
          sameClassAgrees(await agree('loading'), 'loading');
          for (const step of script) {
            switch (step.kind) {
              case 'grant':
                policy.addRoleForSubject(step.sub, step.role);
                roles.set(step.sub, (roles.get(step.sub) ?? new Set()).add(step.role));
                break;
              case 'revoke':
                policy.removeSubject(step.sub);
                roles.delete(step.sub);
                break;
              case 'reload':
                writeFileSync(policyPath, step.policy);
                await policy.reload();
                expect(policy.fastPath).toBe(expectedPath(c, step.policy));
                break;
            }
            sameClassAgrees(await agree(JSON.stringify(step)), JSON.stringify(step));
          }
        }),
        { numRuns: c.runs },
      );
    }, 240_000);
  }

  it('on the role hierarchy limit: Casbin follows at most 10 links', async () => {
    const chain = Array.from({ length: 14 }, (_, i) => `g, r${i}, r${i + 1}`);
    const rules = Array.from({ length: 15 }, (_, i) => `p, r${i}, task:${i}, assign, allow`);
    const { modelPath, policyPath } = writeFiles(SHIPPED_MODEL, [...chain, ...rules, 'p, r14, task:*, assign, deny', ''].join('\n'));
    const policy = await loadPolicy({ modelPath, policyPath });
    policy.addRoleForSubject('agent', 'r0');
    const casbin = await plainCasbin(modelPath, policyPath, new Map([['agent', new Set(['r0'])]]));
    expect(policy.fastPath).toBe(FastPath.compiled);
    const seen = new Set<boolean>();
    for (const sub of ['agent', 'r0', 'r3', 'r5']) {
      for (let i = 0; i < 15; i++) {
        const expected = casbin.enforceSync(sub, `task:${i}`, 'assign');
        seen.add(expected);
        expect(policy.enforce(sub, `task:${i}`, 'assign'), `(${sub}, task:${i})`).toBe(expected);
      }
    }
    expect([...seen].sort()).toEqual([false, true]);
  });

  it('names the rule Casbin names when a rule is repeated in the file, on every path', async () => {
    const text = 'p, template:reporter, agent:a, assign, allow\np, user:root, agent:*, assign, allow\np, template:reporter, agent:a, assign, allow\n';
    const { modelPath, policyPath } = writeFiles(SHIPPED_MODEL, text);
    const roles = new Map([['reporter-1', new Set(['template:reporter'])], ['template:reporter', new Set(['user:root'])]]);
    const casbin = await plainCasbin(modelPath, policyPath, roles);
    const [allowed, fields] = casbin.enforceExSync('reporter-1', 'agent:a', 'assign');
    expect([allowed, fields]).toEqual([true, ['template:reporter', 'agent:a', 'assign', 'allow']]);
    for (const fastPath of ['auto', 'cache', 'off'] as const) {
      const policy = await loadPolicy({ modelPath, policyPath, fastPath });
      for (const [sub, groups] of roles) for (const role of groups) policy.addRoleForSubject(sub, role);
      expect(policy.explain('reporter-1', 'agent:a', 'assign'), fastPath).toEqual({ allowed: true, rule: 'p, template:reporter, agent:a, assign, allow', line: 1 });
    }
  });

  it('on an empty policy, where Casbin evaluates the matcher once with empty rule fields', async () => {
    const { modelPath, policyPath } = writeFiles(SHIPPED_MODEL, '# nothing yet\n');
    const policy = await loadPolicy({ modelPath, policyPath });
    const casbin = await plainCasbin(modelPath, policyPath);
    expect(policy.fastPath).toBe(FastPath.cache);
    for (const [sub, obj, act] of [
      ['', '', ''],
      ['a', '', ''],
      ['', 'task:a', 'assign'],
    ] as const) {
      expect(policy.enforce(sub, obj, act)).toBe(casbin.enforceSync(sub, obj, act));
    }
  });

  it('switches path when a reload changes what the model allows, and back', async () => {
    const { modelPath, policyPath } = writeFiles(SHIPPED_MODEL, 'p, a, task:*, assign, allow\n');
    const policy = await loadPolicy({ modelPath, policyPath });
    expect(policy.fastPath).toBe(FastPath.compiled);
    writeFileSync(policyPath, '');
    await policy.reload();
    expect(policy.fastPath).toBe(FastPath.cache);
    expect(policy.enforce('a', 'task:x', 'assign')).toBe(false);
    writeFileSync(policyPath, 'p, a, task:*, assign, allow\n');
    await policy.reload();
    expect(policy.fastPath).toBe(FastPath.compiled);
    expect(policy.enforce('a', 'task:x', 'assign')).toBe(true);
  });
});

describe('which models are compiled', () => {
  const loadWith = async (matcher: string, effect = ALLOW_AND_DENY, options: Partial<LoadPolicyOptions> = {}) => {
    const { modelPath, policyPath } = writeFiles(model('sub, obj, act, eft', effect, matcher), 'p, a, task:*, assign, allow\n');
    return loadPolicy({ modelPath, policyPath, ...options });
  };

  it.each([
    ['a top-level ||', 'g(r.sub, p.sub) && keyMatch(r.obj, p.obj) || r.act == p.act'],
    ['a function it does not know', 'g(r.sub, p.sub) && regexMatch(r.obj, p.obj) && r.act == p.act'],
    ['a role function used twice', 'g(r.sub, p.sub) && g(r.obj, p.obj) && r.act == p.act'],
    ['a negation', 'g(r.sub, p.sub) && !(r.obj == p.obj) && r.act == p.act'],
    ['a single-quoted literal', "g(r.sub, p.sub) && r.obj == p.obj && (r.act == p.act || p.act == '*')"],
    ['two pairs of fields in one ||', 'g(r.sub, p.sub) && (r.obj == p.obj || r.act == p.act)'],
    ['a request field compared with a request field', 'g(r.sub, p.sub) && r.obj == r.act'],
  ])('leaves %s to Casbin, through the cache', async (_, matcher) => {
    const policy = await loadWith(matcher);
    expect(policy.fastPath).toBe(FastPath.cache);
  });

  it('leaves the priority effect to Casbin', async () => {
    expect((await loadWith(SHIPPED_MATCHER, 'priority(p.eft) || deny')).fastPath).toBe(FastPath.cache);
  });

  it("asks Casbin every time with fastPath: 'off'", async () => {
    expect((await loadWith(SHIPPED_MATCHER, ALLOW_AND_DENY, { fastPath: 'off' })).fastPath).toBe(FastPath.off);
  });

  it('logs the path and, when the policy is not compiled, why', async () => {
    const lines: { fields: Record<string, unknown>; msg: string | undefined }[] = [];
    const record = (fields: object, msg?: string) => lines.push({ fields: fields as Record<string, unknown>, msg });
    const logger = { trace: record, debug: record, info: record, warn: record, error: record, child: () => logger };
    const { modelPath, policyPath } = writeFiles(
      model('sub, obj, act, eft', ALLOW_AND_DENY, 'g(r.sub, p.sub) && globMatch(r.obj, p.obj) && r.act == p.act'),
      'p, a, task:*, assign, allow\n',
    );
    await loadPolicy({ modelPath, policyPath, logger });
    expect(lines).toEqual([
      {
        msg: 'policy loaded',
        fields: expect.objectContaining({
          fastPath: 'cache',
          fastPathReason: expect.stringMatching(/the term 'globMatch\(r_obj, p_obj\)' is not one the fast path reads/),
        }),
      },
    ]);
  });

  it('rejects bounds that are not integers in range', async () => {
    const { modelPath, policyPath } = writeFiles(SHIPPED_MODEL, '');
    await expect(loadPolicy({ modelPath, policyPath, maxCachedDecisions: -1 })).rejects.toThrow(RangeError);
    await expect(loadPolicy({ modelPath, policyPath, maxCompiledSubjects: 0 })).rejects.toThrow(/maxCompiledSubjects must be an integer ≥ 1, got 0/);
    await expect(loadPolicy({ modelPath, policyPath, maxCachedDecisions: 1.5 })).rejects.toThrow(RangeError);
  });
});

describe('bounds', () => {
  it('the decision cache holds at most maxEntries decisions, dropping the oldest first', () => {
    const cache = new DecisionCache(3);
    for (let i = 0; i < 10; i++) {
      cache.set(`agent-${i}`, 'task:a', 'assign', i % 2 === 0);
      expect(cache.size).toBeLessThanOrEqual(3);
    }
    expect(cache.get('agent-6', 'task:a', 'assign')).toBeUndefined();
    expect([7, 8, 9].map((i) => cache.get(`agent-${i}`, 'task:a', 'assign'))).toEqual([false, true, false]);
    cache.set('agent-9', 'task:a', 'assign', true); // replacing keeps the others
    expect(cache.size).toBe(3);
    expect(cache.get('agent-7', 'task:a', 'assign')).toBe(false);
    cache.clear();
    expect(cache.size).toBe(0);
  });

  it('the decision cache keeps requests apart whatever characters they hold, and skips long ones', () => {
    const cache = new DecisionCache(10);
    cache.set('a\u0000b', 'c', 'd', true);
    cache.set('a', 'b\u0000c', 'd', false);
    cache.set('a,b', 'c', '', true);
    expect(cache.get('a\u0000b', 'c', 'd')).toBe(true);
    expect(cache.get('a', 'b\u0000c', 'd')).toBe(false);
    expect(cache.get('a', 'b,c', '')).toBeUndefined();
    cache.set('a', 'x'.repeat(MAX_CACHED_REQUEST_LENGTH), 'assign', true);
    expect(cache.get('a', 'x'.repeat(MAX_CACHED_REQUEST_LENGTH), 'assign')).toBeUndefined();
    expect(new DecisionCache(0).size).toBe(0);
  });

  it('the compiled policy keeps the rules of at most maxSubjects subjects', async () => {
    const { modelPath, policyPath } = writeFiles(SHIPPED_MODEL, 'g, template:shell, role:worker\np, role:worker, task:*, assign, allow\n');
    const enforcer = await plainCasbin(modelPath, policyPath, new Map(Array.from({ length: 20 }, (_, i) => [`shell-${i}`, new Set(['template:shell'])])));
    const compiled = CompiledPolicy.compile(enforcer, 4);
    if (!(compiled instanceof CompiledPolicy)) throw new Error(compiled.reason);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 20; i++) {
        expect(compiled.decide(`shell-${i}`, 'task:a', 'assign')).toBe(true);
        expect(compiled.subjectCount).toBeLessThanOrEqual(4);
      }
    }
    compiled.invalidate();
    expect(compiled.subjectCount).toBe(0);
  });

  it('a role change on the cache path drops every decision when the matcher tests roles of other fields', async () => {
    const roleObjects = model('sub, obj, act, eft', ALLOW_AND_DENY, 'g(r.sub, p.sub) && (keyMatch(r.obj, p.obj) || g(r.obj, p.obj)) && r.act == p.act');
    const { modelPath, policyPath } = writeFiles(roleObjects, 'g, root, role:ops\np, role:ops, template:shell, exec, allow\n');
    const policy = await loadPolicy({ modelPath, policyPath });
    expect(policy.fastPath).toBe(FastPath.cache);
    expect(policy.enforce('root', 'shell-1', 'exec')).toBe(false);
    policy.addRoleForSubject('shell-1', 'template:shell');
    expect(policy.enforce('root', 'shell-1', 'exec')).toBe(true);
    policy.removeSubject('shell-1');
    expect(policy.enforce('root', 'shell-1', 'exec')).toBe(false);
  });

  it('a role change drops the compiled lists and cached decisions of the subjects it picks, and keeps the others', async () => {
    const { modelPath, policyPath } = writeFiles(SHIPPED_MODEL, 'g, template:shell, role:worker\np, role:worker, task:*, assign, allow\n');
    const enforcer = await plainCasbin(modelPath, policyPath, new Map(Array.from({ length: 6 }, (_, i) => [`shell-${i}`, new Set(['template:shell'])])));
    const compiled = CompiledPolicy.compile(enforcer);
    if (!(compiled instanceof CompiledPolicy)) throw new Error(compiled.reason);
    const cache = new DecisionCache(100);
    for (let i = 0; i < 6; i++) {
      compiled.decide(`shell-${i}`, 'task:a', 'assign');
      cache.set(`shell-${i}`, 'task:a', 'assign', true);
      cache.set(`shell-${i}`, `task:${i}`, 'assign', true);
    }
    compiled.invalidateSubjects((s) => s === 'shell-2' || s === 'shell-4');
    cache.deleteSubjects((s) => s === 'shell-2' || s === 'shell-4');
    expect(compiled.subjectCount).toBe(4);
    expect(cache.size).toBe(8);
    expect(cache.get('shell-2', 'task:2', 'assign')).toBeUndefined();
    expect(cache.get('shell-3', 'task:3', 'assign')).toBe(true);
  });
});

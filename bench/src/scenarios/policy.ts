import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newEnforcer } from 'casbin';
import { openAudit, type AuditEntry } from '@warren/audit';
import { loadPolicy } from '@warren/policy';
import { openDatabase } from '@warren/store';
import type { BenchContext, Scenario } from '../lib/context.js';
import { inRounds, latencyFigure, roundsFigure, type Figure } from '../lib/figure.js';
import { msSince, seededRandom } from '../lib/stats.js';

const TEMPLATES = 50;
const AGENTS = 100;

/**
 * Writes a 1,000-line policy for Warren's model (RBAC with deny, keyMatch objects): 50
 * `g, template:tN, role:…` lines, 200 `g, user:…, role:ops-…` lines, and 750 `p` lines giving
 * roles task-prefix and agent-prefix permissions, with some deny rules.
 */
function writePolicy(dir: string, repoRoot: string): { modelPath: string; policyPath: string; lines: number } {
  mkdirSync(dir, { recursive: true });
  const modelPath = join(dir, 'model.conf');
  const policyPath = join(dir, 'policy.csv');
  copyFileSync(join(repoRoot, 'policies', 'model.conf'), modelPath);
  const lines: string[] = [];
  for (let t = 0; t < TEMPLATES; t++) lines.push(`g, template:t${t}, role:r${t % 25}`);
  for (let u = 0; u < 200; u++) lines.push(`g, user:u${u}, role:ops-${u % 10}`);
  for (let i = 0; lines.length < 1_000; i++) {
    const role = `role:r${i % 25}`;
    switch (i % 6) {
      case 0:
      case 1:
      case 2:
        lines.push(`p, ${role}, task:p${i % 60}-*, assign, allow`);
        break;
      case 3:
        lines.push(`p, ${role}, agent:agent-${i % AGENTS}, message, allow`);
        break;
      case 4:
        lines.push(`p, role:ops-${i % 10}, agent:agent-${i % AGENTS}, exec, allow`);
        break;
      default:
        lines.push(`p, ${role}, task:p${i % 60}-secret-*, assign, deny`);
    }
  }
  writeFileSync(policyPath, `${lines.join('\n')}\n`);
  return { modelPath, policyPath, lines: lines.length };
}

/** 1,000 requests like the supervisor's: 80 % assignments, 15 % messages, 5 % exec. */
function requests(): [string, string, string][] {
  const random = seededRandom(66);
  return Array.from({ length: 1_000 }, (_, i) => {
    const agent = `agent-${Math.floor(random() * AGENTS)}`;
    const r = random();
    if (r < 0.8) return [agent, `task:p${Math.floor(random() * 60)}-${random() < 0.1 ? 'secret-' : ''}${i}`, 'assign'];
    if (r < 0.95) return [agent, `agent:agent-${Math.floor(random() * AGENTS)}`, 'message'];
    return [`user:u${Math.floor(random() * 200)}`, `agent:${agent}`, 'exec'];
  });
}

/**
 * `count` requests in the same mix as {@link requests}, all different from one another and from
 * the 1,000 of {@link requests}: task ids are new (`task:pN-cold-i`), message and exec pairs are
 * drawn again until unseen (10,000 and 20,000 pairs exist; at most a few thousand are drawn).
 */
function distinctRequests(count: number): [string, string, string][] {
  const random = seededRandom(67);
  const seen = new Set(requests().map((r) => r.join('\u0000')));
  const out: [string, string, string][] = [];
  for (let i = 0; out.length < count; i++) {
    const agent = `agent-${Math.floor(random() * AGENTS)}`;
    const r = random();
    let req: [string, string, string];
    if (r < 0.8) req = [agent, `task:p${Math.floor(random() * 60)}-${random() < 0.1 ? 'secret-' : ''}cold-${i}`, 'assign'];
    else if (r < 0.95) req = [agent, `agent:agent-${Math.floor(random() * AGENTS)}`, 'message'];
    else req = [`user:u${Math.floor(random() * 200)}`, `agent:${agent}`, 'exec'];
    const key = req.join('\u0000');
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(req);
  }
  return out;
}

/** Runs `count` decisions through `decide`, timing each; returns per-decision ms and the rate. */
function timeDecisions(count: number, offset: number, decide: (req: [string, string, string], i: number) => void, reqs: [string, string, string][]) {
  const samples: number[] = [];
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const t = process.hrtime.bigint();
    decide(reqs[(((offset + i) % reqs.length) + reqs.length) % reqs.length]!, i);
    samples.push(msSince(t));
  }
  return { samples, rate: count / (msSince(start) / 1000) };
}

/**
 * Policy (issue 6 scenario 6): decisions per second for a 1,000-line policy through
 * `@warren/policy`, against plain Casbin `enforceSync` on the same files; and with auditing on,
 * one audit row per decision, written per decision (own transaction) or per group of 100 (one
 * transaction, as a tick would). `@warren/policy` answers through its fast path (`compiled` for
 * this model); hot (repeated) and cold (never seen) requests are measured apart, on that path and
 * on the `cache` path a model the compiler does not take would get.
 */
export const policyScenario: Scenario = {
  id: 'policy',
  title: 'Policy',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const { modelPath, policyPath, lines } = writePolicy(join(ctx.scratchDir, 'policy'), ctx.repoRoot);
    const policy = await loadPolicy({ modelPath, policyPath });
    const cached = await loadPolicy({ modelPath, policyPath, fastPath: 'cache' });
    const raw = await newEnforcer(modelPath, policyPath);
    raw.enableAutoSave(false);
    for (let a = 0; a < AGENTS; a++) {
      policy.addRoleForSubject(`agent-${a}`, `template:t${a % TEMPLATES}`);
      cached.addRoleForSubject(`agent-${a}`, `template:t${a % TEMPLATES}`);
      await raw.addRoleForUser(`agent-${a}`, `template:t${a % TEMPLATES}`);
    }
    const reqs = requests();
    const n = ctx.quick ? 300 : 1_500;
    const slots = ctx.warmup + ctx.rounds;
    const distinct = distinctRequests(slots * n + 150);
    const cold = distinct.slice(0, slots * n);
    for (const [sub, obj, act] of [...reqs.slice(0, 150), ...distinct.slice(slots * n)]) {
      const expected = raw.enforceSync(sub, obj, act);
      if (policy.enforce(sub, obj, act) !== expected || cached.enforce(sub, obj, act) !== expected) {
        throw new Error(`@warren/policy and Casbin disagree on (${sub}, ${obj}, ${act})`);
      }
    }
    const note = `${lines} policy lines + ${AGENTS} in-memory agent roles; ${n} decisions per round`;
    const oursNote = `${note}; fast path '${policy.fastPath}'; the 1,000 requests cycle, so after the warm-up each is a repeat`;
    const figures: Figure[] = [];
    /** Round `r` of `inRounds` (warm-ups are -1, -2, ...) as a slot 0..slots-1 of the cold requests. */
    const slot = (r: number) => (r < 0 ? -1 - r : ctx.warmup + r);

    ctx.progress('policy: plain Casbin enforceSync');
    const baseRuns = await inRounds(ctx.rounds, ctx.warmup, (r) => timeDecisions(n, r * n, ([s, o, a]) => raw.enforceSync(s, o, a), reqs));
    figures.push(
      roundsFigure({ id: 'policy.casbin', scenario: 'Policy', name: 'plain Casbin enforceSync (same files)', unit: 'decisions/s', better: 'higher', note }, baseRuns.map((r) => r.rate)),
    );
    ctx.progress('policy: @warren/policy enforce');
    const ours = await inRounds(ctx.rounds, ctx.warmup, (r) => timeDecisions(n, r * n, ([s, o, a]) => policy.enforce(s, o, a), reqs));
    figures.push(
      roundsFigure(
        { id: 'policy.enforce', scenario: 'Policy', name: '@warren/policy enforce, no audit', unit: 'decisions/s', better: 'higher', baseline: 'policy.casbin', note: oursNote },
        ours.map((r) => r.rate),
      ),
    );
    figures.push(
      latencyFigure(
        { id: 'policy.enforce.latency', scenario: 'Policy', name: '@warren/policy enforce, latency per decision', unit: 'ms', better: 'lower', note: oursNote },
        ours.map((r) => r.samples),
      ),
    );

    const hotReqs = reqs.slice(0, 100);
    const hotNote = `${lines} policy lines; the same 100 requests repeated, ${n} decisions per round; per-decision timing included`;
    const coldNote = `${lines} policy lines; every request new (task ids never seen, message and exec pairs not repeated), ${n} decisions per round; per-decision timing included`;
    ctx.progress(`policy: @warren/policy enforce (${policy.fastPath}), hot and cold requests`);
    const hot = await inRounds(ctx.rounds, ctx.warmup, (r) => timeDecisions(n, r * n, ([s, o, a]) => policy.enforce(s, o, a), hotReqs));
    const coldRuns = await inRounds(ctx.rounds, ctx.warmup, (r) => timeDecisions(n, slot(r) * n, ([s, o, a]) => policy.enforce(s, o, a), cold));
    figures.push(
      roundsFigure(
        { id: 'policy.enforce.hot', scenario: 'Policy', name: `@warren/policy enforce (${policy.fastPath}), hot: repeated requests`, unit: 'decisions/s', better: 'higher', baseline: 'policy.casbin', note: hotNote },
        hot.map((r) => r.rate),
      ),
      roundsFigure(
        { id: 'policy.enforce.cold', scenario: 'Policy', name: `@warren/policy enforce (${policy.fastPath}), cold: distinct requests`, unit: 'decisions/s', better: 'higher', baseline: 'policy.casbin', note: coldNote },
        coldRuns.map((r) => r.rate),
      ),
    );
    ctx.progress(`policy: @warren/policy enforce (${cached.fastPath}), hot and cold requests`);
    const cacheHot = await inRounds(ctx.rounds, ctx.warmup, (r) => timeDecisions(n, r * n, ([s, o, a]) => cached.enforce(s, o, a), hotReqs));
    const cacheCold = await inRounds(ctx.rounds, ctx.warmup, (r) => timeDecisions(n, slot(r) * n, ([s, o, a]) => cached.enforce(s, o, a), cold));
    figures.push(
      roundsFigure(
        {
          id: 'policy.cache.hot',
          scenario: 'Policy',
          name: `@warren/policy enforce (${cached.fastPath}: models the compiler does not take), hot`,
          unit: 'decisions/s',
          better: 'higher',
          baseline: 'policy.casbin',
          note: `${hotNote}; a hit costs a Map lookup`,
        },
        cacheHot.map((r) => r.rate),
      ),
      roundsFigure(
        {
          id: 'policy.cache.cold',
          scenario: 'Policy',
          name: `@warren/policy enforce (${cached.fastPath}: models the compiler does not take), cold`,
          unit: 'decisions/s',
          better: 'higher',
          baseline: 'policy.casbin',
          note: `${coldNote}; every miss is a Casbin enforceSync on @warren/policy's enforcer, which is what policy.enforce measured before the fast path`,
        },
        cacheCold.map((r) => r.rate),
      ),
    );
    ctx.progress(`policy: @warren/policy explain (${policy.fastPath}), cold requests`);
    const explainCold = await inRounds(ctx.rounds, ctx.warmup, (r) => timeDecisions(n, slot(r) * n, ([s, o, a]) => policy.explain(s, o, a), cold));
    figures.push(
      roundsFigure(
        {
          id: 'policy.explain.cold',
          scenario: 'Policy',
          name: `@warren/policy explain (${policy.fastPath}): the decision with its rule, cold`,
          unit: 'decisions/s',
          better: 'higher',
          baseline: 'policy.enforce.cold',
          note: `${coldNote}; the rule Casbin's enforceExSync names, and its line`,
        },
        explainCold.map((r) => r.rate),
      ),
    );
    for (const [sub, obj, act] of [...hotReqs, ...cold.slice(-150)]) {
      const [allowed, fields] = raw.enforceExSync(sub, obj, act);
      const explained = policy.explain(sub, obj, act);
      if (explained.allowed !== allowed || explained.rule !== (fields.length === 0 ? null : `p, ${fields.join(', ')}`)) {
        throw new Error(`@warren/policy and Casbin explain (${sub}, ${obj}, ${act}) differently`);
      }
    }
    for (const [sub, obj, act] of [...hotReqs, ...cold.slice(-150)]) {
      const expected = raw.enforceSync(sub, obj, act);
      if (policy.enforce(sub, obj, act) !== expected || cached.enforce(sub, obj, act) !== expected) {
        throw new Error(`@warren/policy and Casbin disagree on (${sub}, ${obj}, ${act}) after the timed rounds`);
      }
    }

    const dbPath = join(ctx.scratchDir, 'policy-audit.db');
    const db = openDatabase(dbPath);
    try {
      const audit = openAudit(db);
      const entry = (sub: string, obj: string, act: string, allowed: boolean): AuditEntry => ({
        actor: 'supervisor',
        action: 'policy.decide',
        object: obj,
        decision: allowed ? 'allow' : 'deny',
        details: { sub, act },
      });
      /** Throws unless the audit gained exactly one row per decision made since `before`. */
      const expectRows = (before: number, what: string) => {
        const rows = audit.lastSeq() - before;
        if (rows !== slots * n) throw new Error(`${what}: ${slots * n} decisions but ${rows} audit rows`);
      };
      ctx.progress('policy: enforce + audit row per decision');
      const beforeSingle = audit.lastSeq();
      const single = await inRounds(ctx.rounds, ctx.warmup, (r) =>
        timeDecisions(n, r * n, ([s, o, a]) => audit.append(entry(s, o, a, policy.enforce(s, o, a))), reqs),
      );
      expectRows(beforeSingle, 'enforce + audit.append');
      figures.push(
        roundsFigure(
          {
            id: 'policy.audited.single',
            scenario: 'Policy',
            name: 'enforce + audit.append per decision (one durable transaction each)',
            unit: 'decisions/s',
            better: 'higher',
            baseline: 'policy.enforce',
            note: oursNote,
          },
          single.map((r) => r.rate),
        ),
      );
      ctx.progress('policy: enforce + audit group commit');
      const beforeGrouped = audit.lastSeq();
      const grouped = await inRounds(ctx.rounds, ctx.warmup, (r) => {
        let pending: AuditEntry[] = [];
        const result = timeDecisions(
          n,
          r * n,
          ([s, o, a], i) => {
            pending.push(entry(s, o, a, policy.enforce(s, o, a)));
            if (pending.length === 100 || i === n - 1) {
              audit.appendMany(pending);
              pending = [];
            }
          },
          reqs,
        );
        return result;
      });
      expectRows(beforeGrouped, 'enforce + audit group commit');
      figures.push(
        roundsFigure(
          {
            id: 'policy.audited.grouped',
            scenario: 'Policy',
            name: 'enforce + audit, group commit of 100 decisions',
            unit: 'decisions/s',
            better: 'higher',
            baseline: 'policy.enforce',
            note: oursNote,
          },
          grouped.map((r) => r.rate),
        ),
      );
    } finally {
      db.close();
    }
    return figures;
  },
};

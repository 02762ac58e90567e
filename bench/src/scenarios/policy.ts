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
 * `@warren/policy` (Casbin `enforceSync`), against plain Casbin on the same files; and with
 * auditing on, one audit row per decision, written per decision (own transaction) or per group
 * of 100 (one transaction, as a tick would).
 */
export const policyScenario: Scenario = {
  id: 'policy',
  title: 'Policy',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const { modelPath, policyPath, lines } = writePolicy(join(ctx.scratchDir, 'policy'), ctx.repoRoot);
    const policy = await loadPolicy({ modelPath, policyPath });
    const raw = await newEnforcer(modelPath, policyPath);
    raw.enableAutoSave(false);
    for (let a = 0; a < AGENTS; a++) {
      policy.addRoleForSubject(`agent-${a}`, `template:t${a % TEMPLATES}`);
      await raw.addRoleForUser(`agent-${a}`, `template:t${a % TEMPLATES}`);
    }
    const reqs = requests();
    for (const [sub, obj, act] of reqs.slice(0, 50)) {
      if (policy.enforce(sub, obj, act) !== raw.enforceSync(sub, obj, act)) throw new Error(`@warren/policy and Casbin disagree on (${sub}, ${obj}, ${act})`);
    }
    const n = ctx.quick ? 300 : 1_500;
    const note = `${lines} policy lines + ${AGENTS} in-memory agent roles; ${n} decisions per round`;
    const figures: Figure[] = [];

    ctx.progress('policy: plain Casbin enforceSync');
    const baseRuns = await inRounds(ctx.rounds, ctx.warmup, (r) => timeDecisions(n, r * n, ([s, o, a]) => raw.enforceSync(s, o, a), reqs));
    figures.push(
      roundsFigure({ id: 'policy.casbin', scenario: 'Policy', name: 'plain Casbin enforceSync (same files)', unit: 'decisions/s', better: 'higher', note }, baseRuns.map((r) => r.rate)),
    );
    ctx.progress('policy: @warren/policy enforce');
    const ours = await inRounds(ctx.rounds, ctx.warmup, (r) => timeDecisions(n, r * n, ([s, o, a]) => policy.enforce(s, o, a), reqs));
    figures.push(
      roundsFigure(
        { id: 'policy.enforce', scenario: 'Policy', name: '@warren/policy enforce, no audit', unit: 'decisions/s', better: 'higher', baseline: 'policy.casbin', note },
        ours.map((r) => r.rate),
      ),
    );
    figures.push(
      latencyFigure(
        { id: 'policy.enforce.latency', scenario: 'Policy', name: '@warren/policy enforce, latency per decision', unit: 'ms', better: 'lower', note },
        ours.map((r) => r.samples),
      ),
    );

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
      ctx.progress('policy: enforce + audit row per decision');
      const single = await inRounds(ctx.rounds, ctx.warmup, (r) =>
        timeDecisions(n, r * n, ([s, o, a]) => audit.append(entry(s, o, a, policy.enforce(s, o, a))), reqs),
      );
      figures.push(
        roundsFigure(
          {
            id: 'policy.audited.single',
            scenario: 'Policy',
            name: 'enforce + audit.append per decision (one durable transaction each)',
            unit: 'decisions/s',
            better: 'higher',
            baseline: 'policy.enforce',
            note,
          },
          single.map((r) => r.rate),
        ),
      );
      ctx.progress('policy: enforce + audit group commit');
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
      figures.push(
        roundsFigure(
          {
            id: 'policy.audited.grouped',
            scenario: 'Policy',
            name: 'enforce + audit, group commit of 100 decisions',
            unit: 'decisions/s',
            better: 'higher',
            baseline: 'policy.enforce',
            note,
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

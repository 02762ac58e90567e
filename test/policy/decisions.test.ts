import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, startWarren, waitFor, warren, warrenSync, type AuditRow } from '../support/cli.js';

const { layouts, running } = cleanUpAfterEach();

interface DecisionRow extends AuditRow {
  actor: string;
  decision: 'allow' | 'deny' | null;
  details: { sub: string; act: string; rule: string | null };
}

describe('one authorize() for every decision', () => {
  it("writes exactly one policy.decide row per enforcer decision over a whole run: assignments, messages and operator commands", async () => {
    requireMachine();
    const layout = makeTestLayout({
      // An allowed message to the sender itself and a denied one to shell-9.
      talk: shellTask('talk', 'echo "::send $WARREN_AGENT:: {\\"hello\\": 1}"; echo "::send shell-9:: secret"; echo done > done.txt'),
      second: shellTask('second', 'echo two > two.txt'),
      'secret-plan': shellTask('secret-plan', 'echo leaked > leak.txt'),
    });
    layouts.push(layout);
    appendFileSync(
      join(layout.dir, 'policies', 'policy.csv'),
      '\np, role:worker, task:secret-*, assign, deny\np, role:worker, agent:shell-9, message, deny\n',
    );
    const up = startWarren(layout.args('up', '--kill-grace', '1s'));
    running.push(up);
    const audit = (...filter: string[]): DecisionRow[] => JSON.parse(warrenSync(['audit', '--json', ...filter, ...layout.args()])) as DecisionRow[];
    await waitFor('talk and second to be done', () => /^status: done$/m.test(layout.file('talk')) && /^status: done$/m.test(layout.file('second')), 120_000);
    await waitFor('the denial of secret-plan', () => audit('--action', 'policy.decide', '--decision', 'deny', '--object', 'task:secret-plan').length > 0);
    await waitFor('both message decisions', () => audit('--action', 'policy.decide').filter((r) => r.details.act === 'message').length === 2);
    // An operator command: decided (allowed for root) whatever its outcome.
    const cancel = await warren(['task', 'cancel', 'secret-plan', '--wait', '60s', ...layout.args()]);
    expect(cancel.stdout).not.toMatch(/^queued/);
    up.child.kill('SIGTERM');
    const result = await up.done;
    expect(result.code, result.stderr.slice(-3000)).toBe(0);

    const rows = audit('--action', 'policy.decide', '--limit', '100000');
    const stops = audit('--action', 'supervisor.stop') as unknown as { details: { policyDecisions?: number } }[];
    expect(stops).toHaveLength(1);
    expect(stops[0]!.details.policyDecisions).toBe(rows.length);
    // One shape: the principal is the actor and details.sub; every row names its rule or null.
    for (const row of rows) {
      expect(row.actor).toBe(row.details.sub);
      expect(row.details.rule === null || row.details.rule.startsWith('p, ')).toBe(true);
      expect(row.decision).toMatch(/^(allow|deny)$/);
    }
    const acts = new Set(rows.map((r) => r.details.act));
    expect([...acts].sort()).toEqual(['assign', 'cancel', 'message']);
    expect(rows.find((r) => r.object === 'task:secret-plan' && r.decision === 'deny')!.details.rule).toBe('p, role:worker, task:secret-*, assign, deny');
    expect(rows.find((r) => r.details.act === 'cancel')).toMatchObject({ actor: 'user:root', decision: 'allow', details: { rule: 'p, role:operator, task:*, cancel, allow' } });
    expect(readFileSync(join(layout.dir, 'kanban', 'tasks', 'secret-plan.md'), 'utf8')).not.toMatch(/^status: done$/m);
  });
});

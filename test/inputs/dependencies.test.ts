import { describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, warren, type AuditRow } from '../support/cli.js';

const { layouts } = cleanUpAfterEach();

describe('dependency problems in a run (attack case 33)', () => {
  it('reports blocked tasks in the log, the summary, warren tasks and the audit, and exits 1', async () => {
    requireMachine();
    const layout = makeTestLayout({
      t1: shellTask('t1', 'echo ok'),
      ca: shellTask('ca', 'echo ca', 'depends_on: [cb]\n'),
      cb: shellTask('cb', 'echo cb', 'depends_on: [ca]\n'),
      cs: shellTask('cs', 'echo cs', 'depends_on: [cs]\n'),
      cu: shellTask('cu', 'echo cu', 'depends_on: [nosuch]\n'),
    });
    layouts.push(layout);
    const run = await warren(layout.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    expect(run.stdout).toMatch(/^1 succeeded, 0 failed, 0 held, 0 not placed, 4 blocked$/m);
    expect(run.stdout).toContain('  blocked ca: dependency cycle: ca -> cb -> ca\n');
    expect(run.stdout).toContain('  blocked cb: dependency cycle: ca -> cb -> ca\n');
    expect(run.stdout).toContain('  blocked cs: depends on itself\n');
    expect(run.stdout).toContain('  blocked cu: depends on unknown task(s) nosuch\n');
    expect(layout.file('t1')).toMatch(/^status: done$/m);
    // One warn line per blocked task.
    const warnings = run.stderr.split('\n').filter((l) => l.includes('is blocked:'));
    expect(warnings).toHaveLength(4);
    expect(warnings.every((l) => (JSON.parse(l) as { level: number }).level === 40)).toBe(true);

    const rows = JSON.parse((await warren(['audit', '--json', '--action', 'task.blocked', ...layout.args()])).stdout) as AuditRow[];
    expect(rows.map((r) => [r.object, r.details.reason]).sort()).toEqual([
      ['task:ca', 'dependency cycle: ca -> cb -> ca'],
      ['task:cb', 'dependency cycle: ca -> cb -> ca'],
      ['task:cs', 'depends on itself'],
      ['task:cu', 'depends on unknown task(s) nosuch'],
    ]);

    const tasks = await warren(['tasks', ...layout.args()]);
    expect(tasks.stdout).toMatch(/^cs\s+ready\s+.*\bblocked\b/m);
    expect(tasks.stdout).toContain('blocked cu: depends on unknown task(s) nosuch\n');
  });

  it('does not count a task whose dependency is merely not done yet as blocked', async () => {
    requireMachine();
    const layout = makeTestLayout({
      first: shellTask('first', 'echo first'),
      second: shellTask('second', 'echo second', 'depends_on: [first]\n'),
    });
    layouts.push(layout);
    const run = await warren(layout.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    expect(run.stdout).toMatch(/^2 succeeded, 0 failed, 0 held, 0 not placed, 0 blocked$/m);
  });
});

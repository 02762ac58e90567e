import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireMachine } from '../support/cli.js';
import { checkInvariants, killAtAndRestart, makeLayout, recoveredRows, RestartableNats, shellTask } from './support.js';

// A per-task agent's exit and its account's deletion commit once, after its storage, consumers and
// home are gone (services/supervisor/src/agents/lifecycle.ts, removeAccount). A supervisor killed
// between the home's removal and that commit (`account.removing`) leaves an account row whose home
// is gone and no `agent.stop` row for the agent: the restart must still finish every task once.

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

beforeAll(() => requireMachine());

const TASKS = 4;

describe('a supervisor killed while it deletes a per-task agent loses nothing', () => {
  it('account.removing: home removed, deletion not committed: every task finishes once after the restart', async () => {
    const nats = await RestartableNats.start();
    cleanups.push(() => nats.close());
    const tasks = Object.fromEntries(Array.from({ length: TASKS }, (_, i) => [`removing-${i + 1}`, shellTask(`removing-${i + 1}`, 'echo done > out.txt')]));
    const layout = makeLayout({ tasks, natsUrl: nats.url, lifecycle: 'autodelete', maxInstances: 2, wipPerInstance: 1 });
    cleanups.push(() => layout.remove());

    await killAtAndRestart(layout, 'account.removing');

    const report = await checkInvariants(layout);
    expect(report.violations).toEqual([]);
    expect(report.succeeded.size).toBe(TASKS);
    const rows = recoveredRows(report.audit);
    expect(rows).toHaveLength(2);
    const restart = rows[1]!;
    const beforeCrash = report.audit.filter((r) => r.seq < restart.seq);
    // It died deleting the agent of a finished task: that task's result was committed before, and
    // neither that agent's exit nor its deletion was.
    const finished = beforeCrash.filter((r) => r.action === 'task.complete');
    expect(finished.length).toBeGreaterThanOrEqual(1);
    for (const row of finished) expect(report.audit.filter((r) => r.action === 'task.complete' && r.object === row.object)).toEqual([row]);
    expect(beforeCrash.filter((r) => r.action === 'account.delete')).toEqual([]);
    expect(beforeCrash.filter((r) => r.action === 'agent.stop')).toEqual([]);
  }, 240_000);
});

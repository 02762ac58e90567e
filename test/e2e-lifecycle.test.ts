import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, startWarren, waitFor, warren, warrenSync, type AuditRow, type TestLayout } from './support/cli.js';

const { layouts, running } = cleanUpAfterEach();

beforeAll(() => requireMachine());

/** A ready task for the `oneshot` capability only (the demo templates do not offer it). */
function oneshotTask(id: string, command: string): string {
  return `---\nid: ${id}\ntitle: Task ${id}\nstatus: ready\ncapabilities: [oneshot]\ncommand: ${JSON.stringify(command)}\n---\nBody of ${id}.\n`;
}

/** A layout with the demo templates plus an `autodelete` template `oneshot` with a warm pool. */
function layout(tasks: Record<string, string>, template: { maxInstances: number; warmPool: number }): TestLayout {
  const made = makeTestLayout(tasks, { copyAgents: true });
  layouts.push(made);
  writeFileSync(
    join(made.dir, 'agents', 'oneshot.yaml'),
    `name: oneshot
capabilities: [oneshot]
runtime: { kind: shell, timeout: 1m }
maxInstances: ${template.maxInstances}
wipPerInstance: 1
lifecycle: autodelete
warmPool: ${template.warmPool}
`,
  );
  appendFileSync(join(made.dir, 'policies', 'policy.csv'), '\ng, template:oneshot, role:worker\n');
  return made;
}

function audit(made: TestLayout, ...filter: string[]): AuditRow[] {
  if (!existsSync(join(made.dir, 'var', 'warren.db'))) return [];
  return JSON.parse(warrenSync(['audit', '--json', '--limit', '100000', ...filter, ...made.args()])) as AuditRow[];
}

describe('autodelete agents with a warm pool', () => {
  it('runs every task in a fresh account and sandbox, one task per agent, each deleted after its task', async () => {
    // Each task fails if its home has been used before: a reused account or home would show.
    const fresh = 'test ! -e "$HOME/used" && touch "$HOME/used" && id -u';
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    const made = layout(Object.fromEntries(ids.map((id) => [id, oneshotTask(id, fresh)])), { maxInstances: 3, warmPool: 2 });
    const run = await warren(made.args('run', '--until-idle', '--json'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    for (const id of ids) expect(made.file(id)).toMatch(/^status: done$/m);

    const rows = audit(made);
    // Walk the trail per agent name: between an agent.start and the next one of that name, at most
    // one task is assigned, and an agent that took a task has its account deleted afterwards.
    const incarnation = new Map<string, { tasks: string[]; deleted: boolean }>();
    const finished: { tasks: string[]; deleted: boolean }[] = [];
    for (const row of rows) {
      const agent = row.object.replace(/^agent:/, '');
      if (row.action === 'agent.start') {
        const previous = incarnation.get(agent);
        if (previous) finished.push(previous);
        incarnation.set(agent, { tasks: [], deleted: false });
      } else if (row.action === 'task.assign') {
        const taker = incarnation.get(String(row.details.agent));
        expect(taker, `${row.object} assigned to ${String(row.details.agent)} before it started`).toBeDefined();
        taker!.tasks.push(row.object);
      } else if (row.action === 'account.delete') {
        const deleted = incarnation.get(agent);
        expect(deleted, `${agent} deleted before it started`).toBeDefined();
        deleted!.deleted = true;
      }
    }
    finished.push(...incarnation.values());
    const worked = finished.filter((i) => i.tasks.length > 0);
    // On failure, say what the trail holds.
    const trail = rows.map((r) => `${r.action} ${r.object}${typeof r.details.agent === 'string' ? ` ${r.details.agent}` : ''}`).join('\n');
    expect(worked, trail).toHaveLength(ids.length);
    for (const i of worked) {
      expect(i.tasks, trail).toHaveLength(1);
      expect(i.deleted, trail).toBe(true);
    }
    expect(rows.filter((r) => r.action === 'account.delete'), trail).toHaveLength(ids.length);
  });

  it('keeps agents started ahead of demand under `up`, hands a new task to one, and refills the pool', async () => {
    const made = layout({}, { maxInstances: 4, warmPool: 2 });
    const up = startWarren(made.args('up', '--kill-grace', '1s'));
    running.push(up);
    await waitFor('two warm agents ready with nothing to do', () => audit(made, '--action', 'agent.ready').length >= 2);
    // The pool holds its size: no more agents start while nothing is asked of it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const warm = audit(made, '--action', 'agent.*');
    expect(warm.filter((r) => r.action === 'agent.start').map((r) => r.object).sort()).toEqual(['agent:oneshot-1', 'agent:oneshot-2']);
    const readyBefore = new Set(warm.filter((r) => r.action === 'agent.ready').map((r) => r.object.replace(/^agent:/, '')));

    writeFileSync(join(made.dir, 'kanban', 'tasks', 'now.md'), oneshotTask('now', 'echo ran as $(id -un)'));
    await waitFor('the task done', () => /^status: done$/m.test(made.file('now')));
    const assigned = audit(made, '--action', 'task.assign', '--object', 'task:now');
    expect(assigned).toHaveLength(1);
    // The task went to an agent that was already up before the task existed.
    expect(readyBefore.has(String(assigned[0]!.details.agent))).toBe(true);
    expect(made.file('now')).toMatch(/^result: ran as oneshot-\d$/m);

    // Its agent is deleted and the pool is topped up again with a fresh one.
    await waitFor('the used agent deleted and a third agent ready', () => {
      const rows = audit(made);
      return rows.some((r) => r.action === 'account.delete') && rows.filter((r) => r.action === 'agent.ready').length >= 3;
    });
    const accounts = JSON.parse((await warren(['accounts', '--json', ...made.args()])).stdout) as { name: string; template: string }[];
    expect(accounts.filter((a) => a.template === 'oneshot')).toHaveLength(2);
  });
});

/** One commit of the warren process, as `support/commit-log.mjs` logs it. */
interface LoggedCommit {
  readonly writes: string[];
  readonly audit: string[];
}

describe('the commits of a per-task agent', () => {
  it("commits its exit and its account's removal (account, placement and agent rows, account.delete) in one transaction", async () => {
    const made = layout({ a: oneshotTask('a', 'true') }, { maxInstances: 1, warmPool: 1 });
    const log = join(made.dir, 'commits.jsonl');
    const hook = fileURLToPath(new URL('./support/commit-log.mjs', import.meta.url));
    const run = await warren(made.args('run', '--until-idle'), 240_000, { NODE_OPTIONS: `--import=${hook}`, WARREN_COMMIT_LOG: log });
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    expect(made.file('a')).toMatch(/^status: done$/m);
    const commits = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as LoggedCommit);
    const agent = String(audit(made, '--action', 'task.assign')[0]!.details.agent);
    const shown = commits.map((c) => `${c.writes.join(', ')} | ${c.audit.join(', ')}`).join('\n');
    const removal = commits.filter((c) => c.audit.includes(`account.delete agent:${agent}`));
    expect(removal, shown).toHaveLength(1);
    expect(removal[0]!.audit, shown).toEqual([`agent.stop agent:${agent}`, `account.delete agent:${agent}`]);
    expect(removal[0]!.writes, shown).toEqual(expect.arrayContaining(['DELETE FROM accounts', 'DELETE FROM agent_placements', 'DELETE FROM agents']));
    // No other commit deletes an account's or a placement's row, or records the agent's exit.
    expect(commits.filter((c) => c.writes.some((w) => w === 'DELETE FROM accounts' || w === 'DELETE FROM agent_placements')), shown).toHaveLength(1);
    expect(commits.filter((c) => c.audit.includes(`agent.stop agent:${agent}`)), shown).toHaveLength(1);
  });
});

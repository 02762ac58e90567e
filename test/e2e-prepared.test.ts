import { appendFileSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, startWarren, waitFor, warren, warrenSync, type AuditRow, type TestLayout } from './support/cli.js';

const { layouts, running } = cleanUpAfterEach();

/** Deadline of each wait, ms: generous, as the machine may be shared and loaded. */
const WAIT_MS = 240_000;

beforeAll(() => requireMachine());

/** A ready task for the `oneshot` capability only (the demo templates do not offer it). */
function oneshotTask(id: string, command: string): string {
  return `---\nid: ${id}\ntitle: Task ${id}\nstatus: ready\ncapabilities: [oneshot]\ncommand: ${JSON.stringify(command)}\n---\nBody of ${id}.\n`;
}

/** A layout with the demo templates plus an `autodelete` template `oneshot`, no warm pool, `prepared` agents prepared ahead (the default when undefined). */
function layout(template: { maxInstances: number; prepared?: number }): TestLayout {
  const made = makeTestLayout({}, { copyAgents: true });
  layouts.push(made);
  writeFileSync(
    join(made.dir, 'agents', 'oneshot.yaml'),
    `name: oneshot
capabilities: [oneshot]
runtime: { kind: shell, timeout: 1m }
maxInstances: ${template.maxInstances}
wipPerInstance: 1
lifecycle: autodelete
${template.prepared === undefined ? '' : `prepared: ${template.prepared}\n`}`,
  );
  appendFileSync(join(made.dir, 'policies', 'policy.csv'), '\ng, template:oneshot, role:worker\n');
  return made;
}

function audit(made: TestLayout, ...filter: string[]): AuditRow[] {
  if (!existsSync(join(made.dir, 'var', 'warren.db'))) return [];
  return JSON.parse(warrenSync(['audit', '--json', '--limit', '100000', ...filter, ...made.args()])) as AuditRow[];
}

interface AccountRow {
  name: string;
  template: string;
  uid: number;
}

function accounts(made: TestLayout): AccountRow[] {
  if (!existsSync(join(made.dir, 'var', 'warren.db'))) return [];
  return (JSON.parse(warrenSync(['accounts', '--json', ...made.args()])) as AccountRow[]).filter((a) => a.template === 'oneshot');
}

/** The home directories of `oneshot` agents on the host. */
function homes(made: TestLayout): string[] {
  const dir = join(made.dir, 'home', 'oneshot');
  return existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith('.')) : [];
}

describe('agents prepared ahead (no process) for an autodelete template without a warm pool', () => {
  it('prepares accounts ahead, starts the next task on one, refills them, keeps to maxInstances and removes them at shutdown', async () => {
    const made = layout({ maxInstances: 1, prepared: 2 });
    const up = startWarren(made.args('up', '--kill-grace', '1s'));
    running.push(up);
    await waitFor('two oneshot accounts prepared ahead', () => accounts(made).length === 2, WAIT_MS);
    const prepared = new Set(accounts(made).map((a) => a.name));
    // Prepared, not started: no process, no agent of the template.
    expect(audit(made, '--action', 'agent.start').filter((r) => r.object.startsWith('agent:oneshot-'))).toEqual([]);
    expect(homes(made).sort()).toEqual([...prepared].sort());

    writeFileSync(join(made.dir, 'kanban', 'tasks', 'now.md'), oneshotTask('now', 'echo ran as $(id -un) $(test -e "$HOME/.warren/nats.json" && echo with || echo without) nats credentials'));
    await waitFor('the task done', () => /^status: done$/m.test(made.file('now')), WAIT_MS);
    const assigned = audit(made, '--action', 'task.assign', '--object', 'task:now');
    expect(assigned).toHaveLength(1);
    const taker = String(assigned[0]!.details.agent);
    // The fast path: the task went to an account prepared before the task existed.
    expect(prepared.has(taker), `${taker} not among ${[...prepared].join(', ')}`).toBe(true);
    // A per-task agent on this host gets no NATS user (its sandbox has no network): no
    // nats.json, and no reload of nats-server's users for it.
    expect(made.file('now')).toMatch(new RegExp(`^result: ran as ${taker} without nats credentials$`, 'm'));
    const reloads = audit(made, '--action', 'broker.users');
    expect(reloads.filter((r) => (r.details.changed as string[]).some((name) => name.startsWith('oneshot-')))).toEqual([]);

    // The used agent is deleted and another is prepared in its place.
    await waitFor('the used agent deleted and two prepared again', () => {
      const names = accounts(made).map((a) => a.name);
      return names.length === 2 && !names.includes(taker) && audit(made, '--action', 'account.delete', '--object', `agent:${taker}`).length === 1;
    }, WAIT_MS);

    // Three tasks at once with maxInstances 1: prepared agents become instances one at a time.
    for (const id of ['b1', 'b2', 'b3']) writeFileSync(join(made.dir, 'kanban', 'tasks', `${id}.md`), oneshotTask(id, 'true'));
    await waitFor('the three tasks done', () => ['b1', 'b2', 'b3'].every((id) => /^status: done$/m.test(made.file(id))), WAIT_MS);
    let live = 0;
    let most = 0;
    for (const row of audit(made)) {
      if (!row.object.startsWith('agent:oneshot-')) continue;
      if (row.action === 'agent.start') most = Math.max(most, ++live);
      if (row.action === 'agent.stop' || row.action === 'agent.exit') live -= 1;
    }
    expect(most).toBe(1);

    up.child.kill('SIGTERM');
    const exit = await up.done;
    expect(exit.code, exit.stderr.slice(-3000)).toBe(0);
    // Nothing of a prepared agent is left: no account, no home.
    expect(accounts(made)).toEqual([]);
    expect(homes(made)).toEqual([]);
  }, 900_000);

  it('removes what a SIGKILLed supervisor had prepared at the next start, also when the template is gone', async () => {
    const made = layout({ maxInstances: 2 });
    const first = startWarren(made.args('up', '--kill-grace', '1s'));
    running.push(first);
    // The default for an autodelete template without a warm pool: one agent prepared ahead.
    await waitFor('one oneshot account prepared ahead', () => accounts(made).length === 1, WAIT_MS);
    first.child.kill('SIGKILL');
    await first.done;
    running.splice(running.indexOf(first), 1);
    expect(accounts(made)).toHaveLength(1);
    const left = accounts(made)[0]!.name;

    rmSync(join(made.dir, 'agents', 'oneshot.yaml'));
    const second = startWarren(made.args('up', '--kill-grace', '1s'));
    running.push(second);
    await waitFor('the account left behind removed', () => accounts(made).length === 0 && homes(made).length === 0, WAIT_MS).catch((error: unknown) => {
      // Say what is left and what the supervisor said about it.
      const said = second.stderr().split('\n').filter((line) => line.includes(left) || /"level":(40|50)/.test(line));
      throw new Error(`${(error as Error).message}: accounts ${JSON.stringify(accounts(made).map((a) => a.name))}, homes ${JSON.stringify(homes(made))}\n${said.slice(-20).join('\n')}`);
    });
    expect(audit(made, '--action', 'account.delete', '--object', `agent:${left}`)).toHaveLength(1);
    second.child.kill('SIGTERM');
    expect((await second.done).code).toBe(0);
    running.splice(running.indexOf(second), 1);
  }, 900_000);

  it.each([0, undefined])('a run until idle works the board and leaves no account (prepared: %s)', async (prepared) => {
    const made = layout({ maxInstances: 2, ...(prepared === undefined ? {} : { prepared }) });
    for (const id of ['x', 'y', 'z']) writeFileSync(join(made.dir, 'kanban', 'tasks', `${id}.md`), oneshotTask(id, 'true'));
    const run = await warren(made.args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    for (const id of ['x', 'y', 'z']) expect(made.file(id)).toMatch(/^status: done$/m);
    expect(accounts(made)).toEqual([]);
    expect(homes(made)).toEqual([]);
  }, 900_000);
});

import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireMachine, waitFor } from '../support/cli.js';
import {
  agentAccounts,
  agentProcesses,
  agentUids,
  boardStatus,
  checkInvariants,
  countStatus,
  finish,
  makeLayout,
  RestartableNats,
  shellTask,
  startRun,
  waitForRun,
} from './support.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

beforeAll(() => requireMachine());

function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

describe('the broker killed with SIGKILL', () => {
  it('during publishing and again during consumption: restarted on the same port and store, the run finishes with the invariants', async () => {
    const nats = await RestartableNats.start();
    cleanups.push(() => nats.close());
    const tasks = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`b${i + 1}`, shellTask(`b${i + 1}`, 'sleep 0.2')]));
    const layout = makeLayout({ tasks, natsUrl: nats.url, maxInstances: 2, wipPerInstance: 4 });
    cleanups.push(() => layout.remove());
    const run = startRun(layout);
    cleanups.push(() => {
      if (run.child.exitCode === null && run.child.signalCode === null && run.child.pid !== undefined) process.kill(run.child.pid, 'SIGKILL');
    });

    // During publishing: as soon as the first assignment shows on the board.
    await waitFor('the first task in progress', () => countStatus(layout, 'in_progress') + countStatus(layout, 'done') > 0, 60_000);
    await nats.kill();
    await waitFor('the supervisor to see the broker go', () => occurrences(run.stderr(), 'disconnected from NATS') >= 1, 30_000);
    await nats.restart();

    // During consumption: once results are flowing again.
    const doneBefore = countStatus(layout, 'done');
    await waitForRun(layout, run, 'five more tasks done after the broker restarted', () => countStatus(layout, 'done') >= Math.min(doneBefore + 5, 35), 90_000);
    await nats.kill();
    await waitFor('the supervisor to see the broker go again', () => occurrences(run.stderr(), 'disconnected from NATS') >= 2, 30_000);
    await nats.restart();

    await waitForRun(layout, run, 'every task done after the second broker restart', () => countStatus(layout, 'done') === 40, 120_000);
    const end = await finish(run, 60_000);
    expect(end.code, end.stderr.slice(-4000)).toBe(0);
    expect(nats.kills).toBe(2);
    expect(agentProcesses(layout, await agentUids(layout))).toEqual([]);
    const report = await checkInvariants(layout);
    expect(report.violations).toEqual([]);
    expect(report.succeeded.size).toBe(40);
  }, 300_000);
});

describe('an agent killed with SIGKILL mid-task', () => {
  it('has its task re-queued and finished by another execution, with exactly one completion', async () => {
    const nats = await RestartableNats.start();
    cleanups.push(() => nats.close());
    const tasks = {
      victim: shellTask('victim', 'sleep 3'),
      ...Object.fromEntries(Array.from({ length: 3 }, (_, i) => [`bystander-${i + 1}`, shellTask(`bystander-${i + 1}`, 'true')])),
    };
    const layout = makeLayout({ tasks, natsUrl: nats.url, maxInstances: 2, wipPerInstance: 2 });
    cleanups.push(() => layout.remove());
    const run = startRun(layout);
    cleanups.push(() => {
      if (run.child.exitCode === null && run.child.signalCode === null && run.child.pid !== undefined) process.kill(run.child.pid, 'SIGKILL');
    });

    await waitFor('the victim in progress', () => boardStatus(layout, 'victim').status === 'in_progress', 60_000);
    const agent = boardStatus(layout, 'victim').assignee!;
    const uid = (await agentAccounts(layout)).get(agent);
    expect(uid, `account of ${agent}`).toBeTypeOf('number');
    const uids = new Set([uid!]);
    // The task's own process (`sleep 3`) runs under the agent's uid once the runner has started it.
    await waitFor(`the task's processes under uid ${uid}`, () => agentProcesses(layout, uids).length >= 2, 30_000);
    const victims = agentProcesses(layout, uids);
    for (const pid of victims) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // ended meanwhile
      }
    }

    const end = await finish(run, 120_000);
    expect(end.code, end.stderr.slice(-4000)).toBe(0);
    expect(agentProcesses(layout, await agentUids(layout))).toEqual([]);
    const report = await checkInvariants(layout);
    expect(report.violations).toEqual([]);
    expect(report.succeeded.size).toBe(4);
    const rows = report.audit.filter((r) => r.object === 'task:victim');
    const completes = rows.filter((r) => r.action === 'task.complete');
    expect(completes).toHaveLength(1);
    expect(completes[0]!.details?.attempt).toBe(2);
    expect(rows.filter((r) => r.action === 'task.requeue').map((r) => r.details?.attempt)).toEqual([1]);
    expect(report.audit.some((r) => r.action === 'agent.exit' && r.object === `agent:${agent}`)).toBe(true);
  }, 180_000);
});

import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireMachine } from '../support/cli.js';
import { checkInvariants, killAtAndRestart, makeLayout, recoveredRows, RestartableNats, shellTask } from './support.js';

// The tick's durability barrier (services/supervisor/src/executions/barrier.ts): the inbox's
// results and the plan's assignments commit without an fsync, one fsync follows them, and only
// then are results acknowledged on the broker, assignments published and cards written. A
// supervisor killed on either side of that fsync must lose nothing and do nothing twice.

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

beforeAll(() => requireMachine());

const TASKS = 6;

interface RecoveredDetails {
  resultsApplied: number;
  lostExecutions: string[];
  failed: string[];
  pendingBoardWrites: number;
}

async function crashAtBarrier(point: 'barrier.pending' | 'barrier.passed'): Promise<void> {
  const nats = await RestartableNats.start();
  cleanups.push(() => nats.close());
  const prefix = point.replace('.', '-');
  const tasks = Object.fromEntries(Array.from({ length: TASKS }, (_, i) => [`${prefix}-${i + 1}`, shellTask(`${prefix}-${i + 1}`, 'echo done > out.txt')]));
  const layout = makeLayout({ tasks, natsUrl: nats.url });
  cleanups.push(() => layout.remove());

  await killAtAndRestart(layout, point);

  const report = await checkInvariants(layout);
  // Nothing lost (every task succeeded), nothing done twice (one task.complete per task, one
  // board.write of its final column, no result applied twice: checkInvariants).
  expect(report.violations).toEqual([]);
  expect(report.succeeded.size).toBe(TASKS);
  const rows = recoveredRows(report.audit);
  expect(rows).toHaveLength(2);
  const restart = rows[1]!;
  const details = restart.details as unknown as RecoveredDetails;
  expect(details.failed).toEqual([]);
  const beforeCrash = report.audit.filter((r) => r.seq < restart.seq);
  // The crash came in a tick that had applied results: they were committed (a killed process
  // loses no frame SQLite wrote), their cards not yet written, their executions not lost.
  const committed = beforeCrash.filter((r) => r.action === 'task.complete');
  expect(committed.length).toBeGreaterThanOrEqual(1);
  for (const row of committed) {
    const taskId = row.object.slice(5);
    expect(report.audit.filter((r) => r.action === 'task.complete' && r.object === `task:${taskId}`)).toEqual([row]);
    expect(details.lostExecutions.some((l) => l.startsWith(`${taskId}:`))).toBe(false);
    expect(beforeCrash.some((r) => r.action === 'board.write' && r.object === `task:${taskId}` && r.details?.status === 'done')).toBe(false);
  }
  expect(details.pendingBoardWrites).toBeGreaterThanOrEqual(committed.length);
}

describe('a supervisor killed at its tick barrier loses nothing and does nothing twice', () => {
  it('barrier.pending: results committed without an fsync, not acknowledged: delivered again, applied once', async () => {
    await crashAtBarrier('barrier.pending');
  }, 240_000);

  it('barrier.passed: results synced, not acknowledged: delivered again, applied once, cards written once', async () => {
    await crashAtBarrier('barrier.passed');
  }, 240_000);
});

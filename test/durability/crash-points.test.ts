import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireMachine } from '../support/cli.js';
import {
  checkInvariants,
  killAtAndRestart,
  makeLayout,
  recoveredRows,
  RestartableNats,
  shellTask,
  tempFiles,
  type AuditRow,
  type Layout,
} from './support.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

beforeAll(() => requireMachine());

/** A board per crash point: tasks that make the point reach (a `sleep 1` for mid-run). */
const boards: Record<string, { command: string; count: number }> = {
  'assign.committed': { command: 'true', count: 4 },
  'assign.published': { command: 'true', count: 4 },
  'task.acked': { command: 'true', count: 4 },
  'task.running': { command: 'sleep 1', count: 3 },
  'result.committed': { command: 'echo done > out.txt', count: 4 },
  'board.writing': { command: 'true', count: 3 },
};

async function crashThenRecover(point: string): Promise<{ layout: Layout; audit: readonly AuditRow[]; recovered: AuditRow; beforeCrash: readonly AuditRow[] }> {
  const nats = await RestartableNats.start();
  cleanups.push(() => nats.close());
  const { command, count } = boards[point]!;
  const tasks = Object.fromEntries(Array.from({ length: count }, (_, i) => [`${point.replace('.', '-')}-${i + 1}`, shellTask(`${point.replace('.', '-')}-${i + 1}`, command)]));
  const layout = makeLayout({ tasks, natsUrl: nats.url });
  cleanups.push(() => layout.remove());

  await killAtAndRestart(layout, point);

  const report = await checkInvariants(layout);
  // Soft: a broken invariant is reported together with the point's own checks below.
  expect.soft(report.violations).toEqual([]);
  expect(report.succeeded.size).toBe(count);
  // One `supervisor.recovered` row per start: the first run's (nothing to do) and the restart's.
  const rows = recoveredRows(report.audit);
  expect(rows).toHaveLength(2);
  expect(report.audit.filter((r) => r.action === 'supervisor.start')).toHaveLength(2);
  const restart = rows[1]!;
  const beforeCrash = report.audit.filter((r) => r.seq < restart.seq);
  return { layout, audit: report.audit, recovered: restart, beforeCrash };
}

interface RecoveredDetails {
  resultsApplied: number;
  lostExecutions: string[];
  requeued: string[];
  failed: string[];
  assignmentsPurged: number;
  tempFilesRemoved: string[];
  pendingBoardWrites: number;
}

/**
 * Checks that every execution the crash lost was re-queued and finished by a later attempt.
 * @param mayFinish when an execution may have finished before its agent died with the supervisor:
 *   its result, already on the broker, is then applied at recovery instead of the execution being
 *   lost, and either outcome is right.
 */
function expectLostRequeued(audit: readonly AuditRow[], details: RecoveredDetails, mayFinish = false): void {
  if (mayFinish) expect(details.lostExecutions.length + details.resultsApplied).toBeGreaterThan(0);
  else expect(details.lostExecutions.length).toBeGreaterThan(0);
  expect(details.failed).toEqual([]);
  for (const lost of details.lostExecutions) {
    const [taskId, attempt] = [lost.slice(0, lost.lastIndexOf(':')), Number(lost.slice(lost.lastIndexOf(':') + 1))];
    expect(details.requeued).toContain(taskId);
    const complete = audit.filter((r) => r.action === 'task.complete' && r.object === `task:${taskId}`);
    expect(complete).toHaveLength(1);
    expect(complete[0]!.details?.attempt).toBeGreaterThan(attempt);
    expect(audit.some((r) => r.action === 'task.requeue' && r.object === `task:${taskId}` && r.details?.attempt === attempt)).toBe(true);
  }
}

describe('a supervisor killed with SIGKILL at a fault-injection point loses nothing', () => {
  it('assign.committed: the committed execution is lost, re-queued and finished once', async () => {
    const { audit, recovered, beforeCrash } = await crashThenRecover('assign.committed');
    const details = recovered.details as unknown as RecoveredDetails;
    expectLostRequeued(audit, details);
    // It died right after the first tick's assignments were committed (one group commit):
    // nothing was published, so nothing ran.
    expect(beforeCrash.filter((r) => r.action === 'task.assign').length).toBeGreaterThan(0);
    expect(beforeCrash.filter((r) => r.action === 'task.start')).toHaveLength(0);
  }, 240_000);

  it('assign.published: the published execution is lost, purged from the broker and finished once', async () => {
    const { audit, recovered, beforeCrash } = await crashThenRecover('assign.published');
    const details = recovered.details as unknown as RecoveredDetails;
    expectLostRequeued(audit, details);
    expect(beforeCrash.filter((r) => r.action === 'task.start')).toHaveLength(0);
  }, 240_000);

  it('task.acked: the started execution is lost with its agent, re-queued and finished once', async () => {
    const { audit, recovered, beforeCrash } = await crashThenRecover('task.acked');
    const details = recovered.details as unknown as RecoveredDetails;
    expectLostRequeued(audit, details, true);
    const started = beforeCrash.filter((r) => r.action === 'task.start').map((r) => `${r.object.slice(5)}:${String(r.details?.attempt)}`);
    expect(started.length).toBeGreaterThan(0);
    // Each started execution either was lost (and re-queued) or finished and had its result applied once.
    for (const s of started) {
      const [taskId, attempt] = [s.slice(0, s.lastIndexOf(':')), Number(s.slice(s.lastIndexOf(':') + 1))];
      const completedThen = audit.some((r) => r.action === 'task.complete' && r.object === `task:${taskId}` && r.details?.attempt === attempt);
      expect(details.lostExecutions.includes(s) || completedThen, s).toBe(true);
    }
  }, 240_000);

  it('task.running: executions killed mid-run are re-queued and finished once', async () => {
    const { audit, recovered, beforeCrash } = await crashThenRecover('task.running');
    const details = recovered.details as unknown as RecoveredDetails;
    expectLostRequeued(audit, details);
    expect(beforeCrash.filter((r) => r.action === 'task.complete')).toHaveLength(0);
  }, 240_000);

  it('result.committed: the applied result is not applied again and its board write happens once', async () => {
    const { audit, recovered, beforeCrash } = await crashThenRecover('result.committed');
    const details = recovered.details as unknown as RecoveredDetails;
    // Results are applied in batches: every result of the batch was committed before the crash.
    const committed = beforeCrash.filter((r) => r.action === 'task.complete');
    expect(committed.length).toBeGreaterThanOrEqual(1);
    for (const row of committed) {
      const taskId = row.object.slice(5);
      // Committed before the crash: no later attempt ran, and the board got it after the restart.
      expect(audit.filter((r) => r.action === 'task.complete' && r.object === `task:${taskId}`)).toEqual([row]);
      expect(details.lostExecutions.some((l) => l.startsWith(`${taskId}:`))).toBe(false);
      expect(beforeCrash.some((r) => r.action === 'board.write' && r.object === `task:${taskId}` && r.details?.status === 'done')).toBe(false);
    }
    expect(details.pendingBoardWrites).toBeGreaterThanOrEqual(committed.length);
  }, 240_000);

  it('board.writing: the half-written temp file is removed and the task file is written whole', async () => {
    const { layout, recovered, beforeCrash } = await crashThenRecover('board.writing');
    const details = recovered.details as unknown as RecoveredDetails;
    expect(details.tempFilesRemoved).toHaveLength(1);
    expect(details.tempFilesRemoved[0]).toMatch(/^\.board-writing-\d\.md\.\d+\.[0-9a-f]{12}\.tmp$/);
    expect(tempFiles(layout)).toEqual([]);
    expect(beforeCrash.filter((r) => r.action === 'board.write')).toHaveLength(0);
  }, 240_000);
});

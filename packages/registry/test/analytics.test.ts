import { describe, expect, it } from 'vitest';
import * as registry from '@warren/registry';
import { durationStats } from '@warren/registry';

describe('durationStats', () => {
  it('gives count, total, mean and nearest-rank percentiles', () => {
    const table: [number[], ReturnType<typeof durationStats>][] = [
      [[], { count: 0, totalMs: 0, meanMs: null, p50Ms: null, p95Ms: null, maxMs: null }],
      [[7], { count: 1, totalMs: 7, meanMs: 7, p50Ms: 7, p95Ms: 7, maxMs: 7 }],
      [[30, 10, 20], { count: 3, totalMs: 60, meanMs: 20, p50Ms: 20, p95Ms: 30, maxMs: 30 }],
      [[4, 1, 3, 2], { count: 4, totalMs: 10, meanMs: 2.5, p50Ms: 2, p95Ms: 4, maxMs: 4 }],
      [Array.from({ length: 100 }, (_, i) => 100 - i), { count: 100, totalMs: 5050, meanMs: 50.5, p50Ms: 50, p95Ms: 95, maxMs: 100 }],
      [[0, 0, 5], { count: 3, totalMs: 5, meanMs: 5 / 3, p50Ms: 0, p95Ms: 5, maxMs: 5 }],
    ];
    for (const [values, expected] of table) expect([values.length, durationStats(values)]).toEqual([values.length, expected]);
  });
});

describe('the public surface', () => {
  it('exports these values, and no others', () => {
    expect(Object.keys(registry).sort()).toEqual([
      'AssignmentState', 'CommandKind', 'CommandQueue', 'MAX_USAGE_BUCKETS', 'ManagerLedger', 'MessageLedger', 'Registry', 'RegistryError', 'SUPERVISOR_PID_FILE', 'ScheduleLedger', 'StateStore',
      'TOPIC_RECIPIENT', 'TaskState', 'UsageLedger', 'agentRow', 'analyticsOf', 'assignmentRow', 'commandRequest', 'durationStats', 'executionFacts',
      'isCommandKind', 'isTerminal', 'migrateManagers', 'migrateMessages', 'migrateSchedules', 'migrateState', 'migrateUsage', 'openRegistry', 'queuePositions', 'runCommands', 'runningSupervisorPid',
      'taskRow', 'taskUsage', 'timeSeries', 'usageReport', 'utilisation',
    ]);
  });
});

describe('timeSeries and utilisation', () => {
  const view = (taskId: string, attempt: number, agent: string, assignedMs: number, finishedMs: number | null, outcome: string | null, readySinceMs = assignedMs - 10): registry.ExecutionView => ({
    taskId, attempt, agent, template: agent.replace(/-\d+$/, ''), state: finishedMs === null ? 'acked' : 'finished', outcome, exitCode: null, summary: '', outputs: [],
    readySinceMs, assignedMs, ackedMs: assignedMs, finishedMs,
    waitingMs: assignedMs - readySinceMs, startingMs: 0, runningMs: finishedMs === null ? null : finishedMs - assignedMs,
  });

  it('buckets finished executions by finish time, empty buckets included, newest kept', () => {
    const executions = [
      view('a', 1, 'shell-1', 0, 900, 'succeeded'),
      view('b', 1, 'shell-1', 100, 1500, 'failed'),
      view('b', 2, 'shell-2', 1600, 3200, 'succeeded'),
      view('c', 1, 'shell-2', 3300, null, null),
    ];
    expect(registry.timeSeries(executions, 1000)).toEqual([
      { startMs: 0, finished: 1, succeeded: 1, failed: 0, retried: 0, p50WaitMs: 10, p95WaitMs: 10, p50RunMs: 900, p95RunMs: 900 },
      { startMs: 1000, finished: 1, succeeded: 0, failed: 1, retried: 0, p50WaitMs: 10, p95WaitMs: 10, p50RunMs: 1400, p95RunMs: 1400 },
      { startMs: 2000, finished: 0, succeeded: 0, failed: 0, retried: 0, p50WaitMs: null, p95WaitMs: null, p50RunMs: null, p95RunMs: null },
      { startMs: 3000, finished: 1, succeeded: 1, failed: 0, retried: 1, p50WaitMs: 10, p95WaitMs: 10, p50RunMs: 1600, p95RunMs: 1600 },
    ]);
    expect(registry.timeSeries(executions, 1000, 2).map((b) => b.startMs)).toEqual([2000, 3000]);
    expect(registry.timeSeries([], 1000)).toEqual([]);
    // Over a window: every bucket from its start to its end, executions outside it left out.
    expect(registry.timeSeries(executions, 1000, 500, { fromMs: 1000, toMs: 4500 }).map((b) => [b.startMs, b.finished])).toEqual([[1000, 1], [2000, 0], [3000, 1], [4000, 0]]);
    expect(registry.timeSeries([], 1000, 500, { fromMs: 0, toMs: 1999 }).map((b) => b.finished)).toEqual([0, 0]);
    expect(() => registry.timeSeries(executions, 0)).toThrow(RangeError);
  });

  it('gives each template and agent its busy share of the time since its first assignment', () => {
    const executions = [view('a', 1, 'shell-1', 0, 1000, 'succeeded'), view('b', 1, 'shell-2', 0, 500, 'succeeded'), view('c', 1, 'shell-2', 1500, null, null)];
    expect(registry.utilisation(executions, 2000)).toEqual([
      { template: 'shell', busyMs: 2000, spanMs: 2000, ratio: 0.5 },
      { template: 'shell', agent: 'shell-1', busyMs: 1000, spanMs: 1000, ratio: 1 },
      { template: 'shell', agent: 'shell-2', busyMs: 1000, spanMs: 2000, ratio: 0.5 },
    ]);
  });
});

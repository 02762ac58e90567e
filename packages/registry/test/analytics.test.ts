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
      'AssignmentState', 'CommandKind', 'CommandQueue', 'Registry', 'RegistryError', 'SUPERVISOR_PID_FILE', 'StateStore', 'TaskState',
      'agentRow', 'analyticsOf', 'assignmentRow', 'commandRequest', 'durationStats', 'executionFacts', 'isCommandKind', 'isTerminal',
      'migrateState', 'openRegistry', 'queuePositions', 'runCommands', 'runningSupervisorPid', 'taskRow',
    ]);
  });
});

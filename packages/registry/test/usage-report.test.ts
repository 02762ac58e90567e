import { describe, expect, it } from 'vitest';
import { openAudit } from '@warren/audit';
import { taskUsage, usageReport, UsageLedger, type LlmUsageRow, type RegistryError } from '@warren/registry';
import { open, tempDir } from './support.js';

const row = (over: Partial<LlmUsageRow>): LlmUsageRow => ({
  tsMs: 10_000,
  agent: 'coder-1',
  template: 'coder',
  taskId: 't1',
  attempt: 1,
  provider: 'anthropic',
  model: 'claude-x',
  inputTokens: 100,
  outputTokens: 10,
  costUsd: 0.5,
  status: 200,
  durationMs: 20,
  ...over,
});

/** A database with usage rows over 0–60 s and two refusals in the audit trail. */
function seeded() {
  const db = open(`${tempDir()}/warren.db`);
  const ledger = new UsageLedger(db);
  ledger.record(row({ tsMs: 1_000 }));
  ledger.record(row({ tsMs: 2_500, attempt: 2, agent: 'coder-2', inputTokens: 200, outputTokens: 20, costUsd: 1 }));
  ledger.record(row({ tsMs: 2_600, attempt: 2, agent: 'coder-2', provider: 'openai', model: 'gpt-y', inputTokens: 50, outputTokens: 5, costUsd: 0.25 }));
  ledger.record(row({ tsMs: 3_000, attempt: 2, agent: 'coder-2', status: 429, inputTokens: 0, outputTokens: 0, costUsd: 0 }));
  ledger.record(row({ tsMs: 4_000, taskId: 't2', agent: 'writer-1', template: 'writer', provider: 'openai', model: 'gpt-y', inputTokens: 1_000, outputTokens: 100, costUsd: 3 }));
  ledger.record(row({ tsMs: 5_000, taskId: null, attempt: null, agent: 'coder-1', inputTokens: 7, outputTokens: 3, costUsd: 0 }));
  ledger.record(row({ tsMs: 60_000, taskId: 't3', agent: 'coder-1', inputTokens: 1, outputTokens: 1, costUsd: 0.01 }));
  let clock = 2_000;
  const audit = openAudit(db, { clock: () => clock });
  audit.append({ actor: 'agent:coder-1', action: 'llm.refused', object: 'task:t1', details: { reason: 'budget_exceeded', provider: 'anthropic' } });
  clock = 3_000;
  audit.append({ actor: 'agent:coder-1', action: 'llm.refused', object: 'task:t1', details: { reason: 'budget_exceeded' } });
  audit.append({ actor: 'agent:writer-1', action: 'llm.refused', object: 'task:t2', details: { reason: 'provider_not_allowed' } });
  clock = 70_000;
  audit.append({ actor: 'agent:writer-1', action: 'llm.refused', object: 'task:t2', details: {} });
  audit.append({ actor: 'supervisor', action: 'task.assign', object: 'task:t2', details: { reason: 'not a refusal' } });
  return db;
}

describe('usageReport', () => {
  it('sums every call per agent, template, task and model, most expensive first', () => {
    const report = usageReport(seeded());
    expect(report.range).toBeNull();
    expect(report.total).toEqual({ calls: 7, inputTokens: 1_358, outputTokens: 139, costUsd: 4.76, failedCalls: 1 });
    expect(report.templates).toEqual([
      { template: 'writer', calls: 1, inputTokens: 1_000, outputTokens: 100, costUsd: 3, failedCalls: 0 },
      { template: 'coder', calls: 6, inputTokens: 358, outputTokens: 39, costUsd: 1.76, failedCalls: 1 },
    ]);
    expect(report.agents.map((a) => [a.agent, a.template, a.calls, a.costUsd])).toEqual([
      ['writer-1', 'writer', 1, 3],
      ['coder-2', 'coder', 3, 1.25],
      ['coder-1', 'coder', 3, 0.51],
    ]);
    expect(report.tasks).toEqual([
      { taskId: 't2', attempts: 1, agent: 'writer-1', template: 'writer', calls: 1, inputTokens: 1_000, outputTokens: 100, costUsd: 3, failedCalls: 0 },
      { taskId: 't1', attempts: 2, agent: 'coder-2', template: 'coder', calls: 4, inputTokens: 350, outputTokens: 35, costUsd: 1.75, failedCalls: 1 },
      { taskId: 't3', attempts: 1, agent: 'coder-1', template: 'coder', calls: 1, inputTokens: 1, outputTokens: 1, costUsd: 0.01, failedCalls: 0 },
    ]);
    expect(report.models.map((m) => [m.provider, m.model, m.calls, m.costUsd])).toEqual([
      ['openai', 'gpt-y', 2, 3.25],
      ['anthropic', 'claude-x', 5, 1.51],
    ]);
    expect(report.refusals).toEqual({
      total: 4,
      byReason: [
        { reason: 'budget_exceeded', count: 2 },
        { reason: 'provider_not_allowed', count: 1 },
        { reason: 'unknown', count: 1 },
      ],
    });
    // About 60 buckets over the calls' span (59 s): 1 s each, from the first call's to the last's.
    expect(report.bucketMs).toBe(1_000);
    expect(report.series).toHaveLength(60);
    expect(report.series[0]).toEqual({ startMs: 1_000, calls: 1, inputTokens: 100, outputTokens: 10, costUsd: 0.5 });
    expect(report.series[1]).toEqual({ startMs: 2_000, calls: 2, inputTokens: 250, outputTokens: 25, costUsd: 1.25 });
    expect(report.series.at(-1)).toEqual({ startMs: 60_000, calls: 1, inputTokens: 1, outputTokens: 1, costUsd: 0.01 });
    expect(report.series.reduce((n, b) => n + b.calls, 0)).toBe(7);
  });

  it('reads a range with buckets of the width asked, empty ones included, and keeps the top tasks', () => {
    const report = usageReport(seeded(), { range: { fromMs: 2_000, toMs: 5_999 }, bucketMs: 2_000, topTasks: 1 });
    expect(report.range).toEqual({ fromMs: 2_000, toMs: 5_999 });
    expect(report.total).toEqual({ calls: 5, inputTokens: 1_257, outputTokens: 128, costUsd: 4.25, failedCalls: 1 });
    expect(report.series).toEqual([
      { startMs: 2_000, calls: 3, inputTokens: 250, outputTokens: 25, costUsd: 1.25 },
      { startMs: 4_000, calls: 2, inputTokens: 1_007, outputTokens: 103, costUsd: 3 },
    ]);
    expect(report.tasks.map((t) => t.taskId)).toEqual(['t2']);
    expect(report.refusals.total).toBe(3);
    const empty = usageReport(seeded(), { range: { fromMs: 100_000, toMs: 105_000 }, bucketMs: 1_000 });
    expect(empty.total.calls).toBe(0);
    expect(empty.series.map((b) => b.startMs)).toEqual([100_000, 101_000, 102_000, 103_000, 104_000, 105_000]);
    expect(empty.series.every((b) => b.calls === 0 && b.costUsd === 0)).toBe(true);
  });

  it('keeps the newest 500 buckets of a long range', () => {
    const report = usageReport(seeded(), { range: { fromMs: 0, toMs: 1_000_000 }, bucketMs: 1_000 });
    expect(report.series).toHaveLength(500);
    expect(report.series[0]!.startMs).toBe(501_000);
    expect(report.series.at(-1)!.startMs).toBe(1_000_000);
  });

  it('answers zeros over a database without a ledger or audit trail', () => {
    const db = open(`${tempDir()}/empty.db`);
    const report = usageReport(db);
    expect(report).toMatchObject({ total: { calls: 0, costUsd: 0 }, agents: [], templates: [], tasks: [], models: [], series: [], refusals: { total: 0, byReason: [] } });
    expect(usageReport(db, { range: { fromMs: 0, toMs: 2_000 }, bucketMs: 1_000 }).series).toHaveLength(3);
    expect(taskUsage(db, 't1')).toEqual({ total: { calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, failedCalls: 0 }, attempts: [] });
  });

  it('refuses a range or bucket out of bounds, naming the field', () => {
    const db = seeded();
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        return [(error as RegistryError).code, (error as Error).message];
      }
      return undefined;
    };
    expect(code(() => usageReport(db, { range: { fromMs: 5, toMs: 4 } }))).toEqual(['WARREN_QUERY_INVALID', "'range.fromMs' (5) must not be after 'range.toMs' (4)"]);
    expect(code(() => usageReport(db, { bucketMs: 0 }))?.[1]).toMatch(/'bucketMs' must be a whole number ≥ 1/);
    expect(code(() => usageReport(db, { bucketMs: 1.5 }))?.[1]).toMatch(/'bucketMs'/);
    expect(code(() => usageReport(db, { topTasks: 0 }))?.[1]).toMatch(/'topTasks'/);
    expect(code(() => usageReport(db, { range: { fromMs: -1, toMs: 4 } }))?.[1]).toMatch(/'range.fromMs'/);
  });
});

describe('taskUsage', () => {
  it('gives the total and one line per attempt with its agent and models', () => {
    const usage = taskUsage(seeded(), 't1');
    expect(usage.total).toEqual({ calls: 4, inputTokens: 350, outputTokens: 35, costUsd: 1.75, failedCalls: 1 });
    expect(usage.attempts).toEqual([
      { attempt: 1, agent: 'coder-1', models: ['anthropic/claude-x'], firstMs: 1_000, lastMs: 1_000, calls: 1, inputTokens: 100, outputTokens: 10, costUsd: 0.5, failedCalls: 0 },
      { attempt: 2, agent: 'coder-2', models: ['anthropic/claude-x', 'openai/gpt-y'], firstMs: 2_500, lastMs: 3_000, calls: 3, inputTokens: 250, outputTokens: 25, costUsd: 1.25, failedCalls: 1 },
    ]);
    expect(taskUsage(seeded(), 'nope')).toEqual({ total: { calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, failedCalls: 0 }, attempts: [] });
  });
});

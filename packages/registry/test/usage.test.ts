import { describe, expect, it } from 'vitest';
import { openDatabase } from '@warren/store';
import { makeTempDir } from '@warren/testing';
import { UsageLedger, type LlmUsageRow } from '@warren/registry';

const row = (over: Partial<LlmUsageRow>): LlmUsageRow => ({
  tsMs: 1_000,
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

describe('UsageLedger', () => {
  it('sums the rows a filter selects, and survives reopening', async () => {
    await using dir = await makeTempDir('warren-usage-');
    const path = `${dir.path}/w.db`;
    let db = openDatabase(path);
    let ledger = new UsageLedger(db);
    expect(ledger.totals()).toEqual({ calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 });
    ledger.record(row({}));
    ledger.record(row({ attempt: 2, tsMs: 2_000 }));
    ledger.record(row({ agent: 'coder-2', taskId: null, attempt: null, tsMs: 3_000, inputTokens: 7, outputTokens: 3, costUsd: 0 }));
    ledger.record(row({ template: 'writer', agent: 'writer-1', taskId: 't2', tsMs: 4_000 }));
    expect(ledger.totals({ taskId: 't1', attempt: 1 })).toEqual({ calls: 1, inputTokens: 100, outputTokens: 10, costUsd: 0.5 });
    expect(ledger.totals({ template: 'coder' })).toEqual({ calls: 3, inputTokens: 207, outputTokens: 23, costUsd: 1 });
    expect(ledger.totals({ agent: 'coder-1', sinceMs: 1_500 }).calls).toBe(1);
    db.close();
    db = openDatabase(path);
    ledger = new UsageLedger(db);
    expect(ledger.totals().calls).toBe(4);
    db.close();
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { UsageLedger, type LlmUsageRow } from '@warren/registry';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import { checkBudgets, utcDayStartMs, type BudgetSubject } from '@warren/llm-gateway';

const NOW = Date.parse('2026-03-04T15:00:00Z');
let dir: string;
let db: SqliteDatabase;
let ledger: UsageLedger;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'warren-llm-budgets-'));
  db = openDatabase(join(dir, 'warren.db'));
  ledger = new UsageLedger(db);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const row = (fields: Partial<LlmUsageRow>): LlmUsageRow => ({
  tsMs: NOW - 1_000,
  agent: 'coder-1',
  template: 'coder',
  taskId: 't1',
  attempt: 1,
  provider: 'openai',
  model: 'm',
  inputTokens: 0,
  outputTokens: 0,
  costUsd: 0,
  status: 200,
  durationMs: 10,
  ...fields,
});

const subject = (budgets: BudgetSubject['budgets'], task: BudgetSubject['task'] = { taskId: 't1', attempt: 1 }): BudgetSubject => ({
  agent: 'coder-1',
  template: 'coder',
  task,
  budgets,
});

describe('budgets', () => {
  test('a task token budget is reached when the tokens used equal or pass it, not before', () => {
    ledger.record(row({ inputTokens: 30_000, outputTokens: 19_999 }));
    expect(checkBudgets(ledger, subject({ template: { taskTokens: 50_000 }, agent: {} }), NOW)).toBeNull();
    ledger.record(row({ inputTokens: 200, outputTokens: 14 }));
    expect(checkBudgets(ledger, subject({ template: { taskTokens: 50_000 }, agent: {} }), NOW)).toEqual({
      scope: 'template',
      period: 'task',
      measure: 'tokens',
      limit: 50_000,
      used: 50_213,
      message: 'task token budget of 50000 reached: 50213 used (template coder)',
    });
  });

  test('task budgets count only this execution: another attempt, task or agent does not', () => {
    ledger.record(row({ attempt: 0, inputTokens: 1_000 }));
    ledger.record(row({ taskId: 't2', inputTokens: 1_000 }));
    ledger.record(row({ agent: 'coder-2', inputTokens: 1_000 }));
    expect(checkBudgets(ledger, subject({ template: {}, agent: { taskTokens: 1_000 } }), NOW)).toBeNull();
    expect(checkBudgets(ledger, subject({ template: {}, agent: { taskTokens: 1_000 } }, null), NOW)).toBeNull();
  });

  test("the agent's task cost budget is checked in dollars", () => {
    ledger.record(row({ costUsd: 0.25 }));
    ledger.record(row({ costUsd: 0.3 }));
    expect(checkBudgets(ledger, subject({ template: {}, agent: { taskCostUsd: 0.5 } }), NOW)?.message).toBe(
      'task cost budget of $0.5000 reached: $0.5500 used (agent coder-1)',
    );
  });

  test("day budgets sum since UTC midnight: the template's over all its agents, the agent's over its own", () => {
    const midnight = utcDayStartMs(NOW);
    expect(midnight).toBe(Date.parse('2026-03-04T00:00:00Z'));
    ledger.record(row({ tsMs: midnight - 1, taskId: 'old', inputTokens: 10_000 }));
    ledger.record(row({ tsMs: midnight, taskId: 'a', inputTokens: 400 }));
    ledger.record(row({ agent: 'coder-2', taskId: 'b', inputTokens: 600, costUsd: 2 }));
    expect(checkBudgets(ledger, subject({ template: {}, agent: { dayTokens: 1_000 } }), NOW)).toBeNull();
    expect(checkBudgets(ledger, subject({ template: { dayTokens: 1_000 }, agent: {} }), NOW)).toMatchObject({
      scope: 'template',
      period: 'day',
      used: 1_000,
      message: 'day token budget of 1000 reached: 1000 used (template coder)',
    });
    expect(checkBudgets(ledger, subject({ template: { dayCostUsd: 2 }, agent: {} }, null), NOW)?.message).toBe(
      'day cost budget of $2.00 reached: $2.00 used (template coder)',
    );
    expect(checkBudgets(ledger, subject({ template: {}, agent: { dayTokens: 400 } }), NOW)?.message).toBe(
      'day token budget of 400 reached: 400 used (agent coder-1)',
    );
  });
});

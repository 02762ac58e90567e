import type { UsageFilter, UsageLedger, UsageTotals } from '@warren/registry';

/**
 * Limits on what an agent may spend through its gateway. Each field left out is no limit.
 * Tokens count input and output together; a day is a UTC calendar day.
 */
export interface LlmBudget {
  /** Tokens per task execution (one attempt). */
  readonly taskTokens?: number;
  /** US dollars per task execution. */
  readonly taskCostUsd?: number;
  /** Tokens per UTC day. */
  readonly dayTokens?: number;
  /** US dollars per UTC day. */
  readonly dayCostUsd?: number;
}

/** A budget found used up: which one, its limit and what was used, and a sentence saying so. */
export interface BudgetBreach {
  /** Whose budget: the template's (over all its agents, for a day) or the agent's. */
  readonly scope: 'template' | 'agent';
  readonly period: 'task' | 'day';
  readonly measure: 'tokens' | 'costUsd';
  readonly limit: number;
  readonly used: number;
  /** "task token budget of 50000 reached: 50213 used (template coder)". */
  readonly message: string;
}

/** What {@link checkBudgets} checks: whose call, which execution, which budgets. */
export interface BudgetSubject {
  readonly agent: string;
  readonly template: string;
  /** The running execution, or null between tasks (task budgets then do not apply). */
  readonly task: { readonly taskId: string; readonly attempt: number } | null;
  readonly budgets: { readonly template: LlmBudget; readonly agent: LlmBudget };
}

const DAY_MS = 86_400_000;

/** Start of the UTC day holding `nowMs`, in ms since the epoch. */
export function utcDayStartMs(nowMs: number): number {
  return Math.floor(nowMs / DAY_MS) * DAY_MS;
}

const formatMeasure = (measure: BudgetBreach['measure'], value: number): string =>
  measure === 'tokens' ? String(value) : `$${value.toFixed(value < 1 ? 4 : 2)}`;

/**
 * Checks the budgets of `subject` against the ledger before a call; a limit is reached when what
 * was used is ≥ the limit, so a call that crosses a limit completes and the next is refused.
 *
 * Task budgets (the template's and the agent's) sum the rows of this execution
 * (`agent`, `taskId`, `attempt`); day budgets sum the rows since UTC midnight of the agent, or of
 * every agent of the template. Checked in the order template then agent, task then day, tokens
 * then cost; the first breach is returned.
 * @param nowMs wall-clock time in ms since the epoch, for the day's start.
 * @returns the first budget used up, or null when the call may go.
 */
export function checkBudgets(ledger: UsageLedger, subject: BudgetSubject, nowMs: number): BudgetBreach | null {
  const cache = new Map<string, UsageTotals>();
  const totals = (filter: UsageFilter): UsageTotals => {
    const key = JSON.stringify(filter);
    let value = cache.get(key);
    if (!value) {
      value = ledger.totals(filter);
      cache.set(key, value);
    }
    return value;
  };
  const dayStartMs = utcDayStartMs(nowMs);
  for (const scope of ['template', 'agent'] as const) {
    const budget = subject.budgets[scope];
    for (const period of ['task', 'day'] as const) {
      let filter: UsageFilter;
      if (period === 'task') {
        if (!subject.task) continue;
        filter = { agent: subject.agent, taskId: subject.task.taskId, attempt: subject.task.attempt };
      } else {
        filter = scope === 'template' ? { template: subject.template, sinceMs: dayStartMs } : { agent: subject.agent, sinceMs: dayStartMs };
      }
      for (const measure of ['tokens', 'costUsd'] as const) {
        const limit = period === 'task' ? (measure === 'tokens' ? budget.taskTokens : budget.taskCostUsd) : measure === 'tokens' ? budget.dayTokens : budget.dayCostUsd;
        if (limit === undefined) continue;
        const sums = totals(filter);
        const used = measure === 'tokens' ? sums.inputTokens + sums.outputTokens : sums.costUsd;
        if (used < limit) continue;
        const whose = scope === 'template' ? `template ${subject.template}` : `agent ${subject.agent}`;
        const noun = measure === 'tokens' ? 'token' : 'cost';
        return {
          scope,
          period,
          measure,
          limit,
          used,
          message: `${period} ${noun} budget of ${formatMeasure(measure, limit)} reached: ${formatMeasure(measure, used)} used (${whose})`,
        };
      }
    }
  }
  return null;
}

import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics, type CreateMetricsOptions, type LlmCallSample, type WarrenMetrics } from '@warren/metrics';
import { find, value } from './exposition.js';

const open: WarrenMetrics[] = [];

function make(options: Partial<CreateMetricsOptions> = {}): WarrenMetrics {
  const metrics = createMetrics({ instance: 'warren-test', defaultMetrics: false, ...options });
  open.push(metrics);
  return metrics;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((m) => m.close()));
});

const call = (over: Partial<LlmCallSample> = {}): LlmCallSample => ({
  template: 'coder',
  provider: 'anthropic',
  model: 'claude-x',
  inputTokens: 1_000,
  outputTokens: 50,
  costUsd: 0.25,
  status: 200,
  ...over,
});

describe('LLM usage counters', () => {
  it('count tokens by direction and model, cost and calls by status, refusals by reason', async () => {
    const metrics = make();
    metrics.recordLlmCall(call());
    metrics.recordLlmCall(call({ inputTokens: 500, outputTokens: 25, costUsd: 0.125 }));
    metrics.recordLlmCall(call({ inputTokens: 0, outputTokens: 0, costUsd: 0, status: 429 }));
    metrics.recordLlmCall(call({ template: 'writer', provider: 'openai', model: 'gpt-y', inputTokens: 7, outputTokens: 3, costUsd: 0.5 }));
    metrics.recordLlmRefusal('budget_exceeded');
    metrics.recordLlmRefusal('budget_exceeded');
    metrics.recordLlmRefusal('provider_not_allowed');
    const text = (await metrics.text()).body;
    expect(value(text, 'warren_llm_tokens_total', { direction: 'input', template: 'coder', provider: 'anthropic', model: 'claude-x' })).toBe(1_500);
    expect(value(text, 'warren_llm_tokens_total', { direction: 'output', template: 'coder', provider: 'anthropic', model: 'claude-x' })).toBe(75);
    expect(value(text, 'warren_llm_tokens_total', { direction: 'input', template: 'writer', provider: 'openai', model: 'gpt-y' })).toBe(7);
    expect(value(text, 'warren_llm_cost_usd_total', { template: 'coder', provider: 'anthropic' })).toBe(0.375);
    expect(value(text, 'warren_llm_cost_usd_total', { template: 'writer', provider: 'openai' })).toBe(0.5);
    expect(value(text, 'warren_llm_calls_total', { template: 'coder', provider: 'anthropic', status: '200' })).toBe(2);
    expect(value(text, 'warren_llm_calls_total', { template: 'coder', provider: 'anthropic', status: '429' })).toBe(1);
    expect(value(text, 'warren_llm_refusals_total', { reason: 'budget_exceeded' })).toBe(2);
    expect(value(text, 'warren_llm_refusals_total', { reason: 'provider_not_allowed' })).toBe(1);
    // No agent or task label anywhere.
    for (const name of ['warren_llm_tokens_total', 'warren_llm_cost_usd_total', 'warren_llm_calls_total', 'warren_llm_refusals_total']) {
      for (const s of find(text, name)) expect(Object.keys(s.labels).filter((l) => l === 'agent' || l === 'task'), name).toEqual([]);
    }
  });

  it('keep their labels bounded: values past a bound count under _other, a status that is not one too', async () => {
    const metrics = make({ maxProviders: 1, maxModels: 2, maxRefusalReasons: 1, maxTemplates: 1 });
    metrics.recordLlmCall(call({ model: 'm1' }));
    metrics.recordLlmCall(call({ model: 'm2' }));
    metrics.recordLlmCall(call({ model: 'm3' }));
    metrics.recordLlmCall(call({ model: 'm4', provider: 'openai', template: 'writer' }));
    metrics.recordLlmCall(call({ model: 'm1', status: 0 }));
    metrics.recordLlmRefusal('budget_exceeded');
    metrics.recordLlmRefusal('provider_not_allowed');
    metrics.recordLlmRefusal('something_else');
    const text = (await metrics.text()).body;
    expect(find(text, 'warren_llm_tokens_total', { direction: 'input' }).map((s) => `${s.labels.template}/${s.labels.provider}/${s.labels.model}=${s.value}`).sort()).toEqual([
      '_other/_other/_other=1000',
      'coder/anthropic/_other=1000',
      'coder/anthropic/m1=2000',
      'coder/anthropic/m2=1000',
    ]);
    expect(find(text, 'warren_llm_calls_total').map((s) => `${s.labels.status}=${s.value}`).sort()).toEqual(['200=1', '200=3', '_other=1']);
    expect(find(text, 'warren_llm_refusals_total').map((s) => `${s.labels.reason}=${s.value}`).sort()).toEqual(['_other=2', 'budget_exceeded=1']);
  });

  it('add nothing for negative or non-finite counts, and nothing after close', async () => {
    const metrics = make();
    metrics.recordLlmCall(call({ inputTokens: -5, outputTokens: Number.NaN, costUsd: Number.POSITIVE_INFINITY }));
    const text = (await metrics.text()).body;
    expect(value(text, 'warren_llm_tokens_total', { direction: 'input' })).toBe(0);
    expect(value(text, 'warren_llm_tokens_total', { direction: 'output' })).toBe(0);
    expect(value(text, 'warren_llm_cost_usd_total')).toBe(0);
    expect(value(text, 'warren_llm_calls_total')).toBe(1);
    await metrics.close();
    metrics.recordLlmCall(call());
    metrics.recordLlmRefusal('budget_exceeded');
    expect((await metrics.text()).body.trim()).toBe('');
  });

  it('refuses a bound out of range, naming it', () => {
    expect(() => createMetrics({ instance: 'w', maxProviders: 0 })).toThrow(/'maxProviders' must be an integer ≥ 1/);
    expect(() => createMetrics({ instance: 'w', maxModels: 1.5 })).toThrow(/'maxModels'/);
    expect(() => createMetrics({ instance: 'w', maxRefusalReasons: -1 })).toThrow(/'maxRefusalReasons'/);
  });
});

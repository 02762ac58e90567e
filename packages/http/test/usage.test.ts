import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { loadPolicy } from '@warren/policy';
import { UsageLedger, type LlmUsageRow } from '@warren/registry';
import { createHttpApp } from '@warren/http';
import { INJECT_HOST, testApp } from './app-support.js';
import { POLICIES, taskRow } from './support.js';

const call = (over: Partial<LlmUsageRow>): LlmUsageRow => ({
  tsMs: 10_000,
  agent: 'coder-1',
  template: 'coder',
  taskId: 't1',
  attempt: 1,
  provider: 'anthropic',
  model: 'claude-x',
  inputTokens: 1_000,
  outputTokens: 200,
  costUsd: 0.75,
  status: 200,
  durationMs: 40,
  ...over,
});

/** Usage rows of two templates over 10–70 s and one budget refusal, as the gateway and the supervisor write them. */
function seed(t: Awaited<ReturnType<typeof testApp>>): void {
  const ledger = new UsageLedger(t.ports.db);
  ledger.record(call({}));
  ledger.record(call({ tsMs: 20_000, attempt: 2, agent: 'coder-2', inputTokens: 500, outputTokens: 100, costUsd: 0.5 }));
  ledger.record(call({ tsMs: 30_000, attempt: 2, agent: 'coder-2', status: 500, inputTokens: 0, outputTokens: 0, costUsd: 0 }));
  ledger.record(call({ tsMs: 70_000, taskId: 't2', agent: 'writer-1', template: 'writer', provider: 'openai', model: 'gpt-y', inputTokens: 3_000, outputTokens: 300, costUsd: 2 }));
  t.ports.emit({ actor: 'agent:coder-2', action: 'llm.refused', object: 'task:t1', details: { reason: 'budget_exceeded', limit: 'task.usd' } });
}

describe('GET /api/v1/usage', () => {
  test('answers the usage report: totals, per agent, template, task and model, the series and refusals', async () => {
    const t = await testApp();
    seed(t);
    const res = await t.app.inject({ url: '/api/v1/usage', headers: t.viewer });
    expect(res.statusCode).toBe(200);
    const body = res.json<Record<string, unknown> & { series: { startMs: number; calls: number }[] }>();
    expect(body).toMatchObject({
      range: null,
      bucketMs: 1_000,
      total: { calls: 4, inputTokens: 4_500, outputTokens: 600, costUsd: 3.25, failedCalls: 1 },
      templates: [
        { template: 'writer', calls: 1, costUsd: 2 },
        { template: 'coder', calls: 3, inputTokens: 1_500, outputTokens: 300, costUsd: 1.25, failedCalls: 1 },
      ],
      agents: [
        { agent: 'writer-1', template: 'writer', costUsd: 2 },
        { agent: 'coder-1', template: 'coder', costUsd: 0.75 },
        { agent: 'coder-2', template: 'coder', costUsd: 0.5 },
      ],
      tasks: [
        { taskId: 't2', attempts: 1, costUsd: 2 },
        { taskId: 't1', attempts: 2, calls: 3, costUsd: 1.25 },
      ],
      models: [
        { provider: 'openai', model: 'gpt-y', costUsd: 2 },
        { provider: 'anthropic', model: 'claude-x', costUsd: 1.25 },
      ],
      refusals: { total: 1, byReason: [{ reason: 'budget_exceeded', count: 1 }] },
    });
    expect(body.series).toHaveLength(61);
    expect(body.series.reduce((n, b) => n + b.calls, 0)).toBe(4);
  });

  test('from, to, bucket and top narrow the report; from alone runs to now', async () => {
    const t = await testApp({ now: () => 40_000 });
    seed(t);
    const ranged = (await t.app.inject({ url: '/api/v1/usage?from=15000&to=69999&bucket=10000&top=1', headers: t.viewer })).json<{
      range: unknown;
      total: { calls: number };
      series: { startMs: number; calls: number }[];
      tasks: { taskId: string }[];
    }>();
    expect(ranged.range).toEqual({ fromMs: 15_000, toMs: 69_999 });
    expect(ranged.total.calls).toBe(2);
    expect(ranged.series.map((b) => [b.startMs, b.calls])).toEqual([
      [10_000, 0],
      [20_000, 1],
      [30_000, 1],
      [40_000, 0],
      [50_000, 0],
      [60_000, 0],
    ]);
    expect(ranged.tasks.map((x) => x.taskId)).toEqual(['t1']);
    const sinceOnly = (await t.app.inject({ url: '/api/v1/usage?from=25000', headers: t.viewer })).json<{ range: unknown; total: { calls: number } }>();
    expect(sinceOnly.range).toEqual({ fromMs: 25_000, toMs: 40_000 });
    expect(sinceOnly.total.calls).toBe(1);
  });

  test('a bad query is 400 naming the field', async () => {
    const t = await testApp();
    for (const [query, field] of [
      ['from=abc', 'from'],
      ['bucket=0', 'bucket'],
      ['top=5000', 'top'],
      ['from=9&to=8', 'range.fromMs'],
    ] as const) {
      const res = await t.app.inject({ url: `/api/v1/usage?${query}`, headers: t.viewer });
      expect(res.statusCode, query).toBe(400);
      expect(res.json<{ error: string; message: string }>(), query).toMatchObject({ error: 'invalid_request' });
      expect(res.json<{ message: string }>().message, query).toContain(field);
    }
  });

  test('is described in the OpenAPI document with its query', async () => {
    const t = await testApp();
    const openapi = (await t.app.inject({ url: '/api/v1/openapi.json', headers: t.viewer })).json<{
      paths: Record<string, { get?: { parameters?: { name: string }[]; responses?: Record<string, unknown> } }>;
    }>();
    const usage = openapi.paths['/api/v1/usage']?.get;
    expect(usage?.parameters?.map((p) => p.name).sort()).toEqual(['bucket', 'from', 'to', 'top']);
    expect(Object.keys(usage?.responses ?? {})).toContain('200');
    expect(JSON.stringify(openapi.paths['/api/v1/tasks/{id}'])).toContain('failedCalls');
  });

  test('is 401 without a token, decided and audited as api:/api/v1/usage, and 403 where the policy denies it', async () => {
    const t = await testApp();
    expect((await t.app.inject({ url: '/api/v1/usage' })).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/api/v1/usage', headers: t.viewer })).statusCode).toBe(200);
    const decided = t.ports.registry.auditPage({ filter: { actor: 'user:vera', action: 'policy.decide', object: 'api:/api/v1/usage' }, newest: true }).rows;
    expect(decided.map((r) => r.decision)).toEqual(['allow']);

    // The repository's policy with one more line: viewers may not read usage.
    const policyPath = join(t.ports.dir, 'policy.csv');
    writeFileSync(policyPath, `${readFileSync(join(POLICIES, 'policy.csv'), 'utf8')}\np, role:viewer, api:/api/v1/usage, GET, deny\n`);
    const policy = await loadPolicy({ modelPath: join(POLICIES, 'model.conf'), policyPath });
    const strict = await createHttpApp(
      {
        ...t.ports,
        authorizer: {
          authorize({ principal, object, action }) {
            const explained = policy.explain(principal, object, action);
            return { allowed: explained.allowed, principal, object, action, rule: explained.rule };
          },
          grantRole: (principal, role) => policy.addRoleForSubject(principal, role),
          dropPrincipal: (principal) => policy.removeSubject(principal),
        },
      },
      { allowedHosts: [INJECT_HOST], rateLimit: false, validateResponses: true },
    );
    onTestFinished(() => strict.close());
    const refused = await strict.inject({ url: '/api/v1/usage', headers: t.viewer });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toEqual({ error: 'forbidden', message: 'policy denies user:vera GET on api:/api/v1/usage', rule: 'p, role:viewer, api:/api/v1/usage, GET, deny' });
    expect((await strict.inject({ url: '/api/v1/usage', headers: t.operator })).statusCode).toBe(200);
  });
});

describe('GET /api/v1/tasks/:id', () => {
  test('carries the task’s usage per attempt', async () => {
    const t = await testApp();
    seed(t);
    t.ports.registry.state.putTask(taskRow('t1', { state: 'running', attempt: 2, agent: 'coder-2' }));
    t.ports.registry.state.putTask(taskRow('quiet'));
    const res = await t.app.inject({ url: '/api/v1/tasks/t1', headers: t.viewer });
    expect(res.statusCode).toBe(200);
    expect(res.json<{ usage: unknown }>().usage).toEqual({
      total: { calls: 3, inputTokens: 1_500, outputTokens: 300, costUsd: 1.25, failedCalls: 1 },
      attempts: [
        { attempt: 1, agent: 'coder-1', models: ['anthropic/claude-x'], firstMs: 10_000, lastMs: 10_000, calls: 1, inputTokens: 1_000, outputTokens: 200, costUsd: 0.75, failedCalls: 0 },
        { attempt: 2, agent: 'coder-2', models: ['anthropic/claude-x'], firstMs: 20_000, lastMs: 30_000, calls: 2, inputTokens: 500, outputTokens: 100, costUsd: 0.5, failedCalls: 1 },
      ],
    });
    const quiet = (await t.app.inject({ url: '/api/v1/tasks/quiet', headers: t.viewer })).json<{ usage: unknown }>();
    expect(quiet.usage).toEqual({ total: { calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, failedCalls: 0 }, attempts: [] });
  });
});

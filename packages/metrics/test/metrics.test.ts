import { spawnSync } from 'node:child_process';
import { register as globalRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '@warren/core';
import * as api from '@warren/metrics';
import {
  ASSIGNMENT_LATENCY_BUCKETS_SECONDS,
  createMetrics,
  MetricsError,
  type AgentUsageSample,
  type CreateMetricsOptions,
  type WarrenMetrics,
} from '@warren/metrics';
import { find, helps, samples, types, value } from './exposition.js';

const open: WarrenMetrics[] = [];

/** A metrics object without prom-client's process metrics (their monitors outlive it), closed after the test. */
function make(options: Partial<CreateMetricsOptions> = {}): WarrenMetrics {
  const metrics = createMetrics({ instance: 'warren-test', version: '1.2.3', defaultMetrics: false, ...options });
  open.push(metrics);
  return metrics;
}

async function body(metrics: WarrenMetrics): Promise<string> {
  return (await metrics.text()).body;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((m) => m.close()));
});

describe('the public surface', () => {
  it('exports these values, and no others', () => {
    expect(Object.keys(api).sort()).toEqual([
      'ASSIGNMENT_LATENCY_BUCKETS_SECONDS', 'MetricsError', 'OVERFLOW_LABEL', 'SPAWN_LATENCY_BUCKETS_SECONDS', 'createMetrics', 'registrySources',
    ]);
  });
});

describe('the exposition', () => {
  it('lists every Warren metric with its type and help text, in the Prometheus text format 0.0.4', async () => {
    const metrics = make();
    const { contentType, body: text } = await metrics.text();
    expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(Object.fromEntries(types(text))).toEqual({
      warren_info: 'gauge',
      warren_tasks: 'gauge',
      warren_queue_length: 'gauge',
      warren_agents: 'gauge',
      warren_agent_cpu_seconds_total: 'counter',
      warren_agent_memory_bytes: 'gauge',
      warren_audit_rows: 'gauge',
      warren_events_total: 'counter',
      warren_assignment_latency_seconds: 'histogram',
      warren_spawn_latency_seconds: 'histogram',
      warren_llm_tokens_total: 'counter',
      warren_llm_cost_usd_total: 'counter',
      warren_llm_calls_total: 'counter',
      warren_llm_refusals_total: 'counter',
      warren_metrics_collect_errors_total: 'counter',
    });
    for (const [name, help] of helps(text)) expect(help.length, name).toBeGreaterThan(10);
    expect(value(text, 'warren_info', { warren_instance: 'warren-test', version: '1.2.3' })).toBe(1);
  });

  it("passes promtool's metric lint (naming, units, _total only on counters)", async () => {
    const metrics = make({
      sources: {
        tasksByState: () => ({ ready: 1 }),
        agentsByState: () => ({ running: 1 }),
        agentUsage: () => [{ agent: 'shell-1', template: 'shell', cpuMs: 5, memoryBytes: 6 }],
      },
      eventKinds: ['task.assign'],
    });
    metrics.observeAssignment('shell', 5);
    metrics.observeSpawn('shell', 50);
    metrics.recordLlmCall({ template: 'coder', provider: 'anthropic', model: 'claude-x', inputTokens: 10, outputTokens: 2, costUsd: 0.001, status: 200 });
    metrics.recordLlmRefusal('budget_exceeded');
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: await body(metrics), encoding: 'utf8' });
    if (lint.error) throw new Error(`promtool not found (${lint.error.message}): install it with \`apt-get install -y prometheus\``);
    expect(lint.stdout + lint.stderr).toBe('');
    expect(lint.status).toBe(0);
  });

  it("uses a registry of its own and never prom-client's global one", async () => {
    const metrics = createMetrics({ instance: 'warren-test' }); // with the default process metrics
    open.push(metrics);
    metrics.observeEvent('task.assign');
    const text = await body(metrics);
    expect(value(text, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(find(text, 'nodejs_heap_size_used_bytes')).toHaveLength(1);
    expect(globalRegistry.getMetricsAsArray().map((m) => m.name)).toEqual([]);
  });

  it('leaves the process metrics out when asked', async () => {
    const text = await body(make({ defaultMetrics: false }));
    expect(samples(text).filter((s) => !s.name.startsWith('warren_'))).toEqual([]);
  });
});

describe('gauges read on each scrape', () => {
  it('reports tasks by state as the callback says now, dropping states that emptied', async () => {
    let counts: Record<string, number> = { ready: 3, running: 1 };
    const metrics = make({ sources: { tasksByState: () => counts } });
    let text = await body(metrics);
    expect(value(text, 'warren_tasks', { state: 'ready' })).toBe(3);
    expect(value(text, 'warren_tasks', { state: 'running' })).toBe(1);
    counts = { done: 4 };
    text = await body(metrics);
    expect(find(text, 'warren_tasks').map((s) => [s.labels.state, s.value])).toEqual([['done', 4]]);
  });

  it('reports the queue length, agents by state and audit rows from sources given later', async () => {
    const metrics = make();
    expect(value(await body(metrics), 'warren_queue_length')).toBe(0);
    let queued = 7;
    metrics.setSources({ queueLength: () => queued, agentsByState: () => ({ running: 2, sleeping: 1 }), auditRows: () => 1234 });
    let text = await body(metrics);
    expect(value(text, 'warren_queue_length')).toBe(7);
    expect(value(text, 'warren_agents', { state: 'running' })).toBe(2);
    expect(value(text, 'warren_agents', { state: 'sleeping' })).toBe(1);
    expect(value(text, 'warren_audit_rows')).toBe(1234);
    queued = 0;
    metrics.setSources({ auditRows: () => 1300 }); // replaces that one, keeps the others
    text = await body(metrics);
    expect(value(text, 'warren_queue_length')).toBe(0);
    expect(value(text, 'warren_audit_rows')).toBe(1300);
    expect(value(text, 'warren_agents', { state: 'running' })).toBe(2);
  });

  it("exports each running agent's cgroup CPU seconds and memory bytes, and drops agents that left", async () => {
    let usage: AgentUsageSample[] = [
      { agent: 'shell-1', template: 'shell', cpuMs: 1500, memoryBytes: 8_388_608 },
      { agent: 'py-1', template: 'python', cpuMs: 20, memoryBytes: 1024 },
    ];
    const metrics = make({ sources: { agentUsage: () => usage } });
    let text = await body(metrics);
    expect(value(text, 'warren_agent_cpu_seconds_total', { agent: 'shell-1', template: 'shell' })).toBe(1.5);
    expect(value(text, 'warren_agent_memory_bytes', { agent: 'shell-1', template: 'shell' })).toBe(8_388_608);
    expect(value(text, 'warren_agent_cpu_seconds_total', { agent: 'py-1', template: 'python' })).toBe(0.02);
    expect(value(text, 'warren_agent_memory_bytes', { agent: 'py-1', template: 'python' })).toBe(1024);

    usage = [{ agent: 'shell-1', template: 'shell', cpuMs: 2500, memoryBytes: 4096 }];
    text = await body(metrics);
    expect(value(text, 'warren_agent_cpu_seconds_total', { agent: 'shell-1' })).toBe(2.5);
    expect(value(text, 'warren_agent_memory_bytes', { agent: 'shell-1' })).toBe(4096);
    expect(find(text, 'warren_agent_cpu_seconds_total', { agent: 'py-1' })).toEqual([]);
    expect(find(text, 'warren_agent_memory_bytes', { agent: 'py-1' })).toEqual([]);
  });

  it('sums the agents past maxAgentSeries per template under agent="_other"', async () => {
    const usage: AgentUsageSample[] = [];
    for (let i = 1; i <= 5; i++) usage.push({ agent: `a-${i}`, template: 'a', cpuMs: 1000 * i, memoryBytes: i });
    usage.push({ agent: 'b-1', template: 'b', cpuMs: 500, memoryBytes: 100 });
    const metrics = make({ maxAgentSeries: 2, sources: { agentUsage: () => [...usage].reverse() } });
    const text = await body(metrics);
    // Name order: a-1, a-2 keep their series; a-3..a-5 and b-1 are summed per template.
    expect(find(text, 'warren_agent_memory_bytes').map((s) => `${s.labels.agent}/${s.labels.template}=${s.value}`)).toEqual([
      'a-1/a=1', 'a-2/a=2', '_other/a=12', '_other/b=100',
    ]);
    expect(value(text, 'warren_agent_cpu_seconds_total', { agent: '_other', template: 'a' })).toBe(12);
    expect(value(text, 'warren_agent_cpu_seconds_total', { agent: '_other', template: 'b' })).toBe(0.5);
  });

  it('keeps answering when a source throws: that metric keeps its last value, the failure is counted and logged once', async () => {
    let fail = false;
    const warnings: unknown[] = [];
    const logger = { warn: (obj: object, msg?: string) => warnings.push({ ...obj, msg }) } as unknown as Logger;
    const metrics = make({
      logger,
      sources: {
        auditRows: () => {
          if (fail) throw new Error('database is locked');
          return 10;
        },
        queueLength: () => 2,
      },
    });
    expect(value(await body(metrics), 'warren_audit_rows')).toBe(10);
    fail = true;
    await body(metrics);
    const text = await body(metrics);
    expect(value(text, 'warren_audit_rows')).toBe(10);
    expect(value(text, 'warren_queue_length')).toBe(2);
    expect(value(text, 'warren_metrics_collect_errors_total', { source: 'auditRows' })).toBe(2);
    expect(value(text, 'warren_metrics_collect_errors_total', { source: 'queueLength' })).toBe(0);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ source: 'auditRows', msg: 'cannot read a metrics source' });
  });
});

describe('observations', () => {
  it('puts assignment latencies, given in ms, into second buckets from 1 ms to 60 s', async () => {
    expect(ASSIGNMENT_LATENCY_BUCKETS_SECONDS[0]).toBe(0.001);
    expect(ASSIGNMENT_LATENCY_BUCKETS_SECONDS.at(-1)).toBe(60);
    const metrics = make();
    for (const ms of [0.5, 3, 3, 40, 1500, 90_000]) metrics.observeAssignment('shell', ms);
    const text = await body(metrics);
    const bucket = (le: string) => value(text, 'warren_assignment_latency_seconds_bucket', { template: 'shell', le });
    expect(bucket('0.001')).toBe(1);
    expect(bucket('0.005')).toBe(3);
    expect(bucket('0.05')).toBe(4);
    expect(bucket('2.5')).toBe(5);
    expect(bucket('60')).toBe(5);
    expect(bucket('+Inf')).toBe(6);
    expect(value(text, 'warren_assignment_latency_seconds_count', { template: 'shell' })).toBe(6);
    expect(value(text, 'warren_assignment_latency_seconds_sum', { template: 'shell' })).toBeCloseTo(91.5465, 6);
  });

  it('counts a negative latency as 0 and ignores one that is not a number', async () => {
    const metrics = make();
    metrics.observeSpawn('shell', -20);
    metrics.observeSpawn('shell', Number.NaN);
    metrics.observeSpawn('shell', Infinity);
    metrics.observeSpawn('shell', 180);
    const text = await body(metrics);
    expect(value(text, 'warren_spawn_latency_seconds_count', { template: 'shell' })).toBe(2);
    expect(value(text, 'warren_spawn_latency_seconds_sum', { template: 'shell' })).toBeCloseTo(0.18, 9);
    expect(value(text, 'warren_spawn_latency_seconds_bucket', { template: 'shell', le: '0.01' })).toBe(1);
  });

  it('bounds the templates of the histograms', async () => {
    const metrics = make({ maxTemplates: 2 });
    for (const template of ['a', 'b', 'c', 'd', 'a']) metrics.observeAssignment(template, 1);
    const text = await body(metrics);
    const counts = find(text, 'warren_assignment_latency_seconds_count').map((s) => `${s.labels.template}=${s.value}`);
    expect(counts).toEqual(['a=2', 'b=1', '_other=2']);
  });

  it('counts events by kind, the catalogue at 0 from the start, kinds past the bound as _other', async () => {
    const metrics = make({ eventKinds: ['task.assign', 'task.finish'], maxEventKinds: 3 });
    let text = await body(metrics);
    expect(value(text, 'warren_events_total', { kind: 'task.assign' })).toBe(0);
    expect(value(text, 'warren_events_total', { kind: 'task.finish' })).toBe(0);
    for (const kind of ['task.assign', 'task.assign', 'agent.ready', 'agent.exit', 'policy.decide']) metrics.observeEvent(kind);
    text = await body(metrics);
    expect(Object.fromEntries(find(text, 'warren_events_total').map((s) => [s.labels.kind, s.value]))).toEqual({
      'task.assign': 2,
      'task.finish': 0,
      'agent.ready': 1,
      _other: 2,
    });
  });
});

describe('options and lifecycle', () => {
  it('refuses options it cannot use, naming the option', () => {
    expect(() => createMetrics({ instance: '' })).toThrow(MetricsError);
    expect(() => createMetrics({ instance: '' })).toThrow(/'instance' must be a non-empty string/);
    expect(() => createMetrics({ instance: 'w', maxAgentSeries: -1 })).toThrow(/'maxAgentSeries' must be an integer ≥ 0, got -1/);
    expect(() => createMetrics({ instance: 'w', maxEventKinds: 0 })).toThrow(/'maxEventKinds' must be an integer ≥ 1/);
    expect(() => createMetrics({ instance: 'w', maxTemplates: 1.5 })).toThrow(/'maxTemplates'/);
    try {
      createMetrics({ instance: 'w', maxAgentSeries: Number.NaN });
      expect.unreachable();
    } catch (error) {
      expect((error as MetricsError).code).toBe('WARREN_METRICS_OPTION');
    }
  });

  it('closes once: later observations are ignored and the exposition is empty', async () => {
    let reads = 0;
    const metrics = make({ sources: { queueLength: () => ++reads } });
    await body(metrics);
    await metrics.close();
    await metrics.close();
    metrics.observeEvent('task.assign');
    metrics.observeAssignment('shell', 3);
    expect(samples(await body(metrics))).toEqual([]);
    expect(reads).toBe(1);
  });
});

import { createMetrics, type AgentUsageSample } from '@warren/metrics';
import { Gauge, Registry } from 'prom-client';
import type { BenchContext, Scenario } from '../lib/context.js';
import { latencyFigure, roundsFigure, type Figure } from '../lib/figure.js';
import { sampleWithTinybench } from '../lib/tiny.js';

const TEMPLATES = ['shell', 'python', 'node', 'review', 'report', 'git', 'web', 'sql'];
const STATES = ['ready', 'assigned', 'running', 'done', 'failed', 'cancelled', 'blocked'];
const KINDS = 80; // about the size of the event catalogue

/** `agents` running agents spread over the templates, with cgroup-like usage. */
function usageOf(agents: number): AgentUsageSample[] {
  const out: AgentUsageSample[] = [];
  for (let i = 0; i < agents; i++) {
    const template = TEMPLATES[i % TEMPLATES.length]!;
    out.push({ agent: `${template}-${i + 1}`, template, cpuMs: 1000 + i * 7, memoryBytes: 8_388_608 + i * 4096 });
  }
  return out;
}

/**
 * Baseline: prom-client alone, a registry holding one gauge with the same agent series set once
 * (no callbacks, no sorting, no bound): what serializing that many series costs.
 */
function rawRegistry(series: number): Registry {
  const registry = new Registry();
  const gauge = new Gauge({ name: 'raw_agent_memory_bytes', help: 'raw', labelNames: ['agent', 'template'], registers: [registry] });
  const cpu = new Gauge({ name: 'raw_agent_cpu_seconds', help: 'raw', labelNames: ['agent', 'template'], registers: [registry] });
  for (const s of usageOf(series)) {
    gauge.set({ agent: s.agent, template: s.template }, s.memoryBytes);
    cpu.set({ agent: s.agent, template: s.template }, s.cpuMs / 1000);
  }
  return registry;
}

/**
 * `GET /metrics` cost inside the supervisor (the scrape runs on its event loop): `text()` of
 * `@warren/metrics` with 100, 1,000 and 10,000 running agents (at most 1,000 with series of their
 * own, the rest summed per template), every task state, the event catalogue and filled latency
 * histograms; against prom-client serializing the same agent series with no callbacks.
 */
export const metricsScenario: Scenario = {
  id: 'metrics',
  title: 'Prometheus metrics',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const figures: Figure[] = [];
    const sizes = ctx.quick ? [1000, 10_000] : [100, 1000, 10_000];
    const tiny = { timeMs: ctx.quick ? 300 : 1000, iterations: ctx.quick ? 10 : 30, warmupMs: 200 };
    for (const agents of sizes) {
      const key = agents >= 1000 ? `${agents / 1000}k` : String(agents);
      ctx.progress(`metrics: text() with ${agents.toLocaleString('en')} agents`);
      const usage = usageOf(agents);
      const metrics = createMetrics({
        instance: 'bench',
        defaultMetrics: false,
        eventKinds: Array.from({ length: KINDS }, (_, i) => `kind.${i}`),
        sources: {
          tasksByState: () => Object.fromEntries(STATES.map((s, i) => [s, 100 * i])),
          queueLength: () => 100,
          agentsByState: () => ({ running: agents }),
          agentUsage: () => usage,
          auditRows: () => 1_000_000,
        },
      });
      try {
        for (let i = 0; i < 10_000; i++) {
          metrics.observeAssignment(TEMPLATES[i % TEMPLATES.length]!, i % 5000);
          metrics.observeEvent(`kind.${i % KINDS}`);
        }
        for (const t of TEMPLATES) metrics.observeSpawn(t, 150);
        const body = (await metrics.text()).body;
        const series = Math.min(agents, 1000);
        const raw = rawRegistry(series);
        const rawSamples = await sampleWithTinybench(`raw ${key}`, () => raw.metrics(), ctx.rounds, tiny);
        figures.push(
          latencyFigure(
            {
              id: `metrics.raw.${key}`,
              scenario: 'Prometheus metrics',
              name: `prom-client registry.metrics(), ${(series * 2).toLocaleString('en')} agent series set once`,
              unit: 'ms',
              better: 'lower',
              note: 'baseline: the serialization alone',
            },
            rawSamples,
          ),
        );
        const samples = await sampleWithTinybench(`text ${key}`, () => metrics.text(), ctx.rounds, tiny);
        figures.push(
          latencyFigure(
            {
              id: `metrics.text.${key}`,
              scenario: 'Prometheus metrics',
              name: `WarrenMetrics.text(), ${agents.toLocaleString('en')} running agents`,
              unit: 'ms',
              better: 'lower',
              baseline: `metrics.raw.${key}`,
              note: `${series.toLocaleString('en')} agents with series of their own${agents > series ? ', the rest summed per template' : ''}; ${TEMPLATES.length} templates, ${KINDS} event kinds, histograms filled; no process metrics`,
            },
            samples,
          ),
        );
        figures.push(
          roundsFigure(
            {
              id: `metrics.bytes.${key}`,
              scenario: 'Prometheus metrics',
              name: `exposition size, ${agents.toLocaleString('en')} running agents`,
              unit: 'bytes',
              better: 'lower',
            },
            [Buffer.byteLength(body)],
          ),
        );
      } finally {
        await metrics.close();
      }
    }
    return figures;
  },
};

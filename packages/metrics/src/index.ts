/**
 * @warren/metrics: Warren's Prometheus metrics on a registry of their own (prom-client), served as
 * `GET /metrics`. The supervisor gives callbacks read on each scrape (tasks by state, queue
 * length, agents' cgroup usage, audit rows) and feeds latencies and events as they happen.
 *
 * ```ts
 * import { createMetrics, registrySources } from '@warren/metrics';
 * const metrics = createMetrics({ instance: 'warren', version: '0.1.0' });
 * metrics.setSources({
 *   ...registrySources(registry),                         // tasks by state, queue length, agents, audit rows
 *   agentUsage: () => [{ agent: 'shell-1', template: 'shell', cpuMs: 1520, memoryBytes: 8_388_608 }],
 * });
 * metrics.observeAssignment('shell', 42);                 // waited 42 ms from ready to assigned
 * metrics.observeSpawn('shell', 180);                     // started and ready in 180 ms
 * metrics.observeEvent('task.assign');
 * metrics.recordLlmCall({ template: 'coder', provider: 'anthropic', model: 'claude-x', inputTokens: 1200, outputTokens: 80, costUsd: 0.0042, status: 200 });
 * metrics.recordLlmRefusal('budget_exceeded');
 * const { contentType, body } = await metrics.text();     // text/plain; version=0.0.4 …
 * await metrics.close();
 * ```
 */
export {
  ASSIGNMENT_LATENCY_BUCKETS_SECONDS,
  OVERFLOW_LABEL,
  SPAWN_LATENCY_BUCKETS_SECONDS,
  createMetrics,
} from './metrics.js';
export type { AgentUsageSample, CreateMetricsOptions, LlmCallSample, MetricsSources, MetricsText, WarrenMetrics } from './metrics.js';
export { registrySources } from './registry-sources.js';
export type { RegistrySources } from './registry-sources.js';
export { MetricsError } from './errors.js';

import { silentLogger, type Logger } from '@warren/core';
import type { LlmUsageRow } from '@warren/registry';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MetricsError } from './errors.js';

/**
 * Bucket upper bounds of `warren_assignment_latency_seconds`, in seconds: 1 ms to 60 s, about
 * 1-2.5-5 per decade (the spacing of prom-client's and the Go client's default buckets).
 */
export const ASSIGNMENT_LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/**
 * Bucket upper bounds of `warren_spawn_latency_seconds`, in seconds: 10 ms to 120 s (a sandbox
 * starts in tens of ms; an agent whose runner takes long to say hello, in seconds).
 */
export const SPAWN_LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
];

/** The label value that stands for every value past a label's bound (see {@link CreateMetricsOptions}). */
export const OVERFLOW_LABEL = '_other';

/** One running agent's cgroup usage, as the supervisor reads it on a scrape. */
export interface AgentUsageSample {
  /** The agent's name (label `agent`). */
  readonly agent: string;
  /** Its template (label `template`). */
  readonly template: string;
  /** CPU time used by its cgroup since the agent started, in ms (cgroup v2 `cpu.stat` `usage_usec` / 1000). */
  readonly cpuMs: number;
  /** Memory charged to its cgroup now, in bytes (`memory.current`). */
  readonly memoryBytes: number;
}

/**
 * Callbacks read on every scrape (`text()`), each optional; a metric without its callback is
 * exposed at 0 (no labels) or without series (labelled). A callback that throws leaves its metric
 * at the value of the last successful read and counts in
 * `warren_metrics_collect_errors_total{source}`; the rest of the scrape still answers.
 */
export interface MetricsSources {
  /** Tasks by Warren's task state (`ready`, `assigned`, `running`, …): `warren_tasks{state}`. */
  readonly tasksByState?: () => Readonly<Record<string, number>>;
  /** Tasks waiting in the admission queue (ready, not assigned): `warren_queue_length`. */
  readonly queueLength?: () => number;
  /** Agent instances by the state of their `agents` row (`running`, `sleeping`, …): `warren_agents{state}`. */
  readonly agentsByState?: () => Readonly<Record<string, number>>;
  /** The cgroup usage of each running agent: `warren_agent_cpu_seconds_total`, `warren_agent_memory_bytes`. */
  readonly agentUsage?: () => Iterable<AgentUsageSample>;
  /** Rows in the audit trail: `warren_audit_rows`. */
  readonly auditRows?: () => number;
}

/**
 * One LLM call as the gateway reports it: the fields of its `llm_usage` row (`LlmUsageRow` of
 * @warren/registry) that become labels or counts. The agent, task and times are not labels (their
 * values are unbounded); the registry's usage report has them.
 */
export type LlmCallSample = Pick<LlmUsageRow, 'template' | 'provider' | 'model' | 'inputTokens' | 'outputTokens' | 'costUsd' | 'status'>;

/** Options of {@link createMetrics}. */
export interface CreateMetricsOptions {
  /** The Warren instance (its NATS subject prefix), exported as `warren_info{warren_instance}`. Non-empty. */
  readonly instance: string;
  /** Warren's version, exported as `warren_info{version}`. Default `'unknown'`. */
  readonly version?: string;
  /** The scrape-time callbacks; more can be given later with {@link WarrenMetrics.setSources}. */
  readonly sources?: MetricsSources;
  /**
   * Event kinds exported at 0 before their first event (so `rate()` sees the first one). Default none.
   */
  readonly eventKinds?: readonly string[];
  /**
   * Whether prom-client's default process and Node.js metrics (`process_cpu_seconds_total`,
   * `process_resident_memory_bytes`, `nodejs_eventloop_lag_seconds`, `nodejs_gc_duration_seconds`,
   * …) are registered. Default true. Their event-loop monitor and GC observer live as long as the
   * process (prom-client offers no way to stop them), so a process makes one such set.
   */
  readonly defaultMetrics?: boolean;
  /**
   * Agents with series of their own in the per-agent metrics, in name order; the usage of the
   * others is summed per template under `agent="_other"`. Default 1000 (2 series each). ≥ 0.
   */
  readonly maxAgentSeries?: number;
  /** Distinct `kind` values of `warren_events_total`; later kinds count under `kind="_other"`. Default 256. ≥ 1. */
  readonly maxEventKinds?: number;
  /** Distinct `template` values of the latency histograms and LLM counters; later ones count under `template="_other"`. Default 100. ≥ 1. */
  readonly maxTemplates?: number;
  /** Distinct `provider` values of the LLM counters; later ones count under `provider="_other"`. Default 32. ≥ 1. */
  readonly maxProviders?: number;
  /** Distinct `model` values of `warren_llm_tokens_total`; later ones count under `model="_other"`. Default 128. ≥ 1. */
  readonly maxModels?: number;
  /** Distinct `reason` values of `warren_llm_refusals_total`; later ones count under `reason="_other"`. Default 32. ≥ 1. */
  readonly maxRefusalReasons?: number;
  /** Where a failing scrape callback is reported (warn, once per source until it succeeds again). Default silent. */
  readonly logger?: Logger;
}

/** What `GET /metrics` answers: the Content-Type header and the body. */
export interface MetricsText {
  /** `text/plain; version=0.0.4; charset=utf-8` (Prometheus text exposition format 0.0.4). */
  readonly contentType: string;
  readonly body: string;
}

/**
 * Warren's Prometheus metrics on a registry of their own (never prom-client's global one). The
 * metric names, types and labels are listed in the package README.
 */
export interface WarrenMetrics {
  /** The private registry (for a caller that wants to add its own metrics). */
  readonly registry: Registry;
  readonly instance: string;
  /** Adds or replaces scrape-time callbacks (the given ones only; `undefined` keeps the current one). */
  setSources(sources: MetricsSources): void;
  /**
   * Observes one assignment: how long the task waited from ready to assigned, in ms, into
   * `warren_assignment_latency_seconds{template}`. A negative wait (the clock stepped back) counts
   * as 0; a non-finite one is ignored.
   */
  observeAssignment(template: string, waitedMs: number): void;
  /**
   * Observes one agent start: from the start being requested to the agent being ready (its runner
   * said hello), in ms, into `warren_spawn_latency_seconds{template}`. Negative counts as 0;
   * non-finite is ignored.
   */
  observeSpawn(template: string, startupMs: number): void;
  /** Counts one committed event of `kind` in `warren_events_total{kind}`. */
  observeEvent(kind: string): void;
  /**
   * Counts one LLM call through an agent's gateway: its tokens into
   * `warren_llm_tokens_total{direction="input"|"output",template,provider,model}`, its cost (US
   * dollars) into `warren_llm_cost_usd_total{template,provider}` and the call into
   * `warren_llm_calls_total{template,provider,status}` (`status` the HTTP status the agent received,
   * `_other` when not a status code). Negative or non-finite counts add nothing.
   */
  recordLlmCall(call: LlmCallSample): void;
  /**
   * Counts one call the gateway refused (over budget, provider not allowed, …) in
   * `warren_llm_refusals_total{reason}`.
   */
  recordLlmRefusal(reason: string): void;
  /**
   * The exposition of every metric, callbacks read now. Never rejects because of a callback; after
   * {@link close} the body is empty.
   */
  text(): Promise<MetricsText>;
  /** Clears the registry; later observations are ignored. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

type SourceName = keyof MetricsSources;
const SOURCE_NAMES: readonly SourceName[] = ['tasksByState', 'queueLength', 'agentsByState', 'agentUsage', 'auditRows'];

/**
 * Caps the distinct values of one label: the first `max` values seen keep their own series, later
 * ones map to {@link OVERFLOW_LABEL}.
 */
class BoundedLabel {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}

  of(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.max) return OVERFLOW_LABEL;
    this.seen.add(value);
    return value;
  }
}

function positiveInteger(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) {
    throw new MetricsError('WARREN_METRICS_OPTION', `createMetrics: '${name}' must be an integer ≥ ${min}, got ${String(value)}`);
  }
  return value;
}

/**
 * Makes Warren's metrics on a private prom-client `Registry`: gauges read from
 * {@link MetricsSources} on each scrape, histograms and counters the supervisor feeds through the
 * `observe…` methods, and (by default) prom-client's process metrics.
 *
 * Label cardinality is bounded: `state` by Warren's task and agent states; `template` by the
 * templates configured (at most `maxTemplates`); `agent` by the agents running now (agents that
 * left are dropped on the next scrape; at most `maxAgentSeries`, the rest summed under `_other`);
 * `kind` by the event catalogue (at most `maxEventKinds`).
 *
 * @throws {MetricsError} `WARREN_METRICS_OPTION` if `instance` is empty or a bound is not an
 *   integer in range.
 */
export function createMetrics(options: CreateMetricsOptions): WarrenMetrics {
  if (typeof options.instance !== 'string' || options.instance.length === 0) {
    throw new MetricsError('WARREN_METRICS_OPTION', `createMetrics: 'instance' must be a non-empty string, got ${JSON.stringify(options.instance)}`);
  }
  const maxAgentSeries = positiveInteger('maxAgentSeries', options.maxAgentSeries, 1000, 0);
  const eventKinds = new BoundedLabel(positiveInteger('maxEventKinds', options.maxEventKinds, 256, 1));
  const templates = new BoundedLabel(positiveInteger('maxTemplates', options.maxTemplates, 100, 1));
  const providers = new BoundedLabel(positiveInteger('maxProviders', options.maxProviders, 32, 1));
  const models = new BoundedLabel(positiveInteger('maxModels', options.maxModels, 128, 1));
  const refusalReasons = new BoundedLabel(positiveInteger('maxRefusalReasons', options.maxRefusalReasons, 32, 1));
  const log = options.logger ?? silentLogger;
  const sources: { -readonly [K in SourceName]?: MetricsSources[K] } = { ...options.sources };
  const failing = new Set<SourceName>();
  let closed = false;

  const registry = new Registry();
  const registers = [registry];

  const collectErrors = new Counter({
    name: 'warren_metrics_collect_errors_total',
    help: 'Scrapes in which reading one source of Warren metrics failed, by source.',
    labelNames: ['source'],
    registers: [], // registered last, so that a scrape shows the failures of its own reads
  });
  for (const source of SOURCE_NAMES) collectErrors.inc({ source }, 0);

  /** Calls source `name` (if given) and hands its value to `use`; a throw is counted and logged, never rethrown. */
  const read = <K extends SourceName>(name: K, use: (value: ReturnType<NonNullable<MetricsSources[K]>>) => void): void => {
    const source = sources[name] as (() => ReturnType<NonNullable<MetricsSources[K]>>) | undefined;
    if (!source) return;
    try {
      use(source());
      failing.delete(name);
    } catch (error) {
      collectErrors.inc({ source: name });
      if (!failing.has(name)) log.warn({ err: error, source: name }, 'cannot read a metrics source');
      failing.add(name);
    }
  };

  new Gauge({
    name: 'warren_info',
    help: 'Always 1: the Warren instance (NATS subject prefix) and version this supervisor runs.',
    labelNames: ['warren_instance', 'version'],
    registers,
  }).set({ warren_instance: options.instance, version: options.version ?? 'unknown' }, 1);

  const byState = (gauge: Gauge<'state'>, counts: Readonly<Record<string, number>>): void => {
    gauge.reset();
    for (const [state, n] of Object.entries(counts)) {
      if (Number.isFinite(n)) gauge.set({ state }, n);
    }
  };

  new Gauge({
    name: 'warren_tasks',
    help: "Tasks Warren knows, by Warren's task state.",
    labelNames: ['state'],
    registers,
    collect(this: Gauge<'state'>) {
      read('tasksByState', (counts) => byState(this, counts));
    },
  });

  new Gauge({
    name: 'warren_queue_length',
    help: 'Tasks waiting in the admission queue: ready, not yet assigned to an agent.',
    registers,
    collect(this: Gauge) {
      read('queueLength', (n) => this.set(n));
    },
  });

  new Gauge({
    name: 'warren_agents',
    help: 'Agent instances, by the state of their agents row (running, sleeping, stopped, ...).',
    labelNames: ['state'],
    registers,
    collect(this: Gauge<'state'>) {
      read('agentsByState', (counts) => byState(this, counts));
    },
  });

  // Both per-agent metrics come from one reading of the agents' usage, taken by the counter's
  // collect: the registry serializes metrics in registration order, each right after its own
  // collect, so the gauge registered after it exposes the same reading.
  const memory = new Gauge({
    name: 'warren_agent_memory_bytes',
    help: "Memory charged to each running agent's cgroup now (memory.current).",
    labelNames: ['agent', 'template'],
    registers: [], // registered below, after the counter
  });
  new Counter({
    name: 'warren_agent_cpu_seconds_total',
    help: "CPU time used by each running agent's cgroup since the agent started (resets when it restarts).",
    labelNames: ['agent', 'template'],
    registers,
    collect(this: Counter<'agent' | 'template'>) {
      read('agentUsage', (samples) => fillAgentUsage(samples, maxAgentSeries, this, memory));
    },
  });
  registry.registerMetric(memory);

  new Gauge({
    name: 'warren_audit_rows',
    help: 'Rows in the audit trail.',
    registers,
    collect(this: Gauge) {
      read('auditRows', (n) => this.set(n));
    },
  });

  const events = new Counter({
    name: 'warren_events_total',
    help: 'Events committed to the audit trail, by kind (the event catalogue).',
    labelNames: ['kind'],
    registers,
  });
  for (const kind of options.eventKinds ?? []) events.inc({ kind: eventKinds.of(kind) }, 0);

  const assignment = new Histogram({
    name: 'warren_assignment_latency_seconds',
    help: 'Time from a task being ready to its assignment to an agent, by the agent template.',
    labelNames: ['template'],
    buckets: [...ASSIGNMENT_LATENCY_BUCKETS_SECONDS],
    registers,
  });

  const spawn = new Histogram({
    name: 'warren_spawn_latency_seconds',
    help: 'Time from an agent start being requested to the agent being ready, by template.',
    labelNames: ['template'],
    buckets: [...SPAWN_LATENCY_BUCKETS_SECONDS],
    registers,
  });

  const llmTokens = new Counter({
    name: 'warren_llm_tokens_total',
    help: "Tokens of agents' LLM calls through their gateways, as the providers count them, by direction (input or output), template, provider and model.",
    labelNames: ['direction', 'template', 'provider', 'model'],
    registers,
  });
  const llmCost = new Counter({
    name: 'warren_llm_cost_usd_total',
    help: "Cost of agents' LLM calls in US dollars, from the providers' configured prices, by template and provider.",
    labelNames: ['template', 'provider'],
    registers,
  });
  const llmCalls = new Counter({
    name: 'warren_llm_calls_total',
    help: "Agents' LLM calls through their gateways, by template, provider and the HTTP status the agent received.",
    labelNames: ['template', 'provider', 'status'],
    registers,
  });
  const llmRefusals = new Counter({
    name: 'warren_llm_refusals_total',
    help: "LLM calls the gateways refused, by reason (budget_exceeded, provider_not_allowed, ...).",
    labelNames: ['reason'],
    registers,
  });

  registry.registerMetric(collectErrors);
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });

  const latency = (histogram: Histogram<'template'>, template: string, ms: number): void => {
    if (closed || !Number.isFinite(ms)) return;
    histogram.observe({ template: templates.of(template) }, Math.max(0, ms) / 1000);
  };

  const close = (): Promise<void> => {
    if (!closed) {
      closed = true;
      registry.clear();
    }
    return Promise.resolve();
  };

  return {
    registry,
    instance: options.instance,
    setSources(more) {
      for (const name of SOURCE_NAMES) {
        const source = more[name];
        if (source !== undefined) (sources as Record<SourceName, unknown>)[name] = source;
      }
    },
    observeAssignment: (template, waitedMs) => latency(assignment, template, waitedMs),
    observeSpawn: (template, startupMs) => latency(spawn, template, startupMs),
    observeEvent(kind) {
      if (!closed) events.inc({ kind: eventKinds.of(kind) });
    },
    recordLlmCall(call) {
      if (closed) return;
      const template = templates.of(call.template);
      const provider = providers.of(call.provider);
      const model = models.of(call.model);
      const count = (n: number): number => (Number.isFinite(n) && n > 0 ? n : 0);
      llmTokens.inc({ direction: 'input', template, provider, model }, count(call.inputTokens));
      llmTokens.inc({ direction: 'output', template, provider, model }, count(call.outputTokens));
      llmCost.inc({ template, provider }, count(call.costUsd));
      const status = Number.isInteger(call.status) && call.status >= 100 && call.status <= 599 ? String(call.status) : OVERFLOW_LABEL;
      llmCalls.inc({ template, provider, status });
    },
    recordLlmRefusal(reason) {
      if (!closed) llmRefusals.inc({ reason: refusalReasons.of(reason) });
    },
    async text() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Sets both per-agent metrics from one reading of the agents' usage: agents in name order keep
 * their own series up to `maxAgentSeries`; the rest are summed per template under `agent="_other"`.
 * Series of agents not in `samples` are dropped.
 */
function fillAgentUsage(
  samples: Iterable<AgentUsageSample>,
  maxAgentSeries: number,
  cpu: Counter<'agent' | 'template'>,
  memory: Gauge<'agent' | 'template'>,
): void {
  const list = [...samples].sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0));
  cpu.reset();
  memory.reset();
  const overflow = new Map<string, { cpuMs: number; memoryBytes: number }>();
  list.forEach((sample, i) => {
    const cpuMs = Number.isFinite(sample.cpuMs) ? Math.max(0, sample.cpuMs) : 0;
    const memoryBytes = Number.isFinite(sample.memoryBytes) ? Math.max(0, sample.memoryBytes) : 0;
    if (i < maxAgentSeries) {
      const labels = { agent: sample.agent, template: sample.template };
      cpu.inc(labels, cpuMs / 1000);
      memory.set(labels, memoryBytes);
      return;
    }
    const sum = overflow.get(sample.template) ?? { cpuMs: 0, memoryBytes: 0 };
    sum.cpuMs += cpuMs;
    sum.memoryBytes += memoryBytes;
    overflow.set(sample.template, sum);
  });
  for (const [template, sum] of overflow) {
    const labels = { agent: OVERFLOW_LABEL, template };
    cpu.inc(labels, sum.cpuMs / 1000);
    memory.set(labels, sum.memoryBytes);
  }
}

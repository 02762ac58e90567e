import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigError } from '@warren/core';
import { createTracing, formatTraceparent, parseTraceparent, tracingConfigFromEnv, type Tracing } from '@warren/telemetry';
import { startOtlpReceiver, type OtlpReceiver } from '@warren/testing';

async function receiver(): Promise<OtlpReceiver> {
  const otlp = await startOtlpReceiver();
  onTestFinished(() => otlp.close());
  return otlp;
}

async function tracingTo(otlp: OtlpReceiver, env: Record<string, string> = {}): Promise<Tracing> {
  const tracing = await createTracing({
    serviceName: 'warren-test',
    instance: 'test-instance',
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: '50', ...env },
  });
  onTestFinished(() => tracing.shutdown());
  return tracing;
}

describe('tracingConfigFromEnv', () => {
  it('is off without an endpoint, or when the SDK or the traces exporter is disabled', () => {
    expect(tracingConfigFromEnv({}).endpoint).toBeUndefined();
    expect(tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' }).endpoint).toBeUndefined();
    expect(tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' }).endpoint).toBeUndefined();
    expect(tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_TRACES_EXPORTER: 'none' }).endpoint).toBeUndefined();
  });

  it('appends v1/traces to the general endpoint and takes the traces endpoint as it is', () => {
    expect(tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }).endpoint).toBe('http://127.0.0.1:4318/v1/traces');
    expect(tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/otlp/' }).endpoint).toBe('http://127.0.0.1:4318/otlp/v1/traces');
    expect(
      tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/custom' }).endpoint,
    ).toBe('http://127.0.0.1:4318/custom');
  });

  it('reads headers, the signal-specific ones winning, and the batch settings', () => {
    const config = tracingConfigFromEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
      OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=two%20words',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'a=3',
      OTEL_BSP_SCHEDULE_DELAY: '200',
    });
    expect(config.headers).toEqual({ a: '3', b: 'two words' });
    expect(config.exportTimeoutMs).toBe(10_000);
    expect(config.serviceName).toBeUndefined();
    expect(config.resourceAttributes).toEqual({});
    expect(config.batch).toEqual({ scheduledDelayMillis: 200, maxQueueSize: 2048, maxExportBatchSize: 512, exportTimeoutMillis: 30_000 });
  });

  it('names the variable that is invalid', () => {
    const bad = (env: Record<string, string>, name: string) => {
      let caught: unknown;
      try {
        tracingConfigFromEnv(env);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).source).toBe(name);
    };
    bad({ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }, 'OTEL_EXPORTER_OTLP_ENDPOINT');
    bad({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://host/' }, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
    bad({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://h:1', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL');
    bad({ OTEL_BSP_SCHEDULE_DELAY: '-5' }, 'OTEL_BSP_SCHEDULE_DELAY');
    bad({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://h:1', OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, 'OTEL_EXPORTER_OTLP_HEADERS');
  });
});

describe('createTracing', () => {
  it('without an endpoint records nothing and gives no context', async () => {
    const tracing = await createTracing({ serviceName: 'warren-test', env: {} });
    expect(tracing.enabled).toBe(false);
    const span = tracing.startSpan('nothing');
    expect(span.isRecording()).toBe(false);
    expect(tracing.contextOf(span)).toBeUndefined();
    span.end();
    tracing.recordSpan({ name: 'x', traceId: tracing.newTraceId(), spanId: tracing.newSpanId(), startTimeMs: 1, endTimeMs: 2 });
    await expect(tracing.withSpan('w', {}, () => 7)).resolves.toBe(7);
    await tracing.shutdown();
  });

  it('exports spans with their explicit times, parents and resource to the OTLP endpoint as JSON', async () => {
    const otlp = await receiver();
    const tracing = await tracingTo(otlp);
    expect(tracing.endpoint).toBe(otlp.tracesUrl);
    const root = tracing.startSpan('root', { startTimeMs: 1_700_000_000_000, attributes: { 'warren.task.id': 'T-1' } });
    const rootContext = tracing.contextOf(root)!;
    expect(rootContext.traceFlags).toBe(1);
    const child = tracing.startSpan('child', { startTimeMs: 1_700_000_000_100, parent: rootContext });
    child.end(1_700_000_000_250);
    root.end(1_700_000_000_500);
    await tracing.flush();
    await otlp.waitFor((spans) => spans.length === 2, { what: 'two spans' });
    const byName = new Map(otlp.spans.map((s) => [s.name, s]));
    const r = byName.get('root')!;
    const c = byName.get('child')!;
    expect(r.parentSpanId).toBeUndefined();
    expect(r.traceId).toBe(rootContext.traceId);
    expect(r.spanId).toBe(rootContext.spanId);
    expect(c.traceId).toBe(r.traceId);
    expect(c.parentSpanId).toBe(r.spanId);
    expect([r.startTimeMs, r.endTimeMs, c.startTimeMs, c.endTimeMs]).toEqual([1_700_000_000_000, 1_700_000_000_500, 1_700_000_000_100, 1_700_000_000_250]);
    expect(r.attributes['warren.task.id']).toBe('T-1');
    expect(r.resource['service.name']).toBe('warren-test');
    expect(r.resource['service.instance.id']).toBe('test-instance');
    // The context round-trips through a traceparent.
    expect(parseTraceparent(formatTraceparent(rootContext))).toEqual(rootContext);
  });

  it('takes the service name and resource attributes the environment gives', async () => {
    const otlp = await receiver();
    const tracing = await tracingTo(otlp, { OTEL_SERVICE_NAME: 'warren-east', OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test,service.name=ignored' });
    tracing.startSpan('named').end();
    await tracing.flush();
    await otlp.waitFor((spans) => spans.length === 1, { what: 'one span' });
    expect(otlp.spans[0]!.resource).toMatchObject({ 'service.name': 'warren-east', 'service.instance.id': 'test-instance', 'deployment.environment.name': 'test' });
  });

  it('records a span with the ids it is given, under a parent that was never a local span', async () => {
    const otlp = await receiver();
    const tracing = await tracingTo(otlp);
    const traceId = tracing.newTraceId();
    const rootId = tracing.newSpanId();
    const childId = tracing.newSpanId();
    tracing.recordSpan({ name: 'agent.run', traceId, spanId: childId, parentSpanId: rootId, startTimeMs: 1_000_000_000_000, endTimeMs: 1_000_000_001_000, status: { code: 'error', message: 'exit code 3' }, attributes: { 'process.exit.code': 3 } });
    // A later span gets random ids again.
    const other = tracing.startSpan('other');
    other.end();
    tracing.recordSpan({ name: 'root', traceId, spanId: rootId, startTimeMs: 999_999_999_000, endTimeMs: 1_000_000_002_000 });
    await tracing.flush();
    await otlp.waitFor((spans) => spans.length === 3, { what: 'three spans' });
    const run = otlp.spans.find((s) => s.name === 'agent.run')!;
    expect(run).toMatchObject({ traceId, spanId: childId, parentSpanId: rootId, startTimeMs: 1_000_000_000_000, endTimeMs: 1_000_000_001_000 });
    expect(run.status).toEqual({ code: 2, message: 'exit code 3' });
    expect(run.attributes['process.exit.code']).toBe(3);
    expect(otlp.spans.find((s) => s.name === 'root')).toMatchObject({ traceId, spanId: rootId, parentSpanId: undefined });
    const o = otlp.spans.find((s) => s.name === 'other')!;
    expect(o.traceId).not.toBe(traceId);
    expect([rootId, childId]).not.toContain(o.spanId);
    expect(() => tracing.recordSpan({ name: 'bad', traceId: 'xyz', spanId: childId, startTimeMs: 0, endTimeMs: 0 })).toThrow(ConfigError);
  });

  it('withSpan records the exception, sets error status and ends the span', async () => {
    const otlp = await receiver();
    const tracing = await tracingTo(otlp);
    await expect(
      tracing.withSpan('failing', {}, () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await expect(tracing.withSpan('fine', {}, async () => 'ok')).resolves.toBe('ok');
    await tracing.flush();
    await otlp.waitFor((spans) => spans.length === 2, { what: 'two spans' });
    expect(otlp.spans.find((s) => s.name === 'failing')?.status).toEqual({ code: 2, message: 'boom' });
    expect(otlp.spans.find((s) => s.name === 'fine')?.status.code).toBe(0);
  });

  it('shutdown flushes what is pending, is idempotent, and drops later spans', async () => {
    const otlp = await receiver();
    // A delay far longer than the test: only the shutdown's flush can send the span.
    const tracing = await tracingTo(otlp, { OTEL_BSP_SCHEDULE_DELAY: '600000' });
    tracing.startSpan('pending').end();
    await Promise.all([tracing.shutdown(), tracing.shutdown()]);
    expect(otlp.spans.map((s) => s.name)).toEqual(['pending']);
    const late = tracing.startSpan('late');
    expect(late.isRecording()).toBe(false);
    late.end();
    await tracing.shutdown();
  });

  it('keeps working when the collector refuses the spans, and reports the failure on the logger', async () => {
    // A collector that answers every export with 400 (not retried by the exporter).
    const refusing = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(400, { 'content-type': 'application/json' }).end('{"message":"no"}'));
    });
    refusing.listen(0, '127.0.0.1');
    await once(refusing, 'listening');
    onTestFinished(() => new Promise<void>((resolve) => refusing.close(() => resolve())));
    const url = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}`;
    const lines: string[] = [];
    const logger = {
      trace: () => undefined,
      debug: () => undefined,
      info: (_o: object, m?: string) => void lines.push(`info ${m}`),
      warn: (_o: object, m?: string) => void lines.push(`warn ${m}`),
      error: (_o: object, m?: string) => void lines.push(`error ${m}`),
      child: () => logger,
    };
    const tracing = await createTracing({ serviceName: 'warren-test', env: { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_TIMEOUT: '300' }, logger });
    tracing.startSpan('lost').end();
    await tracing.flush();
    await tracing.shutdown();
    expect(lines).toContain('warn cannot export spans; they are dropped');
  });
});

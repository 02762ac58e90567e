/**
 * Debian's Prometheus scrapes `GET /metrics` of the real `@warren/http` server on 127.0.0.1: a
 * viewer token made by the token store, the repository's policy deciding (and auditing) each
 * scrape, `@warren/metrics` over the same state database through `registrySources`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTokenStore, startHttpServer, type HttpServer } from '@warren/http';
import { createMetrics, registrySources, type WarrenMetrics } from '@warren/metrics';
import { TaskState } from '@warren/registry';
import { makeTempDir, type TempDir } from '@warren/testing';
import { openTestPorts, taskRow, type TestPorts } from '../packages/http/test/support.js';
import { DEADLINE_MS, query, queryUntil, startPrometheus, type RunningPrometheus } from '../packages/metrics/test/prometheus.js';

describe("Debian's Prometheus scraping the HTTP server's /metrics", () => {
  let dir: TempDir;
  let ports: TestPorts;
  let metrics: WarrenMetrics;
  let server: HttpServer;
  let prometheus: RunningPrometheus | undefined;
  let viewerToken = '';

  beforeAll(async () => {
    dir = await makeTempDir('warren-prometheus-');
    ports = await openTestPorts();
    ports.registry.state.putTask(taskRow('count-lines', { queuePosition: 1, queueReason: 'no idle agent with [shell]' }));
    ports.registry.state.putTask(taskRow('summarise', { state: TaskState.running, attempt: 1, agent: 'shell-1' }));
    metrics = createMetrics({ instance: 'warren-test', version: '0.1.0', defaultMetrics: false, sources: registrySources(ports.registry) });
    ports.metrics = () => metrics.text();
    viewerToken = openTokenStore(ports.db).create({ name: 'prometheus', role: 'viewer' }, Date.now()).token;
    server = await startHttpServer(ports, { host: '127.0.0.1', port: 0 });
    const target = `127.0.0.1:${server.address.port}`;
    prometheus = await startPrometheus(dir.path, {
      global: { scrape_interval: '1s', scrape_timeout: '1s' },
      scrape_configs: [
        { job_name: 'warren', authorization: { type: 'Bearer', credentials: viewerToken }, static_configs: [{ targets: [target] }] },
        { job_name: 'warren-no-token', static_configs: [{ targets: [target] }] },
      ],
    });
  }, DEADLINE_MS + 30_000);

  afterAll(async () => {
    await prometheus?.close();
    await server?.close();
    await metrics?.close();
    ports?.close();
    await dir?.close();
  }, 30_000);

  it(
    'stores the task states and the audit rows that its own authorized scrapes add, with up == 1',
    async () => {
      const p = prometheus!;
      const tasks = await queryUntil(p, 'warren_tasks{job="warren"} > 0', (r) => r.length === 2);
      expect(Object.fromEntries(tasks.map((r) => [r.metric.state, Number(r.value[1])]))).toEqual({ ready: 1, running: 1 });
      expect((await query(p, 'warren_queue_length{job="warren"}')).map((r) => Number(r.value[1]))).toEqual([1]);
      expect((await query(p, 'up{job="warren"}')).map((r) => Number(r.value[1]))).toEqual([1]);

      // Each scrape is a request the policy decides and the audit trail records: the rows grow.
      const first = Number((await queryUntil(p, 'warren_audit_rows{job="warren"}', (r) => r.length === 1))[0]!.value[1]);
      await queryUntil(p, 'warren_audit_rows{job="warren"}', (r) => r.length === 1 && Number(r[0]!.value[1]) > first);
      const decisions = ports.registry.auditPage({ filter: { action: 'policy.decide', object: 'api:/metrics' }, limit: 1000 }).rows;
      expect(decisions.some((row) => row.actor === 'user:prometheus' && row.decision === 'allow')).toBe(true);
    },
    DEADLINE_MS + 30_000,
  );

  it(
    'marks a scrape without a token down (the server answers 401)',
    async () => {
      const up = await queryUntil(prometheus!, 'up{job="warren-no-token"}', (r) => r.length === 1);
      expect(Number(up[0]!.value[1])).toBe(0);
      expect(await query(prometheus!, 'warren_tasks{job="warren-no-token"}')).toEqual([]);
    },
    DEADLINE_MS + 30_000,
  );
});

/**
 * Debian's Prometheus server (/usr/bin/prometheus) scrapes a real HTTP endpoint on 127.0.0.1 that
 * serves `WarrenMetrics.text()` behind a bearer token, and the samples arrive in its database.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, type TempDir } from '@warren/testing';
import { createMetrics, type WarrenMetrics } from '@warren/metrics';
import { DEADLINE_MS, query, queryUntil, startPrometheus, type RunningPrometheus } from './prometheus.js';

const TOKEN = 'wrn_scrape-token-for-the-test';

describe("Debian's Prometheus scraping Warren's metrics", () => {
  let dir: TempDir;
  let metrics: WarrenMetrics;
  let server: Server;
  let prometheus: RunningPrometheus | undefined;
  const authorizations: string[] = [];

  beforeAll(async () => {
    dir = await makeTempDir('warren-prometheus-');
    metrics = createMetrics({
      instance: 'warren-scrape',
      version: '0.1.0',
      defaultMetrics: false,
      sources: {
        tasksByState: () => ({ ready: 3, running: 2 }),
        queueLength: () => 3,
        agentUsage: () => [{ agent: 'shell-1', template: 'shell', cpuMs: 1250, memoryBytes: 4_194_304 }],
      },
    });
    metrics.observeAssignment('shell', 12);
    server = createServer((request, response) => {
      authorizations.push(request.headers.authorization ?? '');
      if (request.url !== '/metrics') {
        response.writeHead(404).end();
        return;
      }
      if (request.headers.authorization !== `Bearer ${TOKEN}`) {
        response.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}');
        return;
      }
      metrics.text().then(
        ({ contentType, body }) => response.writeHead(200, { 'content-type': contentType }).end(body),
        () => response.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    prometheus = await startPrometheus(dir.path, {
      global: { scrape_interval: '1s', scrape_timeout: '1s' },
      scrape_configs: [
        { job_name: 'warren', authorization: { type: 'Bearer', credentials: TOKEN }, static_configs: [{ targets: [target] }] },
        { job_name: 'warren-wrong-token', authorization: { type: 'Bearer', credentials: 'wrn_not-the-token' }, static_configs: [{ targets: [target] }] },
      ],
    });
  }, DEADLINE_MS + 30_000);

  afterAll(async () => {
    await prometheus?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server?.closeAllConnections();
    await metrics?.close();
    await dir?.close();
  }, 30_000);

  it(
    'stores warren_tasks from a scrape that sends the bearer token, with up == 1',
    async () => {
      const p = prometheus!;
      const tasks = await queryUntil(p, 'warren_tasks{job="warren"}', (r) => r.length === 2);
      expect(Object.fromEntries(tasks.map((r) => [r.metric.state, Number(r.value[1])]))).toEqual({ ready: 3, running: 2 });
      expect(tasks[0]!.metric.instance).toMatch(/^127\.0\.0\.1:\d+$/);

      const up = await query(p, 'up{job="warren"}');
      expect(up.map((r) => Number(r.value[1]))).toEqual([1]);
      expect(authorizations).toContain(`Bearer ${TOKEN}`);

      const cpu = await query(p, 'warren_agent_cpu_seconds_total{job="warren"}');
      expect(cpu.map((r) => [r.metric.agent, r.metric.template, Number(r.value[1])])).toEqual([['shell-1', 'shell', 1.25]]);
      const assigned = await query(p, 'warren_assignment_latency_seconds_count{job="warren"}');
      expect(assigned.map((r) => Number(r.value[1]))).toEqual([1]);
    },
    DEADLINE_MS + 30_000,
  );

  it(
    'marks the target down for a scrape with the wrong token (the endpoint answers 401)',
    async () => {
      const up = await queryUntil(prometheus!, 'up{job="warren-wrong-token"}', (r) => r.length === 1);
      expect(Number(up[0]!.value[1])).toBe(0);
      expect(await query(prometheus!, 'warren_tasks{job="warren-wrong-token"}')).toEqual([]);
    },
    DEADLINE_MS + 30_000,
  );
});

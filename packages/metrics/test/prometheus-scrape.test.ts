/**
 * Debian's Prometheus server (/usr/bin/prometheus) scrapes a real HTTP endpoint on 127.0.0.1 that
 * serves `WarrenMetrics.text()` behind a bearer token, and the samples arrive in its database.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, type TempDir } from '@warren/testing';
import { createMetrics, type WarrenMetrics } from '@warren/metrics';

const PROMETHEUS = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';
const TOKEN = 'wrn_scrape-token-for-the-test';
/** How long the test waits for Prometheus to start, scrape and answer, in ms (a scrape every second). */
const DEADLINE_MS = 90_000;

interface RunningPrometheus {
  readonly url: string;
  readonly child: ChildProcess;
  readonly output: () => string;
  close(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bound, then released, for a child that takes a port number only). */
async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Stops `child` by its pid: SIGTERM, SIGKILL after `graceMs`; resolves once it has exited. */
async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts Prometheus with `config` (written as JSON, which YAML reads) on a free port, storing in
 * `dir`, and waits until `/-/ready` answers 200. A port taken in between is retried on another one.
 * @throws {Error} with an install hint if the binary is missing, or with its output if it does not start.
 */
async function startPrometheus(dir: string, config: object): Promise<RunningPrometheus> {
  const configPath = join(dir, 'prometheus.yml');
  await writeFile(configPath, JSON.stringify(config, null, 2));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(
      PROMETHEUS,
      [`--config.file=${configPath}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=info'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let failure: string | undefined;
    child.once('error', (error) => (failure = `cannot run ${PROMETHEUS}: ${error.message}; install it with \`apt-get install -y prometheus\``));
    child.once('exit', (code, signal) => (failure ??= `prometheus exited (${code ?? signal}) before it was ready:\n${output}`));
    const started = Date.now();
    while (failure === undefined && Date.now() - started < DEADLINE_MS) {
      const ready = await fetch(`${url}/-/ready`).then(
        async (r) => (await r.arrayBuffer(), r.ok),
        () => false,
      );
      if (ready) {
        return { url, child, output: () => output, close: () => stopChild(child) };
      }
      await sleep(200);
    }
    await stopChild(child);
    if (failure?.includes('address already in use') && attempt < 3) continue;
    throw new Error(failure ?? `prometheus did not become ready within ${DEADLINE_MS} ms:\n${output}`);
  }
}

interface QueryResult {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

/** Runs an instant PromQL query through Prometheus' HTTP API (`/api/v1/query`). */
async function query(prometheus: RunningPrometheus, promql: string): Promise<QueryResult[]> {
  const response = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await response.json()) as { status: string; data?: { result: QueryResult[] }; error?: string };
  if (body.status !== 'success') throw new Error(`query ${promql} failed: ${body.error ?? response.status}`);
  return body.data!.result;
}

/** Queries `promql` until `accept` holds for its result or the deadline passes. */
async function queryUntil(prometheus: RunningPrometheus, promql: string, accept: (r: QueryResult[]) => boolean): Promise<QueryResult[]> {
  const started = Date.now();
  let last: QueryResult[] = [];
  while (Date.now() - started < DEADLINE_MS) {
    last = await query(prometheus, promql);
    if (accept(last)) return last;
    await sleep(250);
  }
  throw new Error(`${promql} never gave the expected result within ${DEADLINE_MS} ms; last: ${JSON.stringify(last)}\n${prometheus.output()}`);
}

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

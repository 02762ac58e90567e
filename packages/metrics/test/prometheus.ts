/**
 * Debian's Prometheus server (/usr/bin/prometheus, or $PROMETHEUS_BIN) for tests: started on a
 * free 127.0.0.1 port with its own config and storage directory, queried through its HTTP API,
 * stopped by its pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';

const PROMETHEUS = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';
/** How long a test waits for Prometheus to start, scrape and answer, in ms (a scrape every second). */
export const DEADLINE_MS = 90_000;

export interface RunningPrometheus {
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
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
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
export async function startPrometheus(dir: string, config: object): Promise<RunningPrometheus> {
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

export interface QueryResult {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

/** Runs an instant PromQL query through Prometheus' HTTP API (`/api/v1/query`). */
export async function query(prometheus: RunningPrometheus, promql: string): Promise<QueryResult[]> {
  const response = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await response.json()) as { status: string; data?: { result: QueryResult[] }; error?: string };
  if (body.status !== 'success') throw new Error(`query ${promql} failed: ${body.error ?? response.status}`);
  return body.data!.result;
}

/** Queries `promql` until `accept` holds for its result or the deadline passes. */
export async function queryUntil(prometheus: RunningPrometheus, promql: string, accept: (r: QueryResult[]) => boolean): Promise<QueryResult[]> {
  const started = Date.now();
  let last: QueryResult[] = [];
  while (Date.now() - started < DEADLINE_MS) {
    last = await query(prometheus, promql);
    if (accept(last)) return last;
    await sleep(250);
  }
  throw new Error(`${promql} never gave the expected result within ${DEADLINE_MS} ms; last: ${JSON.stringify(last)}\n${prometheus.output()}`);
}


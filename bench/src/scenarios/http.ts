import { mkdirSync } from 'node:fs';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { silentLogger } from '@warren/core';
import { openAudit } from '@warren/audit';
import { dashboardDir, firstLoadBytes } from '@warren/dashboard';
import {
  openTokenStore,
  startHttpServer,
  type AgentItem,
  type BoardView,
  type Card,
  type EventPayload,
  type HttpPorts,
  type HttpServer,
} from '@warren/http';
import { createMetrics } from '@warren/metrics';
import { loadPolicy } from '@warren/policy';
import { migrateState, openRegistry, StateStore, TaskState, type LiveAgentFields } from '@warren/registry';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import { createAuthorizer, EventBus, type WarrenEvent } from '@warren/supervisor';
import type { BenchContext, Scenario } from '../lib/context.js';
import { latencyFigure, roundsFigure, type Figure } from '../lib/figure.js';
import { msSince } from '../lib/stats.js';

const SCENARIO = 'HTTP API and dashboard';
const TEMPLATES = ['shell', 'python', 'node', 'review', 'report', 'git', 'web', 'sql'];
const CAPABILITIES: Record<string, string[]> = Object.fromEntries(TEMPLATES.map((t, i) => [t, [t, TEMPLATES[(i + 1) % TEMPLATES.length]!]]));
const COLUMNS = ['backlog', 'ready', 'in-progress', 'review', 'done'];
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const TASK_STATES = [TaskState.ready, TaskState.assigned, TaskState.running, TaskState.succeeded, TaskState.failed];

/** The state a bench server reads: a real state database with its registry, policy, audit trail and tokens. */
interface Fixture {
  readonly db: SqliteDatabase;
  readonly ports: HttpPorts;
  /** Appends `events` as audit rows in one transaction and hands each to the subscribers after the commit. */
  emit(events: readonly WarrenEvent[]): void;
  /** A viewer's bearer token. */
  readonly token: string;
  close(): Promise<void>;
}

/**
 * Builds HttpPorts as the supervisor implements them, over a fresh state database in `dir` holding
 * `agents` agent rows and `tasks` task rows: the repository's policy through the supervisor's
 * `createAuthorizer` (one audited `policy.decide` row per request), its `EventBus` for the audit
 * rows, `@warren/registry` for the queries, a board of `tasks` cards held in memory (as the
 * supervisor's board mirror is), live fields for every agent.
 */
async function fixture(ctx: BenchContext, dir: string, agents: number, tasks: number): Promise<Fixture> {
  mkdirSync(dir, { recursive: true });
  const db = openDatabase(join(dir, 'warren.db'));
  const audit = openAudit(db);
  migrateState(db);
  const state = new StateStore(db);
  const registry = openRegistry(db, { stateDir: dir, supervisorPid: process.pid, audit, state });
  const nowMs = Date.now();
  db.transaction(() => {
    for (let i = 0; i < agents; i++) {
      const template = TEMPLATES[i % TEMPLATES.length]!;
      state.putAgent({ name: `${template}-${i + 1}`, template, uid: 20_000 + i, state: 'running', pid: 100_000 + i, startedMs: nowMs - 60_000, stoppedMs: null, lastExit: null });
    }
    for (let i = 0; i < tasks; i++) {
      const taskState = TASK_STATES[i % TASK_STATES.length]!;
      const waiting = taskState === TaskState.ready;
      state.putTask({
        id: `task-${i + 1}`,
        path: `ready/task-${i + 1}.md`,
        state: taskState,
        attempt: waiting ? 0 : 1,
        agent: waiting ? null : `shell-${(i % Math.max(1, agents)) + 1}`,
        reason: null,
        boardHash: null,
        boardSync: 'clean',
        updatedMs: nowMs - i,
        notBeforeMs: null,
        readySinceMs: nowMs - 30_000,
        queuePosition: waiting ? Math.floor(i / TASK_STATES.length) + 1 : null,
        queueReason: waiting ? 'no idle agent with the capabilities [shell]' : null,
      });
    }
  })();
  const cards: Card[] = [];
  for (let i = 0; i < tasks; i++) {
    const template = TEMPLATES[i % TEMPLATES.length]!;
    cards.push({
      id: `task-${i + 1}`,
      title: `Task number ${i + 1}: count the lines of the report`,
      column: COLUMNS[i % COLUMNS.length]!,
      priority: 'medium',
      capabilities: [template],
      dependsOn: [],
      state: TASK_STATES[i % TASK_STATES.length]!,
      agent: null,
      queuePosition: null,
      queueReason: null,
      path: `ready/task-${i + 1}.md`,
    });
  }
  const board: BoardView = {
    format: 'warren',
    columns: COLUMNS.map((name) => ({ name, wip: null, count: cards.filter((c) => c.column === name).length, over: false })),
    held: [],
    cards,
  };

  const bus = new EventBus({ db, audit, logger: silentLogger });
  const listeners = new Set<(event: EventPayload) => void>();
  const deliver = (payloads: readonly EventPayload[]) => {
    for (const payload of payloads) for (const listener of listeners) listener(payload);
  };
  const emit = (events: readonly WarrenEvent[]): void => {
    const payloads = bus.transaction(() =>
      events.map((event) => {
        const row = bus.emit(event);
        return { seq: row.seq, ts: row.timeMs, kind: event.action, actor: row.actor, object: row.object, decision: row.decision, details: event.details ?? null };
      }),
    );
    deliver(payloads);
  };
  const policy = await loadPolicy({ modelPath: join(ctx.repoRoot, 'policies', 'model.conf'), policyPath: join(ctx.repoRoot, 'policies', 'policy.csv') });
  const authorizer = createAuthorizer({ policy, emit: (event) => emit([event]), logger: silentLogger });
  const tokens = openTokenStore(db);
  const { token } = tokens.create({ name: 'bench', role: 'viewer' }, nowMs);
  const metrics = createMetrics({ instance: 'bench', defaultMetrics: false, sources: { tasksByState: () => registry.status().tasks } });
  const startedMs = Date.now();
  const live = (name: string): LiveAgentFields => ({ status: 'idle', load: name.length % 2, lastHeartbeatMs: startedMs, usage: { cpuMs: 1520, memoryBytes: 8_388_608, pids: 3 } });

  const ports: HttpPorts = {
    registry,
    authorizer,
    tokens,
    instance: 'bench',
    version: '0.1.0',
    startedMs,
    agents(): AgentItem[] {
      const now = Date.now();
      return registry.agents({ live }).map((row) => ({
        name: row.name,
        template: row.template,
        uid: row.uid,
        gid: row.uid,
        home: `/home/warren/${row.name}`,
        state: row.state,
        pid: row.pid,
        startedMs: row.startedMs,
        stoppedMs: row.stoppedMs,
        lastExit: null,
        tasksDone: row.tasksDone,
        capabilities: CAPABILITIES[row.template] ?? [],
        wip: 1,
        live: row.live
          ? {
              status: row.live.status,
              load: row.live.load,
              lastHeartbeatMs: row.live.lastHeartbeatMs,
              uptimeMs: row.startedMs === null ? null : now - row.startedMs,
              cpuMs: row.live.usage?.cpuMs ?? null,
              memoryBytes: row.live.usage?.memoryBytes ?? null,
              memoryLimitBytes: 268_435_456,
              pids: row.live.usage?.pids ?? null,
            }
          : null,
      }));
    },
    accounts: () => [],
    templates: () => [],
    board: () => Promise.resolve(board),
    taskExtras: (id) => {
      const card = cards[Number(id.slice('task-'.length)) - 1];
      return { title: card?.title ?? null, column: card?.column ?? null, traceId: null, output: '' };
    },
    createTask: () => Promise.reject(new Error('the bench creates no tasks')),
    agentLog: () => undefined,
    messages: () => ({ messages: [], edges: [] }),
    analytics: () => ({
      ...registry.analytics(),
      series: [],
      rates: { success: 0, failure: 0, retry: 0 },
      utilisation: [],
      capabilities: [],
      incidents: { crashRecoveries: 0, watchdogKills: 0, retries: 0, spawnFailures: 0 },
    }),
    verifyAudit: () => Promise.resolve({ ok: true, rows: audit.lastSeq(), signed: false, checkpoints: { count: 0, lastSeq: null, lastMs: null }, unsignedRows: audit.lastSeq() }),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    metrics: () => metrics.text(),
    requestTick: () => {},
  };
  let closing: Promise<void> | undefined;
  return {
    db,
    ports,
    emit,
    token,
    close() {
      closing ??= (async () => {
        listeners.clear();
        await bus.close();
        await metrics.close();
        db.close();
      })();
      return closing;
    },
  };
}

/** GETs `url` with `headers` over `agent` and reads the whole body; resolves with the status and byte count. */
function get(agent: Agent, url: string, headers: Record<string, string>): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent, headers }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** `count` sequential GETs of `url` (keep-alive), each timed to its last byte; throws on a non-200 answer. */
async function timeGets(agent: Agent, url: string, headers: Record<string, string>, count: number): Promise<{ ms: number[]; bytes: number }> {
  const ms: number[] = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    const answer = await get(agent, url, headers);
    ms.push(msSince(start));
    if (answer.status !== 200) throw new Error(`GET ${url} answered ${answer.status}`);
    bytes = answer.bytes;
  }
  return { ms, bytes };
}

/** Baseline: node:http alone answering `body()` as JSON (the same query and JSON.stringify, no framework, no auth). */
async function rawServer(body: () => unknown): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) => {
    Promise.resolve(body()).then(
      (value) => res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(value)),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A list endpoint: the API route and its node:http baseline, p50/p99 over a real loopback port. */
async function listFigures(
  ctx: BenchContext,
  server: HttpServer,
  f: Fixture,
  spec: { readonly key: string; readonly path: string; readonly label: string; readonly raw: () => unknown; readonly perRound: number },
): Promise<Figure[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const raw = await rawServer(spec.raw);
  try {
    const auth = { authorization: `Bearer ${f.token}` };
    await timeGets(agent, `${raw.url}${spec.path}`, {}, ctx.warmup * 2);
    await timeGets(agent, `${server.url}${spec.path}`, auth, ctx.warmup * 2);
    const rawSamples: number[][] = [];
    const apiSamples: number[][] = [];
    let bytes = 0;
    for (let round = 0; round < ctx.rounds; round++) {
      rawSamples.push((await timeGets(agent, `${raw.url}${spec.path}`, {}, spec.perRound)).ms);
      const api = await timeGets(agent, `${server.url}${spec.path}`, auth, spec.perRound);
      apiSamples.push(api.ms);
      bytes = api.bytes;
    }
    return [
      latencyFigure(
        {
          id: `http.raw.${spec.key}`,
          scenario: SCENARIO,
          name: `node:http + JSON.stringify of the same ${spec.label}`,
          unit: 'ms',
          better: 'lower',
          note: 'baseline: the query and its JSON on a bare node:http server (no routing, validation, auth or audit row)',
        },
        rawSamples,
      ),
      latencyFigure(
        {
          id: `http.${spec.key}`,
          scenario: SCENARIO,
          name: `GET ${spec.path}, ${spec.label}`,
          unit: 'ms',
          better: 'lower',
          baseline: `http.raw.${spec.key}`,
          note: `one request at a time over keep-alive, timed to the last byte (${(bytes / 1024 / 1024).toFixed(1)} MiB); bearer token, authorize() with its audit row, zod response schema`,
        },
        apiSamples,
      ),
    ];
  } finally {
    agent.destroy();
    await raw.close();
  }
}

/** One SSE client: parses frames, records each bench event's lag (ms) and the events it got. */
interface SseClient {
  readonly lags: number[];
  received: number;
  ended: boolean;
  close(): void;
}

function openSse(url: string, token: string, onEvent: (payload: EventPayload) => void): Promise<{ res: IncomingMessage; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/api/v1/events?kinds=task.start`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`GET /api/v1/events answered ${res.statusCode}`));
        res.resume();
        return;
      }
      res.setEncoding('utf8');
      let buffer = '';
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = frame
            .split('\n')
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).trimStart())
            .join('\n');
          if (data) onEvent(JSON.parse(data) as EventPayload);
        }
      });
      resolve({ res, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * SSE delivery: `clients` streams of `GET /api/v1/events`, while events are committed (audit row
 * each, 20 per transaction every 10 ms) at `rate` per second for `seconds` and handed to the
 * server's subscribe port. Returns per-event lag (commit start → parsed by the client, ms) and how
 * many each client missed.
 */
async function sseRound(server: HttpServer, f: Fixture, clients: number, rate: number, seconds: number): Promise<{ lags: number[]; dropped: number; sent: number; ratePerS: number }> {
  const list: SseClient[] = [];
  try {
    for (let i = 0; i < clients; i++) {
      const client: SseClient = { lags: [], received: 0, ended: false, close: () => {} };
      const stream = await openSse(server.url, f.token, (payload) => {
        const details = payload.details as { sentMs?: number; probe?: boolean } | null;
        if (details?.probe) {
          client.ended = false;
          return;
        }
        if (typeof details?.sentMs === 'number') {
          client.lags.push(performance.now() - details.sentMs);
          client.received += 1;
        }
      });
      stream.res.on('close', () => (client.ended = true));
      client.close = () => stream.close();
      client.ended = true; // until its probe arrives
      list.push(client);
    }
    // Every stream is live once it has the probe event.
    const deadline = Date.now() + 30_000;
    while (list.some((c) => c.ended) && Date.now() < deadline) {
      const details = { attempt: 1, probe: true }; // a task.start with the bench's own fields
      f.emit([{ actor: 'supervisor', action: 'task.start', object: 'task:probe', details }]);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (list.some((c) => c.ended)) throw new Error('an event stream never received the probe event');

    const perTick = Math.round(rate / 100);
    const start = performance.now();
    let sent = 0;
    const total = rate * seconds;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate) + perTick);
      if (due > sent) {
        const events: WarrenEvent[] = [];
        const sentMs = performance.now();
        for (; sent < due; sent++) {
          const details = { attempt: 1, sentMs, n: sent };
          events.push({ actor: 'supervisor', action: 'task.start', object: `task:t-${sent}`, details });
        }
        f.emit(events);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const ratePerS = sent / ((performance.now() - start) / 1000);
    // Wait for the tail (a generous deadline; a client cut off never completes).
    const until = Date.now() + 15_000;
    while (list.some((c) => c.received < sent && !c.ended) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
    return {
      lags: list.flatMap((c) => c.lags),
      dropped: list.reduce((n, c) => n + (sent - c.received), 0),
      sent: sent * clients,
      ratePerS,
    };
  } finally {
    for (const c of list) c.close();
  }
}

/** The dashboard's first load in Debian's chromium: bytes of every static response, raw and gzip (the default level, as firstLoadBytes counts). */
async function firstLoad(url: string, path: string): Promise<{ raw: number; gzip: number; files: number; apiCalls: number }> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const bodies: Promise<Buffer>[] = [];
    let apiCalls = 0;
    page.on('response', (response) => {
      const { pathname } = new URL(response.url());
      if (pathname.startsWith('/api/') && response.status() === 200) apiCalls += 1;
      if (!response.url().startsWith(url) || pathname.startsWith('/api/') || pathname === '/signin' || response.status() !== 200) return;
      bodies.push(response.body());
    });
    await page.goto(`${url}${path}`, { waitUntil: 'networkidle' });
    const all = await Promise.all(bodies);
    return { raw: all.reduce((n, b) => n + b.length, 0), gzip: all.reduce((n, b) => n + gzipSync(b).length, 0), files: all.length, apiCalls };
  } finally {
    await browser.close();
  }
}

/**
 * The HTTP API (issue 13's benchmarks): `GET /api/v1/agents` with 10,000 agents and
 * `GET /api/v1/tasks` with 20,000 tasks (p50, p99) over a real loopback port against node:http
 * serving the same JSON; SSE delivery at 2,000 events/s to 1 and 10 clients (lag p50/p99, drops);
 * the dashboard's first-load bytes in Debian's chromium.
 */
export const httpScenario: Scenario = {
  id: 'http',
  title: SCENARIO,
  async run(ctx: BenchContext): Promise<Figure[]> {
    const figures: Figure[] = [];
    const agents = ctx.quick ? 1000 : 10_000;
    const tasks = ctx.quick ? 2000 : 20_000;
    ctx.progress(`http: a state database with ${agents.toLocaleString('en')} agents and ${tasks.toLocaleString('en')} tasks`);
    const f = await fixture(ctx, join(ctx.scratchDir, 'http'), agents, tasks);
    let server: HttpServer | undefined;
    try {
      server = await startHttpServer(f.ports, { host: '127.0.0.1', port: 0, staticDir: dashboardDir(), rateLimit: false });
      ctx.progress(`http: GET /api/v1/agents with ${agents.toLocaleString('en')} agents`);
      figures.push(
        ...(await listFigures(ctx, server, f, {
          key: `agents.${agents / 1000}k`,
          path: '/api/v1/agents',
          label: `${agents.toLocaleString('en')} agents`,
          raw: () => ({ agents: f.ports.agents() }),
          perRound: ctx.quick ? 5 : 20,
        })),
      );
      ctx.progress(`http: GET /api/v1/tasks with ${tasks.toLocaleString('en')} tasks`);
      figures.push(
        ...(await listFigures(ctx, server, f, {
          key: `tasks.${tasks / 1000}k`,
          path: '/api/v1/tasks',
          label: `${tasks.toLocaleString('en')} tasks`,
          raw: async () => {
            const cards = new Map((await f.ports.board()).cards.map((c) => [c.id, c]));
            return { tasks: f.ports.registry.tasks().map((t) => ({ ...t, title: cards.get(t.id)?.title ?? null, column: cards.get(t.id)?.column ?? null })) };
          },
          perRound: ctx.quick ? 5 : 20,
        })),
      );

      const rate = 2000;
      const seconds = ctx.quick ? 1 : 3;
      for (const clients of ctx.quick ? [1] : [1, 10]) {
        ctx.progress(`http: SSE at ${rate} events/s to ${clients} client(s)`);
        const lags: number[][] = [];
        const drops: number[] = [];
        const rates: number[] = [];
        await sseRound(server, f, clients, rate, 1); // warm-up
        for (let round = 0; round < ctx.rounds; round++) {
          const r = await sseRound(server, f, clients, rate, seconds);
          lags.push(r.lags);
          drops.push(r.dropped / r.sent);
          rates.push(r.ratePerS);
        }
        figures.push(
          latencyFigure(
            {
              id: `http.sse.${clients}`,
              scenario: SCENARIO,
              name: `SSE delivery lag at ${rate.toLocaleString('en')} events/s, ${clients} client${clients > 1 ? 's' : ''}`,
              unit: 'ms',
              better: 'lower',
              note: `from the start of the commit (20 audit rows per transaction every 10 ms) to the event parsed by the client, same process; ${seconds} s per round, achieved ${Math.round(rates.reduce((a, b) => a + b, 0) / rates.length)} events/s`,
            },
            lags,
          ),
          roundsFigure(
            {
              id: `http.sse.${clients}.dropped`,
              scenario: SCENARIO,
              name: `SSE events not delivered at ${rate.toLocaleString('en')} events/s, ${clients} client${clients > 1 ? 's' : ''}`,
              unit: 'fraction',
              better: 'lower',
              note: 'events a client had not received 15 s after the last was sent (a client too far behind is cut off and would resume with Last-Event-ID)',
            },
            drops,
          ),
        );
      }
      ctx.progress('http: the dashboard first load in chromium');
      const signedOut: number[] = [];
      const signedOutRaw: number[] = [];
      const signedIn: number[] = [];
      let files = 0;
      let apiCalls = 0;
      for (let round = 0; round < Math.min(ctx.rounds, 2); round++) {
        const out = await firstLoad(server.url, '/');
        signedOut.push(out.gzip);
        signedOutRaw.push(out.raw);
        files = out.files;
        const inside = await firstLoad(server.url, `/signin?token=${encodeURIComponent(f.token)}`);
        signedIn.push(inside.gzip);
        apiCalls = inside.apiCalls;
      }
      const declared = firstLoadBytes();
      figures.push(
        roundsFigure(
          {
            id: 'http.dashboard.first-load.gzip',
            scenario: SCENARIO,
            name: 'dashboard first load, signed out (sign-in view), gzip',
            unit: 'bytes',
            better: 'lower',
            targets: [{ stat: 'median', op: '<=', value: 300 * 1024 }],
            note: `${files} files as chromium fetched them (no API responses), each gzipped on its own; the build's own count of the first load (firstLoadBytes): ${declared.toLocaleString('en')} bytes`,
          },
          signedOut,
        ),
        roundsFigure(
          { id: 'http.dashboard.first-load.raw', scenario: SCENARIO, name: 'dashboard first load, signed out, uncompressed', unit: 'bytes', better: 'lower' },
          signedOutRaw,
        ),
        roundsFigure(
          {
            id: 'http.dashboard.signed-in.gzip',
            scenario: SCENARIO,
            name: 'dashboard first load through the sign-in link (fleet view), gzip',
            unit: 'bytes',
            better: 'lower',
            targets: [{ stat: 'median', op: '<=', value: 300 * 1024 }],
            note: `static files only; the ${apiCalls} API answers it loaded are not counted`,
          },
          signedIn,
        ),
      );
    } finally {
      await server?.close();
      await f.close();
    }
    return figures;
  },
};

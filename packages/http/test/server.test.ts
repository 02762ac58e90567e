import { connect } from 'node:net';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createSignInLink, parseListenAddress, startHttpServer, type EventPayload, type HttpServer, type HttpServerOptions } from '@warren/http';
import { openTestPorts, type TestPorts } from './support.js';

interface Served {
  readonly server: HttpServer;
  readonly ports: TestPorts;
  readonly auth: { authorization: string };
}

async function serve(options: HttpServerOptions = {}): Promise<Served> {
  const ports = await openTestPorts();
  const server = await startHttpServer(ports, { port: 0, rateLimit: false, validateResponses: true, ...options });
  onTestFinished(async () => {
    await server.close();
    ports.close();
  });
  const token = ports.tokens.create({ name: 'vera', role: 'viewer' }, Date.now()).token;
  return { server, ports, auth: { authorization: `Bearer ${token}` } };
}

/** Waits until `condition()` holds, checking every 10 ms, failing after `timeoutMs`. */
async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface SseEvent {
  readonly id: number;
  readonly event: string;
  readonly data: EventPayload;
}

/** Opens an event stream with fetch and collects its events as they arrive. */
async function openStream(url: string, headers: Record<string, string>) {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let ended = false;
  const reading = (async () => {
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = new Map<string, string>();
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line);
            const colon = line.indexOf(': ');
            if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 2));
          }
          if (fields.has('data')) events.push({ id: Number(fields.get('id')), event: fields.get('event')!, data: JSON.parse(fields.get('data')!) as EventPayload });
        }
      }
    } catch {
      // aborted
    } finally {
      ended = true;
    }
  })();
  onTestFinished(async () => {
    controller.abort();
    await reading;
  });
  return {
    res,
    events,
    comments,
    get ended() {
      return ended;
    },
    close: async () => {
      controller.abort();
      await reading;
    },
  };
}

describe('a real port', () => {
  test('serves the API over HTTP with the security headers, and parses --http addresses', async () => {
    const { server, auth } = await serve();
    expect(server.url).toBe(`http://127.0.0.1:${server.address.port}`);
    const res = await fetch(`${server.url}/api/v1/status`, { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(((await res.json()) as { instance: string }).instance).toBe('test');
    const viaLocalhost = await fetch(`http://localhost:${server.address.port}/api/v1/status`, { headers: auth });
    expect(viaLocalhost.status).toBe(200);
    expect(parseListenAddress('off')).toBe(false);
    expect(parseListenAddress('127.0.0.1:7070')).toEqual({ host: '127.0.0.1', port: 7070 });
    expect(parseListenAddress(':8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseListenAddress('[::1]:7070')).toEqual({ host: '::1', port: 7070 });
    expect(() => parseListenAddress('7070')).toThrow(/--http '7070' must be host:port/);
    expect(() => parseListenAddress('host:99999')).toThrow(/must be host:port/);
  });

  test('the rate limit answers 429 with the documented body once a token has used its share', async () => {
    const { server, auth } = await serve({ rateLimit: { max: 3, timeWindowMs: 60_000 } });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i += 1) statuses.push((await fetch(`${server.url}/api/v1/status`, { headers: auth })).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const limited = await fetch(`${server.url}/api/v1/status`, { headers: auth });
    expect(await limited.json()).toMatchObject({ error: 'rate_limited', message: expect.stringMatching(/too many requests/) as unknown });
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
  });
});

describe('the sign-in link', () => {
  test('warren up can print a link that signs a browser in as an operator; a second link replaces the first', async () => {
    const { server, ports } = await serve();
    const first = createSignInLink(ports.tokens, server.url, { nowMs: Date.now() });
    expect(first.url).toMatch(new RegExp(`^${server.url}/signin\\?token=wrn_[A-Za-z0-9_-]{43}$`));
    const res = await fetch(first.url, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
    const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
    const session = await fetch(`${server.url}/api/v1/session`, { headers: { cookie } });
    expect(await session.json()).toEqual({ name: 'local-operator', role: 'operator', expiresMs: first.expiresMs });
    const second = createSignInLink(ports.tokens, `${server.url}/`, { nowMs: Date.now(), ttlMs: 60_000 });
    expect(second.url.startsWith(`${server.url}/signin?token=`)).toBe(true);
    expect((await fetch(`${server.url}/api/v1/session`, { headers: { cookie } })).status).toBe(401);
    expect((await fetch(first.url, { redirect: 'manual' })).status).toBe(401);
  });
});

describe('server-sent events', () => {
  test('without Last-Event-ID a stream gets live events only, filtered by kind, with ping comments', async () => {
    const { server, ports, auth } = await serve({ events: { pingIntervalMs: 50 } });
    ports.emit({ actor: 'supervisor', action: 'task.assign', object: 'task:old' });
    const stream = await openStream(`${server.url}/api/v1/events?kinds=task.*,agent.start`, auth);
    expect(stream.res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    await until(() => ports.subscribers === 1, 'the stream to subscribe');
    ports.emit({ actor: 'supervisor', action: 'agent.stop', object: 'agent:shell-1' });
    ports.emit({ actor: 'supervisor', action: 'agent.start', object: 'agent:shell-1' });
    const last = ports.emit({ actor: 'supervisor', action: 'task.complete', object: 'task:new', details: { attempt: 1 } });
    await until(() => stream.events.length === 2, 'two events');
    expect(stream.events.map((e) => [e.event, e.data.object])).toEqual([
      ['agent.start', 'agent:shell-1'],
      ['task.complete', 'task:new'],
    ]);
    expect(stream.events[1]).toEqual({ id: last.seq, event: 'task.complete', data: { seq: last.seq, ts: last.timeMs, kind: 'task.complete', actor: 'supervisor', object: 'task:new', decision: null, details: { attempt: 1 } } });
    await until(() => stream.comments.includes(': ping'), 'a ping');
  });

  test('resuming with Last-Event-ID gets exactly the missed events, then live ones, in order, while events keep coming', async () => {
    const { server, ports, auth } = await serve({ events: { pageSize: 7 } });
    for (let i = 0; i < 100; i += 1) ports.emit({ actor: 'supervisor', action: 'task.assign', object: `task:t${i}` });
    const resumeAfter = 40;
    // Events keep being appended while the stream catches up page by page.
    let emitting = true;
    const emitter = (async () => {
      while (emitting) {
        ports.emit({ actor: 'supervisor', action: 'task.start', object: 'task:live' });
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const stream = await openStream(`${server.url}/api/v1/events`, { ...auth, 'last-event-id': String(resumeAfter) });
    await until(() => stream.events.length >= 150, '150 events');
    emitting = false;
    await emitter;
    const last = ports.emit({ actor: 'supervisor', action: 'task.complete', object: 'task:final' });
    await until(() => stream.events.some((e) => e.id === last.seq), 'the last event');
    const ids = stream.events.map((e) => e.id);
    expect(ids[0]).toBe(resumeAfter + 1);
    expect(ids).toEqual(Array.from({ length: last.seq - resumeAfter }, (_, i) => resumeAfter + 1 + i));
    const rows = ports.registry.auditPage({ after: resumeAfter, limit: 100_000 }).rows;
    expect(stream.events.map((e) => [e.id, e.event, e.data.object])).toEqual(rows.map((r) => [r.seq, r.action, r.object]));
  });

  test('?after= resumes like Last-Event-ID; a bad Last-Event-ID is 400', async () => {
    const { server, ports, auth } = await serve();
    for (let i = 0; i < 5; i += 1) ports.emit({ actor: 'supervisor', action: 'agent.start', object: `agent:a${i}` });
    const stream = await openStream(`${server.url}/api/v1/events?after=3&kinds=agent.*`, auth);
    await until(() => stream.events.length === 2, 'two events');
    expect(stream.events.map((e) => e.data.object)).toEqual(['agent:a3', 'agent:a4']);
    const bad = await fetch(`${server.url}/api/v1/events`, { headers: { ...auth, 'last-event-id': 'abc' } });
    expect(bad.status).toBe(400);
  });

  test('a client that does not read is disconnected once its buffer is full', async () => {
    const { server, ports, auth } = await serve({ events: { maxBufferedBytes: 64 * 1024 } });
    const socket = connect(server.address.port, '127.0.0.1');
    onTestFinished(() => {
      socket.destroy();
    });
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(`GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:${server.address.port}\r\nAuthorization: ${auth.authorization}\r\n\r\n`);
    socket.pause();
    await until(() => ports.subscribers === 1, 'the stream to subscribe');
    const big = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 2_000 && ports.subscribers > 0; i += 1) {
      ports.emit({ actor: 'supervisor', action: 'agent.log', object: 'agent:shell-1', details: { big } });
      if (i % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => ports.subscribers === 0, 'the slow client to be cut off');
    socket.resume();
    await until(() => closed, 'the socket to close');
  });

  test('closing the server ends its open streams first', async () => {
    const { server, ports, auth } = await serve();
    const stream = await openStream(`${server.url}/api/v1/events`, auth);
    await until(() => ports.subscribers === 1, 'the stream to subscribe');
    await server.close();
    await server.close();
    await until(() => stream.ended, 'the stream to end');
    expect(ports.subscribers).toBe(0);
  });
});

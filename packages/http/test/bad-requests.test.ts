import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { describe, expect, onTestFinished, test } from 'vitest';
import { startHttpServer } from '@warren/http';
import { testApp } from './app-support.js';
import { agentItem, openTestPorts, taskRow } from './support.js';

/** The statuses the contract documents for bad input; anything else (above all a 5xx) is a defect. */
const DOCUMENTED_4XX = new Set([400, 401, 403, 404, 405, 409, 413, 414, 415, 429, 431]);

describe('bad requests through inject()', () => {
  test('invalid JSON, an empty JSON body, a wrong content type, an oversized body and unknown routes get their 4xx as JSON', async () => {
    const { app, operator } = await testApp();
    const post = (payload: string, contentType: string) => app.inject({ method: 'POST', url: '/api/v1/tasks', headers: { ...operator, 'content-type': contentType }, payload });
    const invalid = await post('{"title": ', 'application/json');
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json()).toMatchObject({ error: 'invalid_request', message: expect.any(String) as unknown });
    expect((await post('', 'application/json')).json()).toMatchObject({ error: 'invalid_request' });
    const wrongType = await post('title=x', 'application/x-www-form-urlencoded');
    expect(wrongType.statusCode).toBe(415);
    expect(wrongType.json()).toMatchObject({ error: 'unsupported_media_type' });
    expect((await post('x', 'text/plain')).statusCode).toBe(415);
    const big = await post(JSON.stringify({ title: 'x', body: 'y'.repeat(70 * 1024) }), 'application/json');
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ error: 'payload_too_large' });
    const proto = await post('{"title":"x","__proto__":{"admin":true}}', 'application/json');
    expect(proto.statusCode).toBe(400);
    for (const [method, url] of [
      ['GET', '/api/v1/nothing'],
      ['GET', '/api/v2/agents'],
      ['PUT', '/api/v1/agents'],
      ['PATCH', '/api/v1/tasks/t1'],
      ['GET', '/%zz'],
    ] as const) {
      const res = await app.inject({ method, url, headers: operator });
      expect(res.statusCode, `${method} ${url}`).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, `${method} ${url}`).toBeLessThan(500);
      expect(res.json<{ error: string }>().error, `${method} ${url}`).toMatch(/^(not_found|invalid_request)$/);
    }
    const long = await app.inject({ url: `/api/v1/agents/${'a'.repeat(300)}`, headers: operator });
    expect(long.statusCode).toBe(400);
  });
});

/** A `gc()` without `--expose-gc`: V8's flag set at run time, the function taken from a fresh context. */
function collectGarbage(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Sends `bytes` on a new connection and reads the status of the first response; null when the server closed without one. */
function rawExchange(port: number, bytes: Uint8Array): Promise<number | null> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    const finish = () => {
      socket.destroy();
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(received);
      resolve(match ? Number(match[1]) : null);
    };
    socket.setTimeout(30_000, finish);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.includes('\r\n\r\n')) finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('connect', () => socket.end(bytes));
  });
}

/** One HTTP request with node's client; resolves with the status. */
function exchange(port: number, method: string, path: string, headers: Record<string, string>, body: Uint8Array | undefined): Promise<number | null> {
  return new Promise((resolve) => {
    let req;
    try {
      req = httpRequest({ host: '127.0.0.1', port, method, path, headers, timeout: 30_000, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? null));
        res.on('error', () => resolve(res.statusCode ?? null));
      });
    } catch {
      resolve(-1); // node's client refuses the request itself: nothing reached the server
      return;
    }
    req.on('error', () => resolve(null));
    req.on('timeout', () => req.destroy());
    req.end(body);
  });
}

const ROUTE_PATHS = [
  '/api/v1/status',
  '/api/v1/agents',
  '/api/v1/agents/shell-1',
  '/api/v1/agents/shell-1/log',
  '/api/v1/agents/shell-1/stop',
  '/api/v1/agents/shell/start',
  '/api/v1/tasks',
  '/api/v1/tasks/t1',
  '/api/v1/tasks/t1/cancel',
  '/api/v1/executions',
  '/api/v1/audit',
  '/api/v1/audit/verify',
  '/api/v1/messages',
  '/api/v1/analytics',
  '/api/v1/usage',
  '/api/v1/commands/1',
  '/api/v1/session',
  '/api/v1/openapi.json',
  '/signin',
  '/metrics',
  '/assets/x.js',
  '/',
];

describe('random requests over a real socket', () => {
  test('a thousand random requests get only documented answers, never a 5xx; the server answers afterwards and its heap stays bounded', async () => {
    const ports = await openTestPorts();
    const server = await startHttpServer(ports, { port: 0, rateLimit: { max: 1_000_000, timeWindowMs: 60_000 } });
    onTestFinished(async () => {
      await server.close();
      ports.close();
    });
    ports.agentItems = [agentItem('shell-1')];
    ports.registry.state.putAgent({ name: 'shell-1', template: 'shell', uid: 1_900_000_001, state: 'running', pid: 1, startedMs: 1, stoppedMs: null, lastExit: null });
    ports.registry.state.putTask(taskRow('t1'));
    const port = server.address.port;
    const host = `127.0.0.1:${port}`;
    const viewer = ports.tokens.create({ name: 'vera', role: 'viewer' }, Date.now()).token;
    const operator = ports.tokens.create({ name: 'olga', role: 'operator' }, Date.now()).token;
    const gc = collectGarbage();

    const headerValue = fc.string({ unit: fc.constantFrom(...'abcXYZ019 -_./:;=,*"{}[]'.split('')), maxLength: 40 });
    const path = fc.oneof(
      fc.constantFrom(...ROUTE_PATHS),
      fc.tuple(fc.constantFrom(...ROUTE_PATHS), fc.string({ maxLength: 30 })).map(([p, q]) => `${p}?${encodeURIComponent(q).replace(/%3D/g, '=').replace(/%26/g, '&')}`),
      fc.tuple(fc.constantFrom(...ROUTE_PATHS), fc.stringMatching(/^[A-Za-z0-9%._~!$&'()*+,;=:@/-]{0,300}$/)).map(([p, tail]) => `${p}/${tail}`),
      fc.stringMatching(/^\/[A-Za-z0-9%._~!$&'()*+,;=:@/?-]{0,200}$/),
    );
    const structured = fc.record({
      kind: fc.constant('http' as const),
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
      path,
      auth: fc.constantFrom('viewer', 'operator', 'operator', 'none', 'garbage', 'cookie'),
      origin: fc.constantFrom(undefined, undefined, undefined, `http://${host}`, 'http://evil.example', 'null'),
      hostHeader: fc.constantFrom(host, host, host, host, host, 'evil.example', `localhost:${port}`),
      contentType: fc.constantFrom(undefined, 'application/json', 'application/json; charset=utf-8', 'text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'garbage'),
      extra: fc.dictionary(fc.oneof(fc.stringMatching(/^x-[a-z]{1,10}$/), fc.constantFrom('cookie', 'accept', 'accept-encoding', 'range', 'if-none-match', 'if-modified-since', 'x-forwarded-for', 'last-event-id')), headerValue, { maxKeys: 4 }),
      body: fc.oneof(
        fc.constant(undefined),
        fc.uint8Array({ maxLength: 2048 }),
        fc.json().map((j) => new TextEncoder().encode(j)),
        fc.record({ title: fc.string({ maxLength: 300 }), priority: fc.string({ maxLength: 10 }) }).map((o) => new TextEncoder().encode(JSON.stringify(o))),
        fc.integer({ min: 60 * 1024, max: 200 * 1024 }).map((n) => new Uint8Array(n).fill(0x7b)),
      ),
    });
    const raw = fc.record({
      kind: fc.constant('raw' as const),
      bytes: fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 4096 }),
        fc.tuple(fc.constantFrom('GET', 'POST', 'BREW', ''), fc.uint8Array({ maxLength: 200 })).map(
          ([m, junk]) => new Uint8Array([...new TextEncoder().encode(`${m} /api/v1/status HTTP/1.1\r\nHost: ${host}\r\n`), ...junk, 13, 10, 13, 10]),
        ),
      ),
    });
    const samples = fc.sample(fc.oneof({ arbitrary: structured, weight: 4 }, { arbitrary: raw, weight: 1 }), { numRuns: 1000, seed: 20_261_206 });

    const baseline = (): number => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    // Warm up: the first requests compile schemas and fill caches that then stay.
    for (let i = 0; i < 50; i += 1) await exchange(port, 'GET', '/api/v1/status', { host, authorization: `Bearer ${viewer}` }, undefined);
    const before = baseline();

    const unexpected: string[] = [];
    let sessionCookie = '';
    const signIn = await exchange(port, 'POST', '/api/v1/session', { host, 'content-type': 'application/json' }, new TextEncoder().encode(JSON.stringify({ token: viewer })));
    expect(signIn).toBe(204);
    await new Promise<void>((resolve) => {
      httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/session', headers: { host, 'content-type': 'application/json' } }, (res) => {
        sessionCookie = String(res.headers['set-cookie']?.[0] ?? '').split(';')[0]!;
        res.resume();
        res.on('end', resolve);
      }).end(JSON.stringify({ token: operator }));
    });
    expect(sessionCookie).toMatch(/^warren_session=/);

    for (const [index, sample] of samples.entries()) {
      let status: number | null;
      let what: string;
      if (sample.kind === 'raw') {
        what = `raw ${Buffer.from(sample.bytes.subarray(0, 60)).toString('latin1')}`;
        status = await rawExchange(port, sample.bytes);
        if (status === null) continue; // closed without an answer: allowed for bytes that are not HTTP
      } else {
        const headers: Record<string, string> = { ...sample.extra, host: sample.hostHeader };
        if (sample.auth === 'viewer') headers.authorization = `Bearer ${viewer}`;
        if (sample.auth === 'operator') headers.authorization = `Bearer ${operator}`;
        if (sample.auth === 'garbage') headers.authorization = 'Bearer wrn_garbage';
        if (sample.auth === 'cookie') headers.cookie = sessionCookie;
        if (sample.origin !== undefined) headers.origin = sample.origin;
        if (sample.contentType !== undefined) headers['content-type'] = sample.contentType;
        const body = sample.method === 'GET' || sample.method === 'HEAD' ? undefined : sample.body;
        if (body !== undefined) headers['content-length'] = String(body.length);
        what = `${sample.method} ${sample.path} ${JSON.stringify({ ...headers, authorization: headers.authorization?.slice(0, 12) })} body ${body?.length ?? 0} bytes`;
        status = await exchange(port, sample.method, sample.path, headers, body);
        if (status === -1) continue;
      }
      if (status === null || status >= 500 || (status >= 400 && !DOCUMENTED_4XX.has(status))) unexpected.push(`#${index} ${String(status)} ${what}`);
    }
    expect(unexpected).toEqual([]);

    const after = baseline();
    // Generous: the heap may grow by the rate limiter's and the policy's caches, not by what a request leaves behind.
    expect(after - before).toBeLessThan(64 * 1024 * 1024);
    const status = await exchange(port, 'GET', '/api/v1/status', { host, authorization: `Bearer ${viewer}` }, undefined);
    expect(status).toBe(200);
    expect(ports.audit.verify().ok).toBe(true);
  });
});

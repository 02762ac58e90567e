import { request as httpRequest, type IncomingMessage } from 'node:http';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { WarrenError } from '@warren/core';
import { makeTempDir, type TempDir } from '@warren/testing';
import type { AgentStartSpec } from '@warren/runtime';
import { BUS_BODY_LIMIT_BYTES, BusChannel, serveBusSocket, type ServedBus } from '../src/messaging/bus-channel.js';
import { MemoryMessaging } from './messaging-memory.js';

interface Answer {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly json: unknown;
}

/** One HTTP request on the Unix socket; the answer parsed as JSON. */
function call(socketPath: string, method: string, path: string, body?: unknown, raw?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = raw !== undefined ? Buffer.from(raw) : body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = httpRequest(
      { socketPath, method, path, agent: false, headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text === '' ? undefined : (JSON.parse(text) as unknown) });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** An SSE stream opened on the socket: its events as they come. */
interface Stream {
  readonly status: number;
  readonly events: { event: string; data: unknown }[];
  readonly ended: Promise<void>;
  waitFor(n: number): Promise<void>;
  close(): void;
}

function openStream(socketPath: string, path: string): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, method: 'GET', path, agent: false }, (res) => {
      const events: { event: string; data: unknown }[] = [];
      let buffer = '';
      const listeners = new Set<() => void>();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const lines = block.split('\n').filter((l) => !l.startsWith(':'));
          if (lines.length === 0) continue;
          const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? 'message';
          const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          events.push({ event, data: JSON.parse(data) as unknown });
          for (const l of listeners) l();
        }
      });
      const ended = new Promise<void>((done) => res.on('close', done));
      resolve({
        status: res.statusCode ?? 0,
        events,
        ended,
        waitFor: (n) =>
          new Promise<void>((done, fail) => {
            const check = (): void => {
              if (events.length >= n) {
                listeners.delete(check);
                done();
              }
            };
            listeners.add(check);
            check();
            ended.then(
              () => {
                if (events.length < n) fail(new Error(`the stream ended after ${events.length} events, ${n} expected`));
              },
              () => undefined,
            );
          }),
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Waits until `check` holds, up to 10 s. */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let dir: TempDir;
let port: MemoryMessaging;
let a: ServedBus;
let b: ServedBus;

beforeEach(async () => {
  dir = await makeTempDir('warren-bus-channel-');
  port = new MemoryMessaging().addAgent('alpha-1').addAgent('beta-1').addAgent('gamma-1');
  port.allow('alpha-1', 'beta-1').allow('beta-1', 'alpha-1');
  a = await serveBusSocket({ port, agent: 'alpha-1', socketPath: join(dir.path, 'a.sock') });
  b = await serveBusSocket({ port, agent: 'beta-1', socketPath: join(dir.path, 'b.sock') });
});

afterEach(async () => {
  await a.close();
  await b.close();
  await dir.close();
});

describe('the bus socket serves the messaging port as its agent', () => {
  it('sends, receives with max and waitMs, and acknowledges; self is the socket agent, never the body', async () => {
    const sent = await call(a.socketPath, 'POST', '/v1/messages', { to: 'beta-1', body: { step: 1 } });
    expect(sent).toMatchObject({ status: 200, json: { id: expect.any(String) } });
    const again = await call(a.socketPath, 'POST', '/v1/messages', { to: 'beta-1', body: 'two', id: 'fixed-1' });
    expect(again.json).toEqual({ id: 'fixed-1' });
    expect(port.calls.filter((c) => c.method === 'send').map((c) => c.self)).toEqual(['alpha-1', 'alpha-1']);

    const first = await call(b.socketPath, 'GET', '/v1/inbox?max=1');
    expect(first.status).toBe(200);
    expect(first.json).toEqual({ messages: [expect.objectContaining({ from: 'alpha-1', body: { step: 1 }, request: false, deliveries: 1 })] });
    const rest = await call(b.socketPath, 'GET', '/v1/inbox?max=10&waitMs=0');
    expect((rest.json as { messages: { id: string }[] }).messages.map((m) => m.id)).toEqual(['fixed-1']);
    const ids = [...(first.json as { messages: { id: string }[] }).messages, ...(rest.json as { messages: { id: string }[] }).messages].map((m) => m.id);
    expect(await call(b.socketPath, 'POST', '/v1/inbox/ack', { ids: [...ids, 'unknown'] })).toMatchObject({ status: 200, json: { acked: 2 } });
    expect(port.inbox('beta-1')).toEqual([]);
    expect(port.calls.find((c) => c.method === 'receive')).toMatchObject({ self: 'beta-1', input: { max: 1 } });

    // A sender named in the body is not a field of the protocol.
    const forged = await call(a.socketPath, 'POST', '/v1/messages', { to: 'beta-1', body: 1, from: 'gamma-1' });
    expect(forged).toMatchObject({ status: 400, json: { error: { code: 'WARREN_MESSAGE_INVALID' } } });
  });

  it('a long poll answers when a message comes', async () => {
    const poll = call(b.socketPath, 'GET', '/v1/inbox?waitMs=20000');
    await until(() => port.calls.some((c) => c.method === 'receive'), 'the poll to reach the port');
    await call(a.socketPath, 'POST', '/v1/messages', { to: 'beta-1', body: 'wake up' });
    const answer = await poll;
    expect((answer.json as { messages: { body: unknown }[] }).messages.map((m) => m.body)).toEqual(['wake up']);
  });

  it('request and reply between two sockets', async () => {
    const asked = call(a.socketPath, 'POST', '/v1/requests', { to: 'beta-1', body: { q: 'ready?' }, timeoutMs: 20_000 });
    await until(() => port.inbox('beta-1').length > 0, 'the request in beta-1 inbox');
    const got = await call(b.socketPath, 'GET', '/v1/inbox');
    const request = (got.json as { messages: { id: string; from: string; request: boolean }[] }).messages[0];
    expect(request).toMatchObject({ from: 'alpha-1', request: true });
    const replied = await call(b.socketPath, 'POST', '/v1/replies', { to: request!.from, inReplyTo: request!.id, body: 'yes' });
    expect(replied).toMatchObject({ status: 200, json: { id: expect.any(String) } });
    expect((await asked).json).toMatchObject({ from: 'beta-1', inReplyTo: request!.id, body: 'yes' });
  });

  it('publishes on a topic and streams it as server-sent events; the client leaving ends the subscription', async () => {
    port.grantTopic('alpha-1', 'builds', 'publish').grantTopic('beta-1', 'builds', 'subscribe');
    const stream = await openStream(b.socketPath, '/v1/topics/builds');
    expect(stream.status).toBe(200);
    expect(port.subscriberCount('builds')).toBe(1);
    const published = await call(a.socketPath, 'POST', '/v1/topics/builds', { body: { ok: true } });
    expect(published).toMatchObject({ status: 200, json: { id: expect.any(String) } });
    await stream.waitFor(1);
    expect(stream.events[0]).toEqual({ event: 'message', data: expect.objectContaining({ from: 'alpha-1', topic: 'builds', body: { ok: true } }) });
    stream.close();
    await until(() => port.subscriberCount('builds') === 0, 'the port subscription to close');
  });

  it('a revoked subscription ends the stream with event end; closing the bus ends the others', async () => {
    port.grantTopic('beta-1', 'builds', 'subscribe').grantTopic('beta-1', 'deploys', 'subscribe');
    const builds = await openStream(b.socketPath, '/v1/topics/builds');
    const deploys = await openStream(b.socketPath, '/v1/topics/deploys');
    port.revokeTopic('beta-1', 'builds', 'subscribe', 'permission revoked');
    await builds.ended;
    expect(builds.events).toEqual([{ event: 'end', data: { reason: 'permission revoked' } }]);
    await b.close();
    await deploys.ended;
    expect(deploys.events).toEqual([{ event: 'end', data: { reason: 'the bus closed' } }]);
    expect(port.subscriberCount('deploys')).toBe(0);
    await expect(call(b.socketPath, 'GET', '/v1/presence')).rejects.toThrow(/ENOENT/);
  });

  it('presence lists the agents the caller may message', async () => {
    const answer = await call(a.socketPath, 'GET', '/v1/presence');
    expect(answer).toMatchObject({ status: 200, json: { agents: [expect.objectContaining({ name: 'beta-1', state: 'running', status: 'idle' })] } });
  });
});

describe('the bus socket errors', () => {
  const error = (status: number, code: string, message?: RegExp) => ({
    status,
    json: { error: { code, message: message ? expect.stringMatching(message) : expect.any(String) } },
  });

  it('maps the port errors: 403 policy, 404 agent, 504 timeout, 502 broker, 500 without the cause', async () => {
    expect(await call(a.socketPath, 'POST', '/v1/messages', { to: 'gamma-1', body: 1 })).toMatchObject(error(403, 'WARREN_POLICY_DENIED', /gamma-1/));
    expect(await call(a.socketPath, 'POST', '/v1/messages', { to: 'nobody-1', body: 1 })).toMatchObject(error(404, 'WARREN_AGENT_NOT_FOUND', /nobody-1/));
    expect(await call(a.socketPath, 'POST', '/v1/requests', { to: 'beta-1', body: 1, timeoutMs: 100 })).toMatchObject(error(504, 'WARREN_MESSAGE_TIMEOUT'));
    port.failNext = new WarrenError('WARREN_BROKER', 'nats is gone');
    expect(await call(a.socketPath, 'GET', '/v1/presence')).toMatchObject(error(502, 'WARREN_BROKER', /nats is gone/));
    port.failNext = new Error('secret internals');
    const internal = await call(a.socketPath, 'GET', '/v1/presence');
    expect(internal).toMatchObject(error(500, 'WARREN_INTERNAL'));
    expect(JSON.stringify(internal.json)).not.toContain('secret internals');
    expect(await call(a.socketPath, 'POST', '/v1/topics/builds', { body: 1 })).toMatchObject(error(403, 'WARREN_POLICY_DENIED'));
    expect(await call(a.socketPath, 'GET', '/v1/topics/builds')).toMatchObject(error(403, 'WARREN_POLICY_DENIED'));
  });

  it('refuses bad input naming the field: 400, and 413 over the body limit', async () => {
    expect(await call(a.socketPath, 'POST', '/v1/messages', undefined, '{not json')).toMatchObject(error(400, 'WARREN_MESSAGE_INVALID'));
    expect(await call(a.socketPath, 'POST', '/v1/messages', { body: 1 })).toMatchObject(error(400, 'WARREN_MESSAGE_INVALID', /body\.to/));
    expect(await call(a.socketPath, 'POST', '/v1/messages', { to: 'beta-1' })).toMatchObject(error(400, 'WARREN_MESSAGE_INVALID', /body\.body/));
    expect(await call(a.socketPath, 'GET', '/v1/inbox?max=0')).toMatchObject(error(400, 'WARREN_MESSAGE_INVALID', /query\.max/));
    expect(await call(a.socketPath, 'GET', '/v1/inbox?waitMs=30001')).toMatchObject(error(400, 'WARREN_MESSAGE_INVALID', /query\.waitMs/));
    expect(await call(a.socketPath, 'POST', '/v1/inbox/ack', { ids: 'm1' })).toMatchObject(error(400, 'WARREN_MESSAGE_INVALID', /body\.ids/));
    expect(await call(a.socketPath, 'POST', '/v1/requests', { to: 'beta-1', body: 1, timeoutMs: 50 })).toMatchObject(error(400, 'WARREN_MESSAGE_INVALID', /timeoutMs/));
    expect(await call(a.socketPath, 'POST', '/v1/replies', { to: 'beta-1', body: 1 })).toMatchObject(error(400, 'WARREN_MESSAGE_INVALID', /inReplyTo/));
    expect(await call(a.socketPath, 'POST', '/v1/topics/Bad.Topic', { body: 1 })).toMatchObject(error(400, 'WARREN_MESSAGE_INVALID', /topic/));
    expect(await call(a.socketPath, 'GET', '/v1/topics/a.b')).toMatchObject(error(400, 'WARREN_MESSAGE_INVALID', /topic/));
    expect(await call(a.socketPath, 'GET', '/v1/nothing')).toMatchObject(error(404, 'WARREN_BUS_ROUTE'));
    const big = 'x'.repeat(BUS_BODY_LIMIT_BYTES);
    expect(await call(a.socketPath, 'POST', '/v1/messages', { to: 'beta-1', body: big })).toMatchObject(error(413, 'WARREN_MESSAGE_INVALID'));
    // A body at the port's limit fits the envelope.
    const atLimit = 'x'.repeat(256 * 1024 - 2);
    expect(await call(a.socketPath, 'POST', '/v1/messages', { to: 'beta-1', body: atLimit })).toMatchObject({ status: 200 });
    // None of the refused calls reached the port's send.
    expect(port.calls.filter((c) => c.method === 'send')).toHaveLength(1);
  });
});

describe('BusChannel', () => {
  const spec = (name: string): AgentStartSpec => ({ name, uid: 61_234, gid: 61_235 }) as unknown as AgentStartSpec;

  it("serves each agent's socket as that agent, mode 0660 and owned by its uid, replacing a stale socket", async () => {
    const channel = new BusChannel({ port });
    onTestFinished(() => channel.close());
    expect(channel.socketName).toBe('bus.sock');
    const socketDir = join(dir.path, 'alpha');
    mkdirSync(socketDir);
    const first = await channel.serve(spec('alpha-1'), join(socketDir, 'bus.sock'));
    expect(first).not.toBeNull();
    await first!.close();
    // A socket file left at the path (a previous instance's) is replaced.
    const stale = await serveBusSocket({ port, agent: 'stale', socketPath: join(socketDir, 'bus.sock') });
    onTestFinished(() => stale.close());
    const served = await channel.serve(spec('alpha-1'), join(socketDir, 'bus.sock'));
    const stats = statSync(join(socketDir, 'bus.sock'));
    expect(stats.isSocket()).toBe(true);
    expect(stats.mode & 0o777).toBe(0o660);
    expect([stats.uid, stats.gid]).toEqual([61_234, 61_235]);
    await call(join(socketDir, 'bus.sock'), 'POST', '/v1/messages', { to: 'beta-1', body: 'hi' });
    expect(port.calls.at(-1)).toMatchObject({ method: 'send', self: 'alpha-1' });

    // Closing the channel closes what it serves; a later start gets no bus.
    await channel.close();
    await served!.close();
    expect(() => statSync(join(socketDir, 'bus.sock'))).toThrow(/ENOENT/);
    expect(await channel.serve(spec('beta-1'), join(socketDir, 'bus2.sock'))).toBeNull();
  });

  it('serves several agents at once, each socket as its own agent, and a socket closed leaves the others serving', async () => {
    const channel = new BusChannel({ port });
    onTestFinished(() => channel.close());
    const alpha = await channel.serve(spec('alpha-1'), join(dir.path, 'alpha.sock'));
    const beta = await channel.serve(spec('beta-1'), join(dir.path, 'beta.sock'));
    onTestFinished(() => beta?.close());
    await call(join(dir.path, 'beta.sock'), 'POST', '/v1/messages', { to: 'alpha-1', body: 'from beta' });
    await call(join(dir.path, 'alpha.sock'), 'POST', '/v1/messages', { to: 'beta-1', body: 'from alpha' });
    expect(port.calls.filter((c) => c.method === 'send').map((c) => c.self)).toEqual(['beta-1', 'alpha-1']);
    await alpha!.close();
    expect(() => statSync(join(dir.path, 'alpha.sock'))).toThrow(/ENOENT/);
    expect(await call(join(dir.path, 'beta.sock'), 'GET', '/v1/inbox?max=1')).toMatchObject({ status: 200, json: { messages: [expect.objectContaining({ from: 'alpha-1' })] } });
  });

  it('takes the port from a function once it exists; before, the agent gets no socket', async () => {
    const late: { port?: MemoryMessaging } = {};
    const channel = new BusChannel({ port: () => late.port });
    onTestFinished(() => channel.close());
    expect(await channel.serve(spec('alpha-1'), join(dir.path, 'early.sock'))).toBeNull();
    expect(() => statSync(join(dir.path, 'early.sock'))).toThrow(/ENOENT/);
    late.port = port;
    const served = await channel.serve(spec('alpha-1'), join(dir.path, 'late.sock'));
    onTestFinished(() => served?.close());
    expect(await call(join(dir.path, 'late.sock'), 'GET', '/v1/presence')).toMatchObject({ status: 200 });
  });

  it('refuses to replace what is not a socket', async () => {
    const path = join(dir.path, 'not-a-socket');
    writeFileSync(path, 'keep me');
    const channel = new BusChannel({ port });
    onTestFinished(() => channel.close());
    await expect(channel.serve(spec('alpha-1'), path)).rejects.toMatchObject({ code: 'WARREN_BUS_SOCKET', message: expect.stringContaining('not a socket') });
  });
});

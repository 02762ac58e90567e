import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WarrenError } from '@warren/core';
import { makeTempDir, type TempDir } from '@warren/testing';
import { serveBusSocket, type ServedBus } from '../../../services/supervisor/src/messaging/bus-channel.js';
import { MemoryMessaging } from '../../../services/supervisor/test/messaging-memory.js';
import { BusError, connectBus, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, type AgentBus } from '../src/index.js';
import { buildAgentSdk, type BuildAgentSdkResult } from '../src/build.js';

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
let served: ServedBus[];
let alpha: AgentBus;
let beta: AgentBus;

beforeEach(async () => {
  dir = await makeTempDir('warren-agent-sdk-');
  port = new MemoryMessaging().addAgent('alpha-1', 'manager').addAgent('beta-1').addAgent('gamma-1');
  port.allow('alpha-1', 'beta-1').allow('beta-1', 'alpha-1');
  served = [
    await serveBusSocket({ port, agent: 'alpha-1', socketPath: join(dir.path, 'alpha.sock') }),
    await serveBusSocket({ port, agent: 'beta-1', socketPath: join(dir.path, 'beta.sock') }),
  ];
  alpha = connectBus({ socketPath: join(dir.path, 'alpha.sock') });
  beta = connectBus({ socketPath: join(dir.path, 'beta.sock') });
});

afterEach(async () => {
  for (const s of served) await s.close();
  await dir.close();
});

describe('AgentBus against the bus socket', () => {
  it('sends, receives (acknowledged by default, or not) and acknowledges', async () => {
    expect(await alpha.send('beta-1', { n: 1 })).toEqual({ id: expect.any(String) });
    expect(await alpha.send('beta-1', 'two', { id: 'same' })).toEqual({ id: 'same' });
    expect(await alpha.send('beta-1', 'two again', { id: 'same' })).toEqual({ id: 'same' });
    const kept = await beta.receive({ max: 1, ack: false });
    expect(kept).toEqual([expect.objectContaining({ from: 'alpha-1', body: { n: 1 }, deliveries: 1, request: false })]);
    expect(port.inbox('beta-1')).toHaveLength(2);
    expect(await beta.ack(kept.map((m) => m.id))).toBe(1);
    const rest = await beta.receive({ waitMs: 0 });
    expect(rest.map((m) => m.body)).toEqual(['two']);
    expect(port.inbox('beta-1')).toEqual([]);
    expect(await beta.ack([])).toBe(0);
  });

  it('waits for a message with waitMs', async () => {
    const waiting = beta.receive({ waitMs: 20_000 });
    await until(() => port.calls.some((c) => c.method === 'receive'), 'the long poll');
    await alpha.send('beta-1', 'late');
    expect((await waiting).map((m) => m.body)).toEqual(['late']);
  });

  it('request and reply', async () => {
    const answer = alpha.request('beta-1', { q: 'sum', of: [1, 2] }, { timeoutMs: 20_000 });
    await until(() => port.inbox('beta-1').length > 0, 'the request');
    const [request] = await beta.receive();
    expect(request).toMatchObject({ from: 'alpha-1', request: true, body: { q: 'sum', of: [1, 2] } });
    await beta.reply(request!, 3);
    expect(await answer).toMatchObject({ from: 'beta-1', inReplyTo: request!.id, body: 3 });
  });

  it('publishes and subscribes; close ends the iteration; a revoked permission ends it with the reason', async () => {
    port.grantTopic('alpha-1', 'builds', 'publish').grantTopic('beta-1', 'builds', 'subscribe');
    const sub = await beta.subscribe('builds');
    expect(sub.topic).toBe('builds');
    await alpha.publish('builds', { build: 1 });
    await alpha.publish('builds', { build: 2 });
    const got: unknown[] = [];
    for await (const m of sub) {
      got.push(m.body);
      expect(m).toMatchObject({ from: 'alpha-1', topic: 'builds' });
      if (got.length === 2) break;
    }
    expect(got).toEqual([{ build: 1 }, { build: 2 }]);
    expect(sub.endReason).toBeNull();
    await until(() => port.subscriberCount('builds') === 0, 'the subscription to close');

    const again = await beta.subscribe('builds');
    const collected = (async () => {
      const bodies: unknown[] = [];
      for await (const m of again) bodies.push(m.body);
      return bodies;
    })();
    await alpha.publish('builds', 'last');
    await until(() => port.calls.filter((c) => c.method === 'publish').length === 3, 'the third publication');
    port.revokeTopic('beta-1', 'builds', 'subscribe', 'permission revoked');
    expect(await collected).toEqual(['last']);
    expect(again.endReason).toBe('permission revoked');
  });

  it('presence', async () => {
    expect(await alpha.presence()).toEqual([expect.objectContaining({ name: 'beta-1', template: 'worker', state: 'running' })]);
  });

  it('throws BusError with the code and status', async () => {
    await expect(alpha.send('gamma-1', 1)).rejects.toMatchObject({ name: 'BusError', code: 'WARREN_POLICY_DENIED', status: 403 });
    await expect(alpha.send('nobody', 1)).rejects.toMatchObject({ code: 'WARREN_AGENT_NOT_FOUND', status: 404 });
    await expect(alpha.request('beta-1', 1, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'WARREN_MESSAGE_TIMEOUT', status: 504 });
    await expect(alpha.receive({ max: 1000 })).rejects.toMatchObject({ code: 'WARREN_MESSAGE_INVALID', status: 400, message: expect.stringMatching(/max/) });
    await expect(alpha.publish('builds', 1)).rejects.toMatchObject({ code: 'WARREN_POLICY_DENIED', status: 403 });
    await expect(alpha.subscribe('builds')).rejects.toMatchObject({ code: 'WARREN_POLICY_DENIED', status: 403 });
    await expect(alpha.publish('Not A Topic', 1)).rejects.toMatchObject({ code: 'WARREN_MESSAGE_INVALID', status: 0 });
    await expect(alpha.send('beta-1', 'x'.repeat(300 * 1024))).rejects.toMatchObject({ code: 'WARREN_MESSAGE_INVALID', status: 413 });
    port.failNext = new WarrenError('WARREN_BROKER', 'nats is down');
    await expect(alpha.presence()).rejects.toMatchObject({ code: 'WARREN_BROKER', status: 502, message: 'nats is down' });
    const nowhere = connectBus({ socketPath: join(dir.path, 'missing.sock') });
    const error = await nowhere.presence().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BusError);
    expect(error).toMatchObject({ code: 'WARREN_BUS_UNREACHABLE', status: 0, message: expect.stringContaining('missing.sock') });
  });

  it('takes the socket from WARREN_BUS_SOCKET', () => {
    const before = process.env.WARREN_BUS_SOCKET;
    process.env.WARREN_BUS_SOCKET = '/tmp/elsewhere.sock';
    try {
      expect(connectBus().socketPath).toBe('/tmp/elsewhere.sock');
    } finally {
      if (before === undefined) delete process.env.WARREN_BUS_SOCKET;
      else process.env.WARREN_BUS_SOCKET = before;
    }
    expect(connectBus({ socketPath: '/x.sock' }).socketPath).toBe('/x.sock');
  });
});

describe('warren-bus, the bundled command', () => {
  let built: BuildAgentSdkResult;
  let buildDir: TempDir;
  beforeAll(async () => {
    buildDir = await makeTempDir('warren-agent-sdk-build-');
    built = await buildAgentSdk({ outDir: buildDir.path, runFrom: buildDir.path });
  });
  afterAll(() => buildDir?.close());

  interface Run {
    readonly code: number;
    readonly stdout: string;
    readonly stderr: string;
  }
  /** Runs the wrapper as the task would (`warren-bus …` with WARREN_BUS_SOCKET set). */
  const run = (socket: string, ...args: string[]): Promise<Run> =>
    new Promise((resolve) => {
      execFile(built.wrapper, args, { env: { PATH: '/usr/bin:/bin', WARREN_BUS_SOCKET: join(dir.path, socket) }, timeout: 50_000 }, (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  const lines = (text: string): unknown[] => text.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown);

  it('is one file that imports only Node built-ins, run through its wrapper', () => {
    expect(built.sizeBytes).toBeGreaterThan(1000);
  });

  it('send, recv, request, reply, publish, subscribe and presence print JSON lines and exit 0', async () => {
    expect(await run('alpha.sock', 'send', 'beta-1', '{"n":1}')).toMatchObject({ code: EXIT_OK, stdout: expect.stringMatching(/^\{"id":"[^"]+"\}\n$/) });
    expect(await run('alpha.sock', 'send', 'beta-1', 'plain text', '--id', 'fixed')).toMatchObject({ code: EXIT_OK, stdout: '{"id":"fixed"}\n' });
    const peek = await run('beta.sock', 'recv', '--max', '5', '--no-ack');
    expect(peek.code).toBe(EXIT_OK);
    expect(lines(peek.stdout)).toEqual([expect.objectContaining({ from: 'alpha-1', body: { n: 1 } }), expect.objectContaining({ id: 'fixed', body: 'plain text' })]);
    expect(port.inbox('beta-1')).toHaveLength(2);
    // Not acknowledged: the memory port keeps them in flight; acknowledging them empties the inbox.
    await beta.ack(port.inbox('beta-1').map((m) => m.id));
    expect(port.inbox('beta-1')).toEqual([]);
    await alpha.send('beta-1', 'acked');
    const taken = await run('beta.sock', 'recv', '--wait', '1000');
    expect(lines(taken.stdout)).toEqual([expect.objectContaining({ body: 'acked' })]);
    expect(port.inbox('beta-1')).toEqual([]);

    const asking = run('alpha.sock', 'request', 'beta-1', '"ready?"', '--timeout', '20000');
    await until(() => port.inbox('beta-1').length > 0, 'the request');
    const [request] = await beta.receive();
    const replied = await run('beta.sock', 'reply', 'alpha-1', request!.id, '{"ok":true}');
    expect(replied).toMatchObject({ code: EXIT_OK, stdout: expect.stringMatching(/^\{"id":/) });
    const asked = await asking;
    expect(asked.code).toBe(EXIT_OK);
    expect(lines(asked.stdout)).toEqual([expect.objectContaining({ from: 'beta-1', inReplyTo: request!.id, body: { ok: true } })]);

    port.grantTopic('alpha-1', 'builds', 'publish').grantTopic('beta-1', 'builds', 'subscribe');
    const subscribing = run('beta.sock', 'subscribe', 'builds', '--count', '2');
    await until(() => port.subscriberCount('builds') === 1, 'the subscription');
    expect((await run('alpha.sock', 'publish', 'builds', '1')).code).toBe(EXIT_OK);
    expect((await run('alpha.sock', 'publish', 'builds', 'two')).code).toBe(EXIT_OK);
    const subscribed = await subscribing;
    expect(subscribed.code).toBe(EXIT_OK);
    expect(lines(subscribed.stdout).map((m) => (m as { body: unknown }).body)).toEqual([1, 'two']);

    const presence = await run('alpha.sock', 'presence');
    expect(presence.code).toBe(EXIT_OK);
    expect(lines(presence.stdout)).toEqual([expect.objectContaining({ name: 'beta-1' })]);
  });

  it('exits 1 with the reason on stderr when refused, unreachable or ended by the bus', async () => {
    const denied = await run('alpha.sock', 'send', 'gamma-1', 'hi');
    expect(denied).toMatchObject({ code: EXIT_REFUSED, stdout: '' });
    expect(denied.stderr).toMatch(/WARREN_POLICY_DENIED.*403/);
    const timeout = await run('alpha.sock', 'request', 'beta-1', 'x', '--timeout', '100');
    expect(timeout).toMatchObject({ code: EXIT_REFUSED, stderr: expect.stringContaining('WARREN_MESSAGE_TIMEOUT') });
    const nowhere = await run('missing.sock', 'presence');
    expect(nowhere).toMatchObject({ code: EXIT_REFUSED, stderr: expect.stringContaining('WARREN_BUS_UNREACHABLE') });

    port.grantTopic('beta-1', 'builds', 'subscribe');
    const subscribing = run('beta.sock', 'subscribe', 'builds');
    await until(() => port.subscriberCount('builds') === 1, 'the subscription');
    port.revokeTopic('beta-1', 'builds', 'subscribe', 'permission revoked');
    expect(await subscribing).toMatchObject({ code: EXIT_REFUSED, stderr: expect.stringContaining('permission revoked') });
  });

  it('exits 2 with the usage on a wrong command line', async () => {
    for (const args of [[], ['fly'], ['send', 'beta-1'], ['recv', '--max', 'many'], ['recv', '--max', '0'], ['request', 'beta-1', 'x', '--timeout', '5'], ['presence', 'extra'], ['send', 'a', 'b', '--bogus']]) {
      const r = await run('alpha.sock', ...args);
      expect(r.code, args.join(' ')).toBe(EXIT_USAGE);
      expect(r.stderr, args.join(' ')).toContain('usage: warren-bus');
    }
    expect(port.calls).toEqual([]);
    const help = await run('alpha.sock', '--help');
    expect(help).toMatchObject({ code: EXIT_OK, stdout: expect.stringContaining('usage: warren-bus') });
  });
});

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { WarrenError } from '@warren/core';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MESSAGING_TOOLS } from '../src/messaging-tools.js';
import type { McpMessaging } from '../src/ports.js';
import { mcpTestServer, type McpTestServer } from './support.js';

/** A message service kept in memory: records each call with its caller, answers fixed values. */
function memoryMessaging(): McpMessaging & { calls: { method: string; self: string; input: unknown }[] } {
  const calls: { method: string; self: string; input: unknown }[] = [];
  const record = <T>(method: string, self: string, input: unknown, answer: T): Promise<T> => {
    calls.push({ method, self, input });
    return Promise.resolve(answer);
  };
  return {
    calls,
    receive: (self, input) => record('receive', self, input, [{ id: 'm-1', from: 'shell-2', body: { hi: 1 }, sentAtMs: 1, request: true, deliveries: 1 }]),
    ack: (self, ids) => record('ack', self, ids, ids.length),
    request: (self, input) => (input.to === 'shell-9' ? Promise.reject(new WarrenError('WARREN_MESSAGE_TIMEOUT', 'no reply from shell-9')) : record('request', self, input, { id: 'r-1', from: input.to, inReplyTo: 'q-1', body: 'pong', sentAtMs: 2 })),
    reply: (self, input) => record('reply', self, input, { id: 'r-2' }),
    publish: (self, input) => record('publish', self, input, { id: 't-1' }),
    presence: (self) => record('presence', self, null, [{ name: 'shell-2', template: 'shell', state: 'running', status: 'idle' as const, lastSeenMs: 3 }]),
  };
}

async function connect(t: McpTestServer, token: string): Promise<Client> {
  const client = new Client({ name: 'warren-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(t.url, { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  onTestFinished(() => client.close());
  return client;
}

describe('the messaging tools', () => {
  it('are offered with a message service, call it as the caller, and report its errors', async () => {
    const t = await mcpTestServer();
    const messaging = memoryMessaging();
    (t.ports as { messaging?: McpMessaging }).messaging = messaging;
    const client = await connect(t, t.operatorToken);
    const names = (await client.listTools()).tools.map((x) => x.name);
    for (const name of MESSAGING_TOOLS) expect(names).toContain(name);

    const received = await client.callTool({ name: 'receive_messages', arguments: { max: 5, waitMs: 100 } });
    expect(received.structuredContent).toEqual({ messages: [{ id: 'm-1', from: 'shell-2', body: { hi: 1 }, sentAtMs: 1, request: true, deliveries: 1 }] });
    expect((await client.callTool({ name: 'ack_messages', arguments: { ids: ['m-1'] } })).structuredContent).toEqual({ acked: 1 });
    expect((await client.callTool({ name: 'request_agent', arguments: { to: 'shell-2', body: 'ping' } })).structuredContent).toMatchObject({ from: 'shell-2', body: 'pong' });
    expect((await client.callTool({ name: 'reply_message', arguments: { to: 'shell-2', inReplyTo: 'm-1', body: { ok: true } } })).structuredContent).toEqual({ id: 'r-2' });
    expect((await client.callTool({ name: 'publish_topic', arguments: { topic: 'news', body: 1 } })).structuredContent).toEqual({ id: 't-1' });
    expect((await client.callTool({ name: 'list_presence', arguments: {} })).structuredContent).toEqual({ agents: [{ name: 'shell-2', template: 'shell', state: 'running', status: 'idle', lastSeenMs: 3 }] });
    expect(messaging.calls.map((c) => [c.method, c.self])).toEqual([
      ['receive', 'user:olga'],
      ['ack', 'user:olga'],
      ['request', 'user:olga'],
      ['reply', 'user:olga'],
      ['publish', 'user:olga'],
      ['presence', 'user:olga'],
    ]);
    expect(messaging.calls[0]!.input).toEqual({ max: 5, waitMs: 100 });

    const timedOut = await client.callTool({ name: 'request_agent', arguments: { to: 'shell-9', body: 'ping', timeoutMs: 100 } });
    expect(timedOut.isError).toBe(true);
    expect(JSON.stringify(timedOut.content)).toContain('no reply from shell-9');
    const badTopic = await client.callTool({ name: 'publish_topic', arguments: { topic: 'Not A Topic', body: 1 } });
    expect(badTopic.isError).toBe(true);
    expect(messaging.calls).toHaveLength(6);
  });

  it('are left out without a message service, and a viewer is not offered them', async () => {
    const t = await mcpTestServer();
    const without = (await (await connect(t, t.operatorToken)).listTools()).tools.map((x) => x.name);
    for (const name of MESSAGING_TOOLS) expect(without).not.toContain(name);
    (t.ports as { messaging?: McpMessaging }).messaging = memoryMessaging();
    const viewer = (await (await connect(t, t.viewerToken)).listTools()).tools.map((x) => x.name);
    for (const name of MESSAGING_TOOLS) expect(viewer).not.toContain(name);
  });
});

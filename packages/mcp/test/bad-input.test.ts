import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mcpTestServer, type McpTestServer } from './support.js';

/** The statuses bad input may get at /mcp: the API's documented 4xx and the SDK's Streamable HTTP answers (400, 404, 405, 406, 413, 415). */
const DOCUMENTED = new Set([200, 202, 400, 401, 403, 404, 405, 406, 409, 413, 415, 429]);
const ACCEPT = 'application/json, text/event-stream';

function post(t: McpTestServer, body: string | Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(t.url, { method: 'POST', headers: { authorization: `Bearer ${t.operatorToken}`, 'content-type': 'application/json', accept: ACCEPT, ...headers }, body });
}

/** The JSON-RPC answer in a JSON or SSE response body. */
async function rpc(response: Response): Promise<{ error?: { code: number; message: string }; result?: unknown }> {
  const text = await response.text();
  if ((response.headers.get('content-type') ?? '').includes('text/event-stream')) {
    const data = text.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).join('');
    return JSON.parse(data) as { error?: { code: number; message: string } };
  }
  return JSON.parse(text) as { error?: { code: number; message: string } };
}

describe('bad input at /mcp', () => {
  it('invalid JSON, an unknown method, bad params and an oversized body get their documented errors', async () => {
    const t = await mcpTestServer();
    const invalid = await post(t, '{"jsonrpc": ');
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ error: 'invalid_request' });

    const unknown = await post(t, JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'warren/nothing', params: {} }));
    expect(unknown.status).toBeLessThan(500);
    expect((await rpc(unknown)).error?.code).toBe(-32601);

    const badParams = await post(t, JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'list_tasks', arguments: { status: 42 } } }));
    expect(badParams.status).toBeLessThan(500);
    const answer = await rpc(badParams);
    const refused = answer.error !== undefined || (answer.result as { isError?: boolean }).isError === true;
    expect(refused).toBe(true);
    expect(JSON.stringify(answer)).toContain('status');

    const notRpc = await post(t, JSON.stringify({ hello: 'world' }));
    expect(notRpc.status).toBe(400);

    const big = await post(t, JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'write_file', arguments: { agent: 'shell-1', path: 'big', content: 'x'.repeat(3 * 1024 * 1024) } } }));
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: 'payload_too_large' });

    const text = await post(t, 'hello', { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
  });

  it('1,000 random requests get only documented answers, never a 5xx; the server stays up with a bounded heap', async () => {
    const t = await mcpTestServer();
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const heap = (): number => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const message = fc.record(
      {
        jsonrpc: fc.oneof(fc.constant('2.0'), fc.string()),
        id: fc.oneof(fc.integer(), fc.string(), fc.constant(null)),
        method: fc.oneof(fc.constantFrom('initialize', 'tools/list', 'tools/call', 'resources/read', 'prompts/get', 'server/discover', 'subscriptions/listen', 'ping'), fc.string()),
        params: fc.oneof(fc.object(), fc.record({ name: fc.constantFrom('list_tasks', 'run_command', 'describe_task', 'nope'), arguments: fc.object() })),
      },
      { requiredKeys: [] },
    );
    const samples = fc.sample(
      fc.oneof(
        fc.uint8Array({ minLength: 0, maxLength: 2048 }).map((bytes) => ({ body: bytes, contentType: 'application/json' })),
        fc.oneof(message, fc.array(message, { maxLength: 4 })).map((m) => ({ body: JSON.stringify(m), contentType: 'application/json' })),
        fc.tuple(fc.string(), fc.constantFrom('application/json', 'text/plain', 'application/octet-stream')).map(([s, contentType]) => ({ body: s, contentType })),
      ),
      { numRuns: 1000, seed: 20_261_206 },
    );
    // Warm up: schemas compile and caches fill on the first requests.
    for (let i = 0; i < 20; i += 1) await (await post(t, JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/list' }))).arrayBuffer();
    const before = heap();
    const unexpected: string[] = [];
    for (const [index, sample] of samples.entries()) {
      const response = await post(t, sample.body, { 'content-type': sample.contentType });
      await response.arrayBuffer();
      if (!DOCUMENTED.has(response.status)) unexpected.push(`#${index} ${response.status} ${String(sample.body).slice(0, 80)}`);
    }
    expect(unexpected).toEqual([]);
    expect(heap() - before).toBeLessThan(64 * 1024 * 1024);
    const alive = await post(t, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }));
    expect(alive.status).toBe(200);
    expect(t.ports.audit.verify().ok).toBe(true);
  });
});

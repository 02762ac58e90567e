import { once } from 'node:events';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { request } from 'undici';
import { makeTempDir } from '@warren/testing';
import type { Logger } from '@warren/core';
import { WIRE_APIS, LlmGatewayError, type WireApi } from '@warren/llm-gateway';
import { AGENT_KEY, PROVIDER_KEY, fakeProviders, modelRequest, startGateway } from './support.js';

const USAGE = { inputTokens: 1_000, outputTokens: 200 };
/** 1000 × $2 + 200 × $10 per million tokens. */
const USAGE_COST = 0.004;

describe('keys', () => {
  test.each(WIRE_APIS)("%s: the provider's key arrives upstream and the agent's own credentials never do", async (wire) => {
    const gw = await startGateway({ script: [{ text: 'hi' }] });
    const { path, body } = modelRequest(wire, false);
    const answer = await gw.send(path, {
      body,
      headers: { authorization: `Bearer ${AGENT_KEY}`, 'x-api-key': AGENT_KEY, 'api-key': AGENT_KEY, cookie: 'session=agent' },
    });
    expect(answer.status, answer.text).toBe(200);
    const [upstream] = gw.fake.requests;
    expect(upstream?.headers.cookie).toBeUndefined();
    expect(upstream?.headers['api-key']).toBeUndefined();
    if (wire === 'anthropic-messages') {
      expect(upstream?.headers['x-api-key']).toBe(PROVIDER_KEY);
      expect(upstream?.headers.authorization).toBeUndefined();
      expect(upstream?.headers['anthropic-version']).toBe('2023-06-01');
    } else {
      expect(upstream?.headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`);
      expect(upstream?.headers['x-api-key']).toBeUndefined();
    }
    expect(JSON.stringify(upstream?.headers)).not.toContain(AGENT_KEY);
    expect(answer.text).not.toContain(PROVIDER_KEY);
  });
});

test('nothing the gateway logs holds a key, a token or a body', async () => {
  const lines: unknown[] = [];
  const logger = (bindings: Record<string, unknown>): Logger => {
    const line = (level: string) => (obj: object, msg?: string) => lines.push({ level, bindings, obj, msg });
    return { trace: line('trace'), debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error'), child: (more) => logger({ ...bindings, ...more }) };
  };
  const gw = await startGateway({
    script: [{ text: 'the secret answer', usage: USAGE }],
    gateway: { logger: logger({}), mcpUrl: 'http://127.0.0.1:9/mcp' },
    access: { mcpToken: 'agent-mcp-token-xyz', budgets: { template: {}, agent: { taskTokens: 1 } } },
  });
  const prompt = { model: 'small', messages: [{ role: 'user', content: 'the secret prompt' }] };
  const headers = { authorization: 'Bearer agent-own-key-abc', 'x-api-key': 'agent-own-key-abc' };
  expect((await gw.send('/p/openai/chat/completions', { body: prompt, headers })).status).toBe(200);
  expect((await gw.send('/p/openai/chat/completions', { body: prompt, headers })).status).toBe(429);
  expect((await gw.send('/mcp', { body: { secret: 'the secret prompt' }, headers })).status).toBe(502);
  expect(lines.length).toBeGreaterThan(2);
  const text = JSON.stringify(lines);
  for (const secret of [PROVIDER_KEY, 'agent-own-key-abc', 'agent-mcp-token-xyz', 'the secret prompt', 'the secret answer']) {
    expect(text).not.toContain(secret);
  }
});

test("an agent's own key for a provider wins over the provider's; without any key the provider is refused", async () => {
  const gw = await startGateway({ script: [{ text: 'with the agent key' }], access: { apiKeys: { openai: PROVIDER_KEY } } });
  gw.gateway.setProviders(
    fakeProviders(gw.fake).map(({ apiKey: _key, ...provider }) => (provider.name === 'openai' ? { ...provider, apiKey: 'sk-provider-wide-key-not-accepted' } : provider)),
  );
  const ok = await gw.send('/p/openai/chat/completions', { body: modelRequest('openai-chat', false).body });
  expect(ok.status, ok.text).toBe(200);
  expect(gw.fake.requests[0]?.headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`);
  const { path, body } = modelRequest('anthropic-messages', false);
  const refused = await gw.send(path, { body });
  expect(refused.status).toBe(403);
  expect(gw.refusals).toEqual([
    expect.objectContaining({ provider: 'anthropic', reason: 'provider_key_missing', detail: expect.stringContaining('provider anthropic has no key for agent coder-1') }),
  ]);
  expect(gw.fake.requests).toHaveLength(1);
});

describe('the openai 6.x client through the gateway', () => {
  test('chat completions, not streamed and streamed with a tool call, and a Responses stream', async () => {
    const gw = await startGateway({
      script: [
        { text: 'plain answer', usage: USAGE },
        { text: 'calling', toolCalls: [{ name: 'shell', arguments: { cmd: 'ls -la' } }], usage: USAGE },
        { text: 'responses answer', usage: USAGE },
      ],
    });
    const client = new OpenAI({ apiKey: AGENT_KEY, baseURL: 'http://localhost/p/openai', fetch: gw.fetch as never, maxRetries: 0 });
    const plain = await client.chat.completions.create({ model: 'small', messages: [{ role: 'user', content: 'hello' }] });
    expect(plain.choices[0]?.message.content).toBe('plain answer');
    expect(plain.usage).toMatchObject({ prompt_tokens: 1_000, completion_tokens: 200 });

    const stream = await client.chat.completions.create({ model: 'small', stream: true, messages: [{ role: 'user', content: 'list' }] });
    let text = '';
    let args = '';
    let toolName: string | undefined;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      for (const call of chunk.choices[0]?.delta.tool_calls ?? []) {
        toolName ??= call.function?.name;
        args += call.function?.arguments ?? '';
      }
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe('calling');
    expect(toolName).toBe('shell');
    expect(JSON.parse(args)).toEqual({ cmd: 'ls -la' });
    expect(usage).toMatchObject({ prompt_tokens: 1_000, completion_tokens: 200 });
    // The client did not ask for usage: the gateway did, and mapped the model.
    expect(gw.fake.requests[1]?.body).toMatchObject({ model: 'fake-small-2026', stream: true, stream_options: { include_usage: true } });

    const responses = new OpenAI({ apiKey: AGENT_KEY, baseURL: 'http://localhost/p/openai-responses', fetch: gw.fetch as never, maxRetries: 0 });
    const events = await responses.responses.create({ model: 'small', input: 'hello', stream: true });
    let output = '';
    for await (const event of events) if (event.type === 'response.output_text.delta') output += event.delta;
    expect(output).toBe('responses answer');

    expect(gw.calls.map((row) => [row.provider, row.model, row.inputTokens, row.outputTokens, row.status])).toEqual([
      ['openai', 'fake-small-2026', 1_000, 200, 200],
      ['openai', 'fake-small-2026', 1_000, 200, 200],
      ['openai-responses', 'fake-small-2026', 1_000, 200, 200],
    ]);
  });
});

describe('the Anthropic client through the gateway', () => {
  test('a streamed message with a tool call, the key placeholder replaced', async () => {
    const gw = await startGateway({ script: [{ text: 'let me look', toolCalls: [{ name: 'bash', arguments: { command: 'ls' } }], usage: USAGE }] });
    const client = new Anthropic({ apiKey: AGENT_KEY, baseURL: 'http://localhost/p/anthropic', fetch: gw.fetch as never, maxRetries: 0 });
    const stream = client.messages.stream({ model: 'small', max_tokens: 1_000, messages: [{ role: 'user', content: 'list files' }] });
    const message = await stream.finalMessage();
    expect(message.content).toHaveLength(2);
    expect(message.content[0]).toMatchObject({ type: 'text', text: 'let me look' });
    expect(message.content[1]).toMatchObject({ type: 'tool_use', name: 'bash', input: { command: 'ls' } });
    expect(message.usage).toMatchObject({ input_tokens: 1_000, output_tokens: 200 });
    expect(gw.fake.requests[0]?.headers['x-api-key']).toBe(PROVIDER_KEY);
    expect(gw.calls).toEqual([expect.objectContaining({ provider: 'anthropic', model: 'fake-small-2026', inputTokens: 1_000, outputTokens: 200 })]);
  });
});

describe('usage', () => {
  const cases: [WireApi, boolean][] = WIRE_APIS.flatMap((wire) => [[wire, false] as [WireApi, boolean], [wire, true] as [WireApi, boolean]]);
  test.each(cases)('%s (streamed: %s): one ledger row with the upstream model, tokens, cost and the execution', async (wire, stream) => {
    const gw = await startGateway({ script: [{ text: 'counted', usage: USAGE }] });
    const { path, body } = modelRequest(wire, stream);
    const answer = await gw.send(path, { body });
    expect(answer.status, answer.text).toBe(200);
    if (stream) expect(answer.headers['content-type']).toContain('text/event-stream');
    expect(gw.calls).toHaveLength(1);
    const row = gw.calls[0]!;
    expect(row).toMatchObject({
      agent: 'coder-1',
      template: 'coder',
      taskId: 't1',
      attempt: 1,
      model: 'fake-small-2026',
      inputTokens: 1_000,
      outputTokens: 200,
      status: 200,
    });
    expect(row.costUsd).toBeCloseTo(USAGE_COST, 10);
    expect(gw.ledger.totals({ taskId: 't1' })).toMatchObject({ calls: 1, inputTokens: 1_000, outputTokens: 200 });
  });

  test("GET /models and Anthropic's count_tokens are forwarded and are not calls", async () => {
    const gw = await startGateway();
    const answer = await gw.send('/p/openai/models');
    expect(answer.status).toBe(200);
    expect(answer.json()).toMatchObject({ data: [{ id: 'fake-model' }] });
    const counted = await gw.send('/p/anthropic/v1/messages/count_tokens', { body: { model: 'small', messages: [{ role: 'user', content: 'hello' }] } });
    expect(counted.status, counted.text).toBe(200);
    expect(gw.fake.requests.map((r) => r.path)).toEqual(['/v1/models', '/v1/messages/count_tokens']);
    expect(gw.calls).toEqual([]);
  });
});

describe('refusals', () => {
  test('a provider outside the allow-list, or not configured, gets 403 in its wire shape and is reported, never forwarded', async () => {
    const gw = await startGateway({ script: [{ text: 'never' }] });
    const denied = await gw.send('/p/forbidden/chat/completions', { body: { model: 'small', messages: [] } });
    expect(denied.status).toBe(403);
    expect(denied.headers['x-should-retry']).toBe('false');
    expect(denied.json()).toMatchObject({ error: { type: 'provider_not_allowed', message: expect.stringContaining('provider forbidden is not allowed for agent coder-1') } });
    const unknown = await gw.send('/p/elsewhere/v1/messages', { body: {} });
    expect(unknown.status).toBe(403);
    expect(gw.refusals).toEqual([
      expect.objectContaining({ agent: 'coder-1', taskId: 't1', provider: 'forbidden', reason: 'provider_not_allowed', path: 'POST /p/forbidden/chat/completions' }),
      expect.objectContaining({ provider: 'elsewhere', reason: 'provider_not_allowed', detail: 'provider elsewhere is not configured' }),
    ]);
    expect(gw.fake.requests).toEqual([]);
    expect(gw.calls).toEqual([]);
  });

  test('an unknown route is 404, a path leaving the base URL 400, a body over the limit 413', async () => {
    const gw = await startGateway({ gateway: { bodyLimitBytes: 1_024 } });
    const notFound = await gw.send('/v1/chat/completions', { body: {} });
    expect(notFound.status).toBe(404);
    expect(notFound.json()).toMatchObject({ statusCode: 404, code: 'WARREN_LLM_UNKNOWN_ROUTE' });
    const escape = await gw.send('/p/openai/%2e%2e/admin', { body: {} });
    expect(escape.status).toBe(400);
    const big = await gw.send('/p/openai/chat/completions', { body: { model: 'small', messages: [{ role: 'user', content: 'x'.repeat(2_000) }] } });
    expect(big.status).toBe(413);
    expect(big.json()).toMatchObject({ error: { type: 'request_too_large' } });
    expect(gw.refusals.map((r) => r.reason)).toEqual(['unknown_route', 'unknown_route']);
    expect(gw.fake.requests).toEqual([]);
  });
});

describe('budgets', () => {
  test("the template's task token budget: the call that crosses it completes, the next is refused and reported", async () => {
    const gw = await startGateway({
      script: [{ text: 'one', usage: USAGE }, { text: 'never' }],
      access: { budgets: { template: { taskTokens: 1_000 }, agent: {} } },
    });
    const { path, body } = modelRequest('anthropic-messages', true);
    expect((await gw.send(path, { body })).status).toBe(200);
    const refused = await gw.send(path, { body });
    expect(refused.status).toBe(429);
    expect(refused.headers['x-should-retry']).toBe('false');
    expect(refused.json()).toEqual({
      type: 'error',
      error: { type: 'budget_exceeded', message: 'task token budget of 1000 reached: 1200 used (template coder)' },
    });
    expect(gw.refusals).toEqual([
      expect.objectContaining({ reason: 'budget_exceeded', taskId: 't1', attempt: 1, provider: 'anthropic', detail: 'task token budget of 1000 reached: 1200 used (template coder)' }),
    ]);
    expect(gw.fake.requests).toHaveLength(1);
    // A new attempt of the task starts with its own budget.
    gw.task = { taskId: 't1', attempt: 2, deadlineMs: Date.now() + 60_000 };
    expect((await gw.send(path, { body })).status).toBe(200);
  });

  test("the agent's task cost budget refuses in the OpenAI shape", async () => {
    const gw = await startGateway({
      script: [{ text: 'one', usage: USAGE }],
      access: { budgets: { template: {}, agent: { taskCostUsd: 0.001 } } },
    });
    const { path, body } = modelRequest('openai-chat', false);
    expect((await gw.send(path, { body })).status).toBe(200);
    const refused = await gw.send(path, { body });
    expect(refused.status).toBe(429);
    expect(refused.json()).toMatchObject({ error: { type: 'budget_exceeded', code: 'budget_exceeded', message: 'task cost budget of $0.0010 reached: $0.0040 used (agent coder-1)' } });
  });

  test("day budgets: the agent's counts its other tasks today, the template's counts its other agents", async () => {
    const gw = await startGateway({
      script: [{ text: 'a', usage: USAGE }],
      access: { budgets: { template: { dayTokens: 5_000 }, agent: { dayTokens: 2_000 } } },
    });
    const earlier = { tsMs: Date.now() - 1, template: 'coder', attempt: 1, provider: 'openai', model: 'm', costUsd: 0, status: 200, durationMs: 1 };
    gw.ledger.record({ ...earlier, agent: 'coder-1', taskId: 'earlier', inputTokens: 1_500, outputTokens: 0 });
    const { path, body } = modelRequest('openai-responses', false);
    expect((await gw.send(path, { body })).status).toBe(200); // 1500 < 2000 before the call
    const byAgent = await gw.send(path, { body });
    expect(byAgent.status).toBe(429);
    expect(byAgent.json()).toMatchObject({ error: { message: 'day token budget of 2000 reached: 2700 used (agent coder-1)' } });

    gw.ledger.record({ ...earlier, agent: 'coder-2', taskId: 'other', inputTokens: 2_300, outputTokens: 0 });
    const byTemplate = await gw.send(path, { body });
    expect(byTemplate.json()).toMatchObject({ error: { message: 'day token budget of 5000 reached: 5000 used (template coder)' } });
    expect(gw.refusals.map((r) => r.reason)).toEqual(['budget_exceeded', 'budget_exceeded']);
  });
});

describe('retries', () => {
  test('429 with retry-after: waits as asked, then the answer reaches the agent', async () => {
    const gw = await startGateway({ script: [{ status: 429, retryAfterS: 1 }, { text: 'after the wait', usage: USAGE }] });
    const { path, body } = modelRequest('openai-chat', true);
    const answer = await gw.send(path, { body });
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('after the wait'.slice(0, 5));
    const [first, second] = gw.fake.requests;
    expect(second!.receivedMs - first!.receivedMs).toBeGreaterThanOrEqual(950);
    expect(gw.calls).toEqual([expect.objectContaining({ status: 200, inputTokens: 1_000 })]);
  });

  test('500 until the deadline: the last status reaches the agent with the attempts counted', async () => {
    const gw = await startGateway({ script: [{ status: 500, times: 10_000, message: 'the model is on fire' }] });
    gw.task = { taskId: 't1', attempt: 1, deadlineMs: Date.now() + 2_000 };
    const { path, body } = modelRequest('anthropic-messages', false);
    const answer = await gw.send(path, { body });
    expect(answer.status).toBe(500);
    expect(answer.headers['x-should-retry']).toBe('false');
    const message = (answer.json() as { error: { type: string; message: string } }).error;
    expect(message.type).toBe('upstream_unavailable');
    const match = /^provider anthropic: 500 \(the model is on fire\) after (\d+) attempts in \d+\.\d s$/.exec(message.message);
    expect(match, message.message).not.toBeNull();
    expect(Number(match![1])).toBe(gw.fake.requests.length);
    expect(gw.fake.requests.length).toBeGreaterThan(2);
    expect(gw.calls).toEqual([expect.objectContaining({ status: 500, inputTokens: 0, outputTokens: 0 })]);
    expect(gw.unavailable).toEqual([
      { agent: 'coder-1', template: 'coder', taskId: 't1', attempt: 1, provider: 'anthropic', status: 500, attempts: Number(match![1]), detail: message.message },
    ]);
  });

  test('a provider that never sends headers is abandoned after headersTimeoutMs and tried again', async () => {
    const gw = await startGateway({
      script: [{ fault: 'hang' }, { text: 'awake', usage: USAGE }],
      gateway: { retry: { initialDelayMs: 50, headersTimeoutMs: 1_500 } },
    });
    const { path, body } = modelRequest('openai-responses', false);
    const answer = await gw.send(path, { body });
    expect(answer.status, answer.text).toBe(200);
    expect(gw.fake.requests).toHaveLength(2);
  });

  test('a provider that cannot be reached: 502 naming the refused connection', async () => {
    const gw = await startGateway();
    const closed = await startGateway();
    await closed.fake.close();
    gw.gateway.setProviders([{ name: 'openai', baseUrl: `${closed.fake.url}/v1`, wireApi: 'openai-chat', apiKey: PROVIDER_KEY }]);
    gw.task = { taskId: 't1', attempt: 1, deadlineMs: Date.now() + 1_000 };
    const answer = await gw.send('/p/openai/chat/completions', { body: { model: 'x', messages: [] } });
    expect(answer.status).toBe(502);
    expect(answer.json()).toMatchObject({ error: { message: expect.stringMatching(/^provider openai: connection refused after \d+ attempts in /) } });
  });

  test.each(['reset', 'end'] as const)('a stream cut mid-way (%s): no retry, the agent sees it end, the row keeps what was seen', async (how) => {
    const gw = await startGateway({ script: [{ fault: 'cut', afterChunks: 3, how, text: 'a long answer that will not arrive whole', usage: USAGE }] });
    const { path, body } = modelRequest('anthropic-messages', true);
    const answer = await gw.send(path, { body });
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('message_start');
    expect(answer.text).not.toContain('message_stop');
    expect(gw.fake.requests).toHaveLength(1);
    await expect.poll(() => gw.calls.length).toBe(1);
    expect(gw.calls[0]).toMatchObject({ status: 200, inputTokens: 1_000 });
  });
});

describe('streaming', () => {
  test.each(WIRE_APIS)('%s: events reach the agent as they arrive, while the provider is still sending', async (wire) => {
    // The provider sends three events and then stalls with the stream open: a gateway that held the
    // answer back until it ended would deliver nothing.
    const gw = await startGateway({ script: [{ fault: 'cut', afterChunks: 3, how: 'stall', text: 'streamed in pieces' }] });
    const { path, body } = modelRequest(wire, true);
    const response = await request(`http://localhost${path}`, {
      dispatcher: gw.dispatcher,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.statusCode).toBe(200);
    let received = '';
    for await (const chunk of response.body) {
      received += (chunk as Buffer).toString('utf8');
      if (received.split('\n\n').length > 3) break;
    }
    expect(received.split('\n\n').filter((event) => event.includes('data:'))).toHaveLength(3);
  });
});

test('an agent that goes away mid-stream: the upstream request is abandoned and the call recorded with what was seen', async () => {
  const gw = await startGateway({ script: [{ fault: 'cut', afterChunks: 2, how: 'stall', text: 'never finished', usage: USAGE }] });
  const { path, body } = modelRequest('anthropic-messages', true);
  const controller = new AbortController();
  const response = await request(`http://localhost${path}`, {
    dispatcher: gw.dispatcher,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  let received = '';
  await expect(
    (async () => {
      for await (const chunk of response.body) {
        received += (chunk as Buffer).toString('utf8');
        if (received.includes('message_start')) controller.abort();
      }
    })(),
  ).rejects.toThrow();
  await expect.poll(() => gw.calls.length, { timeout: 10_000 }).toBe(1);
  expect(gw.calls[0]).toMatchObject({ status: 200, inputTokens: 1_000 });
});

describe('the /mcp relay', () => {
  test("reaches the MCP endpoint with the agent's token, streaming both ways, and without a token is refused", async () => {
    const seen: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[] = [];
    const mcp = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        if (req.method === 'GET') {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': 's-1' });
          res.write('event: message\ndata: {"first":true}\n\n');
          setTimeout(() => res.end('event: message\ndata: {"second":true}\n\n'), 50);
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 's-1', 'set-cookie': 'x=y' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { echoed: JSON.parse(body) as unknown } }));
      });
    });
    mcp.listen(0, '127.0.0.1');
    await once(mcp, 'listening');
    onTestFinished(async () => {
      mcp.closeAllConnections();
      await new Promise((resolve) => mcp.close(resolve));
    });
    const mcpUrl = `http://127.0.0.1:${(mcp.address() as AddressInfo).port}/mcp`;
    const gw = await startGateway({ gateway: { mcpUrl }, access: { mcpToken: 'agent-token-1' } });
    const call = await gw.send('/mcp?x=1', {
      body: { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      headers: { accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18', authorization: 'Bearer forged', 'x-other': 'dropped' },
    });
    expect(call.status).toBe(200);
    expect(call.headers['mcp-session-id']).toBe('s-1');
    expect(call.headers['set-cookie']).toBeUndefined();
    expect(call.json()).toMatchObject({ result: { echoed: { method: 'tools/list' } } });
    const sse = await gw.send('/mcp', { headers: { accept: 'text/event-stream', 'mcp-session-id': 's-1' } });
    expect(sse.text).toBe('event: message\ndata: {"first":true}\n\nevent: message\ndata: {"second":true}\n\n');
    expect(seen.map((r) => [r.method, r.url, r.headers.authorization, r.headers['x-other'], r.headers['mcp-session-id'] ?? null])).toEqual([
      ['POST', '/mcp?x=1', 'Bearer agent-token-1', undefined, null],
      ['GET', '/mcp', 'Bearer agent-token-1', undefined, 's-1'],
    ]);
    expect(seen[0]?.headers['mcp-protocol-version']).toBe('2025-06-18');
    expect(gw.calls).toEqual([]);

    const noToken = await startGateway({ gateway: { mcpUrl } });
    const refused = await noToken.send('/mcp', { body: {} });
    expect(refused.status).toBe(403);
    expect(noToken.refusals).toEqual([expect.objectContaining({ reason: 'mcp_not_allowed', detail: 'agent coder-1 has no MCP token' })]);
    expect(seen).toHaveLength(2);
  });
});

describe('lifecycle', () => {
  test('the socket is mode 0660 and owned as asked; something else at its path is not replaced', async () => {
    const gw = await startGateway();
    const dir = await makeTempDir('warren-llm-gateway-');
    onTestFinished(() => dir.close());
    const path = join(dir.path, 'llm.sock');
    const socket = await gw.gateway.serve({ agent: 'a', template: 't', providers: [], budgets: { template: {}, agent: {} }, currentTask: () => null }, path, {
      owner: { uid: 12_345, gid: 12_346 },
    });
    const info = await stat(path);
    expect(info.isSocket()).toBe(true);
    expect(info.mode & 0o777).toBe(0o660);
    expect([info.uid, info.gid]).toEqual([12_345, 12_346]);
    await socket.close();
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
    await (await import('node:fs/promises')).writeFile(path, 'not a socket');
    await expect(gw.gateway.serve({ agent: 'a', template: 't', providers: [], budgets: { template: {}, agent: {} }, currentTask: () => null }, path)).rejects.toThrow(
      LlmGatewayError,
    );
  });

  test('close() ends open streams, records what was seen, removes the socket and is idempotent', async () => {
    const gw = await startGateway({
      script: [{ text: 'word '.repeat(400), usage: USAGE }],
      fake: { chunkChars: 5, chunkDelayMs: 20 },
    });
    const { path, body } = modelRequest('openai-chat', true);
    const response = await request(`http://localhost${path}`, {
      dispatcher: gw.dispatcher,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.statusCode).toBe(200);
    const reader = response.body[Symbol.asyncIterator]();
    const first = await reader.next();
    expect(first.done).toBe(false);
    const closing = gw.gateway.close();
    expect(gw.gateway.close()).toBe(closing);
    await closing;
    // The rest of the answer ends (cleanly or with an error): it never hangs.
    await (async () => {
      for (;;) if ((await reader.next()).done) return;
    })().catch(() => undefined);
    await expect(stat(gw.socket.socketPath)).rejects.toThrow(/ENOENT/);
    await gw.socket.close();
    expect(gw.calls).toEqual([expect.objectContaining({ status: 200, inputTokens: 0 })]);
    await expect(gw.gateway.serve({ agent: 'a', template: 't', providers: [], budgets: { template: {}, agent: {} }, currentTask: () => null }, gw.socket.socketPath)).rejects.toThrow(
      /closed/,
    );
  });
});

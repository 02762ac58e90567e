import { describe, expect, test } from 'vitest';
import {
  ANTHROPIC_VERSION,
  DEFAULT_RETRY,
  LlmGatewayError,
  UsageMeter,
  agentResponseHeaders,
  backoffDelayMs,
  costUsd,
  indexProviders,
  mcpRequestHeaders,
  prepareBody,
  providerRequestHeaders,
  retryAfterMs,
  upstreamUrl,
  wireErrorBody,
  type LlmProvider,
} from '@warren/llm-gateway';

const openai: LlmProvider = {
  name: 'openai',
  baseUrl: 'https://api.openai.com/v1',
  wireApi: 'openai-chat',
  apiKey: 'sk-provider',
  models: { fast: 'gpt-4.1-mini' },
  prices: { 'gpt-4.1-mini': { input: 0.4, output: 1.6 } },
};
const anthropic: LlmProvider = { name: 'anthropic', baseUrl: 'https://api.anthropic.com', wireApi: 'anthropic-messages', apiKey: 'sk-ant' };

/** Feeds `text` to a meter in chunks of `size` bytes, splitting lines and even UTF-8 sequences. */
function meter(wire: LlmProvider['wireApi'], contentType: string, text: string, size = 7): UsageMeter {
  const m = new UsageMeter(wire, contentType);
  const bytes = Buffer.from(text);
  for (let at = 0; at < bytes.length; at += size) m.push(bytes.subarray(at, at + size));
  return m;
}

const sse = (events: { event?: string; data: unknown }[]): string =>
  events.map((e) => `${e.event ? `event: ${e.event}\n` : ''}data: ${typeof e.data === 'string' ? e.data : JSON.stringify(e.data)}\n\n`).join('');

describe('usage meter', () => {
  test('reads OpenAI Chat Completions usage from a JSON body and from the last SSE chunk', () => {
    const json = meter('openai-chat', 'application/json', JSON.stringify({ model: 'gpt-4.1-mini-2025', choices: [], usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 } }));
    expect(json.result()).toEqual({ inputTokens: 12, outputTokens: 5, model: 'gpt-4.1-mini-2025', found: true });
    const streamed = meter(
      'openai-chat',
      'text/event-stream; charset=utf-8',
      sse([
        { data: { model: 'm', choices: [{ delta: { content: 'héllo' } }], usage: null } },
        { data: { model: 'm', choices: [], usage: { prompt_tokens: 30, completion_tokens: 9 } } },
        { data: '[DONE]' },
      ]),
      3,
    );
    expect(streamed.result()).toEqual({ inputTokens: 30, outputTokens: 9, model: 'm', found: true });
  });

  test('reads OpenAI Responses usage from the body and from response.completed', () => {
    const body = { id: 'resp_1', model: 'gpt-5', output: [], usage: { input_tokens: 100, output_tokens: 20, total_tokens: 120 } };
    expect(meter('openai-responses', 'application/json', JSON.stringify(body)).result()).toMatchObject({ inputTokens: 100, outputTokens: 20, model: 'gpt-5' });
    const streamed = meter(
      'openai-responses',
      'text/event-stream',
      sse([
        { event: 'response.created', data: { type: 'response.created', response: { model: 'gpt-5', usage: null } } },
        { event: 'response.output_text.delta', data: { type: 'response.output_text.delta', delta: 'hi' } },
        { event: 'response.completed', data: { type: 'response.completed', response: body } },
      ]),
    );
    expect(streamed.result()).toEqual({ inputTokens: 100, outputTokens: 20, model: 'gpt-5', found: true });
  });

  test('reads Anthropic Messages usage, cached prompt tokens included, and the cumulative message_delta', () => {
    const body = { type: 'message', model: 'claude-sonnet-4-5', usage: { input_tokens: 10, cache_read_input_tokens: 90, output_tokens: 7 } };
    expect(meter('anthropic-messages', 'application/json', JSON.stringify(body)).result()).toMatchObject({ inputTokens: 100, outputTokens: 7 });
    const streamed = meter(
      'anthropic-messages',
      'text/event-stream',
      sse([
        { event: 'message_start', data: { type: 'message_start', message: { model: 'claude-sonnet-4-5', usage: { input_tokens: 40, cache_creation_input_tokens: 2, output_tokens: 1 } } } },
        { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'x' } } },
        { event: 'message_delta', data: { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 15 } } },
        { event: 'message_stop', data: { type: 'message_stop' } },
      ]),
    );
    expect(streamed.result()).toEqual({ inputTokens: 42, outputTokens: 15, model: 'claude-sonnet-4-5', found: true });
  });

  test('a stream cut before its usage, a broken body or an answer of another type yields zero, never a throw', () => {
    const cut = meter('anthropic-messages', 'text/event-stream', 'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tok');
    expect(cut.result()).toEqual({ inputTokens: 0, outputTokens: 0, model: undefined, found: false });
    expect(meter('openai-chat', 'application/json', '{"usage": {"prompt_tokens": 3').result().found).toBe(false);
    expect(meter('openai-chat', 'text/plain', '{"usage":{"prompt_tokens":3}}').result().found).toBe(false);
    expect(meter('openai-chat', 'text/event-stream', 'data: not json\n\ndata: [1,2]\n\n').result().found).toBe(false);
  });
});

describe('providers', () => {
  test('a bad provider is refused naming the provider and the field', () => {
    const bad = (change: Partial<LlmProvider>): (() => unknown) => () => indexProviders([{ ...openai, ...change }]);
    expect(bad({ baseUrl: 'ftp://x' })).toThrow(/provider 'openai': 'baseUrl' must be an http: or https: URL/);
    expect(bad({ baseUrl: 'not a url' })).toThrow(/'baseUrl' is not a URL/);
    expect(bad({ wireApi: 'grpc' as LlmProvider['wireApi'] })).toThrow(/'wireApi' must be one of openai-chat, openai-responses, anthropic-messages/);
    expect(bad({ apiKey: '' })).toThrow(/'apiKey' must be a non-empty string when given/);
    expect(bad({ apiKey: undefined })).not.toThrow();
    expect(bad({ name: 'a/b' })).toThrow(LlmGatewayError);
    expect(bad({ prices: { m: { input: -1, output: 1 } } })).toThrow(/'prices.m.input' must be a finite number/);
    expect(() => indexProviders([openai, openai])).toThrow(/'name' is used by another provider/);
    expect([...indexProviders([openai, anthropic]).keys()]).toEqual(['openai', 'anthropic']);
  });

  test('the upstream URL keeps the base path and the query, and refuses dot segments', () => {
    expect(upstreamUrl(openai, 'chat/completions', '?a=1')?.href).toBe('https://api.openai.com/v1/chat/completions?a=1');
    expect(upstreamUrl(anthropic, 'v1/messages', '')?.href).toBe('https://api.anthropic.com/v1/messages');
    expect(upstreamUrl({ ...openai, baseUrl: 'http://127.0.0.1:9/v1/' }, 'models', '')?.href).toBe('http://127.0.0.1:9/v1/models');
    expect(upstreamUrl(openai, '../admin', '')).toBeNull();
    expect(upstreamUrl(openai, 'a/%2e%2E/b', '')).toBeNull();
    expect(upstreamUrl(openai, 'a\\..\\b', '')).toBeNull();
    expect(upstreamUrl(openai, '/evil.example/x', '')?.host).toBe('api.openai.com');
  });

  test('cost is tokens times the price per million tokens, 0 when unpriced', () => {
    expect(costUsd(openai, 'gpt-4.1-mini', 1_000_000, 500_000)).toBeCloseTo(0.4 + 0.8, 10);
    expect(costUsd(openai, 'other', 1_000, 1_000)).toBe(0);
  });

  test('the model is mapped, and a streamed chat request asks for usage', () => {
    const prepared = prepareBody(openai, Buffer.from(JSON.stringify({ model: 'fast', stream: true, messages: [] })), 'application/json');
    expect(prepared.model).toBe('gpt-4.1-mini');
    expect(JSON.parse(prepared.body.toString())).toEqual({ model: 'gpt-4.1-mini', stream: true, messages: [], stream_options: { include_usage: true } });
    const untouched = Buffer.from(JSON.stringify({ model: 'claude', stream: true }));
    expect(prepareBody(anthropic, untouched, 'application/json')).toEqual({ body: untouched, model: 'claude' });
    const notJson = Buffer.from('model=fast');
    expect(prepareBody(openai, notJson, 'application/x-www-form-urlencoded')).toEqual({ body: notJson, model: undefined });
  });
});

describe('headers', () => {
  test("the agent's credentials and hop-by-hop headers are dropped and the provider's key added", () => {
    const agent = {
      authorization: 'Bearer agent-key',
      'x-api-key': 'agent-key',
      'api-key': 'agent-key',
      cookie: 'a=b',
      connection: 'keep-alive, x-hop',
      'x-hop': '1',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      host: 'localhost',
      'accept-encoding': 'gzip',
      'content-type': 'application/json',
      'anthropic-beta': 'tools',
    };
    expect(providerRequestHeaders(agent, 'openai-chat', 'sk-provider')).toEqual({
      'content-type': 'application/json',
      'anthropic-beta': 'tools',
      'accept-encoding': 'identity',
      authorization: 'Bearer sk-provider',
    });
    expect(providerRequestHeaders(agent, 'anthropic-messages', 'sk-ant')).toEqual({
      'content-type': 'application/json',
      'anthropic-beta': 'tools',
      'accept-encoding': 'identity',
      'x-api-key': 'sk-ant',
      'anthropic-version': ANTHROPIC_VERSION,
    });
    expect(providerRequestHeaders({ 'anthropic-version': '2024-01-01' }, 'anthropic-messages', 'k')['anthropic-version']).toBe('2024-01-01');
  });

  test('the MCP relay passes only MCP headers, and answers lose set-cookie and framing', () => {
    expect(
      mcpRequestHeaders({ accept: 'text/event-stream', 'mcp-session-id': 's1', 'mcp-protocol-version': '2025-06-18', authorization: 'Bearer x', 'x-other': '1', 'content-type': 'application/json' }, 'tok'),
    ).toEqual({ accept: 'text/event-stream', 'mcp-session-id': 's1', 'mcp-protocol-version': '2025-06-18', 'content-type': 'application/json', authorization: 'Bearer tok' });
    expect(agentResponseHeaders({ 'content-type': 'text/event-stream', 'content-length': '10', 'set-cookie': ['a=b'], connection: 'close', 'x-request-id': 'r' })).toEqual({
      'content-type': 'text/event-stream',
      'x-request-id': 'r',
    });
  });
});

describe('retry timing', () => {
  test('backoff doubles from 500 ms up to 8 s, jittered within the upper half', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelayMs(DEFAULT_RETRY, n, 0))).toEqual([250, 500, 1000, 2000, 4000, 4000, 4000]);
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelayMs(DEFAULT_RETRY, n, 0.999_999))).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
  });

  test('retry-after is read in ms, seconds or as an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs({ 'retry-after-ms': '1500', 'retry-after': '9' }, now)).toBe(1500);
    expect(retryAfterMs({ 'retry-after': '2' }, now)).toBe(2000);
    expect(retryAfterMs({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }, now)).toBe(3000);
    expect(retryAfterMs({ 'retry-after': 'soon' }, now)).toBeUndefined();
    expect(retryAfterMs({}, now)).toBeUndefined();
  });
});

test('error bodies take the wire shape an SDK reads', () => {
  expect(JSON.parse(wireErrorBody('openai-chat', 'budget_exceeded', 'no more'))).toEqual({ error: { message: 'no more', type: 'budget_exceeded', param: null, code: 'budget_exceeded' } });
  expect(JSON.parse(wireErrorBody('anthropic-messages', 'budget_exceeded', 'no more'))).toEqual({ type: 'error', error: { type: 'budget_exceeded', message: 'no more' } });
});

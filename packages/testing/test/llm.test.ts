import Anthropic from '@anthropic-ai/sdk';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { describe, expect, it, onTestFinished } from 'vitest';
import { makeTempDir, startFakeLlm, type FakeLlm, type StartFakeLlmOptions } from '../src/index.js';

/** The built standalone server (`npm run build` first, as `npm test` does). */
const MAIN = fileURLToPath(new URL('../dist/llm/main.js', import.meta.url));

const TOOLS: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  {
    type: 'function',
    function: { name: 'shell', description: 'run a command', parameters: { type: 'object', properties: { cmd: { type: 'string' } } } },
  },
];

async function fake(options: StartFakeLlmOptions): Promise<FakeLlm> {
  const llm = await startFakeLlm(options);
  onTestFinished(() => llm.close());
  return llm;
}

function openai(llm: FakeLlm, extra: { maxRetries?: number; timeout?: number } = {}): OpenAI {
  return new OpenAI({ baseURL: `${llm.url}/v1`, apiKey: 'sk-test-key', maxRetries: 0, ...extra });
}

function anthropic(llm: FakeLlm, extra: { maxRetries?: number } = {}): Anthropic {
  return new Anthropic({ baseURL: llm.url, apiKey: 'sk-ant-test-key', maxRetries: 0, ...extra });
}

/** One parsed Server-Sent Event. */
interface Sse {
  event: string | undefined;
  data: string;
}

/** Reads a whole SSE body and splits it into events (the WHATWG format: blank-line separated, `event:`/`data:` fields). */
async function readSse(response: Response): Promise<Sse[]> {
  const text = await response.text();
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      let event: string | undefined;
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice('event: '.length);
        else if (line.startsWith('data: ')) data.push(line.slice('data: '.length));
      }
      return { event, data: data.join('\n') };
    });
}

function post(llm: FakeLlm, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${llm.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const MESSAGES_BODY = { model: 'claude-test', max_tokens: 256, messages: [{ role: 'user' as const, content: 'list the files' }] };

describe('startFakeLlm: OpenAI Chat Completions', () => {
  it('streams text and tool calls that the openai client reassembles, with usage when asked', async () => {
    const llm = await fake({
      script: [
        {
          text: 'Let me look at the files in the workspace first.',
          toolCalls: [
            { name: 'shell', arguments: { cmd: 'ls -la /home/agent' }, id: 'call_ls' },
            { name: 'shell', arguments: { cmd: 'cat README.md' } },
          ],
          usage: { inputTokens: 120, outputTokens: 34 },
        },
      ],
    });
    const stream = await openai(llm).chat.completions.create({
      model: 'gpt-test',
      messages: [{ role: 'user', content: 'look around' }],
      tools: TOOLS,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    const textDeltas = chunks.flatMap((c) => c.choices.map((choice) => choice.delta.content ?? '')).filter((t) => t !== '');
    expect(textDeltas.length).toBeGreaterThan(2);
    expect(textDeltas.join('')).toBe('Let me look at the files in the workspace first.');
    const calls: { id?: string; name: string; arguments: string }[] = [];
    for (const chunk of chunks) {
      for (const delta of chunk.choices[0]?.delta.tool_calls ?? []) {
        calls[delta.index] ??= { name: '', arguments: '' };
        const call = calls[delta.index]!;
        if (delta.id) call.id = delta.id;
        call.name += delta.function?.name ?? '';
        call.arguments += delta.function?.arguments ?? '';
      }
    }
    expect(calls).toHaveLength(2);
    expect(calls[0]).toEqual({ id: 'call_ls', name: 'shell', arguments: JSON.stringify({ cmd: 'ls -la /home/agent' }) });
    expect(calls[1]!.id).toMatch(/^call_/);
    expect(JSON.parse(calls[1]!.arguments)).toEqual({ cmd: 'cat README.md' });
    const argumentDeltas = chunks.filter((c) => c.choices[0]?.delta.tool_calls?.[0]?.function?.arguments);
    expect(argumentDeltas.length).toBeGreaterThan(2);
    expect(chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean)).toEqual(['tool_calls']);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: 120, completion_tokens: 34, total_tokens: 154 });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it('answers the stream helper, whose final completion holds the parsed tool call', async () => {
    const llm = await fake({ script: [{ toolCalls: [{ name: 'shell', arguments: { cmd: 'make test' } }] }] });
    const runner = openai(llm).chat.completions.stream({ model: 'gpt-test', messages: [{ role: 'user', content: 'test it' }], tools: TOOLS });
    const completion = await runner.finalChatCompletion();
    expect(completion.choices[0]!.finish_reason).toBe('tool_calls');
    const call = completion.choices[0]!.message.tool_calls![0]!;
    expect(call.type).toBe('function');
    if (call.type !== 'function') throw new Error('not a function call');
    expect(call.function.name).toBe('shell');
    expect(JSON.parse(call.function.arguments)).toEqual({ cmd: 'make test' });
  });

  it('answers without streaming, with stop and the usage', async () => {
    const llm = await fake({ script: [{ text: 'All tests pass.', usage: { inputTokens: 10, outputTokens: 4 }, model: 'gpt-answered' }] });
    const completion = await openai(llm).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'run the tests' }] });
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe('gpt-answered');
    expect(completion.choices[0]!.message).toMatchObject({ role: 'assistant', content: 'All tests pass.' });
    expect(completion.choices[0]!.finish_reason).toBe('stop');
    expect(completion.usage).toEqual({ prompt_tokens: 10, completion_tokens: 4, total_tokens: 14 });
  });

  it('estimates usage when the turn names none', async () => {
    const llm = await fake({ script: [{ text: 'ok' }] });
    const completion = await openai(llm).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'x'.repeat(400) }] });
    expect(completion.usage!.prompt_tokens).toBeGreaterThanOrEqual(100);
    expect(completion.usage!.completion_tokens).toBeGreaterThanOrEqual(1);
    expect(completion.model).toBe('gpt-test');
  });
});

describe('startFakeLlm: OpenAI Responses', () => {
  it('streams the event sequence codex reads, and the client assembles the final response', async () => {
    const llm = await fake({
      script: [{ text: 'I will edit the file now.', toolCalls: [{ name: 'apply_patch', arguments: { path: 'a.txt', patch: '+hello' }, id: 'call_patch' }], usage: { inputTokens: 50, outputTokens: 20 } }],
    });
    const stream = await openai(llm).responses.create({ model: 'gpt-5-test', input: 'edit a.txt', stream: true });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('response.created');
    expect(types[1]).toBe('response.in_progress');
    expect(types.at(-1)).toBe('response.completed');
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const deltas = events.filter((e) => e.type === 'response.output_text.delta');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.map((e) => e.delta).join('')).toBe('I will edit the file now.');
    const done = events.filter((e) => e.type === 'response.output_item.done').map((e) => e.item);
    expect(done).toHaveLength(2);
    expect(done[0]).toMatchObject({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'I will edit the file now.' }] });
    expect(done[1]).toMatchObject({ type: 'function_call', call_id: 'call_patch', name: 'apply_patch' });
    const argDeltas = events.filter((e) => e.type === 'response.function_call_arguments.delta');
    expect(argDeltas.map((e) => e.delta).join('')).toBe(JSON.stringify({ path: 'a.txt', patch: '+hello' }));
    const completed = events.at(-1);
    if (completed?.type !== 'response.completed') throw new Error('no response.completed');
    expect(completed.response.status).toBe('completed');
    expect(completed.response.usage).toMatchObject({ input_tokens: 50, output_tokens: 20, total_tokens: 70 });

    const llm2 = await fake({ script: [{ text: 'Done: a.txt now says hello.' }] });
    const final = await openai(llm2).responses.stream({ model: 'gpt-5-test', input: [{ role: 'user', content: 'edit a.txt' }] }).finalResponse();
    expect(final.output_text).toBe('Done: a.txt now says hello.');
  });

  it('answers without streaming, with output_text and function_call items', async () => {
    const llm = await fake({ script: [{ toolCalls: [{ name: 'shell', arguments: '{"cmd":"ls"}' }] }, { text: 'There are two files.' }] });
    const client = openai(llm);
    const first = await client.responses.create({ model: 'gpt-5-test', input: 'what is here?' });
    expect(first.output).toEqual([expect.objectContaining({ type: 'function_call', name: 'shell', arguments: '{"cmd":"ls"}', call_id: expect.stringMatching(/^call_/) })]);
    const second = await client.responses.create({ model: 'gpt-5-test', input: 'go on' });
    expect(second.output_text).toBe('There are two files.');
    expect(llm.requests.map((r) => r.wire)).toEqual(['openai-responses', 'openai-responses']);
  });
});

describe('startFakeLlm: Anthropic Messages', () => {
  it('streams message_start, content blocks with text and input_json deltas, message_delta and message_stop', async () => {
    const llm = await fake({
      script: [{ text: 'I will run the build and then read its log.', toolCalls: [{ name: 'Bash', arguments: { command: 'npm run build' }, id: 'toolu_build' }], usage: { inputTokens: 300, outputTokens: 42 } }],
    });
    const response = await post(llm, '/v1/messages', { ...MESSAGES_BODY, stream: true }, { 'x-api-key': 'sk-ant-raw', 'anthropic-version': '2023-06-01' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = await readSse(response);
    const payloads = events.map((e) => JSON.parse(e.data) as { type: string } & Record<string, unknown>);
    expect(events.map((e) => e.event)).toEqual(payloads.map((p) => p.type));
    const types = payloads.map((p) => p.type);
    expect(types.slice(0, 3)).toEqual(['message_start', 'ping', 'content_block_start']);
    expect(types.slice(-2)).toEqual(['message_delta', 'message_stop']);
    expect(payloads[0]).toMatchObject({ message: { role: 'assistant', content: [], stop_reason: null, usage: { input_tokens: 300 } } });
    const blockStarts = payloads.filter((p) => p.type === 'content_block_start');
    expect(blockStarts).toEqual([
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_build', name: 'Bash', input: {} } },
    ]);
    const deltas = payloads.filter((p) => p.type === 'content_block_delta') as unknown as { index: number; delta: { type: string; text?: string; partial_json?: string } }[];
    const textDeltas = deltas.filter((d) => d.index === 0);
    expect(textDeltas.length).toBeGreaterThan(2);
    expect(textDeltas.every((d) => d.delta.type === 'text_delta')).toBe(true);
    expect(textDeltas.map((d) => d.delta.text).join('')).toBe('I will run the build and then read its log.');
    const jsonDeltas = deltas.filter((d) => d.index === 1);
    expect(jsonDeltas.length).toBeGreaterThan(1);
    expect(jsonDeltas.every((d) => d.delta.type === 'input_json_delta')).toBe(true);
    expect(JSON.parse(jsonDeltas.map((d) => d.delta.partial_json).join(''))).toEqual({ command: 'npm run build' });
    expect(payloads.filter((p) => p.type === 'content_block_stop')).toEqual([{ type: 'content_block_stop', index: 0 }, { type: 'content_block_stop', index: 1 }]);
    expect(payloads.at(-2)).toEqual({ type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 42 } });
  });

  it('answers the Anthropic client, streamed and not, with end_turn and tool_use', async () => {
    const llm = await fake({
      script: [
        { toolCalls: [{ name: 'Edit', arguments: { file_path: 'a.txt', new_string: 'hello' } }] },
        { text: 'The file now says hello.', usage: { inputTokens: 7, outputTokens: 6 } },
      ],
    });
    const client = anthropic(llm);
    const first = await client.messages.stream(MESSAGES_BODY).finalMessage();
    expect(first.stop_reason).toBe('tool_use');
    expect(first.content).toEqual([{ type: 'tool_use', id: expect.stringMatching(/^toolu_/), name: 'Edit', input: { file_path: 'a.txt', new_string: 'hello' } }]);
    const second = await client.messages.create(MESSAGES_BODY);
    expect(second).toMatchObject({ type: 'message', role: 'assistant', model: 'claude-test', stop_reason: 'end_turn', content: [{ type: 'text', text: 'The file now says hello.' }] });
    expect(second.usage).toMatchObject({ input_tokens: 7, output_tokens: 6 });
  });

  it('counts tokens and lists models without using a turn', async () => {
    const llm = await fake({ script: [], models: ['claude-test', 'gpt-test'] });
    const count = await anthropic(llm).messages.countTokens({ model: 'claude-test', messages: [{ role: 'user', content: 'hello there' }] });
    expect(count.input_tokens).toBeGreaterThan(0);
    const openaiModels = [];
    for await (const model of openai(llm).models.list()) openaiModels.push(model.id);
    expect(openaiModels).toEqual(['claude-test', 'gpt-test']);
    const anthropicModels = await anthropic(llm).models.list();
    expect(anthropicModels.data.map((m) => m.id)).toEqual(['claude-test', 'gpt-test']);
    expect(llm.requests.map((r) => r.wire)).toEqual(['other', 'other', 'other']);
  });
});

describe('startFakeLlm: scripts and the request log', () => {
  it('records method, path, query, lowercased headers, parsed body, wire and time of every request', async () => {
    const llm = await fake({ script: [{ text: 'one' }, { text: 'two' }] });
    const before = Date.now();
    await openai(llm).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'first' }] });
    const raw = await post(llm, '/v1/messages?beta=true', MESSAGES_BODY, { 'X-Api-Key': 'sk-ant-raw', 'Anthropic-Version': '2023-06-01' });
    await fetch(`${llm.url}/v2/nothing`);
    const [chat, messages, other] = llm.requests;
    expect(chat).toMatchObject({ method: 'POST', path: '/v1/chat/completions', search: '', wire: 'openai-chat', body: { model: 'gpt-test', messages: [{ role: 'user', content: 'first' }] } });
    expect(chat!.headers.authorization).toBe('Bearer sk-test-key');
    expect(messages).toMatchObject({ path: '/v1/messages', search: '?beta=true', wire: 'anthropic-messages', body: MESSAGES_BODY });
    expect(messages!.headers['x-api-key']).toBe('sk-ant-raw');
    expect(messages!.headers['anthropic-version']).toBe('2023-06-01');
    expect(messages!.requestId).toMatch(/^req_[0-9a-f]{24}$/);
    expect(raw.headers.get('request-id')).toBe(messages!.requestId);
    expect(raw.headers.get('x-request-id')).toBe(messages!.requestId);
    expect(new Set(llm.requests.map((r) => r.requestId)).size).toBe(3);
    expect(other).toMatchObject({ method: 'GET', path: '/v2/nothing', wire: 'other', body: null });
    for (const request of llm.requests) expect(request.receivedMs).toBeGreaterThanOrEqual(before);
  });

  it('takes answers from a function of the request, so a test can answer side calls', async () => {
    const llm = await fake({
      script: (request) => {
        const body = request.body as { system?: string; messages: { content: string }[] };
        if (body.system?.includes('title')) return { text: 'Fix the login' };
        return { text: `you said: ${body.messages[0]!.content}` };
      },
    });
    const client = anthropic(llm);
    const title = await client.messages.create({ ...MESSAGES_BODY, system: 'Write a title for this conversation' });
    const main = await client.messages.create({ ...MESSAGES_BODY, messages: [{ role: 'user', content: 'hello' }] });
    expect(title.content).toEqual([{ type: 'text', text: 'Fix the login' }]);
    expect(llm.turnsLeft).toBeUndefined();
    expect(main.content).toEqual([{ type: 'text', text: 'you said: hello' }]);
  });

  it('answers requests that offer no tools with the side-call turn, using no scripted turn', async () => {
    const llm = await fake({ script: [{ text: 'main answer' }], sideCall: { text: 'A title' } });
    const client = openai(llm);
    const title = await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'title this' }] });
    expect(title.choices[0]!.message.content).toBe('A title');
    const main = await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'work' }], tools: TOOLS });
    expect(main.choices[0]!.message.content).toBe('main answer');
    const again = await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'title again' }], tools: [] });
    expect(again.choices[0]!.message.content).toBe('A title');
    expect(llm.turnsLeft).toBe(0);
    await expect(startFakeLlm({ sideCall: { fault: 'sleep' } as never })).rejects.toThrow(/'sideCall' is not a FakeTurn: 'fault' must be 'hang' or 'cut'/);
  });

  it('tells a test observer of each request as it arrives', async () => {
    const seen: string[] = [];
    const llm = await fake({
      script: [{ text: 'ok' }],
      onRequest: (request) => {
        seen.push(`${request.method} ${request.path}`);
        throw new Error('an observer that throws changes nothing');
      },
    });
    const completion = await openai(llm).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });
    expect(completion.choices[0]!.message.content).toBe('ok');
    expect(seen).toEqual(['POST /v1/chat/completions']);
  });

  it('answers 500 saying the script ran out, and asks clients not to retry', async () => {
    const llm = await fake({ script: [{ text: 'only one' }] });
    const client = openai(llm, { maxRetries: 2 });
    await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'a' }] });
    const error = await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'b' }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as Error).message).toMatch(/script ran out: it has 1 turn\(s\) and this is scripted model request 2/);
    expect(llm.requests).toHaveLength(2);
  });

  it('answers 500 naming a malformed turn', async () => {
    const llm = await fake({ script: [{ toolCalls: [{ arguments: {} }] } as never] });
    const response = await post(llm, '/v1/messages', MESSAGES_BODY);
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ type: 'error', error: { type: 'api_error', message: expect.stringMatching(/script turn #0 is not a FakeTurn: toolCalls\[0\] needs a non-empty string 'name'/) } });
  });

  it('refuses unknown paths, wrong methods, bodies that are not JSON, missing fields and a wrong key, in each wire\'s error shape, using no turn', async () => {
    const llm = await fake({ script: [{ text: 'still here' }], apiKey: 'right-key' });
    const unknown = await post(llm, '/v1/embeddings', { model: 'x', input: 'y' });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { type: 'invalid_request_error', message: expect.stringContaining('/v1/embeddings') } });
    const get = await fetch(`${llm.url}/v1/chat/completions`);
    expect(get.status).toBe(405);
    const notJson = await post(llm, '/v1/messages', '{"model": ', { 'x-api-key': 'right-key' });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('not a JSON object') } });
    const empty = await post(llm, '/v1/chat/completions', '', { authorization: 'Bearer right-key' });
    expect(empty.status).toBe(400);
    expect(await empty.json()).toMatchObject({ error: { message: expect.stringContaining('empty') } });
    const noMaxTokens = await post(llm, '/v1/messages', { model: 'm', messages: [] }, { 'x-api-key': 'right-key' });
    expect(noMaxTokens.status).toBe(400);
    expect(await noMaxTokens.json()).toMatchObject({ error: { message: expect.stringContaining('max_tokens') } });
    const wrongKey = await post(llm, '/v1/messages', MESSAGES_BODY, { 'x-api-key': 'wrong-key' });
    expect(wrongKey.status).toBe(401);
    expect(await wrongKey.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    const noKey = await post(llm, '/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toMatchObject({ error: { code: 'invalid_api_key' } });
    const ok = await post(llm, '/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }] }, { authorization: 'Bearer right-key' });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ choices: [{ message: { content: 'still here' } }] });
    expect(llm.requests).toHaveLength(8);
  });
});

describe('startFakeLlm: faults', () => {
  it('answers 429 with retry-after, which the openai client honours before its retry succeeds', async () => {
    const llm = await fake({ script: [{ status: 429, retryAfterS: 1 }, { status: 429, retryAfterS: 1 }, { text: 'after the wait' }] });
    const raw = await post(llm, '/v1/messages', MESSAGES_BODY);
    expect(raw.status).toBe(429);
    expect(raw.headers.get('retry-after')).toBe('1');
    expect(await raw.json()).toEqual({ type: 'error', error: { type: 'rate_limit_error', message: 'fake LLM: scripted HTTP 429' } });

    const completion = await openai(llm, { maxRetries: 1 }).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });
    expect(completion.choices[0]!.message.content).toBe('after the wait');
    const [, limited, retried] = llm.requests;
    expect(limited!.wire).toBe('openai-chat');
    // The client waits the retry-after second before asking again (a lower bound the client guarantees).
    expect(retried!.receivedMs - limited!.receivedMs).toBeGreaterThanOrEqual(900);
  });

  it('answers 500 and 503 the given number of times in each wire\'s error shape', async () => {
    const llm = await fake({ script: [{ status: 500, times: 2 }, { status: 503, message: 'down for maintenance' }, { text: 'back' }] });
    expect(llm.turnsLeft).toBe(3);
    const first = await openai(llm).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(llm.turnsLeft).toBe(3);
    expect(first).toBeInstanceOf(OpenAI.InternalServerError);
    expect((first as InstanceType<typeof OpenAI.InternalServerError>).status).toBe(500);
    expect((first as InstanceType<typeof OpenAI.InternalServerError>).error).toMatchObject({ type: 'server_error', message: 'fake LLM: scripted HTTP 500' });
    const second = await anthropic(llm).messages.create(MESSAGES_BODY).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(Anthropic.InternalServerError);
    expect((second as InstanceType<typeof Anthropic.InternalServerError>).status).toBe(500);
    const third = await post(llm, '/v1/responses', { model: 'gpt-5-test', input: 'hi' });
    expect(third.status).toBe(503);
    expect(await third.json()).toMatchObject({ error: { message: 'down for maintenance', type: 'server_error' } });
    expect(llm.turnsLeft).toBe(1);
    const fourth = await anthropic(llm).messages.create(MESSAGES_BODY);
    expect(fourth.content).toEqual([{ type: 'text', text: 'back' }]);
    expect(llm.turnsLeft).toBe(0);
  });

  it("answers Anthropic's 529 overloaded and a 504 in the wire's error shape", async () => {
    const llm = await fake({ script: [{ status: 529 }, { status: 504, retryAfterS: 2 }] });
    const overloaded = await post(llm, '/v1/messages', MESSAGES_BODY);
    expect(overloaded.status).toBe(529);
    expect(await overloaded.json()).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
    const timeout = await post(llm, '/v1/chat/completions', { model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });
    expect(timeout.status).toBe(504);
    expect(timeout.headers.get('retry-after')).toBe('2');
    expect(await timeout.json()).toMatchObject({ error: { type: 'server_error', code: 'gateway_timeout' } });
  });

  it('hangs without headers until the client aborts, then answers the next request', async () => {
    const llm = await fake({ script: [{ fault: 'hang' }, { fault: 'hang' }, { text: 'awake' }] });
    const controller = new AbortController();
    const hung = post(llm, '/v1/messages', MESSAGES_BODY).catch(() => undefined);
    const aborted = fetch(`${llm.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] }),
      signal: controller.signal,
    }).then(
      () => 'answered',
      (error: Error) => error.name,
    );
    await llm.waitFor((requests) => requests.length === 2, { what: 'two hung requests' });
    controller.abort();
    expect(await aborted).toBe('AbortError');

    const answered = await openai(llm, { timeout: 300 })
      .chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    // The first hung request is still open; this one got the third turn.
    expect(answered).toMatchObject({ choices: [{ message: { content: 'awake' } }] });
    await llm.close();
    expect(await hung).toBeUndefined();
  });

  it('makes a client with a timeout give up on a hang', async () => {
    const llm = await fake({ script: [{ fault: 'hang' }] });
    const error = await openai(llm, { timeout: 300 })
      .chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
  });

  it('cuts a stream after the given events, by a reset or a clean end', async () => {
    const llm = await fake({
      script: [
        { fault: 'cut', afterChunks: 3, text: 'This is a long answer that will never arrive in full.' },
        { fault: 'cut', afterChunks: 4, how: 'end', text: 'This is a long answer that will never arrive in full.' },
        { fault: 'cut', afterChunks: 0 },
      ],
    });
    const stream = await openai(llm).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const seen: string[] = [];
    const error = await (async () => {
      for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? '');
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(seen).toHaveLength(3);
    expect(seen.join('')).not.toBe('This is a long answer that will never arrive in full.');

    const ended = await post(llm, '/v1/messages', { ...MESSAGES_BODY, stream: true });
    const events = await readSse(ended);
    expect(events.map((e) => e.event)).toEqual(['message_start', 'ping', 'content_block_start', 'content_block_delta']);

    const nonStream = await post(llm, '/v1/chat/completions', { model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });
    expect(nonStream.status).toBe(200);
    await expect(nonStream.text()).rejects.toThrow();
  });

  it("fails a stream mid-way with each wire's own failure event", async () => {
    const llm = await fake({
      script: [
        { fault: 'cut', afterChunks: 2, how: 'error', message: 'Overloaded' },
        { fault: 'cut', afterChunks: 3, how: 'error', message: 'the model broke down' },
        { fault: 'cut', afterChunks: 2, how: 'error', message: 'chat broke down' },
      ],
    });
    const anthropicEvents = await readSse(await post(llm, '/v1/messages', { ...MESSAGES_BODY, stream: true }));
    expect(anthropicEvents.map((e) => e.event)).toEqual(['message_start', 'ping', 'error']);
    expect(JSON.parse(anthropicEvents[2]!.data)).toEqual({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });

    const responses = await openai(llm).responses.create({ model: 'gpt-5-test', input: 'hi', stream: true });
    const seen: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const event of responses) seen.push(event);
    expect(seen.map((e) => e.type)).toEqual(['response.created', 'response.in_progress', 'response.output_item.added', 'response.failed']);
    const failed = seen[3];
    if (failed?.type !== 'response.failed') throw new Error('no response.failed');
    expect(failed.sequence_number).toBe(3);
    expect(failed.response).toMatchObject({ status: 'failed', error: { code: 'server_error', message: 'the model broke down' } });

    const chat = await openai(llm).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const error = await (async () => {
      for await (const chunk of chat) expect(chunk.object).toBe('chat.completion.chunk');
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as Error).message).toContain('chat broke down');
  });

  it('stalls a stream after the given events, keeping the connection open until close', async () => {
    const llm = await fake({ script: [{ fault: 'cut', afterChunks: 2, how: 'stall', text: 'never more than the start of this' }] });
    const response = await post(llm, '/v1/messages', { ...MESSAGES_BODY, stream: true });
    expect(response.status).toBe(200);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let received = '';
    while (received.split('\n\n').length - 1 < 2) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the stream ended after ${JSON.stringify(received)}`);
      received += value;
    }
    await llm.close();
    const rest = await (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return 'ended';
        received += value;
      }
    })().catch(() => 'failed');
    expect(rest).toBe('failed');
    expect(received.split('\n\n').filter((frame) => frame !== '').map((frame) => frame.split('\n')[0])).toEqual(['event: message_start', 'event: ping']);
  });

  it('closes idempotently, ending open streams', async () => {
    const llm = await fake({ script: [{ text: 'slow words arriving one by one', usage: { inputTokens: 1, outputTokens: 1 } }], chunkDelayMs: 60_000, chunkChars: 4 });
    const response = await post(llm, '/v1/messages', { ...MESSAGES_BODY, stream: true });
    expect(response.status).toBe(200);
    const reading = response.text().then(
      () => 'ended',
      () => 'failed',
    );
    const closing = llm.close();
    expect(llm.close()).toBe(closing);
    await closing;
    expect(await reading).toBe('failed');
    await expect(fetch(`${llm.url}/v1/models`)).rejects.toThrow();
  });
});

describe('the fake LLM server as a process (dist/llm/main.js)', () => {
  it('serves a script file, prints its URL and each request, and stops on SIGTERM', async () => {
    await using dir = await makeTempDir('warren-fake-llm-');
    const scriptPath = join(dir.path, 'script.json');
    await writeFile(scriptPath, JSON.stringify({ script: [{ text: 'from the file' }], sideCall: { text: 'side' }, apiKey: 'k-file' }));
    const child = spawn(process.execPath, [MAIN, '--script', scriptPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done === true) throw new Error(`the server printed nothing; stderr: ${stderr}`);
    const { event, url } = JSON.parse(first.value) as { event: string; url: string };
    expect(event).toBe('listening');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'k-file', maxRetries: 0 });
    const completion = await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], tools: TOOLS });
    expect(completion.choices[0]!.message.content).toBe('from the file');
    const logged = await lines.next();
    expect(JSON.parse(logged.value as string)).toEqual({ event: 'request', n: 1, method: 'POST', path: '/v1/chat/completions', wire: 'openai-chat' });
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    expect(await exited).toEqual([0, null]);
    expect(stderr).toContain('stopped on SIGTERM');
  });

  it('exits 2 naming what is wrong with the script file', async () => {
    await using dir = await makeTempDir('warren-fake-llm-');
    const scriptPath = join(dir.path, 'script.json');
    await writeFile(scriptPath, JSON.stringify({ turns: [] }));
    const child = spawn(process.execPath, [MAIN, '--script', scriptPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(2);
    expect(stderr).toContain(`${scriptPath}: unknown key(s) turns`);
  });
});

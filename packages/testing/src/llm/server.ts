/**
 * The fake LLM server: an HTTP server on 127.0.0.1 that answers model requests in the real wire
 * protocols from a script, and records every request.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { anthropicError, anthropicMessages, countTokens } from './anthropic-messages.js';
import { openaiChat, openaiError } from './openai-chat.js';
import { openaiResponses } from './openai-responses.js';
import type {
  FakeCutFault,
  FakeLlm,
  FakeLlmRequest,
  FakeLlmWire,
  FakeReply,
  FakeStatusFault,
  FakeTurn,
  StartFakeLlmOptions,
} from './types.js';
import { estimateTokens, newId, nowS, sseFrame, type WireAnswer, type WireProtocol } from './wire.js';

/** Model endpoints by path (all `POST`). */
const PROTOCOLS: ReadonlyMap<string, WireProtocol> = new Map([
  ['/v1/chat/completions', openaiChat],
  ['/v1/responses', openaiResponses],
  ['/v1/messages', anthropicMessages],
]);

const COUNT_TOKENS_PATH = '/v1/messages/count_tokens';
const MODELS_PATH = '/v1/models';

/** A turn as the server sorts it. */
type Classified =
  | { kind: 'reply'; reply: FakeReply }
  | { kind: 'status'; fault: FakeStatusFault }
  | { kind: 'hang' }
  | { kind: 'cut'; fault: FakeCutFault }
  | { kind: 'invalid'; why: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Sorts a scripted turn, saying what is wrong with one that is not a {@link FakeTurn}. */
function classify(turn: unknown): Classified {
  if (!isRecord(turn)) return { kind: 'invalid', why: `a turn must be an object, got ${JSON.stringify(turn)}` };
  if ('status' in turn) {
    const status = turn.status;
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 599) {
      return { kind: 'invalid', why: `'status' must be an HTTP error status (429, 500, 503), got ${JSON.stringify(status)}` };
    }
    return { kind: 'status', fault: turn as unknown as FakeStatusFault };
  }
  if ('fault' in turn) {
    if (turn.fault === 'hang') return { kind: 'hang' };
    if (turn.fault === 'cut') {
      if (typeof turn.afterChunks !== 'number' || turn.afterChunks < 0) {
        return { kind: 'invalid', why: "a 'cut' fault needs 'afterChunks', a number of events ≥ 0" };
      }
      return { kind: 'cut', fault: turn as unknown as FakeCutFault };
    }
    return { kind: 'invalid', why: `'fault' must be 'hang' or 'cut', got ${JSON.stringify(turn.fault)}` };
  }
  if (turn.text !== undefined && typeof turn.text !== 'string') return { kind: 'invalid', why: "'text' must be a string" };
  if (turn.toolCalls !== undefined) {
    if (!Array.isArray(turn.toolCalls)) return { kind: 'invalid', why: "'toolCalls' must be an array" };
    for (const [i, call] of turn.toolCalls.entries()) {
      if (!isRecord(call) || typeof call.name !== 'string' || call.name === '') {
        return { kind: 'invalid', why: `toolCalls[${i}] needs a non-empty string 'name'` };
      }
    }
  }
  if (turn.usage !== undefined) {
    const usage = turn.usage;
    if (!isRecord(usage) || typeof usage.inputTokens !== 'number' || typeof usage.outputTokens !== 'number') {
      return { kind: 'invalid', why: "'usage' must be { inputTokens: number, outputTokens: number }" };
    }
  }
  return { kind: 'reply', reply: turn };
}

/** The text a request's body asks the model about, for the default token estimate. */
function promptOf(body: Record<string, unknown>): unknown {
  return [body.system ?? body.instructions ?? '', body.messages ?? body.input ?? ''];
}

function headerText(value: string | string[] | undefined): string {
  return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
}

/**
 * Starts a fake LLM provider on 127.0.0.1 and a free port, for tests that must not reach the
 * internet. It speaks, streamed as Server-Sent Events (`stream: true`) and not:
 * - OpenAI Chat Completions, `POST /v1/chat/completions` (https://platform.openai.com/docs/api-reference/chat),
 * - OpenAI Responses, `POST /v1/responses` (https://platform.openai.com/docs/api-reference/responses),
 * - Anthropic Messages, `POST /v1/messages` (https://docs.anthropic.com/en/api/messages),
 * plus `GET /v1/models` (a list both vendors' clients read) and `POST /v1/messages/count_tokens`
 * (an estimate; it uses no turn). Model requests are answered from `options.script`; each answer's
 * shape and event sequence follow the vendor's API reference (see each protocol's module).
 *
 * Errors come in the wire's own JSON error shape: 404 for an unknown path, 405 for a method other
 * than the endpoint's, 400 for a body that is not JSON or lacks a required field (no turn used),
 * 401 when `apiKey` is set and missing, 413 for a body over `maxBodyBytes`, 500 with
 * `x-should-retry: false` when the script ran out or a turn is malformed (the message says which).
 *
 * ```ts
 * await using llm = await startFakeLlm({ script: [{ toolCalls: [{ name: 'shell', arguments: { cmd: 'ls' } }] }, { text: 'done' }] });
 * const openai = new OpenAI({ baseURL: `${llm.url}/v1`, apiKey: 'k' });
 * const anthropic = new Anthropic({ baseURL: llm.url, apiKey: 'k' });
 * ```
 * @throws {TypeError} if `options.sideCall` is not a {@link FakeTurn}.
 * @throws {Error} if it cannot listen (`EADDRINUSE` for a `port` in use).
 */
export async function startFakeLlm(options: StartFakeLlmOptions = {}): Promise<FakeLlm> {
  const script = options.script ?? [];
  const models = options.models ?? ['fake-model'];
  const chunkChars = Math.max(1, options.chunkChars ?? 12);
  const chunkDelayMs = options.chunkDelayMs ?? 0;
  const maxBodyBytes = options.maxBodyBytes ?? 32 * 1024 * 1024;
  if (options.sideCall !== undefined) {
    const side = classify(options.sideCall);
    if (side.kind === 'invalid') throw new TypeError(`startFakeLlm: 'sideCall' is not a FakeTurn: ${side.why}`);
  }
  const requests: FakeLlmRequest[] = [];
  const waiters = new Set<() => void>();
  const sockets = new Set<Socket>();
  let modelRequests = 0;
  let position = 0;
  let usedOfTurn = 0;
  let closed = false;
  /** Aborted by close(), so that paced streams stop waiting. */
  const closeController = new AbortController();

  /** The next turn of an array script, or undefined when it ran out; a fault with `times` stays for that many requests. */
  const nextScriptedTurn = (turns: readonly FakeTurn[]): { turn: FakeTurn; index: number } | undefined => {
    const turn = turns[position];
    if (turn === undefined) return undefined;
    const index = position;
    const times = isRecord(turn) && ('status' in turn || 'fault' in turn) && typeof turn.times === 'number' ? turn.times : 1;
    usedOfTurn += 1;
    if (usedOfTurn >= times) {
      position += 1;
      usedOfTurn = 0;
    }
    return { turn, index };
  };

  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  };

  /** Writes SSE events one write each; with a cut, stops after `cut.afterChunks` events and resets, ends or stalls as `cut.how` says. */
  const stream = async (res: ServerResponse, answer: WireAnswer, cut?: FakeCutFault): Promise<void> => {
    const { events } = answer;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.flushHeaders();
    let sent = 0;
    for (const event of events) {
      if (cut !== undefined && sent >= cut.afterChunks) break;
      if (res.destroyed || closed) return;
      res.write(sseFrame(event));
      sent += 1;
      if (chunkDelayMs > 0) {
        const paused = await sleep(chunkDelayMs, true, { signal: closeController.signal }).catch(() => false);
        if (!paused) return;
      } else await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (res.destroyed) return;
    const how = cut === undefined ? 'end' : (cut.how ?? 'reset');
    if (how === 'reset') res.destroy();
    else if (how === 'end') res.end();
    else if (how === 'error') {
      for (const event of answer.failure(cut?.message ?? 'fake LLM: the scripted stream failed here', sent)) res.write(sseFrame(event));
      res.end();
    }
    // 'stall': the connection stays open with nothing more to come; close() ends it.
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Both vendors name each answer: OpenAI in `x-request-id`, Anthropic in `request-id`.
    const requestId = newId('req_');
    res.setHeader('x-request-id', requestId);
    res.setHeader('request-id', requestId);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    const protocol = PROTOCOLS.get(path);
    const anthropicShaped = path.startsWith('/v1/messages') || req.headers['anthropic-version'] !== undefined;
    const errorBody = protocol?.error ?? (anthropicShaped ? anthropicError : openaiError);

    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size <= maxBodyBytes) chunks.push(chunk);
    }
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown = null;
    let parseError: string | undefined;
    if (raw.trim() === '') parseError = 'the body is empty';
    else {
      try {
        body = JSON.parse(raw) as unknown;
      } catch (error) {
        parseError = (error as Error).message;
      }
    }
    const wire: FakeLlmWire = protocol?.wire ?? 'other';
    const request: FakeLlmRequest = {
      method: req.method ?? 'GET',
      path,
      search: url.search,
      headers: { ...req.headers },
      body: size > maxBodyBytes ? null : body,
      wire,
      requestId,
      receivedMs: Date.now(),
    };
    requests.push(request);
    for (const wake of [...waiters]) wake();
    try {
      options.onRequest?.(request);
    } catch {
      // A test's observer must not change the answer.
    }

    if (size > maxBodyBytes) return sendJson(res, 413, errorBody(413, `the request body is larger than ${maxBodyBytes} bytes`));

    if (path === MODELS_PATH) {
      if (req.method !== 'GET') return sendJson(res, 405, errorBody(405, `use GET for ${path}`));
      const created = nowS();
      const createdAt = new Date(created * 1000).toISOString();
      // One list both clients read: OpenAI's `{ object: 'list', data: [{ id, object, created, owned_by }] }`
      // (https://platform.openai.com/docs/api-reference/models/list) and Anthropic's
      // `{ data: [{ type, id, display_name, created_at }], has_more, first_id, last_id }`
      // (https://docs.anthropic.com/en/api/models-list).
      const data = models.map((id) => ({ id, object: 'model', created, owned_by: 'warren-fake', type: 'model', display_name: id, created_at: createdAt }));
      return sendJson(res, 200, { object: 'list', data, has_more: false, first_id: models[0] ?? null, last_id: models.at(-1) ?? null });
    }
    if (path === COUNT_TOKENS_PATH) {
      if (req.method !== 'POST') return sendJson(res, 405, errorBody(405, `use POST for ${path}`));
      if (!isRecord(body)) return sendJson(res, 400, errorBody(400, `the body is not a JSON object: ${parseError ?? 'got ' + JSON.stringify(body)}`));
      return sendJson(res, 200, countTokens(body));
    }
    if (protocol === undefined) {
      return sendJson(res, 404, errorBody(404, `no such path ${req.method ?? ''} ${path} on the fake LLM server; it serves POST /v1/chat/completions, POST /v1/responses, POST /v1/messages, POST ${COUNT_TOKENS_PATH} and GET ${MODELS_PATH}`));
    }
    if (req.method !== 'POST') return sendJson(res, 405, errorBody(405, `use POST for ${path}`));
    if (!isRecord(body)) {
      return sendJson(res, 400, errorBody(400, `the body is not a JSON object: ${parseError ?? 'got ' + JSON.stringify(body)}`));
    }
    if (options.apiKey !== undefined) {
      const bearer = headerText(req.headers.authorization);
      const key = headerText(req.headers['x-api-key']);
      if (bearer !== `Bearer ${options.apiKey}` && key !== options.apiKey) {
        return sendJson(res, 401, errorBody(401, 'invalid api key: send the fake server\'s key as "authorization: Bearer <key>" or "x-api-key: <key>"'));
      }
    }
    const invalid = protocol.validate(body);
    if (invalid !== undefined) return sendJson(res, 400, errorBody(400, invalid));

    let turn: unknown;
    let where: string;
    const offersTools = Array.isArray(body.tools) && body.tools.length > 0;
    if (options.sideCall !== undefined && !offersTools) {
      turn = options.sideCall;
      where = "the 'sideCall' turn";
    } else if (typeof script === 'function') {
      modelRequests += 1;
      where = `the script function (model request ${modelRequests})`;
      try {
        turn = await script(request);
      } catch (error) {
        return sendJson(res, 500, errorBody(500, `fake LLM: ${where} threw: ${(error as Error).message}`), { 'x-should-retry': 'false' });
      }
    } else {
      modelRequests += 1;
      const next = nextScriptedTurn(script);
      if (next === undefined) {
        const message =
          `fake LLM: the script ran out: it has ${script.length} turn(s) and this is scripted model request ${modelRequests} ` +
          `(${request.method} ${path}); script more turns`;
        return sendJson(res, 500, errorBody(500, message), { 'x-should-retry': 'false' });
      }
      turn = next.turn;
      where = `script turn #${next.index}`;
    }

    const classified = classify(turn);
    switch (classified.kind) {
      case 'invalid':
        return sendJson(res, 500, errorBody(500, `fake LLM: ${where} is not a FakeTurn: ${classified.why}`), { 'x-should-retry': 'false' });
      case 'status': {
        const { status, retryAfterS, message } = classified.fault;
        const headers: Record<string, string> = retryAfterS === undefined ? {} : { 'retry-after': String(retryAfterS) };
        return sendJson(res, status, errorBody(status, message ?? `fake LLM: scripted HTTP ${status}`), headers);
      }
      case 'hang':
        // Nothing is ever written: the client's timeout or abort, or close(), ends the connection.
        return;
      case 'reply':
      case 'cut': {
        const reply: FakeReply =
          classified.kind === 'reply'
            ? classified.reply
            : classified.fault.text === undefined && classified.fault.toolCalls === undefined
              ? { ...classified.fault, text: 'This answer is cut off before its end, as a broken connection would cut it.' }
              : classified.fault;
        const text = reply.text ?? '';
        const callsText = (reply.toolCalls ?? []).map((c) => c.name + JSON.stringify(c.arguments ?? {})).join('');
        const usage = reply.usage ?? { inputTokens: estimateTokens(promptOf(body)), outputTokens: estimateTokens(text + callsText) };
        const model = reply.model ?? (typeof body.model === 'string' ? body.model : 'fake-model');
        const answer = protocol.reply(reply, { body, model, usage, chunkChars });
        const cut = classified.kind === 'cut' ? classified.fault : undefined;
        if (body.stream === true) return stream(res, answer, cut);
        if (cut === undefined) return sendJson(res, 200, answer.json);
        const full = Buffer.from(JSON.stringify(answer.json));
        const half = full.subarray(0, Math.floor(full.length / 2));
        const how = cut.how ?? 'reset';
        if (how === 'end' || how === 'error') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(half);
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': full.length });
        res.write(half);
        if (how === 'reset') {
          await new Promise<void>((resolve) => setImmediate(resolve));
          res.destroy();
        }
        return;
      }
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, openaiError(500, `fake LLM: ${(error as Error).message}`));
      else res.destroy();
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(options.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;

  const fake: FakeLlm = {
    url: `http://127.0.0.1:${port}`,
    requests,
    get turnsLeft() {
      return typeof script === 'function' ? undefined : script.length - position;
    },
    waitFor(predicate, waitOptions = {}) {
      const timeoutMs = waitOptions.timeoutMs ?? 30_000;
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!predicate(requests)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(requests);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          const seen = requests.map((r) => `${r.method} ${r.path}${r.search} (${r.wire})`);
          reject(new Error(`fake LLM: ${waitOptions.what ?? 'condition'} not met within ${timeoutMs} ms; ${requests.length} request(s) seen: ${seen.join(', ').slice(0, 4000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        closed = true;
        closeController.abort();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
    [Symbol.asyncDispose]() {
      return fake.close();
    },
  };
  return fake;
}

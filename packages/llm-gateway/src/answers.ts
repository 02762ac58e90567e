/**
 * The HTTP plumbing of the gateway's answers: streaming a body to the agent with back-pressure,
 * reading the agent's body under a limit, the model mapping of a request body, error bodies in
 * each wire's shape, and the wording of provider failures.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { LlmProvider } from './providers.js';
import { wireErrorBody, type GatewayErrorType } from './wire.js';

/** A provider's error text longer than this is cut in the message the agent gets, in characters. */
const MAX_PROVIDER_MESSAGE_CHARS = 300;

/**
 * Copies `body` to `res` honouring back-pressure, calling `tap` on each chunk, then ends `res`.
 * @returns the error that cut the upstream body short, or undefined when it ended normally.
 */
export async function pipeToAgent(body: Readable, res: ServerResponse, signal: AbortSignal, tap: (chunk: Buffer) => void): Promise<unknown> {
  let cut: unknown;
  try {
    for await (const chunk of body) {
      const buffer = chunk as Buffer;
      tap(buffer);
      if (!res.write(buffer)) await drained(res);
      if (signal.aborted || res.destroyed) break;
    }
  } catch (error) {
    cut = error;
  } finally {
    if (!body.destroyed) body.destroy();
  }
  if (!res.destroyed && !res.writableEnded) res.end();
  return cut;
}

/** Resolves when `res` can take more data, or is closed; leaves no listener behind. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** The request body, or `'too_large'` past `limitBytes` (the rest is not read). */
export async function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer | 'too_large'> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) return 'too_large';
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      const buffer = chunk as Buffer;
      size += buffer.length;
      if (size > limitBytes) return 'too_large';
      chunks.push(buffer);
    }
  } catch {
    return Buffer.concat(chunks);
  }
  return Buffer.concat(chunks);
}

/**
 * The body sent upstream: with `model` mapped through `provider.models`, and for a streamed Chat
 * Completions request `stream_options.include_usage` set so the last chunk carries usage. A body
 * that is not a JSON object passes unchanged.
 * @returns the body and the upstream model it names, if any.
 */
export function prepareBody(provider: LlmProvider, body: Buffer, contentType: string | undefined): { body: Buffer; model: string | undefined } {
  if (contentType !== undefined && !contentType.toLowerCase().includes('json')) return { body, model: undefined };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return { body, model: undefined };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { body, model: undefined };
  const json = parsed as Record<string, unknown>;
  let changed = false;
  let model: string | undefined;
  if (typeof json.model === 'string') {
    model = provider.models?.[json.model] ?? json.model;
    if (model !== json.model) {
      json.model = model;
      changed = true;
    }
  }
  if (provider.wireApi === 'openai-chat' && json.stream === true) {
    const options = json.stream_options;
    const current = typeof options === 'object' && options !== null && !Array.isArray(options) ? (options as Record<string, unknown>) : {};
    if (current.include_usage !== true) {
      json.stream_options = { ...current, include_usage: true };
      changed = true;
    }
  }
  return { body: changed ? Buffer.from(JSON.stringify(json)) : body, model };
}

export function sendWireError(res: ServerResponse, wire: LlmProvider['wireApi'], status: number, type: GatewayErrorType, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = wireErrorBody(wire, type, message);
  res.writeHead(status, { 'content-type': 'application/json', 'x-should-retry': 'false', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** fastify's error shape, for routes that belong to no provider. */
export function sendPlainError(res: ServerResponse, status: number, error: string, message: string, code: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ statusCode: status, error, message, code });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** `3.4 s`: one decimal. */
export function formatSeconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

/** ` (<the provider's error message>)` from an error body in any of the wire shapes, or ''. */
export function providerMessage(text: string): string {
  let message: unknown;
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    message = typeof body.error === 'object' && body.error !== null ? body.error.message : (body.error ?? body.message);
  } catch {
    message = text.trim();
  }
  if (typeof message !== 'string' || message === '') return '';
  const cut = message.length > MAX_PROVIDER_MESSAGE_CHARS ? `${message.slice(0, MAX_PROVIDER_MESSAGE_CHARS)}…` : message;
  return ` (${cut})`;
}

/** "connection refused (ECONNREFUSED)" and the like, from a connection error. */
export function describeConnectError(error: unknown): string {
  const err = error as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = err.cause?.code ?? err.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection closed before an answer';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connect timed out';
    default:
      return `connection failed${code ? ` (${code})` : ''}`;
  }
}

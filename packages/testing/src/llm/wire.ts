/**
 * What the three wire protocols of the fake LLM server share: the shape of a protocol module,
 * Server-Sent Events framing, ids, and the splitting of text and arguments into stream deltas.
 */
import { randomBytes } from 'node:crypto';
import type { FakeLlmWire, FakeReply, FakeToolCall, FakeUsage } from './types.js';

/**
 * One Server-Sent Event: `event: <event>\ndata: <data>\n\n`, the `event:` line left out when
 * `event` is undefined (the WHATWG HTML "Server-sent events" format, which all three APIs use).
 */
export interface SseEvent {
  readonly event?: string;
  readonly data: string;
}

/** Encodes one {@link SseEvent} as the bytes on the wire. */
export function sseFrame(event: SseEvent): string {
  return `${event.event === undefined ? '' : `event: ${event.event}\n`}data: ${event.data}\n\n`;
}

/** What a protocol needs to build its answer to one request. */
export interface ReplyContext {
  /** The parsed request body (validated by the protocol's `validate`). */
  readonly body: Record<string, unknown>;
  readonly model: string;
  readonly usage: FakeUsage;
  /** Most characters per text delta. */
  readonly chunkChars: number;
}

/** A protocol's answer to one request, in both forms: the JSON body, and the SSE events of its stream. */
export interface WireAnswer {
  readonly json: unknown;
  readonly events: readonly SseEvent[];
  /**
   * The events by which the provider reports a failure in the middle of this stream (after `sent`
   * events), in the wire's own form: Anthropic's `error` event, the Responses API's
   * `response.failed`, a Chat Completions chunk holding `error`.
   */
  readonly failure: (message: string, sent: number) => SseEvent[];
}

/** One wire protocol: how it validates a request, shapes an error and answers a reply. */
export interface WireProtocol {
  readonly wire: FakeLlmWire;
  /** Returns why the body is not a valid request (naming the field), or undefined. */
  readonly validate: (body: Record<string, unknown>) => string | undefined;
  /** The wire's JSON error body for an HTTP error `status`. */
  readonly error: (status: number, message: string) => unknown;
  /** The answer to a reply turn. */
  readonly reply: (reply: FakeReply, context: ReplyContext) => WireAnswer;
}

/** A fresh id: `prefix` and 24 hex digits. */
export function newId(prefix: string): string {
  return `${prefix}${randomBytes(12).toString('hex')}`;
}

/** A tool call's arguments as JSON text (a string is taken as already JSON, see {@link FakeToolCall}). */
export function argumentsText(call: FakeToolCall): string {
  return typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments ?? {});
}

/** A tool call's arguments as a value: parsed when they are JSON text that parses, else as given. */
export function argumentsValue(call: FakeToolCall): unknown {
  if (typeof call.arguments !== 'string') return call.arguments ?? {};
  try {
    return JSON.parse(call.arguments) as unknown;
  } catch {
    return call.arguments;
  }
}

/**
 * Splits text into deltas of at most `maxChars` characters, cutting after a space where one falls
 * in the second half of a piece. Joined, the pieces give back the text. `''` gives no pieces.
 */
export function splitText(text: string, maxChars: number): string[] {
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > maxChars) {
    const space = rest.lastIndexOf(' ', maxChars - 1);
    const end = space >= Math.floor(maxChars / 2) ? space + 1 : maxChars;
    pieces.push(rest.slice(0, end));
    rest = rest.slice(end);
  }
  if (rest !== '') pieces.push(rest);
  return pieces;
}

/** Splits a tool call's arguments text into at least two pieces when it has two characters or more. */
export function splitArguments(text: string, maxChars: number): string[] {
  return splitText(text, Math.max(1, Math.min(maxChars, Math.ceil(text.length / 2))));
}

/** A rough token count of a value: about 4 characters of its JSON per token (at least 1). */
export function estimateTokens(value: unknown): number {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
  return Math.max(1, Math.ceil(text.length / 4));
}

/** Seconds since the Unix epoch, as the wires' `created` fields hold it. */
export function nowS(): number {
  return Math.floor(Date.now() / 1000);
}

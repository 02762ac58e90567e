/**
 * Anthropic Messages, `POST /v1/messages`, as the API reference describes it
 * (https://docs.anthropic.com/en/api/messages, streaming: https://docs.anthropic.com/en/docs/build-with-claude/streaming,
 * errors: https://docs.anthropic.com/en/api/errors).
 *
 * Streamed (`stream: true`), named events in this order: `message_start` (the message with empty
 * `content`, `stop_reason: null` and the input tokens), `ping`, then per content block
 * `content_block_start`, `content_block_delta` events (`text_delta` for text, `input_json_delta`
 * with `partial_json` pieces for a `tool_use` block), `content_block_stop`; then `message_delta`
 * (`stop_reason` `end_turn` or `tool_use`, cumulative `usage.output_tokens`) and `message_stop`.
 */
import type { FakeReply } from './types.js';
import type { ReplyContext, SseEvent, WireAnswer, WireProtocol } from './wire.js';
import { argumentsText, argumentsValue, estimateTokens, newId, splitArguments, splitText } from './wire.js';

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  502: 'api_error',
  503: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};

/** The Anthropic error body, `{ type: 'error', error: { type, message } }`. */
export function anthropicError(status: number, message: string): unknown {
  return { type: 'error', error: { type: ERROR_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error'), message } };
}

function event(type: string, payload: Record<string, unknown>): SseEvent {
  return { event: type, data: JSON.stringify({ type, ...payload }) };
}

function reply(turn: FakeReply, context: ReplyContext): WireAnswer {
  const id = newId('msg_');
  const calls = (turn.toolCalls ?? []).map((call) => ({
    id: call.id ?? newId('toolu_'),
    name: call.name,
    text: argumentsText(call),
    input: argumentsValue(call),
  }));
  const stopReason = calls.length > 0 ? 'tool_use' : 'end_turn';
  const { inputTokens, outputTokens } = context.usage;
  const usage = { input_tokens: inputTokens, output_tokens: outputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  const content: unknown[] = [];
  if (turn.text !== undefined) content.push({ type: 'text', text: turn.text });
  for (const call of calls) content.push({ type: 'tool_use', id: call.id, name: call.name, input: call.input });

  const json = { id, type: 'message', role: 'assistant', model: context.model, content, stop_reason: stopReason, stop_sequence: null, usage };

  const events: SseEvent[] = [
    event('message_start', {
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model: context.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...usage, output_tokens: Math.min(1, outputTokens) },
      },
    }),
    event('ping', {}),
  ];
  let index = 0;
  if (turn.text !== undefined) {
    events.push(event('content_block_start', { index, content_block: { type: 'text', text: '' } }));
    for (const piece of splitText(turn.text, context.chunkChars)) {
      events.push(event('content_block_delta', { index, delta: { type: 'text_delta', text: piece } }));
    }
    events.push(event('content_block_stop', { index }));
    index += 1;
  }
  for (const call of calls) {
    events.push(event('content_block_start', { index, content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} } }));
    for (const piece of splitArguments(call.text, context.chunkChars)) {
      events.push(event('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: piece } }));
    }
    events.push(event('content_block_stop', { index }));
    index += 1;
  }
  events.push(event('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: outputTokens } }));
  events.push(event('message_stop', {}));
  // https://docs.anthropic.com/en/docs/build-with-claude/streaming#error-events: an `error` event
  // (`overloaded_error` is the documented example), after which the stream ends.
  const failure = (message: string): SseEvent[] => [{ event: 'error', data: JSON.stringify(anthropicError(529, message)) }];
  return { json, events, failure };
}

/** The Messages protocol. */
export const anthropicMessages: WireProtocol = {
  wire: 'anthropic-messages',
  validate: (body) => {
    if (typeof body.model !== 'string' || body.model === '') return "model: Field required (a non-empty string)";
    if (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens) || body.max_tokens < 1) {
      return 'max_tokens: Field required (a positive integer)';
    }
    if (!Array.isArray(body.messages)) return 'messages: Field required (an array)';
    return undefined;
  },
  error: anthropicError,
  reply,
};

/**
 * The answer of `POST /v1/messages/count_tokens` (https://docs.anthropic.com/en/api/messages-count-tokens):
 * `{ input_tokens }`, estimated from the request's system prompt, messages and tools.
 */
export function countTokens(body: Record<string, unknown>): unknown {
  return { input_tokens: estimateTokens([body.system ?? '', body.messages ?? [], body.tools ?? []]) };
}

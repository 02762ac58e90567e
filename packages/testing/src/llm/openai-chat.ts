/**
 * OpenAI Chat Completions, `POST /v1/chat/completions`, as the API reference describes it
 * (https://platform.openai.com/docs/api-reference/chat/create and the streaming chunk object,
 * https://platform.openai.com/docs/api-reference/chat-streaming) and the `openai` 6.x client types
 * (`ChatCompletion`, `ChatCompletionChunk`) declare it.
 *
 * Streamed (`stream: true`): `data: <chunk>` events, the first with `delta.role`, then content
 * deltas, then per tool call a first delta with `index`, `id`, `type` and `function.name` followed
 * by `function.arguments` pieces, then a chunk with `finish_reason`; with
 * `stream_options.include_usage` every chunk has `usage: null` and one more chunk with empty
 * `choices` carries the usage; last `data: [DONE]`.
 */
import type { FakeReply } from './types.js';
import type { ReplyContext, SseEvent, WireAnswer, WireProtocol } from './wire.js';
import { argumentsText, newId, nowS, splitArguments, splitText } from './wire.js';

const ERROR_TYPES: Record<number, { type: string; code: string | null }> = {
  400: { type: 'invalid_request_error', code: null },
  401: { type: 'invalid_request_error', code: 'invalid_api_key' },
  404: { type: 'invalid_request_error', code: 'unknown_url' },
  405: { type: 'invalid_request_error', code: 'method_not_allowed' },
  413: { type: 'invalid_request_error', code: 'request_too_large' },
  429: { type: 'requests', code: 'rate_limit_exceeded' },
  500: { type: 'server_error', code: null },
  502: { type: 'server_error', code: 'bad_gateway' },
  503: { type: 'server_error', code: 'service_unavailable' },
  504: { type: 'server_error', code: 'gateway_timeout' },
};

/**
 * The OpenAI error body, `{ error: { message, type, param, code } }`
 * (https://platform.openai.com/docs/guides/error-codes), shared by Chat Completions and Responses.
 */
export function openaiError(status: number, message: string): unknown {
  const kind = ERROR_TYPES[status] ?? { type: status >= 500 ? 'server_error' : 'invalid_request_error', code: null };
  return { error: { message, type: kind.type, param: null, code: kind.code } };
}

function usageOf(context: ReplyContext): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const { inputTokens, outputTokens } = context.usage;
  return { prompt_tokens: inputTokens, completion_tokens: outputTokens, total_tokens: inputTokens + outputTokens };
}

function reply(turn: FakeReply, context: ReplyContext): WireAnswer {
  const id = newId('chatcmpl-');
  const created = nowS();
  const calls = (turn.toolCalls ?? []).map((call) => ({ id: call.id ?? newId('call_'), name: call.name, arguments: argumentsText(call) }));
  const finishReason = calls.length > 0 ? 'tool_calls' : 'stop';
  const text = turn.text ?? '';

  const json = {
    id,
    object: 'chat.completion',
    created,
    model: context.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: turn.text ?? null,
          refusal: null,
          ...(calls.length > 0
            ? { tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })) }
            : {}),
        },
        logprobs: null,
        finish_reason: finishReason,
      },
    ],
    usage: usageOf(context),
    system_fingerprint: 'fp_fake',
  };

  const streamOptions = context.body.stream_options;
  const includeUsage =
    typeof streamOptions === 'object' && streamOptions !== null && (streamOptions as { include_usage?: unknown }).include_usage === true;
  const chunk = (delta: Record<string, unknown>, finish: string | null = null): SseEvent => ({
    data: JSON.stringify({
      id,
      object: 'chat.completion.chunk',
      created,
      model: context.model,
      system_fingerprint: 'fp_fake',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
    }),
  });
  const events: SseEvent[] = [chunk({ role: 'assistant', content: '', refusal: null })];
  for (const piece of splitText(text, context.chunkChars)) events.push(chunk({ content: piece }));
  calls.forEach((call, index) => {
    events.push(chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }));
    for (const piece of splitArguments(call.arguments, context.chunkChars)) {
      events.push(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }));
    }
  });
  events.push(chunk({}, finishReason));
  if (includeUsage) {
    events.push({
      data: JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model: context.model,
        system_fingerprint: 'fp_fake',
        choices: [],
        usage: usageOf(context),
      }),
    });
  }
  events.push({ data: '[DONE]' });
  // A chunk that holds the error body instead of choices; the openai client raises it as an APIError.
  const failure = (message: string): SseEvent[] => [{ data: JSON.stringify(openaiError(500, message)) }];
  return { json, events, failure };
}

/** The Chat Completions protocol. */
export const openaiChat: WireProtocol = {
  wire: 'openai-chat',
  validate: (body) => {
    if (typeof body.model !== 'string' || body.model === '') return "'model' must be a non-empty string";
    if (!Array.isArray(body.messages) || body.messages.length === 0) return "'messages' must be a non-empty array";
    return undefined;
  },
  error: openaiError,
  reply,
};

/**
 * OpenAI Responses, `POST /v1/responses`, as the API reference describes it
 * (https://platform.openai.com/docs/api-reference/responses/create and the streaming events,
 * https://platform.openai.com/docs/api-reference/responses-streaming) and the `openai` 6.x client
 * types (`Response`, `ResponseStreamEvent`) declare it; codex consumes this stream.
 *
 * Streamed (`stream: true`), named events whose data carries `type` and a rising
 * `sequence_number`: `response.created`, `response.in_progress`; for text a `message` output item
 * (`response.output_item.added`, `response.content_part.added`, `response.output_text.delta` events,
 * `response.output_text.done`, `response.content_part.done`, `response.output_item.done`); per tool
 * call a `function_call` output item (`response.output_item.added`,
 * `response.function_call_arguments.delta` events, `response.function_call_arguments.done`,
 * `response.output_item.done`); last `response.completed` with the whole response and its `usage`.
 */
import type { FakeReply } from './types.js';
import { openaiError } from './openai-chat.js';
import type { ReplyContext, SseEvent, WireAnswer, WireProtocol } from './wire.js';
import { argumentsText, newId, nowS, splitArguments, splitText } from './wire.js';

function reply(turn: FakeReply, context: ReplyContext): WireAnswer {
  const { body } = context;
  const id = newId('resp_');
  const createdAt = nowS();
  const { inputTokens, outputTokens } = context.usage;
  const usage = {
    input_tokens: inputTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: outputTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: inputTokens + outputTokens,
  };
  const message =
    turn.text === undefined
      ? undefined
      : { id: newId('msg_'), type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: turn.text, annotations: [], logprobs: [] }] };
  const calls = (turn.toolCalls ?? []).map((call) => ({
    id: newId('fc_'),
    type: 'function_call',
    status: 'completed',
    call_id: call.id ?? newId('call_'),
    name: call.name,
    arguments: argumentsText(call),
  }));
  const output: unknown[] = [...(message === undefined ? [] : [message]), ...calls];

  const response = (status: 'in_progress' | 'completed', items: unknown[], withUsage: boolean): Record<string, unknown> => ({
    id,
    object: 'response',
    created_at: createdAt,
    status,
    background: false,
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: context.model,
    output: items,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: null, summary: null },
    store: body.store ?? true,
    temperature: body.temperature ?? 1,
    text: { format: { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_p: body.top_p ?? 1,
    truncation: 'disabled',
    usage: withUsage ? usage : null,
    user: null,
    metadata: body.metadata ?? {},
  });

  const events: SseEvent[] = [];
  const emit = (type: string, payload: Record<string, unknown>): void => {
    events.push({ event: type, data: JSON.stringify({ type, sequence_number: events.length, ...payload }) });
  };
  emit('response.created', { response: response('in_progress', [], false) });
  emit('response.in_progress', { response: response('in_progress', [], false) });
  let outputIndex = 0;
  if (message !== undefined) {
    const text = turn.text ?? '';
    const ids = { item_id: message.id, output_index: outputIndex, content_index: 0 };
    emit('response.output_item.added', { output_index: outputIndex, item: { ...message, status: 'in_progress', content: [] } });
    emit('response.content_part.added', { ...ids, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } });
    for (const piece of splitText(text, context.chunkChars)) emit('response.output_text.delta', { ...ids, delta: piece, logprobs: [] });
    emit('response.output_text.done', { ...ids, text, logprobs: [] });
    emit('response.content_part.done', { ...ids, part: message.content[0] });
    emit('response.output_item.done', { output_index: outputIndex, item: message });
    outputIndex += 1;
  }
  for (const call of calls) {
    const ids = { item_id: call.id, output_index: outputIndex };
    emit('response.output_item.added', { output_index: outputIndex, item: { ...call, status: 'in_progress', arguments: '' } });
    for (const piece of splitArguments(call.arguments, context.chunkChars)) emit('response.function_call_arguments.delta', { ...ids, delta: piece });
    emit('response.function_call_arguments.done', { ...ids, name: call.name, arguments: call.arguments });
    emit('response.output_item.done', { output_index: outputIndex, item: call });
    outputIndex += 1;
  }
  emit('response.completed', { response: response('completed', output, true) });
  // `response.failed`: the response with status `failed` and its `error` ({ code, message }).
  const failure = (message: string, sent: number): SseEvent[] => [
    {
      event: 'response.failed',
      data: JSON.stringify({
        type: 'response.failed',
        sequence_number: sent,
        response: { ...response('in_progress', [], false), status: 'failed', error: { code: 'server_error', message } },
      }),
    },
  ];
  return { json: response('completed', output, true), events, failure };
}

/** The Responses protocol. */
export const openaiResponses: WireProtocol = {
  wire: 'openai-responses',
  validate: (body) => {
    if (typeof body.model !== 'string' || body.model === '') return "'model' must be a non-empty string";
    if (body.input !== undefined && typeof body.input !== 'string' && !Array.isArray(body.input)) {
      return "'input' must be a string or an array of input items";
    }
    if (body.input === undefined && body.previous_response_id === undefined && body.conversation === undefined) {
      return "'input' is required (a string or an array of input items)";
    }
    return undefined;
  },
  error: openaiError,
  reply,
};

/**
 * The agent loop over OpenAI Chat Completions: ask the model with the conversation and the tools,
 * run the tool calls it makes, give it their results, and ask again, until it answers without
 * calling a tool or the turn limit is reached.
 *
 * Wire format: Chat Completions streamed as server-sent events (`stream: true`,
 * `stream_options.include_usage`: the last chunk carries `usage`), as in OpenAI's API reference
 * ("Create chat completion", "The chat completion chunk object"); tool calls arrive as deltas keyed
 * by `index`, the first one carrying `id` and `function.name`, the rest `function.arguments` pieces.
 */
import type OpenAI from 'openai';
import type { ChatCompletionAssistantMessageParam, ChatCompletionMessageParam, ChatCompletionMessageToolCall, ChatCompletionTool } from 'openai/resources/chat/completions';
import type { CompletionUsage } from 'openai/resources/completions';
import { randomUUID } from 'node:crypto';
import type { AgentEvent } from '@warren/agent-runner';
import { ModelCallError } from './errors.js';
import type { Tool } from './tools.js';

/** What {@link runLoop} needs. */
export interface LoopOptions {
  /** The client, its `baseURL` the provider's (through the gateway). */
  readonly client: OpenAI;
  readonly model: string;
  /** The most model responses this task may take (≥ 1). */
  readonly maxTurns: number;
  /** The system prompt, sent first on every request and never stored. */
  readonly systemPrompt: string;
  /** The conversation so far (earlier tasks); the loop appends to it in place. */
  readonly messages: ChatCompletionMessageParam[];
  /** This task's request to the model. */
  readonly prompt: string;
  readonly tools: readonly Tool[];
  /** Prints one event. */
  readonly emit: (event: AgentEvent) => void;
  /** Persists `messages`: called after the prompt is added and after every complete turn. */
  readonly save: (messages: readonly ChatCompletionMessageParam[]) => void;
  /** Aborted at the task's deadline or when the runner stops the program. */
  readonly signal: AbortSignal;
}

/** How the loop ended. */
export type LoopResult =
  /** The model answered: `text` is its last message. */
  | { readonly ok: true; readonly text: string; readonly turns: number }
  /** No answer: `reason` says why (turn limit, model call failed, stopped). */
  | { readonly ok: false; readonly reason: string; readonly text: string; readonly turns: number };

/** One model response, assembled from the stream. */
interface ModelResponse {
  readonly content: string;
  readonly toolCalls: ChatCompletionMessageToolCall[];
  readonly usage?: CompletionUsage & { cost?: unknown };
  readonly model?: string;
}

/** Why `signal` was aborted, as text. */
function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : String(reason);
}

/** Turns an error of the OpenAI client into a {@link ModelCallError} with the status and the provider's message. */
function modelCallError(error: unknown, signal: AbortSignal): ModelCallError {
  if (signal.aborted) return new ModelCallError(`the model call was stopped: ${abortReason(signal)}`, undefined, { cause: error });
  if (error instanceof ModelCallError) return error;
  const status = typeof (error as { status?: unknown }).status === 'number' ? (error as { status: number }).status : undefined;
  if (status !== undefined) {
    // An HTTP error: the client's message is "<status> <the body's error.message>"; the body's
    // `code` (or `type`) names the kind, e.g. the gateway's `budget_exceeded`.
    const { code, type } = error as { code?: unknown; type?: unknown };
    const kind = typeof code === 'string' && code !== '' ? code : typeof type === 'string' && type !== '' ? type : undefined;
    const text = (error instanceof Error ? error.message : String(error)).replace(new RegExp(`^${status} `), '');
    return new ModelCallError(`the model call failed with HTTP ${status}${kind ? ` (${kind})` : ''}: ${text}`, status, { cause: error });
  }
  // The client's connection errors say only "Connection error."; the reason is in the causes.
  const reasons: string[] = [];
  for (let e: unknown = error; e instanceof Error && reasons.length < 4; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    const own = e.message.replace(/\.$/, '');
    const text = typeof code === 'string' && !own.includes(code) ? `${own} (${code})` : own;
    if (!reasons.includes(text)) reasons.push(text);
  }
  return new ModelCallError(`the model call failed: ${reasons.length > 0 ? reasons.join(': ') : String(error)}`, undefined, { cause: error });
}

/** Asks the model once, streamed, and assembles its response. */
async function ask(options: LoopOptions, tools: ChatCompletionTool[]): Promise<ModelResponse> {
  const { client, signal } = options;
  const stream = await client.chat.completions.create(
    {
      model: options.model,
      messages: [{ role: 'system', content: options.systemPrompt }, ...options.messages],
      ...(tools.length > 0 ? { tools } : {}),
      stream: true,
      stream_options: { include_usage: true },
    },
    { signal },
  );
  let content = '';
  let model: string | undefined;
  let usage: ModelResponse['usage'];
  let finished = false;
  const calls: { id: string; name: string; arguments: string }[] = [];
  for await (const chunk of stream) {
    if (typeof chunk.model === 'string' && chunk.model !== '') model = chunk.model;
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices ?? []) {
      if (choice.index !== 0) continue;
      if (choice.finish_reason) finished = true;
      const delta = choice.delta;
      if (typeof delta?.content === 'string') content += delta.content;
      for (const call of delta?.tool_calls ?? []) {
        const slot = (calls[call.index] ??= { id: '', name: '', arguments: '' });
        if (call.id) slot.id = call.id;
        if (call.function?.name && slot.name === '') slot.name = call.function.name;
        if (call.function?.arguments) slot.arguments += call.function.arguments;
      }
    }
  }
  // A stream that ends without a finish reason was cut off: its tool calls may be incomplete.
  if (!finished) throw new ModelCallError('the model stream ended before the response was complete (no finish_reason)');
  const toolCalls = calls
    .filter((c) => c !== undefined)
    .map((c, i): ChatCompletionMessageToolCall => ({ id: c.id || `call_${i}_${randomUUID().slice(0, 8)}`, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  return { content, toolCalls, ...(usage ? { usage } : {}), ...(model ? { model } : {}) };
}

/** Parses a tool call's arguments: the JSON value, `{}` for an empty string, or an error message. */
function parseArguments(text: string): { ok: true; value: unknown } | { ok: false; message: string } {
  if (text.trim() === '') return { ok: true, value: {} };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, message: `the arguments are not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/**
 * Runs the loop for one task. Events: `text` for each assistant message with text, `tool_call`
 * and `tool_result` for each call, `usage` for each response that reports it. It never throws for a
 * model or tool failure: a tool error becomes the tool's result for the model; a failed model call
 * (after the gateway's retries), the deadline or an abort end the loop with `ok: false`. The turn
 * limit counts model responses; the tool calls of the last allowed response still run, so the
 * saved conversation never holds a tool call without its result.
 */
export async function runLoop(options: LoopOptions): Promise<LoopResult> {
  const { messages, emit, signal } = options;
  const byName = new Map(options.tools.map((t) => [t.name, t]));
  const tools: ChatCompletionTool[] = options.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: { ...t.parameters } } }));
  messages.push({ role: 'user', content: options.prompt });
  options.save(messages);
  let lastText = '';
  for (let turn = 1; turn <= options.maxTurns; turn++) {
    if (signal.aborted) return { ok: false, reason: `stopped: ${abortReason(signal)}`, text: lastText, turns: turn - 1 };
    let response: ModelResponse;
    try {
      response = await ask(options, tools);
    } catch (error) {
      return { ok: false, reason: modelCallError(error, signal).message, text: lastText, turns: turn - 1 };
    }
    if (response.usage) {
      const cost = response.usage.cost;
      emit({
        kind: 'usage',
        inputTokens: Math.max(0, Math.trunc(response.usage.prompt_tokens ?? 0)),
        outputTokens: Math.max(0, Math.trunc(response.usage.completion_tokens ?? 0)),
        ...(typeof cost === 'number' && Number.isFinite(cost) && cost >= 0 ? { costUsd: cost } : {}),
        ...(response.model ? { model: response.model } : {}),
      });
    }
    const assistant: ChatCompletionAssistantMessageParam = { role: 'assistant', content: response.content === '' && response.toolCalls.length > 0 ? null : response.content };
    if (response.toolCalls.length > 0) assistant.tool_calls = response.toolCalls;
    messages.push(assistant);
    if (response.content !== '') {
      lastText = response.content;
      emit({ kind: 'text', text: response.content });
    }
    if (response.toolCalls.length === 0) {
      options.save(messages);
      return { ok: true, text: response.content, turns: turn };
    }
    for (const call of response.toolCalls) {
      if (call.type !== 'function') continue;
      const parsed = parseArguments(call.function.arguments);
      emit({ kind: 'tool_call', id: call.id, name: call.function.name, input: parsed.ok ? parsed.value : call.function.arguments });
      let output: string;
      let isError: boolean;
      const tool = byName.get(call.function.name);
      if (signal.aborted) {
        output = `not run: ${abortReason(signal)}`;
        isError = true;
      } else if (!parsed.ok) {
        output = `${call.function.name}: ${parsed.message}`;
        isError = true;
      } else if (tool === undefined) {
        output = `there is no tool named '${call.function.name}'; the tools are ${[...byName.keys()].join(', ')}`;
        isError = true;
      } else {
        try {
          ({ output, isError } = await tool.run(parsed.value, signal));
        } catch (error) {
          output = error instanceof Error ? error.message : String(error);
          isError = true;
        }
      }
      emit({ kind: 'tool_result', id: call.id, output, isError });
      messages.push({ role: 'tool', tool_call_id: call.id, content: output });
    }
    options.save(messages);
  }
  return { ok: false, reason: `the turn limit of ${options.maxTurns} model responses was reached without an answer`, text: lastText, turns: options.maxTurns };
}

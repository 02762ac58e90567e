import { createParser, type EventSourceParser } from 'eventsource-parser';
import type { WireApi } from './providers.js';

/** Tokens (and the model that spent them) read from a provider's answer. */
export interface MeteredUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** The model the provider says answered, when it says. */
  readonly model: string | undefined;
  /** Whether the answer carried a usage object at all. */
  readonly found: boolean;
}

/** A non-streamed answer is parsed for usage up to this size, in bytes; a larger one is passed on unread. */
const MAX_JSON_BYTES = 16 * 1024 * 1024;

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const count = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0);

/**
 * Reads token usage from a provider's answer as its bytes pass through the gateway, without holding
 * the stream back: feed every chunk to {@link push}, then call {@link result}.
 *
 * Where the usage is, per wire (the vendors' API references):
 * - `openai-chat`: `usage.prompt_tokens` / `usage.completion_tokens` of the JSON body, or of the
 *   last SSE chunk when the request asked `stream_options.include_usage`;
 * - `openai-responses`: `usage.input_tokens` / `usage.output_tokens` of the response object, in the
 *   body or in the `response` of the `response.completed` (`.incomplete`, `.failed`) SSE event;
 * - `anthropic-messages`: `usage` of the message; streamed, `message_start` carries the input side
 *   and `message_delta` the cumulative output (and, lately, input) counts.
 * Anthropic counts cached prompt tokens apart (`cache_creation_input_tokens`,
 * `cache_read_input_tokens`); they are added to the input, so input means every prompt token on
 * all three wires. SSE is parsed with `eventsource-parser` (WHATWG HTML "server-sent events").
 */
export class UsageMeter {
  private inputTokens = 0;
  private outputTokens = 0;
  private model: string | undefined;
  private found = false;
  private readonly sse: EventSourceParser | undefined;
  private readonly decoder = new TextDecoder();
  private readonly jsonChunks: Buffer[] = [];
  private jsonBytes = 0;
  private readonly anthropic = {
    input_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens: 0,
  };

  /**
   * @param wire the provider's wire API.
   * @param contentType the answer's `content-type`: `text/event-stream` is read as SSE, anything
   *   with `json` as one JSON document, anything else is not read.
   */
  constructor(
    private readonly wire: WireApi,
    contentType: string | undefined,
  ) {
    const type = (contentType ?? '').toLowerCase();
    if (type.includes('text/event-stream')) {
      this.sse = createParser({ onEvent: (event) => this.onSseEvent(event.event, event.data) });
    } else if (!type.includes('json')) {
      this.jsonBytes = Infinity; // not read
    }
  }

  /** Feeds the next chunk of the answer's body. Never throws. */
  push(chunk: Buffer): void {
    if (this.sse) {
      this.sse.feed(this.decoder.decode(chunk, { stream: true }));
      return;
    }
    if (this.jsonBytes + chunk.length > MAX_JSON_BYTES) {
      this.jsonBytes = Infinity;
      this.jsonChunks.length = 0;
      return;
    }
    this.jsonBytes += chunk.length;
    this.jsonChunks.push(chunk);
  }

  /** The usage seen so far (all of it once the body has ended). */
  result(): MeteredUsage {
    if (!this.sse && Number.isFinite(this.jsonBytes) && this.jsonChunks.length > 0) {
      try {
        const body: unknown = JSON.parse(Buffer.concat(this.jsonChunks).toString('utf8'));
        this.jsonChunks.length = 0;
        this.jsonBytes = Infinity;
        if (isObject(body)) this.onObject(body);
      } catch {
        this.jsonChunks.length = 0;
        this.jsonBytes = Infinity;
      }
    }
    return { inputTokens: this.inputTokens, outputTokens: this.outputTokens, model: this.model, found: this.found };
  }

  private onSseEvent(_event: string | undefined, data: string): void {
    if (data === '[DONE]') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    if (!isObject(parsed)) return;
    switch (this.wire) {
      case 'openai-chat':
        this.onObject(parsed);
        return;
      case 'openai-responses':
        if (isObject(parsed.response)) this.onObject(parsed.response);
        return;
      case 'anthropic-messages':
        if (parsed.type === 'message_start' && isObject(parsed.message)) this.onObject(parsed.message);
        else if (parsed.type === 'message_delta' && isObject(parsed.usage)) this.onAnthropicUsage(parsed.usage, true);
        return;
      default: {
        const never: never = this.wire;
        return never;
      }
    }
  }

  /** A response object (a JSON body, a chat chunk, a Responses `response`, an Anthropic message). */
  private onObject(body: Json): void {
    if (typeof body.model === 'string' && body.model !== '') this.model = body.model;
    const usage = body.usage;
    if (!isObject(usage)) return;
    switch (this.wire) {
      case 'openai-chat':
        this.found = true;
        this.inputTokens = count(usage.prompt_tokens);
        this.outputTokens = count(usage.completion_tokens);
        return;
      case 'openai-responses':
        this.found = true;
        this.inputTokens = count(usage.input_tokens);
        this.outputTokens = count(usage.output_tokens);
        return;
      case 'anthropic-messages':
        this.onAnthropicUsage(usage, false);
        return;
      default: {
        const never: never = this.wire;
        return never;
      }
    }
  }

  /** Anthropic's usage: a `message_delta` gives cumulative counts, and only the ones it has. */
  private onAnthropicUsage(usage: Json, delta: boolean): void {
    this.found = true;
    for (const key of Object.keys(this.anthropic) as (keyof typeof this.anthropic)[]) {
      if (!delta || typeof usage[key] === 'number') this.anthropic[key] = count(usage[key]);
    }
    const a = this.anthropic;
    this.inputTokens = a.input_tokens + a.cache_creation_input_tokens + a.cache_read_input_tokens;
    this.outputTokens = a.output_tokens;
  }
}

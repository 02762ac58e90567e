/**
 * The script and request-log types of the fake LLM server ({@link startFakeLlm} in `./server.ts`).
 */

/** The wire protocols the fake server speaks; `other` is any path that is none of them. */
export const FakeLlmWire = {
  /** OpenAI Chat Completions, `POST /v1/chat/completions` (https://platform.openai.com/docs/api-reference/chat). */
  openaiChat: 'openai-chat',
  /** OpenAI Responses, `POST /v1/responses` (https://platform.openai.com/docs/api-reference/responses). */
  openaiResponses: 'openai-responses',
  /** Anthropic Messages, `POST /v1/messages` (https://docs.anthropic.com/en/api/messages). */
  anthropicMessages: 'anthropic-messages',
  /** Anything else: `GET /v1/models`, `POST /v1/messages/count_tokens`, unknown paths. */
  other: 'other',
} as const;
/** One of {@link FakeLlmWire}'s values. */
export type FakeLlmWire = (typeof FakeLlmWire)[keyof typeof FakeLlmWire];

/** One tool (function) call the model makes in a {@link FakeReply}. */
export interface FakeToolCall {
  /** The tool's name, as the request's `tools` named it. */
  readonly name: string;
  /**
   * The call's arguments: a string is sent verbatim as the arguments' JSON text (so a test can
   * send JSON that does not parse); anything else is sent as `JSON.stringify(arguments)`.
   */
  readonly arguments: unknown;
  /** The call id; default a fresh one in the wire's style (`call_…`, `toolu_…`). */
  readonly id?: string;
}

/** Token counts a turn reports in the wire's `usage` fields. */
export interface FakeUsage {
  /** Prompt tokens (`prompt_tokens`, `input_tokens`). */
  readonly inputTokens: number;
  /** Completion tokens (`completion_tokens`, `output_tokens`). */
  readonly outputTokens: number;
}

/**
 * A model answer: text and/or tool calls. A reply with tool calls ends with the wire's tool-use stop
 * (`finish_reason: "tool_calls"`, `stop_reason: "tool_use"`, `function_call` output items), one
 * without ends with `stop` / `end_turn`. Streamed, the text goes out in several deltas and each
 * call's arguments in several pieces, so clients must reassemble them.
 */
export interface FakeReply {
  readonly text?: string;
  readonly toolCalls?: readonly FakeToolCall[];
  /** Default: an estimate of about 4 characters per token of the request's messages and of the reply. */
  readonly usage?: FakeUsage;
  /** The model named in the answer; default the request's `model`. */
  readonly model?: string;
}

/**
 * An HTTP error answer in the wire's own JSON error shape, with `retry-after: <retryAfterS>` when
 * given. It answers `times` requests in a row (default 1) before the script moves on.
 */
export interface FakeStatusFault {
  /** An HTTP error status, 400 to 599: 429, 500, 502, 503, 504 and Anthropic's 529 (overloaded) are the usual ones. */
  readonly status: number;
  /** Seconds, sent as the `retry-after` header. */
  readonly retryAfterS?: number;
  readonly times?: number;
  /** The error message; default one naming the status. */
  readonly message?: string;
}

/** The request is read, and then nothing is ever sent: no status line, no headers, until the client gives up or the server closes. */
export interface FakeHangFault {
  readonly fault: 'hang';
  readonly times?: number;
}

/**
 * The answer starts (200 and headers) and stops mid-way. Streamed, the first `afterChunks` SSE events of the
 * reply (`text`/`toolCalls`, default a short text) are sent, then the stream stops without the
 * wire's terminating events; not streamed, half of the JSON body is sent. `how` says how it stops:
 * `'reset'` (default) destroys the connection (the client sees a network error mid-body), `'end'`
 * ends the body cleanly (the client sees a stream that just ends), `'stall'` sends nothing more and
 * keeps the connection open (until the client gives up or the server closes), `'error'` sends the
 * wire's mid-stream failure (Anthropic's `error` event with `overloaded_error`, the Responses API's
 * `response.failed`, a Chat Completions chunk holding `error`) with `message`, then ends the body.
 * Not streamed, `'error'` is taken as `'end'`.
 */
export interface FakeCutFault extends FakeReply {
  readonly fault: 'cut';
  readonly afterChunks: number;
  readonly how?: 'reset' | 'end' | 'stall' | 'error';
  /** The failure's message for `how: 'error'`; default one saying the stream was cut by the script. */
  readonly message?: string;
  readonly times?: number;
}

/** One scripted answer: a reply or a fault. */
export type FakeTurn = FakeReply | FakeStatusFault | FakeHangFault | FakeCutFault;

/** One request the fake server received, in arrival order in {@link FakeLlm.requests}. */
export interface FakeLlmRequest {
  readonly method: string;
  /** The URL's path, without the query (`/v1/messages`). */
  readonly path: string;
  /** The URL's query with its `?` (`?beta=true`), or `''`. */
  readonly search: string;
  /** The request headers, names lowercased (Node's `IncomingMessage.headers`). */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The body parsed as JSON; `null` when it is empty or not JSON. */
  readonly body: unknown;
  readonly wire: FakeLlmWire;
  /** The id sent back in the `x-request-id` and `request-id` headers (`req_…`). */
  readonly requestId: string;
  /** When it arrived, ms since the Unix epoch. */
  readonly receivedMs: number;
}

/** Where a script's answers come from: turns in order (one per model request), or a function of the request. */
export type FakeLlmScript = readonly FakeTurn[] | ((request: FakeLlmRequest) => FakeTurn | Promise<FakeTurn>);

/** Options of {@link startFakeLlm}. */
export interface StartFakeLlmOptions {
  /**
   * The answers. An array is consumed one turn per model request (chat completions, responses and
   * messages alike; a fault with `times` answers that many); past its end every model request gets
   * HTTP 500 saying the script ran out. A function is called once per model request.
   * Default `[]`.
   */
  readonly script?: FakeLlmScript;
  /**
   * The answer to every model request that offers no tools (no or an empty `tools`): the side calls
   * of coding-agent CLIs (opencode's title request, summaries), so that they use no turn of the
   * script. Default: such requests are answered from the script like any other.
   */
  readonly sideCall?: FakeTurn;
  /**
   * When set, model requests must carry this key (`authorization: Bearer <key>` or
   * `x-api-key: <key>`), or they get 401 in the wire's error shape (no turn is used).
   */
  readonly apiKey?: string;
  /** Called with each request as it arrives, after it is recorded; what it throws is ignored. */
  readonly onRequest?: (request: FakeLlmRequest) => void;
  /** The TCP port on 127.0.0.1. Default 0: a free one. */
  readonly port?: number;
  /** The ids `GET /v1/models` lists. Default `['fake-model']`. */
  readonly models?: readonly string[];
  /** Most characters per streamed text delta (split at word ends where it can). Default 12. */
  readonly chunkChars?: number;
  /** A pause between streamed events, in ms. Default 0 (each event is still its own write). */
  readonly chunkDelayMs?: number;
  /** The largest request body accepted, in bytes; larger ones get 413. Default 32 MiB. */
  readonly maxBodyBytes?: number;
}

/**
 * A fake LLM provider on `http://127.0.0.1:<port>`, speaking OpenAI Chat Completions, OpenAI
 * Responses and Anthropic Messages (streamed as SSE and not) from a script. See {@link startFakeLlm}.
 */
export interface FakeLlm {
  /** `http://127.0.0.1:<port>`: the Anthropic base URL; OpenAI clients take `<url>/v1`. */
  readonly url: string;
  /** Every request received so far, in arrival order (the live array). */
  readonly requests: FakeLlmRequest[];
  /**
   * Turns of an array script not used up yet (a fault with `times` counts until its last use), so
   * a test can check that the client asked as often as scripted; undefined for a function script.
   */
  readonly turnsLeft: number | undefined;
  /**
   * Resolves with the requests once `predicate(requests)` holds, checking now and after each request arrives.
   * @throws {Error} after `timeoutMs` (default 30000), naming `what` and listing the requests seen.
   */
  waitFor(
    predicate: (requests: readonly FakeLlmRequest[]) => boolean,
    options?: { timeoutMs?: number; what?: string },
  ): Promise<readonly FakeLlmRequest[]>;
  /** Stops listening and ends every open connection, hung and streaming ones too. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

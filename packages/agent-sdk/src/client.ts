/**
 * The client of the agent's bus socket: HTTP/1.1 over a Unix socket with `node:http`, JSON bodies,
 * the protocol the supervisor serves (`services/supervisor/src/messaging/bus-channel.ts`):
 *
 * | call | route |
 * |---|---|
 * | send | `POST /v1/messages {to, body, id?}` → `{id}` |
 * | receive | `GET /v1/inbox?max=&waitMs=` → `{messages}`; `POST /v1/inbox/ack {ids}` → `{acked}` |
 * | request | `POST /v1/requests {to, body, timeoutMs?}` → the reply |
 * | reply | `POST /v1/replies {to, inReplyTo, body}` → `{id}` |
 * | publish | `POST /v1/topics/<topic> {body}` → `{id}` |
 * | subscribe | `GET /v1/topics/<topic>`: server-sent events, `event: message`, `data:` a {@link TopicMessage} |
 * | presence | `GET /v1/presence` → `{agents}` |
 *
 * Errors come as `{ "error": { "code", "message" } }` and are thrown as {@link BusError}.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { BUS_SOCKET_ENV, BUS_SOCKET_PATH } from './paths.js';
import { TOPIC_NAME, type PresenceEntry, type ReceivedMessage, type ReplyMessage, type TopicMessage } from './types.js';

/**
 * A call the bus refused or could not carry out. `status` is the HTTP status (0 when the socket
 * could not be reached or the answer was unreadable); `code` the server's error code:
 * `WARREN_POLICY_DENIED` (403), `WARREN_AGENT_NOT_FOUND` (404), `WARREN_MESSAGE_INVALID` (400, 413),
 * `WARREN_MESSAGE_TIMEOUT` (504), `WARREN_BROKER` (502), or on the client's side
 * `WARREN_BUS_UNREACHABLE` (the socket), `WARREN_BUS_PROTOCOL` (an answer that is not the protocol's),
 * `WARREN_MESSAGE_INVALID` (an argument refused before sending).
 */
export class BusError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'BusError';
  }
}

/** Options of {@link connectBus}. */
export interface ConnectBusOptions {
  /** The bus socket. Default `$WARREN_BUS_SOCKET`, else `/run/warren/bus.sock`. */
  readonly socketPath?: string;
  /** How long a call other than a long poll or a request may take, in ms. Default 30 000. */
  readonly timeoutMs?: number;
}

/** Options of {@link AgentBus.receive}. */
export interface ReceiveOptions {
  /** At most this many messages, 1–100. Default 10. */
  readonly max?: number;
  /** How long to wait for the first message, in ms, 0–30 000. Default 0 (answer at once). */
  readonly waitMs?: number;
  /**
   * Acknowledge the messages once received (default true). With false, call {@link AgentBus.ack};
   * a message not acknowledged within 60 s is delivered again.
   */
  readonly ack?: boolean;
}

/** The messages of a topic, as they are published, until closed. */
export interface Subscription extends AsyncIterable<TopicMessage> {
  readonly topic: string;
  /** Why the server ended it (a permission revoked, the channel closed), once it has; else null. */
  readonly endReason: string | null;
  /** Ends the subscription; iteration ends. Idempotent. */
  close(): void;
}

/** The agent's end of the broker: every call is decided by the policy as this agent. */
export interface AgentBus {
  /** The socket this bus talks to. */
  readonly socketPath: string;
  /**
   * Sends `body` (any JSON value, at most 256 KiB encoded) to agent `to`'s inbox. `id` de-duplicates
   * a re-send. @returns the message's id. @throws {BusError}
   */
  send(to: string, body: unknown, options?: { readonly id?: string }): Promise<{ readonly id: string }>;
  /** Takes messages from the inbox (see {@link ReceiveOptions}). @throws {BusError} */
  receive(options?: ReceiveOptions): Promise<ReceivedMessage[]>;
  /** Acknowledges received messages by id. @returns how many were acknowledged. @throws {BusError} */
  ack(ids: readonly string[]): Promise<number>;
  /**
   * Sends a request and waits up to `timeoutMs` (100–300 000, default 30 000) for the reply.
   * @throws {BusError} `WARREN_MESSAGE_TIMEOUT` (504) when no reply came in time.
   */
  request(to: string, body: unknown, options?: { readonly timeoutMs?: number }): Promise<ReplyMessage>;
  /** Answers a request taken from the inbox (`message.request` true). @throws {BusError} */
  reply(message: Pick<ReceivedMessage, 'id' | 'from'>, body: unknown): Promise<{ readonly id: string }>;
  /** Publishes `body` on `topic` (subscribers now get it, nobody else). @throws {BusError} */
  publish(topic: string, body: unknown): Promise<{ readonly id: string }>;
  /**
   * Subscribes to `topic`; resolves once the subscription is in place (later publications reach it).
   * @throws {BusError} when refused.
   */
  subscribe(topic: string): Promise<Subscription>;
  /** The agents this agent may message, with their state. @throws {BusError} */
  presence(): Promise<PresenceEntry[]>;
}

/** How much longer than the server's own wait the client waits for an answer, in ms. */
const ANSWER_MARGIN_MS = 10_000;

/** The most bytes of an answer read (the largest is a page of 100 messages of 256 KiB each). */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The error an answer with a non-2xx status stands for. */
function answerError(status: number, text: string): BusError {
  try {
    const parsed: unknown = JSON.parse(text);
    if (isRecord(parsed) && isRecord(parsed.error) && typeof parsed.error.code === 'string' && typeof parsed.error.message === 'string') {
      return new BusError(parsed.error.code, status, parsed.error.message);
    }
  } catch {
    // not JSON: said below
  }
  return new BusError('WARREN_BUS_PROTOCOL', status, `the bus answered ${status}: ${text.slice(0, 200)}`);
}

function checkTopic(topic: string): void {
  if (!TOPIC_NAME.test(topic)) throw new BusError('WARREN_MESSAGE_INVALID', 0, `topic ${JSON.stringify(topic)} must match ${TOPIC_NAME.source}`);
}

function checkName(what: string, value: unknown): void {
  if (typeof value !== 'string' || value === '') throw new BusError('WARREN_MESSAGE_INVALID', 0, `${what} must be a non-empty string`);
}

/**
 * Opens the agent's bus. Does no I/O: each call is one HTTP request on the socket.
 *
 * ```ts
 * const bus = connectBus();
 * await bus.send('reviewer-1', { pr: 12 });
 * for (const m of await bus.receive({ waitMs: 5000 })) if (m.request) await bus.reply(m, 'ok');
 * ```
 */
export function connectBus(options: ConnectBusOptions = {}): AgentBus {
  const socketPath = options.socketPath ?? process.env[BUS_SOCKET_ENV] ?? BUS_SOCKET_PATH;
  const defaultTimeoutMs = options.timeoutMs ?? 30_000;

  /** Sends one request; resolves with the response once its headers came (body unread). */
  const open = (method: string, path: string, body: unknown, timeoutMs: number): Promise<IncomingMessage> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = httpRequest(
        {
          socketPath,
          method,
          path,
          // A new connection per call, closed after it: nothing keeps the program alive.
          agent: false,
          headers: {
            host: 'bus',
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
          timeout: timeoutMs,
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(new BusError('WARREN_BUS_UNREACHABLE', 0, `${method} ${path}: no answer from the bus at ${socketPath} within ${timeoutMs} ms`)));
      req.on('error', (error) => {
        if (error instanceof BusError) reject(error);
        else reject(new BusError('WARREN_BUS_UNREACHABLE', 0, `${method} ${path}: cannot reach the bus at ${socketPath}: ${error.message}`, { cause: error }));
      });
      req.end(payload);
    });

  /** One call: the parsed JSON answer of a 2xx response. @throws {BusError} */
  const call = async (method: string, path: string, body?: unknown, timeoutMs = defaultTimeoutMs): Promise<Record<string, unknown>> => {
    const res = await open(method, path, body, timeoutMs);
    const chunks: Buffer[] = [];
    let size = 0;
    const text = await new Promise<string>((resolve, reject) => {
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) res.destroy(new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', (error) => reject(new BusError('WARREN_BUS_PROTOCOL', res.statusCode ?? 0, `${method} ${path}: the answer broke off: ${error.message}`, { cause: error })));
    });
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) throw answerError(status, text);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new BusError('WARREN_BUS_PROTOCOL', status, `${method} ${path}: the answer is not JSON: ${text.slice(0, 200)}`);
    }
    if (!isRecord(parsed)) throw new BusError('WARREN_BUS_PROTOCOL', status, `${method} ${path}: the answer is not a JSON object`);
    return parsed;
  };

  const idOf = (answer: Record<string, unknown>, path: string): { id: string } => {
    if (typeof answer.id !== 'string') throw new BusError('WARREN_BUS_PROTOCOL', 200, `${path}: the answer has no id`);
    return { id: answer.id };
  };

  const bus: AgentBus = {
    socketPath,
    async send(to, body, sendOptions = {}) {
      checkName('to', to);
      return idOf(await call('POST', '/v1/messages', { to, body, ...(sendOptions.id !== undefined ? { id: sendOptions.id } : {}) }), '/v1/messages');
    },
    async receive(receiveOptions = {}) {
      const query = new URLSearchParams();
      if (receiveOptions.max !== undefined) query.set('max', String(receiveOptions.max));
      if (receiveOptions.waitMs !== undefined) query.set('waitMs', String(receiveOptions.waitMs));
      const qs = query.size > 0 ? `?${query.toString()}` : '';
      const answer = await call('GET', `/v1/inbox${qs}`, undefined, Math.max(0, receiveOptions.waitMs ?? 0) + ANSWER_MARGIN_MS);
      if (!Array.isArray(answer.messages)) throw new BusError('WARREN_BUS_PROTOCOL', 200, '/v1/inbox: the answer has no messages');
      const messages = answer.messages as ReceivedMessage[];
      if ((receiveOptions.ack ?? true) && messages.length > 0) await bus.ack(messages.map((m) => m.id));
      return messages;
    },
    async ack(ids) {
      if (ids.length === 0) return 0;
      const answer = await call('POST', '/v1/inbox/ack', { ids });
      return typeof answer.acked === 'number' ? answer.acked : 0;
    },
    async request(to, body, requestOptions = {}) {
      checkName('to', to);
      const timeoutMs = requestOptions.timeoutMs;
      const answer = await call('POST', '/v1/requests', { to, body, ...(timeoutMs !== undefined ? { timeoutMs } : {}) }, (timeoutMs ?? 30_000) + ANSWER_MARGIN_MS);
      return answer as unknown as ReplyMessage;
    },
    async reply(message, body) {
      checkName('the message\'s from', message.from);
      checkName('the message\'s id', message.id);
      return idOf(await call('POST', '/v1/replies', { to: message.from, inReplyTo: message.id, body }), '/v1/replies');
    },
    async publish(topic, body) {
      checkTopic(topic);
      return idOf(await call('POST', `/v1/topics/${topic}`, { body }), `/v1/topics/${topic}`);
    },
    async subscribe(topic) {
      checkTopic(topic);
      const path = `/v1/topics/${topic}`;
      // No timeout: a subscription stays open as long as wanted.
      const res = await open('GET', path, undefined, 0);
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        const chunks: Buffer[] = [];
        for await (const chunk of res) chunks.push(chunk as Buffer);
        throw answerError(status, Buffer.concat(chunks).toString('utf8'));
      }
      return sseSubscription(topic, res);
    },
    async presence() {
      const answer = await call('GET', '/v1/presence');
      if (!Array.isArray(answer.agents)) throw new BusError('WARREN_BUS_PROTOCOL', 200, '/v1/presence: the answer has no agents');
      return answer.agents as PresenceEntry[];
    },
  };
  return bus;
}

/**
 * Reads a server-sent event stream (the WHATWG HTML standard's `text/event-stream`: lines
 * `event:` and `data:`, events ended by a blank line) into topic messages. `event: end` carries
 * `{ reason }` and ends the subscription.
 */
function sseSubscription(topic: string, res: IncomingMessage): Subscription {
  const queue: TopicMessage[] = [];
  let waiting: ((value: void) => void) | undefined;
  let ended = false;
  let endReason: string | null = null;
  let buffer = '';
  let event = 'message';
  let data: string[] = [];
  const wake = (): void => {
    const w = waiting;
    waiting = undefined;
    w?.();
  };
  const finish = (reason: string | null): void => {
    if (ended) return;
    ended = true;
    endReason ??= reason;
    res.destroy();
    wake();
  };
  const dispatch = (): void => {
    const text = data.join('\n');
    const name = event;
    event = 'message';
    data = [];
    if (text === '' && name === 'message') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    if (name === 'message') {
      queue.push(parsed as TopicMessage);
      wake();
    } else if (name === 'end') {
      endReason = isRecord(parsed) && typeof parsed.reason === 'string' ? parsed.reason : 'ended by the bus';
      finish(endReason);
    }
  };
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, '');
      buffer = buffer.slice(newline + 1);
      if (line === '') dispatch();
      else if (line.startsWith(':')) continue;
      else {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
    }
  });
  res.on('end', () => finish('the bus closed the subscription'));
  res.on('close', () => finish('the bus closed the subscription'));
  res.on('error', () => finish('the subscription broke off'));

  return {
    topic,
    get endReason() {
      return endReason;
    },
    close() {
      finish(null);
    },
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          const next = queue.shift();
          if (next !== undefined) {
            yield next;
            continue;
          }
          if (ended) return;
          await new Promise<void>((resolve) => (waiting = resolve));
        }
      } finally {
        finish(null);
      }
    },
  };
}

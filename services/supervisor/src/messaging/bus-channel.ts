/**
 * The agent's bus socket: `/run/warren/bus.sock` in every sandbox, served per agent on the host as
 * the runtime's channel service `bus.sock` (mode 0660, owned by the agent's uid and gid, like the
 * LLM gateway's `llm.sock`). HTTP/1.1 with JSON bodies (Fastify on the Unix socket); each call goes
 * to the {@link MessagingPort} as the agent the socket was made for, never as a name in the request.
 * The client is `@warren/agent-sdk`.
 *
 * | route | body / query | answer |
 * |---|---|---|
 * | `POST /v1/messages` | `{to, body, id?}` | 200 `{id}` |
 * | `GET /v1/inbox` | `?max=1..100&waitMs=0..30000` | 200 `{messages}` |
 * | `POST /v1/inbox/ack` | `{ids}` | 200 `{acked}` |
 * | `POST /v1/requests` | `{to, body, timeoutMs?}` (100..300000) | 200 the reply |
 * | `POST /v1/replies` | `{to, inReplyTo, body}` | 200 `{id}` |
 * | `POST /v1/topics/<topic>` | `{body}` | 200 `{id}` |
 * | `GET /v1/topics/<topic>` | | 200 `text/event-stream`: `event: message` with a `TopicMessageView`; `event: end` with `{reason}` when the port ends it |
 * | `GET /v1/presence` | | 200 `{agents}` |
 *
 * Errors: `{ "error": { "code", "message" } }` with 400 (`WARREN_MESSAGE_INVALID`: bad JSON, a field
 * named), 413 (`WARREN_MESSAGE_INVALID`: the body is over {@link BUS_BODY_LIMIT_BYTES}), 403
 * (`WARREN_POLICY_DENIED`), 404 (`WARREN_AGENT_NOT_FOUND`, or `WARREN_BUS_ROUTE` for an unknown
 * route), 504 (`WARREN_MESSAGE_TIMEOUT`), 502 (`WARREN_BROKER`), 503 (`WARREN_BUS_CLOSED` while
 * closing), 500 (`WARREN_INTERNAL`, the cause logged, not sent).
 */
import { chmod, chown, lstat, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { lazyChildLogger, silentLogger, WarrenError, type Logger } from '@warren/core';
import type { AgentStartSpec, ChannelService } from '@warren/runtime';
import type { MessagingPort, TopicMessageView } from './port.js';

/** The socket's file name in the agent's channel directory (`/run/warren/bus.sock` in the sandbox). */
export const BUS_SOCKET_NAME = 'bus.sock';

/** The most bytes of a message body, encoded (256 KiB), as the port takes it. */
export const MESSAGE_BODY_MAX_BYTES = 256 * 1024;

/** The most bytes of a request body: a message body and its envelope (`to`, `id`, …; 8 KiB). */
export const BUS_BODY_LIMIT_BYTES = MESSAGE_BODY_MAX_BYTES + 8 * 1024;

/** The HTTP status of each error code the port throws. */
const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  WARREN_POLICY_DENIED: 403,
  WARREN_AGENT_NOT_FOUND: 404,
  WARREN_MESSAGE_INVALID: 400,
  WARREN_MESSAGE_TIMEOUT: 504,
  WARREN_BROKER: 502,
};

/** A topic name: one NATS subject token. */
const TOPIC = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const agentName = z.string().min(1).max(200);
const sendBody = z.object({ to: agentName, body: z.unknown(), id: z.string().min(1).max(200).optional() }).strict();
const ackBody = z.object({ ids: z.array(z.string().min(1).max(200)).max(1000) }).strict();
const requestBody = z.object({ to: agentName, body: z.unknown(), timeoutMs: z.number().int().min(100).max(300_000).optional() }).strict();
const replyBody = z.object({ to: agentName, inReplyTo: z.string().min(1).max(200), body: z.unknown() }).strict();
const publishBody = z.object({ body: z.unknown() }).strict();
const inboxQuery = z
  .object({
    max: z.coerce.number().int().min(1).max(100).optional(),
    waitMs: z.coerce.number().int().min(0).max(30_000).optional(),
  })
  .strict();
const topicParams = z.object({ topic: z.string().regex(TOPIC, `must match ${TOPIC.source}`) });

/** A body that does not fit its schema: 400 naming the fields. */
class InvalidInput extends WarrenError {
  constructor(where: string, error: z.ZodError) {
    super('WARREN_MESSAGE_INVALID', error.issues.map((i) => `${where}${i.path.length > 0 ? `.${i.path.join('.')}` : ''}: ${i.message}`).join('; '));
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const result = schema.safeParse(value ?? {});
  if (!result.success) throw new InvalidInput(where, result.error);
  return result.data;
}

/** `body` must be present (JSON `null` is a body; a missing field is not). */
function requireBody(value: { body?: unknown }, where: string): void {
  if (!('body' in value) || value.body === undefined) throw new WarrenError('WARREN_MESSAGE_INVALID', `${where}.body: is required (any JSON value)`);
}

function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).type('application/json').send({ error: { code, message } });
}

/** What {@link serveBusSocket} needs. */
export interface ServeBusOptions {
  /** The messaging port every call goes to. */
  readonly port: MessagingPort;
  /** The agent the socket is for: `self` of every call. */
  readonly agent: string;
  /** Where to listen; a stale socket file there is replaced, anything else is refused. */
  readonly socketPath: string;
  /** Who owns the socket (the agent's uid and gid); default the supervisor's user. */
  readonly owner?: { readonly uid: number; readonly gid: number };
  readonly logger?: Logger;
  /**
   * The routes to serve with ({@link createBusApp}), shared by every socket of a {@link BusChannel};
   * default one made for this socket alone (closed with it).
   */
  readonly app?: FastifyInstance;
}

/** A served bus socket. */
export interface ServedBus {
  readonly socketPath: string;
  /** Stops listening, ends the topic streams (and their port subscriptions) and the requests in flight, removes the file. Idempotent. */
  close(): Promise<void>;
}

/** One socket as its requests see it: whom it serves, its port, its open topic streams. */
interface BusSocket {
  readonly agent: string;
  readonly port: MessagingPort;
  readonly log: Logger;
  readonly streams: Set<{ end(reason: string): void }>;
  closing: boolean;
}

/** Where a socket's server puts its {@link BusSocket} on each request before routing it. */
const SOCKET = Symbol('warren.bus.socket');

type TaggedRequest = IncomingMessage & { [SOCKET]?: BusSocket };

/** The socket a request came in on. @throws {Error} for a request not routed by a bus socket's server. */
function socketOf(request: FastifyRequest): BusSocket {
  const socket = (request.raw as TaggedRequest)[SOCKET];
  if (!socket) throw new Error('a bus request that came in on no bus socket');
  return socket;
}

/**
 * The bus's routes as one Fastify instance (not listening): each socket's own HTTP server hands
 * it its requests (`routing`), tagged with the socket's agent, so a thousand agents share one set
 * of routes (an instance costs about 170 KiB of heap). Close it after the sockets that use it.
 */
export function createBusApp(): FastifyInstance {
  const app: FastifyInstance = Fastify({ logger: false, bodyLimit: BUS_BODY_LIMIT_BYTES });

  app.setNotFoundHandler((request, reply) => sendError(reply, 404, 'WARREN_BUS_ROUTE', `no route ${request.method} ${request.url.split('?')[0]}`));
  app.setErrorHandler((error: FastifyError | WarrenError, request, reply) => {
    if (error instanceof WarrenError) {
      const status = STATUS_OF_CODE[error.code];
      if (status !== undefined) return sendError(reply, status, error.code, error.message);
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendError(reply, 413, 'WARREN_MESSAGE_INVALID', `the request body is larger than ${BUS_BODY_LIMIT_BYTES} bytes (a message body may have ${MESSAGE_BODY_MAX_BYTES})`);
    }
    const status = typeof fastifyError.statusCode === 'number' ? fastifyError.statusCode : 500;
    if (status >= 400 && status < 500) return sendError(reply, status, 'WARREN_MESSAGE_INVALID', fastifyError.message);
    const socket = (request.raw as TaggedRequest)[SOCKET];
    (socket?.log ?? silentLogger).error({ err: error, url: request.url }, 'bus request failed');
    return sendError(reply, 500, 'WARREN_INTERNAL', 'the bus failed on this request');
  });
  app.addHook('onRequest', async (request, reply) => {
    if (socketOf(request).closing) return sendError(reply, 503, 'WARREN_BUS_CLOSED', 'the bus is closing');
    return undefined;
  });

  app.post('/v1/messages', async (request) => {
    const { port, agent } = socketOf(request);
    const input = parse(sendBody, request.body, 'body');
    requireBody(input, 'body');
    return port.send(agent, { to: input.to, body: input.body, ...(input.id !== undefined ? { id: input.id } : {}) });
  });
  app.get('/v1/inbox', async (request) => {
    const { port, agent } = socketOf(request);
    const query = parse(inboxQuery, request.query, 'query');
    const messages = await port.receive(agent, { ...(query.max !== undefined ? { max: query.max } : {}), ...(query.waitMs !== undefined ? { waitMs: query.waitMs } : {}) });
    return { messages };
  });
  app.post('/v1/inbox/ack', async (request) => {
    const { port, agent } = socketOf(request);
    const { ids } = parse(ackBody, request.body, 'body');
    return { acked: await port.ack(agent, ids) };
  });
  app.post('/v1/requests', async (request) => {
    const { port, agent } = socketOf(request);
    const input = parse(requestBody, request.body, 'body');
    requireBody(input, 'body');
    return port.request(agent, { to: input.to, body: input.body, ...(input.timeoutMs !== undefined ? { timeoutMs: input.timeoutMs } : {}) });
  });
  app.post('/v1/replies', async (request) => {
    const { port, agent } = socketOf(request);
    const input = parse(replyBody, request.body, 'body');
    requireBody(input, 'body');
    return port.reply(agent, { to: input.to, inReplyTo: input.inReplyTo, body: input.body });
  });
  app.post('/v1/topics/:topic', async (request) => {
    const { port, agent } = socketOf(request);
    const { topic } = parse(topicParams, request.params, 'topic');
    const input = parse(publishBody, request.body, 'body');
    requireBody(input, 'body');
    return port.publish(agent, { topic, body: input.body });
  });
  app.get('/v1/topics/:topic', async (request, reply) => {
    const socket = socketOf(request);
    const { streams } = socket;
    const { topic } = parse(topicParams, request.params, 'topic');
    const res: ServerResponse = reply.raw;
    let live = false;
    let ended = false;
    let endedEarly: string | undefined;
    const early: TopicMessageView[] = [];
    const write = (event: string, data: unknown): void => {
      if (!ended) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    // Subscribed before the answer starts: what is published after the client saw 200 reaches it.
    const subscription = await socket.port.subscribe(
      socket.agent,
      topic,
      (message) => (live ? write('message', message) : early.push(message)),
      (reason) => (live ? stream.end(reason) : (endedEarly ??= reason)),
    );
    const stream = {
      end(reason: string): void {
        if (ended) return;
        write('end', { reason });
        ended = true;
        streams.delete(stream);
        subscription.close();
        res.end();
      },
    };
    if (endedEarly !== undefined || socket.closing) {
      subscription.close();
      throw new WarrenError('WARREN_BROKER', `topic ${topic}: the subscription ended at once: ${endedEarly ?? 'the bus is closing'}`);
    }
    streams.add(stream);
    void reply.hijack();
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(': subscribed\n\n');
    live = true;
    for (const message of early.splice(0)) write('message', message);
    // The client went: the port's subscription ends with it.
    res.on('close', () => {
      ended = true;
      streams.delete(stream);
      subscription.close();
    });
    return reply;
  });
  app.get('/v1/presence', async (request) => {
    const { port, agent } = socketOf(request);
    return { agents: await port.presence(agent) };
  });
  return app;
}

/** How long an idle keep-alive connection stays open, ms (Fastify's default for its own server). */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;

/**
 * Serves the bus for `options.agent` on `options.socketPath` (mode 0660, chowned to `owner`): a
 * plain HTTP server on the socket that hands each request, tagged with the agent, to the routes of
 * `options.app` (or its own).
 * @throws {WarrenError} `WARREN_BUS_SOCKET` when something that is not a socket is at the path, or
 *   listening, chmod or chown fails (`cause`).
 */
export async function serveBusSocket(options: ServeBusOptions): Promise<ServedBus> {
  const { socketPath } = options;
  const log = lazyChildLogger(options.logger ?? silentLogger, { agent: options.agent, socket: BUS_SOCKET_NAME });
  const existing = await lstat(socketPath).catch(() => undefined);
  if (existing && !existing.isSocket()) throw new WarrenError('WARREN_BUS_SOCKET', `${socketPath}: exists and is not a socket; not replacing it`);
  if (existing) await rm(socketPath, { force: true });

  const ownApp = options.app === undefined;
  const app = options.app ?? createBusApp();
  const socket: BusSocket = { agent: options.agent, port: options.port, log, streams: new Set(), closing: false };
  const server = createServer((request, response) => {
    (request as TaggedRequest)[SOCKET] = socket;
    app.routing(request, response);
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  const closeServer = (): Promise<void> =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  try {
    await app.ready();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(socketPath, 0o660);
    if (options.owner) await chown(socketPath, options.owner.uid, options.owner.gid);
  } catch (error) {
    if (server.listening) await closeServer();
    if (ownApp) await app.close().catch(() => undefined);
    await rm(socketPath, { force: true });
    throw new WarrenError('WARREN_BUS_SOCKET', `${socketPath}: cannot serve the bus: ${(error as Error).message}`, { cause: error });
  }
  log.debug({ socketPath }, 'bus serving');
  let closing: Promise<void> | undefined;
  return {
    socketPath,
    close: () =>
      (closing ??= (async () => {
        socket.closing = true;
        for (const stream of [...socket.streams]) stream.end('the bus closed');
        await closeServer();
        if (ownApp) await app.close().catch((error: unknown) => log.warn({ err: error }, 'bus close failed'));
        await rm(socketPath, { force: true });
      })()),
  };
}

/** What the bus channel needs. */
export interface BusChannelOptions {
  /**
   * The messaging port (`MessageService`), or a function that returns it once it exists (it may be
   * made after the runtime that takes this channel); an agent started while it returns undefined
   * gets no bus socket.
   */
  readonly port: MessagingPort | (() => MessagingPort | undefined);
  readonly logger?: Logger;
}

/**
 * The bus as the runtime's channel service: every agent instance gets `/run/warren/bus.sock`, served
 * as that agent (its name is `self` of every call) and owned by its uid and gid.
 *
 * ```ts
 * const bus = new BusChannel({ port: () => messaging, logger });   // messaging: the MessageService
 * createAgentRuntime(config, { …, channelServices: [llm, bus] });  // close it with the supervisor
 * ```
 */
export class BusChannel implements ChannelService {
  readonly socketName = BUS_SOCKET_NAME;
  private readonly served = new Set<ServedBus>();
  private closed = false;
  private closing: Promise<void> | undefined;
  /** The routes every socket of this channel shares, made at the first socket. */
  private app: FastifyInstance | undefined;

  constructor(private readonly options: BusChannelOptions) {}

  /** Serves `spec`'s agent on `socketPath`; null once the channel is closed. @throws {WarrenError} `WARREN_BUS_SOCKET` (see {@link serveBusSocket}). */
  async serve(spec: AgentStartSpec, socketPath: string): Promise<{ close(): Promise<void> } | null> {
    if (this.closed) return null;
    const port = typeof this.options.port === 'function' ? this.options.port() : this.options.port;
    if (port === undefined) {
      this.options.logger?.warn({ agent: spec.name }, 'no messaging port yet: the agent starts without a bus socket');
      return null;
    }
    const bus = await serveBusSocket({
      port,
      agent: spec.name,
      socketPath,
      owner: { uid: spec.uid, gid: spec.gid },
      app: (this.app ??= createBusApp()),
      ...(this.options.logger ? { logger: this.options.logger } : {}),
    });
    if (this.closed) {
      await bus.close();
      return null;
    }
    this.served.add(bus);
    return {
      close: async () => {
        this.served.delete(bus);
        await bus.close();
      },
    };
  }

  /** Closes every socket served (their topic streams end with `event: end`). Idempotent. */
  close(): Promise<void> {
    this.closed = true;
    this.closing ??= Promise.allSettled([...this.served].map((bus) => bus.close())).then(async () => {
      await this.app?.close().catch((error: unknown) => this.options.logger?.warn({ err: error }, 'bus close failed'));
    });
    return this.closing;
  }
}

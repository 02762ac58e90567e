import { existsSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fastifyCookie from '@fastify/cookie';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import fastifySwagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type onRequestAsyncHookHandler } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  isResponseSerializationError,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { WarrenError, type Logger } from '@warren/core';
import { CommandKind, taskUsage, usageReport, type AuditPageFilter } from '@warren/registry';
import { HttpError } from './errors.js';
import type { HttpPorts } from './ports.js';
import * as S from './schemas.js';
import { EventStreams, kindFilter, type EventStreamOptions } from './sse.js';
import { AGENT_TOKEN_ROLE, SESSION_COOKIE, type TokenIdentity } from './tokens.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Decided for `user:anonymous`, whoever asks (sign-in, the dashboard's files). */
    public?: boolean;
  }
  interface FastifyRequest {
    /** Who the bearer token or session cookie belongs to; undefined when none is valid. */
    identity: TokenIdentity | undefined;
  }
}

/** Routes decided for `user:anonymous` that plugins register (the dashboard's files). */
const PUBLIC_PREFIXES = ['/assets/'];

/** Options of {@link createHttpApp}. */
export interface HttpAppOptions {
  /**
   * The dashboard's built files (`index.html`, `assets/…`), served at `/` and `/assets/*`. When
   * absent or missing, `/` answers a text saying the dashboard is not built; the API still works.
   */
  readonly staticDir?: string;
  /**
   * The `Host` values (`host:port`) the server answers as, beyond those {@link startHttpServer}
   * adds for its address (`127.0.0.1:<port>`, `localhost:<port>`, `[::1]:<port>`). Any other
   * `Host`, or an `Origin` not `http(s)://` one of them, is answered 403 (DNS rebinding).
   */
  readonly allowedHosts?: readonly string[];
  /** The largest request body accepted, in bytes; larger ones are answered 413. Default 65,536 (64 KiB). */
  readonly bodyLimitBytes?: number;
  /**
   * Requests allowed per key (the bearer token or session cookie, else the client address) in a
   * window of `timeWindowMs`; more are answered 429. Default 1,200 a minute; false: no limit.
   */
  readonly rateLimit?: { readonly max: number; readonly timeWindowMs: number } | false;
  readonly events?: EventStreamOptions;
  /** Set the session cookie's `Secure` attribute (behind https). Default false. */
  readonly secureCookies?: boolean;
  /** Where request and error lines go (a pino logger suits). Default none. */
  readonly logger?: Logger;
  /**
   * Check every response against its schema (a mismatch is a 500 and a log line). Default false:
   * responses are serialized with `JSON.stringify` (10,000 agents: about 60 ms less per request);
   * the schemas still describe them in the OpenAPI document. Tests turn it on.
   */
  readonly validateResponses?: boolean;
  /** The clock, ms since the epoch. Default `Date.now`. */
  readonly now?: () => number;
  /**
   * An MCP endpoint to serve at `/mcp` (POST, GET, DELETE) behind the same Host/Origin check, rate
   * limit, token or session and `api:/mcp` decision as the API (`createMcpHttpHandler` of
   * @warren/mcp), with the RFC 9728 protected-resource metadata at
   * `/.well-known/oauth-protected-resource` and `/.well-known/oauth-protected-resource/mcp`.
   * A request without a valid token is answered 401 with `WWW-Authenticate: Bearer
   * resource_metadata="<that document>"`.
   */
  readonly mcp?: McpEndpoint;
}

/** The MCP endpoint {@link HttpAppOptions.mcp} mounts: it answers on `response` itself. */
export interface McpEndpoint {
  /** Serves one request of `caller` (the token's or session's subject and role); `parsedBody` is the JSON body, undefined for GET and DELETE. */
  handle(request: IncomingMessage, response: ServerResponse, parsedBody: unknown, caller: { readonly principal: string; readonly role: string }): Promise<void>;
  /** The largest body accepted at `/mcp`, in bytes (answered 413 above). Default 2,097,152 (2 MiB). */
  readonly bodyLimitBytes?: number;
}

/** Where the protected-resource metadata of `/mcp` is (RFC 9728 §3.1: the well-known prefix before the resource's path). */
export const MCP_RESOURCE_METADATA_PATH = '/.well-known/oauth-protected-resource/mcp';

/**
 * Fastify's logger over Warren's `Logger` (pino's subset): Fastify also wants `fatal`, `silent`
 * and `level`, which Warren's packages never use.
 */
function fastifyLogger(logger: Logger): FastifyBaseLogger {
  const log = (level: 'trace' | 'debug' | 'info' | 'warn' | 'error') => (obj: unknown, msg?: string) => {
    if (typeof obj === 'string') logger[level]({}, obj);
    else logger[level]((obj ?? {}), msg);
  };
  return {
    level: 'info',
    trace: log('trace'),
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    fatal: log('error'),
    silent: () => {},
    child: (bindings: Record<string, unknown>) => fastifyLogger(logger.child(bindings)),
  } as FastifyBaseLogger;
}

/** A route of the app as the authorization matrix sees it. */
export interface RouteInfo {
  readonly method: string;
  readonly url: string;
  /** Decided for `user:anonymous`. */
  readonly public: boolean;
}

/** What {@link createHttpApp} hangs on the app: its routes, allowed hosts and event streams. */
interface WarrenHttpState {
  readonly routes: RouteInfo[];
  readonly allowedHosts: Set<string>;
  readonly streams: EventStreams;
}

const STATE = Symbol('warren.http');

function stateOf(app: FastifyInstance): WarrenHttpState {
  const state = (app as unknown as Record<symbol, WarrenHttpState | undefined>)[STATE];
  if (!state) throw new HttpError('WARREN_HTTP_OPTIONS', 'not an app made by createHttpApp');
  return state;
}

/** The routes `app` (made by {@link createHttpApp}) registered, each method on its own, in registration order. */
export function routesOf(app: FastifyInstance): readonly RouteInfo[] {
  return stateOf(app).routes;
}

/** Lets `app` answer requests whose `Host` is `host` (`name:port`), as {@link startHttpServer} does for its address. */
export function allowHost(app: FastifyInstance, host: string): void {
  stateOf(app).allowedHosts.add(host.toLowerCase());
}

/** Ends `app`'s event streams (its `preClose` does too). */
export function closeEventStreams(app: FastifyInstance): void {
  stateOf(app).streams.close();
}

/**
 * Response schemas as Fastify's serializer takes them, hidden from the type provider: handlers
 * answer through {@link fail} as well as with their body, which a typed reply would refuse.
 */
const responses = (schemas: Record<number, z.ZodType>): Record<number, unknown> => schemas;

const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024;
const DEFAULT_RATE = { max: 1200, timeWindowMs: 60_000 };
const DEFAULT_EXECUTIONS_LIMIT = 500;
const DEFAULT_AUDIT_LIMIT = 200;
const TASK_AUDIT_ROWS = 200;
const AGENT_EXECUTIONS = 50;
const EXPORT_PAGE_ROWS = 1000;

/** Cache headers for the dashboard's files: names with a content hash never change. */
const HASHED_NAME = /[.-][A-Za-z0-9_]{8,}\.(?:js|css|woff2?|svg|png|map)$/;

/** The JSON error body every failure answers: `{ error, message, ... }`. */
function fail(reply: FastifyReply, status: number, error: string, message: string, extra: Record<string, unknown> = {}): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send({ error, message, ...extra });
}

/** The code of a 4xx answer from Fastify's own error codes. */
function codeOfStatus(status: number, fastifyCode: string | undefined): string {
  if (status === 413 || fastifyCode === 'FST_ERR_CTP_BODY_TOO_LARGE') return 'payload_too_large';
  if (status === 415 || fastifyCode === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return 'unsupported_media_type';
  if (status === 404) return 'not_found';
  if (status === 405) return 'method_not_allowed';
  if (status === 409) return 'conflict';
  if (status === 429) return 'rate_limited';
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  return 'invalid_request';
}

/** The status a `WarrenError` from a port or query answers, by its code; undefined: a server fault. */
function statusOfWarrenError(code: string): number | undefined {
  if (code.endsWith('_INVALID') || code === 'WARREN_TASK_PARSE' || code === 'WARREN_AUDIT') return 400;
  if (code.endsWith('_EXISTS')) return 409;
  if (code.endsWith('_NOT_FOUND') || code.endsWith('_UNKNOWN')) return 404;
  return undefined;
}

/** `Origin` is allowed when absent, or `http(s)://<an allowed host>`. */
function originAllowed(origin: string, hosts: ReadonlySet<string>): boolean {
  const match = /^https?:\/\/([^/]+)$/i.exec(origin);
  return match !== null && hosts.has(match[1]!.toLowerCase());
}

/** The URL of this server as the request addressed it (its `Host` passed the allow list). */
function baseUrlOf(request: FastifyRequest): string {
  return `${request.protocol}://${request.headers.host ?? 'localhost'}`;
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Builds Warren's HTTP API (contract: `/work/shared` API v1; every route below) as a Fastify 5 app
 * that is not listening: test it with `app.inject()`, serve it with {@link startHttpServer}.
 *
 * Every request passes, in order: the `Host`/`Origin` check (403 `forbidden_origin`); the rate
 * limit per token or address (429 `rate_limited`); authentication by bearer token or session
 * cookie (401 `unauthorized`); `ports.authorizer.authorize({ principal: 'user:<token name>' or
 * 'user:anonymous' for public routes, object: 'api:<route url>', action: <method> })`, which
 * audits the decision (403 `forbidden` with the deciding `rule`); then body parsing (413, 415,
 * 400) and schema validation (400 naming the field).
 *
 * @throws {HttpError} `WARREN_HTTP_OPTIONS` when an option is out of range.
 */
export async function createHttpApp(ports: HttpPorts, options: HttpAppOptions = {}): Promise<FastifyInstance> {
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1) throw new HttpError('WARREN_HTTP_OPTIONS', `'bodyLimitBytes' must be a positive whole number, got ${String(bodyLimit)}`);
  const rate = options.rateLimit === false ? false : (options.rateLimit ?? DEFAULT_RATE);
  if (rate && (!(rate.max >= 1) || !(rate.timeWindowMs >= 1))) throw new HttpError('WARREN_HTTP_OPTIONS', "'rateLimit' needs max ≥ 1 and timeWindowMs ≥ 1");
  const now = options.now ?? Date.now;
  const staticDir = options.staticDir !== undefined && existsSync(join(options.staticDir, 'index.html')) ? options.staticDir : undefined;

  const app = Fastify({
    bodyLimit,
    exposeHeadRoutes: false,
    ...(options.logger ? { loggerInstance: fastifyLogger(options.logger.child({ component: 'http' })) } : {}),
    // One line per request would double the audit trail's story in the log: requests are audited.
    logController: new LogController({ disableRequestLogging: true }),
    frameworkErrors: (error, _request, reply) => {
      void fail(reply, 400, 'invalid_request', error.message);
    },
  });
  const state: WarrenHttpState = {
    routes: [],
    allowedHosts: new Set((options.allowedHosts ?? []).map((h) => h.toLowerCase())),
    streams: new EventStreams({ registry: ports.registry, subscribe: (l) => ports.subscribe(l) }, options.events),
  };
  (app as unknown as Record<symbol, WarrenHttpState>)[STATE] = state;
  app.decorateRequest('identity', undefined);
  // JSON only: a text body is 415, not a string handed to a schema that wants an object.
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(options.validateResponses === true ? serializerCompiler : () => (data) => JSON.stringify(data));

  // 1. DNS rebinding: only our own Host and Origin.
  app.addHook('onRequest', (request, reply, done) => {
    const host = (request.headers.host ?? '').toLowerCase();
    const origin = firstHeader(request.headers.origin);
    if (!state.allowedHosts.has(host) || (origin !== undefined && !originAllowed(origin, state.allowedHosts))) {
      void fail(reply, 403, 'forbidden_origin', origin !== undefined && state.allowedHosts.has(host) ? `origin '${origin}' is not this server` : `host '${host}' is not this server`);
      return;
    }
    done();
  });
  app.addHook('preClose', (done) => {
    state.streams.close();
    done();
  });

  await app.register(fastifyCookie);
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        styleSrcAttr: ["'unsafe-inline'"],
        imgSrc: ["'self'", 'data:', 'blob:'],
        fontSrc: ["'self'"],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
    },
    strictTransportSecurity: false,
    referrerPolicy: { policy: 'no-referrer' },
  });

  // 2. The rate limit (a route-level onRequest hook it adds to every route).
  if (rate) {
    await app.register(fastifyRateLimit, {
      max: rate.max,
      timeWindow: rate.timeWindowMs,
      keyGenerator: (request) => {
        const credential = firstHeader(request.headers.authorization) ?? request.cookies[SESSION_COOKIE];
        return credential !== undefined ? `credential:${credential.slice(0, 256)}` : `address:${request.ip}`;
      },
      errorResponseBuilder: (_request, context) =>
        Object.assign(new Error(`too many requests: at most ${context.max} in ${context.after}; try again later`), { statusCode: context.statusCode, warrenCode: 'rate_limited' }),
    });
  }

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Warren HTTP API', version: 'v1', description: "Warren's operator API: status, agents, tasks, audit, events; actions through the command queue." },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE } } },
      security: [{ bearer: [] }, { session: [] }],
    },
    transform: jsonSchemaTransform,
  });

  // 3 and 4. Authentication and authorization, after the rate limit on every route.
  const granted = new Map<string, string>();
  const identify = (request: FastifyRequest): { identity: TokenIdentity | undefined; presented: boolean } => {
    const authorization = firstHeader(request.headers.authorization);
    if (authorization !== undefined) {
      const match = /^Bearer ([^\s]+)$/i.exec(authorization);
      return { identity: match ? ports.tokens.verify(match[1]!, now()) : undefined, presented: true };
    }
    const session = request.cookies[SESSION_COOKIE];
    if (session !== undefined) return { identity: ports.tokens.verifySession(session, now()), presented: true };
    return { identity: undefined, presented: false };
  };
  // Async, so that a failure of the policy or the audit trail is a 500 through the error handler.
  const authorizeRequest: onRequestAsyncHookHandler = async (request, reply) => {
    const url = request.routeOptions.url ?? request.url;
    const { identity, presented } = identify(request);
    request.identity = identity;
    let principal = 'user:anonymous';
    if (request.routeOptions.config.public !== true) {
      if (!identity) {
        // RFC 9728 §5.1: where the resource's metadata is, for MCP clients to discover.
        if (url === '/mcp') void reply.header('www-authenticate', `Bearer resource_metadata="${baseUrlOf(request)}${MCP_RESOURCE_METADATA_PATH}"`);
        return fail(reply, 401, 'unauthorized', presented ? 'the token or session is invalid, expired or revoked' : 'sign in: send Authorization: Bearer <token> (warren token create)');
      }
      principal = identity.principal;
      const role = `role:${identity.role}`;
      // An agent's principal has its template's role already (given when it started): nothing to grant.
      if (identity.role !== AGENT_TOKEN_ROLE && granted.get(principal) !== role) {
        // A name reused with another role after a revoke: its old role goes first.
        if (granted.has(principal)) ports.authorizer.dropPrincipal(principal);
        ports.authorizer.grantRole(principal, role);
        granted.set(principal, role);
      }
    }
    const decision = ports.authorizer.authorize({ principal, object: `api:${url}`, action: request.method });
    if (!decision.allowed) {
      return fail(reply, 403, 'forbidden', `policy denies ${principal} ${request.method} on api:${url}`, { rule: decision.rule });
    }
    return undefined;
  };
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const isPublic = route.config?.public === true || PUBLIC_PREFIXES.some((p) => route.url.startsWith(p));
    route.config = { ...route.config, public: isPublic };
    for (const method of methods) state.routes.push({ method, url: route.url, public: isPublic });
    const hooks = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [...hooks, authorizeRequest];
  });

  app.setNotFoundHandler((request, reply) => fail(reply, 404, 'not_found', `no route ${request.method} ${request.url.split('?')[0]}`));
  app.setErrorHandler((error: FastifyError & { warrenCode?: string }, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const where = error.validationContext ?? 'request';
      const issues = error.validation.map((v) => `${where}${v.instancePath || ''}: ${v.message}`);
      return fail(reply, 400, 'invalid_request', issues.join('; '));
    }
    if (isResponseSerializationError(error)) {
      request.log.error({ err: error, url: request.url }, 'response does not match its schema');
      return fail(reply, 500, 'internal', 'internal error');
    }
    if (error instanceof WarrenError) {
      const status = statusOfWarrenError(error.code);
      if (status !== undefined) return fail(reply, status, codeOfStatus(status, undefined), error.message, { code: error.code });
    }
    const status = typeof error.statusCode === 'number' ? error.statusCode : 500;
    if (status >= 400 && status < 500) return fail(reply, status, error.warrenCode ?? codeOfStatus(status, error.code), error.message);
    request.log.error({ err: error, url: request.url }, 'request failed');
    return fail(reply, 500, 'internal', 'internal error');
  });

  const api = app.withTypeProvider<ZodTypeProvider>();
  const principalOf = (request: FastifyRequest): string => request.identity?.principal ?? 'user:anonymous';
  const sessionCookie = { httpOnly: true, sameSite: 'strict' as const, path: '/', secure: options.secureCookies === true };
  const startSession = (reply: FastifyReply, token: string): boolean => {
    const session = ports.tokens.createSession(token, now());
    if (!session) return false;
    const maxAge = session.identity.expiresMs === null ? undefined : Math.max(1, Math.floor((session.identity.expiresMs - now()) / 1000));
    void reply.setCookie(SESSION_COOKIE, session.sessionId, { ...sessionCookie, ...(maxAge !== undefined ? { maxAge } : {}) });
    return true;
  };

  // Session.
  api.post('/api/v1/session', { config: { public: true }, schema: { summary: 'Sign in: exchange a token for a session cookie', body: S.SessionRequest, response: responses({ 204: z.null(), 401: S.ErrorBody }) } }, (request, reply) => {
    if (!startSession(reply, request.body.token)) return fail(reply, 401, 'unauthorized', 'the token is invalid, expired or revoked');
    return reply.code(204).send();
  });
  api.delete('/api/v1/session', { config: { public: true }, schema: { summary: 'Sign out', response: responses({ 204: z.null() }) } }, (request, reply) => {
    const session = request.cookies[SESSION_COOKIE];
    if (session !== undefined) ports.tokens.endSession(session);
    void reply.clearCookie(SESSION_COOKIE, sessionCookie);
    return reply.code(204).send();
  });
  api.get('/api/v1/session', { config: { public: true }, schema: { summary: 'Who is signed in', response: responses({ 200: S.SessionBody, 401: S.ErrorBody }) } }, (request, reply) => {
    const identity = request.identity;
    if (!identity) return fail(reply, 401, 'unauthorized', 'not signed in');
    return { name: identity.name, role: identity.role, expiresMs: identity.expiresMs };
  });
  api.get('/signin', { config: { public: true }, schema: { summary: 'Sign in from a link: sets the session cookie and redirects to /', querystring: S.SignInQuery } }, (request, reply) => {
    if (!startSession(reply, request.query.token)) return fail(reply, 401, 'unauthorized', 'the sign-in link is invalid, expired or revoked: run warren token create');
    return reply.code(303).header('location', '/').send();
  });

  // Reads.
  api.get('/api/v1/status', { schema: { summary: 'Supervisor status and counts', response: responses({ 200: S.StatusBody }) } }, () => ({
    ...ports.registry.status(),
    instance: ports.instance,
    version: ports.version,
    startedMs: ports.startedMs,
    nowMs: now(),
  }));
  api.get('/api/v1/agents', { schema: { summary: 'Agents with live fields and cgroup usage', querystring: S.AgentsQuery, response: responses({ 200: z.object({ agents: z.array(S.AgentItemBody) }) }) } }, (request) => {
    const { template, state: agentState, capability } = request.query;
    const agents = ports
      .agents()
      .filter((a) => (template === undefined || a.template === template) && (agentState === undefined || a.state === agentState || a.live?.status === agentState))
      .filter((a) => capability === undefined || a.capabilities.includes(capability));
    return { agents };
  });
  api.get('/api/v1/agents/:name', { schema: { summary: 'One agent and its last executions', params: S.NameParam, response: responses({ 200: S.AgentItemBody.extend({ executions: z.array(S.ExecutionBody) }), 404: S.ErrorBody }) } }, (request, reply) => {
    const agent = ports.agents().find((a) => a.name === request.params.name);
    if (!agent) return fail(reply, 404, 'not_found', `no agent '${request.params.name}'`);
    return { ...agent, executions: ports.registry.executions({ agent: agent.name, order: 'desc', limit: AGENT_EXECUTIONS }) };
  });
  api.get('/api/v1/agents/:name/log', { schema: { summary: "A byte range of the agent's log (tail without after)", params: S.NameParam, querystring: S.LogQuery, response: responses({ 200: S.LogBody, 404: S.ErrorBody }) } }, (request, reply) => {
    const chunk = ports.agentLog(request.params.name, { ...(request.query.after !== undefined ? { after: request.query.after } : {}), limit: request.query.limit ?? 65_536 });
    if (!chunk) return fail(reply, 404, 'not_found', `no agent '${request.params.name}'`);
    return chunk;
  });
  api.get('/api/v1/accounts', { schema: { summary: 'Unix accounts of agents', response: responses({ 200: S.AccountsBody }) } }, () => ({ accounts: ports.accounts() }));
  api.get('/api/v1/templates', { schema: { summary: 'Agent templates', response: responses({ 200: S.TemplatesBody }) } }, () => ({ templates: ports.templates() }));
  api.get('/api/v1/board', { schema: { summary: 'The board: columns, held files, cards with task states', response: responses({ 200: S.BoardBody }) } }, () => ports.board());
  api.get('/api/v1/tasks', { schema: { summary: 'Tasks with state, queue position and reason', querystring: S.TasksQuery, response: responses({ 200: z.object({ tasks: z.array(S.TaskItemBody) }) }) } }, async (request) => {
    const { state: taskState, agent, waiting } = request.query;
    const cards = new Map((await ports.board()).cards.map((c) => [c.id, c]));
    const tasks = ports.registry
      .tasks({ ...(taskState !== undefined ? { state: taskState } : {}), ...(agent !== undefined ? { agent } : {}), ...(waiting ? { waiting } : {}) })
      .map((t) => ({ ...t, title: cards.get(t.id)?.title ?? null, column: cards.get(t.id)?.column ?? null }));
    return { tasks };
  });
  api.get('/api/v1/tasks/:id', { schema: { summary: 'One task: executions, audit rows, trace id, output tail, LLM usage per attempt', params: S.TaskIdParam, response: responses({ 200: S.TaskDetailBody, 404: S.ErrorBody }) } }, (request, reply) => {
    const task = ports.registry.task(request.params.id);
    if (!task) return fail(reply, 404, 'not_found', `no task '${request.params.id}'`);
    const audit = ports.registry.auditPage({ filter: { object: `task:${task.id}` }, limit: TASK_AUDIT_ROWS, newest: true }).rows;
    const usage = ports.taskUsage?.(task.id) ?? taskUsage(ports.registry.db, task.id);
    return { ...task, ...ports.taskExtras(task.id), audit, usage };
  });
  api.get('/api/v1/executions', { schema: { summary: 'Executions with waits, durations and outcomes', querystring: S.ExecutionsQuery, response: responses({ 200: z.object({ executions: z.array(S.ExecutionBody) }) }) } }, (request) => {
    const q = request.query;
    const executions = ports.registry.executions({
      ...(q.task !== undefined ? { taskId: q.task } : {}),
      ...(q.agent !== undefined ? { agent: q.agent } : {}),
      ...(q.template !== undefined ? { template: q.template } : {}),
      ...(q.outcome !== undefined ? { outcome: q.outcome } : {}),
      ...(q.since !== undefined ? { sinceMs: q.since } : {}),
      order: 'desc',
      limit: q.limit ?? DEFAULT_EXECUTIONS_LIMIT,
    });
    return { executions };
  });
  const auditFilter = (q: z.infer<typeof S.AuditQuery>): AuditPageFilter => ({
    ...(q.actor !== undefined ? { actor: q.actor } : {}),
    ...(q.action !== undefined ? { action: q.action } : {}),
    ...(q.object !== undefined ? { object: q.object } : {}),
    ...(q.decision !== undefined ? { decision: q.decision === 'none' ? null : q.decision } : {}),
    ...(q.since !== undefined ? { sinceMs: q.since } : {}),
    ...(q.until !== undefined ? { untilMs: q.until } : {}),
  });
  api.get('/api/v1/audit', { schema: { summary: 'A page of the audit trail', querystring: S.AuditQuery, response: responses({ 200: S.AuditPageBody }) } }, (request) => {
    const q = request.query;
    return ports.registry.auditPage({ filter: auditFilter(q), after: q.after ?? 0, limit: q.limit ?? DEFAULT_AUDIT_LIMIT, newest: q.newest === true });
  });
  api.get('/api/v1/audit/verify', { schema: { summary: "Verify the audit trail's hash chain and checkpoints", response: responses({ 200: S.AuditVerifyBody }) } }, () => ports.verifyAudit());
  api.get('/api/v1/audit/export', { schema: { summary: 'The audit trail as JSON lines (application/x-ndjson)', querystring: S.AuditQuery } }, (request, reply) => {
    const q = request.query;
    const filter = auditFilter(q);
    let after = q.after ?? 0;
    let left = q.limit ?? Infinity;
    const registry = ports.registry;
    async function* lines(): AsyncGenerator<string> {
      while (left > 0) {
        const page = registry.auditPage({ filter, after, limit: Math.min(EXPORT_PAGE_ROWS, left) });
        if (page.rows.length === 0) return;
        left -= page.rows.length;
        after = page.next;
        yield page.rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
        if (!page.more) return;
      }
    }
    return reply
      .type('application/x-ndjson; charset=utf-8')
      .header('content-disposition', 'attachment; filename="warren-audit.jsonl"')
      .send(Readable.from(lines()));
  });
  api.get('/api/v1/messages', { schema: { summary: 'Messages between agents and who messages whom', querystring: S.MessagesQuery, response: responses({ 200: S.MessagesBody }) } }, (request) => {
    const q = request.query;
    return ports.messages({ ...(q.agent !== undefined ? { agent: q.agent } : {}), ...(q.since !== undefined ? { sinceMs: q.since } : {}), ...(q.limit !== undefined ? { limit: q.limit } : {}) });
  });
  api.get('/api/v1/schedules', { schema: { summary: "The board's schedules: last and next fire times, the last task written", response: responses({ 200: S.SchedulesBody }) } }, () =>
    ports.schedules?.() ?? { file: '', schedules: [], problems: [] },
  );
  api.get('/api/v1/nodes', { schema: { summary: 'The nodes agents may run on: labels, capacity, state, instances', response: responses({ 200: S.NodesBody }) } }, () => ports.nodes?.() ?? { nodes: [] });
  api.get('/api/v1/analytics', { schema: { summary: 'Throughput, latency, rates, utilisation, incidents', querystring: S.AnalyticsQuery, response: responses({ 200: S.AnalyticsBody }) } }, (request) => {
    const q = request.query;
    return ports.analytics({ ...(q.since !== undefined ? { sinceMs: q.since } : {}), ...(q.bucketMs !== undefined ? { bucketMs: q.bucketMs } : {}) });
  });
  api.get('/api/v1/usage', { schema: { summary: 'LLM usage and cost: per agent, template, task and model, over time, refusals', querystring: S.UsageQuery, response: responses({ 200: S.UsageBody, 400: S.ErrorBody }) } }, (request) => {
    const q = request.query;
    const range = q.from === undefined && q.to === undefined ? undefined : { fromMs: q.from ?? 0, toMs: q.to ?? now() };
    const usageRequest = { ...(range !== undefined ? { range } : {}), ...(q.bucket !== undefined ? { bucketMs: q.bucket } : {}), ...(q.top !== undefined ? { topTasks: q.top } : {}) };
    return ports.usage?.(usageRequest) ?? usageReport(ports.registry.db, usageRequest);
  });
  api.get('/api/v1/commands/:id', { schema: { summary: 'An operator command and its outcome', params: S.CommandIdParam, response: responses({ 200: S.CommandBody, 404: S.ErrorBody }) } }, (request, reply) => {
    const command = ports.registry.commands.get(request.params.id);
    if (!command) return fail(reply, 404, 'not_found', `no command ${request.params.id}`);
    return command;
  });
  api.get('/api/v1/events', { schema: { summary: 'Server-sent events: the event catalogue live, resumable with Last-Event-ID', querystring: S.EventsQuery } }, (request, reply) => {
    const lastEventId = firstHeader(request.headers['last-event-id']);
    let after = request.query.after;
    if (lastEventId !== undefined) {
      if (!/^\d{1,15}$/.test(lastEventId)) return fail(reply, 400, 'invalid_request', "header Last-Event-ID: must be an audit seq (a whole number)");
      after = Number(lastEventId);
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) headers[name] = String(value);
    reply.hijack();
    state.streams.serve(reply.raw, headers, after, kindFilter(request.query.kinds));
    return reply;
  });
  api.get('/api/v1/openapi.json', { schema: { summary: 'This OpenAPI document', hide: true } }, () => app.swagger());
  api.get('/metrics', { schema: { summary: 'Prometheus metrics (text exposition format)', hide: true } }, async (_request, reply) => {
    const metrics = await ports.metrics();
    return reply.type(metrics.contentType).send(metrics.body);
  });

  // Actions: each queues a durable command the supervisor runs (and authorizes again) on its tick.
  const enqueue = (kind: CommandKind, target: string, request: FastifyRequest, reply: FastifyReply) => {
    const id = ports.registry.commands.enqueue(kind, target, principalOf(request), now());
    ports.requestTick();
    return reply.code(202).send({ command: id });
  };
  const agentActions = [
    ['start', CommandKind.agentStart],
    ['stop', CommandKind.agentStop],
    ['restart', CommandKind.agentRestart],
    ['sleep', CommandKind.agentSleep],
    ['wake', CommandKind.agentWake],
  ] as const;
  for (const [verb, kind] of agentActions) {
    const summary = verb === 'start' ? 'Start an agent of the template :name' : `${verb[0]!.toUpperCase()}${verb.slice(1)} the agent :name`;
    api.post(`/api/v1/agents/:name/${verb}`, { schema: { summary, params: S.NameParam, response: responses({ 202: S.AcceptedBody, 404: S.ErrorBody }) } }, (request, reply) => {
      const name = request.params.name;
      const known = verb === 'start' ? ports.templates().some((t) => t.name === name) : ports.registry.agents().some((a) => a.name === name);
      if (!known) return fail(reply, 404, 'not_found', verb === 'start' ? `no template '${name}'` : `no agent '${name}'`);
      return enqueue(kind, name, request, reply);
    });
  }
  api.delete('/api/v1/agents/:name', { schema: { summary: 'Delete the agent :name (its account and home)', params: S.NameParam, response: responses({ 202: S.AcceptedBody, 404: S.ErrorBody }) } }, (request, reply) => {
    if (!ports.registry.agents().some((a) => a.name === request.params.name)) return fail(reply, 404, 'not_found', `no agent '${request.params.name}'`);
    return enqueue(CommandKind.agentDelete, request.params.name, request, reply);
  });
  for (const [verb, kind] of [
    ['cancel', CommandKind.taskCancel],
    ['retry', CommandKind.taskRetry],
  ] as const) {
    api.post(`/api/v1/tasks/:id/${verb}`, { schema: { summary: `${verb === 'cancel' ? 'Cancel' : 'Retry'} the task :id`, params: S.TaskIdParam, response: responses({ 202: S.AcceptedBody, 404: S.ErrorBody }) } }, (request, reply) => {
      if (!ports.registry.task(request.params.id)) return fail(reply, 404, 'not_found', `no task '${request.params.id}'`);
      return enqueue(kind, request.params.id, request, reply);
    });
  }
  api.post('/api/v1/tasks', { schema: { summary: "Create a task: a card written in the board's own format", body: S.TaskDraftBody, response: responses({ 201: S.CreatedTaskBody, 400: S.ErrorBody, 409: S.ErrorBody }) } }, async (request, reply) => {
    const created = await ports.createTask(request.body, principalOf(request));
    ports.requestTick(); // the board is read again on the next tick
    return reply.code(201).send(created);
  });

  // MCP (Streamable HTTP), answered by the endpoint on the raw response.
  const mcp = options.mcp;
  if (mcp !== undefined) {
    const metadata = (request: FastifyRequest) => ({
      resource: `${baseUrlOf(request)}/mcp`,
      resource_name: 'Warren',
      bearer_methods_supported: ['header'],
      resource_documentation: `${baseUrlOf(request)}/api/v1/openapi.json`,
    });
    for (const url of ['/.well-known/oauth-protected-resource', MCP_RESOURCE_METADATA_PATH]) {
      api.get(url, { config: { public: true }, schema: { summary: 'OAuth protected-resource metadata of /mcp (RFC 9728)', hide: true } }, (request) => metadata(request));
    }
    api.route({
      method: ['POST', 'GET', 'DELETE'],
      url: '/mcp',
      bodyLimit: mcp.bodyLimitBytes ?? 2 * 1024 * 1024,
      schema: { summary: 'Model Context Protocol (Streamable HTTP)', hide: true },
      handler: async (request, reply) => {
        const identity = request.identity!;
        reply.hijack();
        await mcp.handle(request.raw, reply.raw, request.body, { principal: identity.principal, role: identity.role });
      },
    });
  }

  // The dashboard's files.
  if (staticDir !== undefined) {
    const assets = join(staticDir, 'assets');
    await app.register(fastifyStatic, {
      root: existsSync(assets) && statSync(assets).isDirectory() ? assets : staticDir,
      prefix: '/assets/',
      index: false,
      wildcard: true,
      decorateReply: true,
      cacheControl: false,
      setHeaders: (res, path) => {
        res.header('cache-control', HASHED_NAME.test(path) ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    });
    api.get('/', { config: { public: true }, schema: { hide: true } }, (_request, reply) => reply.header('cache-control', 'no-cache').sendFile('index.html', staticDir));
  } else {
    // The same routes as with a dashboard (GET and HEAD, as @fastify/static registers them).
    api.route({
      method: ['GET', 'HEAD'],
      url: '/assets/*',
      config: { public: true },
      schema: { hide: true },
      handler: (request, reply) => fail(reply, 404, 'not_found', `no file ${request.url.split('?')[0]}: the dashboard is not built`),
    });
    api.get('/', { config: { public: true }, schema: { hide: true } }, (_request, reply) =>
      reply.type('text/plain; charset=utf-8').send('Warren: the dashboard is not built (npm run build builds it). The API is at /api/v1, its description at /api/v1/openapi.json.\n'),
    );
  }

  await app.ready();
  return app;
}

/**
 * @warren/http: Warren's HTTP API (v1) as a Fastify 5 app, its bearer tokens and browser sessions,
 * and the live event stream. The supervisor implements {@link HttpPorts} over its context and
 * serves the app; the dashboard speaks only this API.
 *
 * ```ts
 * import { openTokenStore, startHttpServer } from '@warren/http';
 * const tokens = openTokenStore(db);                       // tables api_tokens, api_sessions
 * const { token } = tokens.create({ name: 'alice', role: 'operator' }, Date.now());
 * const server = await startHttpServer(ports, { host: '127.0.0.1', port: 7070, staticDir });
 * server.url;                                             // 'http://127.0.0.1:7070'
 * // curl -H "Authorization: Bearer $token" http://127.0.0.1:7070/api/v1/agents
 * await server.close();                                   // event streams first, then the sockets
 * ```
 */
export { createHttpApp, routesOf, allowHost, closeEventStreams, MCP_RESOURCE_METADATA_PATH } from './app.js';
export type { HttpAppOptions, McpEndpoint, RouteInfo } from './app.js';
export { startHttpServer, parseListenAddress, createSignInLink } from './server.js';
export type { HttpServer, HttpServerOptions, SignInLinkOptions } from './server.js';
export { AGENT_TOKEN_ROLE, TokenStore, TokenRole, openTokenStore, isTokenRole, SESSION_COOKIE, TOKEN_FORMAT, TOKEN_NAME, MAX_SESSION_MS } from './tokens.js';
export type { TokenIdentity, TokenInfo, TokenRequest } from './tokens.js';
export { kindFilter, eventOfRow } from './sse.js';
export type { EventStreamOptions, KindFilter } from './sse.js';
export { HttpError } from './errors.js';
export type {
  AccountItem,
  AgentItem,
  AgentLive,
  AnalyticsBucket,
  AnalyticsView,
  AuditVerifyView,
  BoardView,
  Card,
  EventPayload,
  HttpAuthorizer,
  HttpPorts,
  LogChunk,
  MessagesView,
  NodesView,
  SchedulesView,
  TaskDraft,
  TaskUsageView,
  TemplateItem,
  UsageRequest,
  UsageView,
} from './ports.js';
export { readLogRange } from './log-range.js';

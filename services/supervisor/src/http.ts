/**
 * The HTTP API and dashboard the supervisor serves (`warren up`, `--http`): the ports of
 * `@warren/http` implemented over the supervisor's context and stage modules. Every member is a read
 * of memory or SQLite, or (creating a card) one file write; operator actions go through the durable
 * command queue and run on the next tick.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '@warren/core';
import { auditSigningPaths, verifyAuditTrailAsync, type SignedVerification } from '@warren/audit';
import { createSignInLink, openTokenStore, readLogRange, startHttpServer, type HttpPorts, type HttpServer, type TokenStore } from '@warren/http';
import { createMcpHttpHandler, type McpHttpHandler, type McpPorts } from '@warren/mcp';
import { ScheduleLedger } from '@warren/registry';
import { createAgentComputer, type AgentComputer } from './agents/computer.js';
import type { SupervisorContext } from './context.js';
import type { SupervisorParts } from './parts.js';
import { managerPorts } from './operator/managers.js';
import { accountItems, agentItems, boardItem, createBoardTask, moveBoardTask, taskExtras, templateItems } from './operator/views.js';
import { scheduleList } from './schedules/listing.js';
import { PlacementRouter } from './placement/router.js';
import { WARREN_VERSION } from './version.js';

/** Options of {@link serveApi}. */
export interface ServeApiOptions {
  /** The built dashboard (index.html and assets); undefined: `/` says it is not built. */
  readonly staticDir?: string;
  /** When the supervisor started, ms since the epoch. */
  readonly startedMs: number;
}

/** The API server of a running supervisor, with the sign-in link made for the local operator. */
export interface ServedApi {
  readonly server: HttpServer;
  readonly tokens: TokenStore;
  /** `<url>/signin?token=…`: signs a browser in as `user:local-operator` until `expiresMs`. */
  readonly signIn: { readonly url: string; readonly expiresMs: number };
  /** Stops listening (event streams first). Idempotent. */
  close(): Promise<void>;
}

/**
 * The file under the state directory that names the running supervisor's API while it serves:
 * `{ "url": "http://127.0.0.1:7070", "pid": 4242 }` (0600), removed when it stops.
 */
export const HTTP_ADDRESS_FILE = 'http.json';

/** How long the sign-in link `warren up` prints stays valid, ms. */
export const SIGN_IN_TTL_MS = 12 * 60 * 60 * 1000;

/**
 * The API's ports over the supervisor's context `ctx` and stage modules `parts`.
 * `verifyAudit` reads the trail on its own connection, a page at a time, so a long trail does not
 * hold the tick; concurrent requests share one verification.
 */
export function httpPorts(ctx: SupervisorContext, parts: SupervisorParts, tokens: TokenStore, startedMs: number): HttpPorts {
  let verifying: Promise<SignedVerification> | undefined;
  let scheduleLedger: ScheduleLedger | undefined;
  const logsDir = join(ctx.config.stateDir, 'logs');
  return {
    registry: ctx.registry,
    authorizer: ctx.authorizer,
    tokens,
    instance: ctx.config.instance ?? ctx.instanceTag,
    version: WARREN_VERSION,
    startedMs,
    agents: () => agentItems(ctx),
    accounts: () => accountItems(ctx),
    templates: () => templateItems(ctx),
    board: () => Promise.resolve(boardItem(ctx, parts.mirror)),
    taskExtras: (id) => {
      const extras = taskExtras(ctx, parts.mirror, id);
      return { title: extras.title, column: extras.column, output: extras.output, traceId: ctx.tracing.traceIdOf(id) ?? null };
    },
    createTask: (draft, principal) => createBoardTask(ctx, parts.mirror, draft, principal),
    agentLog: (name, range) => (ctx.registry.agents().some((a) => a.name === name) ? readLogRange(join(logsDir, `${name}.log`), range) : undefined),
    messages: (filter) => ctx.registry.messages(filter),
    nodes: () => ({ nodes: ctx.runtime instanceof PlacementRouter ? ctx.runtime.nodeViews() : [] }),
    schedules: () => scheduleList(ctx.config.boardDir, (scheduleLedger ??= new ScheduleLedger(ctx.db)), Date.now()),
    analytics: (filter) =>
      ctx.registry.analyticsReport({ ...filter, nowMs: Date.now(), capabilitiesOf: (taskId) => parts.mirror.taskById.get(taskId)?.capabilities ?? [] }),
    verifyAudit: () =>
      (verifying ??= verifyAuditTrailAsync(join(ctx.config.stateDir, 'warren.db'), { ...auditSigningPaths(ctx.config.stateDir), keyPath: ctx.config.auditKeyPath }).finally(() => {
        verifying = undefined;
      })),
    subscribe: (listener) => ctx.events.subscribe(listener),
    metrics: () => ctx.metrics.text(),
    requestTick: () => ctx.requestTick(),
  };
}

/**
 * The MCP endpoint's ports: the API's, plus an unaudited policy check for the tool list each
 * caller sees, the policy's explanation, messages to agents and the agents' computers.
 */
export function mcpPorts(ctx: SupervisorContext, parts: SupervisorParts, http: HttpPorts, computer: AgentComputer): McpPorts {
  return {
    ...http,
    authorizer: ctx.authorizer,
    mayCall: (principal, tool) => ctx.policy.explain(principal, `mcp:${tool}`, 'call').allowed,
    explain: (principal, object, action) => {
      const explained = ctx.policy.explain(principal, object, action);
      return { allowed: explained.allowed, rule: explained.rule };
    },
    sendMessage: (principal, to, body) => parts.messages.send(principal, { to, body }),
    messaging: parts.messages,
    moveTask: (id, column, principal) => moveBoardTask(ctx, parts.mirror, id, column, principal),
    computer,
    managers: managerPorts(ctx, parts),
  };
}

/**
 * Starts the API server on `ctx.config.http` and makes the local operator's sign-in link (a
 * 12-hour operator token named `local-operator`, replaced at each start).
 * @throws {WarrenError} `WARREN_HTTP_BUSY` naming the address when it is taken; what `listen`
 *   throws otherwise.
 */
export async function serveApi(ctx: SupervisorContext, parts: SupervisorParts, options: ServeApiOptions): Promise<ServedApi> {
  const address = ctx.config.http;
  if (address === undefined) throw new RangeError('the HTTP API is off (--http off)');
  const tokens = openTokenStore(ctx.db);
  const ports = httpPorts(ctx, parts, tokens, options.startedMs);
  const computer = createAgentComputer({
    runtime: ctx.runtime,
    accounts: ctx.accounts,
    templates: ctx.templates,
    authorizer: ctx.authorizer,
    emit: (event) => ctx.emit(event),
    isRunning: (name) => parts.agents.handles.has(name),
    stateDir: ctx.config.stateDir,
    killGraceMs: ctx.config.killGraceMs,
    logger: ctx.log.child({ component: 'computer' }),
  });
  const mcp: McpHttpHandler = createMcpHttpHandler(mcpPorts(ctx, parts, ports, computer), { logger: ctx.log.child({ component: 'mcp' }) });
  let server: HttpServer;
  try {
    server = await startHttpServer(ports, {
      host: address.host,
      port: address.port,
      ...(options.staticDir ? { staticDir: options.staticDir } : {}),
      mcp,
      logger: ctx.log.child({ component: 'http' }),
    });
  } catch (error) {
    await mcp.close();
    await computer.close();
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new WarrenError('WARREN_HTTP_BUSY', `${address.host}:${address.port} is in use (another warren up?); serve elsewhere with --http <host:port>, or --http off`);
    }
    throw error;
  }
  const nowMs = Date.now();
  const link = createSignInLink(tokens, server.url, { nowMs, ttlMs: SIGN_IN_TTL_MS });
  // Where local tools (`warren mcp`) find the API of the supervisor running on this state directory.
  const addressFile = join(ctx.config.stateDir, HTTP_ADDRESS_FILE);
  writeFileSync(addressFile, `${JSON.stringify({ url: server.url, pid: process.pid })}\n`, { mode: 0o600 });
  let closing: Promise<void> | undefined;
  return {
    server,
    tokens,
    signIn: { url: link.url, expiresMs: link.expiresMs },
    // MCP first (it ends the open listen streams), then the sockets, then the computers' sandboxes.
    close: () =>
      (closing ??= mcp
        .close()
        .then(() => server.close())
        .then(() => computer.close())
        .finally(() => {
          rmSync(addressFile, { force: true });
        })),
  };
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, type AuthInfo } from '@modelcontextprotocol/server';
import type { Logger } from '@warren/core';
import type { McpCaller, McpPorts } from './ports.js';
import { authorizeCall, createMcpServer, MCP_FORBIDDEN, type McpServerOptions } from './server.js';

/** Options of {@link createMcpHttpHandler}. */
export interface McpHttpHandlerOptions extends McpServerOptions {
  /** The largest request body the handler reads itself, in bytes. Default 1 MiB. */
  readonly maxRequestBodyBytes?: number;
  /** Where failures of the SDK's serving go. Default none. */
  readonly logger?: Logger;
}

/**
 * Warren's MCP endpoint over Streamable HTTP, for a host that has already identified the caller
 * (@warren/http mounts it at `/mcp` behind its Host/Origin check, rate limit, token or session and
 * `api:/mcp` decision).
 */
export interface McpHttpHandler {
  /**
   * Serves one request (POST, GET or DELETE) for `caller`: a fresh per-caller server
   * ({@link createMcpServer}) answers it. Clients of the 2026-07-28 protocol are served per request,
   * clients of the 2025 protocol by the SDK's stateless fallback (GET and DELETE answer 405 to them).
   * `parsedBody` is the JSON body a framework already parsed (undefined: read from `request`).
   * A `tools/call` of a tool the caller does not see is decided and audited anyway, and refused with
   * JSON-RPC error {@link MCP_FORBIDDEN} naming the rule.
   */
  handle(request: IncomingMessage, response: ServerResponse, parsedBody: unknown, caller: McpCaller): Promise<void>;
  /** Unsubscribes from Warren's events and ends open subscription streams. Idempotent. */
  close(): Promise<void>;
}

/** The resource URIs an event of Warren's catalogue changes: `task.*` the task and the board, `agent.*` the agent. */
export function urisOfEvent(event: { readonly kind: string; readonly object: string }): string[] {
  const [type, ...rest] = event.object.split(':');
  const id = rest.join(':');
  if (event.kind.startsWith('task.') && type === 'task' && id !== '') return [`warren://tasks/${id}`, 'warren://board'];
  if (event.kind.startsWith('agent.') && type === 'agent' && id !== '') return [`warren://agents/${id}`];
  return [];
}

/** Agent events after which the list of agents is different. */
const AGENT_LIST_EVENTS = new Set(['agent.delete', 'agent.start', 'agent.exit']);
/** Task events after which the list of tasks is different: a card made through the API or MCP, a card deleted. */
const TASK_LIST_EVENTS = new Set(['task.create', 'task.card_deleted']);

/**
 * Builds the MCP endpoint over `ports`. It subscribes to Warren's committed events
 * (`ports.subscribe`) and publishes `notifications/resources/updated` for the resources each
 * changes, `notifications/resources/list_changed` when tasks or agents come or go.
 */
export function createMcpHttpHandler(ports: McpPorts, options: McpHttpHandlerOptions = {}): McpHttpHandler {
  const maxBody = options.maxRequestBodyBytes ?? 1_048_576;
  const handler = createMcpHandler(
    (ctx) => {
      const caller = (ctx.authInfo?.extra as { caller?: McpCaller } | undefined)?.caller;
      if (!caller) throw new Error('no caller: the MCP endpoint is served only behind authentication');
      return createMcpServer(ports, caller, options);
    },
    {
      legacy: 'stateless',
      maxRequestBodySize: maxBody,
      onerror: (error) => options.logger?.debug({ err: error }, 'mcp request failed'),
    },
  );
  const node = toNodeHandler(handler, { onerror: (error) => options.logger?.warn({ err: error }, 'mcp request failed') });
  const unsubscribe = ports.subscribe((event) => {
    for (const uri of urisOfEvent(event)) handler.notify.resourceUpdated(uri);
    if (TASK_LIST_EVENTS.has(event.kind) || AGENT_LIST_EVENTS.has(event.kind)) handler.notify.resourcesChanged();
  });
  let closed = false;

  return {
    async handle(request, response, parsedBody, caller) {
      const call = deniedCall(parsedBody, (tool) => ports.mayCall(caller.principal, tool));
      if (call) {
        try {
          authorizeCall(ports, caller, call.tool, call.args);
        } catch (error) {
          const e = error as { code?: number; message: string; data?: unknown };
          response.writeHead(200, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ jsonrpc: '2.0', id: call.id, error: { code: e.code ?? MCP_FORBIDDEN, message: e.message, data: e.data } }));
          return;
        }
        // Allowed now though not listed (the policy changed): the server answers it.
      }
      const auth: AuthInfo = { token: '', clientId: caller.principal, scopes: [caller.role], extra: { caller } };
      (request as IncomingMessage & { auth?: AuthInfo }).auth = auth;
      await node(request, response, parsedBody);
    },
    async close() {
      if (closed) return;
      closed = true;
      unsubscribe();
      await handler.close();
    },
  };
}

/** The `tools/call` in `body` (a single JSON-RPC request) of a tool `visible` refuses, if any. */
function deniedCall(body: unknown, visible: (tool: string) => boolean): { id: unknown; tool: string; args: unknown } | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const message = body as { method?: unknown; id?: unknown; params?: { name?: unknown; arguments?: unknown } };
  if (message.method !== 'tools/call' || typeof message.params?.name !== 'string') return undefined;
  if (visible(message.params.name)) return undefined;
  return { id: message.id ?? null, tool: message.params.name, args: message.params.arguments ?? {} };
}

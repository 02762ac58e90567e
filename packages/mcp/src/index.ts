/**
 * @warren/mcp: Warren's Model Context Protocol server (the official TypeScript SDK, v2 line). Any
 * MCP client lists and describes agents, tasks, the board, templates and the audit trail, puts work
 * on the board and drives agents through the durable command queue, and uses an agent's sandboxed
 * computer, each call decided and audited by the policy as `(principal, mcp:<tool>, call)`.
 *
 * ```ts
 * import { createMcpHttpHandler } from '@warren/mcp';
 * const mcp = createMcpHttpHandler(ports);                  // McpPorts, implemented by the supervisor
 * const app = await createHttpApp(httpPorts, { mcp });       // POST/GET/DELETE /mcp behind the API's checks
 * await mcp.close();
 * ```
 */
export { createMcpServer, authorizeCall, argsDigest, MCP_FORBIDDEN, MCP_TOOLS, READ_TOOLS, OPERATE_TOOLS, COMPUTER_TOOLS } from './server.js';
export type { McpServerOptions } from './server.js';
export { createMcpHttpHandler, urisOfEvent } from './http.js';
export type { McpHttpHandler, McpHttpHandlerOptions } from './http.js';
export type { AgentComputer, ManagerPorts, McpAuthorizer, McpCaller, McpPorts, SubtaskView } from './ports.js';
export type { ToolRegistrar } from './manager-tools.js';
export { bridgeStdioToHttp } from './bridge.js';
export type { StdioBridge, StdioBridgeOptions } from './bridge.js';

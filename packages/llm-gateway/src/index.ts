/**
 * @warren/llm-gateway: the host side of agents' LLM calls. Each agent gets an HTTP server on its
 * own Unix socket (`<socketDir>/llm.sock`, `/run/warren/llm.sock` inside its sandbox), its only
 * egress: `/p/<provider>/<rest>` goes to the provider with the provider's key (the agent never holds
 * one), within the agent's allow-list and budgets, retried with backoff, its usage recorded in the
 * `UsageLedger`; `/mcp` goes to the supervisor's MCP endpoint with the agent's own token.
 *
 * ```ts
 * import { LlmGateway } from '@warren/llm-gateway';
 * import { UsageLedger } from '@warren/registry';
 * const gateway = LlmGateway.create({
 *   providers: [{ name: 'anthropic', baseUrl: 'https://api.anthropic.com', wireApi: 'anthropic-messages',
 *                 apiKey, prices: { 'claude-sonnet-4-5': { input: 3, output: 15 } } }],
 *   ledger: new UsageLedger(db), reports: { call: (row) => …, refused: (refusal) => … },
 *   mcpUrl: 'http://127.0.0.1:7070/mcp', logger,
 * });
 * const socket = await gateway.serve(
 *   { agent: 'coder-1', template: 'coder', providers: ['anthropic'], budgets: { template: { taskTokens: 200_000 }, agent: {} },
 *     currentTask: () => ({ taskId: 'fix-login', attempt: 1, deadlineMs: Date.now() + 600_000 }), mcpToken },
 *   '/var/lib/warren/run/coder-1/llm.sock', { owner: { uid: 10001, gid: 10001 } });
 * // inside the sandbox: ANTHROPIC_BASE_URL=http://127.0.0.1:4141/p/anthropic, piped to that socket
 * await socket.close();
 * await gateway.close();
 * ```
 */
export { LlmGateway, RefusalReason, DEFAULT_BODY_LIMIT_BYTES, LLM_SOCKET_NAME } from './gateway.js';
export { prepareBody } from './answers.js';
export type {
  AgentLlmAccess,
  CurrentTask,
  GatewayReports,
  LlmGatewayOptions,
  LlmRefusal,
  LlmUnavailable,
  ServedSocket,
  ServeOptions,
} from './gateway.js';
export { llmChannelService } from './channel.js';
export type { LlmChannelService } from './channel.js';
export { WireApi, WIRE_APIS, indexProviders, upstreamUrl, costUsd } from './providers.js';
export type { LlmProvider, ModelPrice } from './providers.js';
export { checkBudgets, utcDayStartMs } from './budgets.js';
export type { BudgetBreach, BudgetSubject, LlmBudget } from './budgets.js';
export { DEFAULT_RETRY, RETRYABLE_STATUSES, backoffDelayMs, retryAfterMs } from './retry.js';
export type { RetryOptions } from './retry.js';
export { UsageMeter } from './usage-meter.js';
export type { MeteredUsage } from './usage-meter.js';
export { ANTHROPIC_VERSION, providerRequestHeaders, mcpRequestHeaders, agentResponseHeaders } from './headers.js';
export { wireErrorBody } from './wire.js';
export type { GatewayErrorType } from './wire.js';
export { LlmGatewayError } from './errors.js';

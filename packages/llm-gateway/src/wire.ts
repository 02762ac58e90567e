import type { WireApi } from './providers.js';

/**
 * The `type` of the errors the gateway itself answers with, in the wire's error object:
 * - `budget_exceeded`: a token or cost budget of the task or the day is used up (429);
 * - `provider_not_allowed`: the provider is not configured or not in the agent's allow-list (403);
 * - `upstream_unavailable`: the provider kept failing (429/5xx, no connection, no headers) until
 *   the task's deadline (the provider's last status, or 502/504 when it gave none);
 * - `request_too_large`: the request body is over the gateway's limit (413);
 * - `invalid_request_error`: a path that would leave the provider's base URL (400).
 */
export type GatewayErrorType =
  | 'budget_exceeded'
  | 'provider_not_allowed'
  | 'upstream_unavailable'
  | 'request_too_large'
  | 'invalid_request_error';

/**
 * The JSON error body an SDK of `wire` understands (the vendors' documented error shapes):
 * OpenAI `{ error: { message, type, param: null, code } }`, Anthropic
 * `{ type: 'error', error: { type, message } }`.
 */
export function wireErrorBody(wire: WireApi, type: GatewayErrorType, message: string): string {
  if (wire === 'anthropic-messages') return JSON.stringify({ type: 'error', error: { type, message } });
  return JSON.stringify({ error: { message, type, param: null, code: type } });
}

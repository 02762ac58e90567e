import { WarrenError } from '@warren/core';

/**
 * An error of the LLM gateway's own configuration or lifecycle. `code` says which:
 * - `WARREN_LLM_PROVIDER`: a provider's definition is invalid (the message names the provider and field);
 * - `WARREN_LLM_CONFIG`: another option is invalid (the message names it);
 * - `WARREN_LLM_SOCKET`: the Unix socket cannot be served (`cause` holds the system error).
 * Errors an agent's request meets never throw: they become HTTP answers in the provider's wire
 * format (see `wire.ts`).
 */
export class LlmGatewayError extends WarrenError {}

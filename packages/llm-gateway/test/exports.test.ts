import { expect, test } from 'vitest';
import * as gateway from '@warren/llm-gateway';

test('the public surface is the names index.ts lists', () => {
  expect(Object.keys(gateway).sort()).toEqual([
    'ANTHROPIC_VERSION',
    'DEFAULT_BODY_LIMIT_BYTES',
    'DEFAULT_RETRY',
    'LLM_SOCKET_NAME',
    'LlmGateway',
    'LlmGatewayError',
    'RETRYABLE_STATUSES',
    'RefusalReason',
    'UsageMeter',
    'WIRE_APIS',
    'WireApi',
    'agentResponseHeaders',
    'backoffDelayMs',
    'checkBudgets',
    'costUsd',
    'indexProviders',
    'llmChannelService',
    'mcpRequestHeaders',
    'prepareBody',
    'providerRequestHeaders',
    'retryAfterMs',
    'upstreamUrl',
    'utcDayStartMs',
    'wireErrorBody',
  ]);
});

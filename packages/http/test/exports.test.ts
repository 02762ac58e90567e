import { expect, test } from 'vitest';
import * as http from '@warren/http';

test('the public surface is the names index.ts lists', () => {
  expect(Object.keys(http).sort()).toEqual([
    'AGENT_TOKEN_ROLE',
    'HttpError',
    'MAX_SESSION_MS',
    'MCP_RESOURCE_METADATA_PATH',
    'SESSION_COOKIE',
    'TOKEN_FORMAT',
    'TOKEN_NAME',
    'TokenRole',
    'TokenStore',
    'allowHost',
    'closeEventStreams',
    'createHttpApp',
    'createSignInLink',
    'eventOfRow',
    'isTokenRole',
    'kindFilter',
    'openTokenStore',
    'parseListenAddress',
    'readLogRange',
    'routesOf',
    'startHttpServer',
  ]);
});

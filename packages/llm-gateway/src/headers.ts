import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { WireApi } from './providers.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the transport sets itself. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  'expect',
  'http2-settings',
]);

/** Credentials an agent might send: never forwarded, whatever their value. */
const CREDENTIALS = new Set(['authorization', 'x-api-key', 'api-key', 'cookie']);

/** The `anthropic-version` sent when the agent gave none (Anthropic's API versioning page). */
export const ANTHROPIC_VERSION = '2023-06-01';

/** Names listed in a `connection` header: hop-by-hop for this message only. */
function connectionTokens(headers: IncomingHttpHeaders): Set<string> {
  const value = headers.connection;
  const list = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(
    list
      .split(',')
      .map((token) => token.trim().toLowerCase())
      .filter(Boolean),
  );
}

/**
 * The headers of a request forwarded to `provider`: the agent's, less hop-by-hop headers, every
 * credential (`authorization`, `x-api-key`, `api-key`, `cookie`) and `accept-encoding` (answers are
 * asked uncompressed, so usage can be read from them), plus the provider's key:
 * `authorization: Bearer <key>` on the OpenAI wires, `x-api-key: <key>` and `anthropic-version`
 * (when absent) on Anthropic's.
 */
export function providerRequestHeaders(agentHeaders: IncomingHttpHeaders, wireApi: WireApi, apiKey: string): Record<string, string | string[]> {
  const headers = passThrough(agentHeaders, (name) => !CREDENTIALS.has(name) && name !== 'accept-encoding');
  headers['accept-encoding'] = 'identity';
  if (wireApi === 'anthropic-messages') {
    headers['x-api-key'] = apiKey;
    headers['anthropic-version'] ??= ANTHROPIC_VERSION;
  } else {
    headers.authorization = `Bearer ${apiKey}`;
  }
  return headers;
}

/**
 * The headers of a request relayed to the supervisor's MCP endpoint: only `accept`,
 * `content-type`, `last-event-id` and `mcp-*` of the agent's, plus `authorization: Bearer <token>`.
 */
export function mcpRequestHeaders(agentHeaders: IncomingHttpHeaders, token: string): Record<string, string | string[]> {
  const headers = passThrough(
    agentHeaders,
    (name) => name === 'accept' || name === 'content-type' || name === 'last-event-id' || name.startsWith('mcp-'),
  );
  headers.authorization = `Bearer ${token}`;
  return headers;
}

/**
 * The headers of an answer passed back to the agent: the upstream's, less hop-by-hop headers,
 * `content-length` (the answer is re-framed) and `set-cookie`.
 */
export function agentResponseHeaders(upstream: IncomingHttpHeaders): OutgoingHttpHeaders {
  return passThrough(upstream, (name) => name !== 'set-cookie');
}

function passThrough(source: IncomingHttpHeaders, keep: (name: string) => boolean): Record<string, string | string[]> {
  const hop = connectionTokens(source);
  const out: Record<string, string | string[]> = {};
  for (const [rawName, value] of Object.entries(source)) {
    const name = rawName.toLowerCase();
    if (value === undefined || HOP_BY_HOP.has(name) || hop.has(name) || !keep(name)) continue;
    out[name] = value;
  }
  return out;
}

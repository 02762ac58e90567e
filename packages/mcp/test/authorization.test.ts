import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { describe, expect, it, onTestFinished } from 'vitest';
import { argsDigest, COMPUTER_TOOLS, MCP_FORBIDDEN, OPERATE_TOOLS, READ_TOOLS } from '@warren/mcp';
import { mcpTestServer, type McpTestServer } from './support.js';

const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

async function viewerClient(t: McpTestServer, era: 'legacy' | '2026-07-28'): Promise<Client> {
  const client = new Client({ name: 'warren-test', version: '1.0.0' }, era === 'legacy' ? {} : { versionNegotiation: { mode: { pin: era } } });
  await client.connect(new StreamableHTTPClientTransport(t.url, { requestInit: { headers: { authorization: `Bearer ${t.viewerToken}` } } }));
  onTestFinished(() => client.close());
  return client;
}

/** The `policy.decide` rows of MCP tool calls, oldest first. */
function toolRows(t: McpTestServer): { actor: string; object: string; decision: string | null; details: Record<string, unknown> }[] {
  return t.ports.registry
    .auditPage({ filter: { action: 'policy.decide' }, limit: 1000 })
    .rows.filter((r) => r.object.startsWith('mcp:'))
    .map((r) => ({ actor: r.actor, object: r.object, decision: r.decision, details: r.details as Record<string, unknown> }));
}

describe('authorization of /mcp', () => {
  it('answers 401 with WWW-Authenticate naming the protected-resource metadata, which is served (RFC 9728)', async () => {
    const t = await mcpTestServer();
    const response = await fetch(t.url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) });
    expect(response.status).toBe(401);
    const challenge = response.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp"$/);
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge)![1]!;
    for (const url of [metadataUrl, new URL('/.well-known/oauth-protected-resource', t.url).href]) {
      const metadata = await fetch(url);
      expect(metadata.status).toBe(200);
      expect(await metadata.json()).toMatchObject({ resource: t.url.href, bearer_methods_supported: ['header'] });
    }
    const bad = await fetch(t.url, { method: 'POST', headers: { ...MCP_HEADERS, authorization: 'Bearer wrn_nope' }, body: JSON.stringify(INIT) });
    expect(bad.status).toBe(401);
  });

  it('identifies the caller by the session cookie as well as by a bearer token', async () => {
    const t = await mcpTestServer();
    const signIn = await fetch(new URL('/api/v1/session', t.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: t.viewerToken }) });
    expect(signIn.status).toBe(204);
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0]!;
    const response = await fetch(t.url, { method: 'POST', headers: { ...MCP_HEADERS, cookie }, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }) });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain('list_agents');
    expect(text).not.toContain('run_command');
  });

  it('answers 403 to a foreign Origin and a foreign Host', async () => {
    const t = await mcpTestServer();
    const auth = { authorization: `Bearer ${t.operatorToken}` };
    const origin = await fetch(t.url, { method: 'POST', headers: { ...MCP_HEADERS, ...auth, origin: 'https://evil.example' }, body: JSON.stringify(INIT) });
    expect(origin.status).toBe(403);
    const { request } = await import('node:http');
    const status = await new Promise<number>((done, fail) => {
      const req = request(t.url, { method: 'POST', headers: { ...MCP_HEADERS, ...auth, host: 'evil.example' } }, (res) => {
        res.resume();
        done(res.statusCode ?? 0);
      });
      req.on('error', fail);
      req.end(JSON.stringify(INIT));
    });
    expect(status).toBe(403);
  });

  it.each(['legacy', '2026-07-28'] as const)('a viewer (%s protocol) sees only the read tools, is refused an operate or computer tool called anyway, and each call is one audit row', async (era) => {
    const t = await mcpTestServer();
    const client = await viewerClient(t, era);
    const { tools } = await client.listTools();
    expect(tools.map((x) => x.name).sort()).toEqual([...READ_TOOLS].sort());

    const before = toolRows(t).length;
    await client.callTool({ name: 'list_agents', arguments: { state: 'running' } });
    for (const name of [...OPERATE_TOOLS, ...COMPUTER_TOOLS]) {
      const args = name === 'create_task' ? { title: 'x' } : { agent: 'shell-1', name: 'shell-1', id: 'x', command: 'true', path: 'a', content: '' };
      const error = await client.callTool({ name, arguments: args }).then(
        () => undefined,
        (e: unknown) => e as { code: number; message: string },
      );
      expect(error, name).toBeDefined();
      expect(error!.code, name).toBe(MCP_FORBIDDEN);
      expect(error!.message, name).toContain(`policy denies user:vera calling tool '${name}'`);
    }
    const rows = toolRows(t).slice(before);
    expect(rows).toHaveLength(1 + OPERATE_TOOLS.length + COMPUTER_TOOLS.length);
    expect(rows[0]).toMatchObject({ actor: 'user:vera', object: 'mcp:list_agents', decision: 'allow', details: { tool: 'list_agents', argsSha256: argsDigest({ state: 'running' }) } });
    for (const row of rows.slice(1)) {
      expect(row.decision).toBe('deny');
      expect(row.details['tool']).toBe(row.object.slice('mcp:'.length));
      expect(row.details['argsSha256']).toMatch(/^[0-9a-f]{64}$/);
    }
    // Nothing was queued or run.
    expect(t.sent).toEqual([]);
  });

  it('an operator call is one allow row with the digest of its arguments, whatever their key order', async () => {
    const t = await mcpTestServer();
    expect(argsDigest({ a: 1, b: [{ y: 2, x: 1 }] })).toBe(argsDigest({ b: [{ x: 1, y: 2 }], a: 1 }));
    const client = new Client({ name: 'warren-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(t.url, { requestInit: { headers: { authorization: `Bearer ${t.operatorToken}` } } }));
    onTestFinished(() => client.close());
    const before = toolRows(t).length;
    await client.callTool({ name: 'send_message', arguments: { to: 'shell-1', body: 'hi' } });
    const rows = toolRows(t).slice(before);
    expect(rows).toEqual([{ actor: 'user:olga', object: 'mcp:send_message', decision: 'allow', details: expect.objectContaining({ tool: 'send_message', argsSha256: argsDigest({ to: 'shell-1', body: 'hi' }) }) }]);
  });
});

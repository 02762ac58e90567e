import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { expect, onTestFinished, test } from 'vitest';
import { mcpTestServer } from '../../mcp/test/support.js';
import { startGateway } from './support.js';

test("the MCP SDK client reaches Warren's real /mcp through the gateway, as the principal of the token the gateway adds", async () => {
  const mcp = await mcpTestServer();
  const gw = await startGateway({ gateway: { mcpUrl: mcp.url.href }, access: { mcpToken: mcp.viewerToken } });
  const client = new Client({ name: 'agent-inside-sandbox', version: '1.0.0' });
  // No credentials of its own: the agent's client only knows the gateway's address.
  const transport = new StreamableHTTPClientTransport(new URL('http://localhost/mcp'), { fetch: gw.fetch as never });
  await client.connect(transport);
  onTestFinished(() => client.close());
  const { tools } = await client.listTools();
  expect(tools.map((tool) => tool.name)).toContain('list_agents');
  expect(tools.map((tool) => tool.name)).not.toContain('stop_agent'); // a viewer's list
  const result = await client.callTool({ name: 'list_agents', arguments: {} });
  expect(result.isError ?? false).toBe(false);
  expect(JSON.stringify(result.structuredContent)).toContain('shell-1');
  const audit = mcp.ports.registry.auditPage({ filter: { object: 'mcp:list_agents' }, limit: 10 });
  expect(audit.rows.map((row) => row.actor)).toContain('user:vera');
  expect(gw.calls).toEqual([]);
});

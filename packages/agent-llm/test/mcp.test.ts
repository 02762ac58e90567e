import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startFakeLlm, type FakeLlm, type StartFakeLlmOptions } from '@warren/testing';
import { READ_TOOLS } from '@warren/mcp';
import { mcpTestServer } from '../../mcp/test/support.js';
import { agentHome, buildBundle, runTask, toolNamesOf, type BuiltBundle } from './support.js';

let bundle: BuiltBundle;
beforeAll(async () => {
  bundle = await buildBundle();
});
afterAll(() => bundle?.close());

async function fakeLlm(options: StartFakeLlmOptions): Promise<FakeLlm> {
  const fake = await startFakeLlm(options);
  onTestFinished(() => fake.close());
  return fake;
}

interface TokenProxy {
  /** `http://127.0.0.1:<port>/mcp` */
  readonly url: string;
  /** Requests forwarded so far. */
  readonly forwarded: { method: string; authorization: string | undefined }[];
}

/**
 * What the gateway's `/mcp` route does for the agent: forwards to the supervisor's MCP endpoint with
 * the bearer token added (the agent holds none), streaming the answer back. Closed after the test.
 */
async function tokenProxy(target: URL, token: string): Promise<TokenProxy> {
  const forwarded: TokenProxy['forwarded'] = [];
  const server: Server = createServer((req, res) => {
    forwarded.push({ method: req.method ?? '', authorization: req.headers.authorization });
    const headers: IncomingHttpHeaders = { ...req.headers, host: target.host, authorization: `Bearer ${token}` };
    const upstream = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  onTestFinished(
    () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, forwarded };
}

const chatRequests = (fake: FakeLlm) => fake.requests.filter((r) => r.path === '/v1/chat/completions');

describe("Warren's MCP tools in the loop", () => {
  it('lists the tools the policy allows the caller, prefixed warren_, and calls them over Streamable HTTP', async () => {
    const t = await mcpTestServer();
    const proxy = await tokenProxy(t.url, t.viewerToken);
    const fake = await fakeLlm({
      script: [
        {
          toolCalls: [
            { id: 'c1', name: 'warren_list_agents', arguments: { capability: 'shell' } },
            { id: 'c2', name: 'warren_describe_task', arguments: { id: 'nope' } },
          ],
        },
        { text: 'shell-1 is the shell agent; there is no task nope.' },
      ],
    });
    const agent = await agentHome();
    const run = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1`, env: { WARREN_MCP_URL: proxy.url } });
    expect(run.exitCode, run.stderr).toBe(0);

    const names = toolNamesOf(chatRequests(fake)[0]!.body);
    // A viewer may call the reads and nothing else (the shipped policy).
    expect(names).toEqual(['run_command', 'read_file', 'write_file', 'list_directory', ...READ_TOOLS.map((n) => `warren_${n}`)]);
    expect(names).not.toContain('warren_stop_agent');
    const results = run.events.filter((e) => e.kind === 'tool_result');
    expect(results).toHaveLength(2);
    expect(results[0]).toMatchObject({ id: 'c1', isError: false });
    expect(results[0]?.kind === 'tool_result' ? results[0].output : '').toContain('"shell-1"');
    expect(results[1]).toMatchObject({ id: 'c2', isError: true });
    expect(results[1]?.kind === 'tool_result' ? results[1].output : '').toContain("no task 'nope'");
    // The agent sent no credential of its own; the proxy (the gateway) added it.
    expect(proxy.forwarded.length).toBeGreaterThan(0);
    expect(proxy.forwarded.every((f) => f.authorization === undefined)).toBe(true);
  });

  it('declares no MCP tool and makes no MCP request when WARREN_MCP_URL is unset', async () => {
    const t = await mcpTestServer();
    const proxy = await tokenProxy(t.url, t.viewerToken);
    const fake = await fakeLlm({ script: [{ text: 'Done.' }] });
    const agent = await agentHome();
    const run = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1` });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(toolNamesOf(chatRequests(fake)[0]!.body)).toEqual(['run_command', 'read_file', 'write_file', 'list_directory']);
    expect(proxy.forwarded).toEqual([]);
  });

  it('goes on without MCP tools, saying why in a raw event, when the MCP endpoint refuses the session', async () => {
    const t = await mcpTestServer();
    const proxy = await tokenProxy(t.url, 'wrn_not-a-live-token');
    const fake = await fakeLlm({ script: [{ text: 'Done without MCP.' }] });
    const agent = await agentHome();
    const run = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1`, env: { WARREN_MCP_URL: proxy.url } });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.events.find((e) => e.kind === 'raw')).toMatchObject({ kind: 'raw', source: 'agent-llm', line: { notice: 'MCP tools unavailable, going on without them', url: proxy.url } });
    expect(toolNamesOf(chatRequests(fake)[0]!.body)).toEqual(['run_command', 'read_file', 'write_file', 'list_directory']);
    expect(run.events.at(-1)).toEqual({ kind: 'final', text: 'Done without MCP.', isError: false });
  });
});

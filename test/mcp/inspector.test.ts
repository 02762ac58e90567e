/**
 * The MCP Inspector CLI (v2, under the Node 22 that scripts/node22.sh installs) as a client: first
 * against a minimal server made here with the MCP SDK over stdio and over Streamable HTTP with a
 * bearer token, in both protocol eras, which proves the harness (a listing, a call with structured
 * content, a refused token, an unknown tool, a run past its deadline); then against a real
 * `warren up` (real nats-server, bubblewrap agents, SQLite) over `/mcp` with its printed sign-in
 * token, and against `warren mcp` over stdio.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer, type McpHttpHandler } from '@modelcontextprotocol/server';
import * as z from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanUpAfterEach, cli, makeTestLayout, repo, requireMachine, shellTask, startWarren, waitFor, warren, type CliProcess } from '../support/cli.js';
import { inspect, requireInspector, runInspector, type HttpTarget, type StdioTarget } from '../support/inspector.js';

beforeAll(() => requireInspector());

/** The tool listing as the Inspector prints it. */
interface ToolList {
  tools: { name: string; annotations?: { readOnlyHint?: boolean }; inputSchema: { properties?: Record<string, unknown> }; outputSchema?: unknown }[];
}

/** A tool call's result as the Inspector prints it. */
interface ToolResult {
  content: { type: string; text?: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

/**
 * The minimal server, as module source so the stdio case can run it in a child Node: one read-only
 * tool, `echo`, that answers its text back as text and as structured content.
 */
const serverModule = `
import { McpServer } from '@modelcontextprotocol/server';
import * as z from 'zod';
export function makeServer() {
  const server = new McpServer({ name: 'inspector-probe', version: '1.0.0' });
  server.registerTool(
    'echo',
    {
      description: 'Answers the text it is given.',
      inputSchema: z.object({ text: z.string() }),
      outputSchema: z.object({ text: z.string(), length: z.number() }),
      annotations: { readOnlyHint: true },
    },
    async ({ text }) => ({
      content: [{ type: 'text', text }],
      structuredContent: { text, length: text.length },
    }),
  );
  return server;
}
`;

/** The same server built in this process, for the HTTP case. */
function makeServer(): McpServer {
  const server = new McpServer({ name: 'inspector-probe', version: '1.0.0' });
  server.registerTool(
    'echo',
    {
      description: 'Answers the text it is given.',
      inputSchema: z.object({ text: z.string() }),
      outputSchema: z.object({ text: z.string(), length: z.number() }),
      annotations: { readOnlyHint: true },
    },
    ({ text }) => Promise.resolve({ content: [{ type: 'text' as const, text }], structuredContent: { text, length: text.length } }),
  );
  return server;
}

/** Whether process `pid` exists and is not a zombie (from /proc/<pid>/stat). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const stdioServer: StdioTarget = {
  transport: 'stdio',
  command: process.execPath,
  args: ['--input-type=module', '-e', `${serverModule}\nimport { serveStdio } from '@modelcontextprotocol/server/stdio';\nserveStdio(() => makeServer());\n`],
  cwd: repo,
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
};

/** The revision each era negotiates with SDK 2.4: the 2025 one over `initialize`, or 2026-07-28. */
const protocolVersions = { legacy: '2025-11-25', modern: '2026-07-28' } as const;

const token = 'probe-token-0123456789abcdef';
let http: HttpServer;
let handler: McpHttpHandler;
let httpServer: HttpTarget;

beforeAll(async () => {
  handler = createMcpHandler(() => makeServer());
  const serve = toNodeHandler(handler);
  http = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'application/json' }).end('{"error":"unauthorized"}');
      return;
    }
    serve(req, res).catch((error: unknown) => {
      res.destroy(error instanceof Error ? error : new Error(String(error)));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  httpServer = { transport: 'http', url: `http://127.0.0.1:${port}/mcp`, bearer: token };
});

afterAll(async () => {
  await handler?.close();
  http?.closeAllConnections();
  await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
});

describe('the MCP Inspector CLI against a minimal SDK server', () => {
  const cases = [
    ['stdio', () => stdioServer],
    ['Streamable HTTP with a bearer token', () => httpServer],
  ] as const;
  const eras = ['legacy', 'modern'] as const;

  for (const [transport, target] of cases) {
    for (const protocolEra of eras) {
      it(`lists the tools and calls one over ${transport}, ${protocolEra} era`, async () => {
        const opened = (await inspect(target(), { method: 'initialize', protocolEra })) as { protocolVersion: string; serverInfo: { name: string } };
        expect(opened.serverInfo.name).toBe('inspector-probe');
        expect(opened.protocolVersion).toBe(protocolVersions[protocolEra]);

        const listed = (await inspect(target(), { method: 'tools/list', protocolEra })) as ToolList;
        expect(listed.tools.map((tool) => tool.name)).toEqual(['echo']);
        expect(listed.tools[0]!.annotations?.readOnlyHint).toBe(true);
        expect(Object.keys(listed.tools[0]!.inputSchema.properties ?? {})).toEqual(['text']);
        expect(listed.tools[0]!.outputSchema).toBeDefined();

        const called = (await inspect(target(), { method: 'tools/call', toolName: 'echo', toolArgs: { text: '0042 the answer' }, protocolEra })) as ToolResult;
        expect(called.isError ?? false).toBe(false);
        expect(called.structuredContent).toEqual({ text: '0042 the answer', length: 15 });
        expect(called.content).toEqual([{ type: 'text', text: '0042 the answer' }]);
      });
    }
  }

  it('exits 5 with a tool error for an unknown tool, and the harness reports it', async () => {
    const run = await runInspector(stdioServer, { method: 'tools/call', toolName: 'no_such_tool', toolArgs: {} });
    expect(run.code).toBe(5);
    await expect(inspect(stdioServer, { method: 'tools/call', toolName: 'no_such_tool', toolArgs: {} })).rejects.toThrow(/exited with 5/);
  });

  it('kills the Inspector and the server it started when a run passes its deadline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-inspector-hang-'));
    try {
      const pidFile = join(dir, 'server.pid');
      // A stdio server that never answers the opening request.
      const silent: StdioTarget = {
        transport: 'stdio',
        command: process.execPath,
        args: ['-e', 'require("node:fs").writeFileSync(process.env.PID_FILE, String(process.pid)); setInterval(() => {}, 1000);'],
        env: { PID_FILE: pidFile },
      };
      await expect(inspect(silent, { method: 'tools/list', timeoutMs: 8_000 })).rejects.toThrow(/did not finish in 8000 ms/);
      const pid = Number(readFileSync(pidFile, 'utf8'));
      expect(pid).toBeGreaterThan(0);
      await waitFor(`the silent server (pid ${pid}) to be gone`, () => !alive(pid), 30_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits 3, authentication required, without the bearer token or with a wrong one', async () => {
    for (const target of [{ ...httpServer, bearer: undefined }, { ...httpServer, bearer: 'wrong' }]) {
      const run = await runInspector(target, { method: 'tools/list' });
      expect(run.code).toBe(3);
      expect(run.error?.code).toBe('auth_required');
    }
  });
});

/** The dashboard address and sign-in token `warren up` printed. */
async function signInOf(up: CliProcess): Promise<{ url: string; token: string }> {
  await waitFor('the sign-in link', () => /Sign in \(valid \d+ h\): \S+/.test(up.stderr()));
  const link = new URL(/Sign in \(valid \d+ h\): (\S+)/.exec(up.stderr())![1]!);
  return { url: link.origin, token: link.searchParams.get('token')! };
}

describe('the MCP Inspector CLI against warren', () => {
  const { layouts, running } = cleanUpAfterEach();

  it('lists the tools and calls list_agents over /mcp with the sign-in token and over warren mcp on stdio, both eras, each call audited', async () => {
    requireMachine();
    const made = makeTestLayout({ quick: shellTask('quick', 'echo done') }, { copyAgents: true });
    layouts.push(made);
    const up = startWarren(made.args('up', '--kill-grace', '1s', '--http', '127.0.0.1:0'));
    running.push(up);
    const { url, token } = await signInOf(up);
    await waitFor('the quick task to finish', () => /^status: done$/m.test(made.file('quick')), 120_000);
    const response = await fetch(`${url}/api/v1/agents`, { headers: { authorization: `Bearer ${token}` } });
    const { agents } = (await response.json()) as { agents: { name: string }[] };
    const names = agents.map((agent) => agent.name).sort();
    expect(names.length).toBeGreaterThan(0);

    const overHttp: HttpTarget = { transport: 'http', url: `${url}/mcp`, bearer: token };
    const overStdio: StdioTarget = {
      transport: 'stdio',
      command: process.execPath,
      args: [cli, ...made.args('mcp')],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', WARREN_LOG_FORMAT: 'json' },
      cwd: repo,
    };
    const targets = [
      ['Streamable HTTP, legacy era', overHttp, 'legacy'],
      ['Streamable HTTP, modern era', overHttp, 'modern'],
      ['warren mcp on stdio, legacy era', overStdio, 'legacy'],
      ['warren mcp on stdio, modern era', overStdio, 'modern'],
    ] as const;
    for (const [how, target, protocolEra] of targets) {
      const opened = (await inspect(target, { method: 'initialize', protocolEra })) as { protocolVersion: string };
      expect(opened.protocolVersion, how).toBe(protocolVersions[protocolEra]);
      const listed = (await inspect(target, { method: 'tools/list', protocolEra })) as ToolList;
      const tools = listed.tools.map((tool) => tool.name);
      expect(tools, how).toEqual(expect.arrayContaining(['list_agents', 'describe_agent', 'list_tasks', 'create_task', 'run_command']));
      expect(listed.tools.find((tool) => tool.name === 'list_agents')!.annotations?.readOnlyHint, how).toBe(true);
      const called = (await inspect(target, { method: 'tools/call', toolName: 'list_agents', toolArgs: {}, protocolEra })) as ToolResult;
      const listedAgents = (called.structuredContent as { agents: { name: string }[] }).agents;
      expect(listedAgents.map((agent) => agent.name).sort(), how).toEqual(names);
    }

    // Without a token the Inspector is told to authenticate.
    const refused = await runInspector({ ...overHttp, bearer: undefined }, { method: 'tools/list' });
    expect(refused.code).toBe(3);
    expect(refused.error?.code).toBe('auth_required');

    // One decision row per call, with the tool and the digest of its arguments.
    // Over HTTP the caller is the sign-in token's user; over stdio, warren mcp's own operator token.
    const rows = JSON.parse((await warren(['audit', '--json', '--action', 'policy.decide', '--object', 'mcp:list_agents', '--limit', '10000', ...made.args()])).stdout) as { actor: string; action: string; object: string; decision: string | null; details: Record<string, unknown> }[];
    const calls = rows.filter((row) => row.action === 'policy.decide' && row.object === 'mcp:list_agents');
    expect(calls).toHaveLength(targets.length);
    expect(new Set(calls.map((row) => row.actor))).toEqual(new Set(['user:local-operator', 'user:local-mcp']));
    for (const row of calls) expect(row).toMatchObject({ decision: 'allow', details: { tool: 'list_agents', argsSha256: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown } });
  });
});

/**
 * The MCP Inspector CLI (v2, under the Node 22 that scripts/node22.sh installs) as a client: first
 * against a minimal server made here with the MCP SDK over stdio and over Streamable HTTP with a
 * bearer token, in both protocol eras, which proves the harness (a listing, a call with structured
 * content, a refused token, an unknown tool).
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
import { repo, waitFor } from '../support/cli.js';
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
  /** The revision each era negotiates with this SDK: the 2025 one over `initialize`, or 2026-07-28. */
  const protocolVersions = { legacy: '2025-11-25', modern: '2026-07-28' } as const;

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

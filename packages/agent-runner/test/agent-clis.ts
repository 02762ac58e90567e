/**
 * Test support for the agent runtimes: the installed CLI binaries (scripts/agent-clis.sh), a
 * scripted coding task for the fake LLM server in each CLI's tool vocabulary, and a stand-in for
 * the gateway's LLM socket (`/p/<provider>/<rest>` → `<baseUrl>/<rest>`, nothing else).
 */
import { execFileSync } from 'node:child_process';
import { request as httpRequest, createServer, type Server } from 'node:http';
import { dirname, join } from 'node:path';
import type { FakeLlmRequest, FakeTurn } from '@warren/testing';
import { PACKAGE_DIR } from './gateway.js';

export const REPO_DIR = dirname(dirname(PACKAGE_DIR));
export const STREAMS_DIR = join(REPO_DIR, 'test', 'fixtures', 'agent-streams');

export type CliKind = 'claude-code' | 'codex' | 'opencode';
export const CLI_KINDS: readonly CliKind[] = ['claude-code', 'codex', 'opencode'];

/** The pinned version of each CLI (as scripts/agent-clis.sh installs it). */
export const CLI_VERSIONS: Readonly<Record<CliKind, string>> = { 'claude-code': '2.1.332', codex: '0.171.0', opencode: '1.18.33' };

/** The native binary of `kind` under tools/agent-clis. @throws naming the setup step when they are not installed. */
export function cliBinary(kind: CliKind): string {
  try {
    return execFileSync('bash', [join(REPO_DIR, 'scripts', 'agent-clis.sh'), 'path', kind], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (error) {
    throw new Error(`the agent CLIs are not installed (run: bash scripts/agent-clis.sh install): ${(error as Error).message}`, { cause: error });
  }
}

/** The provider each CLI talks to, and the fake server's base URL for it (what one gives the vendor SDK). */
export function providerOf(kind: CliKind): { provider: string; model: string } {
  switch (kind) {
    case 'claude-code':
      return { provider: 'anthropic', model: 'claude-sonnet-4-5' };
    case 'codex':
      return { provider: 'openai', model: 'gpt-5.2' };
    case 'opencode':
      return { provider: 'openai', model: 'qwen3-coder' };
  }
}

/** The answer of the scripted coding task. */
export const ANSWER = 'I wrote hello.txt (21 bytes) and counted its bytes with wc.';
/** The file the scripted task writes, and its content. */
export const HELLO = { name: 'hello.txt', content: 'hello from the agent\n' };

function hasTools(body: Record<string, unknown>): boolean {
  return Array.isArray(body.tools) && body.tools.length > 0;
}

/** Tool results in a request: Anthropic `tool_result` blocks, Responses `*_call_output` items, Chat `tool` messages. */
export function toolResultsIn(request: FakeLlmRequest): number {
  const body = (request.body ?? {}) as Record<string, unknown>;
  let n = 0;
  if (request.wire === 'anthropic-messages') {
    for (const message of (body.messages as { content?: unknown }[] | undefined) ?? []) {
      if (Array.isArray(message.content)) n += message.content.filter((c: { type?: string }) => c.type === 'tool_result').length;
    }
  } else if (request.wire === 'openai-responses') {
    n = ((Array.isArray(body.input) ? body.input : []) as { type?: string }[]).filter(
      (i) => i.type === 'function_call_output' || i.type === 'custom_tool_call_output',
    ).length;
  } else {
    n = ((body.messages as { role?: string }[] | undefined) ?? []).filter((m) => m.role === 'tool').length;
  }
  return n;
}

/**
 * The scripted coding task for `kind`, as a function of the request: a request without tools (a
 * title or summary request) gets a short text; otherwise, by how many tool results the
 * conversation holds since `resetAfter` results (a resumed conversation keeps earlier ones):
 * write hello.txt with the CLI's file tool, run `wc -c hello.txt` with its shell tool, answer.
 */
export function codingScript(kind: CliKind, workspaceOf: () => string): (request: FakeLlmRequest) => FakeTurn {
  return (request) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    if (!hasTools(body)) return { text: 'Scripted title', usage: { inputTokens: 20, outputTokens: 3 } };
    const done = toolResultsIn(request) % 3;
    const usage = { inputTokens: 120, outputTokens: 30 };
    const path = join(workspaceOf(), HELLO.name);
    const calls: Record<CliKind, [FakeTurn, FakeTurn]> = {
      'claude-code': [
        { toolCalls: [{ name: 'Write', arguments: { file_path: path, content: HELLO.content } }], usage },
        { toolCalls: [{ name: 'Bash', arguments: { command: 'wc -c hello.txt', description: 'Count the bytes of hello.txt' } }], usage },
      ],
      codex: [
        { toolCalls: [{ name: 'exec_command', arguments: { cmd: "printf 'hello from the agent\\n' > hello.txt", tty: false } }], usage },
        { toolCalls: [{ name: 'exec_command', arguments: { cmd: 'wc -c hello.txt', tty: false } }], usage },
      ],
      opencode: [
        { toolCalls: [{ name: 'write', arguments: { filePath: path, content: HELLO.content } }], usage },
        { toolCalls: [{ name: 'bash', arguments: { command: 'wc -c hello.txt', description: 'Count the bytes of hello.txt' } }], usage },
      ],
    };
    if (done < 2) return calls[kind][done]!;
    return { text: ANSWER, usage };
  };
}

/** A stand-in for the gateway's LLM socket; see the module docstring. */
export interface LlmSocketProxy {
  readonly socketPath: string;
  /** Paths asked for, in order (`/p/anthropic/v1/messages?beta=true`). */
  readonly paths: string[];
  close(): Promise<void>;
}

/** The names of the tools a model request offers (Anthropic and Responses `tools[].name`, Chat `tools[].function.name`). */
export function toolNamesIn(request: FakeLlmRequest): string[] {
  const tools = ((request.body ?? {}) as { tools?: unknown }).tools;
  if (!Array.isArray(tools)) return [];
  return tools.map((t: { name?: unknown; function?: { name?: unknown } }) => {
    const name = t.name ?? t.function?.name;
    return typeof name === 'string' ? name : '';
  });
}

/**
 * Serves `<dir>/llm.sock`: `/p/<provider>/<rest>` is forwarded to `<routes[provider]>/<rest>`, and
 * with `mcp`, `/mcp` to `mcp.url` with `authorization: Bearer <mcp.token>` added (as the gateway
 * adds the agent's token); anything else gets 403.
 */
export async function startLlmSocketProxy(dir: string, routes: Readonly<Record<string, string>>, mcp?: { url: string; token: string }): Promise<LlmSocketProxy> {
  const socketPath = join(dir, 'llm.sock');
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    paths.push(url);
    const headers = { ...req.headers };
    delete headers.host;
    const match = /^\/p\/([^/]+)(\/.*)?$/.exec(url);
    let target: string | undefined;
    if (match && routes[decodeURIComponent(match[1]!)]) target = `${routes[decodeURIComponent(match[1]!)]}${match[2] ?? ''}`;
    else if (mcp && (url === '/mcp' || url.startsWith('/mcp?'))) {
      target = mcp.url;
      headers.authorization = `Bearer ${mcp.token}`;
    }
    if (!target) {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { type: 'forbidden', message: `no route for ${url}` } }));
      return;
    }
    const upstream = httpRequest(target, { method: req.method, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    res.on('close', () => upstream.destroy());
    upstream.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { type: 'bad_gateway', message: error.message } }));
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  let closing: Promise<void> | undefined;
  return {
    socketPath,
    paths,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

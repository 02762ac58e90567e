/**
 * MCP test ports over the HTTP package's test ports (a real SQLite registry, the repository's
 * policy, an audit trail and an authorizer that decides and audits as the supervisor's), plus an
 * agent computer over a real home directory that runs real `/bin/sh` (the supervisor's runs it in the
 * agent's sandbox; its own tests cover that), and the real @warren/http app on a real port.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, lstatSync, writeFileSync, appendFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { onTestFinished } from 'vitest';
import { WarrenError } from '@warren/core';
import { startHttpServer, type HttpServer } from '@warren/http';
import { createMcpHttpHandler, type AgentComputer, type McpHttpHandler, type McpPorts } from '@warren/mcp';
import { agentItem, openTestPorts, type TestPorts } from '../../http/test/support.js';

export interface McpTestServer {
  readonly ports: TestPorts & McpPorts;
  readonly server: HttpServer;
  readonly mcp: McpHttpHandler;
  /** `http://127.0.0.1:<port>/mcp` */
  readonly url: URL;
  readonly viewerToken: string;
  readonly operatorToken: string;
  /** Messages `sendMessage` was given. */
  readonly sent: { principal: string; to: string; body: string }[];
}

/** A computer over `<dir>/homes/<agent>`, refusing paths that leave the home. */
function testComputer(dir: string): AgentComputer {
  const homeOf = (agent: string): string => {
    if (!/^[a-z][a-z0-9-]*$/.test(agent)) throw new WarrenError('WARREN_COMPUTER_AGENT', `no agent '${agent}'`);
    const home = join(dir, 'homes', agent);
    mkdirSync(home, { recursive: true });
    return home;
  };
  const inside = (home: string, path: string): string => {
    const full = resolve(home, path);
    const rel = relative(home, full);
    if (rel.startsWith('..')) throw new WarrenError('WARREN_COMPUTER_PATH', `path '${path}' leaves the home`);
    return full;
  };
  return {
    runCommand(agent, input) {
      const home = homeOf(agent);
      const started = Date.now();
      return new Promise((done) => {
        const child = execFile('/bin/sh', ['-c', input.command], { cwd: inside(home, input.cwd ?? '.'), timeout: input.timeoutMs ?? 30_000, maxBuffer: 1_048_576 }, (error, stdout, stderr) => {
          const e = error as (Error & { code?: number | string; signal?: string; killed?: boolean }) | null;
          done({ exitCode: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr, truncated: false, timedOut: e?.killed === true, durationMs: Date.now() - started });
        });
        // A command that exits without reading its input closes the pipe first: EPIPE is then no error.
        child.stdin?.on('error', () => undefined);
        child.stdin?.end(input.stdin ?? '');
      });
    },
    readFile(agent, input) {
      const full = inside(homeOf(agent), input.path);
      const content = readFileSync(full, 'utf8');
      return Promise.resolve({ path: input.path, content, encoding: 'utf8' as const, sizeBytes: Buffer.byteLength(content), truncated: false });
    },
    writeFile(agent, input) {
      const full = inside(homeOf(agent), input.path);
      const data = Buffer.from(input.content, input.encoding === 'base64' ? 'base64' : 'utf8');
      if (input.append === true) appendFileSync(full, data);
      else writeFileSync(full, data);
      return Promise.resolve({ path: input.path, sizeBytes: lstatSync(full).size });
    },
    listDirectory(agent, input) {
      const full = inside(homeOf(agent), input.path ?? '.');
      const entries = readdirSync(full).map((name) => {
        const s = lstatSync(join(full, name));
        return { name, type: s.isFile() ? ('file' as const) : s.isDirectory() ? ('directory' as const) : s.isSymbolicLink() ? ('symlink' as const) : ('other' as const), sizeBytes: s.size, modifiedMs: Math.floor(s.mtimeMs) };
      });
      return Promise.resolve({ path: input.path ?? '.', entries });
    },
  };
}

/** The real HTTP app with `/mcp` on 127.0.0.1, over fresh test ports; closed after the test. */
export async function mcpTestServer(): Promise<McpTestServer> {
  const base = await openTestPorts();
  const sent: { principal: string; to: string; body: string }[] = [];
  const policy = base.policy;
  const ports = Object.assign(base, {
    authorizer: {
      authorize({ principal, object, action, context }: { principal: string; object: string; action: string; context?: Readonly<Record<string, string | number | boolean | null>> }) {
        const explained = policy.explain(principal, object, action);
        base.emit({ actor: principal, action: 'policy.decide', object, decision: explained.allowed ? 'allow' : 'deny', details: { ...context, sub: principal, act: action, rule: explained.rule } });
        return { allowed: explained.allowed, principal, object, action, rule: explained.rule };
      },
      grantRole: (principal: string, role: string) => policy.addRoleForSubject(principal, role),
      dropPrincipal: (principal: string) => policy.removeSubject(principal),
    },
    mayCall: (principal: string, tool: string) => policy.explain(principal, `mcp:${tool}`, 'call').allowed,
    explain: (principal: string, object: string, action: string) => {
      const e = policy.explain(principal, object, action);
      return { allowed: e.allowed, rule: e.rule };
    },
    sendMessage: (principal: string, to: string, body: string) => {
      sent.push({ principal, to, body });
      return Promise.resolve({ id: `m-${sent.length}` });
    },
    // The board file is the supervisor's to rewrite (a real move is tested end to end); here the row moves.
    moveTask: (id: string, column: string) => {
      const row = base.registry.state.task(id);
      if (!row) return Promise.reject(new WarrenError('WARREN_TASK_NOT_FOUND', `no task '${id}' on the board`));
      return Promise.resolve({ id, from: row.state, to: column, path: `${id}.md` });
    },
    computer: testComputer(base.dir),
  }) as TestPorts & McpPorts;
  ports.agentItems.push(agentItem('shell-1'));
  const mcp = createMcpHttpHandler(ports);
  const server = await startHttpServer(ports, { host: '127.0.0.1', port: 0, rateLimit: false, mcp });
  onTestFinished(async () => {
    await server.close();
    await mcp.close();
    ports.close();
  });
  const viewerToken = ports.tokens.create({ name: 'vera', role: 'viewer' }, Date.now()).token;
  const operatorToken = ports.tokens.create({ name: 'olga', role: 'operator' }, Date.now()).token;
  return { ports, server, mcp, url: new URL('/mcp', server.url), viewerToken, operatorToken, sent };
}

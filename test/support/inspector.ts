/**
 * Runs the MCP Inspector CLI (`@modelcontextprotocol/inspector` 2.x, `--cli` mode) against an MCP
 * server and reads its answer, so tests can check a server with the reference client.
 *
 * The Inspector needs Node.js >= 22.19; `bash scripts/node22.sh install` (run by
 * `scripts/setup.sh`) puts Node 22 and the Inspector under `tools/node22/`. Each run is one
 * Inspector process (`--format json`: one JSON object on stdout, and on failure a one-line error
 * envelope `{"error":{"code","message"}}` as the last stderr line; exit codes 0 success, 1 usage,
 * 3 authentication required, 4 unreachable, 5 tool error), following the Inspector's
 * docs/cli-smoke-testing.md. The Inspector's own files (catalog, client config, OAuth state,
 * secrets) go to a temporary home removed after the run, so a run reads and writes nothing of the
 * machine's user.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { repo } from './cli.js';

/** Where `scripts/node22.sh` installs Node 22 and the Inspector. */
export const node22Prefix = join(repo, 'tools', 'node22');
/** The Node 22 binary from the npm package `node-linux-<arch>`. */
export const node22 = join(node22Prefix, 'node_modules', `node-linux-${process.arch}`, 'bin', 'node');
/** The Inspector's launcher (its `mcp-inspector` bin), which `--cli` turns into the CLI client. */
export const inspectorCli = join(node22Prefix, 'node_modules', '@modelcontextprotocol', 'inspector', 'clients', 'launcher', 'build', 'index.js');

/** Fails (never skips) with the install command when Node 22 or the Inspector is missing. */
export function requireInspector(): void {
  const missing: string[] = [];
  if (!existsSync(node22)) missing.push(`Node.js 22 (${node22})`);
  if (!existsSync(inspectorCli)) missing.push(`the MCP Inspector (${inspectorCli})`);
  if (missing.length > 0) {
    throw new Error(`this machine lacks ${missing.join(' and ')}. Run: bash scripts/node22.sh install (or bash scripts/setup.sh)`);
  }
}

/** A server the Inspector starts and talks to over its stdin and stdout. */
export interface StdioTarget {
  readonly transport: 'stdio';
  /** The program, best an absolute path (the Inspector spawns it with the `env` below only). */
  readonly command: string;
  readonly args?: readonly string[];
  /** The server's whole environment (the Inspector passes a minimal default environment otherwise). */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

/** A server at a Streamable HTTP endpoint. */
export interface HttpTarget {
  readonly transport: 'http';
  /** The endpoint, e.g. `http://127.0.0.1:7070/mcp`. */
  readonly url: string;
  /** Sent as `Authorization: Bearer <token>` when given. */
  readonly bearer?: string;
  /** More request headers, name to value. */
  readonly headers?: Readonly<Record<string, string>>;
}

export type InspectorTarget = StdioTarget | HttpTarget;

/** What the Inspector should do once connected. */
export interface InspectorRequest {
  /** The MCP method: `initialize` (connect only), `tools/list`, `tools/call`, `resources/read`, `prompts/get`, ... */
  readonly method: string;
  /** The tool for `tools/call`. */
  readonly toolName?: string;
  /** The tool's arguments for `tools/call`, sent verbatim (`--tool-args-json`). */
  readonly toolArgs?: Readonly<Record<string, unknown>>;
  /** The resource for `resources/read`. */
  readonly uri?: string;
  /** The prompt for `prompts/get`, and its arguments. */
  readonly promptName?: string;
  readonly promptArgs?: Readonly<Record<string, string>>;
  /**
   * The protocol era to negotiate: `legacy` (2025 revisions, `initialize`; the Inspector's default
   * for ad-hoc targets), `modern` (2026-07-28) or `auto`.
   */
  readonly protocolEra?: 'legacy' | 'modern' | 'auto';
  /** Kills the Inspector and everything it started after this many ms; 60,000 when not given. */
  readonly timeoutMs?: number;
}

/** The error envelope the Inspector writes as its last stderr line when it fails. */
export interface InspectorError {
  /** e.g. `auth_required`, `unreachable`, `tool_error`. */
  readonly code: string;
  readonly message: string;
}

/** One finished Inspector run. */
export interface InspectorRun {
  /** The exit code: 0 success, 1 usage or unexpected error, 3 authentication required, 4 unreachable, 5 tool error. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as JSON (`{ result, ... }`), when it is JSON. */
  readonly output: { readonly result?: unknown } | undefined;
  /** The error envelope from the last stderr line, when there is one. */
  readonly error: InspectorError | undefined;
}

/**
 * Runs the Inspector CLI once and reports how it ended, failed runs included (for tests that
 * expect a refusal). Throws when the Inspector is not installed, and when it is still running after
 * `request.timeoutMs` (its process group, the server it started over stdio included, is killed
 * first; the error carries its stderr).
 */
export async function runInspector(target: InspectorTarget, request: InspectorRequest): Promise<InspectorRun> {
  requireInspector();
  const home = mkdtempSync(join(tmpdir(), 'warren-inspector-'));
  try {
    const args = [inspectorCli, '--cli', ...targetArgs(target, home), ...requestArgs(request), '--format', 'json'];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      MCP_STORAGE_DIR: join(home, 'storage'),
      MCP_INSPECTOR_OAUTH_STATE_PATH: join(home, 'storage', 'oauth.json'),
      MCP_CLIENT_CONFIG_PATH: join(home, 'storage', 'client.json'),
      NO_COLOR: '1',
    };
    // The Inspector leads its own process group, so a timeout ends the server it started as well.
    const child = spawn(node22, args, { cwd: home, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const pid = child.pid;
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => resolve(code));
    });
    const timeoutMs = request.timeoutMs ?? 60_000;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (pid !== undefined) killGroup(pid);
    }, timeoutMs);
    let code: number | null;
    try {
      code = await exited;
    } finally {
      clearTimeout(timer);
    }
    if (pid !== undefined) await endGroup(pid);
    if (timedOut) {
      throw new Error(`the Inspector (${request.method}) did not finish in ${timeoutMs} ms and was killed\n${stderr.slice(-4000)}`);
    }
    return { code, stdout, stderr, output: parseOutput(stdout), error: parseError(stderr) };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * Runs the Inspector CLI and returns the `result` of its JSON output: for `tools/list` the
 * `{ tools }` the server listed, for `tools/call` the `CallToolResult`. Throws with the Inspector's
 * exit code and stderr when it fails (a `tools/call` answered with `isError` included), and as
 * {@link runInspector} does.
 */
export async function inspect(target: InspectorTarget, request: InspectorRequest): Promise<unknown> {
  const run = await runInspector(target, request);
  if (run.code !== 0 || run.output === undefined || !('result' in run.output)) {
    throw new Error(`the Inspector (${request.method}) exited with ${run.code}\nstdout: ${run.stdout.slice(-2000)}\nstderr: ${run.stderr.slice(-4000)}`);
  }
  return run.output.result;
}

function targetArgs(target: InspectorTarget, home: string): string[] {
  if (target.transport === 'http') {
    const headers = { ...target.headers, ...(target.bearer === undefined ? {} : { Authorization: `Bearer ${target.bearer}` }) };
    const args = ['--transport', 'http', '--server-url', target.url, '--stored-auth-only'];
    for (const [name, value] of Object.entries(headers)) args.push('--header', `${name}: ${value}`);
    return args;
  }
  // A stdio server goes in a read-only session file: on the --cli command line a server's own
  // dash arguments would be taken as the Inspector's (its docs/mcp-server-configuration.md).
  const config = join(home, 'mcp.json');
  const server = { type: 'stdio', command: target.command, args: target.args ?? [], env: target.env ?? {}, ...(target.cwd === undefined ? {} : { cwd: target.cwd }) };
  writeFileSync(config, JSON.stringify({ mcpServers: { server } }), { mode: 0o600 });
  return ['--config', config, '--server', 'server'];
}

function requestArgs(request: InspectorRequest): string[] {
  const args = ['--method', request.method];
  if (request.toolName !== undefined) args.push('--tool-name', request.toolName);
  if (request.toolArgs !== undefined) args.push('--tool-args-json', JSON.stringify(request.toolArgs));
  if (request.uri !== undefined) args.push('--uri', request.uri);
  if (request.promptName !== undefined) args.push('--prompt-name', request.promptName);
  if (request.promptArgs !== undefined) {
    const pairs = Object.entries(request.promptArgs).map(([k, v]) => `${k}=${v}`);
    if (pairs.length > 0) args.push('--prompt-args', ...pairs);
  }
  if (request.protocolEra !== undefined) args.push('--protocol-era', request.protocolEra);
  return args;
}

function parseOutput(stdout: string): InspectorRun['output'] {
  const text = stdout.trim();
  if (text === '') return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

function parseError(stderr: string): InspectorError | undefined {
  const last = stderr.trim().split('\n').at(-1);
  if (last === undefined || !last.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(last) as { error?: { code?: unknown; message?: unknown } };
    const { code, message } = value.error ?? {};
    return typeof code === 'string' ? { code, message: typeof message === 'string' ? message : '' } : undefined;
  } catch {
    return undefined;
  }
}

/** Pids of the processes in process group `pgid` (from /proc/<pid>/stat, field 5). */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name, which is in parentheses and may hold spaces.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') members.push(Number(entry));
    } catch {
      // The process ended while we read.
    }
  }
  return members;
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // The group is already gone.
  }
}

/**
 * After the Inspector exits: gives what it started (a stdio server) 10 s to end on its own, then
 * kills the group, so no run leaves a process behind.
 */
async function endGroup(pgid: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (groupMembers(pgid).length > 0 && Date.now() < deadline) await sleep(100);
  if (groupMembers(pgid).length > 0) killGroup(pgid);
}

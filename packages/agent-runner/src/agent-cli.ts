/**
 * How the runner starts a coding-agent CLI (claude-code, codex, opencode) or Warren's own loop
 * (`llm`) for one task: the headless argv, the environment (the LLM gateway's URL through the
 * runner's forwarder, a placeholder key, switches that stop telemetry, auto-update and other
 * network use), the conversation to resume, and a health probe of a CLI binary.
 *
 * Agents have no network: every LLM call goes to `http://127.0.0.1:<port>/p/<provider>` on the
 * sandbox's own loopback, which the runner pipes to the gateway's socket (`llm-forward.ts`); the
 * gateway strips the placeholder key and adds the provider's. Warren is the sandbox, so the CLIs'
 * own approval prompts and sandboxes are turned off.
 *
 * Node built-ins only: this module runs inside the sandbox.
 */
import { spawn } from 'node:child_process';
import { constants, accessSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { AgentKind } from './agent-events.js';
import type { TaskFrame } from './protocol.js';

/** The key the CLIs are given: never a real one (the gateway replaces it). */
export const PLACEHOLDER_API_KEY = 'warren-gateway';

/** The port of the runner's LLM forwarder on the sandbox's loopback. */
export const LLM_PORT_IN_SANDBOX = 4141;

/** A coding-agent CLI as a runtime: the native binary's absolute path in the sandbox, the gateway provider it talks to. */
export interface CliRuntime {
  readonly kind: 'claude-code' | 'codex' | 'opencode';
  /** Absolute path of the CLI's native binary in the sandbox (e.g. under `/opt/warren/clis`). */
  readonly binary: string;
  /** The gateway provider (`/p/<provider>`): Anthropic Messages for claude-code, OpenAI Responses for codex, OpenAI Chat Completions for opencode. */
  readonly provider: string;
  /** The model name sent to the provider; required by opencode. */
  readonly model?: string;
  /** The most agent turns of one task (claude-code `--max-turns`, opencode's agent `steps`; codex has no such limit). */
  readonly maxTurns?: number;
  /**
   * Whether the CLI gets Warren's MCP server, `http://127.0.0.1:<port>/mcp` through the forwarder
   * (the gateway adds the agent's token; the policy decides which tools it lists). Default false.
   */
  readonly mcp?: boolean;
}

/** Warren's own agent loop as a runtime (`packages/agent-llm`): its argv and settings. */
export interface LlmRuntime {
  readonly kind: 'llm';
  /** The loop's argv, the program an absolute path (`/usr/bin/node /opt/warren/agent-llm/agent-llm.mjs`). */
  readonly program: readonly string[];
  readonly provider: string;
  readonly model: string;
  readonly maxTurns: number;
  /** Whether the loop gets Warren's MCP tools (`WARREN_MCP_URL`, through the gateway). Default false. */
  readonly mcp?: boolean;
}

/** The runtimes whose stdout is an {@link AgentEvent} stream. */
export type AgentRuntime = CliRuntime | LlmRuntime;

/** Whether `kind` names an agent runtime (its stdout is mapped to events). */
export function isAgentKind(kind: string): kind is AgentKind {
  return kind === 'claude-code' || kind === 'codex' || kind === 'opencode' || kind === 'llm';
}

/** The prompt of a task: its title, a blank line, its body (the body left out when empty). */
export function taskPrompt(task: Pick<TaskFrame, 'title' | 'body'>): string {
  const body = typeof task.body === 'string' ? task.body.trim() : '';
  return body ? `${task.title}\n\n${body}` : task.title;
}

/** One start of an agent program. */
export interface AgentInvocation {
  readonly argv: readonly string[];
  /** Variables set on top of the task's environment. */
  readonly env: Readonly<Record<string, string>>;
  /** Directories to make (mode 0700) before the start. */
  readonly dirs: readonly string[];
  /** Text written to the program's stdin, then closed; without it stdin is /dev/null. */
  readonly stdin?: string;
}

/** What {@link agentInvocation} needs besides the runtime. */
export interface InvocationOptions {
  readonly task: Pick<TaskFrame, 'title' | 'body'>;
  /** The agent's home (sessions and the CLIs' own state live there). */
  readonly home: string;
  /** The task's workspace (its git worktree, when it has a repository): the CLI's working directory. */
  readonly workspace?: string;
  /** The forwarder's base URL, `http://127.0.0.1:<port>` (no trailing slash). */
  readonly llmBaseUrl: string;
  /** The session/thread id to resume, if any. */
  readonly resume?: string;
}

// Switches that keep each CLI off the network except for its LLM calls (which go to the gateway).
const CLAUDE_ENV = {
  DISABLE_TELEMETRY: '1',
  DISABLE_AUTOUPDATER: '1',
  DISABLE_ERROR_REPORTING: '1',
  DISABLE_BUG_COMMAND: '1',
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
  // MCP tools offered to the model up front, not behind a tool search.
  ENABLE_TOOL_SEARCH: 'false',
  // --dangerously-skip-permissions is refused to root unless the CLI is told it is sandboxed; it is.
  IS_SANDBOX: '1',
};
const OPENCODE_ENV = {
  OPENCODE_DISABLE_AUTOUPDATE: '1',
  OPENCODE_DISABLE_SHARE: '1',
  OPENCODE_DISABLE_MODELS_FETCH: '1',
  OPENCODE_DISABLE_DEFAULT_PLUGINS: '1',
  OPENCODE_DISABLE_LSP_DOWNLOAD: '1',
  OPENCODE_DISABLE_CLAUDE_CODE: '1',
  OPENCODE_DISABLE_EXTERNAL_SKILLS: '1',
  // The task's tree is the agent's to write: its opencode.json must not change the provider.
  OPENCODE_DISABLE_PROJECT_CONFIG: '1',
};

/** A TOML basic string (TOML 1.0 §String): quotes, backslashes and control characters escaped. */
function tomlString(value: string): string {
  return JSON.stringify(value);
}

/**
 * The argv and environment that run `runtime` headless for one task:
 * - claude-code: `claude -p --output-format stream-json --verbose --dangerously-skip-permissions
 *   [--model M] [--max-turns N] [--mcp-config …] [--resume ID] -- <prompt>`, `ANTHROPIC_BASE_URL` =
 *   `<llmBaseUrl>/p/<provider>`, `ANTHROPIC_API_KEY` = the placeholder.
 * - codex: `codex exec --json --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox
 *   -c … [-m M] [resume ID] -- <prompt>` with a provider `warren` (base URL
 *   `<llmBaseUrl>/p/<provider>`, wire API `responses`, key from `OPENAI_API_KEY`), analytics and
 *   the update check off, `CODEX_HOME` = `<home>/.codex`.
 * With `mcp`, each CLI also gets Warren's MCP server `<llmBaseUrl>/mcp` as `warren` (claude-code
 * `--mcp-config`, codex `mcp_servers.warren`, opencode's `mcp.warren`, remote, without OAuth).
 * - opencode: `opencode run --format json -m warren/<model> [--session ID]`, the prompt on stdin
 *   (opencode quotes a prompt argument that holds spaces), with a
 *   provider `warren` (`@ai-sdk/openai-compatible`, which the binary bundles) in
 *   `OPENCODE_CONFIG_CONTENT`, edits and commands allowed, web fetches denied, `steps` = maxTurns.
 * - llm: the program's argv; `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `WARREN_LLM_MODEL`,
 *   `WARREN_LLM_MAX_TURNS` and `WARREN_MCP_URL` (`<llmBaseUrl>/mcp`). It keeps its own history.
 */
export function agentInvocation(runtime: AgentRuntime, options: InvocationOptions): AgentInvocation {
  const base = `${options.llmBaseUrl}/p/${encodeURIComponent(runtime.provider)}`;
  const mcpUrl = `${options.llmBaseUrl}/mcp`;
  const prompt = taskPrompt(options.task);
  switch (runtime.kind) {
    case 'claude-code': {
      const argv = [runtime.binary, '-p', '--output-format', 'stream-json', '--verbose', '--dangerously-skip-permissions'];
      if (runtime.model) argv.push('--model', runtime.model);
      if (runtime.maxTurns !== undefined) argv.push('--max-turns', String(runtime.maxTurns));
      if (runtime.mcp) argv.push('--mcp-config', JSON.stringify({ mcpServers: { warren: { type: 'http', url: mcpUrl } } }));
      if (options.resume) argv.push('--resume', options.resume);
      argv.push('--', prompt);
      return { argv, env: { ...CLAUDE_ENV, ANTHROPIC_BASE_URL: base, ANTHROPIC_API_KEY: PLACEHOLDER_API_KEY }, dirs: [] };
    }
    case 'codex': {
      const codexHome = join(options.home, '.codex');
      const provider = `{name=${tomlString('warren')},base_url=${tomlString(base)},env_key=${tomlString('OPENAI_API_KEY')},wire_api=${tomlString('responses')}}`;
      const argv = [
        runtime.binary,
        'exec',
        '--json',
        '--skip-git-repo-check',
        '--dangerously-bypass-approvals-and-sandbox',
        '-c',
        'analytics.enabled=false',
        '-c',
        'check_for_update_on_startup=false',
        '-c',
        'model_provider="warren"',
        '-c',
        `model_providers.warren=${provider}`,
      ];
      if (runtime.mcp) argv.push('-c', `mcp_servers.warren={url=${tomlString(mcpUrl)}}`);
      if (runtime.model) argv.push('-m', runtime.model);
      if (options.resume) argv.push('resume', options.resume);
      argv.push('--', prompt);
      return { argv, env: { CODEX_HOME: codexHome, OPENAI_BASE_URL: base, OPENAI_API_KEY: PLACEHOLDER_API_KEY }, dirs: [codexHome] };
    }
    case 'opencode': {
      const model = runtime.model ?? '';
      const config = {
        $schema: 'https://opencode.ai/config.json',
        autoupdate: false,
        share: 'disabled',
        model: `warren/${model}`,
        permission: { edit: 'allow', bash: 'allow', webfetch: 'deny' },
        ...(runtime.maxTurns !== undefined ? { agent: { build: { steps: runtime.maxTurns } } } : {}),
        ...(runtime.mcp ? { mcp: { warren: { type: 'remote', url: mcpUrl, enabled: true, oauth: false } } } : {}),
        provider: {
          warren: {
            npm: '@ai-sdk/openai-compatible',
            name: 'Warren gateway',
            options: { baseURL: base, apiKey: PLACEHOLDER_API_KEY },
            models: { [model]: { name: model } },
          },
        },
      };
      // opencode takes its project from --dir (else from $PWD, which may still name the home).
      const argv = [runtime.binary, 'run', '--format', 'json', '-m', `warren/${model}`, ...(options.workspace ? ['--dir', options.workspace] : [])];
      if (options.resume) argv.push('--session', options.resume);
      return { argv, env: { ...OPENCODE_ENV, OPENCODE_CONFIG_CONTENT: JSON.stringify(config) }, dirs: [], stdin: prompt };
    }
    case 'llm':
      return {
        argv: [...runtime.program],
        env: {
          OPENAI_BASE_URL: base,
          OPENAI_API_KEY: PLACEHOLDER_API_KEY,
          WARREN_LLM_MODEL: runtime.model,
          WARREN_LLM_MAX_TURNS: String(runtime.maxTurns),
          ...(runtime.mcp ? { WARREN_MCP_URL: `${options.llmBaseUrl}/mcp` } : {}),
        },
        dirs: [],
      };
  }
}

/** Where the runner keeps the session to resume per runtime kind: `<home>/.warren/sessions.json`. */
export function sessionsFile(home: string): string {
  return join(home, '.warren', 'sessions.json');
}

/** One entry of `sessions.json`. */
export interface StoredSession {
  readonly sessionId: string;
  /** The workspace the session last ran in (opencode resumes a session only there). */
  readonly directory?: string;
  /** When it was last used, in ms since the Unix epoch. */
  readonly updatedAtMs: number;
}

function readSessions(home: string): Record<string, StoredSession> {
  try {
    const value: unknown = JSON.parse(readFileSync(sessionsFile(home), 'utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, StoredSession>) : {};
  } catch {
    return {};
  }
}

/** The session stored for `kind` in `<home>/.warren/sessions.json`, or undefined (no file, unreadable, no entry). */
export function loadSession(home: string, kind: AgentKind): StoredSession | undefined {
  const entry = readSessions(home)[kind];
  if (!entry || typeof entry.sessionId !== 'string' || entry.sessionId === '') return undefined;
  return { sessionId: entry.sessionId, updatedAtMs: Number(entry.updatedAtMs) || 0, ...(typeof entry.directory === 'string' ? { directory: entry.directory } : {}) };
}

/**
 * Stores (or, with `session` undefined, forgets) the session of `kind` in
 * `<home>/.warren/sessions.json` (`{ "<kind>": { sessionId, directory, updatedAtMs } }`, mode 0600,
 * written to a temporary file and renamed). @throws the fs error when the file cannot be written.
 */
export function saveSession(home: string, kind: AgentKind, session: { sessionId: string; directory?: string } | undefined): void {
  const sessions = readSessions(home);
  if (session === undefined) delete sessions[kind];
  else sessions[kind] = { ...session, updatedAtMs: Date.now() };
  const file = sessionsFile(home);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(sessions, null, 2)}\n`, { mode: 0o600 });
  renameSync(temporary, file);
}

/** Where `scripts/agent-clis.sh` installs the CLIs, relative to the repository: bind it read-only at `/opt/warren/clis`. */
export const AGENT_CLIS_MODULES_DIR = 'tools/agent-clis/node_modules';

/**
 * The native binary of a CLI relative to {@link AGENT_CLIS_MODULES_DIR}, as `scripts/agent-clis.sh
 * path` finds it: inside the platform package npm installed beside the CLI's own package
 * (`@anthropic-ai/claude-code-linux-x64/claude`, `@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex`,
 * `opencode-linux-x64/bin/opencode`, or `opencode-linux-x64-baseline/bin/opencode` on an x64 CPU
 * without AVX2). `avx2` defaults to what `/proc/cpuinfo` says.
 * @throws {Error} for an architecture other than x64 and arm64.
 */
export function agentCliBinary(kind: CliRuntime['kind'], arch: string = process.arch, avx2: boolean = cpuHasAvx2()): string {
  if (arch !== 'x64' && arch !== 'arm64') throw new Error(`${kind}: no native binary for architecture ${arch} (x64 and arm64 only)`);
  switch (kind) {
    case 'claude-code':
      return `@anthropic-ai/claude-code-linux-${arch}/claude`;
    case 'codex':
      return `@openai/codex-linux-${arch}/vendor/${arch === 'x64' ? 'x86_64' : 'aarch64'}-unknown-linux-musl/bin/codex`;
    case 'opencode':
      return `opencode-linux-${arch}${arch === 'x64' && !avx2 ? '-baseline' : ''}/bin/opencode`;
  }
}

function cpuHasAvx2(): boolean {
  try {
    return /\bavx2\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

/** What {@link probeAgentCli} found. */
export type ProbeResult = { readonly ok: true; readonly version: string } | { readonly ok: false; readonly reason: string };

/**
 * Checks a CLI binary on the host for the supervisor's health report: it exists, is a regular
 * executable file, and `<binary> --version` exits 0 within `timeoutMs` (default 10 000 ms) with a
 * version on stdout (its first line). The probe runs with `HOME` in a temporary directory (removed
 * afterwards) and the CLIs' network switches set. Never rejects: `{ ok: false, reason }` names what
 * is wrong (e.g. `/opt/x/claude does not exist`, `--version did not answer within 10000 ms`).
 */
export async function probeAgentCli(kind: CliRuntime['kind'], binaryHostPath: string, options: { timeoutMs?: number } = {}): Promise<ProbeResult> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  try {
    if (!statSync(binaryHostPath).isFile()) return { ok: false, reason: `${kind}: ${binaryHostPath} is not a regular file` };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' ? `${kind}: ${binaryHostPath} does not exist` : `${kind}: cannot stat ${binaryHostPath}: ${(error as Error).message}` };
  }
  try {
    accessSync(binaryHostPath, constants.X_OK);
  } catch {
    return { ok: false, reason: `${kind}: ${binaryHostPath} is not executable` };
  }
  const home = mkdtempSync(join(tmpdir(), 'warren-probe-'));
  try {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...CLAUDE_ENV, ...OPENCODE_ENV };
    if (kind === 'codex') {
      env.CODEX_HOME = join(home, '.codex');
      mkdirSync(env.CODEX_HOME, { mode: 0o700 });
    }
    return await new Promise<ProbeResult>((resolve) => {
      const child = spawn(binaryHostPath, ['--version'], { env, cwd: home, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout = (stdout + chunk.toString('utf8')).slice(0, 4096)));
      child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4096)));
      const timer = setTimeout(() => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
        resolve({ ok: false, reason: `${kind}: ${binaryHostPath} --version did not answer within ${timeoutMs} ms` });
      }, timeoutMs);
      child.once('error', (error) => {
        clearTimeout(timer);
        resolve({ ok: false, reason: `${kind}: cannot run ${binaryHostPath}: ${error.message}` });
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        const version = stdout.trim().split('\n')[0]?.trim() ?? '';
        if (code === 0 && version !== '') resolve({ ok: true, version });
        else {
          const how = signal ? `was killed by ${signal}` : code === 0 ? 'printed no version' : `exited with ${code}`;
          const detail = stderr.trim().split('\n').slice(-3).join(' ').slice(0, 300);
          resolve({ ok: false, reason: `${kind}: ${binaryHostPath} --version ${how}${detail ? `: ${detail}` : ''}` });
        }
      });
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * Runs the built bundle as the runner does: a child `node agent-llm.mjs` with the environment
 * contract, a temp HOME and the workspace as cwd, its stdout read as events.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { makeTempDir } from '@warren/testing';
import { agentEventProblem, type AgentEvent } from '@warren/agent-runner';
import { buildAgentLlm } from '../src/build.js';

/** The bundle, built once per file into a temp directory with no node_modules above it. */
export interface BuiltBundle {
  readonly path: string;
  close(): Promise<void>;
}

export async function buildBundle(): Promise<BuiltBundle> {
  const dir = await makeTempDir('warren-agent-llm-bundle-');
  const built = await buildAgentLlm({ outFile: join(dir.path, 'build', 'agent-llm.mjs') });
  // Run from a directory of its own, as in the sandbox at /opt/warren/agent-llm.
  const path = join(dir.path, 'opt', 'agent-llm.mjs');
  mkdirSync(join(dir.path, 'opt'));
  copyFileSync(built.outFile, path);
  return { path, close: () => dir.close() };
}

/** An agent's home with a workspace in it. */
export interface AgentHome {
  readonly home: string;
  readonly workspace: string;
}

export async function agentHome(): Promise<AgentHome> {
  const dir = await makeTempDir('warren-agent-llm-home-');
  onTestFinished(() => dir.close());
  const home = join(dir.path, 'home');
  const workspace = join(home, 'work', 'task');
  mkdirSync(workspace, { recursive: true });
  return { home, workspace };
}

export interface RunOptions {
  readonly bundle: string;
  readonly agent: AgentHome;
  /** `OPENAI_BASE_URL`. */
  readonly baseUrl: string;
  readonly taskId?: string;
  readonly title?: string;
  readonly body?: string;
  readonly timeoutMs?: number;
  /** More environment variables (`WARREN_LLM_MAX_TURNS`, `WARREN_MCP_URL`). */
  readonly env?: Readonly<Record<string, string>>;
  /** Called with each complete stdout line as it arrives, and the child (to signal it). */
  readonly onLine?: (line: string, child: ChildProcess) => void;
}

export interface RunResult {
  readonly exitCode: number | null;
  readonly events: AgentEvent[];
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs one task to its end and parses stdout.
 * @throws when a stdout line is not a valid event (naming the line), or the program has not ended
 *   within 50 s (it is killed).
 */
export async function runTask(options: RunOptions): Promise<RunResult> {
  const taskId = options.taskId ?? 'make-hello';
  const taskFile = join(options.agent.home, '..', `${taskId}.task.json`);
  writeFileSync(
    taskFile,
    JSON.stringify({ type: 'task', taskId, attempt: 1, title: options.title ?? 'Make hello.txt', body: options.body ?? 'Write hello.txt and show it.', fields: {}, timeoutMs: options.timeoutMs ?? 60_000 }),
  );
  const env = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: options.agent.home,
    WARREN_TASK_FILE: taskFile,
    OPENAI_BASE_URL: options.baseUrl,
    OPENAI_API_KEY: 'warren-gateway',
    WARREN_LLM_MODEL: 'fake-model',
    ...options.env,
  };
  const child = spawn(process.execPath, [options.bundle], { cwd: options.agent.workspace, env, stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  let pending = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    pending += d;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) options.onLine?.(line, child);
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exitCode = await new Promise<number | null>((done, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`agent-llm did not end within 50 s; stdout:\n${stdout}\nstderr:\n${stderr}`));
    }, 50_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done(code);
    });
  });
  const events = stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line, i) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        throw new Error(`stdout line ${i + 1} is not JSON: ${line}\nstderr:\n${stderr}`);
      }
      const problem = agentEventProblem(parsed);
      if (problem !== null) throw new Error(`stdout line ${i + 1} is not an event (${problem}): ${line}`);
      return parsed as AgentEvent;
    });
  return { exitCode, events, stdout, stderr };
}

/** The chat messages of a recorded Chat Completions request. */
export function messagesOf(body: unknown): { role: string; content?: unknown; tool_call_id?: string; tool_calls?: { id: string; function: { name: string } }[] }[] {
  return (body as { messages: { role: string }[] }).messages;
}

/** The tool names a recorded request declared. */
export function toolNamesOf(body: unknown): string[] {
  return ((body as { tools?: { function: { name: string } }[] }).tools ?? []).map((t) => t.function.name);
}

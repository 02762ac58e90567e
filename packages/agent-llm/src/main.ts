/**
 * The `llm` runtime's program: `node agent-llm.mjs` (the bundle of this file), started by the
 * runner inside the agent's sandbox for a task. It reads the environment contract (see
 * {@link loadConfig}), runs the agent loop against the Chat Completions endpoint at
 * `OPENAI_BASE_URL`, prints one {@link AgentEvent} per stdout line ending with one `final`, and
 * exits 0 when the model answered, 1 otherwise (with an `error` event saying why).
 *
 * Nothing else is written to stdout: `console.log` goes to stderr, and commands the model runs
 * have their output captured.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { connectBus } from '@warren/agent-sdk';
import type { AgentEvent } from '@warren/agent-runner';
import { loadConfig, type AgentLlmConfig } from './config.js';
import { loadHistory, saveHistory, HISTORY_PATH } from './history.js';
import { runLoop } from './loop.js';
import { busSocketExists, busTools } from './bus-tools.js';
import { connectMcpTools, type McpTools } from './mcp-tools.js';
import { computerTools, type Tool } from './tools.js';

/** The source name of this program's own `raw` notices. */
export const RAW_SOURCE = 'agent-llm';

/** How long before the task's timeout the loop stops, at most (and at most a tenth of it), in ms. */
const DEADLINE_MARGIN_MS = 5_000;

/** The most bytes of each AGENTS.md put in the system prompt (32 KiB). */
const MAX_INSTRUCTIONS_BYTES = 32 * 1024;

/** Writes one event as a JSON line on stdout (a pipe or file: synchronous on Linux). */
function emit(event: AgentEvent): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** The AGENTS.md files of the workspace and the home (the template seeds the home's), cut to size. */
function instructions(config: AgentLlmConfig): string[] {
  const seen = new Set<string>();
  const found: string[] = [];
  for (const dir of [config.cwd, config.home]) {
    const path = join(dir, 'AGENTS.md');
    try {
      if (!existsSync(path)) continue;
      const real = realpathSync(path);
      if (seen.has(real)) continue;
      seen.add(real);
      const text = Buffer.from(readFileSync(real)).subarray(0, MAX_INSTRUCTIONS_BYTES).toString('utf8');
      found.push(`Instructions from ${path}:\n${text}`);
    } catch {
      // An unreadable AGENTS.md is left out.
    }
  }
  return found;
}

/** The system prompt: who and where the agent is, what its tools reach, and what to answer. */
function systemPrompt(config: AgentLlmConfig, tools: readonly Tool[]): string {
  return [
    'You are an agent run by Warren, working on one task from a kanban board.',
    `Your workspace is ${config.cwd}, inside your home ${config.home}; the file tools cannot leave the home, and the machine has no network.`,
    `Your tools: ${tools.map((t) => t.name).join(', ')}.`,
    'Do the task with the tools, check your work, then answer with a short summary of what you did and the result. Your answer without a tool call ends the task.',
    ...instructions(config),
  ].join('\n\n');
}

/** The prompt of a task: its title and body, as the issue says. */
function taskPrompt(config: AgentLlmConfig): string {
  const { task } = config;
  const attempt = task.attempt > 1 ? ` (attempt ${task.attempt})` : '';
  return `Task ${task.taskId}${attempt}: ${task.title}${task.body.trim() === '' ? '' : `\n\n${task.body.trim()}`}`;
}

/** Runs the program; resolves with the exit code. */
async function main(): Promise<number> {
  // stdout carries events only.
  console.log = console.info = console.debug = (...args: unknown[]) => console.error(...args);
  const fail = (message: string): number => {
    emit({ kind: 'error', message });
    emit({ kind: 'final', text: message, isError: true });
    return 1;
  };

  let config: AgentLlmConfig;
  try {
    config = loadConfig(process.env, process.cwd());
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => stop.abort(new Error(`the runner sent ${signal}`));
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  // Stop a little before the runner's own limit, so that the reason is printed before any kill.
  const runMs = config.task.timeoutMs - Math.min(DEADLINE_MARGIN_MS, config.task.timeoutMs / 10);
  const deadlineMs = Date.now() + runMs;
  setTimeout(() => stop.abort(new Error(`the task's timeout of ${config.task.timeoutMs} ms ran out`)), runMs).unref();
  const signal = stop.signal;
  const remainingMs = (): number => deadlineMs - Date.now();

  let loaded;
  try {
    loaded = loadHistory(config.home);
  } catch (error) {
    return fail(`cannot read the history $HOME/${HISTORY_PATH}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const history = loaded.history;
  emit({ kind: 'session', sessionId: history.sessionId, model: config.model });
  if (loaded.state === 'set-aside') {
    emit({ kind: 'raw', source: RAW_SOURCE, line: { notice: 'history set aside, starting a fresh conversation', reason: loaded.reason, path: loaded.setAsidePath } });
  }

  const tools: Tool[] = computerTools({ home: config.home, cwd: config.cwd, remainingMs });
  // The messaging tools, when the supervisor serves this agent's bus.
  if (busSocketExists(config.busSocket)) tools.push(...busTools(connectBus({ socketPath: config.busSocket }), { remainingMs }));
  let mcp: McpTools | undefined;
  if (config.mcpUrl !== undefined) {
    try {
      mcp = await connectMcpTools(config.mcpUrl, { remainingMs });
      tools.push(...mcp.tools);
    } catch (error) {
      emit({ kind: 'raw', source: RAW_SOURCE, line: { notice: 'MCP tools unavailable, going on without them', url: config.mcpUrl, reason: error instanceof Error ? error.message : String(error) } });
    }
  }

  let saveFailed = false;
  const client = new OpenAI({ baseURL: config.baseUrl, apiKey: config.apiKey, maxRetries: 0, timeout: config.task.timeoutMs });
  try {
    const result = await runLoop({
      client,
      model: config.model,
      maxTurns: config.maxTurns,
      systemPrompt: systemPrompt(config, tools),
      messages: history.messages,
      prompt: taskPrompt(config),
      tools,
      emit,
      save: (messages) => {
        try {
          saveHistory(config.home, { sessionId: history.sessionId, messages: [...messages] });
        } catch (error) {
          if (!saveFailed) emit({ kind: 'error', message: `cannot save the history $HOME/${HISTORY_PATH}: ${error instanceof Error ? error.message : String(error)}` });
          saveFailed = true;
        }
      },
      signal,
    });
    if (result.ok) {
      emit({ kind: 'final', text: result.text, isError: false });
      return 0;
    }
    return fail(result.reason);
  } finally {
    await mcp?.close();
  }
}

main().then(
  (code) => {
    // Exit once stdout has taken the last line, without waiting for idle keep-alive connections.
    process.stdout.write('', () => process.exit(code));
  },
  (error: unknown) => {
    emit({ kind: 'error', message: `agent-llm crashed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}` });
    emit({ kind: 'final', text: 'agent-llm crashed', isError: true });
    process.stdout.write('', () => process.exit(1));
  },
);

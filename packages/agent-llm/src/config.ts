/**
 * The program's configuration: the runner's environment contract, read once at start-up.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { BUS_SOCKET_PATH } from '@warren/agent-sdk';
import { ConfigError } from '@warren/core';

/** Placeholder API key the gateway replaces with the provider's; never a real key. */
export const PLACEHOLDER_API_KEY = 'warren-gateway';

/** Default `WARREN_LLM_MAX_TURNS`: model responses per task. */
export const DEFAULT_MAX_TURNS = 20;

/** The task the loop works on: the fields of the runner's task frame it uses. */
export interface LoopTask {
  readonly taskId: string;
  /** 1 for the first execution of the task. */
  readonly attempt: number;
  readonly title: string;
  /** The task file's markdown body. */
  readonly body: string;
  /** Every frontmatter field of the task, as parsed. */
  readonly fields: Readonly<Record<string, unknown>>;
  /** Wall-clock limit for this execution, in ms. */
  readonly timeoutMs: number;
}

/** What the loop runs with. */
export interface AgentLlmConfig {
  readonly task: LoopTask;
  /** The Chat Completions base URL (`OPENAI_BASE_URL`), e.g. `http://127.0.0.1:4141/p/openai`. */
  readonly baseUrl: string;
  /** `OPENAI_API_KEY`, default {@link PLACEHOLDER_API_KEY}. */
  readonly apiKey: string;
  /** `WARREN_LLM_MODEL`. */
  readonly model: string;
  /** `WARREN_LLM_MAX_TURNS`, default {@link DEFAULT_MAX_TURNS}. */
  readonly maxTurns: number;
  /** `WARREN_MCP_URL`: Warren's MCP endpoint over Streamable HTTP; unset: no MCP tools. */
  readonly mcpUrl?: string;
  /** `WARREN_BUS_SOCKET`, default `/run/warren/bus.sock`: the agent's bus; the messaging tools are offered when it is there. */
  readonly busSocket: string;
  /** `HOME`, absolute: the root the file tools are confined to, and where the history lives. */
  readonly home: string;
  /** The task's workspace: the process's working directory. */
  readonly cwd: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Reads and checks the task file the runner wrote (`WARREN_TASK_FILE`): a JSON object with
 * `taskId`, `title`, `timeoutMs` and optionally `attempt` (default 1), `body` (default ''),
 * `fields` (default {}); other fields (the frame's `type`, `command`, `traceparent`) are ignored.
 * @throws {ConfigError} naming the file and the field when it cannot be read or a field is wrong.
 */
export function readTaskFile(path: string): LoopTask {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`WARREN_TASK_FILE ${path}`, `cannot read the task: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const where = `WARREN_TASK_FILE ${path}`;
  if (!isRecord(parsed)) throw new ConfigError(where, 'the task must be a JSON object');
  const { taskId, attempt = 1, title, body = '', fields = {}, timeoutMs } = parsed;
  if (typeof taskId !== 'string' || taskId === '') throw new ConfigError(where, "'taskId' must be a non-empty string");
  if (typeof attempt !== 'number' || !Number.isInteger(attempt) || attempt < 1) throw new ConfigError(where, "'attempt' must be a positive integer");
  if (typeof title !== 'string') throw new ConfigError(where, "'title' must be a string");
  if (typeof body !== 'string') throw new ConfigError(where, "'body' must be a string");
  if (!isRecord(fields)) throw new ConfigError(where, "'fields' must be an object");
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new ConfigError(where, "'timeoutMs' must be a positive number of ms");
  return { taskId, attempt, title, body, fields, timeoutMs };
}

/**
 * Builds the configuration from the runner's environment (see the package README for each variable).
 * @param env the environment, e.g. `process.env`.
 * @param cwd the working directory: the task's workspace.
 * @throws {ConfigError} naming the variable when one is missing or invalid, or the task file is bad.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, cwd: string): AgentLlmConfig {
  const required = (name: string): string => {
    const value = env[name];
    if (value === undefined || value.trim() === '') throw new ConfigError(name, 'is not set');
    return value.trim();
  };
  const url = (name: string, value: string): string => {
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch (error) {
      throw new ConfigError(name, `'${value}' is not a URL`, { cause: error });
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ConfigError(name, `'${value}' must be an http(s) URL`);
    return value.replace(/\/+$/, '');
  };
  const baseUrl = url('OPENAI_BASE_URL', required('OPENAI_BASE_URL'));
  const model = required('WARREN_LLM_MODEL');
  const turnsText = env.WARREN_LLM_MAX_TURNS?.trim() || String(DEFAULT_MAX_TURNS);
  const maxTurns = Number(turnsText);
  if (!/^\d+$/.test(turnsText) || !Number.isSafeInteger(maxTurns) || maxTurns < 1) {
    throw new ConfigError('WARREN_LLM_MAX_TURNS', `must be a positive integer, got '${turnsText}'`);
  }
  const home = required('HOME');
  if (!isAbsolute(home)) throw new ConfigError('HOME', `must be an absolute path, got '${home}'`);
  const mcpText = env.WARREN_MCP_URL?.trim();
  const task = readTaskFile(required('WARREN_TASK_FILE'));
  const apiKey = env.OPENAI_API_KEY?.trim() || PLACEHOLDER_API_KEY;
  const busSocket = env.WARREN_BUS_SOCKET?.trim() || BUS_SOCKET_PATH;
  return { task, baseUrl, apiKey, model, maxTurns, busSocket, home, cwd, ...(mcpText ? { mcpUrl: url('WARREN_MCP_URL', mcpText) } : {}) };
}

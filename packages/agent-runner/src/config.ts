import { homedir } from 'node:os';
import type { Runtime } from './execution.js';
import { LLM_PORT_IN_SANDBOX } from './agent-cli.js';
import { AGENT_SOCKET_PATH, LLM_SOCKET_PATH } from './protocol.js';

/**
 * An environment variable of the runner is invalid (code `WARREN_CONFIG`, as `ConfigError` in
 * `@warren/core`, which this package cannot import: it runs with Node's built-ins alone).
 * `source` names the variable.
 */
export class RunnerConfigError extends Error {
  readonly code = 'WARREN_CONFIG';
  constructor(
    readonly source: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${source}: ${message}`, options);
    this.name = 'RunnerConfigError';
  }
}

/** What {@link runnerConfigFromEnv} reads. */
export interface RunnerConfig {
  readonly socketPath: string;
  readonly runtime: Runtime;
  readonly maxConcurrent: number;
  readonly heartbeatMs: number;
  /** Interval of heartbeats while no task runs or waits, in ms (at least `heartbeatMs`). */
  readonly idleHeartbeatMs: number;
  readonly home: string;
  /** The gateway's LLM socket, which the forwarder on `llmPort` pipes to (agent runtimes only). */
  readonly llmSocketPath: string;
  /** The loopback port of the LLM forwarder (0: any free port). */
  readonly llmPort: number;
}

function positiveInt(env: Readonly<Record<string, string | undefined>>, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new RunnerConfigError(name, `${JSON.stringify(raw)} must be an integer >= ${min}`);
  return value;
}

const CLI_KINDS = ['claude-code', 'codex', 'opencode'] as const;
const PROVIDER = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function stringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.length > 0 && value.every((a) => typeof a === 'string');
}

/**
 * Parses a `WARREN_RUNTIME` value (JSON):
 * - `{"kind":"shell"}`;
 * - `{"kind":"exec","command":[argv…]}` (a non-empty list of strings, the program an absolute path);
 * - `{"kind":"claude-code"|"codex"|"opencode","binary":"/opt/warren/clis/…","provider":"anthropic",
 *   "model"?:"…","maxTurns"?:N,"mcp"?:true}` (binary an absolute path, provider a gateway provider name
 *   `[a-z0-9][a-z0-9._-]*`, maxTurns an integer >= 1; opencode needs `model`);
 * - `{"kind":"llm","program":[argv…],"provider":"openai","model":"…","maxTurns":N}`.
 * @throws {RunnerConfigError} saying what is wrong.
 */
export function parseRuntime(text: string, source = 'WARREN_RUNTIME'): Runtime {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new RunnerConfigError(source, `not JSON (${(error as Error).message})`, { cause: error });
  }
  const record = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const kind = record.kind;
  const fail = (message: string): never => {
    throw new RunnerConfigError(source, message);
  };
  const provider = (): string => {
    if (typeof record.provider !== 'string' || !PROVIDER.test(record.provider)) {
      fail(`'provider' of a ${String(kind)} runtime must be a provider name matching ${PROVIDER.source}, not ${JSON.stringify(record.provider)}`);
    }
    return record.provider as string;
  };
  const maxTurns = (required: boolean): number | undefined => {
    if (record.maxTurns === undefined && !required) return undefined;
    if (typeof record.maxTurns !== 'number' || !Number.isInteger(record.maxTurns) || record.maxTurns < 1) {
      fail(`'maxTurns' of a ${String(kind)} runtime must be an integer >= 1, not ${JSON.stringify(record.maxTurns)}`);
    }
    return record.maxTurns as number;
  };
  const model = (required: boolean): string | undefined => {
    if (record.model === undefined && !required) return undefined;
    if (typeof record.model !== 'string' || record.model.trim() === '') fail(`'model' of a ${String(kind)} runtime must be a non-empty string`);
    return record.model as string;
  };
  if (kind === 'shell') return { kind: 'shell' };
  if (kind === 'exec') {
    const command = record.command;
    if (!stringList(command)) fail(`'command' of an exec runtime must be a non-empty list of strings`);
    const argv = command as string[];
    if (!argv[0]!.startsWith('/')) fail(`'command[0]' must be an absolute path, not ${JSON.stringify(argv[0])}`);
    return { kind: 'exec', command: argv };
  }
  if (kind === 'claude-code' || kind === 'codex' || kind === 'opencode') {
    if (typeof record.binary !== 'string' || !record.binary.startsWith('/')) {
      fail(`'binary' of a ${kind} runtime must be an absolute path, not ${JSON.stringify(record.binary)}`);
    }
    const name = model(kind === 'opencode');
    const turns = maxTurns(false);
    if (record.mcp !== undefined && typeof record.mcp !== 'boolean') fail(`'mcp' of a ${kind} runtime must be true or false, not ${JSON.stringify(record.mcp)}`);
    return {
      kind,
      binary: record.binary as string,
      provider: provider(),
      ...(name === undefined ? {} : { model: name }),
      ...(turns === undefined ? {} : { maxTurns: turns }),
      ...(record.mcp === true ? { mcp: true } : {}),
    };
  }
  if (kind === 'llm') {
    if (!stringList(record.program)) fail(`'program' of an llm runtime must be a non-empty list of strings`);
    const program = record.program as string[];
    if (!program[0]!.startsWith('/')) fail(`'program[0]' must be an absolute path, not ${JSON.stringify(program[0])}`);
    if (record.mcp !== undefined && typeof record.mcp !== 'boolean') fail(`'mcp' of an llm runtime must be true or false, not ${JSON.stringify(record.mcp)}`);
    return { kind: 'llm', program, provider: provider(), model: model(true)!, maxTurns: maxTurns(true)!, ...(record.mcp === true ? { mcp: true } : {}) };
  }
  return fail(`'kind' must be one of "shell", "exec", ${CLI_KINDS.map((k) => `"${k}"`).join(', ')} or "llm", not ${JSON.stringify(kind)}`);
}

function port(env: Readonly<Record<string, string | undefined>>, name: string, fallback: number): number {
  const value = positiveInt(env, name, fallback, 0);
  if (value > 65535) throw new RunnerConfigError(name, `${value} is not a TCP port (0 to 65535)`);
  return value;
}

/**
 * Reads the runner's settings from `env`: WARREN_AGENT_SOCKET (default `/run/warren/agent.sock`),
 * WARREN_RUNTIME (JSON, default `{"kind":"shell"}`), WARREN_MAX_CONCURRENT (default 1),
 * WARREN_HEARTBEAT_MS (default 5000, at least 10), WARREN_IDLE_HEARTBEAT_MS (the interval while no
 * task runs or waits; default and least: the heartbeat's), HOME (default the passwd home),
 * WARREN_LLM_SOCKET (default `/run/warren/llm.sock`) and WARREN_LLM_PORT (default 4141, 0 for any).
 * @throws {RunnerConfigError} naming the variable at fault.
 */
export function runnerConfigFromEnv(env: Readonly<Record<string, string | undefined>>): RunnerConfig {
  const heartbeatMs = positiveInt(env, 'WARREN_HEARTBEAT_MS', 5000, 10);
  return {
    socketPath: env.WARREN_AGENT_SOCKET || AGENT_SOCKET_PATH,
    runtime: env.WARREN_RUNTIME ? parseRuntime(env.WARREN_RUNTIME) : { kind: 'shell' },
    maxConcurrent: positiveInt(env, 'WARREN_MAX_CONCURRENT', 1, 1),
    heartbeatMs,
    idleHeartbeatMs: positiveInt(env, 'WARREN_IDLE_HEARTBEAT_MS', heartbeatMs, heartbeatMs),
    home: env.HOME || homedir(),
    llmSocketPath: env.WARREN_LLM_SOCKET || LLM_SOCKET_PATH,
    llmPort: port(env, 'WARREN_LLM_PORT', LLM_PORT_IN_SANDBOX),
  };
}

import { homedir } from 'node:os';
import type { Runtime } from './execution.js';
import { AGENT_SOCKET_PATH } from './protocol.js';

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
  readonly home: string;
}

function positiveInt(env: Readonly<Record<string, string | undefined>>, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new RunnerConfigError(name, `${JSON.stringify(raw)} must be an integer >= ${min}`);
  return value;
}

/**
 * Parses a `WARREN_RUNTIME` value: `{"kind":"shell"}` or `{"kind":"exec","command":[argv…]}`
 * (a non-empty list of strings, the program an absolute path).
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
  if (record.kind === 'shell') return { kind: 'shell' };
  if (record.kind === 'exec') {
    const command = record.command;
    if (!Array.isArray(command) || command.length === 0 || !command.every((a) => typeof a === 'string')) {
      throw new RunnerConfigError(source, `'command' of an exec runtime must be a non-empty list of strings`);
    }
    if (!(command[0] as string).startsWith('/')) throw new RunnerConfigError(source, `'command[0]' must be an absolute path, not ${JSON.stringify(command[0])}`);
    return { kind: 'exec', command };
  }
  throw new RunnerConfigError(source, `'kind' must be "shell" or "exec", not ${JSON.stringify(record.kind)}`);
}

/**
 * Reads the runner's settings from `env`: WARREN_AGENT_SOCKET (default `/run/warren/agent.sock`),
 * WARREN_RUNTIME (JSON, default `{"kind":"shell"}`), WARREN_MAX_CONCURRENT (default 1),
 * WARREN_HEARTBEAT_MS (default 5000, at least 10) and HOME (default the passwd home).
 * @throws {RunnerConfigError} naming the variable at fault.
 */
export function runnerConfigFromEnv(env: Readonly<Record<string, string | undefined>>): RunnerConfig {
  return {
    socketPath: env.WARREN_AGENT_SOCKET || AGENT_SOCKET_PATH,
    runtime: env.WARREN_RUNTIME ? parseRuntime(env.WARREN_RUNTIME) : { kind: 'shell' },
    maxConcurrent: positiveInt(env, 'WARREN_MAX_CONCURRENT', 1, 1),
    heartbeatMs: positiveInt(env, 'WARREN_HEARTBEAT_MS', 5000, 10),
    home: env.HOME || homedir(),
  };
}

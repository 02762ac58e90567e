import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import pino from 'pino';
import type PinoPretty from 'pino-pretty';
import { agentLlmDistDir } from '@warren/agent-llm';
import { WarrenError, type Logger } from '@warren/core';
import { BOARD_FORMATS, type BoardFormatName, type BoardMapping } from '@warren/kanban';
import { openRegistry, runningSupervisorPid as supervisorPidIn, type Registry } from '@warren/registry';
import { openDatabase } from '@warren/store';
import { resolveConfig, type SupervisorConfig, type SupervisorOptions } from '../config.js';
import { loadMappingFile } from '../mapping.js';

/** Exit codes of the CLI. */
export const ExitCode = { ok: 0, failed: 1, usage: 2 } as const;

/** The board formats `--format` accepts. */
export const BOARD_FORMAT_NAMES = BOARD_FORMATS.map((f) => f.name);

/** The path options every command takes (see {@link addPathOptions}). */
export interface PathFlags {
  root?: string;
  board?: string;
  agents?: string;
  home?: string;
  policies?: string;
  providers?: string;
  stateDir?: string;
  uidRange?: string;
  format?: BoardFormatName;
  mapping?: string;
}

const agentRunnerDir = dirname(dirname(fileURLToPath(import.meta.resolve('@warren/agent-runner'))));

/** Adds the path options (`--root`, `--board`, `--agents`, `--home`, `--policies`, `--state-dir`, `--uid-range`) to `command`. */
export function addPathOptions(command: Command): Command {
  return command
    .option('--root <dir>', 'repository root; the default base of every other path', '.')
    .option('--board <dir>', 'the kanban board folder (default: <root>/kanban)')
    .option('--agents <dir>', 'the agent templates folder (default: <root>/agents)')
    .option('--home <dir>', 'where agent homes are made (default: <root>/home)')
    .option('--policies <dir>', 'folder with model.conf and policy.csv (default: <root>/policies)')
    .option('--providers <dir>', 'folder with one YAML file per LLM provider (default: <root>/providers)')
    .option('--state-dir <dir>', 'runtime state: database, JetStream store, logs (default: <root>/var)')
    .option('--uid-range <min-max>', 'agent uids and gids come from this range', '1900000000-1900999999');
}

/** The supervisor's configuration from the command's flags and the environment `env`. @throws {ConfigError} on a bad value. */
export function configFrom(flags: PathFlags & Partial<SupervisorOptions>, env: NodeJS.ProcessEnv): SupervisorConfig {
  const options: SupervisorOptions = {
    root: flags.root ?? '.',
    ...(flags.board ? { board: flags.board } : {}),
    ...(flags.format ? { format: flags.format } : {}),
    ...(flags.mapping ? { mapping: flags.mapping } : {}),
    ...(flags.agents ? { agents: flags.agents } : {}),
    ...(flags.home ? { home: flags.home } : {}),
    ...(flags.policies ? { policies: flags.policies } : {}),
    ...(flags.providers ? { providers: flags.providers } : {}),
    ...(env.WARREN_AGENT_CLIS ? { agentClis: env.WARREN_AGENT_CLIS } : {}),
    ...(flags.stateDir ? { stateDir: flags.stateDir } : {}),
    ...(flags.uidRange ? { uidRange: flags.uidRange } : {}),
    ...(flags.natsUrl ?? env.NATS_URL ? { natsUrl: flags.natsUrl ?? env.NATS_URL } : {}),
    ...(flags.natsReplicas !== undefined ? { natsReplicas: Number(flags.natsReplicas) } : {}),
    ...(flags.natsCreds ?? env.NATS_CREDS ? { natsCreds: flags.natsCreds ?? env.NATS_CREDS } : {}),
    ...(flags.natsUser ?? env.NATS_USER ? { natsUser: flags.natsUser ?? env.NATS_USER } : {}),
    ...(env.NATS_PASSWORD ? { natsPassword: env.NATS_PASSWORD } : {}),
    ...(flags.instance ? { instance: flags.instance } : {}),
    ...(flags.kubeNamespace ? { kubeNamespace: flags.kubeNamespace } : {}),
    ...(flags.kubeImage ? { kubeImage: flags.kubeImage } : {}),
    ...(flags.kubeContext ? { kubeContext: flags.kubeContext } : {}),
    ...(flags.kubeRuntimeClass ? { kubeRuntimeClass: flags.kubeRuntimeClass } : {}),
    ...(flags.killGrace ? { killGrace: flags.killGrace } : {}),
    ...(flags.tickInterval ? { tickInterval: flags.tickInterval } : {}),
    ...(flags.heartbeatTimeout ? { heartbeatTimeout: flags.heartbeatTimeout } : {}),
    ...(flags.restartBackoff ? { restartBackoff: flags.restartBackoff } : {}),
    ...(flags.aging ? { aging: flags.aging } : {}),
    ...(flags.diskReserve ? { diskReserve: flags.diskReserve } : {}),
    ...(flags.maxAttempts !== undefined ? { maxAttempts: Number(flags.maxAttempts) } : {}),
    ...(flags.http ?? env.WARREN_HTTP ? { http: flags.http ?? env.WARREN_HTTP } : {}),
    ...(flags.auditKey ? { auditKey: flags.auditKey } : {}),
    ...(flags.nodeName ? { nodeName: flags.nodeName } : {}),
    ...(flags.nodeLabels ? { nodeLabels: flags.nodeLabels } : {}),
    ...(flags.nodeMaxAgents !== undefined ? { nodeMaxAgents: Number(flags.nodeMaxAgents) } : {}),
    ...(flags.nodeMemory !== undefined ? { nodeMemory: flags.nodeMemory } : {}),
    ...(flags.localNode === false ? { localNode: false } : {}),
    ...(env.WARREN_FAULT_INJECTION === '1' && env.WARREN_CRASH_AT ? { crashAt: env.WARREN_CRASH_AT as SupervisorOptions['crashAt'] } : {}),
    ...(flags.logLevel ?? env.WARREN_LOG_LEVEL ? { logLevel: (flags.logLevel ?? env.WARREN_LOG_LEVEL) as SupervisorOptions['logLevel'] } : {}),
  };
  return resolveConfig(options, agentRunnerDir, agentLlmDistDir());
}

/** The root logger: pino to stderr, pretty unless `WARREN_LOG_FORMAT=json`. */
export function makeLogger(config: SupervisorConfig, env: NodeJS.ProcessEnv): Logger {
  const options = { level: config.logLevel, redact: ['*.credential', '*.secret', '*.token'] };
  if (env.WARREN_LOG_FORMAT === 'json') return pino(options, pino.destination({ fd: 2, sync: true }));
  // Loaded only for pretty lines (a CommonJS package, so synchronously): JSON logs never need it.
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  return pino(
    options,
    pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true }),
  );
}

/** The pid of the supervisor running on the state directory of `config`, if any. */
export function runningSupervisorPid(config: SupervisorConfig): number | undefined {
  return supervisorPidIn(config.stateDir);
}

/** The board-loading options given on the command line (`--format`, `--mapping`). */
export async function boardOptions(flags: { format?: BoardFormatName; mapping?: string }): Promise<{ format?: BoardFormatName; mapping?: BoardMapping }> {
  return {
    ...(flags.format ? { format: flags.format } : {}),
    ...(flags.mapping ? { mapping: await loadMappingFile(flags.mapping) } : {}),
  };
}

/**
 * Opens the registry over the state database of `config` for a command; the caller closes
 * `registry.db`.
 * @throws {WarrenError} `WARREN_NO_STATE` when there is no database yet.
 */
export function openStateRegistry(config: SupervisorConfig): Registry {
  const path = join(config.stateDir, 'warren.db');
  if (!existsSync(path)) {
    throw new WarrenError('WARREN_NO_STATE', `no state at ${path} yet: run 'warren up' or 'warren run --until-idle' first`);
  }
  const db = openDatabase(path);
  try {
    return openRegistry(db, { stateDir: config.stateDir });
  } catch (error) {
    db.close();
    throw error;
  }
}

/** Runs `read` on the registry over the state database of `config`, then closes the database. */
export function withRegistry<T>(config: SupervisorConfig, read: (registry: Registry) => T): T {
  const registry = openStateRegistry(config);
  try {
    return read(registry);
  } finally {
    registry.db.close();
  }
}

/** A text table: columns padded to their widest cell, two spaces apart, the last one unpadded. */
export function table(rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')}\n`;
}

/** Prints `value` as JSON with `json`, else the text `text()` returns. */
export function print(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : text());
}

/** An ISO 8601 time, or '-' for none. */
export const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : '-');

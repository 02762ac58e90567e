import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import pino from 'pino';
import pretty from 'pino-pretty';
import { agentLlmDistDir, AGENT_LLM_DIR_IN_SANDBOX } from '@warren/agent-llm';
import { AGENT_SDK_DIR_IN_SANDBOX, agentSdkDistDir } from '@warren/agent-sdk';
import { connectBroker } from '@warren/broker';
import { ConfigError, parseBytes, parseDurationMs, processExists, WarrenError, type Logger } from '@warren/core';
import { NODE_NAME_PATTERN, NodeDaemon, readNodeJoin } from '@warren/node';
import { AGENT_CLIS_IN_SANDBOX, createBubblewrapRuntime } from '@warren/runtime';
import { registerNodeList } from './node-list.js';

/** The agent runner package directory (holding dist/main.js), bound into every sandbox. */
const agentRunnerDir = dirname(dirname(fileURLToPath(import.meta.resolve('@warren/agent-runner'))));
/** The node daemon's pid file in its state directory: one daemon per state directory. */
const NODE_PID_FILE = 'node.pid';
/** Label keys and values: like Kubernetes label values, 1 to 63 of `[A-Za-z0-9._-]`. */
const LABEL_PART = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

/** Flags of `warren node start`. */
interface NodeStartFlags {
  join: string;
  name: string;
  labels?: string;
  maxAgents: string;
  memory?: string;
  cpus?: string;
  stateDir: string;
  root: string;
  agents?: string;
  heartbeat: string;
  killGrace: string;
  logLevel?: string;
}

/**
 * Parses `k=v,k2=v2` (`--labels`). @throws {ConfigError} naming the option and the bad entry.
 */
export function parseLabels(text: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (text === undefined || text.trim() === '') return labels;
  for (const entry of text.split(',')) {
    const [key, value, ...rest] = entry.trim().split('=');
    if (key === undefined || value === undefined || rest.length > 0 || !LABEL_PART.test(key) || !(value === '' || LABEL_PART.test(value))) {
      throw new ConfigError('--labels', `${JSON.stringify(entry)} is not key=value (1 to 63 of [A-Za-z0-9._-], starting and ending alphanumeric)`);
    }
    if (key in labels) throw new ConfigError('--labels', `label ${key} is given twice`);
    labels[key] = value;
  }
  return labels;
}

function positiveInteger(text: string, option: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new ConfigError(option, `${JSON.stringify(text)} is not a positive integer`);
  return value;
}

function makeNodeLogger(level: string | undefined, env: NodeJS.ProcessEnv): Logger {
  const options = { level: level ?? env.WARREN_LOG_LEVEL ?? 'info', redact: ['*.credential', '*.secret', '*.token', '*.password'] };
  if (env.WARREN_LOG_FORMAT === 'json') return pino(options, pino.destination({ fd: 2, sync: true }));
  return pino(options, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true }));
}

/** Takes the state directory for one daemon; a live one already there is an error. @returns what releases it. */
function lockNodeStateDir(stateDir: string): () => void {
  const pidFile = join(stateDir, NODE_PID_FILE);
  let other: number | undefined;
  try {
    other = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    other = undefined;
  }
  if (other !== undefined && Number.isInteger(other) && other > 0 && other !== process.pid && processExists(other)) {
    throw new WarrenError('WARREN_BUSY', `another node daemon (pid ${other}) is using ${stateDir}`);
  }
  writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
  return () => rmSync(pidFile, { force: true });
}

/**
 * Runs a node daemon until SIGTERM or SIGINT, then stops its agents (SIGTERM, SIGKILL after the
 * kill grace) and returns 0.
 */
async function startNode(flags: NodeStartFlags): Promise<number> {
  if (!NODE_NAME_PATTERN.test(flags.name)) throw new ConfigError('--name', `${JSON.stringify(flags.name)} is not a node name ([a-z][a-z0-9-]{0,62})`);
  const labels = parseLabels(flags.labels);
  const maxAgents = positiveInteger(flags.maxAgents, '--max-agents');
  const cpus = flags.cpus === undefined ? availableParallelism() : positiveInteger(flags.cpus, '--cpus');
  const memoryBytes = flags.memory === undefined ? totalmem() : parseBytes(flags.memory, '--memory');
  const heartbeatMs = parseDurationMs(flags.heartbeat, '--heartbeat');
  const killGraceMs = parseDurationMs(flags.killGrace, '--kill-grace');
  const join_ = await readNodeJoin(flags.join);
  const stateDir = resolve(flags.stateDir);
  const root = resolve(flags.root);
  const homeRoot = join(stateDir, 'homes');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  mkdirSync(homeRoot, { recursive: true, mode: 0o755 });
  const log = makeNodeLogger(flags.logLevel, process.env).child({ node: flags.name });
  const unlock = lockNodeStateDir(stateDir);
  try {
    const broker = await connectBroker({
      servers: join_.servers,
      name: `warren-node-${flags.name}`,
      ...(join_.user !== null && join_.password !== null ? { credentials: { kind: 'user-password' as const, user: join_.user, password: join_.password } } : {}),
      ...(join_.instance !== null ? { instance: join_.instance } : {}),
      signingKey: Buffer.from(join_.signingKey, 'hex'),
      logger: log.child({ component: 'broker' }),
    });
    try {
      const runtime = createBubblewrapRuntime({
        stateDir,
        homeRoot,
        runnerDir: agentRunnerDir,
        root,
        agentsBinDir: join(resolve(root, flags.agents ?? 'agents'), 'bin'),
        systemBinds: [
          { source: resolve(root, process.env.WARREN_AGENT_CLIS ?? 'tools/agent-clis'), target: AGENT_CLIS_IN_SANDBOX },
          { source: agentLlmDistDir(), target: AGENT_LLM_DIR_IN_SANDBOX },
          { source: agentSdkDistDir(), target: AGENT_SDK_DIR_IN_SANDBOX },
        ],
        instanceTag: `node-${flags.name}`,
        broker,
        logger: log,
        hostEnv: process.env,
      });
      const reclaimed = await runtime.reclaim();
      if (reclaimed.instances.length + reclaimed.storage.length > 0) log.warn({ ...reclaimed }, 'removed what a previous run left');
      const daemon = await NodeDaemon.start({
        nc: broker.nc,
        broker,
        ns: broker.namespace,
        name: flags.name,
        labels,
        capacity: { cpus, memoryBytes, maxAgents },
        runtime,
        logger: log,
        heartbeatMs,
        homeRoot,
      });
      log.info({ servers: join_.servers, labels, capacity: { cpus, memoryBytes, maxAgents }, stateDir }, 'node running');
      const signal = await new Promise<NodeJS.Signals>((resolveSignal) => {
        for (const name of ['SIGINT', 'SIGTERM'] as const) process.once(name, () => resolveSignal(name));
      });
      log.info({ signal }, 'signal received; stopping the node\'s agents');
      // A shutdown that hangs is a failure: force the exit after the grace period and a margin.
      setTimeout(() => process.exit(1), killGraceMs + 15_000).unref();
      // Heartbeats go on while the agents stop, so the supervisor gets their exits, not a lost node.
      await daemon.stopAll(killGraceMs);
      await daemon.close();
      await runtime.close();
      log.info({}, 'node stopped');
      return 0;
    } finally {
      await broker.close().catch(() => undefined);
    }
  } finally {
    unlock();
  }
}

/** Adds `warren node start`: a node daemon running agents for a supervisor on another host. */
export function registerNodeCommands(program: Command): void {
  const node = program.command('node').description('run agents on this host for a Warren supervisor elsewhere');
  registerNodeList(node);
  node
    .command('start')
    .description('join the Warren named in a join file and run its agents here until SIGINT or SIGTERM')
    .requiredOption('--join <file>', "the supervisor's node-join.json (copy it from its state dir; it is a secret)")
    .requiredOption('--name <name>', 'this node\'s name, [a-z][a-z0-9-]{0,62}')
    .option('--labels <k=v,…>', 'labels templates may require (placement.labels)')
    .option('--max-agents <n>', 'agents run here at most', '8')
    .option('--memory <size>', 'memory offered to agents (default: the host\'s total)')
    .option('--cpus <n>', 'CPUs offered to agents (default: the host\'s)')
    .requiredOption('--state-dir <dir>', 'the node\'s state: agents\' homes, logs, runtime files')
    .option('--root <dir>', 'base of relative paths (agents/bin, tools/agent-clis)', '.')
    .option('--agents <dir>', 'the templates folder whose bin/ is bound into sandboxes (default: <root>/agents)')
    .option('--heartbeat <duration>', 'time between heartbeats', '2s')
    .option('--kill-grace <duration>', 'time agents get between SIGTERM and SIGKILL when the node stops', '5s')
    .addOption(new Option('--log-level <level>').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']))
    .action(async (flags: NodeStartFlags) => {
      process.exitCode = await startNode(flags);
    });
}

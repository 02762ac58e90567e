/**
 * `warren-pod-agent`: the program of an agent's pod. It reads `~/.warren/nats.json` and
 * `~/.warren/agent.json` (see `config.ts`), connects a broker as the agent (its NKey, its inbox
 * prefix, only its own signing key), starts the agent's `AgentGateway` on a socket under `/tmp`
 * whose events travel to the supervisor's `ChannelHub` over NATS (`relayChannel` of
 * `@warren/node`), runs the agent runner (`WARREN_RUNNER_PATH`, default
 * `/opt/warren/agent-runner/dist/main.js`) as its child with the runner's settings, and exits with
 * the runner's exit code (128 + the signal number when a signal ended it) after publishing the
 * `exited` event. SIGTERM and SIGINT are passed on to the runner (which finishes its shutdown);
 * the supervisor's `shutdown` control does the same. A configuration error exits 78 (EX_CONFIG)
 * with one line on stderr naming the file and field.
 */
import { spawn } from 'node:child_process';
import { chmod, lstat, mkdir, unlink, writeFile } from 'node:fs/promises';
import { homedir, constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import { connectBroker, type Broker } from '@warren/broker';
import type { Logger } from '@warren/core';
import { relayChannel } from '@warren/node';
import { AgentGateway, type AgentExit } from '@warren/runtime';
import { readPodAgentConfig, type PodAgentConfig } from './config.js';

/**
 * Writes `files` under `home` as this process's user: parents made 0700; a file already there is
 * kept unless `overwrite`; a symlink in its place is replaced, never followed.
 * @returns the paths written.
 */
export async function writeHomeFiles(home: string, files: PodAgentConfig['homeFiles']): Promise<string[]> {
  const written: string[] = [];
  for (const file of files) {
    const target = join(home, file.path);
    const existing = await lstat(target).catch(() => undefined);
    if (existing !== undefined && !existing.isSymbolicLink() && file.overwrite !== true) continue;
    if (existing !== undefined) await unlink(target);
    await mkdir(dirname(target), { recursive: true, mode: 0o700 });
    await writeFile(target, Buffer.from(file.contentBase64, 'base64'), { mode: file.mode, flag: 'wx' });
    await chmod(target, file.mode);
    written.push(file.path);
  }
  return written;
}

/** The runner's bundle in the image unless `WARREN_RUNNER_PATH` says otherwise. */
export const DEFAULT_RUNNER_PATH = '/opt/warren/agent-runner/dist/main.js';

/** One JSON object a line on stderr (the container log), pino's field names. */
function stderrLogger(bindings: Record<string, unknown> = {}): Logger {
  const line = (level: number, obj: object, msg?: string): void => {
    const fields: Record<string, unknown> = { level, time: Date.now(), ...bindings };
    for (const [key, value] of Object.entries(obj)) fields[key] = value instanceof Error ? { message: value.message, stack: value.stack } : value;
    if (msg !== undefined) fields.msg = msg;
    process.stderr.write(`${JSON.stringify(fields)}\n`);
  };
  return {
    trace: () => undefined,
    debug: () => undefined,
    info: (obj, msg) => line(30, obj, msg),
    warn: (obj, msg) => line(40, obj, msg),
    error: (obj, msg) => line(50, obj, msg),
    child: (more) => stderrLogger({ ...bindings, ...more }),
  };
}

/** Runs the pod agent; resolves with the process's exit code. */
export async function runPodAgent(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const home = env.HOME || homedir();
  const log = stderrLogger({ component: 'warren-pod-agent' });
  let config;
  try {
    config = await readPodAgentConfig(home);
  } catch (error) {
    process.stderr.write(`warren-pod-agent: ${(error as Error).message}\n`);
    return 78;
  }
  const { nats, agent } = config;
  const logger = log.child({ agent: agent.agent, instance: agent.instance });
  try {
    const written = await writeHomeFiles(home, agent.homeFiles);
    if (written.length > 0) logger.info({ files: written }, 'home files written');
  } catch (error) {
    logger.error({ err: error }, 'cannot write the home files');
    return 73; // EX_CANTCREAT
  }
  let broker: Broker;
  try {
    broker = await connectBroker({
      servers: nats.servers,
      name: `warren-pod-${agent.agent}`,
      credentials: { kind: 'nkey', seed: nats.nkeySeed },
      inboxPrefix: nats.inboxPrefix,
      ...(agent.brokerInstance === null ? {} : { instance: agent.brokerInstance }),
      ...(agent.signingKey === null ? {} : { agentKey: { agent: agent.agent, key: Buffer.from(agent.signingKey, 'hex') } }),
      logger,
    });
  } catch (error) {
    logger.error({ err: error }, 'cannot connect to the broker');
    return 69; // EX_UNAVAILABLE
  }
  let runnerExited = false;
  let child: ReturnType<typeof spawn> | undefined;
  let terminating = false;
  const signalRunner = (signal: NodeJS.Signals): void => {
    if (child !== undefined && !runnerExited) child.kill(signal);
    else terminating = true;
  };
  const onTerm = (): void => signalRunner('SIGTERM');
  const onInt = (): void => signalRunner('SIGINT');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  let gateway: AgentGateway | undefined;
  const relay = relayChannel({
    nc: broker.nc,
    ns: broker.namespace,
    agent: agent.agent,
    instance: agent.instance,
    logger,
    control: {
      cancel: (taskId, attempt, reason) => gateway?.cancel(taskId, attempt, reason),
      resend: (taskId, attempt) => void gateway?.resendResult(taskId, attempt),
      shutdown: (why) => {
        if (gateway) gateway.requestShutdown(why);
        else signalRunner('SIGTERM');
      },
    },
  });
  const socketDir = join('/tmp', 'warren-gateway');
  try {
    gateway = await AgentGateway.start({
      identity: {
        name: agent.agent,
        template: agent.template,
        uid: process.getuid?.() ?? 0,
        gid: process.getgid?.() ?? 0,
        home,
        capabilities: agent.capabilities,
      },
      socketDir,
      broker,
      logger: logger.child({ component: 'gateway' }),
      events: relay,
      ...(agent.ackTimeoutMs === undefined ? {} : { ackTimeoutMs: agent.ackTimeoutMs }),
    });
  } catch (error) {
    logger.error({ err: error }, 'cannot start the agent gateway');
    relay.exited({ kind: 'setup_error', message: `cannot start the agent gateway: ${(error as Error).message}` });
    await relay.close();
    await broker.close();
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    return 70; // EX_SOFTWARE
  }
  const runnerPath = env.WARREN_RUNNER_PATH || DEFAULT_RUNNER_PATH;
  const exit = await new Promise<{ code: number; exit: AgentExit }>((resolve) => {
    if (terminating) {
      resolve({ code: 143, exit: { kind: 'signaled', signal: 'SIGTERM' } });
      return;
    }
    const runner = spawn(process.execPath, [runnerPath], {
      env: {
        PATH: env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
        HOME: home,
        LANG: env.LANG ?? 'C.UTF-8',
        ...Object.fromEntries(Object.entries(env).filter(([key]) => !key.startsWith('WARREN_') && key !== 'NODE_OPTIONS')),
        WARREN_AGENT: agent.agent,
        WARREN_AGENT_SOCKET: join(socketDir, 'agent.sock'),
        WARREN_RUNTIME: JSON.stringify(agent.runner.runtime ?? { kind: 'shell' }),
        WARREN_MAX_CONCURRENT: String(agent.runner.maxConcurrent),
        WARREN_HEARTBEAT_MS: String(agent.runner.heartbeatIntervalMs),
      },
      stdio: ['ignore', 'inherit', 'inherit'],
      cwd: home,
    });
    child = runner;
    runner.once('error', (error) => {
      runnerExited = true;
      resolve({ code: 70, exit: { kind: 'setup_error', message: `cannot start the agent runner ${runnerPath}: ${error.message}` } });
    });
    runner.once('exit', (code, signal) => {
      runnerExited = true;
      if (signal !== null) {
        resolve({ code: 128 + ((osConstants.signals as Record<string, number | undefined>)[signal] ?? 0), exit: { kind: 'signaled', signal } });
      } else if (code === 0) {
        resolve({ code: 0, exit: { kind: 'succeeded', exitCode: 0 } });
      } else {
        resolve({ code: code ?? 1, exit: { kind: 'failed', exitCode: code ?? 1 } });
      }
    });
  });
  process.off('SIGTERM', onTerm);
  process.off('SIGINT', onInt);
  relay.exited(exit.exit);
  await gateway.close().catch((error: unknown) => logger.warn({ err: error }, 'gateway close failed'));
  await relay.close();
  await broker.close();
  return exit.code;
}

import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { openAccounts } from '@warren/accounts';
import { openAudit } from '@warren/audit';
import { WarrenError, type Logger } from '@warren/core';
import { loadPolicy } from '@warren/policy';
import { connectBroker } from '@warren/broker';
import { ChannelHub, readNodeJoin, RemoteNodeRuntime } from '@warren/node';
import { describeExit, describeOutOfMemory, describeProcessLimit, type AgentExit, type AgentProcess, type AgentRuntime } from '@warren/runtime';
import { openDatabase } from '@warren/store';
import { createAuthorizer } from './authorize.js';
import { agentSpecOf, createAgentRuntime } from './agent-runtime.js';
import type { SupervisorConfig } from './config.js';
import { loadTemplates } from './templates.js';
import { NODE_JOIN_FILE } from './placement/join-file.js';
import { AgentPlacements } from './placement/store.js';

/** Options of {@link execInAgent}. */
export interface ExecOptions {
  readonly agent: string;
  /** The command to run, absolute path or name on the agent's PATH, then its arguments. */
  readonly argv: readonly string[];
  /** Who asks (`user:<name>`): the policy subject and the audit actor. */
  readonly user: string;
  /**
   * Receive the command's stdout and stderr while it runs, every byte in order, with backpressure
   * (the command waits while a stream's buffer is full). A stream that fails (EPIPE: its reader is
   * gone) closes the command's pipe, as in a shell pipeline. Never ended here.
   */
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
}

/**
 * Runs a command inside an agent's sandbox exactly as its tasks run (the way `kubectl exec` does):
 * its uid and gid, its home, its limits, its read-only mounts, no network, the seccomp filter. The
 * policy decides first (`sub` = `user`, `obj` = `agent:<name>`, `act` = `exec`), and the request and
 * its outcome are audited. Output is streamed while the command runs, through pipes with
 * backpressure: nothing is dropped. SIGINT, SIGTERM and SIGHUP to this process stop the command
 * (SIGTERM, then SIGKILL to its whole tree after the kill grace), remove its cgroups and run
 * directory and audit the end with the signal. What an exec killed with SIGKILL left (cgroups named
 * after its pid, `run/exec/<pid>`) is removed by the next exec on the same state directory.
 * @returns the command's exit code (128 + n when killed by signal n, or when this process was
 *   interrupted by signal n; 1 for any other end, such as an OOM kill, with the reason written to
 *   stderr).
 * @throws {WarrenError} `WARREN_NO_AGENT` for an unknown agent, `WARREN_POLICY_DENIED` when refused.
 */
export async function execInAgent(config: SupervisorConfig, options: ExecOptions): Promise<number> {
  const db = openDatabase(join(config.stateDir, 'warren.db'));
  let runtime: AgentRuntime;
  try {
    // Where the agent was last placed: a `warren node` host is driven over NATS, this host directly.
    const placed = new AgentPlacements(db).get(options.agent);
    if (placed?.target === 'kubernetes') throw new WarrenError('WARREN_USAGE', `${options.agent} runs as a Kubernetes pod: exec into it with kubectl exec`);
    if (placed?.node && placed.node !== config.localNode?.name) {
      runtime = await remoteNodeRuntime(config, placed.node, options.logger);
    } else {
      runtime = createAgentRuntime(config, { logger: options.logger, hostEnv: options.hostEnv });
      await runtime.probe().catch(async (error: unknown) => {
        await runtime.close();
        throw error;
      });
    }
  } catch (error) {
    db.close();
    throw error;
  }
  try {
    const accounts = openAccounts(db, { homeRoot: config.homeRoot, uidMin: config.uidMin, uidMax: config.uidMax });
    const audit = openAudit(db);
    const account = accounts.get(options.agent);
    if (!account) throw new WarrenError('WARREN_NO_AGENT', `no agent named ${options.agent}`);
    const { templates } = await loadTemplates(config.agentsDir, config.root);
    const template = templates.get(account.template);
    if (!template) throw new WarrenError('WARREN_NO_AGENT', `${options.agent}'s template ${account.template} is not in ${config.agentsDir}`);
    const policy = await loadPolicy({
      modelPath: join(config.policiesDir, 'model.conf'),
      policyPath: join(config.policiesDir, 'policy.csv'),
      logger: options.logger,
    });
    const object = `agent:${account.name}`;
    const authorizer = createAuthorizer({ policy, emit: (entry) => audit.append(entry), logger: options.logger });
    authorizer.require({ principal: options.user, object, action: 'exec' }, `policy denies ${options.user} exec into ${account.name}`);

    const interruption = new Interruption();
    let command: AgentProcess;
    try {
      command = await runtime.exec(agentSpecOf(account, template), options.argv, { stdout: options.stdout, stderr: options.stderr });
    } catch (error) {
      interruption.close();
      throw error;
    }
    audit.append({ actor: options.user, action: 'agent.exec', object, details: { argv: options.argv, sandboxPid: command.pid } });
    const signal = await interruption.stopOnSignal(command, config.killGraceMs);
    const exit = await command.exited;
    interruption.close();
    audit.append({ actor: options.user, action: 'agent.exec_exit', object, details: { exit, argv: options.argv, ...(signal ? { signal } : {}) } });
    if (signal) {
      options.stderr.write(`warren: interrupted by ${signal}; the command was stopped (${describeExit(exit)})\n`);
      return 128 + SIGNALS[signal];
    }
    return exitCodeOf(exit, options.stderr, template.resources);
  } finally {
    db.close();
    await runtime.close();
  }
}

/**
 * The runtime of `warren node` host `node` for one exec: a broker connection with the join file
 * of `config`'s supervisor (`<stateDir>/node-join.json`) and a `RemoteNodeRuntime`; its `close()`
 * closes the runtime, its channel hub and the connection.
 * @throws {ConfigError} when the join file cannot be read; what connecting throws.
 */
async function remoteNodeRuntime(config: SupervisorConfig, node: string, logger: Logger): Promise<AgentRuntime> {
  const joined = await readNodeJoin(join(config.stateDir, NODE_JOIN_FILE));
  const broker = await connectBroker({
    servers: joined.servers,
    name: `warren-exec-${node}`,
    ...(joined.user !== null && joined.password !== null ? { credentials: { kind: 'user-password' as const, user: joined.user, password: joined.password } } : {}),
    ...(joined.instance !== null ? { instance: joined.instance } : {}),
    signingKey: Buffer.from(joined.signingKey, 'hex'),
    logger,
  });
  const hub = new ChannelHub({ nc: broker.nc, ns: broker.namespace, logger });
  const remote = new RemoteNodeRuntime({ nc: broker.nc, ns: broker.namespace, node, hub, logger });
  const close = async (): Promise<void> => {
    await remote.close();
    hub.close();
    await broker.close();
  };
  return {
    probe: (isolation) => remote.probe(isolation),
    reclaim: () => remote.reclaim(),
    start: (spec, events) => remote.start(spec, events),
    exec: (agent, argv, output) => remote.exec(agent, argv, output),
    detachStorage: (agent) => remote.detachStorage(agent),
    releaseStorage: (agent) => remote.releaseStorage(agent),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** The signals that interrupt an exec. */
const INTERRUPTS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type Interrupt = (typeof INTERRUPTS)[number];

/**
 * Catches SIGINT, SIGTERM and SIGHUP from construction until {@link close}, so that this process
 * outlives them long enough to stop its command and clean up.
 */
class Interruption {
  private signal: Interrupt | undefined;
  private wake: (() => void) | undefined;
  private readonly handlers = new Map<Interrupt, () => void>();

  constructor() {
    for (const name of INTERRUPTS) {
      const handler = (): void => {
        this.signal ??= name;
        this.wake?.();
      };
      this.handlers.set(name, handler);
      process.on(name, handler);
    }
  }

  /**
   * Waits until the command ends or a signal arrives (also one that arrived while it started);
   * on a signal stops the command (SIGTERM, SIGKILL after `graceMs`) and waits for its end.
   * @returns the signal, or undefined when the command ended by itself.
   */
  async stopOnSignal(command: AgentProcess, graceMs: number): Promise<Interrupt | undefined> {
    if (this.signal === undefined) {
      const signalled = new Promise<void>((resolve) => (this.wake = resolve));
      await Promise.race([command.exited, signalled]);
      this.wake = undefined;
    }
    if (this.signal === undefined) return undefined;
    await command.stop(graceMs);
    return this.signal;
  }

  /** Restores the default handling of the signals. Idempotent. */
  close(): void {
    for (const [name, handler] of this.handlers) process.off(name, handler);
    this.handlers.clear();
    this.wake = undefined;
  }
}

const SIGNALS: Record<string, number> & Record<Interrupt, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };

function exitCodeOf(exit: AgentExit, stderr: Writable, limits: { readonly memoryMaxBytes: number; readonly pidsMax: number }): number {
  switch (exit.kind) {
    case 'succeeded':
      return 0;
    case 'failed':
      return exit.exitCode;
    case 'signaled':
      return 128 + (SIGNALS[exit.signal] ?? 0);
    case 'oom':
      stderr.write(`warren: ${describeOutOfMemory(limits.memoryMaxBytes)}\n`);
      return 1;
    case 'pids':
      stderr.write(`warren: ${describeProcessLimit(limits.pidsMax)}\n`);
      return 1;
    default:
      stderr.write(`warren: ${describeExit(exit)}\n`);
      return 1;
  }
}

import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { AGENT_SDK_BIN_IN_SANDBOX, RUNNER_BUNDLE_NAME, type Runtime } from '@warren/agent-runner';
import type { Broker } from '@warren/broker';
import { lazyChildLogger, processExists, silentLogger, WarrenError, type Logger } from '@warren/core';
import {
  assertIsolation,
  ensureHomeImage,
  probeHost,
  releaseHomeImage,
  removeOrphanCgroups,
  removeStaleCgroups,
  removeStaleMounts,
  spawnSandbox,
  type Sandbox,
} from '@warren/sandbox';
import { RuntimeError } from './errors.js';
import { DirectInstance, directOutputSink, startWaitingSandbox, type WaitingSandbox } from './direct.js';
import { AgentGateway } from './gateway.js';
import type {
  AgentEvents,
  AgentExecOptions,
  AgentMount,
  ChannelService,
  AgentExit,
  AgentInstance,
  AgentIsolation,
  AgentProcess,
  AgentRuntime,
  AgentSpec,
  AgentStartSpec,
  AgentStopReason,
  AgentStorageRef,
  AgentUsage,
  ReclaimReport,
  RuntimeHost,
} from './runtime.js';
import { agentSandboxSpec, AGENT_PATH, homeInSandbox, instanceTag, RUNNER_IN_SANDBOX, type SandboxHostPaths } from './sandbox-spec.js';

/** Options of {@link createBubblewrapRuntime}. */
export interface BubblewrapRuntimeOptions {
  /**
   * Warren's state directory (absolute): sandboxes' generated files go to `run/agents/<name>` and
   * `run/exec/<pid>`, instance logs to `logs/<name>.log`, home images to `home-images/<name>.ext4`.
   */
  readonly stateDir: string;
  /** The directory holding the agents' homes (absolute); mounts left below it by a crashed run are removed by `reclaim()`. */
  readonly homeRoot: string;
  /** The agent runner package directory (holding `dist/runner.cjs` or `dist/main.js`), bound read-only into every sandbox. */
  readonly runnerDir: string;
  /** The templates' programs (`agents/bin`), bound read-only when the directory exists. Default: none. */
  readonly agentsBinDir?: string;
  /** What relative mount sources are resolved against (the repository root). */
  readonly root: string;
  /** Prefix of this runtime's sandbox names (cgroups, hostnames). Default `instanceTag(stateDir)`. */
  readonly instanceTag?: string;
  /** The broker the agent channels bridge to; needed by `start()` only (an exec has no channel). */
  readonly broker?: Broker;
  /** Receives the channels' and sandboxes' lines (as children `{ component, agent }`). Default: silent. */
  readonly logger?: Logger;
  /** The environment the specs' `environment` allow-lists read from. Default: none. */
  readonly hostEnv?: Readonly<Record<string, string | undefined>>;
  /** How long a runner has to ack a task before its broker message is nak'ed, in ms. Default 15000. */
  readonly ackTimeoutMs?: number;
  /** Host-side services served on their own sockets in each instance's channel directory (the LLM gateway). Default: none. */
  readonly channelServices?: readonly ChannelService[];
  /**
   * Host directories bound read-only into every sandbox (instances and execs) when they exist:
   * the coding-agent CLIs, Warren's agent loop, repository mirrors. Default: none.
   */
  readonly systemBinds?: readonly AgentMount[];
}

/**
 * Makes the bubblewrap driver of {@link AgentRuntime}: each instance is a bubblewrap sandbox
 * (namespaces, setpriv to the agent's uid, cgroup limits, seccomp; see `@warren/sandbox`) running
 * the agent runner, whose channel is a Unix socket served by an {@link AgentGateway} and bound
 * into the sandbox at /run/warren. A home with a quota is an ext4 image mounted on the home. Does
 * no I/O: call `probe()` and `reclaim()` before the first `start()`.
 * @throws {RuntimeError} if a path option is not absolute.
 */
export function createBubblewrapRuntime(options: BubblewrapRuntimeOptions): AgentRuntime {
  for (const key of ['stateDir', 'homeRoot', 'runnerDir', 'root'] as const) {
    if (!isAbsolute(options[key])) throw new RuntimeError('-', `option ${key} ${JSON.stringify(options[key])} must be an absolute path`);
  }
  return new BubblewrapRuntime(options);
}

/**
 * Slots of the {@link AgentRuntime.exec} sandboxes running in this process. An exec is named after
 * the pid and its slot: slot 0 (the only one a `warren exec` process uses) is `<tag>-<agent>-x<pid>`
 * with run directory `run/exec/<pid>`; slot n > 0 adds `-<n>` to both.
 */
const execSlots = new Set<number>();

/** The lowest free exec slot, now taken. */
function takeExecSlot(): number {
  let slot = 0;
  while (execSlots.has(slot)) slot += 1;
  execSlots.add(slot);
  return slot;
}

/**
 * The runner file a sandbox starts, relative to the runner's `dist/`: the one-file bundle
 * (`RUNNER_BUNDLE_NAME` of `@warren/agent-runner`, about 20 ms of CPU less per start than the
 * module graph) when it exists and is not older than the package's last compilation (`dist/main.js`
 * and `tsconfig.tsbuildinfo`, which `tsc -b` rewrites whenever a source changed: a build that
 * skipped the bundle step must not run stale code), else `main.js`. Three stats per start.
 */
function runnerEntry(runnerDir: string): string {
  const mtime = (path: string): number => statSync(join(runnerDir, path), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const bundle = statSync(join(runnerDir, 'dist', RUNNER_BUNDLE_NAME), { throwIfNoEntry: false });
  if (bundle !== undefined && bundle.mtimeMs >= Math.max(mtime(join('dist', 'main.js')), mtime('tsconfig.tsbuildinfo'))) return RUNNER_BUNDLE_NAME;
  return 'main.js';
}

/**
 * The runtime a per-task instance runs directly (without a runner), or null when it needs the
 * runner: `perTask` is not set, or the runtime is not `shell` or a valid `exec`.
 */
function directRuntime(spec: AgentStartSpec): Runtime | null {
  if (spec.runner.perTask !== true) return null;
  const runtime = spec.runner.runtime as { kind?: unknown; command?: unknown } | null;
  if (runtime?.kind === 'shell') return { kind: 'shell' };
  if (runtime?.kind === 'exec' && Array.isArray(runtime.command) && runtime.command.length > 0 && runtime.command.every((part) => typeof part === 'string')) {
    return { kind: 'exec', command: runtime.command };
  }
  return null;
}

/** Matches the suffix of an exec sandbox's name: `-x<pid>` or `-x<pid>-<slot>`. */
const EXEC_NAME = /-x(\d+)(?:-\d+)?$/;
/** Matches an exec's run directory name: `<pid>` or `<pid>-<slot>`. */
const EXEC_DIR = /^(\d+)(?:-\d+)?$/;

class BubblewrapRuntime implements AgentRuntime {
  private readonly log: Logger;
  private readonly tag: string;
  private readonly host: SandboxHostPaths;
  private closed = false;

  constructor(private readonly options: BubblewrapRuntimeOptions) {
    this.log = options.logger ?? silentLogger;
    this.tag = options.instanceTag ?? instanceTag(options.stateDir);
    this.host = {
      runnerDir: options.runnerDir,
      ...(options.agentsBinDir === undefined ? {} : { agentsBinDir: options.agentsBinDir }),
      root: options.root,
      hostEnv: options.hostEnv ?? {},
      ...(options.systemBinds ? { systemBinds: options.systemBinds } : {}),
    };
  }

  async probe(isolation: AgentIsolation = 'full'): Promise<RuntimeHost> {
    const host = await probeHost();
    assertIsolation(host, isolation === 'unsafe' ? 'unsafe-no-cgroups' : 'full');
    return { driver: 'bubblewrap', isolation, details: { ...host } };
  }

  async reclaim(): Promise<ReclaimReport> {
    this.requireOpen('reclaim', '-');
    // A leftover whose killed processes do not leave its cgroup (frozen, or stuck in the kernel)
    // must not keep the supervisor from starting: it is logged and left; an agent of that name
    // then fails to start on its own ("the name is in use") while the others run.
    const instances = await removeStaleCgroups({
      onBusy: (error) => this.log.warn({ err: error, cgroup: error.path }, 'a leftover cgroup stays busy after its processes were killed; left in place'),
    });
    await removeExecLeftovers(this.options.stateDir, this.log, this.tag);
    // Home images a killed run left mounted (after the cgroups: nothing may still use them).
    await mkdir(this.options.homeRoot, { recursive: true, mode: 0o755 });
    const storage = await removeStaleMounts(this.options.homeRoot);
    await rm(join(this.options.stateDir, 'run', 'agents'), { recursive: true, force: true });
    return { instances, storage };
  }

  async start(spec: AgentStartSpec, events: AgentEvents): Promise<AgentInstance> {
    this.requireOpen('start', spec.name);
    const { broker } = this.options;
    if (!broker) throw new RuntimeError(spec.name, 'starting an instance needs a broker (option broker of createBubblewrapRuntime)');
    const { stateDir } = this.options;
    const { name } = spec;
    if (spec.homeQuotaBytes !== null) {
      const images = join(stateDir, 'home-images');
      await mkdir(images, { recursive: true, mode: 0o700 });
      await ensureHomeImage({ imagePath: join(images, `${name}.ext4`), sizeBytes: spec.homeQuotaBytes, mountPoint: spec.homeDir, uid: spec.uid, gid: spec.gid });
    }
    await spec.prepareHome?.();
    const runDir = join(stateDir, 'run', 'agents', name);
    const socketDir = join(runDir, 'socket');
    const gateway = await AgentGateway.start({
      identity: { name, template: spec.template, uid: spec.uid, gid: spec.gid, home: homeInSandbox(name), capabilities: spec.capabilities },
      socketDir,
      broker,
      logger: lazyChildLogger(this.log, { component: 'gateway', agent: name }),
      events,
      ...(this.options.ackTimeoutMs === undefined ? {} : { ackTimeoutMs: this.options.ackTimeoutMs }),
    });
    const services: { close(): Promise<void> }[] = [];
    const closeServices = async (): Promise<void> => {
      for (const service of services.splice(0)) {
        await service.close().catch((error: unknown) => this.log.warn({ err: error, agent: name }, 'cannot close a channel service'));
      }
    };
    let spawning: Promise<WaitingSandbox> | undefined;
    try {
      for (const service of this.options.channelServices ?? []) {
        const served = await service.serve(spec, join(socketDir, service.socketName));
        if (served) services.push(served);
      }
      const runnerEnv = {
        WARREN_RUNTIME: JSON.stringify(spec.runner.runtime),
        WARREN_MAX_CONCURRENT: String(spec.runner.maxConcurrent),
        WARREN_HEARTBEAT_MS: String(spec.runner.heartbeatIntervalMs),
        ...(spec.runner.idleHeartbeatIntervalMs === undefined ? {} : { WARREN_IDLE_HEARTBEAT_MS: String(spec.runner.idleHeartbeatIntervalMs) }),
      };
      const logger = lazyChildLogger(this.log, { component: 'sandbox', agent: name });
      const spawnRunner = (): Promise<Sandbox> =>
        spawnSandbox(
          agentSandboxSpec(spec, this.host, {
            sandboxName: `${this.tag}-${name}`,
            argv: ['/usr/bin/node', `${RUNNER_IN_SANDBOX}/dist/${runnerEntry(this.options.runnerDir)}`],
            env: runnerEnv,
            runDir,
            logPath: spec.logPath ?? join(stateDir, 'logs', `${name}.log`),
            socketDir,
          }),
          { logger },
        );
      const runtime = directRuntime(spec);
      if (runtime) {
        // Direct mode: no runner; each task's process is the only process of its own sandbox.
        const base = agentSandboxSpec(spec, this.host, { sandboxName: `${this.tag}-${name}`, argv: ['/bin/true'], env: runnerEnv, runDir, logPath: join(runDir, 'unused.log'), socketDir });
        const directLog = lazyChildLogger(this.log, { component: 'direct', agent: name });
        // The first task's sandbox, started now: a shell waiting for its script (slot 0's name and run directory).
        const taskDir = join(runDir, 'task0');
        const waitingSpec = agentSandboxSpec(spec, this.host, { sandboxName: `${this.tag}-${name}`, argv: ['/bin/sh', '-s'], env: {}, runDir: taskDir, logPath: join(taskDir, 'output.log'), socketDir });
        // Not awaited: the instance says hello at once, so the agent's consumer, the plan and the
        // assignment's publish and workspace overlap this spawn (the instance waits for it to write
        // the task's script, and ends with a setup_error if it fails).
        const waiting = startWaitingSandbox((output) => spawnSandbox(waitingSpec, { logger, output, stdin: 'pipe' }), directLog);
        spawning = waiting;
        const instance = new DirectInstance(
          name,
          {
            runtime,
            home: spec.homeDir,
            processHome: homeInSandbox(name),
            uid: spec.uid,
            gid: spec.gid,
            unsafe: spec.isolation === 'unsafe',
            env: base.env,
            waitingEnv: Object.keys(waitingSpec.env),
            agentSdkBinPresent: (base.readOnlyBinds ?? []).some((b) => {
              const inside = relative(b.target, AGENT_SDK_BIN_IN_SANDBOX);
              return !inside.startsWith('..') && !isAbsolute(inside) && existsSync(join(b.source, inside));
            }),
            heartbeatIntervalMs: spec.runner.heartbeatIntervalMs,
            log: directLog,
            spawnTask: (request, slot) => {
              const taskDir = join(runDir, `task${slot}`);
              const taskSpec = agentSandboxSpec(spec, this.host, {
                sandboxName: slot === 0 ? `${this.tag}-${name}` : `${this.tag}-${name}-t${slot}`,
                argv: request.argv,
                env: {},
                runDir: taskDir,
                // Not made: the output goes to the execution (output.log in the workspace).
                logPath: join(taskDir, 'output.log'),
                socketDir,
              });
              return spawnSandbox(
                { ...taskSpec, env: { ...request.env }, cwd: request.cwd },
                {
                  logger,
                  output: { stdout: directOutputSink((chunk) => request.onOutput(chunk, true)), stderr: directOutputSink((chunk) => request.onOutput(chunk, false)) },
                },
              );
            },
            spawnRunner,
          },
          gateway,
          closeServices,
          waiting,
        );
        return instance;
      }
      const sandbox = await spawnRunner();
      return new BubblewrapInstance(name, sandbox, gateway, closeServices);
    } catch (error) {
      // A sandbox being spawned for an instance that could not be made is stopped once it exists.
      spawning?.then((made) => made.sandbox.stop(0)).catch(() => undefined);
      await closeServices();
      await gateway.close();
      throw error;
    }
  }

  async exec(agent: AgentSpec, argv: readonly string[], options: AgentExecOptions): Promise<AgentProcess> {
    this.requireOpen('exec', agent.name);
    const [program, ...args] = argv;
    if (!program) throw new WarrenError('WARREN_USAGE', 'exec needs a command');
    // The sandbox sees the host's /usr read-only, so a bare name is looked up on the agent's PATH there.
    const dirs = AGENT_PATH.split(':');
    const resolved = isAbsolute(program) ? program : dirs.map((dir) => join(dir, program)).find((path) => existsSync(path));
    if (!resolved) throw new WarrenError('WARREN_USAGE', `${program}: not found on the agent's PATH (${AGENT_PATH})`);
    const slot = takeExecSlot();
    const suffix = slot === 0 ? String(process.pid) : `${process.pid}-${slot}`;
    const runDir = join(this.options.stateDir, 'run', 'exec', suffix);
    let sandbox: Sandbox;
    try {
      await removeExecLeftovers(this.options.stateDir, this.log, this.tag);
      sandbox = await spawnSandbox(
        agentSandboxSpec(agent, this.host, {
          sandboxName: `${this.tag}-${agent.name}-x${suffix}`,
          argv: [resolved, ...args],
          env: {},
          runDir,
          logPath: join(runDir, 'output.log'),
        }),
        { logger: this.log, output: { stdout: options.stdout, stderr: options.stderr } },
      );
    } catch (error) {
      await rm(runDir, { recursive: true, force: true });
      execSlots.delete(slot);
      throw error;
    }
    const exited = sandbox.exited.then(async (exit) => {
      await rm(runDir, { recursive: true, force: true }).catch((error: unknown) =>
        this.log.warn({ err: error, path: runDir }, 'cannot remove the run directory of an ended exec'),
      );
      execSlots.delete(slot);
      return exit;
    });
    return {
      pid: sandbox.pid,
      exited,
      stop: async (graceMs?: number) => {
        await sandbox.stop(graceMs);
        return exited;
      },
    };
  }

  async detachStorage(agent: AgentStorageRef): Promise<boolean> {
    if (agent.homeDir === undefined || !this.hasHomeImage(agent.name)) return false;
    return releaseHomeImage(agent.homeDir);
  }

  async releaseStorage(agent: AgentStorageRef): Promise<void> {
    if (!this.hasHomeImage(agent.name)) return;
    if (agent.homeDir !== undefined) await releaseHomeImage(agent.homeDir).catch(() => false);
    await rm(join(this.options.stateDir, 'home-images', `${agent.name}.ext4`), { force: true });
  }

  /**
   * Whether agent `name` has a home image. Without one nothing of it can be mounted (an image is
   * made before it is mounted and deleted only once unmounted; `reclaim()` unmounts what a crash
   * left): one stat instead of reading /proc/self/mountinfo, which waits on the mount namespace's
   * lock while sandboxes are being set up (37 ms an agent under load, on the event loop).
   */
  private hasHomeImage(name: string): boolean {
    return existsSync(join(this.options.stateDir, 'home-images', `${name}.ext4`));
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private requireOpen(what: string, agent: string): void {
    if (this.closed) throw new RuntimeError(agent, `cannot ${what}: the runtime is closed`);
  }
}

/** One agent instance: its sandbox and its channel. */
class BubblewrapInstance implements AgentInstance {
  readonly exited: Promise<AgentExit>;
  private ended = false;
  private closing: Promise<void> | undefined;

  constructor(
    readonly name: string,
    private readonly sandbox: Sandbox,
    private readonly gateway: AgentGateway,
    private readonly closeServices: () => Promise<void>,
  ) {
    this.exited = sandbox.exited.then((exit) => {
      this.ended = true;
      return exit;
    });
  }

  get pid(): number {
    return this.sandbox.pid;
  }

  get unsafe(): boolean {
    return this.sandbox.unsafe;
  }

  get connected(): boolean {
    return this.gateway.connected;
  }

  stop(graceMs?: number, reason?: AgentStopReason): Promise<AgentExit> {
    return this.sandbox.stop(graceMs, reason);
  }

  freeze(): boolean {
    return this.sandbox.freeze();
  }

  thaw(): void {
    this.sandbox.thaw();
  }

  usage(): AgentUsage {
    return this.sandbox.usage();
  }

  cancel(taskId: string, attempt: number, reason: string): void {
    this.gateway.cancel(taskId, attempt, reason);
  }

  resendResult(taskId: string, attempt: number): boolean {
    return this.gateway.resendResult(taskId, attempt);
  }

  requestShutdown(why: string): void {
    this.gateway.requestShutdown(why);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.closeServices();
      await this.gateway.close();
      if (!this.ended) await this.sandbox.stop();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Removes what execs on `stateDir` left when they were killed with SIGKILL: the cgroups named
 * `<instance tag>-<agent>-x<pid>[-<slot>]` and the directories `run/exec/<pid>[-<slot>]` whose pid
 * is no longer alive. Failures are logged, never thrown: a leftover must not stop a new exec.
 * @param tag the runtime's sandbox name prefix; default `instanceTag(stateDir)`.
 */
export async function removeExecLeftovers(stateDir: string, logger: Logger, tag: string = instanceTag(stateDir)): Promise<void> {
  const prefix = `${tag}-`;
  try {
    await removeOrphanCgroups((name) => {
      const match = EXEC_NAME.exec(name);
      return name.startsWith(prefix) && match !== null && Number(match[1]) !== process.pid && !processExists(Number(match[1]));
    });
  } catch (error) {
    logger.warn({ err: error }, 'cannot remove the cgroups of an ended exec');
  }
  const execDir = join(stateDir, 'run', 'exec');
  let entries: string[] = [];
  try {
    entries = readdirSync(execDir);
  } catch {
    return;
  }
  for (const entry of entries) {
    const match = EXEC_DIR.exec(entry);
    if (match === null || Number(match[1]) === process.pid || processExists(Number(match[1]))) continue;
    await rm(join(execDir, entry), { recursive: true, force: true }).catch((error: unknown) =>
      logger.warn({ err: error, path: join(execDir, entry) }, 'cannot remove the run directory of an ended exec'),
    );
  }
}

import type { Writable } from 'node:stream';
import type { GatewayEvents } from './gateway.js';

/**
 * How an agent instance or an exec ended. Exactly one kind applies; a driver classifies in this
 * order:
 * - `setup_error`: the runtime never started the agent's program; `message` says why.
 * - `timeout` / `watchdog`: the caller stopped it with that reason ({@link AgentStopReason})
 *   before it ended; `detail` is the caller's text.
 * - `oom`: it was killed for using more memory than `resources.memoryMaxBytes` and did not exit 0.
 * - `pids`: its process limit (`resources.pidsMax`) refused a fork and it did not exit 0.
 * - `signaled`: its main process was killed by `signal` (e.g. `SIGKILL`, also after `stop()`).
 * - `succeeded`: it exited with code 0.
 * - `failed`: it exited with a non-zero `exitCode`.
 * - `lost`: the node it ran on stopped reporting (no heartbeat within its deadline), so whether
 *   and how it ended is unknown; `detail` says which node and since when. Only a remote runtime
 *   reports it.
 */
export type AgentExit =
  | { readonly kind: 'succeeded'; readonly exitCode: 0 }
  | { readonly kind: 'failed'; readonly exitCode: number }
  | { readonly kind: 'signaled'; readonly signal: string }
  | { readonly kind: 'oom' }
  | { readonly kind: 'pids' }
  | { readonly kind: 'timeout'; readonly detail: string }
  | { readonly kind: 'watchdog'; readonly detail: string }
  | { readonly kind: 'setup_error'; readonly message: string }
  | { readonly kind: 'lost'; readonly detail: string };

/** Why a caller stops an instance, recorded as the exit kind (see {@link AgentInstance.stop}). */
export interface AgentStopReason {
  readonly reason: 'timeout' | 'watchdog';
  /** Free text kept in the exit, e.g. which limit was exceeded and for how long. */
  readonly detail: string;
}

/**
 * What an instance uses now, for the given whole process tree:
 * - `memoryBytes`: memory charged to it, in bytes.
 * - `pids`: processes and threads alive.
 * - `cpuMs`: CPU time used since it started, in ms (user + system).
 * - `pidsRefused`: forks its process limit refused since it started.
 * - `oomKills`: processes killed for memory since it started.
 * A runtime that cannot count the last two reports 0.
 */
export interface AgentUsage {
  readonly memoryBytes: number;
  readonly pids: number;
  readonly cpuMs: number;
  readonly pidsRefused: number;
  readonly oomKills: number;
}

/**
 * Resource limits of one agent. Sizes in bytes.
 * - `memoryMaxBytes`: memory limit (RAM, no swap); past it the agent is killed (exit kind `oom`).
 * - `pidsMax`: processes and threads of the whole tree.
 * - `cpuWeight`: relative CPU share, 1..10000, 100 = default.
 * - `nofile`: open files per process. `fsizeBytes`: the largest file it may write.
 * - `tmpfsBytes`: size of its private /tmp.
 */
export interface AgentResources {
  readonly memoryMaxBytes: number;
  readonly pidsMax: number;
  readonly cpuWeight: number;
  readonly nofile: number;
  readonly fsizeBytes: number;
  readonly tmpfsBytes: number;
}

/**
 * How strictly an agent is isolated: `full` (the default, every limit enforced), or `unsafe`, only
 * for a template that asks for weaker isolation by name (`isolation: unsafe-no-cgroups`): the
 * runtime may then run it without its memory, process and CPU limits when the host cannot enforce
 * them, and marks the instance {@link AgentInstance.unsafe}.
 */
export type AgentIsolation = 'full' | 'unsafe';

/** A host directory made visible to the agent, read-only, at `target` (an absolute path inside). */
export interface AgentMount {
  /** The host path; a relative one is resolved against the runtime's `root`. */
  readonly source: string;
  readonly target: string;
}

/**
 * Who an agent is and how it is confined: what an instance and an exec into it share, so that an
 * exec runs exactly as the agent's tasks do.
 */
export interface AgentSpec {
  /** The account name, `[a-z][a-z0-9-]{0,31}` (e.g. `shell-1`); unique among live instances of the runtime. */
  readonly name: string;
  /** The template it was made from (e.g. `shell`). */
  readonly template: string;
  /** Numeric user and group ids (never 0). */
  readonly uid: number;
  readonly gid: number;
  /** The agent's persistent home on the host, owned by `uid` (mode 0700); the only place it may write besides /tmp. */
  readonly homeDir: string;
  /** Its login shell for the passwd entry it sees. Default `/bin/sh`. */
  readonly shell?: string;
  readonly resources: AgentResources;
  /** Default `full`. */
  readonly isolation?: AgentIsolation;
  /** Names of variables copied from the runtime's `hostEnv`, when set there (the template's allow-list). */
  readonly environment?: readonly string[];
  /** Variables set for the agent, after the base ones and the allow-list. */
  readonly env?: Readonly<Record<string, string>>;
  /** Host directories bound read-only (the template's mounts). */
  readonly mounts?: readonly AgentMount[];
}

/** What the agent runner inside an instance is told (its environment). */
export interface AgentRunnerSettings {
  /** How it runs a task: the template's runtime, passed through as JSON (`{ kind: 'shell' }`, `{ kind: 'exec', command }`). */
  readonly runtime: unknown;
  /** Executions it runs at once. */
  readonly maxConcurrent: number;
  /** How often it sends a heartbeat, in ms. */
  readonly heartbeatIntervalMs: number;
  /**
   * How often it sends a heartbeat while no task runs or waits, in ms (at least
   * `heartbeatIntervalMs`). Default `heartbeatIntervalMs`; a driver whose runner cannot be told
   * beats at that rate, which is never too often.
   */
  readonly idleHeartbeatIntervalMs?: number;
  /**
   * True when an instance runs one task and ends (an `autodelete` template). A driver may then run
   * a `shell` or `exec` runtime's tasks without a runner (the bubblewrap driver's direct mode: each
   * task's process is the only process of its own sandbox). Default false.
   */
  readonly perTask?: boolean;
}

/** Everything a runtime needs to start one agent instance (runtime-neutral). */
export interface AgentStartSpec extends AgentSpec {
  /** The capabilities it offers, told to the runner in its welcome. */
  readonly capabilities: readonly string[];
  readonly runner: AgentRunnerSettings;
  /**
   * Size of the home's own filesystem in bytes (its quota), or null for a home on the shared
   * filesystem. With a quota the home is attached before the start and stays attached until
   * {@link AgentRuntime.detachStorage}.
   */
  readonly homeQuotaBytes: number | null;
  /** Host file receiving the instance's stdout and stderr. Default `<stateDir>/logs/<name>.log`. */
  readonly logPath?: string;
  /**
   * Called once the home is attached (its image mounted, when it has a quota) and before the
   * agent's program starts: seed files, secrets. A rejection fails the start.
   */
  readonly prepareHome?: () => Promise<void>;
}

/**
 * A host-side service an agent reaches through its channel directory (the LLM gateway): the
 * runtime calls `serve` when it starts an instance, with a socket path in the directory it binds
 * into the sandbox at /run/warren, and closes what `serve` returned when the instance ends.
 */
export interface ChannelService {
  /** The socket's file name, e.g. `llm.sock`; the agent sees it at `/run/warren/<socketName>`. */
  readonly socketName: string;
  /**
   * Serves `spec`'s agent on `socketPath`; the socket must be usable by `spec.uid` only.
   * @returns what to close when the instance ends, or null when this agent gets no such service.
   */
  serve(spec: AgentStartSpec, socketPath: string): Promise<{ close(): Promise<void> } | null>;
}

/**
 * What an instance tells its owner: the agent channel's callbacks (runner hello, task acked,
 * heartbeats, disconnects, protocol errors, and the decisions on messages and assignments).
 * Callbacks must not throw.
 */
export type AgentEvents = GatewayEvents;

/** A running agent instance, from {@link AgentRuntime.start}. */
export interface AgentInstance {
  readonly name: string;
  /** The host pid of the instance's outermost process (0 while a direct instance has no sandbox, e.g. while its first one is being spawned). */
  readonly pid: number;
  /** True when it runs with weaker isolation than `full` (see {@link AgentIsolation}); show it wherever the agent appears. */
  readonly unsafe: boolean;
  /** Settles once the instance has ended and what it held on the node (processes, limits) is gone. Never rejects. */
  readonly exited: Promise<AgentExit>;
  /** True while the agent runner is connected to its channel. */
  readonly connected: boolean;
  /**
   * Stops the instance: SIGTERM to every process, SIGKILL to the whole tree after `graceMs`
   * (default 5000). With `reason` (given before it ended) the exit kind is that reason carrying its
   * detail. Idempotent: later calls return the first call's promise. Resolves with the exit.
   */
  stop(graceMs?: number, reason?: AgentStopReason): Promise<AgentExit>;
  /**
   * Freezes every process at once, synchronously, so it writes nothing more. Frozen processes do
   * not act on SIGTERM: follow with `stop(0)`.
   * @returns false when it ended or the runtime cannot freeze (nothing was frozen).
   */
  freeze(): boolean;
  /** Lets the processes frozen by {@link freeze} run again (nothing when none are). */
  thaw(): void;
  /** Current memory, process count and CPU time of the whole tree; cheap enough for every tick. After the end memory and pids read 0. */
  usage(): AgentUsage;
  /** Asks the runner to cancel an execution. No-op when it is not connected. */
  cancel(taskId: string, attempt: number, reason: string): void;
  /**
   * Publishes again the result of (`taskId`, `attempt`) if this instance's channel published one
   * (same message id: the broker drops a duplicate). @returns whether there was one to send.
   */
  resendResult(taskId: string, attempt: number): boolean;
  /** Asks the runner to finish and exit (`why`: e.g. `sleep`, `shutdown`). No-op when it is not connected. */
  requestShutdown(why: string): void;
  /**
   * Closes the agent channel (stops consuming, drops the connection, removes the socket) and, if
   * the instance still runs, stops it with the default grace. Idempotent.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Where an exec's output goes, and how. */
export interface AgentExecOptions {
  /**
   * Receive the command's stdout and stderr while it runs, every byte in order, with backpressure
   * (the command waits while a stream's buffer is full). A stream that fails (EPIPE) closes the
   * command's pipe, as in a shell pipeline. Never ended by the runtime.
   */
  readonly stdout: Writable;
  readonly stderr: Writable;
}

/** A command running as an agent, from {@link AgentRuntime.exec}. */
export interface AgentProcess {
  /** The host pid of its outermost process. */
  readonly pid: number;
  /** Settles once it has ended and everything the runtime made for it is removed. Never rejects. */
  readonly exited: Promise<AgentExit>;
  /** SIGTERM, then SIGKILL to the whole tree after `graceMs` (default 5000). Idempotent; resolves with the exit. */
  stop(graceMs?: number): Promise<AgentExit>;
}

/** What {@link AgentRuntime.probe} found: the host can run agents with the isolation asked for. */
export interface RuntimeHost {
  /** The driver's name, e.g. `bubblewrap`. */
  readonly driver: string;
  /** The isolation checked. */
  readonly isolation: AgentIsolation;
  /** Driver-specific facts (programs found, limits available), as plain JSON. */
  readonly details: Readonly<Record<string, unknown>>;
}

/** What {@link AgentRuntime.reclaim} removed. */
export interface ReclaimReport {
  /** Instances a crashed run left (their processes killed, their limits removed), by the driver's name for them. */
  readonly instances: readonly string[];
  /** Storage a crashed run left attached, by its path. */
  readonly storage: readonly string[];
}

/**
 * Runs agents: the seam between Warren's supervisor and wherever agents execute (a local
 * sandbox, a pod, a remote node). The supervisor and `warren exec` use only this interface.
 * Agents are named by {@link AgentSpec.name}; a runtime holds no state a restart would need.
 */
export interface AgentRuntime {
  /**
   * Checks that the host can run agents with `isolation` (default `full`); changes nothing.
   * @throws {MissingCapabilityError} (code `WARREN_MISSING_CAPABILITY`) listing what is missing, with an install hint.
   */
  probe(isolation?: AgentIsolation): Promise<RuntimeHost>;
  /**
   * Removes what a crashed run of this runtime left: instances still holding processes or
   * limits, ended execs' leftovers, attached storage, runtime directories. Call once at start,
   * before any {@link start}.
   * @throws {WarrenError} if something stays busy.
   */
  reclaim(): Promise<ReclaimReport>;
  /**
   * Starts one instance of an agent: attaches its home storage (with a quota), opens its agent
   * channel, which reports through `events`, and starts the agent runner confined as `spec` says.
   * Resolves once it runs (not once the runner said hello: that is `events.hello`); a per-task
   * instance without a runner (the bubblewrap driver's direct mode) resolves, and says hello, once
   * its channel is open, while its first sandbox is still being spawned (its `pid` is 0 until
   * then; a spawn that fails ends it with a `setup_error` exit). On failure nothing it made stays
   * open.
   * @throws {WarrenError} if the spec is invalid (naming the field), the storage cannot be
   *   attached, or the instance cannot be started.
   */
  start(spec: AgentStartSpec, events: AgentEvents): Promise<AgentInstance>;
  /**
   * Runs a command as the agent, confined exactly as its instances are (its uid, home, limits,
   * mounts), with output streamed to `options`. The program is an absolute path or a name looked
   * up on the agent's PATH (/usr/local/bin:/usr/bin:/bin). Several execs may run at once, into the
   * same agent or others, beside its instance.
   * @throws {WarrenError} `WARREN_USAGE` for an empty `argv` or a program not found; others if it cannot start.
   */
  exec(agent: AgentSpec, argv: readonly string[], options: AgentExecOptions): Promise<AgentProcess>;
  /**
   * Detaches the home storage of an agent whose instance has ended (unmounts a quota'd home); the
   * storage itself is kept for its next start. @returns false when nothing was attached.
   * @throws {WarrenError} if it stays busy.
   */
  detachStorage(agent: AgentStorageRef): Promise<boolean>;
  /**
   * Releases an agent's persistent storage for good (its account is deleted): detaches it,
   * ignoring a failure, and deletes the home image. Never throws for storage already gone.
   */
  releaseStorage(agent: AgentStorageRef): Promise<void>;
  /**
   * Closes the runtime: later `start`, `exec` and `reclaim` throw `RuntimeError`. Instances already
   * started keep running; their owner stops and closes them. Idempotent.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Names an agent's storage: its account name and, when the account still exists, its home on the host. */
export interface AgentStorageRef {
  readonly name: string;
  readonly homeDir?: string;
}

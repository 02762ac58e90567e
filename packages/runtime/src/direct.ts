import { Writable } from 'node:stream';
import {
  PROTOCOL_VERSION,
  startExecution,
  type Execution,
  type GatewayFrame,
  type ResultFrame,
  type Runtime,
  type TaskFrame,
  type TaskProcess,
  type TaskProcessRequest,
} from '@warren/agent-runner';
import type { Logger } from '@warren/core';
import { binShIsDash, type Sandbox, type SandboxExit } from '@warren/sandbox';
import type { AgentGateway, LocalChannel } from './gateway.js';
import type { AgentExit, AgentInstance, AgentStopReason, AgentUsage } from './runtime.js';

/** Between SIGTERM and SIGKILL of a task's sandbox on timeout or cancel, in ms (the runner's default). */
const KILL_GRACE_MS = 2000;

/** How a direct instance starts things: a task's sandbox, and the runner when a task needs it. */
export interface DirectHost {
  /** The runtime as the runner would read it from `WARREN_RUNTIME`: `shell` or `exec` only. */
  readonly runtime: Runtime;
  /** The agent's home on the host. */
  readonly home: string;
  /** The agent's home inside its sandboxes. */
  readonly processHome: string;
  readonly uid: number;
  readonly gid: number;
  /** Whether its sandboxes run with weaker isolation than `full`. */
  readonly unsafe: boolean;
  /** The environment the runner would have (the sandbox's), to which a task adds its own variables. */
  readonly env: Readonly<Record<string, string>>;
  /** Whether the agent SDK's `warren-bus` directory exists inside the sandbox. */
  readonly agentSdkBinPresent: boolean;
  /** The names of the waiting sandbox's environment (see {@link taskScript}); null when not known. */
  readonly waitingEnv: readonly string[] | null;
  /** Interval of the instance's heartbeats, in ms. */
  readonly heartbeatIntervalMs: number;
  /**
   * Spawns the sandbox of one task (slot `slot`: 0 for the first execution running, n for the
   * (n+1)-th at once) with the request's argv, env and cwd, its output passed to the request's
   * `onOutput`.
   */
  spawnTask(request: TaskProcessRequest, slot: number): Promise<Sandbox>;
  /** Spawns the agent runner's sandbox, which connects to the gateway's socket. */
  spawnRunner(): Promise<Sandbox>;
  readonly log: Logger;
}

/** The process end the runner would have seen for a task's sandbox ending with `exit`. */
function processEndOf(exit: SandboxExit): { code: number | null; signal: string | null; error?: Error } {
  switch (exit.kind) {
    case 'succeeded':
      return { code: 0, signal: null };
    case 'failed':
      return { code: exit.exitCode, signal: null };
    case 'signaled':
      return { code: null, signal: exit.signal };
    case 'oom':
      return { code: null, signal: 'SIGKILL' };
    case 'pids':
      return { code: null, signal: null, error: new Error('process limit reached (pids.max refused a fork)') };
    case 'setup_error':
      return { code: null, signal: null, error: new Error(exit.message) };
    case 'timeout':
    case 'watchdog':
      return { code: null, signal: 'SIGKILL' };
  }
}

/** A shell word: `value` in single quotes, each `'` written as `'\\''` (POSIX XCU 2.2.2: nothing inside single quotes is special). */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** A name the shell can `export` and `unset`. */
const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The script a {@link WaitingSandbox}'s shell reads to become the task's process: `cd` to its
 * working directory, then exec the request's argv with exactly the request's environment (nothing
 * of the waiting shell's) as the only process in the sandbox (the shell replaces itself). Every
 * word is single-quoted ({@link shellQuote}). When the shell is dash, `shellEnv` names every
 * variable of the waiting shell's environment, the program is an absolute path and all names are
 * shell names, the shell sets the environment itself: it unsets `shellEnv`'s variables and the
 * `PWD` and `OLDPWD` its `cd` exported, exports the request's and `exec`s the argv (no other exec).
 * Otherwise it runs `exec /usr/bin/env -i NAME=VALUE… ARGV…`.
 * @param shellEnv the names of the waiting shell's environment, or null when not known (env -i then).
 * @returns null when `env` cannot carry the request: an empty argv, a program name containing `=`
 * (env would read it as an assignment), or a variable name that is empty or contains `=` or NUL.
 */
export function taskScript(request: Pick<TaskProcessRequest, 'argv' | 'env' | 'cwd'>, shellEnv: readonly string[] | null = null): string | null {
  const [program] = request.argv;
  if (program === undefined || program.includes('=') || [...request.argv, request.cwd].some((word) => word.includes('\0'))) return null;
  const assignments: string[] = [];
  for (const [name, value] of Object.entries(request.env)) {
    if (name === '' || name.includes('=') || name.includes('\0') || value.includes('\0')) return null;
    assignments.push(shellQuote(`${name}=${value}`));
  }
  const cd = `cd ${shellQuote(request.cwd)} || exit 126\n`;
  const argv = request.argv.map(shellQuote).join(' ');
  // stdin: /dev/null, as a runner gives its tasks (the shell's own stdin is the script's pipe).
  if (shellEnv !== null && binShIsDash() && program.startsWith('/') && [...shellEnv, ...Object.keys(request.env)].every((name) => SHELL_NAME.test(name))) {
    const unset = `unset PWD OLDPWD${shellEnv.map((name) => ` ${name}`).join('')}\n`;
    const exported = assignments.length > 0 ? `export ${assignments.join(' ')}\n` : '';
    return `${cd}${unset}${exported}exec ${argv} </dev/null\n`;
  }
  return `${cd}exec /usr/bin/env -i ${[...assignments, argv].join(' ')} </dev/null\n`;
}

/**
 * A sandbox started ahead of its task whose only process is `/bin/sh` reading a script from its
 * stdin (a pipe from the host): {@link taskScript} written there makes it the task's process.
 */
export interface WaitingSandbox {
  readonly sandbox: Sandbox;
  /** Where its stdout and stderr go from now on (before: the instance's log, at debug level). */
  route(onOutput: (chunk: Buffer, stdout: boolean) => void): void;
}

/**
 * Spawns a {@link WaitingSandbox} with `spawn`, which must start `/bin/sh -s` with stdin a pipe
 * (`stdin: 'pipe'` of `spawnSandbox`) and its output to the streams it is given.
 * @throws what `spawn` throws, or when the sandbox has no stdin pipe (it is stopped first).
 */
export async function startWaitingSandbox(
  spawn: (output: { stdout: Writable; stderr: Writable }) => Promise<Sandbox>,
  log: Logger,
): Promise<WaitingSandbox> {
  let target = (chunk: Buffer, stdout: boolean): void => log.debug({ stdout, text: chunk.toString('utf8', 0, Math.min(chunk.length, 1024)) }, 'output of a waiting sandbox');
  const sandbox = await spawn({ stdout: directOutputSink((chunk) => target(chunk, true)), stderr: directOutputSink((chunk) => target(chunk, false)) });
  if (!sandbox.stdin) {
    await sandbox.stop(0);
    throw new Error(`sandbox ${sandbox.name} has no stdin pipe`);
  }
  return {
    sandbox,
    route: (onOutput) => {
      target = onOutput;
    },
  };
}

/** Writes `script` to the waiting sandbox's stdin and closes it; resolves once the pipe took it. @throws when the pipe is closed (the shell is gone). */
function writeScript(sandbox: Sandbox, script: string): Promise<void> {
  const stdin = sandbox.stdin!;
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(new Error(`cannot write to the waiting sandbox ${sandbox.name}: ${error.message}`));
    stdin.once('error', onError);
    stdin.end(script, () => {
      stdin.off('error', onError);
      resolve();
    });
  });
}

/** A writable stream passing every chunk to `push` at once (a task's stdout or stderr to its execution). */
export function directOutputSink(push: (chunk: Buffer) => void): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      push(chunk);
      callback();
    },
  });
}

const ZERO_USAGE: AgentUsage = { memoryBytes: 0, pids: 0, cpuMs: 0, pidsRefused: 0, oomKills: 0 };

/**
 * An instance of a per-task agent with a `shell` or `exec` runtime, run without an agent runner:
 * the host takes the assignments through the gateway's local channel and runs each task's process
 * as the only process of its own sandbox (`startExecution` of `@warren/agent-runner` with the spawn
 * injected), reporting with the runner's frames. Its first task's sandbox is started ahead (a
 * {@link WaitingSandbox}, `/bin/sh` waiting on its stdin, given to the constructor, or the promise
 * of one still being spawned): when the task comes the host makes the workspace, then (once the
 * sandbox is spawned) writes the script that `exec`s the task's process there (the shell runs as
 * the agent, so nothing of the task runs before the host made its files); if it ends before a
 * task, the instance ends with its exit as with a dead runner. Later tasks (and one running while
 * the first does) get a sandbox spawned for them. It is ready at once (`hello`), also while its
 * first sandbox is being spawned, so that the assignment's way to it (the consumer, the plan, the
 * publish, the workspace) overlaps the spawn. A spawn that fails ends the instance with a
 * `setup_error` exit (the agent could not start): a task it had taken is then neither acknowledged
 * nor reported, and the exit settles its execution (lost, run again). The broker message is
 * acknowledged once the script is written or the task's sandbox runs. A task with a `repository`
 * is handed to the runner: the local channel is detached (the gateway naks the message; it comes
 * again in 1 s), the runner's sandbox is started and connects to the socket, and from then on the
 * instance is that sandbox. `pid` is the running task's sandbox, else the waiting one (0 while
 * none exists, e.g. while the first one is being spawned).
 */
export class DirectInstance implements AgentInstance {
  readonly exited: Promise<AgentExit>;
  private resolveExit!: (exit: AgentExit) => void;
  private readonly channel: LocalChannel;
  private readonly executions = new Map<string, { execution: Execution; sandbox: Sandbox | undefined; acked: boolean; slot: number }>();
  private readonly heartbeat: NodeJS.Timeout;
  private stopping: Promise<AgentExit> | undefined;
  private runner: Sandbox | undefined;
  private handingOver = false;
  private ended = false;
  private closing: Promise<void> | undefined;
  private sendCount = 0;
  /**
   * The sandbox started ahead, until the first task takes it (or a stop or the hand-over ends it):
   * `promise` settles once it is spawned (undefined when its spawn failed, which ended the
   * instance), `spawned` is set from then on.
   */
  private waiting: { readonly promise: Promise<WaitingSandbox | undefined>; spawned: WaitingSandbox | undefined } | undefined;
  /** Why the sandbox started ahead could not be spawned, once it failed (the instance has ended). */
  private setupFailure: string | undefined;

  constructor(
    readonly name: string,
    private readonly host: DirectHost,
    private readonly gateway: AgentGateway,
    private readonly closeServices: () => Promise<void>,
    waiting?: WaitingSandbox | Promise<WaitingSandbox>,
  ) {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
    if (waiting) this.waiting = this.watchWaiting(waiting);
    this.channel = gateway.attachLocal((frame) => this.receive(frame));
    this.heartbeat = setInterval(() => this.channel.deliver({ type: 'heartbeat' }), host.heartbeatIntervalMs);
    this.heartbeat.unref();
    this.channel.deliver({ type: 'hello', version: PROTOCOL_VERSION, pid: 0 });
  }

  /**
   * Holds `waiting` (spawned or being spawned) as the sandbox started ahead: once spawned, its end
   * before a task took it (OOM, killed) ends the instance, as with a dead runner; a failed spawn
   * ends it with a `setup_error` exit.
   */
  private watchWaiting(waiting: WaitingSandbox | Promise<WaitingSandbox>): NonNullable<DirectInstance['waiting']> {
    const held: NonNullable<DirectInstance['waiting']> = {
      spawned: undefined,
      promise: Promise.resolve(waiting).then(
        (sandbox) => {
          held.spawned = sandbox;
          sandbox.sandbox.exited.then((exit) => {
            if (this.waiting !== held) return;
            this.waiting = undefined;
            this.host.log.warn({ exit }, 'the waiting sandbox ended before its task');
            this.end(exit);
          }).catch(() => undefined);
          return sandbox;
        },
        (error: unknown) => {
          if (this.waiting === held) this.waiting = undefined;
          this.setupFailure = `cannot start the sandbox: ${(error as Error).message}`;
          this.host.log.warn({ err: error }, 'the sandbox started ahead could not be spawned; the instance ends');
          this.end({ kind: 'setup_error', message: this.setupFailure });
          return undefined;
        },
      ),
    };
    return held;
  }

  get pid(): number {
    if (this.runner) return this.runner.pid;
    for (const { sandbox } of this.executions.values()) if (sandbox) return sandbox.pid;
    return this.waiting?.spawned?.sandbox.pid ?? 0;
  }

  get unsafe(): boolean {
    return this.host.unsafe;
  }

  get connected(): boolean {
    return this.gateway.connected;
  }

  private receive(frame: GatewayFrame): void {
    switch (frame.type) {
      case 'task':
        this.take(frame);
        return;
      case 'cancel':
        this.executions.get(`${frame.taskId}#${frame.attempt}`)?.execution.cancel(frame.reason);
        return;
      case 'shutdown':
        this.stop(KILL_GRACE_MS).catch(() => undefined);
        return;
      case 'error':
        this.host.log.debug({ code: frame.code, ref: frame.ref }, frame.message);
        return;
      default:
        return;
    }
  }

  private take(task: TaskFrame): void {
    if (this.stopping || this.handingOver || this.ended) return;
    const key = `${task.taskId}#${task.attempt}`;
    const known = this.executions.get(key);
    if (known) {
      if (known.acked) this.channel.deliver({ type: 'ack', taskId: task.taskId, attempt: task.attempt });
      return;
    }
    if (task.repository !== undefined) {
      // The git workspace is made by the runner, as the agent, inside the sandbox. Left unacked
      // while other tasks run here (the gateway naks it and it comes again).
      if (this.executions.size === 0) this.handOver();
      return;
    }
    const slots = new Set([...this.executions.values()].map((e) => e.slot));
    let slot = 0;
    while (slots.has(slot)) slot += 1;
    const entry: { execution: Execution; sandbox: Sandbox | undefined; acked: boolean; slot: number } = { execution: undefined!, sandbox: undefined, acked: false, slot };
    const ack = (): void => {
      if (entry.acked) return;
      entry.acked = true;
      this.channel.deliver({ type: 'ack', taskId: task.taskId, attempt: task.attempt });
    };
    // The first task runs in the sandbox started ahead (slot 0, its name), others in their own.
    const waiting = this.waiting;
    this.waiting = undefined;
    const spawnProcess = async (request: TaskProcessRequest): Promise<TaskProcess> => {
      let sandbox: Sandbox;
      if (waiting) {
        // Spawned meanwhile, most often: the workspace was made while it was.
        const spawned = await waiting.promise;
        if (spawned === undefined) throw new Error(this.setupFailure ?? 'the sandbox started ahead could not be spawned');
        sandbox = await this.runInWaiting(spawned, request, slot);
      } else {
        sandbox = await this.host.spawnTask(request, slot);
      }
      entry.sandbox = sandbox;
      // The task runs: its broker message is acknowledged now.
      ack();
      let stopped: 'SIGTERM' | 'SIGKILL' | undefined;
      return {
        // Stopped while bwrap still set it up: the process was killed, as a runner's child would be.
        ended: sandbox.exited.then((exit) => (stopped && exit.kind === 'setup_error' ? { code: null, signal: stopped } : processEndOf(exit))),
        terminate: (graceMs) => {
          stopped ??= 'SIGTERM';
          sandbox.stop(graceMs).catch(() => undefined);
        },
        kill: () => {
          stopped = 'SIGKILL';
          sandbox.stop(0).catch(() => undefined);
        },
      };
    };
    entry.execution = startExecution({
      task,
      runtime: this.host.runtime,
      home: this.host.home,
      processHome: this.host.processHome,
      owner: { uid: this.host.uid, gid: this.host.gid },
      env: this.host.env,
      agent: this.name,
      agentSdkBinPresent: this.host.agentSdkBinPresent,
      killGraceMs: KILL_GRACE_MS,
      spawnProcess,
      onProgress: (message, percent) =>
        this.channel.deliver({ type: 'progress', taskId: task.taskId, attempt: task.attempt, message, ...(percent === undefined ? {} : { percent }) }),
      onSend: (to, body) => {
        this.sendCount += 1;
        this.channel.deliver({ type: 'send', ref: `${key}#${this.sendCount}`, to, body });
      },
    });
    this.executions.set(key, entry);
    entry.execution.result.then((result: ResultFrame) => {
      // The instance could not spawn the sandbox this task was to run in: the task never ran. It
      // is neither acknowledged nor reported; the instance's exit settles it (lost, run again).
      if (entry.sandbox === undefined && this.setupFailure !== undefined) {
        this.executions.delete(key);
        return;
      }
      // A task that failed before its process started (no command, an unsafe workspace) is acknowledged with its result.
      ack();
      this.executions.delete(key);
      this.channel.deliver(result);
    }).catch((error: unknown) => this.host.log.error({ err: error, taskId: task.taskId }, 'cannot report a result'));
  }

  /**
   * Makes the waiting sandbox the task's process: its output routed to the request, the script
   * written. When the request cannot be written as a script ({@link taskScript}) or the shell is
   * gone, the waiting sandbox is stopped and the task gets a sandbox of its own in the same slot.
   */
  private async runInWaiting(waiting: WaitingSandbox, request: TaskProcessRequest, slot: number): Promise<Sandbox> {
    const script = taskScript(request, this.host.waitingEnv);
    if (script === null) {
      await waiting.sandbox.stop(0);
      return this.host.spawnTask(request, slot);
    }
    waiting.route(request.onOutput);
    try {
      await writeScript(waiting.sandbox, script);
    } catch (error) {
      // The shell ended as the task came (the pipe is closed): the task gets a sandbox of its own.
      this.host.log.warn({ err: error }, 'the waiting sandbox is gone; spawning one for the task');
      await waiting.sandbox.stop(0);
      return this.host.spawnTask(request, slot);
    }
    return waiting.sandbox;
  }

  /** Detaches the local channel and starts the runner, which connects to the socket and takes the task again. */
  private handOver(): void {
    this.handingOver = true;
    this.channel.detach();
    clearInterval(this.heartbeat);
    // The waiting sandbox has the runner's name: it ends before the runner starts.
    const waiting = this.waiting;
    this.waiting = undefined;
    (waiting ? waiting.promise.then((spawned) => spawned?.sandbox.stop(0)) : Promise.resolve())
      .then(() => {
        // The sandbox started ahead could not be spawned: the instance has ended, no runner starts.
        if (this.ended) throw new Error(this.setupFailure ?? 'the instance has ended');
        return this.host.spawnRunner();
      })
      .then(
        (sandbox) => {
          this.runner = sandbox;
          sandbox.exited.then((exit) => this.end(exit)).catch(() => undefined);
          // A stop asked for while it started applies to it now.
          if (this.stopping) sandbox.stop(0).catch(() => undefined);
        },
        (error: unknown) => this.end({ kind: 'setup_error', message: `cannot start the agent runner: ${(error as Error).message}` }),
      );
  }

  private end(exit: AgentExit): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.heartbeat);
    this.resolveExit(exit);
  }

  stop(graceMs = 5000, reason?: AgentStopReason): Promise<AgentExit> {
    if (this.runner) return this.runner.stop(graceMs, reason);
    if (this.stopping) {
      if (graceMs <= 0) for (const { execution } of this.executions.values()) execution.kill();
      return this.stopping;
    }
    const waiting = this.waiting;
    this.waiting = undefined;
    this.stopping = (async () => {
      if (this.handingOver) return this.exited;
      await (await waiting?.promise)?.sandbox.stop(graceMs);
      const results = [...this.executions.values()].map(({ execution }) => {
        execution.cancel(reason ? `${reason.reason}: ${reason.detail}` : 'the agent is stopping');
        return execution.result;
      });
      const timer = setTimeout(() => {
        for (const { execution } of this.executions.values()) execution.kill();
      }, graceMs);
      await Promise.all(results);
      clearTimeout(timer);
      // Results are delivered by each execution's handler, queued before this continuation.
      await Promise.resolve();
      this.end(reason ? { kind: reason.reason, detail: reason.detail } : { kind: 'succeeded', exitCode: 0 });
      return this.exited;
    })();
    return this.stopping;
  }

  freeze(): boolean {
    if (this.runner) return this.runner.freeze();
    let frozen = this.waiting?.spawned?.sandbox.freeze() ?? false;
    for (const { sandbox } of this.executions.values()) if (sandbox?.freeze()) frozen = true;
    return frozen;
  }

  thaw(): void {
    if (this.runner) {
      this.runner.thaw();
      return;
    }
    this.waiting?.spawned?.sandbox.thaw();
    for (const { sandbox } of this.executions.values()) sandbox?.thaw();
  }

  usage(): AgentUsage {
    if (this.runner) return this.runner.usage();
    let total = ZERO_USAGE;
    const sandboxes = [...this.executions.values()].map((e) => e.sandbox);
    if (this.waiting?.spawned) sandboxes.push(this.waiting.spawned.sandbox);
    for (const sandbox of sandboxes) {
      if (!sandbox) continue;
      const u = sandbox.usage();
      total = {
        memoryBytes: total.memoryBytes + u.memoryBytes,
        pids: total.pids + u.pids,
        cpuMs: total.cpuMs + u.cpuMs,
        pidsRefused: total.pidsRefused + u.pidsRefused,
        oomKills: total.oomKills + u.oomKills,
      };
    }
    return total;
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
      if (!this.ended) await this.stop();
      clearInterval(this.heartbeat);
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}


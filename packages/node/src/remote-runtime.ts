import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import type { BrokerNamespace } from '@warren/broker';
import type { ZodType } from 'zod';
import { WarrenError, type Logger } from '@warren/core';
import type {
  AgentEvents,
  AgentExecOptions,
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
} from '@warren/runtime';
import type { ChannelHub, RemoteChannel } from './channel.js';
import {
  decodePayload,
  encodePayload,
  errorReplySchema,
  execOutputSchema,
  nodeHeartbeatSchema,
  nodeReplySchemas,
  nodeSubjects,
  type ExecOutput,
  type HomeFile,
  type NodeCommand,
  type NodeHeartbeat,
  type NodeReply,
  type NodeSubjects,
} from './protocol.js';

/** Default time a command to a node waits for its reply, in ms (a start attaches and seeds a home). */
export const DEFAULT_NODE_REQUEST_TIMEOUT_MS = 60_000;
const NO_USAGE: AgentUsage = { memoryBytes: 0, pids: 0, cpuMs: 0, pidsRefused: 0, oomKills: 0 };
const DEFAULT_GRACE_MS = 5_000;

/**
 * A start spec for a remote node: `prepareHome` cannot travel, so the files it would write go in
 * `homeFiles` (see `NodeStartSpec`); a `prepareHome` given anyway is not called.
 */
export type RemoteStartSpec = AgentStartSpec & { readonly homeFiles?: readonly HomeFile[] };

/** Options of {@link RemoteNodeRuntime}. */
export interface RemoteNodeRuntimeOptions {
  /** The supervisor's broker connection. */
  readonly nc: NatsConnection;
  readonly ns: BrokerNamespace;
  /** The node's name. */
  readonly node: string;
  /** The supervisor's channel hub: each instance's channel is attached there before it starts. */
  readonly hub: ChannelHub;
  readonly logger: Logger;
  /** How long a command waits for the node's reply, in ms. Default 60000. */
  readonly requestTimeoutMs?: number;
}

/**
 * `AgentRuntime` for one `warren node` host, over NATS: `start` attaches the instance's channel to
 * the hub and sends `start`; `stop`, `exec`, `detach`, `release`, `probe` and `reclaim` are
 * commands; `usage()` is the node's last heartbeat; `freeze()` is false (a remote node cannot
 * freeze synchronously). It follows the node's heartbeats: an instance the node reports that is
 * not one of this runtime's live instances (it ended here, e.g. when the node was lost) is told to
 * stop; an instance whose start was answered and that a later heartbeat does not list ended
 * without its `exited` event reaching here (or the daemon restarted): it ends with `{kind: 'lost'}`. {@link nodeLost} ends every live instance and exec with `{kind: 'lost'}`.
 * Commands throw a `WarrenError` with the node's code (`WARREN_NODE_…`, `WARREN_USAGE`…), or
 * `WARREN_NODE_UNREACHABLE` when no reply comes.
 */
export class RemoteNodeRuntime implements AgentRuntime {
  private readonly subjects: NodeSubjects;
  private readonly instances = new Map<string, RemoteInstance>();
  private readonly execs = new Set<RemoteProcess>();
  private readonly stopsSent = new Set<string>();
  private readonly heartbeats: Subscription;
  private last: NodeHeartbeat | undefined;
  private closed = false;

  constructor(private readonly options: RemoteNodeRuntimeOptions) {
    this.subjects = nodeSubjects(options.ns, options.node);
    this.heartbeats = options.nc.subscribe(this.subjects.hb, {
      callback: (error, msg) => {
        if (error) return;
        const decoded = decodePayload(nodeHeartbeatSchema, msg.subject, msg.data);
        if (decoded.ok && decoded.value.node === options.node) this.observe(decoded.value);
      },
    });
  }

  /** The node's name. */
  get node(): string {
    return this.options.node;
  }

  /** The node's last heartbeat, if one came. */
  get lastHeartbeat(): NodeHeartbeat | undefined {
    return this.last;
  }

  async probe(isolation?: AgentIsolation): Promise<RuntimeHost> {
    return (await this.command('probe', { op: 'probe', ...(isolation ? { isolation } : {}) })).host;
  }

  async reclaim(): Promise<ReclaimReport> {
    return (await this.command('reclaim', { op: 'reclaim' })).report;
  }

  async start(spec: RemoteStartSpec, events: AgentEvents): Promise<AgentInstance> {
    this.requireOpen('start');
    if ([...this.instances.values()].some((i) => i.name === spec.name)) {
      throw new WarrenError('WARREN_NODE_BUSY', `${spec.name} already runs on node ${this.options.node}`);
    }
    const instance = randomBytes(8).toString('hex');
    const channel = this.options.hub.attach(spec.name, instance, events);
    const handle = new RemoteInstance(this, spec.name, instance, channel);
    this.instances.set(instance, handle);
    const { prepareHome: _prepareHome, homeFiles, ...json } = spec;
    try {
      const reply = await this.command('start', { op: 'start', instance, spec: { ...json, homeFiles: [...(homeFiles ?? [])] } });
      handle.started(reply.pid, reply.unsafe);
    } catch (error) {
      this.instances.delete(instance);
      channel.close();
      throw error;
    }
    channel.exited.then(
      () => {
        this.instances.delete(instance);
        channel.close();
      },
      () => undefined,
    );
    return handle;
  }

  async exec(agent: AgentSpec, argv: readonly string[], options: AgentExecOptions): Promise<AgentProcess> {
    this.requireOpen('exec');
    if (argv.length === 0) throw new WarrenError('WARREN_USAGE', 'exec needs a command');
    const execId = randomBytes(8).toString('hex');
    const process = new RemoteProcess(this, execId, options, this.options.nc.subscribe(this.subjects.exec(execId)));
    this.execs.add(process);
    process.exited.then(
      () => this.execs.delete(process),
      () => undefined,
    );
    try {
      await this.options.nc.flush();
      const { pid } = await this.command('exec', { op: 'exec', execId, agent: { ...agent }, argv: [...argv] });
      process.pid = pid;
    } catch (error) {
      process.end({ kind: 'setup_error', message: error instanceof Error ? error.message : String(error) });
      throw error;
    }
    return process;
  }

  async detachStorage(agent: AgentStorageRef): Promise<boolean> {
    return (await this.command('detach', { op: 'detach', agent: agent.name })).detached;
  }

  async releaseStorage(agent: AgentStorageRef): Promise<void> {
    await this.command('release', { op: 'release', agent: agent.name });
  }

  /**
   * The node stopped heartbeating (see `NodeRegistry`): every live instance and exec of this
   * runtime ends with `{kind: 'lost', detail}`. Should the node come back, its heartbeat reporting
   * one of them gets it stopped.
   */
  nodeLost(detail: string): void {
    for (const instance of [...this.instances.values()]) instance.lost(detail);
    for (const process of [...this.execs]) process.end({ kind: 'lost', detail });
  }

  /** Stops following the node's heartbeats; later `start`, `exec` and `reclaim` throw. Live instances stay as they are. Idempotent. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      try {
        this.heartbeats.unsubscribe();
      } catch {
        // The connection is closed already.
      }
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** @internal Where this runtime logs. */
  get logger(): Logger {
    return this.options.logger;
  }

  /** @internal The usage of `instance` in the node's last heartbeat. */
  usageOf(instance: string): AgentUsage {
    return this.last?.instances.find((i) => i.instance === instance)?.usage ?? NO_USAGE;
  }

  /**
   * @internal Sends `command` and checks the reply with the op's schema.
   * @throws {WarrenError} the node's error, or `WARREN_NODE_UNREACHABLE`.
   */
  async command<Op extends keyof typeof nodeReplySchemas>(op: Op, command: NodeCommand & { op: Op }): Promise<NodeReply<Op>> {
    const { nc, node } = this.options;
    let data: Uint8Array;
    try {
      const reply = await nc.request(this.subjects.cmd, encodePayload(command), { timeout: this.options.requestTimeoutMs ?? DEFAULT_NODE_REQUEST_TIMEOUT_MS });
      data = reply.data;
    } catch (error) {
      throw new WarrenError('WARREN_NODE_UNREACHABLE', `node ${node} did not answer ${op}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    const failed = decodePayload(errorReplySchema, this.subjects.cmd, data);
    if (failed.ok) throw new WarrenError(failed.value.code.startsWith('WARREN_') ? (failed.value.code as `WARREN_${string}`) : 'WARREN_NODE', failed.value.message);
    const decoded = decodePayload(nodeReplySchemas[op] as unknown as ZodType<NodeReply<Op>>, `${this.subjects.cmd} reply to ${op}`, data);
    if (!decoded.ok) throw new WarrenError('WARREN_NODE_INVALID', decoded.error);
    return decoded.value;
  }

  private observe(heartbeat: NodeHeartbeat): void {
    const restarted = this.last !== undefined && this.last.startedMs !== heartbeat.startedMs;
    this.last = heartbeat;
    // An instance whose start was answered is listed in every later heartbeat until its `exited`
    // event went out (the node publishes both on one connection, in that order). Missing from one,
    // it ended without that event reaching us, or the daemon restarted (its reclaim removed it).
    const listed = new Set(heartbeat.instances.map((i) => i.instance));
    for (const [id, instance] of [...this.instances]) {
      if (!instance.answered || listed.has(id)) continue;
      instance.lost(
        restarted
          ? `node ${this.options.node} restarted at ${new Date(heartbeat.startedMs).toISOString()}`
          : `node ${this.options.node} no longer reports the instance and its exit never arrived`,
      );
    }
    for (const reported of heartbeat.instances) {
      if (this.instances.has(reported.instance) || this.stopsSent.has(reported.instance)) continue;
      this.stopsSent.add(reported.instance);
      this.options.logger.warn({ node: this.options.node, agent: reported.agent, instance: reported.instance }, 'the node runs an instance that ended here: stopping it');
      this.command('stop', { op: 'stop', agent: reported.agent, instance: reported.instance, graceMs: DEFAULT_GRACE_MS }).catch((error: unknown) =>
        this.options.logger.warn({ err: error, node: this.options.node, instance: reported.instance }, 'cannot stop a stale instance on the node'),
      );
    }
  }

  private requireOpen(what: string): void {
    if (this.closed) throw new WarrenError('WARREN_RUNTIME_CLOSED', `cannot ${what} on node ${this.options.node}: the runtime is closed`);
  }
}

/** One instance on a node, as the supervisor sees it. */
class RemoteInstance implements AgentInstance {
  pid = 0;
  /** True once the node answered the start. */
  answered = false;
  unsafe = false;
  private stopping: Promise<AgentExit> | undefined;
  private closing: Promise<void> | undefined;
  private ended = false;

  constructor(
    private readonly runtime: RemoteNodeRuntime,
    readonly name: string,
    readonly instance: string,
    private readonly channel: RemoteChannel,
  ) {
    channel.exited.then(
      () => (this.ended = true),
      () => undefined,
    );
  }

  get exited(): Promise<AgentExit> {
    return this.channel.exited;
  }

  get connected(): boolean {
    return this.channel.connected;
  }

  started(pid: number, unsafe: boolean): void {
    this.answered = true;
    this.pid = pid;
    this.unsafe = unsafe;
  }

  lost(detail: string): void {
    this.channel.markExited({ kind: 'lost', detail });
  }

  stop(graceMs: number = DEFAULT_GRACE_MS, reason?: AgentStopReason): Promise<AgentExit> {
    this.stopping ??= (async () => {
      if (this.ended) return this.channel.exited;
      try {
        const { exit } = await this.runtime.command('stop', { op: 'stop', agent: this.name, instance: this.instance, graceMs, ...(reason ? { reason } : {}) });
        this.channel.markExited(exit);
      } catch (error) {
        // The instance ended meanwhile (its `exited` event is on its way) or the node is gone (the registry marks it lost).
        if ((error as { code?: string }).code !== 'WARREN_NODE_NO_INSTANCE') throw error;
      }
      return this.channel.exited;
    })();
    return this.stopping;
  }

  freeze(): boolean {
    return false;
  }

  thaw(): void {}

  usage(): AgentUsage {
    return this.ended ? NO_USAGE : this.runtime.usageOf(this.instance);
  }

  cancel(taskId: string, attempt: number, reason: string): void {
    this.channel.cancel(taskId, attempt, reason);
  }

  resendResult(taskId: string, attempt: number): boolean {
    return this.channel.resendResult(taskId, attempt);
  }

  requestShutdown(why: string): void {
    this.channel.requestShutdown(why);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.ended) await this.stop().catch(() => undefined);
      this.channel.close();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** An exec on a node: its output arrives in `seq` order on its own subject, then its exit. */
class RemoteProcess implements AgentProcess {
  pid = 0;
  readonly exited: Promise<AgentExit>;
  private settle!: (exit: AgentExit) => void;
  private done = false;
  private next = 0;
  private readonly early = new Map<number, ExecOutput>();
  private stopping: Promise<AgentExit> | undefined;

  constructor(
    private readonly runtime: RemoteNodeRuntime,
    private readonly execId: string,
    private readonly output: AgentExecOptions,
    private readonly subscription: Subscription,
  ) {
    this.exited = new Promise((resolve) => (this.settle = resolve));
    (async () => {
      for await (const msg of subscription) {
        const decoded = decodePayload(execOutputSchema, msg.subject, msg.data);
        if (decoded.ok) this.receive(decoded.value);
        else runtime.logger.warn({ subject: msg.subject, error: decoded.error }, 'malformed exec output dropped');
      }
    })().catch(() => undefined);
  }

  stop(graceMs: number = DEFAULT_GRACE_MS): Promise<AgentExit> {
    this.stopping ??= this.done
      ? this.exited
      : this.runtime.command('exec_stop', { op: 'exec_stop', execId: this.execId, graceMs }).then(
          () => this.exited,
          () => this.exited,
        );
    return this.stopping;
  }

  end(exit: AgentExit): void {
    if (this.done) return;
    this.done = true;
    this.subscription.unsubscribe();
    this.settle(exit);
  }

  private receive(message: ExecOutput): void {
    this.early.set(message.seq, message);
    for (let ready = this.early.get(this.next); ready; ready = this.early.get(this.next)) {
      this.early.delete(this.next);
      this.next += 1;
      if ('exit' in ready) this.end(ready.exit);
      else (ready.stream === 'stdout' ? this.output.stdout : this.output.stderr).write(Buffer.from(ready.data, 'base64'));
    }
  }
}

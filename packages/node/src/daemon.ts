import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import type { Broker, BrokerNamespace } from '@warren/broker';
import { WarrenError, type Logger } from '@warren/core';
import type { AgentEvents, AgentExit, AgentInstance, AgentProcess, AgentRuntime, AgentSpec, AgentStartSpec, RuntimeHost } from '@warren/runtime';
import { relayChannel, type RelayedChannel } from './channel.js';
import { ensureHome, writeHomeFiles } from './home-files.js';
import {
  decodePayload,
  encodePayload,
  nodeCommandSchema,
  nodeSubjects,
  NODE_NAME_PATTERN,
  type AgentSpecJson,
  type NodeCapacity,
  type NodeCommand,
  type NodeHeartbeat,
  type NodeStartSpec,
} from './protocol.js';

/** Default time between two heartbeats of a node, in ms. */
export const DEFAULT_HEARTBEAT_MS = 2_000;
/** The largest piece of exec output in one message, in bytes (well under NATS's default 1 MiB payload). */
const EXEC_CHUNK_BYTES = 64 * 1024;
/** The protocol version a node reports in its heartbeats. */
export const NODE_PROTOCOL_VERSION = '1';

/** Options of {@link NodeDaemon.start}. */
export interface NodeDaemonOptions {
  /** The node's broker connection (supervisor credentials: it publishes heartbeats and channel events of its agents). */
  readonly nc: NatsConnection;
  /** The broker the runtime's gateways use (signing with the instance's key); kept for the node's lifetime, not closed here. */
  readonly broker: Broker;
  readonly ns: BrokerNamespace;
  /** The node's name, `[a-z][a-z0-9-]{0,62}`. */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly capacity: NodeCapacity;
  /** The local runtime running the instances and execs (its `broker` is the one above). */
  readonly runtime: AgentRuntime;
  readonly logger: Logger;
  /** Time between heartbeats, in ms. Default 2000. */
  readonly heartbeatMs?: number;
  /**
   * Where the node keeps agents' homes: a start's `homeDir` becomes `<homeRoot>/<agent>`. Absent
   * (the supervisor's embedded node): homes are used where the spec says.
   */
  readonly homeRoot?: string;
  /** How long a relayed `send` or `authorize` waits for the supervisor, in ms. Default 10000. */
  readonly requestTimeoutMs?: number;
}

interface Running {
  readonly agent: string;
  readonly instance: string;
  readonly handle: AgentInstance;
  readonly relay: RelayedChannel;
  readonly ended: Promise<void>;
}

/** A command's failure: its `code` and message go back in the error reply. */
class CommandError extends WarrenError {}

/**
 * `warren node`'s daemon on one host: answers the supervisor's commands on `<p>.node.cmd.<name>`
 * (probe, reclaim, start, stop, exec, exec_stop, detach, release), runs instances through the local
 * runtime with {@link relayChannel} events (so their channels reach the supervisor over NATS),
 * publishes `exited` when an instance ends, streams exec output on `<p>.node.exec.<name>.<execId>`,
 * and publishes a {@link NodeHeartbeat} every `heartbeatMs` (and at once after a start or an end).
 * A malformed command gets a `WARREN_NODE_INVALID` error reply naming the subject.
 */
export class NodeDaemon {
  private readonly instances = new Map<string, Running>();
  private readonly starting = new Map<string, string>();
  /** Instances that ended and are being closed, by agent: until done, a new start or a release waits. */
  private readonly ending = new Map<string, Promise<void>>();
  private readonly execs = new Map<string, AgentProcess>();
  private readonly subscription: Subscription;
  private readonly timer: NodeJS.Timeout;
  private readonly startedMs = Date.now();
  private readonly subjects;
  private seq = 0;
  private closed = false;
  private draining = false;

  private constructor(
    private readonly options: NodeDaemonOptions,
    private readonly host: RuntimeHost | null,
  ) {
    this.subjects = nodeSubjects(options.ns, options.name);
    this.subscription = options.nc.subscribe(this.subjects.cmd, {
      callback: (error, msg) => {
        if (error) options.logger.warn({ err: error, subject: this.subjects.cmd }, 'node command subscription failed');
        else this.onCommand(msg).catch((failure: unknown) => options.logger.error({ err: failure, subject: msg.subject }, 'node command not answered'));
      },
    });
    this.timer = setInterval(() => this.heartbeat(), options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
    this.timer.unref();
  }

  /**
   * Probes the runtime (its result goes into heartbeats; null when it fails, logged), subscribes
   * to the node's commands and publishes the first heartbeat.
   * @throws {Error} for an invalid node name.
   */
  static async start(options: NodeDaemonOptions): Promise<NodeDaemon> {
    if (!NODE_NAME_PATTERN.test(options.name)) throw new WarrenError('WARREN_USAGE', `invalid node name ${JSON.stringify(options.name)}: expected [a-z][a-z0-9-]{0,62}`);
    let host: RuntimeHost | null = null;
    try {
      host = await options.runtime.probe();
    } catch (error) {
      options.logger.warn({ err: error }, 'the node\'s runtime cannot isolate agents fully; templates asking for full isolation will fail here');
    }
    const daemon = new NodeDaemon(options, host);
    await options.nc.flush();
    daemon.heartbeat();
    return daemon;
  }

  /** The node's name. */
  get name(): string {
    return this.options.name;
  }

  /** The heartbeat it would publish now. */
  snapshot(): NodeHeartbeat {
    return {
      node: this.options.name,
      version: NODE_PROTOCOL_VERSION,
      startedMs: this.startedMs,
      seq: this.seq,
      labels: { ...this.options.labels },
      capacity: this.options.capacity,
      instances: [...this.instances.values()].map((r) => ({
        agent: r.agent,
        instance: r.instance,
        pid: r.handle.pid,
        connected: r.handle.connected,
        usage: r.handle.usage(),
      })),
      driver: this.host,
    };
  }

  /** Stops heartbeats and commands; instances keep running (see {@link stopAll}). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    try {
      this.subscription.unsubscribe();
      await this.options.nc.flush();
    } catch {
      // The connection is closed already.
    }
  }

  /**
   * Stops every instance (SIGTERM, SIGKILL after `graceMs`, default 5000) and exec, and waits until
   * each ended and its channel is closed. Later starts are refused (`WARREN_NODE_STOPPING`).
   */
  async stopAll(graceMs?: number): Promise<void> {
    this.draining = true;
    await Promise.all([
      ...[...this.instances.values()].map(async (r) => {
        await r.handle.stop(graceMs);
        await r.ended;
      }),
      ...[...this.execs.values()].map((p) => p.stop(graceMs)),
      ...this.ending.values(),
    ]);
  }

  private heartbeat(): void {
    if (this.closed) return;
    this.seq += 1;
    try {
      this.options.nc.publish(this.subjects.hb, encodePayload(this.snapshot()));
    } catch (error) {
      this.options.logger.warn({ err: error, subject: this.subjects.hb }, 'heartbeat not published');
    }
  }

  private async onCommand(msg: Msg): Promise<void> {
    const decoded = decodePayload(nodeCommandSchema, msg.subject, msg.data);
    if (!decoded.ok) {
      this.options.logger.warn({ subject: msg.subject, error: decoded.error }, 'malformed node command refused');
      this.reply(msg, { ok: false, code: 'WARREN_NODE_INVALID', message: decoded.error });
      return;
    }
    try {
      this.reply(msg, { ok: true, ...(await this.execute(decoded.value)) });
    } catch (error) {
      const code = typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : 'WARREN_INTERNAL';
      const message = error instanceof Error ? error.message : String(error);
      this.options.logger.warn({ op: decoded.value.op, code, error: message }, 'node command failed');
      this.reply(msg, { ok: false, code, message });
    }
  }

  private reply(msg: Msg, payload: unknown): void {
    if (!msg.reply) return;
    try {
      msg.respond(encodePayload(payload));
    } catch (error) {
      this.options.logger.warn({ err: error, subject: msg.subject }, 'node reply not sent');
    }
  }

  private async execute(command: NodeCommand): Promise<Record<string, unknown>> {
    const { runtime } = this.options;
    switch (command.op) {
      case 'probe':
        return { host: await runtime.probe(command.isolation) };
      case 'reclaim':
        return { report: await runtime.reclaim() };
      case 'start':
        return this.startInstance(command.instance, command.spec);
      case 'stop': {
        const running = this.instances.get(command.agent);
        if (running?.instance !== command.instance) {
          throw new CommandError('WARREN_NODE_NO_INSTANCE', `node ${this.options.name} runs no instance ${command.instance} of ${command.agent}`);
        }
        const exit = await running.handle.stop(command.graceMs, command.reason);
        await running.ended;
        return { exit };
      }
      case 'exec':
        return this.startExec(command.execId, command.agent, command.argv);
      case 'exec_stop': {
        const process = this.execs.get(command.execId);
        if (!process) throw new CommandError('WARREN_NODE_NO_EXEC', `node ${this.options.name} runs no exec ${command.execId}`);
        return { exit: await process.stop(command.graceMs) };
      }
      case 'detach':
        await this.assertIdle(command.agent, 'detach its storage');
        return { detached: await runtime.detachStorage({ name: command.agent, homeDir: this.homeOf(command.agent, undefined) }) };
      case 'release':
        await this.assertIdle(command.agent, 'release its storage');
        await runtime.releaseStorage({ name: command.agent, homeDir: this.homeOf(command.agent, undefined) });
        if (this.options.homeRoot !== undefined) await rm(this.homeOf(command.agent, undefined), { recursive: true, force: true });
        return {};
    }
  }

  private async assertIdle(agent: string, what: string): Promise<void> {
    await this.ending.get(agent);
    if (this.instances.has(agent) || this.starting.has(agent)) throw new CommandError('WARREN_NODE_BUSY', `cannot ${what}: ${agent} runs on node ${this.options.name}`);
  }

  /** The agent's home on this node. */
  private homeOf(agent: string, specHome: string | undefined): string {
    if (this.options.homeRoot !== undefined) return join(this.options.homeRoot, agent);
    if (specHome === undefined) throw new CommandError('WARREN_NODE_INVALID', `node ${this.options.name} has no home root: the agent's home must be given`);
    return specHome;
  }

  private async startInstance(instance: string, spec: NodeStartSpec): Promise<Record<string, unknown>> {
    const agent = spec.name;
    const current = this.instances.get(agent);
    if (current?.instance === instance) return { pid: current.handle.pid, unsafe: current.handle.unsafe };
    if (this.draining) throw new CommandError('WARREN_NODE_STOPPING', `node ${this.options.name} is stopping`);
    if (current || this.starting.has(agent)) throw new CommandError('WARREN_NODE_BUSY', `${agent} already runs on node ${this.options.name}`);
    if (this.instances.size + this.starting.size >= this.options.capacity.maxAgents) {
      throw new CommandError('WARREN_NODE_FULL', `node ${this.options.name} runs its maximum of ${this.options.capacity.maxAgents} agents`);
    }
    this.starting.set(agent, instance);
    // The agent's previous instance may still be closing (its channel, its run directory).
    await this.ending.get(agent);
    const log = this.options.logger.child({ agent, instance });
    let handle: AgentInstance | undefined;
    const relay = relayChannel({
      nc: this.options.nc,
      ns: this.options.ns,
      agent,
      instance,
      logger: log,
      ...(this.options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: this.options.requestTimeoutMs }),
      control: {
        cancel: (taskId, attempt, reason) => handle?.cancel(taskId, attempt, reason),
        resend: (taskId, attempt) => void handle?.resendResult(taskId, attempt),
        shutdown: (why) => handle?.requestShutdown(why),
      },
    });
    try {
      const homeDir = this.homeOf(agent, spec.homeDir);
      await ensureHome(homeDir, spec.uid, spec.gid);
      const { homeFiles, logPath: _logPath, ...rest } = spec;
      const startSpec: AgentStartSpec = {
        ...(rest as Omit<NodeStartSpec, 'homeFiles' | 'logPath'>),
        homeDir,
        prepareHome: async () => {
          const refused = await writeHomeFiles(homeDir, spec.uid, spec.gid, homeFiles);
          for (const refusal of refused) log.warn({ path: refusal.path, reason: refusal.reason }, 'home file refused: something of the agent is in the way');
        },
      };
      // A heartbeat just before the hello: the supervisor reads the usage of a ready agent at once.
      const events: AgentEvents = {
        ...relay,
        hello: (name, pid) => {
          this.heartbeat();
          relay.hello(name, pid);
        },
      };
      handle = await this.options.runtime.start(startSpec, events);
    } catch (error) {
      this.starting.delete(agent);
      await relay.close();
      throw error;
    }
    const started = handle;
    const ended: Promise<void> = started.exited.then(async (exit: AgentExit) => {
      log.info({ exit }, 'agent instance ended');
      // Removed and reported in one step: heartbeats list the instance exactly until its exit event.
      if (this.instances.get(agent)?.instance === instance) this.instances.delete(agent);
      this.ending.set(agent, ended);
      relay.exited(exit);
      this.heartbeat();
      await started.close().catch((error: unknown) => log.warn({ err: error }, 'cannot close the ended instance'));
      await relay.close();
      if (this.ending.get(agent) === ended) this.ending.delete(agent);
    });
    this.starting.delete(agent);
    this.instances.set(agent, { agent, instance, handle: started, relay, ended });
    log.info({ pid: started.pid, unsafe: started.unsafe }, 'agent instance started');
    this.heartbeat();
    return { pid: started.pid, unsafe: started.unsafe };
  }

  private async startExec(execId: string, agent: AgentSpecJson, argv: readonly string[]): Promise<Record<string, unknown>> {
    if (this.execs.has(execId)) throw new CommandError('WARREN_NODE_BUSY', `exec ${execId} already runs on node ${this.options.name}`);
    const subject = this.subjects.exec(execId);
    let seq = 0;
    const publish = (payload: Record<string, unknown>): void => {
      try {
        this.options.nc.publish(subject, encodePayload({ seq: seq++, ...payload }));
      } catch (error) {
        this.options.logger.warn({ err: error, subject }, 'exec output not published');
      }
    };
    const stream = (name: 'stdout' | 'stderr'): Writable =>
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          for (let at = 0; at < chunk.length; at += EXEC_CHUNK_BYTES) publish({ stream: name, data: chunk.subarray(at, at + EXEC_CHUNK_BYTES).toString('base64') });
          callback();
        },
      });
    const spec: AgentSpec = { ...agent, homeDir: this.homeOf(agent.name, agent.homeDir) };
    if (this.options.homeRoot !== undefined) await ensureHome(spec.homeDir, spec.uid, spec.gid);
    const process = await this.options.runtime.exec(spec, argv, { stdout: stream('stdout'), stderr: stream('stderr') });
    this.execs.set(execId, process);
    process.exited.then(
      (exit) => {
        this.execs.delete(execId);
        publish({ exit });
      },
      () => undefined,
    );
    return { pid: process.pid };
  }
}

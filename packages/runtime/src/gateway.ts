import { chmodSync, chownSync, mkdirSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  decodeAgentFrame,
  encodeFrame,
  FrameError,
  LineSplitter,
  PROTOCOL_VERSION,
  type AgentFrame,
  type GatewayFrame,
  type ResultFrame,
} from '@warren/agent-runner';
import { isElectionError, type AssignmentMessage, type Broker, type Delivery, type ResultMessage, type Subscription } from '@warren/broker';
import type { Logger } from '@warren/core';

/** Who the gateway speaks for: fixed when it is made, never taken from a frame. */
export interface GatewayIdentity {
  readonly name: string;
  readonly template: string;
  readonly uid: number;
  readonly gid: number;
  /** The agent's home as seen inside its sandbox. */
  readonly home: string;
  readonly capabilities: readonly string[];
}

/** What the gateway tells the supervisor. Callbacks must not throw. */
export interface GatewayEvents {
  /** The runner connected and said hello with its pid inside the sandbox. */
  hello(agent: string, pid: number): void;
  /** The runner took an execution; the broker message is acknowledged. */
  taskAcked(agent: string, taskId: string, attempt: number): void;
  /** A heartbeat or any frame: the agent is alive. */
  alive(agent: string): void;
  /** The runner's connection closed (it exited, crashed or was stopped). */
  disconnected(agent: string): void;
  /** A frame was malformed; the connection is closed. */
  protocolError(agent: string, message: string): void;
  /**
   * The runner reported an event of its runtime's stream (text, a tool call or result, usage, an
   * error, the final answer) for execution (`taskId`, `attempt`): a JSON object with a `kind`.
   */
  progressEvent?(agent: string, taskId: string, attempt: number, event: Readonly<Record<string, unknown>>): void;
  /**
   * Sends a `::send` line's message from agent `from` to agent `to` (the supervisor's message
   * service: policy, audit, count, inbox). `ref` is the runner's reference of the line.
   * @returns the message's id.
   * @throws an error with a `code` (`WARREN_POLICY_DENIED`, `WARREN_AGENT_NOT_FOUND`,
   *   `WARREN_MESSAGE_INVALID`, `WARREN_BROKER`), sent back to the runner as an `error` frame.
   */
  sendMessage(from: string, to: string, body: unknown, ref: string): Promise<{ readonly id: string }>;
  /**
   * Checks an assignment consumed from the broker (its signature already verified) against the
   * executions committed for the agent, auditing a refusal. @returns an error text to refuse
   * (the message is terminated and never reaches the runner), or null to deliver it; a promise of
   * either when the decision is made elsewhere (a node asks the supervisor over NATS). A promise
   * that rejects leaves the assignment for redelivery (nak, 1 s).
   */
  authorizeAssignment(agent: string, subject: string, taskId: string, attempt: number): string | null | Promise<string | null>;
}

/** Options of {@link AgentGateway.start}. */
export interface AgentGatewayOptions {
  readonly identity: GatewayIdentity;
  /** Host directory made for the socket; bound read-only into the sandbox at /run/warren. */
  readonly socketDir: string;
  readonly broker: Broker;
  readonly events: GatewayEvents;
  readonly logger: Logger;
  /** How long the runner has to ack a task before the broker message is nak'ed, in ms. Default 15000. */
  readonly ackTimeoutMs?: number;
}

const SOCKET_NAME = 'agent.sock';

/**
 * An agent channel served in this process instead of over the socket (see
 * {@link AgentGateway.attachLocal}): `deliver` hands the gateway one frame of the agent's side;
 * `detach` ends the channel as a closed connection would, without telling `events.disconnected`
 * (a runner may connect to the socket afterwards).
 */
export interface LocalChannel {
  deliver(frame: AgentFrame): void;
  detach(): void;
}

/** The connection the gateway serves now: a runner's socket or a local channel. */
interface Peer {
  write(frame: GatewayFrame): void;
  destroy(): void;
  readonly destroyed: boolean;
}
/** Results kept for `resendResult`, oldest dropped first. */
const MAX_RECENT_RESULTS = 1_000;
/** How often a result still waiting for the broker is reported again, in ms. */
const RESULT_WAIT_REPORT_MS = 30_000;
/**
 * How long the start of a connection's assignments consumer is tried again while JetStream cannot
 * answer for now (no responders, a timeout, a 503: see `isElectionError`), in ms. A nats-server
 * reloading its configuration (as it does for each agent's new NATS user) has no JetStream API for
 * a moment; a hello that met that moment would otherwise close the channel.
 */
export const CONSUME_RETRY_MS = 10_000;
/** The first and the longest wait between two tries of a consumer start, in ms. */
const CONSUME_RETRY_FIRST_MS = 50;
const CONSUME_RETRY_MAX_MS = 1_000;

/**
 * The per-agent gateway: a Unix socket served by the supervisor and bound into the agent's sandbox,
 * bridging the agent channel (NDJSON frames, see `@warren/agent-runner`'s protocol) and the broker.
 * It consumes the agent's assignments from JetStream once the runner says hello, acks them when the
 * runner acks, and publishes the runner's progress and results under the agent's name. An
 * assignment's `traceparent` and `tracestate` headers go to the runner in the task frame, and the
 * runner's span of the run comes back with the result (`span`). `::send` lines go to the
 * supervisor's message service (`GatewayEvents.sendMessage`); the agent reads its inbox through its
 * bus socket, not this channel. The agent's identity is the socket it connected to: frames cannot
 * claim another.
 */
export class AgentGateway {
  private readonly server: Server;
  private connection: Peer | undefined;
  private assignments: Subscription | undefined;
  private readonly waitingAcks = new Map<string, { resolve: (acked: boolean) => void }>();
  private closing: Promise<void> | undefined;
  /**
   * Results published recently, by `taskId:attempt`. nats-server 2.9 acknowledges a JetStream
   * publish before it syncs it to disk, so a broker killed right after can lose one; the
   * supervisor asks for a result again (`resendResult`) when an execution stays without one.
   */
  private readonly recentResults = new Map<string, ResultMessage>();

  private constructor(
    private readonly options: AgentGatewayOptions,
    readonly socketPath: string,
  ) {
    this.server = createServer((socket) => this.accept(socket));
  }

  /**
   * Makes the socket directory (owned by the agent, mode 0700), listens on `agent.sock` in it
   * (owned by the agent, mode 0600) and returns the running gateway. The file-system calls are
   * made in place: six small local calls on an agent's start path, each of which through the thread
   * pool waited for the event loop (~3 ms in all on a busy supervisor).
   */
  static async start(options: AgentGatewayOptions): Promise<AgentGateway> {
    const { socketDir, identity } = options;
    rmSync(socketDir, { recursive: true, force: true });
    mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    const gateway = new AgentGateway(options, join(socketDir, SOCKET_NAME));
    await new Promise<void>((resolve, reject) => {
      gateway.server.once('error', reject);
      gateway.server.listen(gateway.socketPath, () => {
        gateway.server.off('error', reject);
        resolve();
      });
    });
    chownSync(socketDir, identity.uid, identity.gid);
    chownSync(gateway.socketPath, identity.uid, identity.gid);
    chmodSync(gateway.socketPath, 0o600);
    return gateway;
  }

  /** True while a runner is connected. */
  get connected(): boolean {
    return this.connection !== undefined;
  }

  /** Asks the runner to cancel an execution. No-op when no runner is connected. */
  cancel(taskId: string, attempt: number, reason: string): void {
    this.send({ type: 'cancel', taskId, attempt, reason });
  }

  /**
   * Publishes again the result of (`taskId`, `attempt`) if this gateway published one (same message
   * id: the broker drops it if it still has it). @returns whether there was one to send.
   */
  resendResult(taskId: string, attempt: number): boolean {
    const message = this.recentResults.get(`${taskId}:${attempt}`);
    if (!message) return false;
    this.options.broker.publishResult(message).catch((error: unknown) =>
      this.log.warn({ err: error, taskId }, 'cannot publish a result again yet'),
    );
    return true;
  }

  /** Asks the runner to finish and exit. */
  requestShutdown(reason: string): void {
    this.send({ type: 'shutdown', reason });
  }

  private get log(): Logger {
    return this.options.logger;
  }

  /**
   * Serves the agent channel to `receive` in this process, as if a runner had connected: frames
   * given to the returned channel's `deliver` are handled as the runner's (a `hello` starts the
   * assignments' consumer), frames for the agent go to `receive`. While it is attached the socket
   * refuses connections.
   * @throws {Error} if a runner is connected or the gateway is closing.
   */
  attachLocal(receive: (frame: GatewayFrame) => void): LocalChannel {
    if (this.connection || this.closing) throw new Error('the agent channel is in use or closing');
    const peer = {
      destroyed: false,
      write: (frame: GatewayFrame) => {
        if (!peer.destroyed) receive(frame);
      },
      destroy: () => {
        if (peer.destroyed) return;
        peer.destroyed = true;
        this.dropConnection(peer, false);
      },
    };
    this.connection = peer;
    return {
      deliver: (frame) => {
        if (!peer.destroyed) this.handle(frame);
      },
      detach: () => peer.destroy(),
    };
  }

  /** Forgets connection `peer` (closed): pending acks fail, the consumer stops; `events.disconnected` when `notify`. */
  private dropConnection(peer: Peer, notify: boolean): void {
    if (this.connection !== peer) return;
    this.connection = undefined;
    for (const waiter of this.waitingAcks.values()) waiter.resolve(false);
    this.waitingAcks.clear();
    this.stopConsumers().catch((error: unknown) => this.log.warn({ err: error }, 'cannot stop the agent channel consumers'));
    if (notify) this.options.events.disconnected(this.options.identity.name);
  }

  private accept(socket: Socket): void {
    if (this.connection || this.closing) {
      socket.end(encodeFrame({ type: 'error', code: 'WARREN_BUSY', message: 'the agent is already connected' }));
      return;
    }
    const peer: Peer = {
      write: (frame) => socket.write(encodeFrame(frame)),
      destroy: () => socket.destroy(),
      get destroyed() {
        return socket.destroyed;
      },
    };
    this.connection = peer;
    const splitter = new LineSplitter((line) => this.receive(line));
    socket.on('data', (chunk: Buffer) => {
      try {
        splitter.push(chunk);
      } catch (error) {
        this.fail(error instanceof FrameError ? error.message : String(error));
      }
    });
    socket.on('error', (error) => this.log.debug({ err: error }, 'agent channel error'));
    socket.on('close', () => this.dropConnection(peer, true));
  }

  private fail(message: string): void {
    this.log.warn({ reason: message }, 'agent channel protocol error; closing it');
    this.options.events.protocolError(this.options.identity.name, message);
    this.send({ type: 'error', code: 'WARREN_PROTOCOL', message });
    this.connection?.destroy();
  }

  private send(frame: GatewayFrame): boolean {
    const peer = this.connection;
    if (!peer || peer.destroyed) return false;
    peer.write(frame);
    return true;
  }

  private receive(line: string): void {
    let frame: AgentFrame;
    try {
      frame = decodeAgentFrame(line);
    } catch (error) {
      this.fail((error as Error).message);
      return;
    }
    this.handle(frame);
  }

  private handle(frame: AgentFrame): void {
    const { identity, events } = this.options;
    events.alive(identity.name);
    switch (frame.type) {
      case 'hello':
        if (frame.version !== PROTOCOL_VERSION) {
          this.fail(`protocol version ${frame.version} is not supported (expected ${PROTOCOL_VERSION})`);
          return;
        }
        this.send({ type: 'welcome', agent: { ...identity, capabilities: [...identity.capabilities] } });
        void this.startConsumersFor(this.connection).then(
          (started) => {
            if (started) events.hello(identity.name, frame.pid);
          },
          (error: unknown) => this.fail(`cannot consume assignments: ${(error as Error).message}`),
        );
        return;
      case 'ack':
        this.waitingAcks.get(`${frame.taskId}:${frame.attempt}`)?.resolve(true);
        return;
      case 'progress': {
        // Validated by decodeAgentFrame: one of the runtime's AgentEvents, its texts cut to size.
        const agentEvent = frame.event as Readonly<Record<string, unknown>> | undefined;
        this.options.broker.publishProgress({
          taskId: frame.taskId,
          attempt: frame.attempt,
          agent: identity.name,
          message: frame.message.slice(0, 2000),
          ...(frame.percent === undefined ? {} : { percent: frame.percent }),
          ...(agentEvent === undefined ? {} : { event: agentEvent }),
          atMs: Date.now(),
        });
        if (agentEvent !== undefined) events.progressEvent?.(identity.name, frame.taskId, frame.attempt, agentEvent);
        return;
      }
      case 'result':
        this.publishResult(frame).catch((error: unknown) =>
          this.log.error({ err: error, taskId: frame.taskId, attempt: frame.attempt }, 'cannot publish a result'),
        );
        return;
      case 'send': {
        let sending: Promise<{ readonly id: string }>;
        try {
          sending = events.sendMessage(identity.name, frame.to, frame.body, frame.ref);
        } catch (error) {
          sending = Promise.reject(error instanceof Error ? error : new Error(String(error)));
        }
        sending.then(
          ({ id }) => this.send({ type: 'sent', ref: frame.ref, id }),
          (error: unknown) => {
            const code = (error as { code?: unknown }).code;
            this.send({ type: 'error', ref: frame.ref, code: typeof code === 'string' ? code : 'WARREN_BROKER', message: (error as Error).message });
          },
        );
        return;
      }
      case 'heartbeat':
        return;
    }
  }

  private async publishResult(frame: ResultFrame): Promise<void> {
    const message: ResultMessage = {
      taskId: frame.taskId,
      attempt: frame.attempt,
      agent: this.options.identity.name,
      outcome: frame.outcome,
      exitCode: frame.exitCode,
      signal: frame.signal,
      summary: frame.summary.slice(0, 2000),
      outputs: frame.outputs.slice(0, 200),
      durationMs: frame.durationMs,
      finishedAtMs: Date.now(),
      // The runner's span of the run, for the supervisor to export; the broker drops a malformed one.
      ...(frame.span === undefined ? {} : { span: frame.span }),
    };
    this.recentResults.set(`${message.taskId}:${message.attempt}`, message);
    if (this.recentResults.size > MAX_RECENT_RESULTS) {
      this.recentResults.delete(this.recentResults.keys().next().value!);
    }
    // The runner sends a result once; the broker may be restarting or its store full, so keep
    // trying while open, backing off, and say what it waits for: at the first failure, then at
    // most every RESULT_WAIT_REPORT_MS.
    const sinceMs = Date.now();
    let reportedMs = 0;
    for (let delayMs = 100, attempts = 1; !this.closing; delayMs = Math.min(delayMs * 2, 5_000), attempts += 1) {
      try {
        await this.options.broker.publishResult(message);
        if (reportedMs > 0) this.log.info({ taskId: frame.taskId, attempts }, 'result published after waiting for the broker');
        return;
      } catch (error) {
        const nowMs = Date.now();
        if (nowMs - reportedMs >= RESULT_WAIT_REPORT_MS) {
          reportedMs = nowMs;
          this.log[attempts === 1 ? 'warn' : 'error'](
            { err: error, taskId: frame.taskId, attempt: frame.attempt, attempts, waitingMs: nowMs - sinceMs, retryInMs: delayMs },
            'cannot publish a result: waiting for the broker to store it (is its disk full?); retrying',
          );
        }
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  private async startConsumers(): Promise<void> {
    const { broker, identity } = this.options;
    await this.stopConsumers();
    this.assignments = await broker.consumeAssignments(identity.name, (d) => this.deliver(d));
  }

  /**
   * {@link startConsumers} for connection `peer`, tried again with a growing wait while JetStream
   * cannot answer for now, for up to {@link CONSUME_RETRY_MS}. @returns false when `peer` is no
   * longer the connection (or the gateway closes) before a try succeeded: nothing to report, the
   * channel it was for is gone.
   * @throws the last error once it is not a passing one or the time is up.
   */
  private async startConsumersFor(peer: Peer | undefined): Promise<boolean> {
    const startMs = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.startConsumers();
        return true;
      } catch (error) {
        if (this.connection !== peer || this.closing) return false;
        const leftMs = startMs + CONSUME_RETRY_MS - Date.now();
        if (!isElectionError(error) || leftMs <= 0) throw error;
        const delayMs = Math.min(leftMs, CONSUME_RETRY_FIRST_MS * 2 ** (attempt - 1), CONSUME_RETRY_MAX_MS);
        this.log.info({ attempt, delayMs, reason: (error as Error).message }, 'JetStream cannot answer yet; starting the assignments consumer again');
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        if (this.connection !== peer || this.closing) return false;
      }
    }
  }

  private async stopConsumers(): Promise<void> {
    const assignments = this.assignments;
    this.assignments = undefined;
    await assignments?.stop();
  }

  private async deliver(delivery: Delivery<AssignmentMessage>): Promise<void> {
    const a = delivery.data;
    let refusal: string | null;
    try {
      refusal = await this.options.events.authorizeAssignment(this.options.identity.name, delivery.subject, a.taskId, a.attempt);
    } catch (error) {
      this.log.warn({ err: error, taskId: a.taskId, attempt: a.attempt }, 'cannot check an assignment; it comes again');
      delivery.nak(1_000);
      return;
    }
    if (refusal) {
      delivery.term(refusal);
      return;
    }
    const key = `${a.taskId}:${a.attempt}`;
    let timer: NodeJS.Timeout | undefined;
    const acked = new Promise<boolean>((resolve) => {
      let settled = false;
      const settle = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        // Acknowledged as the runner's ack frame is read, before any later frame of the same read
        // (a short task's result comes with its ack): the broker ack and the task's start go out
        // ahead of the result's publish, on the same connection.
        if (ok) {
          delivery.ack();
          this.options.events.taskAcked(this.options.identity.name, a.taskId, a.attempt);
        }
        resolve(ok);
      };
      this.waitingAcks.set(key, { resolve: settle });
      timer = setTimeout(() => settle(false), this.options.ackTimeoutMs ?? 15_000).unref();
    });
    const sent = this.send({
      type: 'task',
      taskId: a.taskId,
      attempt: a.attempt,
      title: a.title,
      body: a.body,
      ...(a.command === undefined ? {} : { command: a.command }),
      fields: a.fields,
      timeoutMs: a.timeoutMs,
      ...(a.repository === undefined ? {} : { repository: a.repository }),
      // The trace context of the span that published it: the runner's span for the run is its child.
      ...(delivery.traceparent === undefined ? {} : { traceparent: delivery.traceparent }),
      ...(delivery.traceparent === undefined || delivery.tracestate === undefined ? {} : { tracestate: delivery.tracestate }),
    });
    const ok = sent && (await acked);
    // Not left to fire 15 s later for nothing (a wakeup per task).
    clearTimeout(timer);
    this.waitingAcks.delete(key);
    if (!ok) delivery.nak(1_000);
  }

  /** Stops consuming, closes the connection and the socket, removes the socket directory. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.stopConsumers();
      this.connection?.destroy();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      await rm(this.options.socketDir, { recursive: true, force: true });
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

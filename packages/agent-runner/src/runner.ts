import { createConnection, type Socket } from 'node:net';
import { startExecution, type Execution, type Runtime } from './execution.js';
import { startLlmForwarder, type LlmForwarder } from './llm-forward.js';
import { LLM_PORT_IN_SANDBOX } from './agent-cli.js';
import {
  decodeGatewayFrame,
  encodeFrame,
  FrameError,
  LineSplitter,
  LLM_SOCKET_PATH,
  PROTOCOL_VERSION,
  TaskOutcome,
  type AgentFrame,
  type GatewayFrame,
  type ResultFrame,
  type TaskFrame,
} from './protocol.js';

/** Options of {@link runAgent}. */
export interface RunAgentOptions {
  /** The gateway's Unix socket (inside the sandbox: `/run/warren/agent.sock`). */
  readonly socketPath: string;
  readonly runtime: Runtime;
  /** Executions run at once; more tasks wait (acknowledged) in arrival order. At least 1. */
  readonly maxConcurrent: number;
  /** Interval of `heartbeat` frames after `welcome` while a task runs or waits, in ms. */
  readonly heartbeatMs: number;
  /**
   * Interval of `heartbeat` frames while no task runs or waits, in ms: the supervisor gives an idle
   * agent a longer silence than a busy one (a thousand idle agents beating every `heartbeatMs` wake
   * it a thousand times per interval). Default `heartbeatMs`; never less.
   */
  readonly idleHeartbeatMs?: number;
  /** The agent's home (workspaces are made under `<home>/work`). */
  readonly home: string;
  /** The base environment of task processes. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Aborting it shuts the runner down as a `shutdown` frame would (main wires SIGTERM to it). */
  readonly signal?: AbortSignal;
  /** Diagnostics (one line each); default: written to stderr. */
  readonly log?: (line: string) => void;
  /** SIGTERM→SIGKILL grace for a task's process group, in ms. Default 2000. */
  readonly killGraceMs?: number;
  /** Cap of each execution's `output.log`, in bytes. Default 8 MiB. */
  readonly outputMaxBytes?: number;
  /** Agent runtimes: the gateway's LLM socket the forwarder pipes to (default `/run/warren/llm.sock`). */
  readonly llmSocketPath?: string;
  /** Agent runtimes: the forwarder's port on 127.0.0.1 (default 4141; 0 for any free port). */
  readonly llmPort?: number;
  /** How long a task's `ack` may wait to go out with the runner's next frame, in ms (0: at once). Default {@link ACK_HOLD_MS}. */
  readonly ackHoldMs?: number;
}

/**
 * How long the runner holds a task's `ack` by default, in ms: a task that ends (or reports) within
 * it has its ack sent in the same write as its result (or progress), so a short task costs the
 * channel one write and the gateway one read and one broker flush instead of two. Only the ack of
 * a task that takes the runner's last free slot is held (the agent's next assignment comes once
 * it is acknowledged: a runner with a slot left acks at once). Any frame the runner sends carries
 * the acks held before it, so an ack always precedes its task's other frames; the gateway's wait
 * for an ack (15 s) and the broker's ack wait (30 s) are far longer.
 */
export const ACK_HOLD_MS = 100;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isTaskFrame(frame: GatewayFrame): frame is TaskFrame {
  const f = frame as Partial<Record<keyof TaskFrame, unknown>>;
  return (
    frame.type === 'task' &&
    typeof f.taskId === 'string' &&
    typeof f.attempt === 'number' &&
    typeof f.title === 'string' &&
    typeof f.timeoutMs === 'number' &&
    (f.command === undefined || typeof f.command === 'string') &&
    (f.repository === undefined || (typeof f.repository === 'object' && f.repository !== null && typeof (f.repository as { mirror?: unknown }).mirror === 'string'))
  );
}

/**
 * Runs the agent side of the agent channel until it ends: connects to `socketPath`, sends `hello`,
 * waits for `welcome`, then sends a `heartbeat` every `heartbeatMs` while a task runs or waits and
 * every `idleHeartbeatMs` otherwise (any frame sent counts as one). Each `task` is acknowledged
 * (`ack`) at once while a slot is left after it, else with the runner's next frame or after
 * `ackHoldMs` ({@link ACK_HOLD_MS}), whichever is first, and executed (see {@link startExecution}) as soon as fewer than `maxConcurrent` run; its
 * `progress` lines and its `result` are sent back. A repeated task (same id and attempt) is
 * acknowledged again at once but not run twice. `cancel` stops that execution (outcome `cancelled`).
 * `shutdown` (or `signal` aborting) cancels everything, sends the results, closes the channel and
 * resolves 0. If the channel closes or fails first, running tasks are killed and it resolves 1.
 * Malformed gateway frames are logged and ignored; a line over the frame limit ends the channel.
 * With an agent runtime (claude-code, codex, opencode, llm) the runner first starts the LLM
 * forwarder (`127.0.0.1:<llmPort>` → `llmSocketPath`; closed when the runner ends; if it cannot
 * listen, that is logged and tasks run without it), and each event of a run's stream is sent as a
 * `progress` frame with `event`. Never rejects.
 */
export function runAgent(options: RunAgentOptions): Promise<number> {
  const log = options.log ?? ((line: string) => process.stderr.write(`warren-agent-runner: ${line}\n`));
  const maxConcurrent = Math.max(1, Math.floor(options.maxConcurrent));
  const running = new Map<string, Execution>();
  const queued: TaskFrame[] = [];
  let welcomed = false;
  let agentName: string | undefined;
  let shuttingDown = false;
  let heartbeat: NodeJS.Timeout | undefined;
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  let finished = false;

  const keyOf = (taskId: string, attempt: number): string => `${taskId}#${attempt}`;
  let sendCount = 0;
  const agentRuntime = !['shell', 'exec'].includes(options.runtime.kind);
  let forwarder: LlmForwarder | undefined;
  let forwarderClosed = false;
  const forwarderReady: Promise<void> = agentRuntime
    ? startLlmForwarder({ socketPath: options.llmSocketPath ?? LLM_SOCKET_PATH, port: options.llmPort ?? LLM_PORT_IN_SANDBOX, log })
        .then((started) => {
          forwarder = started;
          if (forwarderClosed) started.close().catch(() => undefined);
        })
        .catch((error: unknown) => log(`cannot start the LLM forwarder on 127.0.0.1:${options.llmPort ?? LLM_PORT_IN_SANDBOX}: ${messageOf(error)}`))
    : Promise.resolve();
  const socket: Socket = createConnection(options.socketPath);

  /** When a frame was last sent (ms since the epoch): any frame tells the gateway the runner is alive. */
  let sentAtMs = 0;
  const idleHeartbeatMs = Math.max(options.heartbeatMs, options.idleHeartbeatMs ?? options.heartbeatMs);
  const ackHoldMs = Math.max(0, options.ackHoldMs ?? ACK_HOLD_MS);
  /** Acks held for the next frame (see {@link ACK_HOLD_MS}), encoded, and the timer that sends them alone. */
  let heldAcks = '';
  let ackTimer: NodeJS.Timeout | undefined;
  const write = (text: string): void => {
    if (socket.destroyed || !socket.writable) return;
    sentAtMs = Date.now();
    const out = heldAcks + text;
    heldAcks = '';
    clearTimeout(ackTimer);
    ackTimer = undefined;
    try {
      socket.write(out);
    } catch (error) {
      log(`cannot write to the channel: ${(error as Error).message}`);
    }
  };
  const send = (frame: AgentFrame): void => {
    let text: string;
    try {
      text = encodeFrame(frame);
    } catch (error) {
      log(`cannot send ${frame.type} frame: ${(error as Error).message}`);
      text = '';
    }
    if (text !== '' || heldAcks !== '') write(text);
  };
  /** Sends `ack` with the next frame, or alone after ackHoldMs. */
  const holdAck = (ack: AgentFrame & { type: 'ack' }): void => {
    if (ackHoldMs === 0) return send(ack);
    heldAcks += encodeFrame(ack);
    ackTimer ??= setTimeout(() => write(''), ackHoldMs);
  };

  const finish = (code: number): void => {
    if (finished) return;
    finished = true;
    clearInterval(heartbeat);
    clearTimeout(ackTimer);
    forwarderClosed = true;
    forwarder?.close().catch(() => undefined);
    options.signal?.removeEventListener('abort', onAbort);
    resolveDone(code);
  };

  const pump = (): void => {
    while (!shuttingDown && running.size < maxConcurrent && queued.length > 0) {
      const task = queued.shift()!;
      const key = keyOf(task.taskId, task.attempt);
      const execution = startExecution({
        task,
        runtime: options.runtime,
        home: options.home,
        env: options.env,
        killGraceMs: options.killGraceMs,
        outputMaxBytes: options.outputMaxBytes,
        onProgress: (message, percent) =>
          send({ type: 'progress', taskId: task.taskId, attempt: task.attempt, message, ...(percent === undefined ? {} : { percent }) }),
        onEvent: (event, message) => send({ type: 'progress', taskId: task.taskId, attempt: task.attempt, message, event }),
        ...(forwarder ? { llmBaseUrl: forwarder.url } : {}),
        ...(agentName === undefined ? {} : { agent: agentName }),
        onSend: (to, body) => {
          sendCount += 1;
          send({ type: 'send', ref: `${task.taskId}#${task.attempt}#${sendCount}`, to, body });
        },
      });
      running.set(key, execution);
      execution.result
        .then((result) => {
          running.delete(key);
          send(result);
          pump();
        })
        .catch((error: unknown) => log(`task ${key}: cannot report its result: ${messageOf(error)}`));
    }
  };

  const cancelledBeforeStart = (task: TaskFrame, reason: string): ResultFrame => ({
    type: 'result',
    taskId: task.taskId,
    attempt: task.attempt,
    outcome: TaskOutcome.cancelled,
    exitCode: null,
    signal: null,
    summary: `cancelled before it started: ${reason}`,
    outputs: [],
    durationMs: 0,
  });

  const shutdown = async (reason: string): Promise<void> => {
    if (shuttingDown || finished) return;
    shuttingDown = true;
    log(`shutting down: ${reason}`);
    for (const task of queued.splice(0)) send(cancelledBeforeStart(task, reason));
    const results = [...running.values()].map((execution) => {
      execution.cancel(reason);
      return execution.result;
    });
    await Promise.all(results);
    // Results are sent by each execution's handler (queued before this continuation); flush and close.
    await new Promise<void>((resolve) => {
      if (socket.destroyed) return resolve();
      const timer = setTimeout(() => {
        socket.destroy();
        resolve();
      }, 2000);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.end();
    });
    finish(0);
  };

  // Shuts down, or ends the runner with 1 when the shutdown fails (runAgent never rejects).
  const shutdownOrFinish = (reason: string): void => {
    shutdown(reason).catch((error: unknown) => {
      log(`shutdown failed: ${messageOf(error)}`);
      finish(1);
    });
  };

  const onAbort = (): void => shutdownOrFinish('SIGTERM');

  const handle = (frame: GatewayFrame): void => {
    switch (frame.type) {
      case 'welcome':
        if (welcomed) return;
        welcomed = true;
        if (typeof frame.agent?.name === 'string') agentName = frame.agent.name;
        heartbeat = setInterval(() => {
          // Idle, a beat is due once idleHeartbeatMs have passed since the last frame, give or take
          // half a tick of this timer (so that it is this tick's, not the next one's).
          const idle = running.size === 0 && queued.length === 0;
          if (!idle || Date.now() - sentAtMs >= idleHeartbeatMs - options.heartbeatMs / 2) send({ type: 'heartbeat' });
        }, options.heartbeatMs);
        return;
      case 'task': {
        if (!isTaskFrame(frame)) {
          log(`ignoring malformed task frame: ${JSON.stringify(frame).slice(0, 200)}`);
          return;
        }
        if (!welcomed) {
          log(`ignoring task ${frame.taskId} sent before welcome`);
          return;
        }
        if (shuttingDown) return;
        const key = keyOf(frame.taskId, frame.attempt);
        const known = running.has(key) || queued.some((t) => keyOf(t.taskId, t.attempt) === key);
        if (known) {
          // Its first ack may have been lost.
          send({ type: 'ack', taskId: frame.taskId, attempt: frame.attempt });
        } else {
          queued.push(frame);
          // Held only when it takes the last free slot: the broker gives the agent its next task
          // once this one is acknowledged, and a runner with a slot left wants it now.
          const ack = { type: 'ack', taskId: frame.taskId, attempt: frame.attempt } as const;
          if (running.size + queued.length >= maxConcurrent) holdAck(ack);
          else send(ack);
          // Agent runtimes need the forwarder's port before their first task starts.
          forwarderReady.then(pump).catch((error: unknown) => log(`cannot start task ${key}: ${messageOf(error)}`));
        }
        return;
      }
      case 'cancel': {
        const key = keyOf(frame.taskId, frame.attempt);
        const index = queued.findIndex((t) => keyOf(t.taskId, t.attempt) === key);
        if (index !== -1) {
          send(cancelledBeforeStart(queued.splice(index, 1)[0]!, frame.reason));
          return;
        }
        running.get(key)?.cancel(String(frame.reason));
        return;
      }
      case 'shutdown':
        shutdownOrFinish(`shutdown: ${frame.reason}`);
        return;
      case 'error':
        log(`gateway error ${frame.code}${frame.ref ? ` (ref ${frame.ref})` : ''}: ${frame.message}`);
        return;
      case 'sent':
        return;
      default:
        log(`ignoring unknown frame type ${JSON.stringify((frame as { type: unknown }).type)}`);
    }
  };

  const splitter = new LineSplitter((line) => {
    let frame: GatewayFrame;
    try {
      frame = decodeGatewayFrame(line);
    } catch (error) {
      log(`ignoring malformed frame: ${(error as Error).message}`);
      return;
    }
    handle(frame);
  });

  socket.on('connect', () => send({ type: 'hello', version: PROTOCOL_VERSION, pid: process.pid }));
  socket.on('data', (chunk: Buffer) => {
    try {
      splitter.push(chunk);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      log(`closing the channel: ${error.message}`);
      socket.destroy();
    }
  });
  socket.on('error', (error) => log(`channel error on ${options.socketPath}: ${error.message}`));
  socket.on('close', () => {
    if (shuttingDown) return;
    log('the gateway closed the channel');
    for (const execution of running.values()) execution.kill();
    queued.length = 0;
    const pending = [...running.values()].map((e) => e.result);
    Promise.all(pending)
      .catch((error: unknown) => log(`a task did not end cleanly: ${messageOf(error)}`))
      .finally(() => finish(1));
  });

  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  return done;
}

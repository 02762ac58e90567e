/**
 * The agent channel: the only way an agent inside its sandbox talks to the world.
 *
 * The supervisor serves one Unix stream socket per agent (its gateway) and binds it into the
 * sandbox at {@link AGENT_SOCKET_PATH}. Frames are UTF-8 JSON objects, one per line (`\n`
 * terminated, NDJSON), at most {@link MAX_FRAME_BYTES} bytes each. The agent's identity is the
 * socket it speaks on; no frame carries or can claim an identity.
 *
 * This module has no dependencies so that it runs inside the sandbox with Node's built-ins alone.
 */
import { agentEventProblem, type AgentEvent } from './agent-events.js';

/** Where the gateway socket appears inside the sandbox. */
export const AGENT_SOCKET_PATH = '/run/warren/agent.sock';

/** Where the gateway's LLM socket (HTTP: `/p/<provider>/…` and `/mcp`) appears inside the sandbox. */
export const LLM_SOCKET_PATH = '/run/warren/llm.sock';

/**
 * Where the agent's bus socket (HTTP: messages, inbox, requests, topics, presence; the client is
 * `@warren/agent-sdk`) appears inside the sandbox. Task processes get it as `WARREN_BUS_SOCKET`.
 */
export const BUS_SOCKET_PATH = '/run/warren/bus.sock';

/**
 * The directory of the `warren-bus` command inside the sandbox (`@warren/agent-sdk`'s `dist/bin`,
 * bound read-only at `/opt/warren/agent-sdk`): first on the PATH of task processes when it exists.
 */
export const AGENT_SDK_BIN_IN_SANDBOX = '/opt/warren/agent-sdk/bin';

/** The largest frame either side accepts, in bytes (1 MiB). A longer line closes the channel. */
export const MAX_FRAME_BYTES = 1_048_576;

/** The version of this protocol; `hello` carries it and the gateway refuses others. */
export const PROTOCOL_VERSION = 1;

/** A task handed to the agent. `attempt` starts at 1; `(taskId, attempt)` names one execution. */
export interface TaskFrame {
  readonly type: 'task';
  readonly taskId: string;
  readonly attempt: number;
  readonly title: string;
  /** The task file's markdown body. */
  readonly body: string;
  /** The shell command the task names (frontmatter `command`), if any. */
  readonly command?: string;
  /** Every frontmatter field of the task, as parsed. */
  readonly fields: Readonly<Record<string, unknown>>;
  /** Wall-clock limit for this execution, in ms. */
  readonly timeoutMs: number;
  /**
   * The git repository the task works on, when its task or its agent's template names one: its
   * read-only mirror inside the sandbox (`/opt/warren/repos/<name>.git`) and the ref to start from
   * (default the mirror's HEAD). The task then runs in a worktree on branch `warren/<agent>/<taskId>`.
   */
  readonly repository?: { readonly mirror: string; readonly base?: string };
  /**
   * W3C trace context of the span that published the assignment, when tracing is on: the runner's
   * own span for the run becomes its child, and the task's process gets `TRACEPARENT` naming that span.
   */
  readonly traceparent?: string;
  /** W3C `tracestate` that came with `traceparent`; the task's process gets it as `TRACESTATE`. */
  readonly tracestate?: string;
}

/** Frames the gateway sends to the agent. */
export type GatewayFrame =
  | {
      readonly type: 'welcome';
      readonly agent: {
        readonly name: string;
        readonly template: string;
        readonly uid: number;
        readonly gid: number;
        /** The home directory as seen inside the sandbox. */
        readonly home: string;
        readonly capabilities: readonly string[];
      };
    }
  | TaskFrame
  | { readonly type: 'cancel'; readonly taskId: string; readonly attempt: number; readonly reason: string }
  | { readonly type: 'message'; readonly id: string; readonly from: string; readonly body: unknown }
  | { readonly type: 'sent'; readonly ref: string; readonly id: string }
  | { readonly type: 'error'; readonly ref?: string; readonly code: string; readonly message: string }
  | { readonly type: 'shutdown'; readonly reason: string };

/** How an execution ended, as the agent reports it. */
export const TaskOutcome = {
  succeeded: 'succeeded',
  failed: 'failed',
  timedOut: 'timed_out',
  cancelled: 'cancelled',
} as const;
export type TaskOutcome = (typeof TaskOutcome)[keyof typeof TaskOutcome];

/**
 * The runner's span of one execution (see `TaskFrame.traceparent`), reported with its result: the
 * runner cannot export spans, so the supervisor exports it as part of the execution's trace.
 */
export interface RunSpanFrame {
  readonly name: string;
  /** The trace id of the task's `traceparent`. */
  readonly traceId: string;
  /** 16 lowercase hex digits, made by the runner; the task's `TRACEPARENT` names it. */
  readonly spanId: string;
  /** The span id of the task's `traceparent`. */
  readonly parentSpanId: string;
  /** When the execution started and ended, in ms since the Unix epoch. */
  readonly startMs: number;
  readonly endMs: number;
  /** `error` unless the outcome is `succeeded`. */
  readonly status: 'ok' | 'error';
  /** The first line of the summary, for an `error` status. */
  readonly message?: string;
}

/** The result of one execution. */
export interface ResultFrame {
  readonly type: 'result';
  readonly taskId: string;
  readonly attempt: number;
  readonly outcome: TaskOutcome;
  /** The exit code of the task's process, or null if it was ended by a signal. */
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** A short human summary for the card (at most 2000 characters). */
  readonly summary: string;
  /** Files the execution wrote, relative to the agent's home. */
  readonly outputs: readonly string[];
  readonly durationMs: number;
  /** The runner's span of the run, when the task came with a valid `traceparent`. */
  readonly span?: RunSpanFrame;
}

/** Frames the agent sends to the gateway. */
export type AgentFrame =
  | { readonly type: 'hello'; readonly version: number; readonly pid: number }
  | { readonly type: 'ack'; readonly taskId: string; readonly attempt: number }
  | {
      readonly type: 'progress';
      readonly taskId: string;
      readonly attempt: number;
      readonly message: string;
      /** 0 to 100, if known. */
      readonly percent?: number;
      /**
       * The event of an agent runtime's stream this progress reports (claude-code, codex, opencode,
       * llm); `message` then describes it in one line. Long texts are cut so the frame stays small.
       */
      readonly event?: AgentEvent;
    }
  | ResultFrame
  /** Ask the gateway to deliver `body` to agent `to`; answered by `sent` or `error` with the same `ref`. */
  | { readonly type: 'send'; readonly ref: string; readonly to: string; readonly body: unknown }
  | { readonly type: 'heartbeat' };

/** A frame could not be decoded; `reason` says what was wrong. */
export class FrameError extends Error {
  readonly code = 'WARREN_PROTOCOL';
  constructor(readonly reason: string) {
    super(`malformed frame: ${reason}`);
    this.name = 'FrameError';
  }
}

/** Encodes a frame as one NDJSON line. @throws {FrameError} if it exceeds {@link MAX_FRAME_BYTES}. */
export function encodeFrame(frame: AgentFrame | GatewayFrame): string {
  const line = `${JSON.stringify(frame)}\n`;
  if (Buffer.byteLength(line) > MAX_FRAME_BYTES) {
    throw new FrameError(`frame of type ${frame.type} is larger than ${MAX_FRAME_BYTES} bytes`);
  }
  return line;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function need(frame: Record<string, unknown>, key: string, kind: 'string' | 'number'): void {
  if (typeof frame[key] !== kind) {
    throw new FrameError(`'${String(frame.type)}' frame needs '${key}' to be a ${kind}`);
  }
}

/**
 * Decodes and checks one line sent by an agent. Only the fields each type needs are checked;
 * unknown fields are ignored.
 * @throws {FrameError} naming the type and field at fault.
 */
export function decodeAgentFrame(line: string): AgentFrame {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new FrameError(`not JSON (${(error as Error).message})`);
  }
  if (!isRecord(value)) throw new FrameError('not a JSON object');
  switch (value.type) {
    case 'hello':
      need(value, 'version', 'number');
      need(value, 'pid', 'number');
      break;
    case 'ack':
      need(value, 'taskId', 'string');
      need(value, 'attempt', 'number');
      break;
    case 'progress': {
      need(value, 'taskId', 'string');
      need(value, 'attempt', 'number');
      need(value, 'message', 'string');
      const problem = value.event === undefined ? null : agentEventProblem(value.event);
      if (problem !== null) throw new FrameError(`'progress' frame has an invalid 'event': ${problem}`);
      break;
    }
    case 'result':
      need(value, 'taskId', 'string');
      need(value, 'attempt', 'number');
      need(value, 'summary', 'string');
      need(value, 'durationMs', 'number');
      if (!Object.values(TaskOutcome).includes(value.outcome as TaskOutcome)) {
        throw new FrameError(`'result' frame has unknown outcome ${JSON.stringify(value.outcome)}`);
      }
      if (!Array.isArray(value.outputs) || !value.outputs.every((o) => typeof o === 'string')) {
        throw new FrameError(`'result' frame needs 'outputs' to be a list of strings`);
      }
      break;
    case 'send':
      need(value, 'ref', 'string');
      need(value, 'to', 'string');
      break;
    case 'heartbeat':
      break;
    default:
      throw new FrameError(`unknown frame type ${JSON.stringify(value.type)}`);
  }
  return value as unknown as AgentFrame;
}

/** Decodes one line sent by the gateway. @throws {FrameError} if it is not a JSON object with a type. */
export function decodeGatewayFrame(line: string): GatewayFrame {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new FrameError(`not JSON (${(error as Error).message})`);
  }
  if (!isRecord(value) || typeof value.type !== 'string') {
    throw new FrameError('not a JSON object with a type');
  }
  return value as unknown as GatewayFrame;
}

/**
 * Splits a byte stream into lines, refusing any line longer than {@link MAX_FRAME_BYTES}.
 * Feed it chunks with `push`; it calls `onLine` for each complete line (without the `\n`).
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxBytes: number = MAX_FRAME_BYTES,
  ) {}

  /** @throws {FrameError} if a line grows past the limit; the splitter must then be discarded. */
  push(chunk: Buffer): void {
    let start = 0;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, start)) {
      const part = chunk.subarray(start, i);
      this.check(part.length);
      this.pending.push(part);
      const line = Buffer.concat(this.pending).toString('utf8');
      this.pending = [];
      this.pendingBytes = 0;
      start = i + 1;
      if (line.length > 0) this.onLine(line);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.check(rest.length);
      this.pending.push(Buffer.from(rest));
      this.pendingBytes += rest.length;
    }
  }

  private check(extra: number): void {
    if (this.pendingBytes + extra > this.maxBytes) {
      throw new FrameError(`line longer than ${this.maxBytes} bytes`);
    }
  }
}

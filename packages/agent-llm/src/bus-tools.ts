/**
 * The agent's bus as tools for the model (through `@warren/agent-sdk`, bundled in): `send_message`,
 * `receive_messages`, `request_agent`, `reply_message`, `publish_topic` and `list_presence`, each one
 * call on the bus socket. The policy behind the socket decides every call; a refusal is an error
 * result naming its code (`WARREN_POLICY_DENIED`, …), never the end of the run.
 */
import { lstatSync } from 'node:fs';
import { BusError, type AgentBus } from '@warren/agent-sdk';
import { ToolError } from './errors.js';
import { capOutput, type Tool, type ToolOutput } from './tools.js';

/** Options of {@link busTools}. */
export interface BusToolsOptions {
  /** The time left for the task, in ms: caps the waits of `receive_messages` and `request_agent`. */
  readonly remainingMs: () => number;
}

/** The longest `receive_messages` wait, in seconds (the bus's own limit). */
const MAX_WAIT_SECONDS = 30;

/** The longest `request_agent` wait, in seconds (the bus's own limit). */
const MAX_REQUEST_SECONDS = 300;

/** True when `path` is a Unix socket (the supervisor serves the bus there for this agent). */
export function busSocketExists(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function args(tool: string, input: unknown): Record<string, unknown> {
  if (input === undefined || input === null) return {};
  if (!isRecord(input)) throw new ToolError(tool, 'the arguments must be a JSON object');
  return input;
}

function text(tool: string, input: Record<string, unknown>, name: string): string {
  const value = input[name];
  if (typeof value !== 'string' || value.trim() === '') throw new ToolError(tool, `'${name}' must be a non-empty string`);
  return value.trim();
}

function body(tool: string, input: Record<string, unknown>): unknown {
  if (!('body' in input) || input.body === undefined) throw new ToolError(tool, "'body' is required: text or any JSON value");
  return input.body;
}

/** A positive number of seconds, capped; undefined when not given. */
function seconds(tool: string, input: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const value = input[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) throw new ToolError(tool, `'${name}' must be a number of seconds, at least ${min}`);
  return Math.min(value, max);
}

/** Runs one bus call; a refusal becomes an error result saying its code. */
async function attempt(tool: string, call: () => Promise<unknown>): Promise<ToolOutput> {
  try {
    const result = await call();
    return { output: capOutput(typeof result === 'string' ? result : JSON.stringify(result, null, 1)), isError: false };
  } catch (error) {
    if (error instanceof BusError) return { output: `${tool}: ${error.code}: ${error.message}`, isError: true };
    throw error;
  }
}

const ANY_JSON = { description: 'The message: text, or any JSON value (object, array, number, …). At most 256 KiB.' };

/**
 * The bus tools over `bus`:
 * - `send_message { to, body, id? }` → `{ id }`.
 * - `receive_messages { max?, waitSeconds? }`: up to `max` (1–100, default 10) messages of the
 *   inbox, waiting up to `waitSeconds` (default 0, at most 30 and the task's remaining time) for
 *   the first; taken messages are acknowledged. Each shows `id`, `from`, `body`, and `request: true`
 *   when the sender waits for `reply_message`.
 * - `request_agent { to, body, timeoutSeconds? }` → the reply (default 30 s, at most 300 and the time left).
 * - `reply_message { to, inReplyTo, body }` → `{ id }`.
 * - `publish_topic { topic, body }` → `{ id }`.
 * - `list_presence {}` → the agents this agent may message, with their state.
 */
export function busTools(bus: AgentBus, options: BusToolsOptions): Tool[] {
  const leftSeconds = (): number => Math.max(0, Math.floor(options.remainingMs() / 1000) - 1);
  return [
    {
      name: 'send_message',
      description: "Send a message to another agent's inbox by its name (see list_presence). The policy decides who you may message.",
      parameters: {
        type: 'object',
        properties: {
          to: { type: 'string', description: 'The agent to send to, e.g. worker-1.' },
          body: ANY_JSON,
          id: { type: 'string', description: 'Optional id: sending again with the same id delivers once.' },
        },
        required: ['to', 'body'],
        additionalProperties: false,
      },
      async run(input) {
        const a = args('send_message', input);
        const to = text('send_message', a, 'to');
        const b = body('send_message', a);
        const id = a.id === undefined ? undefined : text('send_message', a, 'id');
        return attempt('send_message', () => bus.send(to, b, id !== undefined ? { id } : {}));
      },
    },
    {
      name: 'receive_messages',
      description:
        'Take messages from your inbox (they are removed once taken). Each has id, from and body; one with "request": true waits for your answer with reply_message.',
      parameters: {
        type: 'object',
        properties: {
          max: { type: 'integer', description: 'At most this many messages, 1 to 100 (default 10).' },
          waitSeconds: { type: 'number', description: `Wait up to this many seconds for a first message (default 0, at most ${MAX_WAIT_SECONDS}).` },
        },
        additionalProperties: false,
      },
      async run(input) {
        const a = args('receive_messages', input);
        const max = a.max;
        if (max !== undefined && (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > 100)) throw new ToolError('receive_messages', "'max' must be a whole number from 1 to 100");
        const wait = Math.min(seconds('receive_messages', a, 'waitSeconds', 0, MAX_WAIT_SECONDS) ?? 0, leftSeconds());
        return attempt('receive_messages', async () => {
          const messages = await bus.receive({ ...(max !== undefined ? { max: max } : {}), waitMs: Math.round(wait * 1000), ack: true });
          return messages.length === 0 ? '(no messages)' : messages.map((m) => JSON.stringify({ id: m.id, from: m.from, body: m.body, request: m.request, sentAtMs: m.sentAtMs })).join('\n');
        });
      },
    },
    {
      name: 'request_agent',
      description: 'Send a request to another agent and wait for its reply (the agent answers with reply_message).',
      parameters: {
        type: 'object',
        properties: {
          to: { type: 'string', description: 'The agent to ask.' },
          body: ANY_JSON,
          timeoutSeconds: { type: 'number', description: `How long to wait for the reply (default 30, at most ${MAX_REQUEST_SECONDS}).` },
        },
        required: ['to', 'body'],
        additionalProperties: false,
      },
      async run(input) {
        const a = args('request_agent', input);
        const to = text('request_agent', a, 'to');
        const b = body('request_agent', a);
        const asked = seconds('request_agent', a, 'timeoutSeconds', 0.1, MAX_REQUEST_SECONDS) ?? 30;
        const timeout = Math.min(asked, leftSeconds());
        if (timeout < 0.1) throw new ToolError('request_agent', "the task's time is up");
        return attempt('request_agent', () => bus.request(to, b, { timeoutMs: Math.round(timeout * 1000) }));
      },
    },
    {
      name: 'reply_message',
      description: 'Answer a request you took with receive_messages ("request": true): give its sender and its id.',
      parameters: {
        type: 'object',
        properties: {
          to: { type: 'string', description: "The request's sender (its from)." },
          inReplyTo: { type: 'string', description: "The request's id." },
          body: ANY_JSON,
        },
        required: ['to', 'inReplyTo', 'body'],
        additionalProperties: false,
      },
      async run(input) {
        const a = args('reply_message', input);
        const to = text('reply_message', a, 'to');
        const inReplyTo = text('reply_message', a, 'inReplyTo');
        const b = body('reply_message', a);
        return attempt('reply_message', () => bus.reply({ from: to, id: inReplyTo }, b));
      },
    },
    {
      name: 'publish_topic',
      description: 'Publish a message on a topic: the agents subscribed to it now receive it.',
      parameters: {
        type: 'object',
        properties: {
          topic: { type: 'string', description: 'The topic: lower-case letters, digits, - and _ (e.g. builds).' },
          body: ANY_JSON,
        },
        required: ['topic', 'body'],
        additionalProperties: false,
      },
      async run(input) {
        const a = args('publish_topic', input);
        const topic = text('publish_topic', a, 'topic');
        const b = body('publish_topic', a);
        return attempt('publish_topic', () => bus.publish(topic, b));
      },
    },
    {
      name: 'list_presence',
      description: 'List the agents you may message, with their template and state (running, sleeping, …) and whether they are busy.',
      parameters: { type: 'object', properties: {}, additionalProperties: false },
      async run(input) {
        args('list_presence', input);
        return attempt('list_presence', async () => {
          const agents = await bus.presence();
          return agents.length === 0 ? '(no agents you may message)' : agents.map((agent) => JSON.stringify(agent)).join('\n');
        });
      },
    },
  ];
}

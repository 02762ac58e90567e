/**
 * The MCP tools of agent messaging, for agents calling Warren's MCP server with their own token
 * (the caller's principal is the agent, so it reads its own inbox and speaks as itself):
 * `receive_messages`, `ack_messages`, `request_agent`, `reply_message`, `publish_topic` and
 * `list_presence`. `send_message` stays in `server.ts`. Each call is decided as `mcp:<tool>` like
 * every tool, then by the supervisor's message service as a message (`agent:<to>`, `message`) or a
 * publication (`topic:<t>`, `publish`).
 */
import type { ToolAnnotations } from '@modelcontextprotocol/server';
import { z } from 'zod';
import type { McpMessaging } from './ports.js';

/** The tools this module registers, in order. */
export const MESSAGING_TOOLS = ['receive_messages', 'ack_messages', 'request_agent', 'reply_message', 'publish_topic', 'list_presence'] as const;

/**
 * How `server.ts` registers one tool for its caller (the policy's list filter, the audited call
 * check and the structured result are its own).
 */
export type RegisterTool = <I extends z.ZodObject, O extends z.ZodObject>(
  name: string,
  config: { title: string; description: string; input: I; output: O; annotations: ToolAnnotations },
  run: (args: z.infer<I>) => unknown,
) => void;

const READ: ToolAnnotations = { readOnlyHint: true, destructiveHint: false, idempotentHint: false, openWorldHint: false };
const WRITE: ToolAnnotations = { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false };

const AgentName = z.string().min(1).max(64).describe('The agent instance, e.g. shell-2');
const TopicName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/).describe('A topic: lower-case letters, digits, _ and -, at most 63');
const Body = z.unknown().describe('Any JSON value (at most 256 KiB encoded)');
const Received = z.object({ id: z.string(), from: z.string(), body: z.unknown(), sentAtMs: z.number(), request: z.boolean(), deliveries: z.number() });

/**
 * Registers the messaging tools for `principal` over `messaging` (nothing when the server has no
 * message service).
 */
export function registerMessagingTools(tool: RegisterTool, messaging: McpMessaging | undefined, principal: string): void {
  if (messaging === undefined) return;
  tool(
    'receive_messages',
    {
      title: 'Receive messages',
      description: 'Takes up to max messages from your inbox, waiting up to waitMs for the first. Acknowledge each with ack_messages once handled; one not acknowledged within 60 s comes again.',
      input: z.object({ max: z.number().int().min(1).max(100).optional(), waitMs: z.number().int().min(0).max(30_000).optional() }),
      output: z.object({ messages: z.array(Received) }),
      annotations: READ,
    },
    async ({ max, waitMs }) => ({
      messages: await messaging.receive(principal, { ...(max === undefined ? {} : { max }), ...(waitMs === undefined ? {} : { waitMs }) }),
    }),
  );
  tool(
    'ack_messages',
    {
      title: 'Acknowledge messages',
      description: 'Acknowledges received messages by id, so they are not delivered again.',
      input: z.object({ ids: z.array(z.string().min(1).max(256)).min(1).max(100) }),
      output: z.object({ acked: z.number() }),
      annotations: WRITE,
    },
    async ({ ids }) => ({ acked: await messaging.ack(principal, ids) }),
  );
  tool(
    'request_agent',
    {
      title: 'Ask an agent and wait for its reply',
      description: 'Sends a request to an agent and waits up to timeoutMs (default 30 s) for its reply.',
      input: z.object({ to: AgentName, body: Body, timeoutMs: z.number().int().min(100).max(300_000).optional() }),
      output: z.object({ id: z.string(), from: z.string(), inReplyTo: z.string(), body: z.unknown(), sentAtMs: z.number() }),
      annotations: WRITE,
    },
    ({ to, body, timeoutMs }) => messaging.request(principal, { to, body, ...(timeoutMs === undefined ? {} : { timeoutMs }) }),
  );
  tool(
    'reply_message',
    {
      title: 'Reply to a request',
      description: 'Answers a request you received (its id as inReplyTo, its sender as to).',
      input: z.object({ to: AgentName, inReplyTo: z.string().min(1).max(128), body: Body }),
      output: z.object({ id: z.string() }),
      annotations: WRITE,
    },
    ({ to, inReplyTo, body }) => messaging.reply(principal, { to, inReplyTo, body }),
  );
  tool(
    'publish_topic',
    {
      title: 'Publish on a topic',
      description: 'Publishes a message on a topic; the agents subscribed now receive it.',
      input: z.object({ topic: TopicName, body: Body }),
      output: z.object({ id: z.string() }),
      annotations: WRITE,
    },
    ({ topic, body }) => messaging.publish(principal, { topic, body }),
  );
  tool(
    'list_presence',
    {
      title: 'List the agents you may message',
      description: 'The agents you may message, with their state (running, sleeping, ...), whether they are idle or busy, and when they were last seen.',
      input: z.object({}),
      output: z.object({ agents: z.array(z.object({ name: z.string(), template: z.string(), state: z.string(), status: z.enum(['idle', 'busy']).nullable(), lastSeenMs: z.number().nullable() })) }),
      annotations: READ,
    },
    async () => ({ agents: await messaging.presence(principal) }),
  );
}

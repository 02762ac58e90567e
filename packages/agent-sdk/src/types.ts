/**
 * The messages as the bus socket's HTTP protocol carries them (JSON). Times in ms since the Unix
 * epoch. The supervisor's `MessagingPort` answers with the same shapes.
 */

/** A message taken from the agent's inbox. */
export interface ReceivedMessage {
  readonly id: string;
  /** The sending agent, or `user:<name>` for a person (API, MCP). */
  readonly from: string;
  readonly body: unknown;
  readonly sentAtMs: number;
  /** True when the sender waits for a reply ({@link AgentBus.reply}). */
  readonly request: boolean;
  /** How many times it was delivered (1 the first time). */
  readonly deliveries: number;
}

/** The reply to a request. */
export interface ReplyMessage {
  readonly id: string;
  readonly from: string;
  /** The id of the request it answers. */
  readonly inReplyTo: string;
  readonly body: unknown;
  readonly sentAtMs: number;
}

/** A message published on a topic. */
export interface TopicMessage {
  readonly id: string;
  readonly from: string;
  readonly topic: string;
  readonly body: unknown;
  readonly sentAtMs: number;
}

/** One agent as presence shows it. */
export interface PresenceEntry {
  readonly name: string;
  readonly template: string;
  /** `running`, `sleeping`, `stopped`, … */
  readonly state: string;
  /** `idle` or `busy` while running, else null. */
  readonly status: 'idle' | 'busy' | null;
  /** Last heartbeat of its runner, ms since the epoch, or null. */
  readonly lastSeenMs: number | null;
}

/** A topic name: one NATS subject token. */
export const TOPIC_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * What an agent may do on the broker, as the node side offers it: the one interface behind the
 * agent's bus socket (`/run/warren/bus.sock`, see `bus-channel.ts`), the `::send` lines of the agent
 * channel and the MCP messaging tools. Every call names the calling agent (`self`), which the caller
 * of this interface knows from the socket or token it was reached on, never from the request.
 *
 * Errors: `WarrenError` with code `WARREN_POLICY_DENIED` (the policy refused; the decision is
 * audited), `WARREN_AGENT_NOT_FOUND` (no such agent), `WARREN_MESSAGE_INVALID` (bad input: names
 * the field), `WARREN_MESSAGE_TIMEOUT` (no reply in time), `WARREN_BROKER` (the broker failed).
 */
export interface MessagingPort {
  /**
   * Sends `body` (any JSON value, at most 256 KiB encoded) to agent `to`'s inbox. Decided as
   * `(self, agent:<to>, message)`; audited as `message.sent` with the SHA-256 of the body, never the
   * body; counted per (from, to). A sleeping `to` is woken when `(self, agent:<to>, wake)` allows.
   * `id` (optional) de-duplicates re-sends; default a fresh id.
   */
  send(self: string, input: { readonly to: string; readonly body: unknown; readonly id?: string }): Promise<{ readonly id: string }>;
  /**
   * Up to `max` (1–100, default 10) messages of `self`'s inbox, waiting up to `waitMs` (0–30000,
   * default 0) for the first. Each must be acknowledged with {@link ack}; one not acknowledged within
   * 60 s is delivered again (at-least-once).
   */
  receive(self: string, input: { readonly max?: number; readonly waitMs?: number }): Promise<readonly ReceivedMessage[]>;
  /** Acknowledges delivered messages by id; unknown ids are ignored. @returns how many were acknowledged. */
  ack(self: string, ids: readonly string[]): Promise<number>;
  /**
   * Sends a request to `to` (as {@link send}, with `request: true`) and waits up to `timeoutMs`
   * (100–300000, default 30000) for its reply.
   * @throws {WarrenError} `WARREN_MESSAGE_TIMEOUT` when none came.
   */
  request(self: string, input: { readonly to: string; readonly body: unknown; readonly timeoutMs?: number }): Promise<ReplyMessage>;
  /** Answers request `inReplyTo` that `to` sent. Decided as `(self, agent:<to>, message)`. */
  reply(self: string, input: { readonly to: string; readonly inReplyTo: string; readonly body: unknown }): Promise<{ readonly id: string }>;
  /** Publishes `body` on `topic` (core NATS: subscribers now get it, nobody else). Decided as `(self, topic:<topic>, publish)`. */
  publish(self: string, input: { readonly topic: string; readonly body: unknown }): Promise<{ readonly id: string }>;
  /**
   * Delivers every message later published on `topic` to `onMessage` until closed. Decided as
   * `(self, topic:<topic>, subscribe)`. A permission revoked later ends the subscription (`onEnd`).
   */
  subscribe(
    self: string,
    topic: string,
    onMessage: (message: TopicMessageView) => void,
    onEnd?: (reason: string) => void,
  ): Promise<{ close(): void }>;
  /** The agents `self` may message, with their state. */
  presence(self: string): Promise<readonly PresenceEntry[]>;
}

/** A message taken from an inbox. Times in ms since the Unix epoch. */
export interface ReceivedMessage {
  readonly id: string;
  /** The sending agent, or `user:<name>` for a person (API, MCP). */
  readonly from: string;
  readonly body: unknown;
  readonly sentAtMs: number;
  /** True when the sender waits for a reply ({@link MessagingPort.reply} with `inReplyTo: id`). */
  readonly request: boolean;
  /** How many times it was delivered (1 the first time). */
  readonly deliveries: number;
}

/** The reply to a request. */
export interface ReplyMessage {
  readonly id: string;
  readonly from: string;
  readonly inReplyTo: string;
  readonly body: unknown;
  readonly sentAtMs: number;
}

/** A message published on a topic. */
export interface TopicMessageView {
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
  /** The `agents` row's state: `running`, `sleeping`, `stopped`, … */
  readonly state: string;
  /** `idle` or `busy` while running, else null. */
  readonly status: 'idle' | 'busy' | null;
  /** Last heartbeat of its runner, ms since the epoch, or null. */
  readonly lastSeenMs: number | null;
}

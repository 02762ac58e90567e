import type { PresenceEntry, ReceivedMessage, ReplyMessage, TopicMessage as TopicMessageView } from '@warren/agent-sdk';

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

/**
 * The shapes the port answers with are the bus protocol's own, defined once in `@warren/agent-sdk`
 * (which imports nothing of Warren, so the supervisor takes them from there).
 */
export type { PresenceEntry, ReceivedMessage, ReplyMessage, TopicMessage as TopicMessageView } from '@warren/agent-sdk';

/**
 * A `MessagingPort` kept in memory, for the bus socket's tests (and the SDK's and the loop's): the
 * policy is a set of allowed (from, to) pairs and topic grants; inboxes are arrays; a request waits
 * for its reply. The real port (broker, policy, audit) has its own tests.
 */
import { WarrenError } from '@warren/core';
import type { MessagingPort, PresenceEntry, ReceivedMessage, ReplyMessage, TopicMessageView } from '../src/messaging/port.js';

interface Queued {
  message: ReceivedMessage;
  inFlight: boolean;
}

interface TopicSubscriber {
  readonly agent: string;
  readonly onMessage: (message: TopicMessageView) => void;
  readonly onEnd?: (reason: string) => void;
  closed: boolean;
}

/** One call the port received: the method, `self` and the input. */
export interface PortCall {
  readonly method: keyof MessagingPort;
  readonly self: string;
  readonly input: unknown;
}

const MAX_BODY_BYTES = 256 * 1024;

/** The in-memory port and the knobs the tests turn. */
export class MemoryMessaging implements MessagingPort {
  /** Every call, in order. */
  readonly calls: PortCall[] = [];
  /** Allowed `from>to` pairs. */
  readonly allowed = new Set<string>();
  /** Allowed `agent>topic>publish|subscribe`. */
  readonly topicGrants = new Set<string>();
  /** The next call fails with this error (once). */
  failNext: Error | undefined;
  private readonly agents = new Map<string, PresenceEntry>();
  private readonly inboxes = new Map<string, Queued[]>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly pendingRequests = new Map<string, { from: string; to: string; resolve: (reply: ReplyMessage) => void }>();
  private readonly subscribers = new Map<string, Set<TopicSubscriber>>();
  private readonly seenIds = new Set<string>();
  private nextId = 1;

  /** Adds an agent (running, idle). */
  addAgent(name: string, template = 'worker'): this {
    this.agents.set(name, { name, template, state: 'running', status: 'idle', lastSeenMs: Date.now() });
    this.inboxes.set(name, []);
    return this;
  }

  /** Lets `from` message `to` (and reply to it). */
  allow(from: string, to: string): this {
    this.allowed.add(`${from}>${to}`);
    return this;
  }

  /** Lets `agent` publish or subscribe on `topic`. */
  grantTopic(agent: string, topic: string, action: 'publish' | 'subscribe'): this {
    this.topicGrants.add(`${agent}>${topic}>${action}`);
    return this;
  }

  /** Takes back a topic grant: live subscriptions of `agent` on `topic` end with `reason`. */
  revokeTopic(agent: string, topic: string, action: 'publish' | 'subscribe', reason = 'permission revoked'): void {
    this.topicGrants.delete(`${agent}>${topic}>${action}`);
    if (action !== 'subscribe') return;
    for (const s of this.subscribers.get(topic) ?? []) {
      if (s.agent === agent && !s.closed) {
        s.closed = true;
        s.onEnd?.(reason);
      }
    }
  }

  /** The messages waiting in (or delivered from, not yet acknowledged) `agent`'s inbox. */
  inbox(agent: string): readonly ReceivedMessage[] {
    return (this.inboxes.get(agent) ?? []).map((q) => q.message);
  }

  /** How many subscriptions on `topic` are open. */
  subscriberCount(topic: string): number {
    return [...(this.subscribers.get(topic) ?? [])].filter((s) => !s.closed).length;
  }

  private enter(method: keyof MessagingPort, self: string, input: unknown): void {
    this.calls.push({ method, self, input });
    const failure = this.failNext;
    this.failNext = undefined;
    if (failure) throw failure;
  }

  private checkTo(self: string, to: string): void {
    if (!this.agents.has(to)) throw new WarrenError('WARREN_AGENT_NOT_FOUND', `no agent ${to}`);
    if (!this.allowed.has(`${self}>${to}`)) throw new WarrenError('WARREN_POLICY_DENIED', `policy denies ${self} message on agent:${to}`);
  }

  private checkBody(body: unknown): void {
    if (Buffer.byteLength(JSON.stringify(body) ?? '') > MAX_BODY_BYTES) throw new WarrenError('WARREN_MESSAGE_INVALID', `body: larger than ${MAX_BODY_BYTES} bytes`);
  }

  private deliver(to: string, message: ReceivedMessage): void {
    this.inboxes.get(to)!.push({ message, inFlight: false });
    for (const wake of this.waiters.get(to) ?? []) wake();
  }

  async send(self: string, input: { readonly to: string; readonly body: unknown; readonly id?: string }): Promise<{ readonly id: string }> {
    this.enter('send', self, input);
    this.checkTo(self, input.to);
    this.checkBody(input.body);
    const id = input.id ?? `m${this.nextId++}`;
    if (this.seenIds.has(`${input.to}/${id}`)) return { id };
    this.seenIds.add(`${input.to}/${id}`);
    this.deliver(input.to, { id, from: self, body: input.body, sentAtMs: Date.now(), request: false, deliveries: 0 });
    return { id };
  }

  async receive(self: string, input: { readonly max?: number; readonly waitMs?: number }): Promise<readonly ReceivedMessage[]> {
    this.enter('receive', self, input);
    const max = input.max ?? 10;
    const take = (): ReceivedMessage[] => {
      const out: ReceivedMessage[] = [];
      for (const q of this.inboxes.get(self) ?? []) {
        if (out.length >= max) break;
        if (q.inFlight) continue;
        q.inFlight = true;
        q.message = { ...q.message, deliveries: q.message.deliveries + 1 };
        out.push(q.message);
      }
      return out;
    };
    const now = take();
    if (now.length > 0 || (input.waitMs ?? 0) === 0) return now;
    return new Promise((resolve) => {
      const waiters = this.waiters.get(self) ?? new Set();
      this.waiters.set(self, waiters);
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(done);
        resolve(take());
      };
      const timer = setTimeout(done, input.waitMs);
      waiters.add(done);
    });
  }

  async ack(self: string, ids: readonly string[]): Promise<number> {
    this.enter('ack', self, ids);
    const inbox = this.inboxes.get(self) ?? [];
    const before = inbox.length;
    const kept = inbox.filter((q) => !(q.inFlight && ids.includes(q.message.id)));
    this.inboxes.set(self, kept);
    return before - kept.length;
  }

  async request(self: string, input: { readonly to: string; readonly body: unknown; readonly timeoutMs?: number }): Promise<ReplyMessage> {
    this.enter('request', self, input);
    this.checkTo(self, input.to);
    this.checkBody(input.body);
    const id = `r${this.nextId++}`;
    const timeoutMs = input.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingRequests.delete(id);
        reject(new WarrenError('WARREN_MESSAGE_TIMEOUT', `no reply from ${input.to} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pendingRequests.set(id, {
        from: self,
        to: input.to,
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
      });
      this.deliver(input.to, { id, from: self, body: input.body, sentAtMs: Date.now(), request: true, deliveries: 0 });
    });
  }

  async reply(self: string, input: { readonly to: string; readonly inReplyTo: string; readonly body: unknown }): Promise<{ readonly id: string }> {
    this.enter('reply', self, input);
    this.checkTo(self, input.to);
    this.checkBody(input.body);
    const id = `p${this.nextId++}`;
    const pending = this.pendingRequests.get(input.inReplyTo);
    if (pending && pending.from === input.to && pending.to === self) {
      this.pendingRequests.delete(input.inReplyTo);
      pending.resolve({ id, from: self, inReplyTo: input.inReplyTo, body: input.body, sentAtMs: Date.now() });
    }
    return { id };
  }

  async publish(self: string, input: { readonly topic: string; readonly body: unknown }): Promise<{ readonly id: string }> {
    this.enter('publish', self, input);
    if (!this.topicGrants.has(`${self}>${input.topic}>publish`)) throw new WarrenError('WARREN_POLICY_DENIED', `policy denies ${self} publish on topic:${input.topic}`);
    this.checkBody(input.body);
    const id = `t${this.nextId++}`;
    const message: TopicMessageView = { id, from: self, topic: input.topic, body: input.body, sentAtMs: Date.now() };
    for (const s of this.subscribers.get(input.topic) ?? []) if (!s.closed) s.onMessage(message);
    return { id };
  }

  async subscribe(self: string, topic: string, onMessage: (message: TopicMessageView) => void, onEnd?: (reason: string) => void): Promise<{ close(): void }> {
    this.enter('subscribe', self, topic);
    if (!this.topicGrants.has(`${self}>${topic}>subscribe`)) throw new WarrenError('WARREN_POLICY_DENIED', `policy denies ${self} subscribe on topic:${topic}`);
    const subscriber: TopicSubscriber = { agent: self, onMessage, ...(onEnd ? { onEnd } : {}), closed: false };
    const set = this.subscribers.get(topic) ?? new Set();
    this.subscribers.set(topic, set);
    set.add(subscriber);
    return {
      close: () => {
        subscriber.closed = true;
        set.delete(subscriber);
      },
    };
  }

  async presence(self: string): Promise<readonly PresenceEntry[]> {
    this.enter('presence', self, undefined);
    return [...this.agents.values()].filter((a) => this.allowed.has(`${self}>${a.name}`));
  }
}

import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import type { BrokerNamespace } from '@warren/broker';
import type { Logger } from '@warren/core';
import { DEFAULT_HEARTBEAT_MS } from './daemon.js';
import { decodePayload, nodeHeartbeatSchema, nodeSubjects, subjectToken, type NodeCapacity, type NodeHeartbeat, type NodeInstanceReport } from './protocol.js';

/** A node as the supervisor last heard of it. */
export interface NodeView {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly capacity: NodeCapacity;
  readonly instances: readonly NodeInstanceReport[];
  /** When its last heartbeat arrived, in ms since the Unix epoch (the supervisor's clock). */
  readonly lastHeartbeatMs: number;
  /** `lost` once no heartbeat came for `lostAfterMs`; `ready` again on the next one. */
  readonly state: 'ready' | 'lost';
  /** Its last heartbeat as sent. */
  readonly heartbeat: NodeHeartbeat;
}

/** Options of {@link NodeRegistry}. */
export interface NodeRegistryOptions {
  readonly nc: NatsConnection;
  readonly ns: BrokerNamespace;
  readonly logger: Logger;
  /** The nodes' heartbeat period, in ms. Default 2000. */
  readonly heartbeatMs?: number;
  /** Time without a heartbeat after which a node is lost, in ms. Default 5 × `heartbeatMs`. */
  readonly lostAfterMs?: number;
  /** Called once each time a node becomes lost. Must not throw. */
  readonly onLost?: (node: NodeView) => void;
  /** Called on every valid heartbeat (a node seen for the first time, or back from lost, included). Must not throw. */
  readonly onHeartbeat?: (node: NodeView, previous: NodeView | undefined) => void;
  /** The clock, in ms since the Unix epoch. Default `Date.now`. */
  readonly now?: () => number;
}

/**
 * The supervisor's list of nodes: subscribes `<p>.node.hb.*`, keeps each node's last heartbeat,
 * and marks a node `lost` when none came for `lostAfterMs` (checked a few times per period),
 * calling `onLost`. A heartbeat whose `node` differs from its subject's, or that is malformed, is
 * logged with its subject and dropped.
 */
export class NodeRegistry {
  private readonly nodes = new Map<string, NodeView>();
  private readonly subscription: Subscription;
  private readonly timer: NodeJS.Timeout;
  private readonly lostAfterMs: number;
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly options: NodeRegistryOptions) {
    const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.lostAfterMs = options.lostAfterMs ?? 5 * heartbeatMs;
    this.now = options.now ?? Date.now;
    this.subscription = options.nc.subscribe(nodeSubjects(options.ns, '*').hb, {
      callback: (error, msg) => {
        if (error) {
          options.logger.warn({ err: error }, 'node heartbeat subscription failed');
          return;
        }
        const decoded = decodePayload(nodeHeartbeatSchema, msg.subject, msg.data);
        if (!decoded.ok || decoded.value.node !== subjectToken(options.ns, msg.subject, 2)) {
          options.logger.warn({ subject: msg.subject, error: decoded.ok ? `${msg.subject}: node ${decoded.value.node} does not match the subject` : decoded.error }, 'malformed node heartbeat dropped');
          return;
        }
        this.receive(decoded.value);
      },
    });
    this.timer = setInterval(() => this.check(), Math.max(50, Math.min(1_000, Math.floor(this.lostAfterMs / 4))));
    this.timer.unref();
  }

  /** Every node heard of, by name. */
  list(): NodeView[] {
    return [...this.nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** One node, or undefined when none of that name heartbeated. */
  get(name: string): NodeView | undefined {
    return this.nodes.get(name);
  }

  /** Stops listening and checking. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    try {
      this.subscription.unsubscribe();
    } catch {
      // The connection is closed already.
    }
  }

  private receive(heartbeat: NodeHeartbeat): void {
    const previous = this.nodes.get(heartbeat.node);
    const view: NodeView = {
      name: heartbeat.node,
      labels: heartbeat.labels,
      capacity: heartbeat.capacity,
      instances: heartbeat.instances,
      lastHeartbeatMs: this.now(),
      state: 'ready',
      heartbeat,
    };
    this.nodes.set(heartbeat.node, view);
    if (previous?.state === 'lost') this.options.logger.info({ node: heartbeat.node }, 'node back');
    else if (!previous) this.options.logger.info({ node: heartbeat.node, labels: heartbeat.labels, capacity: heartbeat.capacity }, 'node joined');
    this.options.onHeartbeat?.(view, previous);
  }

  private check(): void {
    const now = this.now();
    for (const view of this.nodes.values()) {
      if (view.state === 'lost' || now - view.lastHeartbeatMs <= this.lostAfterMs) continue;
      const lost: NodeView = { ...view, state: 'lost' };
      this.nodes.set(view.name, lost);
      this.options.logger.warn({ node: view.name, silentMs: now - view.lastHeartbeatMs }, 'node lost: no heartbeat');
      this.options.onLost?.(lost);
    }
  }
}

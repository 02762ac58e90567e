import os from 'node:os';
import type { Broker } from '@warren/broker';
import type { Logger } from '@warren/core';
import { ChannelHub, NodeDaemon, NodeRegistry, RemoteNodeRuntime, type NodeView } from '@warren/node';
import type { AgentRuntime } from '@warren/runtime';
import type { LocalNodeConfig } from '../config.js';
import type { WarrenEvent } from '../events.js';
import type { RouterNode } from './router.js';

/** Options of {@link NodeFleet.open}. */
export interface NodeFleetOptions {
  readonly broker: Broker;
  readonly log: Logger;
  /** This host as a node (the embedded node), or null with `--no-local-node`. */
  readonly localNode: LocalNodeConfig | null;
  /** This host's runtime, which the embedded node drives for other clients. */
  readonly hostRuntime: AgentRuntime;
  /** Records an event (`node.ready`, `node.lost`): its audit row, log line and NATS message. Must not throw. */
  readonly emit: (event: WarrenEvent) => void;
  /** Time between heartbeats, in ms (the embedded node's, and the registry's base for lost). Default 2000. */
  readonly heartbeatMs?: number;
  /** A node silent this long is lost, in ms. Default 5 × heartbeatMs. */
  readonly lostAfterMs?: number;
}

/**
 * The supervisor's side of `warren node` hosts: one `ChannelHub` for the agent channels that come
 * over NATS, the `NodeRegistry` of heartbeats, a `RemoteNodeRuntime` per node heard of (kept while
 * it is lost, so that its agents' exits and a later return reach the same runtime), and the
 * embedded node (`NodeDaemon` around this host's runtime, so `warren node list` shows this host and
 * any client may drive it over the same subjects; the supervisor itself calls the host runtime
 * directly). A node that stops heartbeating is marked lost: each of its live instances ends with
 * the exit kind `lost` (the lifecycle re-queues their executions as for an agent that died) and
 * `node.lost` is recorded; its first heartbeat (again) records `node.ready`.
 */
export class NodeFleet {
  private readonly runtimes = new Map<string, RemoteNodeRuntime>();
  private closed = false;

  private constructor(
    private readonly options: NodeFleetOptions,
    readonly hub: ChannelHub,
    readonly registry: NodeRegistry,
    private readonly embedded: NodeDaemon | undefined,
  ) {}

  /**
   * Subscribes the hub and the registry and starts the embedded node.
   * @throws what `NodeDaemon.start` throws (what was opened is closed again).
   */
  static async open(options: NodeFleetOptions): Promise<NodeFleet> {
    const { broker, log } = options;
    const nc = broker.nc;
    const ns = broker.namespace;
    const hub = new ChannelHub({ nc, ns, logger: log.child({ component: 'channels' }) });
    // The registry may hear a node before the fleet is made: those are taken from its list below.
    const made: { fleet?: NodeFleet } = {};
    const registry = new NodeRegistry({
      nc,
      ns,
      logger: log.child({ component: 'nodes' }),
      ...(options.heartbeatMs !== undefined ? { heartbeatMs: options.heartbeatMs } : {}),
      ...(options.lostAfterMs !== undefined ? { lostAfterMs: options.lostAfterMs } : {}),
      onHeartbeat: (node, previous) => made.fleet?.heard(node, previous),
      onLost: (node) => made.fleet?.lost(node),
    });
    let embedded: NodeDaemon | undefined;
    const local = options.localNode;
    if (local) {
      try {
        embedded = await NodeDaemon.start({
          nc,
          broker,
          ns,
          name: local.name,
          labels: local.labels,
          capacity: { cpus: Math.max(1, os.availableParallelism()), memoryBytes: local.memoryBytes, maxAgents: local.maxAgents === Number.MAX_SAFE_INTEGER ? 1_000_000 : local.maxAgents },
          runtime: options.hostRuntime,
          logger: log.child({ component: 'node', node: local.name }),
          ...(options.heartbeatMs !== undefined ? { heartbeatMs: options.heartbeatMs } : {}),
        });
      } catch (error) {
        registry.close();
        hub.close();
        throw error;
      }
    }
    const fleet = new NodeFleet(options, hub, registry, embedded);
    made.fleet = fleet;
    for (const node of registry.list()) fleet.heard(node, undefined);
    return fleet;
  }

  /** Every node heard of (the embedded one included), by name. */
  list(): NodeView[] {
    return this.registry.list();
  }

  /** The `warren node` hosts for the router: every node heard of but the embedded one, each with its runtime. */
  routerNodes(): RouterNode[] {
    const localName = this.options.localNode?.name;
    const nodes: RouterNode[] = [];
    for (const view of this.registry.list()) {
      if (view.name === localName) continue;
      const runtime = this.runtimes.get(view.name);
      if (runtime) nodes.push({ view, runtime });
    }
    return nodes;
  }

  /** Stops the embedded node's heartbeats and commands (its instances are stopped by `stopAll`), the registry, the runtimes and the hub. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.registry.close();
    await this.embedded?.stopAll().catch((error: unknown) => this.options.log.warn({ err: error }, 'cannot stop the embedded node\'s instances'));
    await this.embedded?.close();
    for (const runtime of this.runtimes.values()) await runtime.close();
    this.hub.close();
  }

  private heard(node: NodeView, previous: NodeView | undefined): void {
    if (this.closed) return;
    if (node.name !== this.options.localNode?.name && !this.runtimes.has(node.name)) {
      this.runtimes.set(node.name, new RemoteNodeRuntime({ nc: this.options.broker.nc, ns: this.options.broker.namespace, node: node.name, hub: this.hub, logger: this.options.log.child({ component: 'node', node: node.name }) }));
    }
    if (previous === undefined || previous.state === 'lost') {
      this.options.emit({
        actor: 'supervisor',
        action: 'node.ready',
        object: `node:${node.name}`,
        details: { labels: { ...node.labels }, capacity: { ...node.capacity }, returned: previous !== undefined },
      });
    }
  }

  private lost(node: NodeView): void {
    if (this.closed) return;
    const silentMs = Math.max(0, Date.now() - node.lastHeartbeatMs);
    this.runtimes.get(node.name)?.nodeLost(`node ${node.name} sent no heartbeat for ${silentMs} ms`);
    this.options.emit({ actor: 'supervisor', action: 'node.lost', object: `node:${node.name}`, details: { lastHeartbeatMs: node.lastHeartbeatMs, instances: node.instances.map((i) => i.agent) } });
  }
}

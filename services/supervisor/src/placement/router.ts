import { WarrenError, type Logger } from '@warren/core';
import type {
  AgentEvents,
  AgentExecOptions,
  AgentInstance,
  AgentIsolation,
  AgentProcess,
  AgentRuntime,
  AgentSpec,
  AgentStartSpec,
  AgentStorageRef,
  ReclaimReport,
  RuntimeHost,
} from '@warren/runtime';
import type { SqliteDatabase } from '@warren/store';
import type { HomeFile } from '../agents/prepare.js';
import type { AgentTemplate } from '../templates.js';
import { placeAgent, type PlacedAgent, type PlacementNode } from './place.js';
import { AgentPlacements, type AgentPlacementRow } from './store.js';

/** A node the router may place agents on: its view (labels, capacity, state) and the runtime that starts agents there. */
export interface RouterNode {
  readonly view: PlacementNode;
  readonly runtime: AgentRuntime;
}

/**
 * A start spec as the lifecycle gives it to the router: the local path keeps `prepareHome`
 * (writing into the home on this host); a node elsewhere or a pod gets `homeFiles` instead, the
 * same files as bytes, shipped with the start.
 */
export interface RoutedStartSpec extends AgentStartSpec {
  /** The files `prepareHome` would write (seed files, secret files, `~/.warren/nats.json`), made on demand. */
  readonly homeFiles?: () => Promise<HomeFile[]>;
}

/** What a runtime elsewhere (a `warren node` host, a pod) receives: the spec without `prepareHome`, with `homeFiles` as data. */
export type ShippedStartSpec = Omit<AgentStartSpec, 'prepareHome'> & { readonly homeFiles: readonly HomeFile[] };

/** What a node's last heartbeat says of it, as `NodeView` of `@warren/node` has it (the fields shown in `GET /api/v1/nodes`). */
export interface FleetNodeView {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly capacity: { readonly cpus: number; readonly memoryBytes: number; readonly maxAgents: number };
  readonly state: 'ready' | 'lost';
  readonly lastHeartbeatMs: number;
  readonly instances: readonly { readonly agent: string; readonly pid: number; readonly connected: boolean; readonly usage: { readonly memoryBytes: number } }[];
}

/** The router's view of `NodeFleet` (fleet.ts): the nodes for placement, every node heard of, and its close. */
export interface FleetLike {
  routerNodes(): RouterNode[];
  list(): FleetNodeView[];
  close(): Promise<void>;
}

/** Options of {@link PlacementRouter}. */
export interface PlacementRouterOptions {
  readonly db: SqliteDatabase;
  readonly log: Logger;
  /** The templates by name: an agent's `placement` comes from its spec's template. */
  readonly templates: ReadonlyMap<string, AgentTemplate>;
  /**
   * The supervisor's own host (the embedded node), whose runtime is called directly; null when
   * agents run only on `warren node` hosts (`--no-local-node`). Its runtime also answers probe and
   * reclaim.
   */
  readonly local: RouterNode | null;
  /** The other nodes now (ready and lost), read at each start; default none (or the fleet's). */
  readonly nodes?: () => readonly RouterNode[];
  /** The `warren node` hosts (see `NodeFleet`): their nodes when `nodes` is absent; closed with the router. */
  readonly fleet?: FleetLike;
  /** The Kubernetes driver, made at its first use; absent = no `kubernetes` target (a template asking for it waits with that reason). */
  readonly kubernetes?: () => Promise<AgentRuntime>;
}

/** A template's agent cannot be placed now; `message` says why (no node fits, no kubernetes target). */
export class PlacementError extends WarrenError {
  constructor(message: string) {
    super('WARREN_UNPLACEABLE', message);
  }
}

/**
 * The `AgentRuntime` the lifecycle calls: at each start it places the agent (its template's
 * `placement`: a node chosen by {@link placeAgent} among the local node and the ready `warren node`
 * hosts, or Kubernetes), starts it through that place's runtime, and remembers the place in
 * `agent_placements`, so that exec, storage detach and release go to the same place afterwards.
 * The memory and slots of an agent count against its node from its start until its instance has
 * exited.
 */
export class PlacementRouter implements AgentRuntime {
  readonly placements: AgentPlacements;
  /** Agents started (or being started) and not yet exited: where, and how much memory they hold. */
  private readonly live = new Map<string, PlacedAgent>();
  private kube: Promise<AgentRuntime> | undefined;
  private closed = false;

  constructor(private readonly options: PlacementRouterOptions) {
    this.placements = new AgentPlacements(options.db);
  }

  /** The nodes known now: the local one first, then the others. */
  nodes(): RouterNode[] {
    return [...(this.options.local ? [this.options.local] : []), ...(this.options.nodes?.() ?? this.options.fleet?.routerNodes() ?? [])];
  }

  /** Agents started through this router whose instance has not exited, with their node (null for a pod). */
  liveAgents(): { readonly agent: string; readonly node: string | null }[] {
    return [...this.live].map(([agent, p]) => ({ agent, node: p.node === KUBERNETES ? null : p.node }));
  }

  /**
   * Why an agent of `template` cannot be placed now, or undefined when one could (a dry run of
   * {@link start}'s choice, with the agents now live).
   */
  refusal(template: AgentTemplate, agent?: string): string | undefined {
    if (template.placement.target === 'kubernetes') {
      return this.options.kubernetes ? undefined : `template ${template.name} asks for placement target kubernetes, and this supervisor has none (warren up --kube-namespace …)`;
    }
    const decision = this.decide(template, agent);
    return 'refusal' in decision ? decision.refusal : undefined;
  }

  async start(spec: RoutedStartSpec, events: AgentEvents): Promise<AgentInstance> {
    this.assertOpen();
    const template = this.options.templates.get(spec.template);
    if (template?.placement.target === 'kubernetes') {
      if (!this.options.kubernetes) throw new PlacementError(this.refusal(template)!);
      this.kube ??= this.options.kubernetes();
      const runtime = await this.kube;
      return this.startOn(runtime, KUBERNETES, spec, events, true);
    }
    const decision = template ? this.decide(template, spec.name) : this.options.local ? { node: this.options.local.view.name } : { refusal: `template ${spec.template} is not loaded and there is no local node` };
    if ('refusal' in decision) throw new PlacementError(decision.refusal);
    const node = this.nodes().find((n) => n.view.name === decision.node)!;
    return this.startOn(node.runtime, node.view.name, spec, events, node !== this.options.local);
  }

  exec(agent: AgentSpec, argv: readonly string[], options: AgentExecOptions): Promise<AgentProcess> {
    return this.runtimeOf(agent.name).then((runtime) => runtime.exec(agent, argv, options));
  }

  async detachStorage(agent: AgentStorageRef): Promise<boolean> {
    return (await this.runtimeOf(agent.name)).detachStorage(agent);
  }

  /**
   * Releases the agent's storage where it was placed, then forgets the place (its
   * `agent_placements` row). With `options.keepPlacement` the row stays, for the caller to delete
   * with {@link forgetPlacement} in the transaction that deletes the account (one commit for both).
   * @throws what the place's runtime throws (the row is then kept).
   */
  async releaseStorage(agent: AgentStorageRef, options: { readonly keepPlacement?: boolean } = {}): Promise<void> {
    await (await this.runtimeOf(agent.name)).releaseStorage(agent);
    if (!options.keepPlacement) this.placements.delete(agent.name);
  }

  /** Forgets where `agent` was placed (deletes its row), inside the caller's transaction when one is open. */
  forgetPlacement(agent: string): void {
    this.placements.delete(agent);
  }

  /** Probes the local node's runtime; without a local node, reports the router itself (agents are probed where they are placed). */
  async probe(isolation: AgentIsolation = 'full'): Promise<RuntimeHost> {
    if (this.options.local) return this.options.local.runtime.probe(isolation);
    return { driver: 'nodes', isolation, details: { local: false } };
  }

  /** Reclaims what a crashed run left on the local node (each `warren node` reclaims its own at its start). */
  async reclaim(): Promise<ReclaimReport> {
    if (this.options.local) return this.options.local.runtime.reclaim();
    return { instances: [], storage: [] };
  }

  /**
   * Every node heard of (the embedded node included), by name, with the agents placed there whose
   * instance has not exited (`GET /api/v1/nodes`, `warren node list`). Without a fleet: the local
   * node alone, as this router knows it (no heartbeat: `lastHeartbeatMs` is now).
   */
  nodeViews(nowMs = Date.now()): { name: string; labels: Record<string, string>; capacity: { cpus: number; memoryBytes: number; maxAgents: number }; state: string; lastHeartbeatMs: number; instances: { agent: string; pid: number; connected: boolean; memoryBytes: number }[]; agents: string[] }[] {
    const placed = new Map<string, string[]>();
    for (const [agent, p] of [...this.live].sort(([a], [b]) => (a < b ? -1 : 1))) placed.set(p.node, [...(placed.get(p.node) ?? []), agent]);
    const heard: FleetNodeView[] = this.options.fleet?.list() ?? [];
    const local = this.options.local?.view;
    const views: FleetNodeView[] =
      local && !heard.some((n) => n.name === local.name)
        ? [...heard, { name: local.name, labels: local.labels, capacity: { cpus: 0, ...local.capacity }, state: local.state, lastHeartbeatMs: nowMs, instances: [] }]
        : heard;
    return views
      .map((n) => ({
        name: n.name,
        labels: { ...n.labels },
        capacity: { cpus: n.capacity.cpus, memoryBytes: n.capacity.memoryBytes, maxAgents: n.capacity.maxAgents },
        state: n.state,
        lastHeartbeatMs: n.lastHeartbeatMs,
        instances: n.instances.map((i) => ({ agent: i.agent, pid: i.pid, connected: i.connected, memoryBytes: i.usage.memoryBytes })),
        agents: placed.get(n.name) ?? [],
      }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Where agent `name` was last placed, or undefined. */
  placementOf(name: string): AgentPlacementRow | undefined {
    return this.placements.get(name);
  }

  /** Closes the fleet (the embedded node's instances stopped), the local runtime and the Kubernetes driver if it was made. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.options.fleet?.close().catch((error: unknown) => this.options.log.error({ err: error }, 'cannot close the nodes'));
    await this.options.local?.runtime.close();
    if (this.kube) await (await this.kube.catch(() => undefined))?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private decide(template: AgentTemplate, agent?: string) {
    const placed = [...this.live].filter(([name]) => name !== agent).map(([, p]) => p);
    return placeAgent(
      { template: template.name, labels: template.placement.labels, memoryBytes: template.agentOverrides[agent ?? '']?.resources?.memoryMaxBytes ?? template.resources.memoryMaxBytes },
      this.nodes().map((n) => n.view),
      placed,
    );
  }

  private async startOn(runtime: AgentRuntime, node: string, spec: RoutedStartSpec, events: AgentEvents, shipped: boolean): Promise<AgentInstance> {
    const { homeFiles, ...plain } = spec;
    this.live.set(spec.name, { node, memoryBytes: spec.resources.memoryMaxBytes });
    let instance: AgentInstance;
    try {
      if (shipped) {
        const { prepareHome: _local, ...rest } = plain;
        const files = (await homeFiles?.()) ?? [];
        const remote: ShippedStartSpec = { ...rest, homeFiles: files };
        instance = await runtime.start(remote, events);
      } else {
        instance = await runtime.start(plain, events);
      }
    } catch (error) {
      this.live.delete(spec.name);
      throw error;
    }
    this.placements.put(spec.name, node === KUBERNETES ? 'kubernetes' : 'nodes', node === KUBERNETES ? null : node, Date.now());
    this.options.log.debug({ agent: spec.name, node: node === KUBERNETES ? null : node, target: node === KUBERNETES ? 'kubernetes' : 'nodes' }, 'agent placed');
    const mine = this.live.get(spec.name);
    const forget = (): void => {
      if (this.live.get(spec.name) === mine) this.live.delete(spec.name);
    };
    instance.exited.then(forget, forget);
    return instance;
  }

  /** The runtime where agent `name` was last placed: its node's, the Kubernetes driver, or the local one when it was never placed. */
  private async runtimeOf(name: string): Promise<AgentRuntime> {
    this.assertOpen();
    const row = this.placements.get(name);
    if (row?.target === 'kubernetes') {
      if (!this.options.kubernetes) throw new PlacementError(`agent ${name} runs on Kubernetes, and this supervisor has no kubernetes target`);
      this.kube ??= this.options.kubernetes();
      return this.kube;
    }
    if (row?.node) {
      const node = this.nodes().find((n) => n.view.name === row.node);
      if (node) return node.runtime;
      throw new PlacementError(`agent ${name} was placed on node ${row.node}, which is not known now`);
    }
    if (this.options.local) return this.options.local.runtime;
    throw new PlacementError(`agent ${name} has no placement and there is no local node`);
  }

  private assertOpen(): void {
    if (this.closed) throw new WarrenError('WARREN_RUNTIME_CLOSED', 'the placement router is closed');
  }
}

/** The key pods are counted under in the live map (no node name can contain a space). */
const KUBERNETES = ' kubernetes';

/**
 * Placement: where each agent runs. `placeAgent` (place.ts) chooses a node by labels, agent slots
 * and memory; `PlacementRouter` (router.ts) is the `AgentRuntime` the lifecycle calls, which starts
 * each agent where its template's `placement` says (the supervisor's own host, a `warren node`
 * host, or Kubernetes) and remembers it in `agent_placements` (store.ts); `node-join.json`
 * (join-file.ts) is what a `warren node` host joins with.
 */
import type { Logger } from '@warren/core';
import type { AgentRuntime } from '@warren/runtime';
import type { SqliteDatabase } from '@warren/store';
import type { SupervisorConfig } from '../config.js';
import type { EventBus } from '../event-bus.js';
import type { WarrenEvent } from '../events.js';
import type { AgentTemplate } from '../templates.js';
import { PlacementRouter, type PlacementRouterOptions } from './router.js';

export { placeAgent, type PlacedAgent, type PlacementDecision, type PlacementNode, type PlacementRequest } from './place.js';
export { PlacementError, PlacementRouter, type PlacementRouterOptions, type RoutedStartSpec, type RouterNode, type ShippedStartSpec } from './router.js';
export { AgentPlacements, type AgentPlacementRow } from './store.js';
export { NodeFleet, type NodeFleetOptions } from './fleet.js';
export { NODE_JOIN_FILE, nodeJoinOf, writeNodeJoinFile, type NodeJoin } from './join-file.js';

/**
 * The router of a supervisor on `config`: `hostRuntime` (this host's sandboxes) as the local node
 * named `config.localNode.name` with its labels, agent limit and memory, or no local node with
 * `--no-local-node`; other nodes and Kubernetes as `extra` gives them.
 */
export function createPlacementRouter(
  config: SupervisorConfig,
  log: Logger,
  db: SqliteDatabase,
  templates: ReadonlyMap<string, AgentTemplate>,
  hostRuntime: AgentRuntime,
  extra: Pick<PlacementRouterOptions, 'nodes' | 'kubernetes' | 'fleet'> = {},
): PlacementRouter {
  const local = config.localNode;
  return new PlacementRouter({
    db,
    log: log.child({ component: 'placement' }),
    templates,
    local: local
      ? { view: { name: local.name, labels: local.labels, capacity: { memoryBytes: local.memoryBytes, maxAgents: local.maxAgents }, state: 'ready' }, runtime: hostRuntime }
      : null,
    ...extra,
  });
}

/**
 * Records `event` on `events`, logging instead of throwing when it cannot be (a node's heartbeat
 * or loss arrives while the supervisor closes and its database is closed).
 */
export function emitQuietly(events: Pick<EventBus, 'emit'>, log: Logger, event: WarrenEvent): void {
  try {
    events.emit(event);
  } catch (error) {
    log.warn({ err: error, action: event.action, object: event.object }, 'cannot record a node event');
  }
}

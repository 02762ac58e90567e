/**
 * Where an agent goes: a pure choice among nodes by labels, agent slots and memory. No I/O; the
 * router (router.ts) gives it the nodes it knows and the agents already placed.
 */

/** What placement needs of a node: the fields of `@warren/node`'s `NodeView` it reads. */
export interface PlacementNode {
  /** The node's name, `[a-z][a-z0-9-]{0,62}`. */
  readonly name: string;
  /** Its labels (`zone=b`, `gpu=1`): exact strings. */
  readonly labels: Readonly<Record<string, string>>;
  /** What it offers: `memoryBytes` for agents (bytes) and `maxAgents` instances at most. */
  readonly capacity: { readonly memoryBytes: number; readonly maxAgents: number };
  /** Only `ready` nodes take agents; a `lost` one takes none. */
  readonly state: 'ready' | 'lost';
}

/** An agent already on a node: counts against its slots and, with its memory limit (bytes), against its memory. */
export interface PlacedAgent {
  readonly node: string;
  readonly memoryBytes: number;
}

/** What an agent asks of its node: its template's name (for the reason), the labels it requires and its memory limit in bytes. */
export interface PlacementRequest {
  readonly template: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly memoryBytes: number;
}

/** The node chosen, or why none fits (a sentence naming what was asked and what each node lacked). */
export type PlacementDecision = { readonly node: string } | { readonly refusal: string };

/**
 * Chooses the node for one agent. A node fits when it is `ready`, carries every label of the
 * request with the exact value, runs fewer than `capacity.maxAgents` placed agents, and the
 * memory of its placed agents plus `request.memoryBytes` stays within `capacity.memoryBytes`.
 * Among the fits the one with the most free memory (`memoryBytes` − placed memory) wins, ties by
 * name (lexicographic, smallest first): the spread-by-free-resources rule of the Kubernetes
 * scheduler's "LeastAllocated" score, on memory alone.
 * @returns `{ node }`, or `{ refusal }` when no node fits (no nodes at all, or each node's first
 *   failing check, by node name).
 */
export function placeAgent(request: PlacementRequest, nodes: readonly PlacementNode[], placed: readonly PlacedAgent[]): PlacementDecision {
  const used = new Map<string, { agents: number; memoryBytes: number }>();
  for (const p of placed) {
    const u = used.get(p.node) ?? { agents: 0, memoryBytes: 0 };
    used.set(p.node, { agents: u.agents + 1, memoryBytes: u.memoryBytes + p.memoryBytes });
  }
  const wanted = Object.entries(request.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const why: string[] = [];
  let best: { name: string; free: number } | undefined;
  for (const node of [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const u = used.get(node.name) ?? { agents: 0, memoryBytes: 0 };
    const free = node.capacity.memoryBytes - u.memoryBytes;
    const missing = wanted.filter(([k, v]) => node.labels[k] !== v).map(([k, v]) => `${k}=${v}`);
    let lacks: string | undefined;
    if (node.state !== 'ready') lacks = 'is lost';
    else if (missing.length > 0) lacks = `lacks the label${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
    else if (u.agents >= node.capacity.maxAgents) lacks = `runs ${u.agents} of ${node.capacity.maxAgents} agents`;
    else if (free < request.memoryBytes) lacks = `has ${Math.max(0, free)} of ${node.capacity.memoryBytes} bytes free, ${request.memoryBytes} asked`;
    if (lacks !== undefined) {
      why.push(`${node.name} ${lacks}`);
      continue;
    }
    if (best === undefined || free > best.free) best = { name: node.name, free };
  }
  if (best) return { node: best.name };
  const asked = wanted.length > 0 ? ` with ${wanted.map(([k, v]) => `${k}=${v}`).join(', ')}` : '';
  if (nodes.length === 0) return { refusal: `no node is ready for template ${request.template}${asked}` };
  return { refusal: `no node fits template ${request.template}${asked} and ${request.memoryBytes} bytes: ${why.join('; ')}` };
}

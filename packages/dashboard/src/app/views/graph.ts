/// <reference lib="dom" />
/**
 * The collaboration graph (loaded on demand with d3-force): who messages whom and who publishes on
 * which topic, from the message ledger, with counts and denied counts; agents are circles, topics
 * rounded squares. The layout runs to rest off-screen (a fixed number of ticks), then renders once
 * as SVG. Below it, the edges as a table and the latest message decisions.
 */
import { forceCenter, forceCollide, forceLink, forceManyBody, forceSimulation, type SimulationLinkDatum, type SimulationNodeDatum } from 'd3-force';
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useMemo } from 'preact/hooks';
import { query } from '../api.js';
import { formatBytes, graphModel, type GraphLink, type GraphNode } from '../model.js';
import type { MessagesView } from '../types.js';
import { ErrorLine, formatTime, usePoll } from '../ui.js';

type Node = GraphNode & SimulationNodeDatum;
type Link = SimulationLinkDatum<Node> & Omit<GraphLink, 'source' | 'target'>;

/** A node's radius (a topic's half side): larger for nodes that message more. */
const radius = (n: GraphNode | undefined): number => 14 + Math.min(12, Math.sqrt((n?.sent ?? 0) + (n?.received ?? 0)));

/** A link's label on the graph: its count, and its denied count when some were. */
const edgeLabel = (l: { count: number; denied: number }): string => (l.denied > 0 ? `${l.count} (${l.denied} denied)` : String(l.count));

/** The name of a link's end (d3 replaces the id with the node once the layout ran). */
const nodeName = (n: string | number | Node): string => (typeof n === 'object' ? n.label : String(n));

/** The edges of the laid-out graph as table rows, in the model's order (count, then names). */
function edgeRows(layout: { nodes: readonly Node[]; links: readonly Link[] }): { source: string; target: string; topic: string | null; count: number; denied: number; bytes: number; lastMs: number | null }[] {
  return layout.links.map((l) => {
    const target = typeof l.target === 'object' ? l.target : undefined;
    return {
      source: nodeName(l.source),
      target: nodeName(l.target),
      topic: target?.kind === 'topic' ? target.label : null,
      count: l.count,
      denied: l.denied,
      bytes: l.bytes,
      lastMs: l.lastMs,
    };
  });
}

const WIDTH = 800;
const HEIGHT = 520;

/** The graph view. */
export function Graph(): VNode {
  const data = usePoll<MessagesView>(`/api/v1/messages${query({ limit: 200 })}`, 10_000);
  const layout = useMemo(() => {
    if (data.data === undefined) return undefined;
    const model = graphModel(data.data.edges);
    const nodes: Node[] = model.nodes.map((n) => ({ ...n }));
    const links: Link[] = model.links.map((l) => ({ ...l }));
    const simulation = forceSimulation<Node>(nodes)
      .force('link', forceLink<Node, Link>(links).id((n) => n.id).distance(140))
      .force('charge', forceManyBody<Node>().strength(-500))
      .force('center', forceCenter(WIDTH / 2, HEIGHT / 2))
      .force('collide', forceCollide<Node>(40))
      .stop();
    simulation.tick(300);
    // The view box holds every node and its label: at least WIDTH × HEIGHT, centred on the nodes.
    const box = nodes.reduce(
      (b, n) => ({ x0: Math.min(b.x0, (n.x ?? 0) - 70), x1: Math.max(b.x1, (n.x ?? 0) + 70), y0: Math.min(b.y0, (n.y ?? 0) - 40), y1: Math.max(b.y1, (n.y ?? 0) + 50) }),
      { x0: Infinity, x1: -Infinity, y0: Infinity, y1: -Infinity },
    );
    const width = Math.max(WIDTH, box.x1 - box.x0);
    const height = Math.max(HEIGHT, box.y1 - box.y0);
    const viewBox = nodes.length === 0 ? `0 0 ${WIDTH} ${HEIGHT}` : `${(box.x0 + box.x1 - width) / 2} ${(box.y0 + box.y1 - height) / 2} ${width} ${height}`;
    return { nodes, links, viewBox };
  }, [data.data]);
  const maxCount = Math.max(1, ...(layout?.links.map((l) => l.count) ?? [1]));
  const xy = (n: string | number | Node): { x: number; y: number } => (typeof n === 'object' ? { x: n.x ?? 0, y: n.y ?? 0 } : { x: 0, y: 0 });
  return html`<section data-testid="graph-view">
    <header class="view-head"><h1>Collaboration</h1><span class="muted">who messages whom, and who publishes on which topic</span></header>
    <${ErrorLine} error=${data.error} />
    ${layout === undefined
      ? html`<p class="muted">Loading…</p>`
      : layout.nodes.length === 0
        ? html`<p class="empty">No messages between agents yet.</p>`
        : html`<div class="card graph-card"><svg class="graph" viewBox=${layout.viewBox} role="img" aria-label="collaboration graph" data-testid="graph-svg">
            <defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0L10,5L0,10z" class="arrowhead" /></marker></defs>
            ${layout.links.map((l) => {
              const s = xy(l.source);
              const t = xy(l.target);
              const mx = (s.x + t.x) / 2 + (t.y - s.y) * 0.12;
              const my = (s.y + t.y) / 2 - (t.x - s.x) * 0.12;
              // End the curve at the target's rim so the arrowhead shows: back along the tangent at the end.
              const dx = t.x - mx;
              const dy = t.y - my;
              const length = Math.hypot(dx, dy) || 1;
              const back = radius(typeof l.target === 'object' ? l.target : undefined) + 3;
              const ex = t.x - (dx / length) * back;
              const ey = t.y - (dy / length) * back;
              return html`<g class=${l.denied > 0 ? 'edge denied' : 'edge'} data-testid="graph-edge">
                <path d=${`M${s.x},${s.y}Q${mx},${my} ${ex},${ey}`} stroke-width=${1 + (l.count / maxCount) * 5} marker-end="url(#arrow)">
                  <title>${`${nodeName(l.source)} → ${nodeName(l.target)}: ${l.count} message(s)${l.denied > 0 ? `, ${l.denied} denied` : ''}`}</title></path>
                <text x=${mx} y=${my} class="edge-label" data-testid="graph-edge-label">${edgeLabel(l)}</text>
              </g>`;
            })}
            ${layout.nodes.map((n) => {
              const r = radius(n);
              return n.kind === 'topic'
                ? html`<g class="node topic" data-testid="graph-topic">
                    <rect x=${(n.x ?? 0) - r} y=${(n.y ?? 0) - r} width=${2 * r} height=${2 * r} rx="6" />
                    <text x=${n.x ?? 0} y=${(n.y ?? 0) + 34} text-anchor="middle">${`# ${n.label}`}</text>
                    <title>${`topic ${n.label}: ${n.received} message(s) published`}</title>
                  </g>`
                : html`<a href=${n.id.includes(':') ? undefined : `#/agents/${encodeURIComponent(n.id)}`} class="node" data-testid="graph-node">
                    <circle cx=${n.x ?? 0} cy=${n.y ?? 0} r=${r} />
                    <text x=${n.x ?? 0} y=${(n.y ?? 0) + 34} text-anchor="middle">${n.label}</text>
                    <title>${`${n.id}: sent ${n.sent}, received ${n.received}`}</title>
                  </a>`;
            })}
          </svg></div>`}
    ${layout !== undefined && layout.links.length > 0 &&
    html`<h2>Edges</h2><div class="table-wrap"><table class="table" data-testid="graph-edges"><thead><tr><th>From</th><th>To</th><th class="num">Messages</th><th class="num">Denied</th><th class="num">Bytes</th><th>Last</th></tr></thead>
      <tbody>${edgeRows(layout).map(
        (l) => html`<tr key=${`${l.source} ${l.target}`}><td>${l.source}</td><td>${l.topic === null ? l.target : html`<span class="muted">topic</span> ${l.topic}`}</td><td class="num">${l.count}</td><td class="num">${l.denied > 0 ? html`<span class="error">${l.denied}</span>` : '0'}</td><td class="num">${formatBytes(l.bytes)}</td><td>${formatTime(l.lastMs)}</td></tr>`,
      )}</tbody></table></div>`}
    ${data.data !== undefined && data.data.messages.length > 0 &&
    html`<h2>Latest messages</h2><div class="table-wrap"><table class="table"><thead><tr><th>Time</th><th>From</th><th>To</th><th>Allowed</th></tr></thead>
      <tbody>${[...data.data.messages].sort((x, y) => y.seq - x.seq).slice(0, 50).map((m) => html`<tr key=${m.seq}><td>${formatTime(m.timeMs)}</td><td>${m.from}</td><td>${m.topic !== undefined && m.topic !== '' ? `topic ${m.topic}` : m.to}</td><td>${m.allowed ? 'yes' : html`<span class="error">denied</span>`}</td></tr>`)}</tbody></table></div>`}
  </section>`;
}

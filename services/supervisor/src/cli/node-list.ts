import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
import { connectBroker } from '@warren/broker';
import { parseDurationMs } from '@warren/core';
import { DEFAULT_HEARTBEAT_MS, NodeRegistry, readNodeJoin, type NodeView } from '@warren/node';
import { NODE_JOIN_FILE } from '../placement/join-file.js';

/** Flags of `warren node list`. */
interface NodeListFlags {
  join?: string;
  stateDir?: string;
  root: string;
  wait: string;
  json?: boolean;
}

/**
 * One line per node for `warren node list`: name, state, agents (instances its last heartbeat
 * reported) of its maximum, memory for agents in MiB, labels, and seconds since its last heartbeat.
 */
export function formatNodes(nodes: readonly NodeView[], nowMs: number): string {
  const rows = [['NODE', 'STATE', 'AGENTS', 'MEMORY', 'LABELS', 'LAST HEARTBEAT']];
  for (const n of nodes) {
    const labels = Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-';
    rows.push([n.name, n.state, `${n.instances.length}/${n.capacity.maxAgents}`, `${Math.round(n.capacity.memoryBytes / 1024 / 1024)}MiB`, labels, `${Math.max(0, Math.round((nowMs - n.lastHeartbeatMs) / 1000))}s ago`]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/**
 * Lists the nodes of the Warren a join file names: listens to their heartbeats (`<p>.node.hb.*`)
 * for `wait` (default a little over one heartbeat period), then prints each node heard of (the
 * supervisor's embedded node among them) as a table, or as JSON (`NodeView[]`) with `--json`.
 * @returns the exit code: 0, or 1 when no node was heard of.
 * @throws {ConfigError} for a join file that cannot be read, a bad `--wait`.
 */
async function listNodes(flags: NodeListFlags): Promise<number> {
  const waitMs = parseDurationMs(flags.wait, '--wait');
  const file = flags.join ?? join(resolve(flags.root, flags.stateDir ?? 'var'), NODE_JOIN_FILE);
  const joined = await readNodeJoin(file);
  const logger = pino({ level: 'silent' });
  const broker = await connectBroker({
    servers: joined.servers,
    name: 'warren-node-list',
    ...(joined.user !== null && joined.password !== null ? { credentials: { kind: 'user-password' as const, user: joined.user, password: joined.password } } : {}),
    ...(joined.instance !== null ? { instance: joined.instance } : {}),
    signingKey: Buffer.from(joined.signingKey, 'hex'),
    logger,
  });
  try {
    const registry = new NodeRegistry({ nc: broker.nc, ns: broker.namespace, logger });
    try {
      await new Promise((resolveWait) => setTimeout(resolveWait, waitMs));
      const nodes = registry.list();
      process.stdout.write(flags.json ? `${JSON.stringify(nodes, null, 2)}\n` : `${formatNodes(nodes, Date.now())}\n`);
      return nodes.length > 0 ? 0 : 1;
    } finally {
      registry.close();
    }
  } finally {
    await broker.close().catch(() => undefined);
  }
}

/** Adds `warren node list` to the `warren node` command. */
export function registerNodeList(node: Command): void {
  node
    .command('list')
    .description("list the nodes of a Warren (the supervisor's own host among them) from their heartbeats")
    .option('--join <file>', 'the join file (default: <state-dir>/node-join.json)')
    .option('--root <dir>', 'base of the default state dir', '.')
    .option('--state-dir <dir>', "the supervisor's state dir (default: <root>/var)")
    .option('--wait <duration>', 'how long to listen for heartbeats', `${Math.round(DEFAULT_HEARTBEAT_MS * 1.5)}ms`)
    .option('--json', 'print the nodes as JSON')
    .action(async (flags: NodeListFlags) => {
      process.exitCode = await listNodes(flags);
    });
}

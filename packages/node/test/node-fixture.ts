import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectBroker, type Broker, type EmbeddedNatsServer } from '@warren/broker';
import { makeTempDir, startTestNats, type TempDir } from '@warren/testing';
import { createBubblewrapRuntime, type AgentRuntime, type AgentStartSpec } from '@warren/runtime';
import { ChannelHub, NodeDaemon, NodeRegistry, RemoteNodeRuntime, type NodeView } from '../src/index.js';
import { recordingLogger } from './support.js';

/** The repository root. */
export const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The agent runner package, bound into every sandbox (built by `npm run build`). */
export const RUNNER_DIR = join(repo, 'packages', 'agent-runner');

/** Fails (never skips) with an install hint when the machine cannot run sandboxed agents. */
export function requireMachine(): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (run the tests as root)');
  const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin} || test -x /usr/sbin/${bin}`]).status === 0;
  if (!has('bwrap')) missing.push('bwrap (apt-get install -y bubblewrap)');
  if (!has('nats-server')) missing.push('nats-server (apt-get install -y nats-server)');
  if (!existsSync(join(RUNNER_DIR, 'dist', 'main.js'))) missing.push('the agent runner build (npm run build)');
  if (missing.length > 0) throw new Error(`this machine lacks: ${missing.join('; ')}. Or run: bash scripts/setup.sh`);
}

/**
 * This file's agents' uids: a block of 50 per test process from 1_900_940_000, outside the ranges
 * other suites take (supervisors below 1_900_900_000, sandbox, runner and runtime suites below
 * 1_900_930_000).
 */
const UID_BASE = 1_900_940_000 + (process.pid % 100) * 50;

/** A node daemon on a bubblewrap runtime of its own, and its supervisor side. */
export interface NodeSide {
  readonly name: string;
  readonly daemon: NodeDaemon;
  readonly runtime: AgentRuntime;
  readonly remote: RemoteNodeRuntime;
  readonly homeRoot: string;
  readonly broker: Broker;
}

/** A nats-server, a supervisor side (broker, hub, registry) and node daemons on temp directories. */
export interface NodeFixture {
  readonly nats: EmbeddedNatsServer;
  readonly supervisor: Broker;
  readonly hub: ChannelHub;
  readonly registry: NodeRegistry;
  readonly lost: NodeView[];
  readonly logger: ReturnType<typeof recordingLogger>;
  startNode(name: string, options?: { maxAgents?: number }): Promise<NodeSide>;
  /** A start spec of agent `name` (its own uid; home mapped by the node). */
  agent(name: string): AgentStartSpec;
  uidOf(name: string): number;
  close(): Promise<void>;
}

export const HEARTBEAT_MS = 200;

export async function nodeFixture(): Promise<NodeFixture> {
  requireMachine();
  const temp: TempDir = await makeTempDir('warren-node-');
  chmodSync(temp.path, 0o755);
  const nats = await startTestNats();
  const signingKey = randomBytes(32);
  const logger = recordingLogger();
  const closers: (() => Promise<void>)[] = [async () => nats.close(), async () => temp.close()];
  const supervisor = await connectBroker({ servers: nats.url, name: 'node-test-supervisor', signingKey });
  closers.unshift(() => supervisor.close());
  await supervisor.ensureStreams();
  const hub = new ChannelHub({ nc: supervisor.nc, ns: supervisor.namespace, logger });
  const lost: NodeView[] = [];
  const remotes = new Map<string, RemoteNodeRuntime>();
  const fixture: NodeFixture = {
    nats,
    supervisor,
    hub,
    lost,
    logger,
    registry: undefined as unknown as NodeRegistry,
    async startNode(name, options = {}) {
      const stateDir = join(temp.path, name, 'state');
      const homeRoot = join(temp.path, name, 'homes');
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      mkdirSync(homeRoot, { recursive: true, mode: 0o755 });
      chmodSync(join(temp.path, name), 0o755);
      const broker = await connectBroker({ servers: nats.url, name: `node-${name}`, signingKey });
      const runtime = createBubblewrapRuntime({ stateDir, homeRoot, runnerDir: RUNNER_DIR, root: repo, instanceTag: `nd${process.pid}${name}`, broker });
      const daemon = await NodeDaemon.start({
        nc: broker.nc,
        broker,
        ns: broker.namespace,
        name,
        labels: { zone: 'b' },
        capacity: { cpus: 2, memoryBytes: 4 * 2 ** 30, maxAgents: options.maxAgents ?? 4 },
        runtime,
        logger: logger.child({ node: name }),
        heartbeatMs: HEARTBEAT_MS,
        homeRoot,
      });
      const remote = new RemoteNodeRuntime({ nc: supervisor.nc, ns: supervisor.namespace, node: name, hub, logger, requestTimeoutMs: 30_000 });
      remotes.set(name, remote);
      closers.unshift(async () => {
        await remote.close();
        await daemon.close();
        await daemon.stopAll(1_000);
        await runtime.close();
        await broker.close().catch(() => undefined);
      });
      return { name, daemon, runtime, remote, homeRoot, broker };
    },
    uidOf(name) {
      const known = uids.get(name);
      if (known !== undefined) return known;
      const uid = UID_BASE + uids.size;
      uids.set(name, uid);
      return uid;
    },
    agent(name) {
      const uid = fixture.uidOf(name);
      return {
        name,
        template: 'shell',
        uid,
        gid: uid,
        homeDir: `/var/lib/warren/home/shell/${name}`,
        resources: { memoryMaxBytes: 512 * 2 ** 20, pidsMax: 128, cpuWeight: 100, nofile: 1024, fsizeBytes: 64 * 2 ** 20, tmpfsBytes: 16 * 2 ** 20 },
        capabilities: ['shell'],
        runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 1_000 },
        homeQuotaBytes: null,
      };
    },
    async close() {
      for (const close of closers.splice(0)) await close();
    },
  };
  const uids = new Map<string, number>();
  const registry = new NodeRegistry({
    nc: supervisor.nc,
    ns: supervisor.namespace,
    logger,
    heartbeatMs: HEARTBEAT_MS,
    // Generous: a loaded machine may stall a heartbeat; a closed daemon stays silent longer.
    lostAfterMs: 3_000,
    onLost: (node) => {
      lost.push(node);
      remotes.get(node.name)?.nodeLost(`node ${node.name} sent no heartbeat since ${new Date(node.lastHeartbeatMs).toISOString()}`);
    },
  });
  closers.unshift(async () => {
    registry.close();
    hub.close();
  });
  (fixture as { registry: NodeRegistry }).registry = registry;
  return fixture;
}

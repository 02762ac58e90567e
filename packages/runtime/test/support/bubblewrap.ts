import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectBroker, type Broker, type EmbeddedNatsServer } from '@warren/broker';
import { makeTempDir, startTestNats, type TempDir } from '@warren/testing';
import { createBubblewrapRuntime, type AgentRuntime, type AgentStartSpec } from '../../src/index.js';
import type { ContractFixture } from '../contract.js';

/** The repository root. */
export const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
/** The agent runner package, bound into every sandbox (its dist/ is built by `npm run build`). */
export const RUNNER_DIR = join(repo, 'packages', 'agent-runner');

/** Fails (never skips) with an install hint when the machine cannot run sandboxed agents. */
export function requireMachine(): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (run the tests as root)');
  const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin} || test -x /usr/sbin/${bin}`]).status === 0;
  if (!has('bwrap')) missing.push('bwrap (apt-get install -y bubblewrap)');
  if (!has('setpriv')) missing.push('setpriv (apt-get install -y util-linux)');
  if (!has('nats-server')) missing.push('nats-server (apt-get install -y nats-server)');
  if (!existsSync(join(RUNNER_DIR, 'dist', 'main.js'))) missing.push('the agent runner build (npm run build)');
  if (!existsSync(join(repo, 'packages', 'runtime', 'dist', 'index.js'))) missing.push('the runtime build (npm run build)');
  if (missing.length > 0) throw new Error(`this machine lacks: ${missing.join('; ')}. Or run: bash scripts/setup.sh`);
}

/**
 * This file's agents' uids: a block of 50 per test process, 1_900_920_000 and up, outside the
 * ranges other suites take (their supervisors' blocks stop below 1_900_900_000; the runner's
 * sandboxed test uses 1_900_901_000..1_900_901_999).
 */
const UID_BASE = 1_900_920_000 + (process.pid % 100) * 50;

/** The bubblewrap driver on temp directories, with a real nats-server and broker. */
export interface BubblewrapFixture extends ContractFixture {
  readonly dir: string;
  readonly stateDir: string;
  readonly homeRoot: string;
  readonly nats: EmbeddedNatsServer;
  /** Makes another runtime on the same directories (e.g. without a broker). */
  makeRuntime(options?: { broker?: Broker }): AgentRuntime;
}

/**
 * Makes the directories (a root-owned temp dir holding `state/` and `home/`), starts nats-server,
 * connects a broker with its streams and makes the runtime. Agents' homes are `home/<name>`.
 */
export async function bubblewrapFixture(): Promise<BubblewrapFixture> {
  requireMachine();
  const temp: TempDir = await makeTempDir('warren-runtime-');
  const stateDir = join(temp.path, 'state');
  const homeRoot = join(temp.path, 'home');
  mkdirSync(stateDir, { mode: 0o700 });
  mkdirSync(homeRoot, { mode: 0o755 });
  chmodSync(temp.path, 0o755);
  const nats = await startTestNats();
  let broker: Broker;
  try {
    broker = await connectBroker({ servers: nats.url, name: 'runtime-test' });
    await broker.ensureStreams();
  } catch (error) {
    await nats.close();
    await temp.close();
    throw error;
  }
  const makeRuntime = (options: { broker?: Broker } = {}): AgentRuntime =>
    createBubblewrapRuntime({
      stateDir,
      homeRoot,
      runnerDir: RUNNER_DIR,
      root: repo,
      instanceTag: `rt${process.pid}`,
      ...(options.broker ? { broker: options.broker } : {}),
    });
  const runtime = makeRuntime({ broker });
  const names = new Map<string, number>();
  let closing: Promise<void> | undefined;
  return {
    dir: temp.path,
    stateDir,
    homeRoot,
    nats,
    broker,
    runtime,
    makeRuntime,
    async agent(name: string): Promise<AgentStartSpec> {
      const uid = names.get(name) ?? UID_BASE + names.size;
      names.set(name, uid);
      const homeDir = join(homeRoot, name);
      mkdirSync(homeDir, { recursive: true, mode: 0o700 });
      chownSync(homeDir, uid, uid);
      return {
        name,
        template: 'shell',
        uid,
        gid: uid,
        homeDir,
        resources: { memoryMaxBytes: 512 * 2 ** 20, pidsMax: 128, cpuWeight: 100, nofile: 1024, fsizeBytes: 64 * 2 ** 20, tmpfsBytes: 16 * 2 ** 20 },
        capabilities: ['shell'],
        runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 1_000 },
        homeQuotaBytes: null,
      };
    },
    close(): Promise<void> {
      closing ??= (async () => {
        await runtime.close();
        await broker.close().catch(() => undefined);
        await nats.close();
        await temp.close();
      })();
      return closing;
    },
  };
}

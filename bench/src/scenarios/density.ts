import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { probeHost, spawnSandbox, type HostCapabilities } from '@warren/sandbox';
import type { BenchContext, Scenario } from '../lib/context.js';
import { roundsFigure, type Figure } from '../lib/figure.js';
import { makeLayout, startWarren } from '../lib/layout.js';
import { signalChild } from '../lib/procs.js';
import { BENCH_UID } from './sandbox.js';

/** Agents started idle: the bench run's default, and with `--full` the figure. */
const AGENTS = { quick: 20, default: 200, full: 1_000 } as const;
/** How long the idle supervisor is watched for its CPU share, ms. */
const WATCH_MS = 10_000;
const MIB = 2 ** 20;
/**
 * Memory limit of each idle agent's sandbox. Placement reserves each agent's limit out of the
 * host's memory, so the layout's 256 MiB would let only about 90 agents start on a 24 GiB host;
 * 20 MiB (three times what an idle runner uses) lets 1,000 fit.
 */
const AGENT_MEMORY = '20MiB';
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** Memory of one cgroup (v1 memory controller or cgroup2), bytes: usage (with page cache) and anonymous memory. */
interface CgroupMemory {
  readonly usage: number;
  readonly anon: number;
}

/** The directory holding Warren's memory cgroups (`<memory hierarchy>/warren`). */
function memoryParent(host: HostCapabilities): string {
  const root = host.cgroup.version === 'v2' ? host.cgroup.paths.unified : host.cgroup.paths.memory;
  if (!root) throw new Error('density: the host has no memory cgroup hierarchy');
  return join(root, 'warren');
}

/** Reads a cgroup's memory: v1 `memory.usage_in_bytes` + `memory.stat` `total_rss`, v2 `memory.current` + `memory.stat` `anon`. */
function cgroupMemory(dir: string, version: 'v1' | 'v2'): CgroupMemory | null {
  try {
    const stat = readFileSync(join(dir, 'memory.stat'), 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(stat)?.[1] ?? 0);
    if (version === 'v1') return { usage: Number(readFileSync(join(dir, 'memory.usage_in_bytes'), 'utf8')), anon: field('total_rss') };
    return { usage: Number(readFileSync(join(dir, 'memory.current'), 'utf8')), anon: field('anon') };
  } catch {
    return null;
  }
}

/** utime + stime of a process, ms (from /proc/<pid>/stat). */
function processCpuMs(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
}

/** VmRSS of a process, bytes. */
function processRss(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? 0 : sorted[Math.floor(sorted.length / 2)]!;
}

/** What one round of `density.idle-agents` measured. */
interface DensityRound {
  /** Median over the agents of their cgroup's memory, bytes. */
  readonly agentUsage: number;
  readonly agentAnon: number;
  readonly supervisorRss: number;
  /** Supervisor CPU while every agent is idle, % of one core. */
  readonly supervisorCpu: number;
  /** From `warren up` to every agent ready (distinct agents with an audit `agent.ready` row: one killed and started again counts once), s. */
  readonly startS: number;
  /** From `warren up` to half the agents ready, s. */
  readonly halfS: number;
  /** CPU time of the supervisor process (user + system) from `warren up` to every agent ready, s. */
  readonly startCpuS: number;
  /** Changes of the agents' NATS users (audit `broker.users` rows: one nats-server reload each) until every agent was ready. */
  readonly userReloads: number;
}

/** Starts `warren up` with `agents` persistent agents kept idle (warm pool), measures, stops it. */
async function idleAgents(ctx: BenchContext, host: HostCapabilities, agents: number, round: number): Promise<DensityRound> {
  const layout = makeLayout(join(ctx.scratchDir, `density-${round}`), ctx.repoRoot, { lifecycle: 'persistent', maxInstances: agents, tasks: 0, warmPool: agents });
  const templatePath = join(layout.root, 'agents', 'shell.yaml');
  writeFileSync(templatePath, readFileSync(templatePath, 'utf8').replace(/memory: [^,\s}]+/, `memory: ${AGENT_MEMORY}`));
  const started = Date.now();
  let startCpuS = 0;
  let userReloads = 0;
  const up = startWarren(ctx.repoRoot, ['up', '--root', layout.root, '--log-level', 'warn', '--kill-grace', '2s']);
  try {
    while (!existsSync(layout.dbPath)) {
      if (Date.now() - started > 60_000) throw new Error('density: no state database after 60 s');
      await delay(50);
    }
    const db = new Database(layout.dbPath, { readonly: true });
    let halfS: number | undefined;
    try {
      // The file appears before the supervisor's migrations made the audit table: until then, 0 ready.
      const ready = (): number => {
        try {
          return (db.prepare("SELECT COUNT(DISTINCT object) AS n FROM audit WHERE action = 'agent.ready'").get() as { n: number }).n;
        } catch {
          return 0;
        }
      };
      const deadline = Date.now() + 60_000 + agents * 500;
      for (let n = ready(); n < agents; n = ready()) {
        if (Date.now() > deadline) throw new Error(`density: ${n} of ${agents} agents ready before the deadline`);
        if (halfS === undefined && n >= agents / 2) halfS = (Date.now() - started) / 1000;
        await delay(200);
      }
      startCpuS = processCpuMs(up.pid) / 1000;
      userReloads = (db.prepare("SELECT COUNT(*) AS n FROM audit WHERE action = 'broker.users'").get() as { n: number }).n;
    } finally {
      db.close();
    }
    const startS = (Date.now() - started) / 1000;
    // Let start-up work (page faults, JIT, the first heartbeats) settle, then watch the idle state.
    await delay(3_000);
    const cpuBefore = processCpuMs(up.pid);
    const watchStart = Date.now();
    await delay(WATCH_MS);
    const supervisorCpu = ((processCpuMs(up.pid) - cpuBefore) / (Date.now() - watchStart)) * 100;
    const supervisorRss = processRss(up.pid);
    const parent = memoryParent(host);
    const tag = readdirSync(parent).filter((n) => n.includes('-shell-'));
    const memories = tag.map((n) => cgroupMemory(join(parent, n), host.cgroup.version === 'v2' ? 'v2' : 'v1')).filter((m): m is CgroupMemory => m !== null);
    if (memories.length < agents) throw new Error(`density: found ${memories.length} agent memory cgroups, expected ${agents}`);
    return {
      agentUsage: median(memories.map((m) => m.usage)),
      agentAnon: median(memories.map((m) => m.anon)),
      supervisorRss,
      supervisorCpu,
      startS,
      halfS: halfS ?? startS,
      startCpuS,
      userReloads,
    };
  } finally {
    signalChild(up.pid, 'SIGTERM');
    await up.exited;
  }
}

/** The baseline: a bare sandbox (same recipe) whose only process is `sleep`, its cgroup's memory once idle. */
async function idleSleepSandbox(ctx: BenchContext, host: HostCapabilities): Promise<CgroupMemory> {
  const dir = join(ctx.scratchDir, 'density-baseline');
  const home = join(dir, 'home');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  chownSync(home, BENCH_UID, BENCH_UID);
  const name = `wbench-density-${process.pid}`;
  const sandbox = await spawnSandbox({
    name,
    uid: BENCH_UID,
    gid: BENCH_UID,
    homeHostPath: home,
    homePath: '/home/bench',
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\nbench:x:${BENCH_UID}:${BENCH_UID}::/home/bench:/bin/sh\n`,
    group: `root:x:0:\nbench:x:${BENCH_UID}:\n`,
    argv: ['/bin/sleep', '600'],
    env: { HOME: '/home/bench', PATH: '/usr/bin:/bin' },
    limits: { memoryMaxBytes: 256 * MIB, pidsMax: 64, cpuWeight: 100, nofile: 1024, fsizeBytes: 16 * MIB, tmpfsBytes: 16 * MIB },
    runDir: join(dir, 'run'),
    logPath: join(dir, 'sleep.log'),
    logMaxBytes: 1024 * 1024,
  });
  try {
    await delay(1_000);
    const memory = cgroupMemory(join(memoryParent(host), name), host.cgroup.version === 'v2' ? 'v2' : 'v1');
    if (!memory) throw new Error('density: cannot read the baseline sandbox memory cgroup');
    return memory;
  } finally {
    await sandbox.stop(0);
  }
}

/**
 * Density (issue 18): N persistent agents awake and idle under `warren up` (20 quick, 200 by
 * default, 1,000 with `WARREN_BENCH_FULL=1` or `--full`): memory per agent from its memory cgroup
 * (median; usage with page cache, and anonymous memory), the supervisor's RSS and its CPU share
 * over 10 s of idleness. Baseline: the same sandbox recipe running only `sleep`.
 */
export const densityScenario: Scenario = {
  id: 'density',
  title: 'Density: idle persistent agents',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const host = await probeHost();
    const full = process.env.WARREN_BENCH_FULL === '1';
    const agents = ctx.quick ? AGENTS.quick : full ? AGENTS.full : AGENTS.default;
    ctx.progress('density: baseline, an idle sandbox running sleep');
    const baseline = await idleSleepSandbox(ctx, host);
    const rounds: DensityRound[] = [];
    // Each round starts and stops hundreds of sandboxes: two rounds (one quick), no warm-up.
    const count = ctx.quick ? 1 : 2;
    for (let i = 0; i < count; i++) {
      ctx.progress(`density: ${agents} idle persistent agents, round ${i + 1} of ${count}`);
      rounds.push(await idleAgents(ctx, host, agents, i));
    }
    const scenario = 'Density';
    const note = `${agents} agents (template shell, persistent, warm pool ${agents}, memory limit ${AGENT_MEMORY}); median over the agents' memory cgroups`;
    return [
      roundsFigure(
        { id: 'density.baseline.usage', scenario, name: 'baseline: idle sandbox running only sleep, memory cgroup usage (page cache included)', unit: 'MiB', better: 'lower' },
        [baseline.usage / MIB],
      ),
      roundsFigure(
        { id: 'density.idle-agents.usage', scenario, name: 'idle persistent agent, memory cgroup usage (page cache included)', unit: 'MiB', better: 'lower', baseline: 'density.baseline.usage', note },
        rounds.map((r) => r.agentUsage / MIB),
      ),
      roundsFigure(
        { id: 'density.baseline.anon', scenario, name: 'baseline: idle sandbox running only sleep, anonymous memory', unit: 'MiB', better: 'lower' },
        [baseline.anon / MIB],
      ),
      roundsFigure(
        {
          id: 'density.idle-agents.anon',
          scenario,
          name: 'idle persistent agent, anonymous memory (the runner; the shell runtime has no program at rest)',
          unit: 'MiB',
          better: 'lower',
          targets: [{ stat: 'median', op: '<=', value: 8 }],
          note,
        },
        rounds.map((r) => r.agentAnon / MIB),
      ),
      roundsFigure(
        { id: 'density.idle-agents.supervisor-rss', scenario, name: `supervisor RSS with ${agents} idle agents`, unit: 'MiB', better: 'lower', targets: [{ stat: 'median', op: '<=', value: 200 }] },
        rounds.map((r) => r.supervisorRss / MIB),
      ),
      roundsFigure(
        {
          id: 'density.idle-agents.supervisor-cpu',
          scenario,
          name: `supervisor CPU with ${agents} idle agents`,
          unit: '% of a core',
          better: 'lower',
          targets: [{ stat: 'median', op: '<=', value: 5 }],
          note: `over ${WATCH_MS / 1000} s, 3 s after the last agent.ready`,
        },
        rounds.map((r) => r.supervisorCpu),
      ),
      roundsFigure(
        { id: 'density.idle-agents.start', scenario, name: `warren up → ${agents} agents ready`, unit: 's', better: 'lower' },
        rounds.map((r) => r.startS),
      ),
      roundsFigure(
        { id: 'density.idle-agents.start-half', scenario, name: `warren up → ${agents / 2} agents ready`, unit: 's', better: 'lower' },
        rounds.map((r) => r.halfS),
      ),
      roundsFigure(
        { id: 'density.idle-agents.start-cpu', scenario, name: `supervisor CPU time, warren up → ${agents} agents ready`, unit: 's', better: 'lower', note: 'user + system time of the supervisor process alone' },
        rounds.map((r) => r.startCpuS),
      ),
      roundsFigure(
        { id: 'density.idle-agents.user-reloads', scenario, name: `NATS user changes (nats-server reloads) while ${agents} agents start`, unit: 'reloads', better: 'lower', note: "audit rows 'broker.users' until every agent was ready" },
        rounds.map((r) => r.userReloads),
      ),
    ];
  },
};

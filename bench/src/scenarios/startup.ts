import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import type { BenchContext, Scenario } from '../lib/context.js';
import { inRounds, roundsFigure, type Figure } from '../lib/figure.js';
import { makeLayout, startWarren } from '../lib/layout.js';
import { rssBytes, signalChild, spawnTracked } from '../lib/procs.js';
import { msSince } from '../lib/stats.js';

let layouts = 0;
const MiB = 2 ** 20;

/** Direct children of `pid` (from /proc/<pid>/task/<pid>/children). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
  } catch {
    return '';
  }
}

/** CPU time (user + system) of `pid` so far, in ms, from /proc/<pid>/stat. */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN;
  }
}

/** Time of `node -e 0` from spawn to exit: the floor of any Node command's start. */
async function nodeStartMs(): Promise<number> {
  const start = process.hrtime.bigint();
  const child = spawnTracked(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await child.exited;
  return msSince(start);
}

/** One `warren up` on an empty board: time to the 'supervisor running' line, RSS, then SIGTERM → exit. */
async function upOnce(ctx: BenchContext): Promise<{ readyMs: number; rss: number; natsRss: number; stopMs: number }> {
  const layout = makeLayout(join(ctx.scratchDir, `up-${layouts++}`), ctx.repoRoot, { lifecycle: 'persistent', maxInstances: 1, tasks: 0 });
  const start = process.hrtime.bigint();
  const up = startWarren(ctx.repoRoot, ['up', '--root', layout.root, '--log-level', 'info', '--kill-grace', '2s']);
  try {
    await up.waitForLine(/"msg":"supervisor running"/, 30_000);
    const readyMs = msSince(start);
    await delay(500); // let the first ticks run before reading memory
    const rss = await rssBytes(up.pid);
    const nats = childrenOf(up.pid).find((p) => commandOf(p).includes('nats-server'));
    const natsRss = nats === undefined ? Number.NaN : await rssBytes(nats);
    const stopStart = process.hrtime.bigint();
    signalChild(up.pid, 'SIGTERM');
    const exit = await up.exited;
    if (exit.code !== 0) throw new Error(`warren up exited ${exit.code ?? exit.signal} after SIGTERM`);
    return { readyMs, rss, natsRss, stopMs: msSince(stopStart) };
  } finally {
    signalChild(up.pid, 'SIGKILL');
  }
}

/**
 * `warren up` with `agents` long-running agents each busy on a `sleep 600` task: supervisor RSS and
 * CPU while they work (over 2 s), then SIGTERM and the time to a clean exit (kill grace 2 s).
 */
async function busyShutdown(ctx: BenchContext, agents: number): Promise<{ rss: number; cpuPercent: number; stopMs: number }> {
  const layout = makeLayout(join(ctx.scratchDir, `up-${layouts++}`), ctx.repoRoot, { lifecycle: 'persistent', maxInstances: agents, tasks: agents, command: 'sleep 600' });
  const up = startWarren(ctx.repoRoot, ['up', '--root', layout.root, '--log-level', 'warn', '--kill-grace', '2s']);
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`fewer than ${agents} tasks started within 120 s`);
      await delay(200);
      try {
        const db = new Database(layout.dbPath, { readonly: true, fileMustExist: true });
        const started = (db.prepare("SELECT COUNT(*) AS n FROM audit WHERE action = 'task.start'").get() as { n: number }).n;
        db.close();
        if (started >= agents) break;
      } catch {
        // not created yet
      }
    }
    const cpuBefore = cpuMs(up.pid);
    await delay(2_000);
    const cpuPercent = ((cpuMs(up.pid) - cpuBefore) / 2_000) * 100;
    const rss = await rssBytes(up.pid);
    const stopStart = process.hrtime.bigint();
    signalChild(up.pid, 'SIGTERM');
    const exit = await up.exited;
    if (exit.code !== 0) throw new Error(`warren up exited ${exit.code ?? exit.signal} after SIGTERM`);
    return { rss, cpuPercent, stopMs: msSince(stopStart) };
  } finally {
    signalChild(up.pid, 'SIGKILL');
  }
}

/**
 * Start and stop (issue 6 scenario 8, and the 100-agent part of 7): `warren up` to ready with the
 * embedded nats-server (target ≤ 1 s; `node -e 0` as the floor), supervisor and nats-server RSS
 * when idle, SIGTERM → exit; and with N busy agents: supervisor RSS and CPU, and shutdown time
 * (target ≤ 5 s beyond the 2 s grace).
 */
export const startupScenario: Scenario = {
  id: 'startup',
  title: 'Start and stop',
  async run(ctx: BenchContext): Promise<Figure[]> {
    ctx.progress('startup: node -e 0');
    const node = await inRounds(ctx.rounds, ctx.warmup, () => nodeStartMs());
    ctx.progress('startup: warren up → ready → SIGTERM');
    const ups = await inRounds(ctx.rounds, ctx.warmup, () => upOnce(ctx));
    const s = 'Start and stop';
    const figures: Figure[] = [
      roundsFigure({ id: 'start.node', scenario: s, name: 'node -e 0, spawn → exit (floor)', unit: 'ms', better: 'lower' }, node),
      roundsFigure(
        { id: 'start.up', scenario: s, name: "warren up → 'supervisor running' (embedded nats-server, streams ready)", unit: 'ms', better: 'lower', baseline: 'start.node', targets: [{ stat: 'median', op: '<=', value: 1_000 }] },
        ups.map((u) => u.readyMs),
      ),
      roundsFigure({ id: 'start.rss', scenario: s, name: 'supervisor RSS, idle, empty board', unit: 'MiB', better: 'lower' }, ups.map((u) => u.rss / MiB)),
      roundsFigure({ id: 'start.nats-rss', scenario: s, name: 'embedded nats-server RSS, idle', unit: 'MiB', better: 'lower' }, ups.map((u) => u.natsRss / MiB)),
      roundsFigure({ id: 'stop.idle', scenario: s, name: 'SIGTERM → exit, no agents', unit: 'ms', better: 'lower' }, ups.map((u) => u.stopMs)),
    ];
    const agents = ctx.quick ? 8 : 100;
    ctx.progress(`startup: ${agents} busy agents, then SIGTERM`);
    const busy = await inRounds(ctx.quick ? 1 : Math.min(ctx.rounds, 2), 0, () => busyShutdown(ctx, agents));
    figures.push(
      roundsFigure({ id: 'busy.rss', scenario: s, name: `supervisor RSS with ${agents} sandboxed agents working`, unit: 'MiB', better: 'lower' }, busy.map((b) => b.rss / MiB)),
      roundsFigure({ id: 'busy.cpu', scenario: s, name: `supervisor CPU with ${agents} agents working (sleep tasks)`, unit: '% of a core', better: 'lower' }, busy.map((b) => b.cpuPercent)),
      roundsFigure(
        { id: 'stop.busy', scenario: s, name: `SIGTERM → exit with ${agents} running agents (grace 2 s)`, unit: 'ms', better: 'lower', targets: [{ stat: 'median', op: '<=', value: 7_000 }], note: 'target: ≤ 5 s beyond the 2 s grace' },
        busy.map((b) => b.stopMs),
      ),
    );
    return figures;
  },
};

import { appendFileSync, existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import type { BenchContext, Scenario } from '../lib/context.js';
import { inRounds, latencyFigure, roundsFigure, type Figure } from '../lib/figure.js';
import { auditRows, makeLayout, startWarren, type AuditRow } from '../lib/layout.js';
import { machineBusyMs } from '../lib/machine.js';
import { signalChild } from '../lib/procs.js';
import { msSince } from '../lib/stats.js';

let layouts = 0;

/** What one `warren run --until-idle` over a generated board gave. */
interface BoardRun {
  readonly wallMs: number;
  /** Tasks per second from the supervisor.start row to the last board.write row. */
  readonly tasksPerSecond: number;
  /** Per task: task.assign row → task.start row (the agent has the task and runs its command), ms. */
  readonly assignToStartMs: number[];
  readonly sandboxes: number;
  /** CPU the whole machine spent during the run (every process: supervisor, nats-server, agents), per task, ms. */
  readonly cpuMsPerTask: number;
}

/** Runs `warren run --until-idle` over `tasks` no-op tasks and reads the audit trail it wrote. */
async function runBoard(ctx: BenchContext, lifecycle: 'persistent' | 'autodelete', tasks: number, agents: number, wipPerInstance = 1): Promise<BoardRun> {
  // Sandbox per task: every agent slot is kept warm, so agents start ahead of the tasks they take.
  const warmPool = lifecycle === 'autodelete' ? agents : 0;
  const layout = makeLayout(join(ctx.scratchDir, `e2e-${layouts++}`), ctx.repoRoot, { lifecycle, maxInstances: agents, tasks, warmPool, wipPerInstance });
  const start = process.hrtime.bigint();
  const busyBefore = machineBusyMs();
  const run = startWarren(ctx.repoRoot, ['run', '--until-idle', '--root', layout.root, '--log-level', 'warn']);
  const exit = await run.exited;
  const wallMs = msSince(start);
  const cpuMsPerTask = (machineBusyMs() - busyBefore) / tasks;
  if (exit.code !== 0) throw new Error(`warren run --until-idle exited ${exit.code ?? exit.signal}:\n${run.lines.slice(-15).join('\n')}`);
  const rows = auditRows(layout.dbPath);
  const first = rows.find((r) => r.action === 'supervisor.start');
  const writes = rows.filter((r) => r.action === 'board.write');
  const done = rows.filter((r) => r.action === 'task.complete');
  if (!first || done.length !== tasks) throw new Error(`expected ${tasks} completed tasks in the audit trail, found ${done.length}`);
  const assigned = new Map<string, number>();
  const assignToStartMs: number[] = [];
  for (const r of rows) {
    if (r.action === 'task.assign') assigned.set(r.object, r.time_ms);
    if (r.action === 'task.start') {
      const at = assigned.get(r.object);
      if (at !== undefined) assignToStartMs.push(r.time_ms - at);
    }
  }
  const last = writes[writes.length - 1]!;
  return {
    wallMs,
    tasksPerSecond: tasks / Math.max(0.001, (last.time_ms - first.time_ms) / 1000),
    assignToStartMs,
    sandboxes: rows.filter((r) => r.action === 'agent.start').length,
    cpuMsPerTask,
  };
}

/** Polls the supervisor's `prepared_agents` table until an agent prepared ahead is ready there. */
async function waitForPrepared(db: Database.Database, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // The table is made when the supervisor starts; an older supervisor has none (nothing to wait for).
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'prepared_agents'").get()) return;
    if (db.prepare('SELECT 1 FROM prepared_agents WHERE ready_ms IS NOT NULL LIMIT 1').get()) return;
    if (Date.now() > deadline) throw new Error(`no agent prepared ahead within ${timeoutMs} ms`);
    await delay(2);
  }
}

/** Polls the audit trail until a row matching `match` appears after `afterSeq`; returns it. */
async function waitForRow(db: Database.Database, afterSeq: number, match: (r: AuditRow) => boolean, timeoutMs: number, what = 'matching'): Promise<AuditRow> {
  const query = db.prepare('SELECT seq, time_ms, action, object FROM audit WHERE seq > ? ORDER BY seq');
  const deadline = Date.now() + timeoutMs;
  let seq = afterSeq;
  for (;;) {
    for (const row of query.all(seq) as AuditRow[]) {
      seq = row.seq;
      if (match(row)) return row;
    }
    if (Date.now() > deadline) throw new Error(`no ${what} audit row after seq ${afterSeq} within ${timeoutMs} ms`);
    await delay(1);
  }
}

/**
 * Ready → running under `warren up`: a task file is renamed into the board (ready on disk) and the
 * time until the audit trail's `task.start` row for it (the agent acknowledged the task and runs
 * its command) is taken, one task at a time. With `autodelete` agents every task waits for the
 * previous agent to be deleted, so each gets a fresh sandbox and account. `prepared` is the
 * template's field (undefined: its default, one agent prepared ahead for an autodelete template
 * without a warm pool); while agents are prepared ahead, each task waits until one is again.
 */
async function readyToRunning(ctx: BenchContext, lifecycle: 'persistent' | 'autodelete', count: number, warmPool = 0, prepared?: number): Promise<number[]> {
  const layout = makeLayout(join(ctx.scratchDir, `e2e-${layouts++}`), ctx.repoRoot, { lifecycle, maxInstances: 1, tasks: 0, warmPool });
  if (prepared !== undefined) appendFileSync(join(layout.root, 'agents', 'shell.yaml'), `prepared: ${prepared}\n`);
  const up = startWarren(ctx.repoRoot, ['up', '--root', layout.root, '--log-level', 'info', '--kill-grace', '2s']);
  const samples: number[] = [];
  try {
    await up.waitForLine(/"msg":"supervisor running"/, 30_000);
    while (!existsSync(layout.dbPath)) await delay(5);
    const db = new Database(layout.dbPath, { readonly: true });
    try {
      let seq = (db.prepare('SELECT MAX(seq) AS s FROM audit').get() as { s: number | null }).s ?? 0;
      for (let i = 0; i < count + 1; i++) {
        const id = `r-${i}`;
        // With agents prepared ahead (template field `prepared`), each task comes once one is prepared again.
        if (lifecycle === 'autodelete' && warmPool === 0 && prepared !== 0) await waitForPrepared(db, 30_000);
        const readyAt = Date.now();
        layout.addTask(id);
        const started = await waitForRow(db, seq, (r) => r.action === 'task.start' && r.object === `task:${id}`, 30_000, `task.start of ${id}`);
        if (i > 0) samples.push(started.time_ms - readyAt); // the first one includes a cold start of everything
        // Before the next task: its result is on the board and, for autodelete, its agent is gone.
        const needed: [string, (r: AuditRow) => boolean][] = [[`board.write of ${id}`, (r) => r.action === 'board.write' && r.object === `task:${id}` && r.seq > started.seq]];
        if (lifecycle === 'autodelete') needed.push(['account.delete', (r) => r.action === 'account.delete']);
        // With a warm pool, the next task comes once the pool holds a fresh, ready agent again.
        if (lifecycle === 'autodelete' && warmPool > 0) needed.push(['agent.ready', (r) => r.action === 'agent.ready']);
        let last = started.seq;
        for (const [what, match] of needed) last = Math.max(last, (await waitForRow(db, started.seq, match, 30_000, what)).seq);
        seq = last;
      }
    } finally {
      db.close();
    }
  } finally {
    signalChild(up.pid, 'SIGTERM');
    await up.exited;
  }
  return samples;
}

/**
 * End to end with the real CLI (issue 6 scenarios 1–3): ready → running latency under `warren up`
 * with a fresh sandbox per task (target p50 ≤ 30 ms, p99 ≤ 100 ms) and with a long-running agent;
 * throughput of `warren run --until-idle` over N no-op tasks with 16 agents, sandbox per task
 * (target ≥ 150 tasks/s and ≥ 0.6 × baseline a) and long-running (target ≥ 2,000 tasks/s, ratio
 * to baseline b reported).
 */
export const e2eScenario: Scenario = {
  id: 'e2e',
  title: 'End to end (warren CLI)',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const figures: Figure[] = [];
    const latencyCount = ctx.quick ? 5 : 20;
    const latencyCases = [
      { id: 'autodelete', lifecycle: 'autodelete', warmPool: 1, label: 'fresh sandbox per task, warm pool of 1' },
      { id: 'autodelete-cold', lifecycle: 'autodelete', warmPool: 0, prepared: undefined, label: 'fresh sandbox per task, started on demand (no warm pool; the template default of one account prepared ahead)' },
      { id: 'autodelete-unprepared', lifecycle: 'autodelete', warmPool: 0, prepared: 0, label: 'fresh sandbox per task, started on demand, nothing prepared ahead (prepared: 0)' },
      { id: 'persistent', lifecycle: 'persistent', warmPool: 0, label: 'long-running agent' },
    ] as const;
    for (const c of latencyCases) {
      ctx.progress(`e2e: ready → running, ${c.label}`);
      const samples = await inRounds(ctx.rounds, 0, () => readyToRunning(ctx, c.lifecycle, latencyCount, c.warmPool, 'prepared' in c ? c.prepared : undefined));
      figures.push(
        latencyFigure(
          {
            id: `e2e.ready.${c.id}`,
            scenario: 'End to end',
            name: `ready on disk → task.start (warren up), ${c.label}`,
            unit: 'ms',
            better: 'lower',
            ...(c.id === 'autodelete'
              ? { targets: [{ stat: 'p50', op: '<=', value: 30 } as const, { stat: 'p99', op: '<=', value: 100 } as const], baseline: 'sandbox.latency.raw-recipe' }
              : c.id === 'autodelete-cold'
                ? { targets: [{ stat: 'p50', op: '<=', value: 30 } as const, { stat: 'p99', op: '<=', value: 60 } as const], baseline: 'sandbox.latency.raw-recipe' }
                : c.id === 'autodelete-unprepared'
                ? { baseline: 'sandbox.latency.raw-recipe' }
                : {}),
            note:
              `${latencyCount} tasks per round, one at a time, after one unmeasured cold task` +
              (c.warmPool > 0 ? '; each task is written once the pool holds a fresh ready agent again (account, sandbox and runner new for every task)' : ''),
          },
          samples,
        ),
      );
    }
    // The sizes are 2,000 and 20,000 tasks; these keep a full run of the suite near ten
    // minutes on 2 cores (a round of 20,000 alone takes minutes) while long enough that the
    // start-up of the supervisor and its first agents is a small part of each round.
    const sizes = {
      autodelete: ctx.quick ? 40 : 500,
      persistent: ctx.quick ? 200 : 5_000,
    };
    for (const lifecycle of ['autodelete', 'persistent'] as const) {
      const n = sizes[lifecycle];
      const label = lifecycle === 'autodelete' ? 'sandbox per task (autodelete agents, warm pool of 16)' : 'long-running agents';
      ctx.progress(`e2e: warren run --until-idle, ${n} tasks, ${label}`);
      // Whole-CLI runs are long: at most three measured rounds (after the warm-up) in full mode.
      const runs = await inRounds(Math.min(ctx.rounds, 3), ctx.warmup, () => runBoard(ctx, lifecycle, n, 16));
      const sandboxes = runs.map((r) => r.sandboxes).join('/');
      figures.push(
        roundsFigure(
          {
            id: `e2e.throughput.${lifecycle}`,
            scenario: 'End to end',
            name: `warren run --until-idle, ${n.toLocaleString('en')} no-op tasks, 16 agents, ${label}`,
            unit: 'tasks/s',
            better: 'higher',
            ...(lifecycle === 'autodelete'
              ? { baseline: 'sandbox.rate.raw-recipe', targets: [{ stat: 'median', op: '>=', value: 150 } as const, { stat: 'ratio', op: '>=', value: 0.6 } as const] }
              : { baseline: 'broker.rate.raw.2', targets: [{ stat: 'median', op: '>=', value: 2_000 } as const] }),
            note: `supervisor.start row → last board.write row; sandboxes started per round: ${sandboxes}; issue sizes are ${lifecycle === 'autodelete' ? '2,000' : '20,000'} tasks`,
          },
          runs.map((r) => r.tasksPerSecond),
        ),
      );
      figures.push(
        roundsFigure(
          { id: `e2e.wall.${lifecycle}`, scenario: 'End to end', name: `same, whole command (start → exit)`, unit: 's', better: 'lower', note: `${n} tasks` },
          runs.map((r) => r.wallMs / 1000),
        ),
      );
      figures.push(
        roundsFigure(
          {
            id: `e2e.cpu.${lifecycle}`,
            scenario: 'End to end',
            name: 'same, CPU per task, every process on the machine',
            unit: 'ms',
            better: 'lower',
            note: `busy time of all CPUs over the whole command (/proc/stat) ÷ tasks, start and shutdown included; ${cpus().length} cores give ${cpus().length * 1000} ms of CPU a second`,
          },
          runs.map((r) => r.cpuMsPerTask),
        ),
      );
      figures.push(
        latencyFigure(
          { id: `e2e.assign.${lifecycle}`, scenario: 'End to end', name: `same, per task: task.assign → task.start (audit rows)`, unit: 'ms', better: 'lower', note: `${n} tasks per round` },
          runs.map((r) => r.assignToStartMs),
        ),
      );
    }
    // The same long-running run with four tasks in flight per agent (wipPerInstance: 4).
    const wip4Tasks = ctx.quick ? 100 : sizes.persistent;
    ctx.progress(`e2e: warren run --until-idle, ${wip4Tasks} tasks, long-running agents, 4 tasks each at once`);
    const wip4 = await inRounds(Math.min(ctx.rounds, 3), ctx.warmup, () => runBoard(ctx, 'persistent', wip4Tasks, 16, 4));
    figures.push(
      roundsFigure(
        { id: 'e2e.throughput.persistent-wip4', scenario: 'End to end', name: `same as e2e.throughput.persistent, wipPerInstance: 4`, unit: 'tasks/s', better: 'higher', baseline: 'e2e.throughput.persistent', note: `supervisor.start row → last board.write row; up to 4 tasks in flight per agent; ${wip4Tasks} tasks` },
        wip4.map((r) => r.tasksPerSecond),
      ),
    );
    return figures;
  },
};

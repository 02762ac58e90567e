import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, Scenario } from '../lib/context.js';
import { inRounds, roundsFigure, type Figure } from '../lib/figure.js';
import { auditRows, makeLayout, startWarren } from '../lib/layout.js';
import { msSince } from '../lib/stats.js';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/**
 * CPU of this process's reaped descendants, ms: `cutime + cstime` of /proc/self/stat. A child's
 * whole tree is added once it is reaped, as long as every process in it was waited for by its
 * parent (the supervisor reaps bwrap and nats-server, bwrap reaps the agent's processes).
 */
function reapedChildrenCpuMs(): number {
  const text = readFileSync('/proc/self/stat', 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / USER_HZ;
}

let layouts = 0;

/** One `warren run --until-idle` over `tasks` no-op tasks: tasks/s (audit rows) and the process tree's CPU per task. */
async function oneRun(ctx: BenchContext, lifecycle: 'autodelete' | 'persistent', tasks: number, agents: number): Promise<{ rate: number; cpuMs: number; wallS: number }> {
  const layout = makeLayout(join(ctx.scratchDir, `task-cpu-${layouts++}`), ctx.repoRoot, {
    lifecycle,
    maxInstances: agents,
    tasks,
    warmPool: lifecycle === 'autodelete' ? agents : 0,
  });
  const before = reapedChildrenCpuMs();
  const start = process.hrtime.bigint();
  const run = startWarren(ctx.repoRoot, ['run', '--until-idle', '--root', layout.root, '--log-level', 'warn']);
  const exit = await run.exited;
  const wallS = msSince(start) / 1000;
  const cpuMs = (reapedChildrenCpuMs() - before) / tasks;
  if (exit.code !== 0) throw new Error(`warren run --until-idle exited ${exit.code ?? exit.signal}:\n${run.lines.slice(-15).join('\n')}`);
  const rows = auditRows(layout.dbPath);
  const first = rows.find((r) => r.action === 'supervisor.start');
  const writes = rows.filter((r) => r.action === 'board.write');
  const done = rows.filter((r) => r.action === 'task.complete').length;
  if (!first || done !== tasks) throw new Error(`expected ${tasks} completed tasks in the audit trail, found ${done}`);
  const last = writes[writes.length - 1]!;
  return { rate: tasks / Math.max(0.001, (last.time_ms - first.time_ms) / 1000), cpuMs, wallS };
}

/**
 * CPU per task of Warren's own processes (issue 18: ≤ 15 ms a task with a sandbox per task, ≤ 1 ms
 * long-running): `warren run --until-idle` over no-op tasks with 16 agents, and the CPU of the
 * whole process tree it started (supervisor, nats-server, sandboxes, runners), read from this
 * process's reaped-children times. Unlike `e2e.cpu.*` (every CPU of the machine) it does not count
 * what other users of a shared machine run meanwhile, so it can be compared across runs.
 */
export const taskCpuScenario: Scenario = {
  id: 'taskcpu',
  title: 'CPU per task of the warren process tree',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const figures: Figure[] = [];
    const sizes = { autodelete: ctx.quick ? 60 : 300, persistent: ctx.quick ? 300 : 3_000 } as const;
    for (const lifecycle of ['autodelete', 'persistent'] as const) {
      const n = sizes[lifecycle];
      ctx.progress(`taskcpu: warren run --until-idle, ${n} ${lifecycle} tasks, 16 agents`);
      const runs = await inRounds(Math.min(ctx.rounds, 3), 0, () => oneRun(ctx, lifecycle, n, 16));
      const label = lifecycle === 'autodelete' ? 'sandbox per task (autodelete, warm pool of 16)' : 'long-running agents';
      figures.push(
        roundsFigure(
          {
            id: `taskcpu.cpu.${lifecycle}`,
            scenario: 'CPU per task',
            name: `CPU per task of the warren process tree, ${n} no-op tasks, 16 agents, ${label}`,
            unit: 'ms',
            better: 'lower',
            targets: [{ stat: 'median', op: '<=', value: lifecycle === 'autodelete' ? 15 : 1 }],
            note: 'user + system time of every process warren started (reaped), start and shutdown included, ÷ tasks',
          },
          runs.map((r) => r.cpuMs),
        ),
      );
      figures.push(
        roundsFigure(
          { id: `taskcpu.rate.${lifecycle}`, scenario: 'CPU per task', name: `same, tasks/s (supervisor.start → last board.write)`, unit: 'tasks/s', better: 'higher' },
          runs.map((r) => r.rate),
        ),
      );
    }
    return figures;
  },
};

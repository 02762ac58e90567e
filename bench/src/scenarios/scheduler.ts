import { addAgent, agentSlots, createAgentWorld, lifecycleSystem, livenessSystem, setLoad, setStatus, AgentStatus } from '@warren/ecs';
import { planAssignments, type AgentSlot, type PlanInput, type ReadyTask, type TemplateSlot } from '@warren/scheduler';
import type { BenchContext, Scenario } from '../lib/context.js';
import { latencyFigure, roundsFigure, type Figure } from '../lib/figure.js';
import { median, seededRandom } from '../lib/stats.js';
import { sampleWithTinybench } from '../lib/tiny.js';

const CAPABILITIES = ['shell', 'node', 'python', 'git', 'docker', 'gpu', 'report', 'web', 'sql', 'rust', 'go', 'review'];
const TEMPLATES = 40;

/** The shape of one generated planning problem. */
interface Shape {
  readonly tasks: number;
  readonly agents: number;
  /** Give every agent its own capability set (no two agents alike): the planner's worst case. */
  readonly distinct: boolean;
}

function pick<T>(random: () => number, list: readonly T[], count: number): T[] {
  const pool = [...list];
  const out: T[] = [];
  while (out.length < count && pool.length > 0) out.push(pool.splice(Math.floor(random() * pool.length), 1)[0]!);
  return out;
}

/**
 * A deterministic planning problem: `TEMPLATES` templates with 2–5 of 12 capabilities; agents spread
 * over them with WIP limits 1–4 and a random current load (5 % not accepting); tasks needing 1–2
 * capabilities (a few need a combination nobody offers), four priorities, random ages; a column WIP
 * limit of a quarter of the tasks; a policy that denies one template a tenth of the tasks.
 */
function problem(shape: Shape): { input: PlanInput; templates: TemplateSlot[]; agentSpecs: AgentSlot[] } {
  const random = seededRandom(6 * 1_000_003 + shape.agents + (shape.distinct ? 1 : 0));
  const templateCaps = Array.from({ length: TEMPLATES }, () => pick(random, CAPABILITIES, 2 + Math.floor(random() * 4)));
  const agents: AgentSlot[] = [];
  const instances = new Array<number>(TEMPLATES).fill(0);
  for (let i = 0; i < shape.agents; i++) {
    const t = i % TEMPLATES;
    instances[t]! += 1;
    const wipLimit = 1 + Math.floor(random() * 4);
    agents.push({
      name: `agent-${i}`,
      template: `t${t}`,
      capabilities: shape.distinct ? [...templateCaps[t]!, `own-${i}`] : templateCaps[t]!,
      load: Math.floor(random() * wipLimit),
      wipLimit,
      accepting: random() >= 0.05,
    });
  }
  const templates: TemplateSlot[] = templateCaps.map((capabilities, t) => ({
    name: `t${t}`,
    capabilities,
    instances: instances[t]!,
    maxInstances: instances[t]! + 2,
    wipLimitPerInstance: 2,
  }));
  const now = 1_800_000_000_000;
  const tasks: ReadyTask[] = Array.from({ length: shape.tasks }, (_, i) => ({
    id: `task-${i}`,
    priorityRank: Math.floor(random() * 4),
    createdMs: now - Math.floor(random() * 86_400_000),
    capabilities: pick(random, CAPABILITIES, 1 + Math.floor(random() * 2)),
  }));
  const input: PlanInput = {
    tasks,
    agents,
    templates,
    columnWip: { limit: Math.floor(shape.tasks / 4), current: 0 },
    isAllowed: (_agent, template, taskId) => !(template === 't3' && taskId.endsWith('7')),
    nowMs: now,
  };
  return { input, templates, agentSpecs: agents };
}

/** Builds an ECS world holding `agents` (as the supervisor's world holds live agents). */
function worldOf(agents: readonly AgentSlot[]) {
  const world = createAgentWorld();
  const now = 1_800_000_000_000;
  for (const [i, a] of agents.entries()) {
    addAgent(world, {
      name: a.name,
      template: a.template,
      uid: 1_900_000_000 + i,
      gid: 1_900_000_000 + i,
      capabilities: a.capabilities,
      wipLimit: a.wipLimit,
      lifecycle: 'persistent',
      resources: { memoryMaxBytes: 512 * 2 ** 20, pidsMax: 256, cpuWeight: 100 },
      nowMs: now,
    });
    if (a.accepting) setStatus(world, a.name, a.load > 0 ? AgentStatus.busy : AgentStatus.idle, now);
    setLoad(world, a.name, a.load);
  }
  return world;
}

/**
 * Scheduler tick (issue 6 scenario 4): one `planAssignments` pass over 10,000 ready tasks and
 * 1,000 agents with mixed capability sets, priorities and WIP limits (target ≤ 5 ms, ≥ 200,000
 * decisions/s, a decision being one task placed, spawned for or left with a reason); the same
 * with every agent's set distinct; at 100,000 agents; and the whole tick's share that reads the
 * ECS world (`agentSlots`) before planning.
 */
export const schedulerScenario: Scenario = {
  id: 'scheduler',
  title: 'Scheduler tick',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const figures: Figure[] = [];
    const shapes: { key: string; label: string; shape: Shape; targets: boolean }[] = [
      { key: '10k-1k', label: '10,000 tasks × 1,000 agents (40 capability profiles)', shape: { tasks: 10_000, agents: 1_000, distinct: false }, targets: true },
      { key: '10k-1k-distinct', label: '10,000 tasks × 1,000 agents (every set distinct)', shape: { tasks: 10_000, agents: 1_000, distinct: true }, targets: false },
      { key: '10k-100k', label: '10,000 tasks × 100,000 agents', shape: { tasks: 10_000, agents: 100_000, distinct: false }, targets: false },
    ];
    for (const { key, label, shape, targets } of shapes) {
      ctx.progress(`scheduler: ${label}`);
      const { input } = problem(shape);
      const check = planAssignments(input);
      const decided = check.assignments.length + check.unplaced.length + check.spawns.reduce((n, s) => n + s.taskIds.length, 0);
      const big = shape.agents >= 100_000;
      const samples = await sampleWithTinybench(`plan ${key}`, () => planAssignments(input), ctx.rounds, {
        timeMs: ctx.quick ? (big ? 400 : 250) : big ? 2_000 : 1_000,
        iterations: big ? 3 : 10,
        warmupMs: ctx.quick ? 100 : 300,
      });
      figures.push(
        latencyFigure(
          {
            id: `scheduler.pass.${key}`,
            scenario: 'Scheduler tick',
            name: `planAssignments, ${label}`,
            unit: 'ms',
            better: 'lower',
            ...(targets ? { targets: [{ stat: 'p50', op: '<=', value: 5 } as const] } : {}),
            note: `${check.assignments.length} assigned, ${check.spawns.length} spawns, ${check.unplaced.length} unplaced per pass`,
          },
          samples,
        ),
      );
      figures.push(
        roundsFigure(
          {
            id: `scheduler.decisions.${key}`,
            scenario: 'Scheduler tick',
            name: `decisions/s, ${label}`,
            unit: 'decisions/s',
            better: 'higher',
            ...(targets ? { targets: [{ stat: 'median', op: '>=', value: 200_000 } as const] } : {}),
            note: `${decided} tasks decided per pass ÷ pass time (per-round p50)`,
          },
          samples.map((s) => decided / (median(s) / 1000)),
        ),
      );
      if (!shape.distinct) {
        const world = worldOf(input.agents);
        const tickSamples = await sampleWithTinybench(`tick ${key}`, () => planAssignments({ ...input, agents: agentSlots(world) }), ctx.rounds, {
          timeMs: ctx.quick ? (big ? 400 : 250) : big ? 2_000 : 1_000,
          iterations: big ? 3 : 10,
          warmupMs: ctx.quick ? 100 : 300,
        });
        figures.push(
          latencyFigure(
            {
              id: `scheduler.tick.${key}`,
              scenario: 'Scheduler tick',
              name: `agentSlots(world) + planAssignments, ${label}`,
              unit: 'ms',
              better: 'lower',
              baseline: `scheduler.pass.${key}`,
              note: 'the planning part of a supervisor tick: read the ECS world, then plan (ratio: against the plan alone)',
            },
            tickSamples,
          ),
        );
      }
    }
    figures.push(...(await idleScale(ctx)));
    return figures;
  },
};

/**
 * Scale (issue 6 scenario 7): 10,000 registered agents, all idle, nothing ready. The supervisor's
 * per-tick work over them (reading the world, planning with no task, the liveness and lifecycle
 * systems) and the heap their ECS state takes. Process RSS at rest is `start.rss`; this adds what
 * the agents themselves cost.
 */
async function idleScale(ctx: BenchContext): Promise<Figure[]> {
  ctx.progress('scheduler: 10,000 registered agents idle');
  const agents: AgentSlot[] = Array.from({ length: 10_000 }, (_, i) => ({
    name: `idle-${i}`,
    template: `t${i % 20}`,
    capabilities: [CAPABILITIES[i % CAPABILITIES.length]!],
    load: 0,
    wipLimit: 1,
    accepting: true,
  }));
  globalThis.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const world = worldOf(agents);
  globalThis.gc?.();
  const heapMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  const now = 1_800_000_000_000;
  const tick = () => {
    const slots = agentSlots(world);
    planAssignments({ tasks: [], agents: slots, templates: [], nowMs: now });
    livenessSystem(world, { nowMs: now, heartbeatTimeoutMs: 20_000 });
    lifecycleSystem(world, { nowMs: now, sleepAfterIdleMs: 30_000 });
  };
  const samples = await sampleWithTinybench('idle 10k tick', tick, ctx.rounds, {
    timeMs: ctx.quick ? 250 : 1_000,
    iterations: 10,
    warmupMs: ctx.quick ? 100 : 300,
  });
  return [
    latencyFigure(
      {
        id: 'scale.idle-10k.tick',
        scenario: 'Scheduler tick',
        name: 'tick over 10,000 registered idle agents (world read, plan, liveness, lifecycle)',
        unit: 'ms',
        better: 'lower',
        note: 'nothing ready; the systems a supervisor tick runs for its agents',
      },
      samples,
    ),
    roundsFigure(
      {
        id: 'scale.idle-10k.heap',
        scenario: 'Scheduler tick',
        name: 'heap taken by the ECS state of 10,000 registered agents',
        unit: 'MiB',
        better: 'lower',
        note: 'add to start.rss for the supervisor RSS with 10,000 agents registered (target ≤ 200 MB)',
      },
      [heapMiB],
    ),
  ];
}


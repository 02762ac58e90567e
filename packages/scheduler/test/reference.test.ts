import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PlanInputError, planAssignments, type AgentSlot, type Plan, type PlanInput, type PlannedSpawn, type ReadyTask, type TemplateSlot } from '@warren/scheduler';

// planAssignments against a straightforward reference: the rules of the README written as plainly
// as possible (sort every task with one comparator, scan every agent for every task, recompute
// every reason), with none of the planner's grouping, interning, radix sorting or caching.

const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const list = (items: readonly string[]): string => `[${items.join(', ')}]`;

function referencePlan(input: PlanInput): Plan {
  const isAllowed = input.isAllowed ?? (() => true);
  const tasks = [...input.tasks].sort(
    (a, b) => b.priorityRank - a.priorityRank || a.createdMs - b.createdMs || byCodeUnits(a.id, b.id),
  );
  const agents = input.agents.map((a) => ({ ...a }));
  const templates = [...input.templates]
    .sort((a, b) => new Set(a.capabilities).size - new Set(b.capabilities).size || byCodeUnits(a.name, b.name))
    .map((t) => ({ ...t, spawns: [] as PlannedSpawn[] }));
  const offered = new Set([...agents.flatMap((a) => a.capabilities), ...templates.flatMap((t) => t.capabilities)]);
  const columnName = input.columnWip?.name ?? 'in_progress';
  const columnLimit = input.columnWip?.limit ?? null;
  let columnRoom = columnLimit === null ? Infinity : Math.max(0, columnLimit - (input.columnWip?.current ?? 0));
  const plan: Plan = { assignments: [], spawns: [], unplaced: [], plannedAtMs: input.nowMs };

  for (const task of tasks) {
    const needs = [...new Set(task.capabilities)].sort(byCodeUnits);
    const covers = (offers: readonly string[]): boolean => needs.every((c) => offers.includes(c));
    const unknown = needs.filter((c) => !offered.has(c));
    if (unknown.length > 0) {
      plan.unplaced.push({ taskId: task.id, reason: `no agent or template provides capabilities ${list(unknown)}` });
      continue;
    }
    const capable = agents.filter((a) => covers(a.capabilities));
    const capableTemplates = templates.filter((t) => covers(t.capabilities));
    if (capable.length === 0 && capableTemplates.length === 0) {
      const reason =
        input.agents.length === 0 && input.templates.length === 0
          ? 'no agent or template is available'
          : `no agent or template provides capabilities ${list(needs)} together`;
      plan.unplaced.push({ taskId: task.id, reason });
      continue;
    }

    const candidates = capable
      .filter((a) => a.accepting && a.load < a.wipLimit)
      .sort((a, b) => a.load - b.load || byCodeUnits(a.name, b.name));
    let denied = 0;
    const chosen = candidates.find((a) => isAllowed(a.name, a.template, task.id) || (denied++, false));
    if (chosen !== undefined) {
      if (columnRoom > 0) {
        columnRoom--;
        chosen.load++;
        plan.assignments.push({ taskId: task.id, agent: chosen.name });
      } else {
        plan.unplaced.push({ taskId: task.id, reason: `column ${columnName} is at its WIP limit (${columnLimit})` });
      }
      continue;
    }

    const allowed = new Map<string, boolean>();
    const allowedFor = (name: string): boolean => {
      if (!allowed.has(name)) allowed.set(name, isAllowed('', name, task.id));
      return allowed.get(name) as boolean;
    };
    let spawn: PlannedSpawn | undefined;
    for (const t of capableTemplates) {
      const open = t.spawns.at(-1);
      if (open !== undefined && open.taskIds.length < t.wipLimitPerInstance && allowedFor(t.name)) {
        spawn = open;
        break;
      }
    }
    if (spawn === undefined) {
      for (const t of capableTemplates) {
        if (t.wipLimitPerInstance >= 1 && t.instances + t.spawns.length < t.maxInstances && allowedFor(t.name)) {
          spawn = { template: t.name, taskIds: [] };
          t.spawns.push(spawn);
          plan.spawns.push(spawn);
          break;
        }
      }
    }
    if (spawn !== undefined) {
      spawn.taskIds.push(task.id);
      continue;
    }

    const parts: string[] = [];
    const notAccepting = capable.filter((a) => !a.accepting).length;
    if (capable.length === 0) {
      parts.push(`no live agent provides capabilities ${list(needs)}`);
    } else if (denied === capable.length) {
      parts.push('policy denies assign to every capable agent');
    } else {
      const full = capable.length - notAccepting - denied;
      const counts: string[] = [];
      if (full > 0) counts.push(`${full} at its WIP limit`);
      if (notAccepting > 0) counts.push(`${notAccepting} not accepting`);
      if (denied > 0) counts.push(`${denied} denied by policy`);
      parts.push(`no capable agent can take it (${capable.length} capable: ${counts.join(', ')})`);
    }
    if (capableTemplates.length === 0) parts.push(`no template provides capabilities ${list(needs)}`);
    for (const t of capableTemplates) {
      const planned = t.spawns.length;
      if (t.wipLimitPerInstance < 1) {
        parts.push(`template ${t.name} takes no tasks (wipLimitPerInstance ${t.wipLimitPerInstance})`);
      } else if (t.instances + planned >= t.maxInstances) {
        const detail = planned > 0 ? `, ${planned} of them planned now and full` : '';
        parts.push(`template ${t.name} is at max instances (${t.maxInstances}${detail})`);
      } else if (allowed.get(t.name) === false) {
        parts.push(`policy denies assign to a new instance of template ${t.name}`);
      }
    }
    plan.unplaced.push({ taskId: task.id, reason: parts.join('; ') });
  }
  return plan;
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** Runs `plan` with `input`'s policy, recording every question asked of it, in order. */
function withPolicyLog(plan: (input: PlanInput) => Plan, input: PlanInput): { plan: Plan; asked: string[] } {
  const asked: string[] = [];
  const policy = input.isAllowed ?? (() => true);
  const result = plan({
    ...input,
    isAllowed: (agent, template, taskId) => {
      asked.push(`${agent}|${template}|${taskId}`);
      return policy(agent, template, taskId);
    },
  });
  return { plan: result, asked };
}

// Random problems, shaped to reach every path of the planner: a handful of capabilities (so
// classes and groups repeat) or many (more than 32, so masks take several words and class keys
// are strings), capabilities only agents have, repeated capabilities, names whose code-unit order
// differs from locale order, and policies that deny often. Ranks and ages come in three styles:
// small integers (many ties), integers over a wide range that one integer key still holds (a few
// ages drawn from up to 2^20, 2^33 or 2^45 ms, so the radix sort runs every pass over both 32-bit
// halves and ties still occur), and anything finite (fractions, spans too wide for one key: the comparison sort).

const names = fc.stringMatching(/^[a-zA-Z0-9é_-]{1,5}$/);

const orderStyles = fc.oneof(
  fc.constant({ rank: fc.integer({ min: -3, max: 3 }), age: fc.integer({ min: 0, max: 40 }) }),
  fc
    .constantFrom(2 ** 20, 2 ** 33, 2 ** 45)
    .chain((max) => fc.uniqueArray(fc.integer({ min: 0, max }), { minLength: 1, maxLength: 12 }))
    .map((ages) => ({ rank: fc.integer({ min: -100, max: 100 }), age: fc.constantFrom(...ages) })),
  fc.constant({
    rank: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.double({ min: -5, max: 5, noNaN: true }), fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 60, -0)),
    age: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.double({ min: 0, max: 40, noNaN: true }), fc.constant(-Number.MAX_SAFE_INTEGER)),
  }),
);

function problemArb(capabilityCount: number) {
  const capability = fc.integer({ min: 0, max: capabilityCount - 1 }).map((i) => `c${i}`);
  const capabilities = fc.array(capability, { maxLength: 4 });
  const agentOnly = fc.array(fc.constantFrom('own-1', 'own-2', 'own-3'), { maxLength: 2 });
  return orderStyles.chain(({ rank, age }) =>
    fc
      .record({
        tasks: fc.uniqueArray(fc.record({ id: names, priorityRank: rank, createdMs: age, capabilities }), {
          selector: (t) => t.id,
          maxLength: 60,
        }),
        agents: fc.uniqueArray(
          fc.record({
            name: names,
            template: fc.constantFrom('t1', 't2', 't3', 't4'),
            capabilities: fc.tuple(capabilities, agentOnly).map(([a, b]) => [...a, ...b]),
            load: fc.integer({ min: 0, max: 4 }),
            wipLimit: fc.integer({ min: 0, max: 5 }),
            accepting: fc.boolean(),
          }),
          { selector: (a) => a.name, maxLength: 25 },
        ),
        templates: fc.uniqueArray(
          fc.record({
            name: fc.constantFrom('t1', 't2', 't3', 't4', 't5'),
            capabilities,
            instances: fc.integer({ min: 0, max: 3 }),
            maxInstances: fc.integer({ min: 0, max: 5 }),
            wipLimitPerInstance: fc.integer({ min: 0, max: 3 }),
          }),
          { selector: (t) => t.name, maxLength: 5 },
        ),
        columnWip: fc.option(
          fc.record({
            limit: fc.option(fc.integer({ min: 0, max: 30 })),
            current: fc.integer({ min: 0, max: 10 }),
            name: fc.constantFrom('doing', 'in_progress'),
          }),
          { nil: undefined },
        ),
        denyOneIn: fc.integer({ min: 1, max: 6 }),
        denySeed: fc.integer({ min: 0, max: 1000 }),
      })
      .map(({ denyOneIn, denySeed, ...rest }): PlanInput => ({
        ...rest,
        nowMs: 0,
        isAllowed:
          denyOneIn === 1 ? undefined : (agent, template, taskId) => hash(`${denySeed}|${agent}|${template}|${taskId}`) % denyOneIn !== 0,
      })),
  );
}

describe('planAssignments against the reference', () => {
  for (const [label, capabilityCount, numRuns] of [
    ['few capabilities', 5, 1_500],
    ['more than 32 capabilities', 70, 500],
  ] as const) {
    it(`makes the same plan and asks policy the same questions, in order (${label})`, () => {
      fc.assert(
        fc.property(problemArb(capabilityCount), (input) => {
          const actual = withPolicyLog(planAssignments, input);
          const expected = withPolicyLog(referencePlan, input);
          expect(actual.plan).toEqual(expected.plan);
          expect(actual.asked).toEqual(expected.asked);
        }),
        { numRuns },
      );
    });
  }

  it('makes the same plan on a large problem with scarce agents, denials and spawns', () => {
    const caps = ['shell', 'node', 'git', 'gpu', 'sql', 'web'];
    let seed = 7;
    const random = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const some = (n: number): string[] => Array.from({ length: n }, () => caps[Math.floor(random() * caps.length)] as string);
    const tasks: ReadyTask[] = Array.from({ length: 3_000 }, (_, i) => ({
      id: `task-${i}`,
      priorityRank: Math.floor(random() * 4),
      createdMs: 1_800_000_000_000 - Math.floor(random() * 500),
      capabilities: some(1 + Math.floor(random() * 2)),
    }));
    const agents: AgentSlot[] = Array.from({ length: 300 }, (_, i) => {
      const wipLimit = 1 + Math.floor(random() * 3);
      return {
        name: `agent-${i}`,
        template: `t${i % 12}`,
        capabilities: [...some(2 + Math.floor(random() * 3)), `own-${i}`],
        load: Math.floor(random() * wipLimit),
        wipLimit,
        accepting: random() > 0.05,
      };
    });
    const templates: TemplateSlot[] = Array.from({ length: 12 }, (_, t) => ({
      name: `t${t}`,
      capabilities: some(2 + (t % 3)),
      instances: 25,
      maxInstances: 27,
      wipLimitPerInstance: 2,
    }));
    const input: PlanInput = {
      tasks,
      agents,
      templates,
      columnWip: { limit: 500, current: 20 },
      isAllowed: (_agent, template, taskId) => !(template === 't3' && taskId.endsWith('7')),
      nowMs: 0,
    };
    const actual = withPolicyLog(planAssignments, input);
    const expected = withPolicyLog(referencePlan, input);
    expect(actual.plan.assignments.length).toBeGreaterThan(0);
    expect(actual.plan.spawns.length).toBeGreaterThan(0);
    expect(actual.plan).toEqual(expected.plan);
    expect(actual.asked).toEqual(expected.asked);
  });
});

// Input errors against a reference validator: every field checked in order, the first bad one
// named.

function referenceProblem(input: PlanInput): { field: string; message: string } | undefined {
  type Check = [field: string, value: unknown, kind: 'count' | 'finite' | 'strings' | { seen: Set<unknown>; what: string }];
  const checks: Check[] = [['nowMs', input.nowMs, 'finite']];
  const ids = { seen: new Set<unknown>(), what: 'task id' };
  input.tasks.forEach((t, i) =>
    checks.push(
      [`tasks[${i}].id`, t.id, ids],
      [`tasks[${i}].priorityRank`, t.priorityRank, 'finite'],
      [`tasks[${i}].createdMs`, t.createdMs, 'finite'],
      [`tasks[${i}].capabilities`, t.capabilities, 'strings'],
    ),
  );
  const agentNames = { seen: new Set<unknown>(), what: 'agent name' };
  input.agents.forEach((a, i) =>
    checks.push(
      [`agents[${i}].name`, a.name, agentNames],
      [`agents[${i}].load`, a.load, 'count'],
      [`agents[${i}].wipLimit`, a.wipLimit, 'count'],
      [`agents[${i}].capabilities`, a.capabilities, 'strings'],
    ),
  );
  const templateNames = { seen: new Set<unknown>(), what: 'template name' };
  input.templates.forEach((t, i) =>
    checks.push(
      [`templates[${i}].name`, t.name, templateNames],
      [`templates[${i}].instances`, t.instances, 'count'],
      [`templates[${i}].maxInstances`, t.maxInstances, 'count'],
      [`templates[${i}].wipLimitPerInstance`, t.wipLimitPerInstance, 'count'],
      [`templates[${i}].capabilities`, t.capabilities, 'strings'],
    ),
  );
  if (input.columnWip) {
    if (input.columnWip.limit !== null) checks.push(['columnWip.limit', input.columnWip.limit, 'count']);
    checks.push(['columnWip.current', input.columnWip.current, 'count']);
  }
  for (const [field, value, kind] of checks) {
    let message: string | undefined;
    if (kind === 'finite') {
      if (typeof value !== 'number' || !Number.isFinite(value)) message = `expected a finite number, got ${String(value)}`;
    } else if (kind === 'count') {
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) message = `expected a non-negative integer, got ${String(value)}`;
    } else if (kind === 'strings') {
      if (!Array.isArray(value) || value.some((c) => typeof c !== 'string')) message = 'expected an array of strings';
    } else if (typeof value !== 'string' || value === '') {
      message = `expected a non-empty string, got ${JSON.stringify(value)}`;
    } else if (kind.seen.has(value)) {
      message = `duplicate ${kind.what} ${JSON.stringify(value)}`;
    } else {
      kind.seen.add(value);
    }
    if (message !== undefined) return { field, message };
  }
  return undefined;
}

const badValue = fc.constantFrom<unknown>(-1, 1.5, Number.NaN, Infinity, '', 'x', null, undefined, ['a', 3], 'dup', Symbol('s'), 2 ** 60);

describe('planAssignments input errors against the reference', () => {
  it('names the same first bad field, with the same message, as a field-by-field check', () => {
    const valid = problemArb(5).filter((input) => input.tasks.length > 0 || input.agents.length > 0 || input.templates.length > 0);
    const corruption = fc.array(
      fc.record({ list: fc.constantFrom('tasks', 'agents', 'templates'), at: fc.nat(), key: fc.nat(), value: badValue }),
      { minLength: 1, maxLength: 3 },
    );
    fc.assert(
      fc.property(valid, corruption, (input, changes) => {
        const lists = {
          tasks: input.tasks.map((t) => ({ ...t })) as Record<string, unknown>[],
          agents: input.agents.map((a) => ({ ...a })) as Record<string, unknown>[],
          templates: input.templates.map((t) => ({ ...t })) as Record<string, unknown>[],
        };
        for (const { list, at, key, value } of changes) {
          const items = lists[list];
          if (items.length === 0) continue;
          const item = items[at % items.length] as Record<string, unknown>;
          const keys = Object.keys(item).filter((k) => k !== 'accepting' && k !== 'template');
          const field = keys[key % keys.length] as string;
          // 'dup' copies another item's id or name, making a repeat.
          item[field] = value === 'dup' && (field === 'id' || field === 'name') ? (items[0] as Record<string, unknown>)[field] : value;
        }
        const broken = { ...input, ...lists } as unknown as PlanInput;
        const expected = referenceProblem(broken);
        let thrown: unknown;
        try {
          planAssignments(broken);
        } catch (error) {
          thrown = error;
        }
        if (expected === undefined) {
          expect(thrown).toBeUndefined();
        } else {
          expect(thrown).toBeInstanceOf(PlanInputError);
          expect(thrown).toMatchObject({ code: 'WARREN_PLAN_INPUT', field: expected.field });
          expect((thrown as Error).message).toBe(`planAssignments input ${expected.field}: ${expected.message}`);
        }
      }),
      { numRuns: 1_500 },
    );
  });

  it('reports the first problem in field order, not the first one a quicker check would see', () => {
    const task = (id: string, priorityRank = 0): ReadyTask => ({ id, priorityRank, createdMs: 0, capabilities: [] });
    const agent = (name: string, load = 0): AgentSlot => ({ name, template: 't', capabilities: [], load, wipLimit: 1, accepting: true });
    const plan = (over: Partial<PlanInput>) => () => planAssignments({ tasks: [], agents: [], templates: [], nowMs: 0, ...over });
    expect(plan({ tasks: [task('a'), task('a'), task('b', Number.NaN)] })).toThrow(/^planAssignments input tasks\[1\]\.id: duplicate task id "a"$/);
    expect(plan({ tasks: [task('a'), task('b', Number.NaN), task('a')] })).toThrow(/^planAssignments input tasks\[1\]\.priorityRank: expected a finite number, got NaN$/);
    expect(plan({ tasks: [task('a'), task('a')], agents: [agent('x', -1)] })).toThrow(/tasks\[1\]\.id/);
    expect(plan({ tasks: [task('a', Infinity)], agents: [agent('x'), agent('x')] })).toThrow(/tasks\[0\]\.priorityRank/);
    expect(plan({ agents: [agent('x'), agent('x'), agent('y', 1.5)] })).toThrow(/^planAssignments input agents\[1\]\.name: duplicate agent name "x"$/);
    expect(plan({ agents: [agent('x'), agent('y', 1.5), agent('x')] })).toThrow(/agents\[1\]\.load: expected a non-negative integer, got 1\.5/);
  });
});

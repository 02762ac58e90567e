import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planAssignments, type AgentSlot, type ReadyTask, type TemplateSlot } from '@warren/scheduler';
import { mostUrgent, planMostUrgent, plannerOrder } from '../src/urgent-plan.js';

const CAPS = ['a', 'b', 'c', 'gpu'];
const caps = fc.subarray(CAPS, { maxLength: 2 });

// Urgent tasks often need what few agents have (`gpu`): then the most urgent ones cannot use the
// free capacity and later ones can, the case where a plan of the head alone would be wrong.
const task = (i: number) =>
  fc.integer({ min: 0, max: 3 }).chain((priorityRank) =>
    fc.record({
      createdMs: fc.integer({ min: 0, max: 5 }),
      capabilities: priorityRank === 3 ? fc.constantFrom(['gpu'], ['gpu', 'a']) : caps,
    }).map((t): ReadyTask => ({ id: `t${String(i).padStart(4, '0')}`, priorityRank, ...t })),
  );

const agent = (i: number) =>
  fc.record({
    template: fc.constantFrom('x', 'y'),
    capabilities: fc.subarray(CAPS, { minLength: 1 }),
    wipLimit: fc.integer({ min: 0, max: 3 }),
    load: fc.integer({ min: 0, max: 3 }),
    accepting: fc.boolean(),
  }).map((a): AgentSlot => ({ name: `agent-${i}`, ...a }));

const template = (name: string) =>
  fc.record({
    capabilities: fc.subarray(CAPS, { minLength: 1 }),
    instances: fc.integer({ min: 0, max: 4 }),
    maxInstances: fc.integer({ min: 0, max: 5 }),
    wipLimitPerInstance: fc.integer({ min: 0, max: 2 }),
  }).map((t): TemplateSlot => ({ name, ...t }));

const scenario = fc.record({
  tasks: fc.integer({ min: 0, max: 600 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => task(i)))),
  agents: fc.integer({ min: 0, max: 12 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => agent(i)))),
  templates: fc.tuple(template('x'), template('y')),
  columnLimit: fc.option(fc.integer({ min: 0, max: 20 }), { nil: null }),
  columnCurrent: fc.integer({ min: 0, max: 20 }),
  denySeed: fc.integer({ min: 0, max: 6 }),
});

describe('planMostUrgent', () => {
  it('gives the full plan’s assignments and spawns whenever it answers at all', () => {
    let answered = 0;
    fc.assert(
      fc.property(scenario, (s) => {
        // A deterministic policy that denies some (agent, task) pairs.
        const isAllowed = (agent: string, template: string, taskId: string) =>
          s.denySeed === 0 || ((agent || template).length * 7 + Number(taskId.slice(1))) % (s.denySeed + 3) !== 0;
        const context = {
          agents: s.agents,
          templates: s.templates,
          columnWip: { limit: s.columnLimit, current: s.columnCurrent },
          isAllowed,
          nowMs: 0,
        };
        const full = planAssignments({ ...context, tasks: s.tasks });
        const urgent = planMostUrgent(s.tasks, (t) => t, context);
        if (urgent === undefined) return;
        answered += 1;
        expect(urgent.assignments).toEqual(full.assignments);
        expect(urgent.spawns.map((p) => p.template)).toEqual(full.spawns.map((p) => p.template));
      }),
      { numRuns: 400 },
    );
    // The shortcut must be taken in a fair share of the runs, or this property says little.
    expect(answered).toBeGreaterThan(20);
  });

  it('plans no task when no slot is free and no template may start an agent, as the full plan decides', () => {
    const tasks = Array.from({ length: 500 }, (_, i): ReadyTask => ({ id: `t${i}`, priorityRank: i % 4, createdMs: i, capabilities: ['a'] }));
    const agents: AgentSlot[] = [
      { name: 'a1', template: 'x', capabilities: ['a'], load: 1, wipLimit: 1, accepting: true },
      { name: 'a2', template: 'x', capabilities: ['a'], load: 0, wipLimit: 1, accepting: false },
    ];
    const templates: TemplateSlot[] = [{ name: 'x', capabilities: ['a'], instances: 2, maxInstances: 2, wipLimitPerInstance: 1 }];
    const context = { agents, templates, nowMs: 0 };
    const urgent = planMostUrgent(tasks, (t) => t, context);
    const full = planAssignments({ ...context, tasks });
    expect(urgent).toMatchObject({ assignments: [], spawns: [], unplaced: [] });
    expect([full.assignments, full.spawns, full.unplaced.length]).toEqual([[], [], 500]);
  });

  it('declines when the queue is short compared with the free capacity', () => {
    const tasks = Array.from({ length: 50 }, (_, i): ReadyTask => ({ id: `t${i}`, priorityRank: 0, createdMs: i, capabilities: ['a'] }));
    const agents: AgentSlot[] = [{ name: 'a1', template: 'x', capabilities: ['a'], load: 0, wipLimit: 1, accepting: true }];
    expect(planMostUrgent(tasks, (t) => t, { agents, templates: [], nowMs: 0 })).toBeUndefined();
  });
});

describe('mostUrgent', () => {
  it('returns the first k tasks of the planner order, in that order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => task(i)))), fc.integer({ min: 1, max: 50 }), (tasks, k) => {
        expect(mostUrgent(tasks, k)).toEqual([...tasks].sort(plannerOrder).slice(0, k));
      }),
      { numRuns: 200 },
    );
  });
});

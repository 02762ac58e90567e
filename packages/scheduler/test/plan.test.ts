import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  CapabilityIndex,
  PlanInputError,
  coversMask,
  planAssignments,
  type AgentSlot,
  type Plan,
  type PlanInput,
  type ReadyTask,
  type TemplateSlot,
} from '@warren/scheduler';

const task = (id: string, capabilities: string[] = ['shell'], priorityRank = 0, createdMs = 0): ReadyTask => ({
  id,
  priorityRank,
  createdMs,
  capabilities,
});

const agent = (name: string, over: Partial<AgentSlot> = {}): AgentSlot => ({
  name,
  template: 'shell',
  capabilities: ['shell'],
  load: 0,
  wipLimit: 1,
  accepting: true,
  ...over,
});

const template = (name: string, over: Partial<TemplateSlot> = {}): TemplateSlot => ({
  name,
  capabilities: ['shell'],
  instances: 0,
  maxInstances: 1,
  wipLimitPerInstance: 1,
  ...over,
});

const plan = (over: Partial<PlanInput>): Plan =>
  planAssignments({ tasks: [], agents: [], templates: [], nowMs: 1_000, ...over });

describe('CapabilityIndex', () => {
  it('interns capabilities into bits and tests cover by words', () => {
    const index = new CapabilityIndex(['a', 'b']);
    expect(index.bitOf('a')).toBe(0);
    expect(index.bitOf('b')).toBe(1);
    expect(index.intern('a')).toBe(0);
    const many = Array.from({ length: 70 }, (_, i) => `cap-${i}`);
    const wide = index.encode(many);
    expect(index.size).toBe(72);
    expect(index.wordCount).toBe(3);
    expect(wide.length).toBe(3);
    const narrow = index.encode(['a']);
    expect(coversMask(narrow, wide)).toBe(false);
    const both = index.encode(['a', ...many]);
    expect(coversMask(narrow, both)).toBe(true);
    expect(coversMask(wide, both)).toBe(true);
    expect(coversMask(both, wide)).toBe(false);
    expect(index.decode(index.encode(['cap-69', 'b']))).toEqual(['b', 'cap-69']);
  });

  it('compares masks of different lengths, treating missing words as zero', () => {
    const index = new CapabilityIndex(['a']);
    const short = index.encode(['a']);
    for (let i = 0; i < 40; i++) index.intern(`x${i}`);
    const long = index.encode(['a', 'x39']);
    expect(short.length).toBe(1);
    expect(long.length).toBe(2);
    expect(coversMask(short, long)).toBe(true);
    expect(coversMask(long, short)).toBe(false);
  });

  it('reports capabilities it does not know without interning them', () => {
    const index = new CapabilityIndex(['a']);
    const { mask, unknown } = index.encodeKnown(['a', 'gpu', 'gpu', 'net']);
    expect(unknown).toEqual(['gpu', 'net']);
    expect(index.size).toBe(1);
    expect(index.decode(mask)).toEqual(['a']);
  });
});

describe('planAssignments', () => {
  it('takes tasks by highest priorityRank, then oldest createdMs, then id', () => {
    const p = plan({
      tasks: [task('c', ['shell'], 1, 50), task('b', ['shell'], 1, 50), task('a', ['shell'], 1, 90), task('z', ['shell'], 5, 999)],
      agents: [agent('w1', { wipLimit: 10 })],
    });
    expect(p.assignments.map((a) => a.taskId)).toEqual(['z', 'b', 'c', 'a']);
    expect(p.plannedAtMs).toBe(1_000);
  });

  it('gives the most urgent tasks the scarce slots', () => {
    const p = plan({
      tasks: [task('low', ['shell'], 0), task('high', ['shell'], 9)],
      agents: [agent('w1')],
    });
    expect(p.assignments).toEqual([{ taskId: 'high', agent: 'w1' }]);
    expect(p.unplaced).toHaveLength(1);
    expect(p.unplaced[0]?.taskId).toBe('low');
    expect(p.unplaced[0]?.reason).toContain('1 at its WIP limit');
    expect(p.unplaced[0]?.reason).toContain('no template provides capabilities [shell]');
  });

  it('chooses the least loaded capable agent, ties by name, and spreads load', () => {
    const p = plan({
      tasks: [task('t1', ['shell'], 3), task('t2', ['shell'], 2), task('t3', ['shell'], 1), task('t4', ['shell'], 0)],
      agents: [
        agent('b', { load: 1, wipLimit: 5 }),
        agent('c', { load: 0, wipLimit: 5 }),
        agent('a', { load: 1, wipLimit: 5 }),
        agent('other', { capabilities: ['browser'], wipLimit: 5 }),
      ],
    });
    // c (0) → then a,b,c all at 1: a, then b; then c at 1 vs a,b at 2: c.
    expect(p.assignments).toEqual([
      { taskId: 't1', agent: 'c' },
      { taskId: 't2', agent: 'a' },
      { taskId: 't3', agent: 'b' },
      { taskId: 't4', agent: 'c' },
    ]);
  });

  it('only assigns to agents whose capabilities cover the task', () => {
    const p = plan({
      tasks: [task('t1', ['shell', 'net'])],
      agents: [agent('a', { capabilities: ['shell'] }), agent('b', { capabilities: ['net', 'shell', 'git'] })],
    });
    expect(p.assignments).toEqual([{ taskId: 't1', agent: 'b' }]);
  });

  it('never exceeds an agent WIP limit and skips agents that are not accepting', () => {
    const p = plan({
      tasks: [task('t1'), task('t2'), task('t3'), task('t4')],
      agents: [agent('a', { load: 1, wipLimit: 2 }), agent('b', { wipLimit: 1 }), agent('c', { accepting: false, wipLimit: 9 })],
    });
    expect(p.assignments.map((a) => a.agent).sort()).toEqual(['a', 'b']);
    expect(p.unplaced.map((u) => u.taskId)).toEqual(['t3', 't4']);
    expect(p.unplaced[0]?.reason).toBe(
      'no capable agent can take it (3 capable: 2 at its WIP limit, 1 not accepting); no template provides capabilities [shell]',
    );
  });

  it('stops assignments at the column WIP limit', () => {
    const p = plan({
      tasks: [task('t1', ['shell'], 3), task('t2', ['shell'], 2), task('t3', ['shell'], 1)],
      agents: [agent('a', { wipLimit: 10 })],
      columnWip: { limit: 4, current: 3 },
    });
    expect(p.assignments).toEqual([{ taskId: 't1', agent: 'a' }]);
    expect(p.unplaced).toEqual([
      { taskId: 't2', reason: 'column in_progress is at its WIP limit (4)' },
      { taskId: 't3', reason: 'column in_progress is at its WIP limit (4)' },
    ]);
  });

  it('treats a null column limit as unlimited and names the column in reasons', () => {
    expect(plan({ tasks: [task('t1'), task('t2')], agents: [agent('a', { wipLimit: 2 })], columnWip: { limit: null, current: 99 } }).assignments).toHaveLength(2);
    const p = plan({ tasks: [task('t1')], agents: [agent('a')], columnWip: { limit: 2, current: 5, name: 'doing' } });
    expect(p.unplaced).toEqual([{ taskId: 't1', reason: 'column doing is at its WIP limit (2)' }]);
  });

  it('plans spawns within maxInstances, several tasks riding one planned instance', () => {
    const p = plan({
      tasks: [task('t1', ['shell'], 5), task('t2', ['shell'], 4), task('t3', ['shell'], 3), task('t4', ['shell'], 2), task('t5', ['shell'], 1)],
      templates: [template('shell', { instances: 1, maxInstances: 3, wipLimitPerInstance: 2 })],
    });
    expect(p.assignments).toEqual([]);
    expect(p.spawns).toEqual([
      { template: 'shell', taskIds: ['t1', 't2'] },
      { template: 'shell', taskIds: ['t3', 't4'] },
    ]);
    expect(p.unplaced).toEqual([
      {
        taskId: 't5',
        reason: 'no live agent provides capabilities [shell]; template shell is at max instances (3, 2 of them planned now and full)',
      },
    ]);
  });

  it('says when a template is already at max instances', () => {
    const p = plan({ tasks: [task('t1')], templates: [template('shell', { instances: 2, maxInstances: 2 })] });
    expect(p.unplaced[0]?.reason).toContain('template shell is at max instances (2)');
  });

  it('spawns only when no live agent can take the task, and does not count spawns against the column', () => {
    const p = plan({
      tasks: [task('t1', ['shell'], 2), task('t2', ['shell'], 1)],
      agents: [agent('a')],
      templates: [template('shell', { instances: 1, maxInstances: 2 })],
      columnWip: { limit: 1, current: 0 },
    });
    expect(p.assignments).toEqual([{ taskId: 't1', agent: 'a' }]);
    expect(p.spawns).toEqual([{ template: 'shell', taskIds: ['t2'] }]);
    expect(p.unplaced).toEqual([]);
  });

  it('prefers the covering template with the fewest capabilities, and riding over a new spawn', () => {
    const p = plan({
      tasks: [task('t1', ['shell'], 3), task('t2', ['shell', 'gpu'], 2), task('t3', ['shell'], 1)],
      templates: [
        template('big', { capabilities: ['shell', 'gpu'], maxInstances: 5, wipLimitPerInstance: 2 }),
        template('small', { capabilities: ['shell'], maxInstances: 5, wipLimitPerInstance: 2 }),
      ],
    });
    expect(p.spawns).toEqual([
      { template: 'small', taskIds: ['t1', 't3'] },
      { template: 'big', taskIds: ['t2'] },
    ]);
  });

  it('asks policy for each candidate and moves on to the next allowed one', () => {
    const asked: string[] = [];
    const p = plan({
      tasks: [task('t1')],
      agents: [agent('a'), agent('b', { load: 1, wipLimit: 3 }), agent('c', { load: 2, wipLimit: 3 })],
      isAllowed: (name, tmpl, taskId) => {
        asked.push(`${name}/${tmpl}/${taskId}`);
        return name === 'c';
      },
    });
    expect(p.assignments).toEqual([{ taskId: 't1', agent: 'c' }]);
    expect(asked).toEqual(['a/shell/t1', 'b/shell/t1', 'c/shell/t1']);
  });

  it('keeps denied agents available to later tasks', () => {
    const p = plan({
      tasks: [task('secret', ['shell'], 2), task('open', ['shell'], 1)],
      agents: [agent('a')],
      isAllowed: (_name, _tmpl, taskId) => taskId !== 'secret',
    });
    expect(p.assignments).toEqual([{ taskId: 'open', agent: 'a' }]);
    expect(p.unplaced).toEqual([
      { taskId: 'secret', reason: 'policy denies assign to every capable agent; no template provides capabilities [shell]' },
    ]);
  });

  it('asks policy about planned spawns with an empty agent name', () => {
    const asked: string[] = [];
    const p = plan({
      tasks: [task('t1')],
      agents: [agent('a')],
      templates: [template('shell', { instances: 1, maxInstances: 3 })],
      isAllowed: (name, tmpl) => {
        asked.push(`${name}/${tmpl}`);
        return false;
      },
    });
    expect(asked).toEqual(['a/shell', '/shell']);
    expect(p.spawns).toEqual([]);
    expect(p.unplaced[0]?.reason).toBe(
      'policy denies assign to every capable agent; policy denies assign to a new instance of template shell',
    );
  });

  it('names capabilities no agent or template provides', () => {
    const p = plan({
      tasks: [task('t1', ['shell', 'gpu', 'tpu']), task('t2', ['shell', 'net'])],
      agents: [agent('a', { capabilities: ['shell'] })],
      templates: [template('net', { capabilities: ['net'] })],
    });
    expect(p.unplaced).toEqual([
      { taskId: 't1', reason: 'no agent or template provides capabilities [gpu, tpu]' },
      { taskId: 't2', reason: 'no agent or template provides capabilities [net, shell] together' },
    ]);
  });

  it('says when nothing at all is available', () => {
    expect(plan({ tasks: [task('t1', [])] }).unplaced).toEqual([{ taskId: 't1', reason: 'no agent or template is available' }]);
  });

  it('gives a task with no capabilities to any agent', () => {
    expect(plan({ tasks: [task('t1', [])], agents: [agent('a', { capabilities: [] })] }).assignments).toEqual([
      { taskId: 't1', agent: 'a' },
    ]);
  });

  it('is deterministic: input order does not change the plan', () => {
    const tasks = Array.from({ length: 40 }, (_, i) => task(`t${i}`, i % 3 === 0 ? ['shell', 'git'] : ['shell'], i % 4, i % 7));
    const agents = Array.from({ length: 6 }, (_, i) =>
      agent(`a${i}`, { capabilities: i % 2 ? ['shell'] : ['shell', 'git'], wipLimit: 2, load: i % 2 }),
    );
    const templates = [template('shell', { maxInstances: 3, wipLimitPerInstance: 3 }), template('git', { capabilities: ['git', 'shell'], maxInstances: 2 })];
    const first = plan({ tasks, agents, templates, columnWip: { limit: 20, current: 2 } });
    const second = plan({
      tasks: [...tasks].reverse(),
      agents: [...agents].reverse(),
      templates: [...templates].reverse(),
      columnWip: { limit: 20, current: 2 },
    });
    expect(second).toEqual(first);
  });

  it('rejects malformed input with the field that is wrong', () => {
    expect(() => plan({ tasks: [task('x'), task('x')] })).toThrow(PlanInputError);
    expect(() => plan({ tasks: [task('x'), task('x')] })).toThrow(/tasks\[1\]\.id: duplicate task id "x"/);
    expect(() => plan({ agents: [agent('a', { load: -1 })] })).toThrow(/agents\[0\]\.load/);
    expect(() => plan({ agents: [agent('a', { wipLimit: 1.5 })] })).toThrow(/agents\[0\]\.wipLimit/);
    expect(() => plan({ tasks: [task('t', [], Number.NaN)] })).toThrow(/tasks\[0\]\.priorityRank/);
    expect(() => plan({ templates: [template('s'), template('s')] })).toThrow(/templates\[1\]\.name/);
    expect(() => plan({ columnWip: { limit: -2, current: 0 } })).toThrow(/columnWip\.limit/);
    try {
      plan({ agents: [agent('a', { load: -1 })] });
    } catch (error) {
      expect(error).toMatchObject({ code: 'WARREN_PLAN_INPUT', field: 'agents[0].load', value: -1 });
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Property: the plan respects every limit, only assigns to covering agents, places each task once.

const CAPS = ['a', 'b', 'c', 'd'];
const capSet = fc.subarray(CAPS, { minLength: 0, maxLength: 3 });
const inputArb = fc
  .record({
    tasks: fc.uniqueArray(
      fc.record({ id: fc.string({ minLength: 1, maxLength: 4 }), priorityRank: fc.integer({ min: -3, max: 3 }), createdMs: fc.integer({ min: 0, max: 50 }), capabilities: capSet }),
      { selector: (t) => t.id, maxLength: 40 },
    ),
    agents: fc.uniqueArray(
      fc.record({
        name: fc.string({ minLength: 1, maxLength: 4 }),
        template: fc.constantFrom('t1', 't2', 't3'),
        capabilities: capSet,
        load: fc.integer({ min: 0, max: 4 }),
        wipLimit: fc.integer({ min: 0, max: 4 }),
        accepting: fc.boolean(),
      }),
      { selector: (a) => a.name, maxLength: 12 },
    ),
    templates: fc.uniqueArray(
      fc.record({
        name: fc.constantFrom('t1', 't2', 't3', 't4'),
        capabilities: capSet,
        instances: fc.integer({ min: 0, max: 3 }),
        maxInstances: fc.integer({ min: 0, max: 4 }),
        wipLimitPerInstance: fc.integer({ min: 0, max: 3 }),
      }),
      { selector: (t) => t.name, maxLength: 4 },
    ),
    columnWip: fc.option(fc.record({ limit: fc.option(fc.integer({ min: 0, max: 12 })), current: fc.integer({ min: 0, max: 14 }) }), { nil: undefined }),
    denySeed: fc.integer({ min: 0, max: 1000 }),
  })
  .map(({ denySeed, ...rest }) => ({
    ...rest,
    nowMs: 0,
    // A deterministic policy that denies some (agent, task) pairs.
    isAllowed: (agentName: string, tmpl: string, taskId: string) => hash(`${denySeed}|${agentName}|${tmpl}|${taskId}`) % 5 !== 0,
  }));

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h;
}

describe('planAssignments properties', () => {
  it('never exceeds a WIP limit or maxInstances, assigns only to covering allowed agents, places each task once', () => {
    fc.assert(
      fc.property(inputArb, (input: PlanInput) => {
        const p = planAssignments(input);
        const agents = new Map(input.agents.map((a) => [a.name, a]));
        const tasks = new Map(input.tasks.map((t) => [t.id, t]));
        const placed = [
          ...p.assignments.map((a) => a.taskId),
          ...p.spawns.flatMap((s) => s.taskIds),
          ...p.unplaced.map((u) => u.taskId),
        ];
        expect(placed.length).toBe(input.tasks.length);
        expect(new Set(placed).size).toBe(input.tasks.length);

        const added = new Map<string, number>();
        for (const a of p.assignments) {
          const slot = agents.get(a.agent);
          const t = tasks.get(a.taskId);
          expect(slot).toBeDefined();
          expect(t).toBeDefined();
          expect(slot!.accepting).toBe(true);
          for (const c of t!.capabilities) expect(slot!.capabilities).toContain(c);
          expect(input.isAllowed!(slot!.name, slot!.template, t!.id)).toBe(true);
          added.set(a.agent, (added.get(a.agent) ?? 0) + 1);
        }
        for (const [name, n] of added) {
          const slot = agents.get(name)!;
          expect(slot.load + n).toBeLessThanOrEqual(slot.wipLimit);
        }
        const limit = input.columnWip?.limit;
        if (input.columnWip && limit !== null && limit !== undefined) {
          expect(p.assignments.length).toBeLessThanOrEqual(Math.max(0, limit - input.columnWip.current));
        }
        const spawnsPer = new Map<string, number>();
        for (const s of p.spawns) {
          const tmpl = input.templates.find((t) => t.name === s.template)!;
          expect(s.taskIds.length).toBeGreaterThan(0);
          expect(s.taskIds.length).toBeLessThanOrEqual(tmpl.wipLimitPerInstance);
          for (const id of s.taskIds) {
            for (const c of tasks.get(id)!.capabilities) expect(tmpl.capabilities).toContain(c);
            expect(input.isAllowed!('', tmpl.name, id)).toBe(true);
          }
          spawnsPer.set(s.template, (spawnsPer.get(s.template) ?? 0) + 1);
        }
        for (const [name, n] of spawnsPer) {
          const tmpl = input.templates.find((t) => t.name === name)!;
          expect(tmpl.instances + n).toBeLessThanOrEqual(tmpl.maxInstances);
        }
        for (const u of p.unplaced) expect(u.reason.length).toBeGreaterThan(0);
        // Same input, same plan.
        expect(planAssignments(input)).toEqual(p);
      }),
      { numRuns: 400 },
    );
  });

  it('leaves no task waiting while a covering accepting agent with room would be allowed it', () => {
    fc.assert(
      fc.property(inputArb, (input: PlanInput) => {
        const p = planAssignments(input);
        const loads = new Map(input.agents.map((a) => [a.name, a.load]));
        for (const a of p.assignments) loads.set(a.agent, (loads.get(a.agent) ?? 0) + 1);
        const limit = input.columnWip?.limit;
        const columnFull =
          input.columnWip !== undefined && limit !== null && limit !== undefined && p.assignments.length >= Math.max(0, limit - input.columnWip.current);
        if (columnFull) return;
        const waiting = [...p.unplaced.map((u) => u.taskId), ...p.spawns.flatMap((s) => s.taskIds)];
        for (const id of waiting) {
          const t = input.tasks.find((x) => x.id === id)!;
          for (const a of input.agents) {
            const fits = a.accepting && (loads.get(a.name) ?? 0) < a.wipLimit && t.capabilities.every((c) => a.capabilities.includes(c));
            if (fits) expect(input.isAllowed!(a.name, a.template, t.id)).toBe(false);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

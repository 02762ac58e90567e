import { describe, expect, it } from 'vitest';
import { entityExists, hasComponent } from 'bitecs';
import { planAssignments } from '@warren/scheduler';
import {
  AgentSpecError,
  AgentStatus,
  DuplicateAgentError,
  UnknownAgentError,
  addAgent,
  addSpawningAgent,
  agentEid,
  agentEntities,
  agentSlots,
  agentSlotsUnchanged,
  agentView,
  createAgentWorld,
  instanceCounts,
  instanceEntities,
  listAgents,
  recordHeartbeat,
  recordRestart,
  recordUsage,
  removeAgent,
  setLoad,
  setStatus,
  startingCounts,
  type AgentSpec,
  type AgentWorld,
} from '@warren/ecs';
import { agentSpec } from './support.js';

const MiB = 1024 * 1024;

const spec = (name: string, over: Partial<AgentSpec> = {}): AgentSpec =>
  agentSpec(name, { resources: { memoryMaxBytes: 512 * MiB, pidsMax: 128, cpuWeight: 100 }, nowMs: 1_000, ...over });

describe('agent world', () => {
  it('adds an agent with every component and a plain view of it', () => {
    const world = createAgentWorld();
    const eid = addAgent(world, spec('shell-1', { uid: 61_001, gid: 61_002, capabilities: ['shell', 'git', 'shell'], wipLimit: 2 }));
    expect(agentEid(world, 'shell-1')).toBe(eid);
    for (const component of Object.values(world.components)) expect(hasComponent(world, eid, component)).toBe(true);
    expect(agentView(world, 'shell-1')).toEqual({
      name: 'shell-1',
      template: 'shell',
      eid,
      uid: 61_001,
      gid: 61_002,
      capabilities: ['git', 'shell'],
      status: 'pending',
      statusSinceMs: 1_000,
      load: 0,
      wipLimit: 2,
      lifecycle: 'persistent',
      lastActiveMs: 1_000,
      lastHeartbeatMs: null,
      restarts: 0,
      tasksDone: 0,
      ready: false,
      tookTask: false,
      workedMs: null,
      stopping: null,
      stopDetail: null,
      failTasks: null,
      restartAfterExit: false,
      resources: { memoryMaxBytes: 512 * MiB, pidsMax: 128, cpuWeight: 100, memoryBytes: 0, pids: 0, cpuMs: 0, pidsRefused: 0, oomKills: 0 },
    });
    expect(JSON.parse(JSON.stringify(listAgents(world)))).toEqual(listAgents(world));
  });

  it('rejects a duplicate name and keeps the first agent', () => {
    const world = createAgentWorld();
    const eid = addAgent(world, spec('a'));
    expect(() => addAgent(world, spec('a', { template: 'other' }))).toThrow(DuplicateAgentError);
    try {
      addAgent(world, spec('a'));
    } catch (error) {
      expect(error).toMatchObject({ code: 'WARREN_AGENT_DUPLICATE', agent: 'a', eid });
    }
    expect(agentView(world, 'a')?.template).toBe('shell');
    expect(listAgents(world)).toHaveLength(1);
  });

  it('rejects invalid specs naming the field', () => {
    const world = createAgentWorld();
    expect(() => addAgent(world, spec(''))).toThrow(/spec\.name/);
    expect(() => addAgent(world, spec('a', { uid: -1 }))).toThrow(/agent "a": spec\.uid/);
    expect(() => addAgent(world, spec('a', { wipLimit: 1.5 }))).toThrow(AgentSpecError);
    expect(() => addAgent(world, spec('a', { lifecycle: 'forever' as never }))).toThrow(/spec\.lifecycle/);
    expect(() => addAgent(world, spec('a', { resources: { memoryMaxBytes: 1, pidsMax: 1, cpuWeight: 20_000 } }))).toThrow(
      /spec\.resources\.cpuWeight/,
    );
    expect(() => addAgent(world, spec('a', { nowMs: Number.NaN }))).toThrow(/spec\.nowMs/);
    expect(listAgents(world)).toEqual([]);
  });

  it('resolves names, never stale eids, after removal and eid recycling', () => {
    const world = createAgentWorld();
    const old = addAgent(world, spec('old', { wipLimit: 4 }));
    addAgent(world, spec('keep'));
    setStatus(world, 'old', AgentStatus.busy, 2_000);
    setLoad(world, 'old', 3);
    expect(removeAgent(world, 'old')).toBe(true);
    expect(removeAgent(world, 'old')).toBe(false);
    expect(entityExists(world, old)).toBe(false);

    const fresh = addAgent(world, spec('fresh', { template: 'browser', capabilities: ['browser'] }));
    expect(fresh).toBe(old); // bitecs hands the eid out again at once
    expect(agentEid(world, 'old')).toBeUndefined();
    expect(agentView(world, 'old')).toBeUndefined();
    expect(() => setStatus(world, 'old', AgentStatus.idle, 3_000)).toThrow(UnknownAgentError);
    expect(() => setLoad(world, 'old', 0)).toThrow(/setLoad: no agent named "old"/);
    expect(recordHeartbeat(world, 'old', 3_000)).toBe(false);
    expect(recordUsage(world, 'old', { memoryBytes: 1, pids: 1, cpuMs: 1 })).toBe(false);
    const view = agentView(world, 'fresh');
    expect(view).toMatchObject({ name: 'fresh', eid: old, template: 'browser', status: 'pending', load: 0, wipLimit: 1, capabilities: ['browser'] });
    expect(listAgents(world).map((a) => a.name)).toEqual(['fresh', 'keep']);
  });

  it('round-trips status and load, tracking since, activity and finished tasks', () => {
    const world = createAgentWorld();
    addAgent(world, spec('a', { wipLimit: 3 }));
    setStatus(world, 'a', AgentStatus.starting, 1_500);
    setStatus(world, 'a', AgentStatus.idle, 2_000);
    expect(agentView(world, 'a')).toMatchObject({ status: 'idle', statusSinceMs: 2_000, lastActiveMs: 1_000 });
    setStatus(world, 'a', AgentStatus.idle, 2_500); // same status: since stays
    expect(agentView(world, 'a')?.statusSinceMs).toBe(2_000);

    setLoad(world, 'a', 2);
    setStatus(world, 'a', AgentStatus.busy, 3_000);
    expect(agentView(world, 'a')).toMatchObject({ status: 'busy', statusSinceMs: 3_000, load: 2, lastActiveMs: 3_000, tasksDone: 0 });
    setLoad(world, 'a', 1, 3_500);
    expect(agentView(world, 'a')).toMatchObject({ load: 1, tasksDone: 1, lastActiveMs: 3_500 });
    setLoad(world, 'a', 0);
    setStatus(world, 'a', AgentStatus.idle, 4_000);
    expect(agentView(world, 'a')).toMatchObject({ status: 'idle', load: 0, tasksDone: 2, lastActiveMs: 4_000 });

    for (const status of Object.values(AgentStatus)) {
      setStatus(world, 'a', status, 5_000);
      expect(agentView(world, 'a')?.status).toBe(status);
    }
    expect(() => setStatus(world, 'a', 'dancing' as AgentStatus, 1)).toThrow(/status: expected one of pending, starting/);
    expect(() => setLoad(world, 'a', -1)).toThrow(AgentSpecError);
  });

  it('records heartbeats, usage and restarts', () => {
    const world = createAgentWorld();
    addAgent(world, spec('a'));
    expect(recordHeartbeat(world, 'a', 5_000)).toBe(true);
    expect(recordHeartbeat(world, 'a', 4_000)).toBe(true); // late delivery does not move it back
    expect(agentView(world, 'a')?.lastHeartbeatMs).toBe(5_000);
    expect(recordUsage(world, 'a', { memoryBytes: 300 * MiB, pids: 12, cpuMs: 1_234.5 })).toBe(true);
    expect(agentView(world, 'a')?.resources).toEqual({
      memoryMaxBytes: 512 * MiB,
      pidsMax: 128,
      cpuWeight: 100,
      memoryBytes: 300 * MiB,
      pids: 12,
      cpuMs: 1_234.5,
      pidsRefused: 0,
      oomKills: 0,
    });
    expect(() => recordUsage(world, 'a', { memoryBytes: -5, pids: 0, cpuMs: 0 })).toThrow(/usage\.memoryBytes/);
    expect(recordRestart(world, 'a')).toBe(1);
    expect(recordRestart(world, 'a')).toBe(2);
    expect(agentView(world, 'a')?.restarts).toBe(2);
  });

  it('grows its stores past the initial capacity without losing data', () => {
    const world = createAgentWorld({ initialCapacity: 2 });
    const big = 6 * 1024 * MiB; // above 2^32: needs the float64 store
    for (let i = 0; i < 150; i++) {
      addAgent(world, spec(`agent-${String(i).padStart(3, '0')}`, { uid: 70_000 + i, resources: { memoryMaxBytes: big + i, pidsMax: i, cpuWeight: 1 + i } }));
      setLoad(world, `agent-${String(i).padStart(3, '0')}`, i % 2);
    }
    const all = listAgents(world);
    expect(all).toHaveLength(150);
    all.forEach((a, i) => {
      expect(a.uid).toBe(70_000 + i);
      expect(a.load).toBe(i % 2);
      expect(a.resources.memoryMaxBytes).toBe(big + i);
      expect(a.resources.cpuWeight).toBe(1 + i);
    });
    expect(world.capacity).toBeGreaterThan(150);
  });

  it('keeps worlds apart', () => {
    const one = createAgentWorld();
    const two = createAgentWorld();
    addAgent(one, spec('a', { wipLimit: 7 }));
    addAgent(two, spec('b', { wipLimit: 9 }));
    expect(listAgents(one).map((a) => [a.name, a.wipLimit])).toEqual([['a', 7]]);
    expect(listAgents(two).map((a) => [a.name, a.wipLimit])).toEqual([['b', 9]]);
  });
});

describe('agentSlots', () => {
  function seed(): AgentWorld {
    const world = createAgentWorld();
    addAgent(world, spec('idle-1', { wipLimit: 2 }));
    addAgent(world, spec('busy-1', { wipLimit: 2 }));
    addAgent(world, spec('starting-1'));
    addAgent(world, spec('stopping-1'));
    addAgent(world, spec('browser-1', { template: 'browser', capabilities: ['browser', 'net'] }));
    setStatus(world, 'idle-1', AgentStatus.idle, 1_100);
    setStatus(world, 'busy-1', AgentStatus.busy, 1_100);
    setLoad(world, 'busy-1', 1);
    setStatus(world, 'starting-1', AgentStatus.starting, 1_100);
    setStatus(world, 'stopping-1', AgentStatus.stopping, 1_100);
    setStatus(world, 'browser-1', AgentStatus.idle, 1_100);
    return world;
  }

  it('lists agents by name, accepting only when idle or busy', () => {
    expect(agentSlots(seed())).toEqual([
      { name: 'browser-1', template: 'browser', capabilities: ['browser', 'net'], load: 0, wipLimit: 1, accepting: true },
      { name: 'busy-1', template: 'shell', capabilities: ['shell'], load: 1, wipLimit: 2, accepting: true },
      { name: 'idle-1', template: 'shell', capabilities: ['shell'], load: 0, wipLimit: 2, accepting: true },
      { name: 'starting-1', template: 'shell', capabilities: ['shell'], load: 0, wipLimit: 1, accepting: false },
      { name: 'stopping-1', template: 'shell', capabilities: ['shell'], load: 0, wipLimit: 1, accepting: false },
    ]);
  });

  it('agentSlotsUnchanged holds until a slot changes, and for a copy of equal slots', () => {
    const world = seed();
    const slots = agentSlots(world);
    expect(agentSlotsUnchanged(world, slots)).toBe(true);
    expect(agentSlotsUnchanged(world, slots.map((s) => ({ ...s, capabilities: [...s.capabilities] })))).toBe(true);
    const changes: [string, (w: AgentWorld) => void][] = [
      ['load', (w) => setLoad(w, 'idle-1', 1, 1_200)],
      ['status', (w) => setStatus(w, 'starting-1', AgentStatus.idle, 1_200)],
      ['a new agent', (w) => addAgent(w, spec('another-1'))],
      ['an agent gone', (w) => removeAgent(w, 'busy-1')],
    ];
    for (const [what, change] of changes) {
      const changed = seed();
      const before = agentSlots(changed);
      change(changed);
      expect(agentSlotsUnchanged(changed, before), what).toBe(false);
    }
    const other = slots.map((s) => (s.name === 'browser-1' ? { ...s, capabilities: ['browser'] } : s));
    expect(agentSlotsUnchanged(world, other)).toBe(false);
    expect(agentSlotsUnchanged(world, slots.map((s) => (s.name === 'idle-1' ? { ...s, wipLimit: 3 } : s)))).toBe(false);
  });

  it('feeds planAssignments, and applying the plan feeds the next one', () => {
    const world = seed();
    const tasks = [
      { id: 'T-1', priorityRank: 3, createdMs: 1, capabilities: ['shell'] },
      { id: 'T-2', priorityRank: 2, createdMs: 1, capabilities: ['shell'] },
      { id: 'T-3', priorityRank: 1, createdMs: 1, capabilities: ['shell'] },
      { id: 'T-4', priorityRank: 0, createdMs: 1, capabilities: ['net'] },
    ];
    const first = planAssignments({ tasks, agents: agentSlots(world), templates: [], nowMs: 2_000 });
    expect(first.assignments).toEqual([
      { taskId: 'T-1', agent: 'idle-1' },
      { taskId: 'T-2', agent: 'busy-1' },
      { taskId: 'T-3', agent: 'idle-1' },
      { taskId: 'T-4', agent: 'browser-1' },
    ]);
    for (const a of first.assignments) {
      const load = agentView(world, a.agent)?.load ?? 0;
      setLoad(world, a.agent, load + 1, 2_000);
      setStatus(world, a.agent, AgentStatus.busy, 2_000);
    }
    const second = planAssignments({ tasks: [{ id: 'T-5', priorityRank: 0, createdMs: 2, capabilities: ['shell'] }], agents: agentSlots(world), templates: [], nowMs: 2_100 });
    expect(second.assignments).toEqual([]);
    expect(second.unplaced[0]?.reason).toContain('2 at its WIP limit, 2 not accepting');
    removeAgent(world, 'stopping-1');
    expect(agentSlots(world).map((s) => s.name)).not.toContain('stopping-1');
  });
});

describe('name order of the agents', () => {
  it('is kept while nothing changes and made again when an agent comes, goes, or a recycled eid gets another name', () => {
    const world = createAgentWorld();
    for (const name of ['c-1', 'a-1', 'b-1']) addAgent(world, spec(name));
    const names = (eids: readonly number[]) => eids.map((eid) => world.components.Identity.name[eid]);
    const first = agentEntities(world);
    expect(names(first)).toEqual(['a-1', 'b-1', 'c-1']);
    expect(Object.isFrozen(first)).toBe(true);
    // Nothing changed: the same array, not sorted again.
    expect(agentEntities(world)).toBe(first);
    setStatus(world, 'b-1', AgentStatus.busy, 2_000);
    expect(agentEntities(world)).toBe(first);

    addAgent(world, spec('0-1'));
    expect(names(agentEntities(world))).toEqual(['0-1', 'a-1', 'b-1', 'c-1']);
    // The eid of a removed agent is handed to the next one at once: its new name moves it.
    const eid = agentEid(world, 'a-1');
    removeAgent(world, 'a-1');
    expect(names(agentEntities(world))).toEqual(['0-1', 'b-1', 'c-1']);
    expect(addAgent(world, spec('z-1'))).toBe(eid);
    expect(names(agentEntities(world))).toEqual(['0-1', 'b-1', 'c-1', 'z-1']);
    expect(names(instanceEntities(world))).toEqual(['0-1', 'b-1', 'c-1', 'z-1']);
    addSpawningAgent(world, { name: 'm-1', template: 'shell', nowMs: 3_000 });
    expect(names(instanceEntities(world))).toEqual(['0-1', 'b-1', 'c-1', 'm-1', 'z-1']);
    expect(names(agentEntities(world))).toEqual(['0-1', 'b-1', 'c-1', 'z-1']);
    expect(instanceCounts(world)).toEqual(new Map([['shell', 5]]));
    expect(startingCounts(world)).toEqual(new Map([['shell', 5]]));
  });
});

import { describe, expect, it } from 'vitest';
import {
  AgentSpecError,
  DuplicateAgentError,
  UnknownAgentError,
  addAgent,
  addSpawningAgent,
  agentSlots,
  agentView,
  createAgentWorld,
  defineTemplate,
  instanceCounts,
  isReady,
  isStopping,
  listAgents,
  markReady,
  markStopping,
  recordAssigned,
  recordFinished,
  recordSpawnFailure,
  removeAgent,
  removeSpawningAgent,
  requestRestartAfterExit,
  spawnBackoffOf,
  spawningAgents,
  startingCounts,
  takeOomKill,
  type AgentSpec,
  type AgentWorld,
  type TemplateSpec,
} from '@warren/ecs';
import { agentSpec, templateSpec } from './support.js';

const spec = (name: string, over: Partial<AgentSpec> = {}): AgentSpec => agentSpec(name, { wipLimit: 2, resources: { memoryMaxBytes: 0, pidsMax: 64, cpuWeight: 100 }, ...over });

const template = (name: string, over: Partial<TemplateSpec> = {}): TemplateSpec =>
  templateSpec(name, { sleepAfterIdleMs: 60_000, watchdog: { memoryBytes: 1_000, pids: 50, cpuCores: null, graceMs: 2_000 }, ...over });

/** A world with template `shell` and a started agent `name` (ready unless said otherwise). */
function started(name = 'shell-1', over: Partial<AgentSpec> = {}, ready = true): AgentWorld {
  const world = createAgentWorld();
  defineTemplate(world, template('shell'));
  addSpawningAgent(world, { name, template: 'shell', nowMs: 0 });
  addAgent(world, spec(name, over));
  if (ready) markReady(world, name, 100);
  return world;
}

describe('agents being spawned', () => {
  it('count as instances and as starting, take their name, and are not agents for the systems', () => {
    const world = createAgentWorld();
    addSpawningAgent(world, { name: 'shell-1', template: 'shell', nowMs: 5 });
    addSpawningAgent(world, { name: 'browser-1', template: 'browser', nowMs: 5 });
    expect(agentView(world, 'shell-1')).toMatchObject({ status: 'spawning', statusSinceMs: 5, uid: 0, load: 0, ready: false, stopping: null });
    expect(listAgents(world)).toEqual([]);
    expect(agentSlots(world)).toEqual([]);
    expect(instanceCounts(world)).toEqual(new Map([['browser', 1], ['shell', 1]]));
    expect(startingCounts(world)).toEqual(new Map([['browser', 1], ['shell', 1]]));
    expect(() => addSpawningAgent(world, { name: 'shell-1', template: 'shell', nowMs: 6 })).toThrow(DuplicateAgentError);
    expect(markReady(world, 'shell-1', 7)).toBe(false);
    expect(recordFinished(world, 'shell-1', 7)).toBeUndefined();
  });

  it('become agents when added with the same template, or go when their start failed', () => {
    const world = createAgentWorld();
    const eid = addSpawningAgent(world, { name: 'shell-1', template: 'shell', nowMs: 5 });
    addSpawningAgent(world, { name: 'shell-2', template: 'shell', nowMs: 5 });
    expect(() => addAgent(world, spec('shell-1', { template: 'browser' }))).toThrow(/spec\.template: expected "shell"/);
    expect(addAgent(world, spec('shell-1', { nowMs: 10 }))).toBe(eid);
    expect(agentView(world, 'shell-1')).toMatchObject({ status: 'pending', statusSinceMs: 10, uid: 61_000, capabilities: ['shell'] });
    expect(() => addAgent(world, spec('shell-1'))).toThrow(DuplicateAgentError);
    expect(removeSpawningAgent(world, 'shell-1')).toBe(false); // started: stays
    expect(removeSpawningAgent(world, 'shell-2')).toBe(true);
    expect(removeSpawningAgent(world, 'shell-2')).toBe(false);
    expect(instanceCounts(world)).toEqual(new Map([['shell', 1]]));
    expect(listAgents(world).map((a) => a.name)).toEqual(['shell-1']);
  });

  it('start from clean fields on a recycled eid', () => {
    const world = started('old');
    recordAssigned(world, 'old', 200);
    markStopping(world, 'old', 'watchdog', 300, { detail: 'over', failTasks: 'process limit reached (64)' });
    requestRestartAfterExit(world, 'old');
    const eid = agentView(world, 'old')!.eid;
    removeAgent(world, 'old');
    expect(addSpawningAgent(world, { name: 'new', template: 'shell', nowMs: 400 })).toBe(eid);
    expect(agentView(world, 'new')).toMatchObject({ load: 0, tookTask: false, stopping: null, stopDetail: null, failTasks: null, restartAfterExit: false, ready: false });
  });
});

describe('an agent from start to stop', () => {
  it('is ready after hello, busy with tasks, idle again, and counts finished tasks', () => {
    const world = started('shell-1', {}, false);
    expect(startingCounts(world)).toEqual(new Map([['shell', 1]]));
    expect(markReady(world, 'shell-1', 100)).toBe(true);
    expect(agentView(world, 'shell-1')).toMatchObject({ status: 'idle', ready: true, lastHeartbeatMs: 100, lastActiveMs: 0 });
    expect(startingCounts(world)).toEqual(new Map());
    expect(recordAssigned(world, 'shell-1', 200)).toBe(1);
    expect(recordAssigned(world, 'shell-1', 250)).toBe(2);
    expect(agentView(world, 'shell-1')).toMatchObject({ status: 'busy', statusSinceMs: 200, load: 2, tookTask: true, lastActiveMs: 250 });
    expect(recordFinished(world, 'shell-1', 300)).toBe(1);
    expect(agentView(world, 'shell-1')).toMatchObject({ status: 'busy', load: 1, tasksDone: 1, workedMs: 300 });
    expect(recordFinished(world, 'shell-1', 400)).toBe(0);
    expect(recordFinished(world, 'shell-1', 450)).toBe(0); // a late result: never below 0
    expect(agentView(world, 'shell-1')).toMatchObject({ status: 'idle', statusSinceMs: 400, load: 0, tasksDone: 3, workedMs: 450, lastActiveMs: 450 });
    expect(recordFinished(world, 'gone', 500)).toBeUndefined();
    expect(() => recordAssigned(world, 'gone', 500)).toThrow(UnknownAgentError);
  });

  it('stays stopping whatever its runner or tasks report, and takes no task', () => {
    const world = started('shell-1', {}, false);
    markStopping(world, 'shell-1', 'shutdown', 150);
    markReady(world, 'shell-1', 160); // a hello that raced the stop
    expect(agentView(world, 'shell-1')).toMatchObject({ status: 'stopping', statusSinceMs: 150, ready: true, stopping: 'shutdown' });
    recordAssigned(world, 'shell-1', 170);
    recordFinished(world, 'shell-1', 180);
    expect(agentView(world, 'shell-1')?.status).toBe('stopping');
    expect(agentSlots(world)[0]?.accepting).toBe(false);
    expect(startingCounts(world)).toEqual(new Map());
  });

  it('keeps the stop reason, detail and task failure; a later reason replaces the kind only', () => {
    const world = started();
    markStopping(world, 'shell-1', 'watchdog', 200, { detail: 'stopped by the watchdog: 60 processes over 50 for 2 s', failTasks: 'process limit reached (64)' });
    markStopping(world, 'shell-1', 'operator', 300);
    requestRestartAfterExit(world, 'shell-1');
    expect(agentView(world, 'shell-1')).toMatchObject({
      status: 'stopping',
      statusSinceMs: 200,
      stopping: 'operator',
      stopDetail: 'stopped by the watchdog: 60 processes over 50 for 2 s',
      failTasks: 'process limit reached (64)',
      restartAfterExit: true,
    });
    expect(() => markStopping(world, 'shell-1', 'nap' as never, 400)).toThrow(AgentSpecError);
    expect(() => markStopping(world, 'ghost', 'sleep', 400)).toThrow(UnknownAgentError);
  });

  it('offers no slot once an autodelete agent took its task', () => {
    const world = started('auto-1', { lifecycle: 'autodelete' });
    expect(agentSlots(world)[0]?.accepting).toBe(true);
    recordAssigned(world, 'auto-1', 200);
    expect(agentSlots(world)[0]).toMatchObject({ accepting: false, load: 1 });
  });

  it('ends its template spawn backoff when it says hello', () => {
    const world = started('shell-1', {}, false);
    recordSpawnFailure(world, 'shell', { reason: 'boom', nowMs: 50, restartBackoffMs: 1_000 });
    expect(spawnBackoffOf(world, 'shell')?.failures).toBe(1);
    markReady(world, 'shell-1', 100);
    expect(spawnBackoffOf(world, 'shell')).toBeUndefined();
  });

  it('reports each OOM kill once', () => {
    const world = started();
    expect(takeOomKill(world, 'shell-1', 0)).toBe(false);
    expect(takeOomKill(world, 'shell-1', 1)).toBe(true);
    expect(takeOomKill(world, 'shell-1', 1)).toBe(false);
    expect(takeOomKill(world, 'shell-1', 3)).toBe(true);
    expect(takeOomKill(world, 'ghost', 3)).toBe(false);
  });
});

describe('instance and starting counts', () => {
  it('count live and spawning agents per template, starting ones only until ready or stopping', () => {
    const world = createAgentWorld();
    defineTemplate(world, template('shell'));
    addSpawningAgent(world, { name: 'shell-1', template: 'shell', nowMs: 0 }); // spawning
    for (const name of ['shell-2', 'shell-3', 'shell-4', 'shell-5']) {
      addSpawningAgent(world, { name, template: 'shell', nowMs: 0 });
      addAgent(world, spec(name));
    }
    markReady(world, 'shell-3', 10); // ready
    markStopping(world, 'shell-4', 'shutdown', 10); // stopping before hello
    markReady(world, 'shell-5', 10);
    markStopping(world, 'shell-5', 'sleep', 20); // stopping after hello
    addAgent(world, spec('browser-1', { template: 'browser' })); // started without a spawning entity: not ready
    expect(instanceCounts(world)).toEqual(new Map([['browser', 1], ['shell', 5]]));
    // shell-1 spawning, shell-2 started not ready; browser-1 not ready.
    expect(startingCounts(world)).toEqual(new Map([['browser', 1], ['shell', 2]]));
  });
});

describe('quick reads', () => {
  it('say whether an agent is ready, stopping, or being spawned', () => {
    const world = started('shell-1', {}, false);
    addSpawningAgent(world, { name: 'shell-2', template: 'shell', nowMs: 0 });
    expect([isReady(world, 'shell-1'), isStopping(world, 'shell-1')]).toEqual([false, false]);
    markReady(world, 'shell-1', 1);
    markStopping(world, 'shell-1', 'sleep', 2);
    expect([isReady(world, 'shell-1'), isStopping(world, 'shell-1')]).toEqual([true, true]);
    expect([isReady(world, 'shell-2'), isStopping(world, 'shell-2'), isReady(world, 'ghost'), isStopping(world, 'ghost')]).toEqual([false, false, false, false]);
    expect(spawningAgents(world)).toEqual(['shell-2']);
  });
});

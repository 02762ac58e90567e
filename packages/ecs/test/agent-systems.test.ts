import { describe, expect, it } from 'vitest';
import {
  AgentStatus,
  MAX_SPAWN_BACKOFF_MS,
  MAX_SPAWN_FAILURES,
  UnknownTemplateError,
  addAgent,
  addSpawningAgent,
  agentView,
  createAgentWorld,
  decideSpawnFailure,
  defineTemplate,
  initialWatchdogMemory,
  lifecycleSystem,
  listTemplates,
  markReady,
  markStopping,
  observeLimits,
  recordAssigned,
  recordFinished,
  recordSpawnFailure,
  recordUsage,
  setStatus,
  spawnAllowed,
  spawnGivenUp,
  templateMayStart,
  warmPoolSystem,
  watchdogSystem,
  type AgentSpec,
  type AgentUsage,
  type AgentWorld,
  type LimitRules,
} from '@warren/ecs';
import { agentSpec, templateSpec } from './support.js';

const spec = agentSpec;

const template = templateSpec;

/** Starts agent `name` of `tpl` at `nowMs` (spawned, added, ready unless said otherwise). */
function start(world: AgentWorld, name: string, tpl: string, nowMs: number, over: Partial<AgentSpec> = {}, ready = true): void {
  addSpawningAgent(world, { name, template: tpl, nowMs });
  addAgent(world, spec(name, { template: tpl, nowMs, ...over }));
  setStatus(world, name, AgentStatus.starting, nowMs);
  if (ready) markReady(world, name, nowMs);
}

describe('lifecycleSystem (what the supervisor did to idle agents)', () => {
  it('puts sleep agents to sleep once idle for sleepAfterIdleMs since they were last active', () => {
    const world = createAgentWorld();
    defineTemplate(world, template('shell', { lifecycle: 'sleep', sleepAfterIdleMs: 5_000 }));
    const cases: [name: string, setUp: () => void, expected: boolean][] = [
      ['started-long-ago', () => start(world, 'started-long-ago', 'shell', 0, { lifecycle: 'sleep' }), true],
      ['started-not-ready', () => start(world, 'started-not-ready', 'shell', 0, { lifecycle: 'sleep' }, false), true],
      ['exactly-at-limit', () => start(world, 'exactly-at-limit', 'shell', 5_000, { lifecycle: 'sleep' }), true],
      ['recent', () => start(world, 'recent', 'shell', 5_001, { lifecycle: 'sleep' }), false],
      [
        'finished-recently',
        () => {
          start(world, 'finished-recently', 'shell', 0, { lifecycle: 'sleep' });
          recordAssigned(world, 'finished-recently', 1_000);
          recordFinished(world, 'finished-recently', 6_000);
        },
        false,
      ],
      [
        'holding-a-task',
        () => {
          start(world, 'holding-a-task', 'shell', 0, { lifecycle: 'sleep' });
          recordAssigned(world, 'holding-a-task', 100);
        },
        false,
      ],
      [
        'stopping',
        () => {
          start(world, 'stopping', 'shell', 0, { lifecycle: 'sleep' });
          markStopping(world, 'stopping', 'operator', 100);
        },
        false,
      ],
      ['open-execution', () => start(world, 'open-execution', 'shell', 0, { lifecycle: 'sleep' }), false],
      ['persistent', () => start(world, 'persistent', 'shell', 0), false],
    ];
    for (const [, setUp] of cases) setUp();
    addSpawningAgent(world, { name: 'spawning', template: 'shell', nowMs: 0 });
    const intents = lifecycleSystem(world, { nowMs: 10_000, busyAgents: new Set(['open-execution']) });
    const expected = cases.filter(([, , sleeps]) => sleeps).map(([name]) => ({ agent: name, action: 'sleep' }));
    expect(intents).toEqual(expected.sort((a, b) => (a.agent < b.agent ? -1 : 1)));
  });

  it('deletes autodelete agents once they finished a task, not before, not while busy', () => {
    const world = createAgentWorld();
    defineTemplate(world, template('once', { lifecycle: 'autodelete' }));
    start(world, 'done', 'once', 0, { lifecycle: 'autodelete' });
    recordAssigned(world, 'done', 10);
    recordFinished(world, 'done', 20);
    start(world, 'fresh', 'once', 0, { lifecycle: 'autodelete' });
    start(world, 'running', 'once', 0, { lifecycle: 'autodelete' });
    recordAssigned(world, 'running', 10);
    start(world, 'listed-busy', 'once', 0, { lifecycle: 'autodelete' });
    recordAssigned(world, 'listed-busy', 10);
    recordFinished(world, 'listed-busy', 20);
    expect(lifecycleSystem(world, { nowMs: 1e12, busyAgents: new Set(['listed-busy']) })).toEqual([{ agent: 'done', action: 'delete' }]);
  });

  it('reads sleepAfterIdleMs from the agent template, and says which template is missing', () => {
    const world = createAgentWorld();
    defineTemplate(world, template('quick', { lifecycle: 'sleep', sleepAfterIdleMs: 1_000 }));
    defineTemplate(world, template('slow', { lifecycle: 'sleep', sleepAfterIdleMs: 60_000 }));
    start(world, 'quick-1', 'quick', 0, { lifecycle: 'sleep' });
    start(world, 'slow-1', 'slow', 0, { lifecycle: 'sleep' });
    expect(lifecycleSystem(world, { nowMs: 5_000 })).toEqual([{ agent: 'quick-1', action: 'sleep' }]);
    start(world, 'lost-1', 'lost', 0, { lifecycle: 'sleep' });
    expect(() => lifecycleSystem(world, { nowMs: 5_000 })).toThrow(UnknownTemplateError);
    expect(() => lifecycleSystem(world, { nowMs: 5_000 })).toThrow(/"lost"/);
  });
});

const rules: LimitRules = {
  watchdog: { memoryBytes: 2 ** 30 - 1, pids: 90, cpuCores: 1.5, graceMs: 2_000 },
  resources: { pidsMax: 100 },
};

function usage(fields: Partial<AgentUsage>): AgentUsage {
  return { memoryBytes: 0, pids: 5, cpuMs: 0, pidsRefused: 0, oomKills: 0, ...fields };
}

describe('observeLimits (the watchdog rule)', () => {
  /** Feeds readings at the given times; returns the findings. */
  function run(readings: [atMs: number, usage: AgentUsage][]) {
    let memory = initialWatchdogMemory(0);
    return readings.map(([atMs, u]) => {
      const out = observeLimits(memory, u, atMs, rules);
      memory = out.memory;
      return out.finding;
    });
  }

  it.each([
    {
      title: 'forks refused for the grace: pids, tasks fail',
      readings: [[1_000, usage({ pids: 60, pidsRefused: 10 })], [2_000, usage({ pids: 40, pidsRefused: 30 })], [2_500, usage({ pids: 20, pidsRefused: 30 })], [3_000, usage({ pids: 70, pidsRefused: 45 })]],
      last: { reason: 'pids', detail: 'at the process limit (100) for 2 s (70 tasks, 45 forks refused)', taskFailure: 'process limit reached (100)' },
    },
    {
      title: 'memory over for the grace despite one reading under: watchdog, tasks run again',
      readings: [[1_000, usage({ memoryBytes: 2 ** 30 })], [1_500, usage({})], [3_000, usage({ memoryBytes: 2 ** 30 })]],
      last: { reason: 'watchdog', detail: `memory ${2 ** 30} bytes over ${2 ** 30 - 1} for 2 s`, taskFailure: undefined },
    },
    {
      title: 'CPU cores over the threshold for the grace',
      readings: [[1_000, usage({ cpuMs: 2_000 })], [2_000, usage({ cpuMs: 4_000 })], [3_000, usage({ cpuMs: 6_000 })]],
      last: { reason: 'watchdog', detail: 'CPU 2.00 cores over 1.5 for 2 s', taskFailure: undefined },
    },
    {
      title: 'a whole grace under restarts the timer',
      readings: [[1_000, usage({ memoryBytes: 2 ** 30 })], [2_000, usage({})], [3_000, usage({})], [3_500, usage({ memoryBytes: 2 ** 30 })]],
      last: undefined,
    },
    {
      title: 'a few forks refused once let the agent run',
      readings: [[1_000, usage({ pidsRefused: 3 })], [2_000, usage({ pidsRefused: 3 })], [4_000, usage({ pidsRefused: 3 })], [9_000, usage({ pidsRefused: 3 })]],
      last: undefined,
    },
  ])('$title', ({ readings, last }) => {
    const findings = run(readings as [number, AgentUsage][]);
    expect(findings.slice(0, -1).every((f) => f === undefined)).toBe(true);
    expect(findings.at(-1)).toEqual(last);
  });
});

describe('watchdogSystem', () => {
  it('reads recorded usage per agent, keeps each memory in the world, skips stopping agents', () => {
    const world = createAgentWorld();
    defineTemplate(world, template('shell', { watchdog: { memoryBytes: 1_000, pids: 90, cpuCores: null, graceMs: 2_000 } }));
    start(world, 'hog', 'shell', 0);
    start(world, 'calm', 'shell', 0);
    start(world, 'bomb', 'shell', 0);
    start(world, 'dying', 'shell', 0);
    markStopping(world, 'dying', 'shutdown', 0);
    addSpawningAgent(world, { name: 'spawning', template: 'shell', nowMs: 0 });
    const read = (atMs: number) => {
      recordUsage(world, 'hog', { memoryBytes: 5_000, pids: 3, cpuMs: 0 });
      recordUsage(world, 'calm', { memoryBytes: 10, pids: 3, cpuMs: 0 });
      recordUsage(world, 'bomb', { memoryBytes: 10, pids: 100, cpuMs: 0, pidsRefused: atMs / 100, oomKills: 0 });
      recordUsage(world, 'dying', { memoryBytes: 5_000, pids: 100, cpuMs: 0 });
      return watchdogSystem(world, { nowMs: atMs });
    };
    expect(read(1_000)).toEqual([]);
    expect(read(2_000)).toEqual([]);
    expect(read(3_000)).toEqual([
      {
        agent: 'bomb',
        reason: 'pids',
        detail: 'at the process limit (100) for 2 s (100 tasks, 30 forks refused)',
        taskFailure: 'process limit reached (100)',
        usage: { memoryBytes: 10, pids: 100, cpuMs: 0, pidsRefused: 30, oomKills: 0 },
      },
      { agent: 'hog', reason: 'watchdog', detail: 'memory 5000 bytes over 1000 for 2 s', taskFailure: undefined, usage: { memoryBytes: 5_000, pids: 3, cpuMs: 0, pidsRefused: 0, oomKills: 0 } },
    ]);
    expect(agentView(world, 'calm')?.status).toBe('idle');
  });

  it('judges only the agents named when given: the others keep their memory for their own next reading', () => {
    const world = createAgentWorld();
    defineTemplate(world, template('shell', { watchdog: { memoryBytes: 1_000, pids: 90, cpuCores: null, graceMs: 2_000 } }));
    start(world, 'hog', 'shell', 0);
    start(world, 'idle', 'shell', 0);
    recordUsage(world, 'hog', { memoryBytes: 5_000, pids: 3, cpuMs: 0 });
    recordUsage(world, 'idle', { memoryBytes: 5_000, pids: 3, cpuMs: 0 });
    expect(watchdogSystem(world, { nowMs: 1_000, agents: ['hog'] })).toEqual([]);
    expect(watchdogSystem(world, { nowMs: 3_000, agents: ['hog'] }).map((i) => i.agent)).toEqual(['hog']);
    // 'idle' was never judged: its first reading starts its grace.
    expect(watchdogSystem(world, { nowMs: 3_000, agents: ['idle'] })).toEqual([]);
    expect(watchdogSystem(world, { nowMs: 5_000, agents: ['idle'] }).map((i) => i.agent)).toEqual(['idle']);
  });

  it('names an agent whose template is not defined', () => {
    const world = createAgentWorld();
    start(world, 'orphan-1', 'orphan', 0);
    expect(() => watchdogSystem(world, { nowMs: 1 })).toThrow(/no template named "orphan"/);
  });
});

describe('warmPoolSystem (what fillWarmPools started)', () => {
  it('starts agents while a pool is short and the template is under maxInstances and not backing off', () => {
    const world = createAgentWorld();
    defineTemplate(world, template('pool', { warmPool: 3, maxInstances: 5 }));
    defineTemplate(world, template('none', { warmPool: 0 }));
    defineTemplate(world, template('capped', { warmPool: 3, maxInstances: 2 }));
    defineTemplate(world, template('failing', { warmPool: 2 }));
    defineTemplate(world, template('once', { warmPool: 2, lifecycle: 'autodelete' }));
    addSpawningAgent(world, { name: 'pool-1', template: 'pool', nowMs: 0 }); // starting: warm
    start(world, 'pool-2', 'pool', 0); // ready, idle: warm
    start(world, 'pool-3', 'pool', 0);
    recordAssigned(world, 'pool-3', 1); // busy: not warm, but an instance
    start(world, 'capped-1', 'capped', 0);
    recordAssigned(world, 'capped-1', 1);
    recordSpawnFailure(world, 'failing', { reason: 'no bwrap', nowMs: 0, restartBackoffMs: 1_000 });
    start(world, 'once-1', 'once', 0, { lifecycle: 'autodelete' });
    recordAssigned(world, 'once-1', 1);
    recordFinished(world, 'once-1', 2); // took its task: not warm
    start(world, 'once-2', 'once', 0, { lifecycle: 'autodelete' }); // warm
    expect(warmPoolSystem(world, { nowMs: 500 })).toEqual([
      { template: 'pool', starts: 1 },
      { template: 'capped', starts: 1 },
      { template: 'once', starts: 1 },
    ]);
    expect(warmPoolSystem(world, { nowMs: 1_000 })).toContainEqual({ template: 'failing', starts: 2 });
  });

  it('does not count stopping agents as warm', () => {
    const world = createAgentWorld();
    defineTemplate(world, template('pool', { warmPool: 1, maxInstances: 3 }));
    start(world, 'pool-1', 'pool', 0);
    expect(warmPoolSystem(world, { nowMs: 1 })).toEqual([]);
    markStopping(world, 'pool-1', 'operator', 1);
    expect(warmPoolSystem(world, { nowMs: 1 })).toEqual([{ template: 'pool', starts: 1 }]);
  });
});

describe('spawn backoff', () => {
  it.each([
    { title: 'first failure waits restartBackoffMs', previous: undefined, nowMs: 1_000, expected: { failures: 1, nextAttemptMs: 2_000, delayMs: 1_000, sameAttempt: false, givenUp: false } },
    { title: 'a failure after the wait doubles it', previous: { failures: 1, reason: 'a', nextAttemptMs: 2_000 }, nowMs: 2_500, expected: { failures: 2, nextAttemptMs: 4_500, delayMs: 2_000, sameAttempt: false, givenUp: false } },
    { title: 'a failure during the wait is the same attempt', previous: { failures: 2, reason: 'a', nextAttemptMs: 4_500 }, nowMs: 3_000, expected: { failures: 2, nextAttemptMs: 4_500, delayMs: 2_000, sameAttempt: true, givenUp: false } },
    { title: 'the wait is at most 60 s', previous: { failures: 3, reason: 'a', nextAttemptMs: 0 }, nowMs: 10_000, restartBackoffMs: 30_000, expected: { failures: 4, nextAttemptMs: 10_000 + MAX_SPAWN_BACKOFF_MS, delayMs: 60_000, sameAttempt: false, givenUp: false } },
    { title: 'the fifth failed attempt gives up', previous: { failures: 4, reason: 'a', nextAttemptMs: 0 }, nowMs: 10_000, expected: { failures: 5, nextAttemptMs: 26_000, delayMs: 16_000, sameAttempt: false, givenUp: true } },
  ])('$title', ({ previous, nowMs, restartBackoffMs, expected }) => {
    const decision = decideSpawnFailure(previous, { reason: 'b', nowMs, restartBackoffMs: restartBackoffMs ?? 1_000 });
    const { failures, nextAttemptMs, delayMs, sameAttempt, givenUp } = { ...decision.backoff, ...decision };
    expect({ failures, nextAttemptMs, delayMs, sameAttempt, givenUp }).toEqual(expected);
    expect(decision.backoff.reason).toBe('b');
  });

  it('allows a start with no backoff or once the wait is over, never after giving up', () => {
    expect(spawnAllowed(undefined, 0)).toBe(true);
    expect(spawnAllowed({ failures: 2, reason: '', nextAttemptMs: 5_000 }, 4_999)).toBe(false);
    expect(spawnAllowed({ failures: 2, reason: '', nextAttemptMs: 5_000 }, 5_000)).toBe(true);
    expect(spawnAllowed({ failures: MAX_SPAWN_FAILURES, reason: '', nextAttemptMs: 0 }, 1e12)).toBe(false);
    expect(spawnGivenUp({ failures: MAX_SPAWN_FAILURES, reason: '', nextAttemptMs: 0 })).toBe(true);
    expect(spawnGivenUp(undefined)).toBe(false);
  });

  it('is kept per template entity in the world', () => {
    const world = createAgentWorld();
    defineTemplate(world, template('shell'));
    defineTemplate(world, template('web'));
    for (let i = 0; i < MAX_SPAWN_FAILURES; i++) recordSpawnFailure(world, 'shell', { reason: `try ${i}`, nowMs: i * 100_000, restartBackoffMs: 1_000 });
    expect(templateMayStart(world, 'shell', 1e12)).toBe(false);
    expect(templateMayStart(world, 'web', 0)).toBe(true);
    defineTemplate(world, template('shell', { maxInstances: 9 })); // a redefinition keeps the backoff
    expect(listTemplates(world).map((t) => [t.name, t.maxInstances, t.spawnBackoff?.failures ?? 0, t.givenUp])).toEqual([
      ['shell', 9, 5, true],
      ['web', 4, 0, false],
    ]);
    expect(() => recordSpawnFailure(world, 'nope', { reason: '', nowMs: 0, restartBackoffMs: 1 })).toThrow(UnknownTemplateError);
  });
});

import { processLimitText } from '@warren/ecs';
import { describeProcessLimit, type AgentUsage } from '@warren/runtime';
import { describe, expect, it } from 'vitest';
import { AgentLimitWatch, describeAgentExit, GraceTimer, limitFailureOf, taskFailureOf } from '../src/limit-watch.js';
import { parseTemplate } from '../src/templates.js';

const template = parseTemplate(
  `name: shell
description: Runs commands.
capabilities: [shell]
runtime:
  kind: shell
resources:
  memory: 1GiB
  pids: 100
watchdog:
  grace: 2s
`,
  'shell.yaml',
);

function usage(fields: Partial<AgentUsage>): AgentUsage {
  return { memoryBytes: 0, pids: 5, cpuMs: 0, pidsRefused: 0, oomKills: 0, ...fields };
}

describe('GraceTimer', () => {
  it('counts from the first reading over and is not restarted by a short dip', () => {
    const timer = new GraceTimer();
    expect(timer.observe(true, 1_000, 2_000)).toBe(0);
    expect(timer.observe(false, 1_500, 2_000)).toBeUndefined();
    expect(timer.observe(true, 2_000, 2_000)).toBe(1_000);
    expect(timer.observe(true, 3_000, 2_000)).toBe(2_000);
  });

  it('restarts after a whole grace under', () => {
    const timer = new GraceTimer();
    timer.observe(true, 1_000, 2_000);
    timer.observe(false, 2_000, 2_000);
    timer.observe(false, 3_000, 2_000);
    expect(timer.observe(true, 3_500, 2_000)).toBe(0);
  });
});

describe('AgentLimitWatch', () => {
  it('stops an agent whose forks keep being refused for the grace, with reason pids (#44)', () => {
    const watch = new AgentLimitWatch(0);
    expect(watch.observe(usage({ pids: 60, pidsRefused: 10 }), 1_000, template)).toBeUndefined();
    expect(watch.observe(usage({ pids: 40, pidsRefused: 30 }), 2_000, template)).toBeUndefined();
    // A reading with no new refusal and few processes does not restart the grace.
    expect(watch.observe(usage({ pids: 20, pidsRefused: 30 }), 2_500, template)).toBeUndefined();
    expect(watch.observe(usage({ pids: 70, pidsRefused: 45 }), 3_000, template)).toEqual({
      reason: 'pids',
      detail: 'at the process limit (100) for 2 s (70 tasks, 45 forks refused)',
      taskFailure: 'process limit reached (100)',
    });
  });

  it('treats a count oscillating around the pids threshold as at the limit (the case of the attack pass)', () => {
    const watch = new AgentLimitWatch(0);
    const counts = [95, 60, 92, 99, 70, 91, 85, 96];
    const findings = counts.map((pids, i) => watch.observe(usage({ pids }), 500 * (i + 1), template));
    expect(findings.slice(0, 4).every((f) => f === undefined)).toBe(true);
    expect(findings.find((f) => f !== undefined)?.reason).toBe('pids');
  });

  it('lets an agent that refused a few forks once run on', () => {
    const watch = new AgentLimitWatch(0);
    expect(watch.observe(usage({ pidsRefused: 3 }), 1_000, template)).toBeUndefined();
    for (let t = 1_500; t <= 10_000; t += 500) expect(watch.observe(usage({ pidsRefused: 3 }), t, template)).toBeUndefined();
  });

  it('stops an agent over its memory threshold for the grace with reason watchdog, its tasks run again', () => {
    const watch = new AgentLimitWatch(0);
    const over = usage({ memoryBytes: 2 ** 30 });
    expect(watch.observe(over, 1_000, template)).toBeUndefined();
    expect(watch.observe(usage({}), 1_500, template)).toBeUndefined();
    expect(watch.observe(over, 3_000, template)).toMatchObject({ reason: 'watchdog', taskFailure: undefined });
  });

  it('reports each OOM kill once (#46)', () => {
    const watch = new AgentLimitWatch(0);
    expect(watch.newOomKill(usage({ oomKills: 0 }))).toBe(false);
    expect(watch.newOomKill(usage({ oomKills: 1 }))).toBe(true);
    expect(watch.newOomKill(usage({ oomKills: 1 }))).toBe(false);
  });
});

describe('agent exits at a limit', () => {
  it('name the limit, and fail the open tasks instead of running them again', () => {
    expect(describeAgentExit({ kind: 'oom' }, template)).toBe('out of memory (limit 1 GiB)');
    expect(describeAgentExit({ kind: 'pids' }, template)).toBe('process limit reached (100)');
    expect(limitFailureOf({ kind: 'oom' }, template)).toBe('out of memory (limit 1 GiB)');
    expect(limitFailureOf({ kind: 'signaled', signal: 'SIGKILL' }, template)).toBeUndefined();
  });
});

describe('the watchdog rule of @warren/ecs', () => {
  it('words the process limit as the agent runtime does', () => {
    for (const pidsMax of [1, 64, 100, 4_096]) expect(processLimitText(pidsMax)).toBe(describeProcessLimit(pidsMax));
  });
});

describe('taskFailureOf', () => {
  it.each([
    { title: 'no agent: nothing blamed', agent: undefined, outcome: 'failed', settled: false, expected: undefined },
    { title: 'a settled outcome: nothing blamed, even after an OOM kill', agent: { failTasks: undefined, oomKilled: true }, outcome: 'succeeded', settled: true, expected: undefined },
    { title: 'stopped at its process limit: its failTasks', agent: { failTasks: 'process limit reached (100)', oomKilled: false }, outcome: 'cancelled', settled: false, expected: 'process limit reached (100)' },
    { title: 'an OOM kill on a failed task: out of memory', agent: { failTasks: undefined, oomKilled: true }, outcome: 'failed', settled: false, expected: 'out of memory (limit 1 GiB)' },
    { title: 'an OOM kill on a timed-out task: not blamed', agent: { failTasks: undefined, oomKilled: true }, outcome: 'timed_out', settled: false, expected: undefined },
    { title: 'a plain failure: its own output', agent: { failTasks: undefined, oomKilled: false }, outcome: 'failed', settled: false, expected: undefined },
  ])('$title', ({ agent, outcome, settled, expected }) => {
    expect(taskFailureOf(agent && { ...agent, template }, outcome, settled)).toBe(expected);
  });
});

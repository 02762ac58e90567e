import { describe, expect, it } from 'vitest';
import type { AgentInstance, AgentUsage } from '@warren/runtime';
import { usageReadEveryMs } from '../src/agents/health.js';
import { TickReadings } from '../src/agents/tick-readings.js';

describe('usageReadEveryMs', () => {
  it.each([
    ['a busy agent with the default 10 s grace is read every second', true, 10_000, 1_000],
    ['a busy agent with a 2 s grace is read every quarter of it', true, 2_000, 500],
    ['an idle agent is read every 15 s', false, 10_000, 15_000],
    ['an idle agent with a short grace is read every 15 s too', false, 2_000, 15_000],
  ] as const)('%s', (_name, busy, graceMs, expected) => {
    expect(usageReadEveryMs(busy, graceMs)).toBe(expected);
  });
});

describe('TickReadings', () => {
  const usage = (memoryBytes: number): AgentUsage => ({ memoryBytes, pids: 1, cpuMs: 0, pidsRefused: 0, oomKills: 0 });
  const instance = {} as AgentInstance;
  const other = {} as AgentInstance;

  it('gives a result’s reading to the next reader of the same instance in the same tick, once', () => {
    const readings = new TickReadings();
    readings.put('shell-1', instance, 1_000, usage(1));
    expect(readings.take('shell-1', instance, 1_000)).toEqual(usage(1));
    expect(readings.take('shell-1', instance, 1_000)).toBeUndefined();
  });

  it('gives nothing for another tick or another instance of the agent, and forgets what the tick left', () => {
    const readings = new TickReadings();
    readings.put('shell-1', instance, 1_000, usage(1));
    expect(readings.take('shell-1', instance, 1_001)).toBeUndefined();
    readings.put('shell-1', instance, 1_000, usage(1));
    expect(readings.take('shell-1', other, 1_000)).toBeUndefined();
    readings.put('shell-2', instance, 1_000, usage(2));
    readings.clear();
    expect([readings.size, readings.take('shell-2', instance, 1_000)]).toEqual([0, undefined]);
  });
});

import { describe, expect, it } from 'vitest';
import { usageReadEveryMs } from '../src/agents/health.js';

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

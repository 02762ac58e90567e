import { describe, expect, it } from 'vitest';
import { silentLogger } from '@warren/core';
import { CompactionPolicy, compactHeap, compactionPolicyFromEnv, DEFAULT_COMPACTION_POLICY, MemoryWatch, readHeap, type HeapReading, type MemorySample } from '../src/memory.js';

const MIB = 2 ** 20;
const heap = (committedMiB: number, usedMiB = committedMiB / 2): HeapReading => ({ committedBytes: committedMiB * MIB, usedBytes: usedMiB * MIB });
const sample = (nowMs: number, committedMiB: number, busy: { starting?: number; loop?: number } = {}): MemorySample => ({
  nowMs,
  starting: busy.starting ?? 0,
  loopUtilization: busy.loop ?? 0.05,
  heap: heap(committedMiB),
});

describe('CompactionPolicy', () => {
  it('compacts once a burst that grew the heap has been quiet for quietMs, and not before', () => {
    const policy = new CompactionPolicy();
    expect(policy.observe(sample(0, 30))).toBe(false);
    // A start burst: agents starting, the heap growing.
    expect(policy.observe(sample(500, 80, { starting: 400 }))).toBe(false);
    expect(policy.observe(sample(1_000, 130, { starting: 1 }))).toBe(false);
    // Nothing starts any more: quiet from this sample on, 500 ms later not yet, 1 s later yes.
    expect(policy.observe(sample(1_500, 130))).toBe(false);
    expect(policy.observe(sample(2_000, 130))).toBe(false);
    expect(policy.observe(sample(2_500, 130))).toBe(true);
  });

  it('does not count a busy event loop as quiet, nor agents still starting', () => {
    const policy = new CompactionPolicy();
    policy.observe(sample(0, 30));
    for (let t = 500; t <= 5_000; t += 500) expect(policy.observe(sample(t, 130, { loop: 0.9 }))).toBe(false);
    for (let t = 5_500; t <= 10_000; t += 500) expect(policy.observe(sample(t, 130, { starting: 1 }))).toBe(false);
    // One busy sample restarts the wait.
    expect(policy.observe(sample(10_500, 130))).toBe(false);
    expect(policy.observe(sample(11_000, 130, { loop: DEFAULT_COMPACTION_POLICY.maxLoopUtilization + 0.01 }))).toBe(false);
    expect(policy.observe(sample(11_500, 130))).toBe(false);
    expect(policy.observe(sample(12_000, 130))).toBe(false);
    expect(policy.observe(sample(12_500, 130))).toBe(true);
  });

  it('leaves a heap alone that grew less than growthBytes, however quiet', () => {
    const policy = new CompactionPolicy();
    policy.observe(sample(0, 30));
    for (let t = 500; t <= 60_000; t += 500) expect(policy.observe(sample(t, 30 + 31))).toBe(false);
    expect(policy.observe(sample(60_500, 30 + 32))).toBe(true);
  });

  it('counts growth from what the last compaction left, and waits minIntervalMs between two', () => {
    const policy = new CompactionPolicy();
    policy.observe(sample(0, 30));
    policy.observe(sample(500, 130));
    expect(policy.observe(sample(1_500, 130))).toBe(true);
    policy.compacted(heap(60), 1_200);
    expect(policy.baseline).toBe(60 * MIB);
    // 100 MiB is 40 above what the compaction left: worth one, but only 30 s after the last.
    policy.observe(sample(2_000, 100));
    expect(policy.observe(sample(30_000, 100))).toBe(false);
    expect(policy.observe(sample(31_200, 100))).toBe(true);
    // 80 MiB is only 20 above it: nothing, however long.
    policy.compacted(heap(60), 32_000);
    for (let t = 32_500; t <= 120_000; t += 500) expect(policy.observe(sample(t, 80))).toBe(false);
  });

  it('follows the heap down when V8 gives memory back by itself', () => {
    const policy = new CompactionPolicy();
    policy.observe(sample(0, 100, { starting: 5 }));
    policy.observe(sample(500, 40, { starting: 5 }));
    expect(policy.baseline).toBe(40 * MIB);
    expect(policy.observe(sample(1_000, 71))).toBe(false);
    expect(policy.observe(sample(2_000, 71))).toBe(false);
    expect(policy.observe(sample(2_500, 72))).toBe(true);
  });
});

describe('MemoryWatch', () => {
  /** A watch over a fake process: the test sets its clock, heap, load and starting agents. */
  function fakeProcess() {
    const state = { nowMs: 0, committedMiB: 30, loop: 0.05, starting: 0, compactions: 0 };
    const watch = new MemoryWatch({
      starting: () => state.starting,
      log: silentLogger,
      now: () => state.nowMs,
      readHeap: () => heap(state.committedMiB),
      loopUtilization: () => state.loop,
      compact: async () => {
        state.compactions++;
        state.committedMiB = 50;
        state.nowMs += 300;
      },
    });
    return { state, watch };
  }

  it('compacts once after a settled burst, and again only after another', async () => {
    const { state, watch } = fakeProcess();
    await watch.check();
    state.committedMiB = 140;
    state.starting = 1_000;
    for (; state.nowMs < 10_000; state.nowMs += 500) expect(await watch.check()).toBe(false);
    state.starting = 0;
    const results: boolean[] = [];
    for (let i = 0; i < 4; i++, state.nowMs += 500) results.push(await watch.check());
    expect(results).toEqual([false, false, true, false]);
    expect([state.compactions, watch.compactions]).toEqual([1, 1]);
    // At rest for a long time: nothing more.
    for (let i = 0; i < 200; i++, state.nowMs += 500) await watch.check();
    expect(state.compactions).toBe(1);
    // A second burst.
    state.committedMiB = 120;
    state.starting = 10;
    await watch.check();
    state.starting = 0;
    for (let i = 0; i < 4; i++, state.nowMs += 500) await watch.check();
    expect(state.compactions).toBe(2);
  });

  it('stops after a failed compaction, with a warning', async () => {
    const warnings: string[] = [];
    let calls = 0;
    let nowMs = 0;
    let committedMiB = 30;
    const watch = new MemoryWatch({
      starting: () => 0,
      log: { ...silentLogger, warn: (_fields: unknown, message?: string) => void warnings.push(message ?? '') },
      now: () => nowMs,
      readHeap: () => heap(committedMiB),
      loopUtilization: () => 0,
      compact: () => {
        calls++;
        return Promise.reject(new Error('no inspector'));
      },
    });
    await watch.check();
    committedMiB = 200;
    for (; nowMs < 120_000; nowMs += 500) await watch.check();
    expect(calls).toBe(1);
    expect(warnings).toEqual([expect.stringContaining('cannot compact the heap')]);
  });
});

describe('compactHeap', () => {
  it('gives back the heap a burst of short-lived objects grew, keeping the live ones', async () => {
    // A burst: 2 million small objects, one in twenty kept, spread over all the pages it filled.
    const kept: { i: number; s: string }[] = [];
    const burst = (): number => {
      let made = 0;
      for (let i = 0; i < 2_000_000; i++) {
        const o = { i, s: `x${i}` };
        made += o.s.length;
        if (i % 20 === 0) kept.push(o);
      }
      return made;
    };
    expect(burst()).toBeGreaterThan(0);
    const before = readHeap();
    await compactHeap();
    const after = readHeap();
    expect(before.committedBytes - after.committedBytes).toBeGreaterThan(32 * MIB);
    expect(after.usedBytes).toBeLessThan(before.usedBytes);
    expect(kept.length).toBe(100_000);
    expect(kept[99_999]).toEqual({ i: 1_999_980, s: 'x1999980' });
  });
});

describe('compactionPolicyFromEnv', () => {
  it('is off unless asked for; on gives the defaults, a number the growth in MiB; anything else is refused', () => {
    expect(compactionPolicyFromEnv({})).toBeNull();
    expect(compactionPolicyFromEnv({ WARREN_HEAP_COMPACTION: ' ' })).toBeNull();
    expect(compactionPolicyFromEnv({ WARREN_HEAP_COMPACTION: 'off' })).toBeNull();
    expect(compactionPolicyFromEnv({ WARREN_HEAP_COMPACTION: 'on' })).toEqual(DEFAULT_COMPACTION_POLICY);
    expect(compactionPolicyFromEnv({ WARREN_HEAP_COMPACTION: '64' })).toEqual({ ...DEFAULT_COMPACTION_POLICY, growthBytes: 64 * 2 ** 20 });
    expect(() => compactionPolicyFromEnv({ WARREN_HEAP_COMPACTION: 'yes' })).toThrow(/WARREN_HEAP_COMPACTION must be 'off', 'on' or a growth in MiB above 0, not 'yes'/);
    expect(() => compactionPolicyFromEnv({ WARREN_HEAP_COMPACTION: '-1' })).toThrow(/not '-1'/);
  });
});

import { describe, expect, it } from 'vitest';
import type { Logger } from '@warren/core';
import { AgentSpecError, createTickLoop } from '@warren/ecs';

/** A promise with its resolver, to hold a tick open or wait for one. */
function latch<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const HOUR_MS = 3_600_000;

function memoryLogger(): Logger & { lines: { level: string; obj: object; msg?: string }[] } {
  const lines: { level: string; obj: object; msg?: string }[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj, msg });
    };
  const logger = { lines, trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return logger;
}

describe('createTickLoop', () => {
  it('never runs two ticks at once, however often ticks are requested', async () => {
    let active = 0;
    let maxActive = 0;
    let count = 0;
    const done = latch();
    const loop = createTickLoop({
      intervalMs: 1,
      tick: async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        loop.requestTick();
        // Stay running across timer turns, so requested ticks come due while this one runs.
        await new Promise((resolve) => setTimeout(resolve, count % 2 === 0 ? 3 : 0));
        await turn();
        loop.requestTick();
        active--;
        if (++count === 40) done.open();
      },
    });
    const spam = setInterval(() => loop.requestTick(), 0);
    try {
      await done.promise;
    } finally {
      clearInterval(spam);
      await loop.stop();
    }
    expect(maxActive).toBe(1);
    expect(active).toBe(0);
    expect(loop.ticks).toBeGreaterThanOrEqual(40);
  });

  it('runs periodically on its own and passes the clock time', async () => {
    const seen: number[] = [];
    const done = latch();
    let now = 1_000;
    const loop = createTickLoop({
      intervalMs: 2,
      clock: () => (now += 10),
      tick: (nowMs) => {
        seen.push(nowMs);
        if (seen.length === 3) done.open();
      },
    });
    await done.promise;
    await loop.stop();
    expect(seen.slice(0, 3)).toEqual([1_010, 1_020, 1_030]);
  });

  it('coalesces requests made before a tick starts into one tick', async () => {
    const starts: boolean[] = [];
    let requestedAgain = false;
    const second = latch();
    const first = latch();
    const loop = createTickLoop({
      intervalMs: HOUR_MS,
      tick: () => {
        starts.push(requestedAgain);
        if (starts.length === 1) first.open();
        if (starts.length === 2) second.open();
      },
    });
    for (let i = 0; i < 5; i++) loop.requestTick();
    await first.promise;
    requestedAgain = true;
    loop.requestTick();
    await second.promise;
    await loop.stop();
    // A second tick caused by the first five requests would have started with requestedAgain false.
    expect(starts).toEqual([false, true]);
  });

  it('runs one more tick right after the current one when asked during it', async () => {
    const hold = latch();
    const started = latch();
    const again = latch();
    let count = 0;
    const loop = createTickLoop({
      intervalMs: HOUR_MS,
      tick: async () => {
        count++;
        if (count === 1) {
          started.open();
          await hold.promise;
        } else {
          again.open();
        }
      },
    });
    loop.requestTick();
    await started.promise;
    loop.requestTick();
    loop.requestTick();
    loop.requestTick();
    expect(count).toBe(1);
    hold.open();
    await again.promise;
    // Give a wrongly scheduled third tick every chance to start before stopping.
    await new Promise((resolve) => setTimeout(resolve, 20));
    await loop.stop();
    expect(count).toBe(2);
  });

  it('stop waits for the running tick, is idempotent, and ends the ticking', async () => {
    const order: string[] = [];
    const hold = latch();
    const started = latch();
    const loop = createTickLoop({
      intervalMs: HOUR_MS,
      tick: async () => {
        order.push('tick-start');
        started.open();
        await hold.promise;
        order.push('tick-end');
      },
    });
    loop.requestTick();
    await started.promise;
    const stopping = loop.stop();
    const recorded = stopping.then(() => order.push('stopped'));
    for (let i = 0; i < 5; i++) await turn();
    expect(order).toEqual(['tick-start']);
    expect(loop.stopped).toBe(true);
    expect(loop.close()).toBe(stopping);
    hold.open();
    await recorded;
    expect(order).toEqual(['tick-start', 'tick-end', 'stopped']);
    loop.requestTick();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(order).toEqual(['tick-start', 'tick-end', 'stopped']);
    await loop[Symbol.asyncDispose]();
    expect(loop.ticks).toBe(1);
  });

  it('logs a failing tick, hands the error to onError and keeps going', async () => {
    const logger = memoryLogger();
    const errors: unknown[] = [];
    const recovered = latch();
    let count = 0;
    const loop = createTickLoop({
      intervalMs: HOUR_MS,
      logger,
      onError: (error) => {
        errors.push(error);
        loop.requestTick();
      },
      tick: async () => {
        count++;
        if (count === 1) throw new Error('board unreadable');
        recovered.open();
      },
    });
    loop.requestTick();
    await recovered.promise;
    await loop.stop();
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('board unreadable');
    expect(logger.lines.filter((l) => l.level === 'error')).toEqual([{ level: 'error', obj: { err: errors[0] }, msg: 'tick failed' }]);
    expect(loop.ticks).toBe(2);
  });

  it('rejects a non-positive interval', () => {
    expect(() => createTickLoop({ intervalMs: 0, tick: () => {} })).toThrow(AgentSpecError);
    expect(() => createTickLoop({ intervalMs: Number.NaN, tick: () => {} })).toThrow(/options\.intervalMs/);
  });
});

import { performance } from 'node:perf_hooks';
import { silentLogger, type Logger } from '@warren/core';
import { AgentSpecError } from './errors.js';

/** Options of `createTickLoop`. */
export interface TickLoopOptions {
  /** Time from the end of one tick to the start of the next, ms (positive). */
  intervalMs: number;
  /**
   * One tick, given the time it starts (ms epoch from `clock`). Never runs twice at once: a tick
   * that takes longer than `intervalMs` delays the next. It must not await `stop()` of its own loop.
   */
  tick: (nowMs: number) => void | Promise<void>;
  /** Where tick failures (error) and overlong ticks (warn) are logged. Default: silent. */
  logger?: Logger;
  /** Called with whatever a tick threw or rejected with; the loop keeps running. */
  onError?: (error: unknown) => void;
  /** The clock passed to `tick`, ms since the epoch. Default `Date.now`. */
  clock?: () => number;
}

/** A running tick loop. */
export interface TickLoop {
  /**
   * Asks for a tick soon: at once (next timer turn) if none is running, else right after the running
   * one. Any number of calls before that tick starts coalesce into one. No-op once stopped.
   */
  requestTick(): void;
  /** Ticks completed so far (including ones that threw). */
  readonly ticks: number;
  /** Whether `stop()` has been called. */
  readonly stopped: boolean;
  /**
   * Stops scheduling ticks and resolves once the running tick, if any, has finished. Idempotent:
   * every call returns the same promise.
   */
  stop(): Promise<void>;
  /** Same as `stop()`. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Runs `tick` every `intervalMs` (measured from the end of one tick to the start of the next), the
 * first one `intervalMs` after creation, with `requestTick()` to run one sooner. Ticks never
 * overlap. A tick that throws is logged and passed to `onError`, and the loop goes on.
 *
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `intervalMs` is not a positive finite number.
 */
export function createTickLoop(options: TickLoopOptions): TickLoop {
  const { intervalMs, tick, onError } = options;
  if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new AgentSpecError('options.intervalMs', intervalMs, undefined, 'expected a positive number of ms');
  }
  if (typeof tick !== 'function') throw new AgentSpecError('options.tick', tick, undefined, 'expected a function');
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? Date.now;

  let timer: NodeJS.Timeout | undefined;
  let timerDueAt = Infinity;
  let running: Promise<void> | undefined;
  let again = false;
  let stopping: Promise<void> | undefined;
  let ticks = 0;

  const schedule = (delayMs: number): void => {
    if (stopping) return;
    const dueAt = performance.now() + delayMs;
    if (timer !== undefined && timerDueAt <= dueAt) return;
    clearTimeout(timer);
    timerDueAt = dueAt;
    timer = setTimeout(fire, delayMs);
  };

  const fire = (): void => {
    timer = undefined;
    timerDueAt = Infinity;
    if (stopping) return;
    if (running) {
      again = true;
      return;
    }
    running = run();
  };

  const run = async (): Promise<void> => {
    const startedAt = performance.now();
    try {
      await tick(clock());
    } catch (error) {
      logger.error({ err: error }, 'tick failed');
      try {
        onError?.(error);
      } catch (hookError) {
        logger.error({ err: hookError }, 'tick onError handler threw');
      }
    } finally {
      ticks++;
      running = undefined;
    }
    const tookMs = performance.now() - startedAt;
    if (tookMs > intervalMs) logger.warn({ tookMs: Math.round(tookMs), intervalMs }, 'tick took longer than its interval');
    if (again) {
      again = false;
      schedule(0);
    } else {
      schedule(intervalMs);
    }
  };

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      clearTimeout(timer);
      timer = undefined;
      again = false;
      while (running) await running;
    })();
    return stopping;
  };

  schedule(intervalMs);

  return {
    requestTick(): void {
      if (stopping) return;
      if (running) again = true;
      else schedule(0);
    },
    get ticks() {
      return ticks;
    },
    get stopped() {
      return stopping !== undefined;
    },
    stop,
    close: stop,
    [Symbol.asyncDispose]: stop,
  };
}

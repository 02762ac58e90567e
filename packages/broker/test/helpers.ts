import type { Logger } from '@warren/core';

/**
 * A queue that tests await on: `push` from callbacks, `next` waits for the next item. The
 * timeout only turns a hang into a failure; it asserts nothing about speed.
 */
export class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((item: T) => void)[] = [];

  push(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  }

  get size(): number {
    return this.items.length;
  }

  next(what = 'an item', guardMs = 20_000): Promise<T> {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`timed out waiting for ${what}`));
      }, guardMs);
      const done = (value: T): void => {
        clearTimeout(timer);
        resolve(value);
      };
      this.waiters.push(done);
    });
  }
}

/** A logger that keeps every line, for assertions on what was logged. */
export function recordingLogger(): Logger & { lines: { level: string; msg: string | undefined; obj: object }[] } {
  const lines: { level: string; msg: string | undefined; obj: object }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => {
    lines.push({ level, msg, obj });
  };
  const logger = {
    lines,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => logger,
  };
  return logger;
}

/**
 * Re-evaluates `read` until it returns `expected` (deep-equal via JSON) — for server state that
 * converges after asynchronous acks. Fails after `guardMs` with the last value seen.
 */
export async function until<T>(read: () => Promise<T>, expected: T, what: string, guardMs = 20_000): Promise<void> {
  const deadline = Date.now() + guardMs;
  let last: T;
  for (;;) {
    last = await read();
    if (JSON.stringify(last) === JSON.stringify(expected)) return;
    if (Date.now() > deadline) throw new Error(`${what}: expected ${JSON.stringify(expected)}, last saw ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

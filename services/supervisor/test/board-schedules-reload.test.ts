/** How often the tick looks at the board's schedules file (a `stat` a tick would cost every tick). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase } from '@warren/store';
import { makeTempDir } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import type { BoardMirror } from '../src/board/mirror.js';
import type { SupervisorContext } from '../src/context.js';
import { BoardSchedules, RELOAD_CHECK_MS } from '../src/schedules/board-schedules.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function schedulesFile(names: string[]): string {
  return ['schedules:', ...names.flatMap((name) => [`  - name: ${name}`, "    cron: '0 0 1 1 *'", '    task: { title: Yearly, capabilities: [shell], command: "true" }']), ''].join('\n');
}

describe('BoardSchedules', () => {
  it(`looks at the schedules file at the first tick, then at most every ${RELOAD_CHECK_MS} ms`, async () => {
    const dir = await makeTempDir('warren-schedules-');
    cleanups.push(() => dir.close());
    const db = openDatabase(':memory:');
    cleanups.push(() => db.close());
    const loaded: unknown[] = [];
    const log = { info: (fields: { schedules?: unknown }, msg: string) => msg === 'schedules loaded' && loaded.push(fields.schedules), warn: () => undefined, error: () => undefined, debug: () => undefined };
    const ctx = { config: { boardDir: dir.path }, db, log, emit: () => undefined, transaction: <T>(work: () => T) => work(), requestTick: () => undefined } as unknown as SupervisorContext;
    const schedules = new BoardSchedules(ctx, { board: undefined } as unknown as BoardMirror);
    // No file: the first tick looks (a promise to wait for), the next ones within the interval do not.
    expect(schedules.fire(10_000)).toBeInstanceOf(Promise);
    await schedules.fire(10_000);
    expect(schedules.fire(10_000 + RELOAD_CHECK_MS - 1)).toBeUndefined();
    writeFileSync(join(dir.path, 'schedules.yaml'), schedulesFile(['one']));
    await schedules.fire(10_000 + RELOAD_CHECK_MS - 1);
    expect(loaded).toEqual([]);
    await schedules.fire(10_000 + RELOAD_CHECK_MS);
    expect(loaded).toEqual([['one']]);
    // With schedules loaded the stage runs every tick (fire times), the file is still looked at once a second.
    writeFileSync(join(dir.path, 'schedules.yaml'), schedulesFile(['one', 'two']));
    await schedules.fire(10_000 + RELOAD_CHECK_MS + 500);
    expect(loaded).toEqual([['one']]);
    await schedules.fire(10_000 + 2 * RELOAD_CHECK_MS);
    expect(loaded).toEqual([['one'], ['one', 'two']]);
  });
});

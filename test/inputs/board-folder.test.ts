import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, startWarren, waitFor } from '../support/cli.js';

const { layouts, running } = cleanUpAfterEach();

interface LogLine {
  level: number;
  msg: string;
  err?: unknown;
}

describe('a board folder that goes missing while up runs (attack case 66)', () => {
  it('says so once, retries without stack traces, says when it is back, and writes the result then', async () => {
    requireMachine();
    const layout = makeTestLayout({ slow: shellTask('slow', 'sleep 2; echo slow-done') });
    layouts.push(layout);
    const up = startWarren(layout.args('up'));
    running.push(up);
    const lines = (): LogLine[] =>
      up
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as LogLine);
    await waitFor('the task to be assigned', () => lines().some((l) => l.msg === 'task assigned'));
    const board = join(layout.dir, 'kanban');
    const away = join(layout.dir, 'kanban-away');
    renameSync(board, away);
    await waitFor('the task to finish', () => lines().some((l) => l.msg === 'task finished'));
    await waitFor('the missing folder to be reported', () => lines().some((l) => l.msg.startsWith('the board folder is missing')));
    // Leave it missing for a while: several flushes and rescans happen meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    renameSync(away, board);
    await waitFor('the result to be written', () => /^status: done$/m.test(layout.file('slow')));
    await waitFor('the folder to be reported back', () => lines().some((l) => l.msg === 'the board folder is back'));
    up.child.kill('SIGTERM');
    const result = await up.done;
    expect(result.code).toBe(0);
    const all = lines();
    expect(all.filter((l) => l.msg.startsWith('the board folder is missing'))).toHaveLength(1);
    expect(all.filter((l) => l.msg.startsWith('the board folder is missing'))[0]!.level).toBe(40);
    expect(all.filter((l) => l.msg === 'the board folder is back')).toHaveLength(1);
    expect(all.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
    expect(all.filter((l) => l.err !== undefined).map((l) => l.msg)).toEqual([]);
  });
});

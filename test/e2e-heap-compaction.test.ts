import { writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, startWarren, waitFor, warrenSync, type AuditRow } from './support/cli.js';

const { layouts, running } = cleanUpAfterEach();

beforeAll(() => requireMachine());

/** The JSON log lines of `stderr` whose message is `msg`. */
function logLines(stderr: string, msg: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry.msg === msg);
}

describe('heap compaction after a burst of agent starts', () => {
  it('compacts the supervisor heap once every agent of a warm pool is ready', async () => {
    const made = makeTestLayout({}, { copyAgents: true });
    layouts.push(made);
    writeFileSync(
      join(made.dir, 'agents', 'idle.yaml'),
      'name: idle\ncapabilities: [idle]\nruntime: { kind: shell, timeout: 1m }\nresources: { memory: 64MiB }\nmaxInstances: 3\nlifecycle: persistent\nwarmPool: 3\n',
    );
    appendFileSync(join(made.dir, 'policies', 'policy.csv'), '\ng, template:idle, role:worker\n');
    // A growth of 1 MiB is a burst here: three agents starting grow the heap by more.
    const up = startWarren(made.args('up', '--log-level', 'info', '--kill-grace', '1s'), { WARREN_HEAP_COMPACTION: '1' });
    running.push(up);
    const readyRows = (): AuditRow[] => JSON.parse(warrenSync(['audit', '--json', '--action', 'agent.ready', ...made.args()])) as AuditRow[];
    await waitFor('the heap compacted', () => logLines(up.stderr(), 'heap compacted after a burst of work').length > 0, 60_000, up);
    const [compaction] = logLines(up.stderr(), 'heap compacted after a burst of work');
    // Not during the burst: every agent of the pool said hello before.
    const ready = readyRows();
    expect(ready.map((r) => r.object).sort()).toEqual(['agent:idle-1', 'agent:idle-2', 'agent:idle-3']);
    expect(Math.max(...ready.map((r) => r.timeMs))).toBeLessThan(compaction!.time as number);
    expect(compaction).toMatchObject({ component: 'memory', committedMiB: expect.any(Number), afterCommittedMiB: expect.any(Number), pauseMs: expect.any(Number) });
  });
});

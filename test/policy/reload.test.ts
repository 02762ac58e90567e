import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, startWarren, waitFor, warrenSync, type AuditRow } from '../support/cli.js';

const { layouts, running } = cleanUpAfterEach();

/** Saves `text` to `path` as editors do: a new file renamed over the old one. */
function saveByRename(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

describe('policy reload while warren up runs', () => {
  it('applies a changed policy, keeps the last good one when a file is broken and reports file and line', async () => {
    requireMachine();
    const layout = makeTestLayout({ later: shellTask('later', 'echo later > later.txt') });
    layouts.push(layout);
    const csv = join(layout.dir, 'policies', 'policy.csv');
    const shipped = readFileSync(csv, 'utf8');
    writeFileSync(csv, `${shipped}\np, role:worker, task:later, assign, deny\n`);
    const up = startWarren(layout.args('up', '--kill-grace', '1s'));
    running.push(up);
    const audit = (...filter: string[]): AuditRow[] => JSON.parse(warrenSync(['audit', '--json', ...filter, ...layout.args()])) as AuditRow[];
    await waitFor('the state database', () => existsSync(join(layout.dir, 'var', 'warren.db')));

    await waitFor('the denial of later', () => audit('--action', 'policy.decide', '--decision', 'deny', '--object', 'task:later').length > 0);
    expect(layout.file('later')).toMatch(/^status: ready$/m);

    // The deny rule goes: the task runs without a restart.
    saveByRename(csv, shipped);
    await waitFor('later to be done', () => /^status: done$/m.test(layout.file('later')), 120_000);
    const reloaded = audit('--action', 'policy.reloaded');
    expect(reloaded).toEqual([expect.objectContaining({ object: 'policy', details: expect.objectContaining({ digest: expect.stringMatching(/^[0-9a-f]{64}$/) }) })]);

    // A broken file: reported with file and line, audited, and the last good policy stays in force.
    const broken = `${shipped}\np, role:worker, task:*\n`;
    const line = broken.split('\n').indexOf('p, role:worker, task:*') + 1;
    saveByRename(csv, broken);
    await waitFor('the policy.reload_failed row', () => audit('--action', 'policy.reload_failed').length > 0);
    expect(audit('--action', 'policy.reload_failed')).toEqual([
      expect.objectContaining({ details: expect.objectContaining({ file: csv, line, message: expect.stringContaining(`policy.csv:${line}: 'p' needs 4 fields`) }) }),
    ]);
    await waitFor('the error line in the log', () =>
      up
        .stderr()
        .split('\n')
        .some((l) => l.includes('policy change refused') && l.includes(`"line":${line}`)),
    );
    writeFileSync(join(layout.dir, 'kanban', 'tasks', 'after.md'), shellTask('after', 'echo after > after.txt'));
    await waitFor('after to be done under the last good policy', () => /^status: done$/m.test(layout.file('after')), 120_000);

    up.child.kill('SIGTERM');
    const result = await up.done;
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
  });
});

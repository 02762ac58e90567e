import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNatsServer, type EmbeddedNatsServer } from '@warren/broker';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireMachine } from '../support/cli.js';
import { agentProcesses, agentUids, checkInvariants, countStatus, makeLayout, namespaceOf, readAudit, shellTask, startRun } from './support.js';
import { finishInspecting, loggedInspection } from './view.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

beforeAll(() => requireMachine());

describe('a broker that comes back with a stream behind its consumers', () => {
  it('assignments stored behind an agent\'s consumer are found and delivered: the run finishes instead of stalling', async () => {
    // The broker's store, kept across restarts on one port.
    const storeDir = mkdtempSync(join(tmpdir(), 'warren-durability-nats-'));
    cleanups.push(() => rmSync(storeDir, { recursive: true, force: true }));
    let nats: EmbeddedNatsServer = await startNatsServer({ storeDir });
    cleanups.push(() => nats.close());
    const first = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`s${i + 1}`, shellTask(`s${i + 1}`, 'true')]));
    const layout = makeLayout({ tasks: first, natsUrl: nats.url, maxInstances: 1, wipPerInstance: 4 });
    cleanups.push(() => layout.remove());

    // Run 1: the agent's consumer delivers the first tasks; its delivered sequence is now 6 or more.
    const run1 = startRun(layout);
    cleanups.push(() => {
      if (run1.child.exitCode === null && run1.child.signalCode === null && run1.child.pid !== undefined) process.kill(run1.child.pid, 'SIGKILL');
    });
    const end1 = await finishInspecting(run1, 120_000);
    expect(end1.code, end1.stderr.slice(-3000)).toBe(0);
    expect(countStatus(layout, 'done')).toBe(6);

    // The broker comes back with the instance's assignment stream empty from sequence 0 (what a
    // SIGKILL before its message blocks reached the disk leaves) and the consumer's state as it was.
    const port = nats.port;
    await nats.close();
    const msgs = join(storeDir, 'jetstream', '$G', 'streams', namespaceOf(layout).assignStream, 'msgs');
    for (const name of readdirSync(msgs)) rmSync(join(msgs, name), { force: true });
    nats = await startNatsServer({ storeDir, port });

    // Run 2: new tasks go to the same agent name, hence the same consumer.
    const more = Array.from({ length: 4 }, (_, i) => `s${i + 7}`);
    for (const id of more) writeFileSync(join(layout.tasksDir, `${id}.md`), shellTask(id, 'true'));
    (layout.taskIds as string[]).push(...more);
    const run2 = startRun(layout);
    cleanups.push(() => {
      if (run2.child.exitCode === null && run2.child.signalCode === null && run2.child.pid !== undefined) process.kill(run2.child.pid, 'SIGKILL');
    });
    let end2;
    try {
      end2 = await finishInspecting(run2, 120_000);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${loggedInspection(run2)}`);
    }
    expect(end2.code, end2.stderr.slice(-3000)).toBe(0);
    expect(countStatus(layout, 'done')).toBe(10);
    const remade = await readAudit(layout, 'broker.consumer_remade');
    expect(remade.length).toBeGreaterThanOrEqual(1);
    expect(remade[0]!.object).toBe(`consumer:${layout.template}-1`);
    expect(agentProcesses(layout, await agentUids(layout))).toEqual([]);
    const report = await checkInvariants(layout);
    expect(report.violations).toEqual([]);
  }, 300_000);
});

import { afterEach, describe, expect, it } from 'vitest';
import { openAudit } from '@warren/audit';
import { createMetrics, registrySources, type WarrenMetrics } from '@warren/metrics';
import { openRegistry, StateStore, TaskState } from '@warren/registry';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import { makeTempDir, type TempDir } from '@warren/testing';
import { value } from './exposition.js';
import { taskRow } from '../../registry/test/support.js';

const opened: { close(): unknown }[] = [];
afterEach(async () => {
  for (const resource of opened.splice(0).reverse()) await resource.close();
});


async function stateDb(): Promise<{ dir: TempDir; db: SqliteDatabase }> {
  const dir = await makeTempDir('warren-metrics-');
  opened.push(dir);
  const db = openDatabase(`${dir.path}/warren.db`);
  opened.push(db);
  return { dir, db };
}

describe('registrySources over a real state database', () => {
  it('exports tasks by state (every state, 0 when empty), the admission queue, agents by state and audit rows', async () => {
    const { dir, db } = await stateDb();
    const audit = openAudit(db);
    const registry = openRegistry(db, { stateDir: dir.path, supervisorPid: process.pid, audit });
    const state: StateStore = registry.state;
    state.putTask(taskRow('a', { queuePosition: 1, queueReason: 'no idle agent' }));
    state.putTask(taskRow('b', { queuePosition: 2, queueReason: 'no idle agent' }));
    state.putTask(taskRow('c', { notBeforeMs: 9_000 })); // ready, waiting for its retry time: no queue position
    state.putTask(taskRow('d', { state: TaskState.running, attempt: 1, agent: 'shell-1' }));
    state.putTask(taskRow('e', { state: TaskState.succeeded, attempt: 1, agent: 'shell-1' }));
    state.putAgent({ name: 'shell-1', template: 'shell', uid: 1900000000, state: 'running', pid: 4001, startedMs: 900, stoppedMs: null, lastExit: null });
    state.putAgent({ name: 'shell-2', template: 'shell', uid: 1900000001, state: 'stopped', pid: null, startedMs: 950, stoppedMs: 5000, lastExit: 'code 0' });
    audit.append({ actor: 'supervisor', action: 'agent.start', object: 'agent:shell-1' });
    audit.append({ actor: 'supervisor', action: 'task.assign', object: 'task:d', details: { agent: 'shell-1', attempt: 1 } });

    const metrics: WarrenMetrics = createMetrics({ instance: 'warren-test', defaultMetrics: false, sources: registrySources(registry) });
    opened.push(metrics);
    let text = (await metrics.text()).body;
    expect(value(text, 'warren_tasks', { state: 'ready' })).toBe(3);
    expect(value(text, 'warren_tasks', { state: 'running' })).toBe(1);
    expect(value(text, 'warren_tasks', { state: 'succeeded' })).toBe(1);
    for (const empty of ['assigned', 'failed', 'timed_out', 'cancelled', 'held']) expect(value(text, 'warren_tasks', { state: empty }), empty).toBe(0);
    expect(value(text, 'warren_queue_length')).toBe(registry.tasks({ waiting: true }).length);
    expect(value(text, 'warren_queue_length')).toBe(2);
    expect(value(text, 'warren_agents', { state: 'running' })).toBe(1);
    expect(value(text, 'warren_agents', { state: 'stopped' })).toBe(1);
    expect(value(text, 'warren_audit_rows')).toBe(2);

    // The next scrape sees the next commit.
    state.putTask(taskRow('a', { state: TaskState.assigned, attempt: 1, agent: 'shell-1' }));
    audit.append({ actor: 'supervisor', action: 'task.assign', object: 'task:a', details: { agent: 'shell-1', attempt: 1 } });
    text = (await metrics.text()).body;
    expect(value(text, 'warren_tasks', { state: 'ready' })).toBe(2);
    expect(value(text, 'warren_tasks', { state: 'assigned' })).toBe(1);
    expect(value(text, 'warren_queue_length')).toBe(1);
    expect(value(text, 'warren_audit_rows')).toBe(3);
  });
});

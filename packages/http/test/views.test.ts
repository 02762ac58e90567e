import { describe, expect, onTestFinished, test } from 'vitest';
import { analyticsView, messagesView } from '@warren/http';
import { openTestPorts, taskRow, type TestPorts } from './support.js';

async function ports(): Promise<TestPorts> {
  const p = await openTestPorts();
  onTestFinished(() => p.close());
  return p;
}

const message = (p: TestPorts, from: string, to: string, allowed: boolean) =>
  p.emit({ actor: from, action: 'policy.decide', object: `agent:${to}`, decision: allowed ? 'allow' : 'deny', details: { sub: from, act: 'message', rule: null } });

describe('messagesView', () => {
  test('lists the relayed messages from the policy decisions and counts each pair, denials apart', async () => {
    const p = await ports();
    message(p, 'shell-1', 'reporter-1', true);
    p.emit({ actor: 'shell-1', action: 'policy.decide', object: 'task:t1', decision: 'allow', details: { sub: 'shell-1', act: 'assign', rule: null } });
    message(p, 'shell-1', 'reporter-1', true);
    message(p, 'shell-2', 'reporter-1', false);
    message(p, 'reporter-1', 'shell-2', true);
    const all = messagesView(p.registry);
    expect(all.messages.map((m) => [m.from, m.to, m.allowed])).toEqual([
      ['shell-1', 'reporter-1', true],
      ['shell-1', 'reporter-1', true],
      ['shell-2', 'reporter-1', false],
      ['reporter-1', 'shell-2', true],
    ]);
    expect(all.edges).toEqual([
      { from: 'shell-1', to: 'reporter-1', count: 2, denied: 0 },
      { from: 'reporter-1', to: 'shell-2', count: 1, denied: 0 },
      { from: 'shell-2', to: 'reporter-1', count: 1, denied: 1 },
    ]);
    expect(messagesView(p.registry, { agent: 'shell-2' }).edges.map((e) => `${e.from}>${e.to}`)).toEqual(['reporter-1>shell-2', 'shell-2>reporter-1']);
    expect(messagesView(p.registry, { limit: 1 }).messages.map((m) => m.from)).toEqual(['reporter-1']);
    expect(messagesView(p.registry, { sinceMs: Date.now() + 60_000 })).toEqual({ messages: [], edges: [] });
  });
});

describe('analyticsView', () => {
  test('series, rates, utilisation, capabilities and incidents from the executions and the audit trail', async () => {
    const p = await ports();
    const s = p.registry.state;
    const run = (id: string, attempt: number, agent: string, readyMs: number, assignedMs: number, finishedMs: number, outcome: string) => {
      s.putTask(taskRow(id, { state: 'running', attempt, agent }));
      s.addAssignment(id, attempt, agent, assignedMs, readyMs);
      s.finishAssignment(id, attempt, { outcome, exitCode: outcome === 'succeeded' ? 0 : 1, summary: '', outputs: [] }, finishedMs);
    };
    run('a', 1, 'shell-1', 0, 1_000, 11_000, 'succeeded');
    run('b', 1, 'shell-1', 0, 2_000, 32_000, 'failed');
    run('b', 2, 'shell-2', 30_000, 65_000, 75_000, 'succeeded');
    p.emit({ actor: 'supervisor', action: 'task.retry', object: 'task:b' });
    p.emit({ actor: 'supervisor', action: 'agent.watchdog', object: 'agent:shell-1' });
    p.emit({ actor: 'supervisor', action: 'supervisor.recovered', object: 'supervisor' });
    const view = analyticsView(p.registry, { sinceMs: 0, bucketMs: 60_000, nowMs: 100_000, capabilitiesOf: (id) => (id === 'a' ? ['shell', 'git'] : ['shell']) });
    expect(view.total.executions).toBe(3);
    expect(view.series).toEqual([
      { startMs: 0, finished: 2, succeeded: 1, failed: 1, retried: 0, p50WaitMs: 1_000, p95WaitMs: 2_000, p50RunMs: 10_000, p95RunMs: 30_000 },
      { startMs: 60_000, finished: 1, succeeded: 1, failed: 0, retried: 1, p50WaitMs: 35_000, p95WaitMs: 35_000, p50RunMs: 10_000, p95RunMs: 10_000 },
    ]);
    expect(view.rates).toEqual({ success: 2 / 3, failure: 1 / 3, retry: 1 / 3 });
    expect(view.utilisation).toEqual([
      { template: 'shell', busyMs: 50_000, spanMs: 200_000, ratio: 0.25 },
      { template: 'shell', agent: 'shell-1', busyMs: 40_000, spanMs: 100_000, ratio: 0.4 },
      { template: 'shell', agent: 'shell-2', busyMs: 10_000, spanMs: 100_000, ratio: 0.1 },
    ]);
    expect(view.capabilities).toEqual([
      { capability: 'shell', tasks: 2 },
      { capability: 'git', tasks: 1 },
    ]);
    expect(view.incidents).toEqual({ crashRecoveries: 1, watchdogKills: 1, retries: 1, spawnFailures: 0 });
  });
});

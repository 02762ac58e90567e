import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openAudit } from '@warren/audit';
import {
  AssignmentState,
  MessageLedger,
  migrateState,
  openRegistry,
  RegistryError,
  SUPERVISOR_PID_FILE,
  StateStore,
  TaskState,
  type Registry,
} from '@warren/registry';
import { open, taskRow, tempDir } from './support.js';

/** One execution written as the supervisor writes it: assigned, acknowledged, finished. */
function execution(
  state: StateStore,
  e: { taskId: string; attempt: number; agent: string; readySinceMs: number; assignedMs: number; ackedMs?: number; finishedMs?: number; outcome?: string },
): void {
  state.addAssignment(e.taskId, e.attempt, e.agent, e.assignedMs, e.readySinceMs);
  state.setAssignmentState(e.taskId, e.attempt, AssignmentState.published);
  if (e.ackedMs !== undefined) state.setAssignmentState(e.taskId, e.attempt, AssignmentState.acked, e.ackedMs);
  if (e.finishedMs !== undefined) {
    state.finishAssignment(e.taskId, e.attempt, { outcome: e.outcome!, exitCode: e.outcome === 'succeeded' ? 0 : null, summary: e.outcome!, outputs: [] }, e.finishedMs);
  }
}

/**
 * A state database after a run: tasks a (succeeded), b (lost, then failed), c (running), d, e, f
 * (waiting, stored positions 7, 3, 12), g (ready, placed), h (succeeded by a deleted agent).
 */
function filledRegistry(options: { supervisorPid?: number } = {}): { registry: Registry; stateDir: string } {
  const stateDir = tempDir();
  const db = open(join(stateDir, 'warren.db'));
  const registry = openRegistry(db, { stateDir, ...options });
  const { state } = registry;
  state.putAgent({ name: 'shell-1', template: 'shell', uid: 1900000000, state: 'running', pid: 4001, startedMs: 900, stoppedMs: null, lastExit: null });
  state.putAgent({ name: 'shell-2', template: 'shell', uid: 1900000001, state: 'stopped', pid: null, startedMs: 950, stoppedMs: 5000, lastExit: 'code 0' });
  state.countTaskDone('shell-1');
  state.countTaskDone('shell-1');
  execution(state, { taskId: 'a', attempt: 1, agent: 'shell-1', readySinceMs: 1000, assignedMs: 1500, ackedMs: 1600, finishedMs: 2600, outcome: 'succeeded' });
  execution(state, { taskId: 'b', attempt: 1, agent: 'shell-1', readySinceMs: 1000, assignedMs: 2000, ackedMs: 2100, finishedMs: 3000, outcome: 'lost' });
  execution(state, { taskId: 'b', attempt: 2, agent: 'shell-2', readySinceMs: 3000, assignedMs: 3500, ackedMs: 3550, finishedMs: 4550, outcome: 'failed' });
  execution(state, { taskId: 'c', attempt: 1, agent: 'shell-2', readySinceMs: 1000, assignedMs: 4000, ackedMs: 4200 });
  execution(state, { taskId: 'h', attempt: 1, agent: 'reporter-1', readySinceMs: 0, assignedMs: 100, finishedMs: 1100, outcome: 'succeeded' });
  state.putTask(taskRow('a', { state: TaskState.succeeded, attempt: 1, agent: 'shell-1' }));
  state.putTask(taskRow('b', { state: TaskState.failed, attempt: 2, agent: 'shell-2', reason: 'failed (exit 1): boom', readySinceMs: 3000 }));
  state.putTask(taskRow('c', { state: TaskState.running, attempt: 1, agent: 'shell-2' }));
  state.putTask(taskRow('d', { queuePosition: 7, queueReason: 'no agent offers gpu' }));
  state.putTask(taskRow('e', { queuePosition: 3, queueReason: 'all shell agents are busy' }));
  state.putTask(taskRow('f', { queuePosition: 12, queueReason: 'all shell agents are busy', notBeforeMs: 9000 }));
  state.putTask(taskRow('g'));
  state.putTask(taskRow('h', { state: TaskState.succeeded, attempt: 1, agent: 'reporter-1', boardSync: 'pending' }));
  const audit = openAudit(db);
  audit.append({ actor: 'supervisor', action: 'agent.start', object: 'agent:shell-1' });
  audit.append({ actor: 'supervisor', action: 'task.assign', object: 'task:a', details: { agent: 'shell-1', attempt: 1 } });
  audit.append({ actor: 'shell-1', action: 'policy.decide', object: 'task:a', decision: 'allow' });
  audit.append({ actor: 'supervisor', action: 'task.assign', object: 'task:b', details: { agent: 'shell-1', attempt: 1 } });
  audit.append({ actor: 'supervisor', action: 'agent.stop', object: 'agent:shell-2' });
  return { registry, stateDir };
}

/** The value as JSON would carry it: a query's result must survive the trip unchanged. */
const json = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

describe('status', () => {
  it('counts tasks and agents by state in the order of their first row, open executions and audit rows', () => {
    const { registry, stateDir } = filledRegistry();
    const status = registry.status();
    expect(status).toEqual({
      supervisor: 'stopped',
      pid: null,
      stateDir,
      tasks: { succeeded: 2, failed: 1, running: 1, ready: 4 },
      agents: { running: 1, stopped: 1 },
      openExecutions: 1,
      auditRows: 5,
    });
    expect(Object.keys(status.tasks)).toEqual(['succeeded', 'failed', 'running', 'ready']);
    expect(json(status)).toEqual(status);
  });

  it('names the running supervisor from the pid file only while its process lives', () => {
    const { registry, stateDir } = filledRegistry();
    const cases: [string, 'running' | 'stopped', number | null][] = [
      [`${process.pid}\n`, 'running', process.pid],
      ['999999999\n', 'stopped', null], // a supervisor that was killed left its file
      ['not a pid\n', 'stopped', null],
      ['-4\n', 'stopped', null],
    ];
    for (const [content, supervisor, pid] of cases) {
      writeFileSync(join(stateDir, SUPERVISOR_PID_FILE), content);
      expect([content, registry.status().supervisor, registry.status().pid]).toEqual([content, supervisor, pid]);
    }
    expect(filledRegistry({ supervisorPid: 77 }).registry.status()).toMatchObject({ supervisor: 'running', pid: 77 });
  });

  it("shares the caller's state store and audit trail when given them", () => {
    const stateDir = tempDir();
    const db = open(join(stateDir, 'warren.db'));
    migrateState(db);
    const state = new StateStore(db);
    const audit = openAudit(db);
    const registry = openRegistry(db, { stateDir, state, audit, supervisorPid: process.pid });
    expect(registry.state).toBe(state);
    state.putTask(taskRow('a'));
    audit.append({ actor: 'supervisor', action: 'task.assign', object: 'task:a' });
    expect(registry.status()).toMatchObject({ supervisor: 'running', pid: process.pid, tasks: { ready: 1 }, auditRows: 1 });
    const other = open(join(tempDir(), 'warren.db'));
    expect(() => openRegistry(other, { stateDir, state })).toThrow("'state' must be a StateStore over the registry's database");
  });
});

describe('tasks', () => {
  it('numbers the waiting tasks 1, 2, 3 in stored order, whatever the filter', () => {
    const { registry } = filledRegistry();
    const all = registry.tasks();
    expect(all.map((t) => [t.id, t.state, t.attempt, t.agent, t.queuePosition])).toEqual([
      ['a', 'succeeded', 1, 'shell-1', null],
      ['b', 'failed', 2, 'shell-2', null],
      ['c', 'running', 1, 'shell-2', null],
      ['d', 'ready', 0, null, 2],
      ['e', 'ready', 0, null, 1],
      ['f', 'ready', 0, null, 3],
      ['g', 'ready', 0, null, null],
      ['h', 'succeeded', 1, 'reporter-1', null],
    ]);
    expect(json(all)).toEqual(all);
    expect(registry.tasks({ waiting: true }).map((t) => [t.queuePosition, t.id, t.queueReason])).toEqual([
      [1, 'e', 'all shell agents are busy'],
      [2, 'd', 'no agent offers gpu'],
      [3, 'f', 'all shell agents are busy'],
    ]);
    expect(registry.tasks({ state: TaskState.ready }).map((t) => [t.id, t.queuePosition])).toEqual([['d', 2], ['e', 1], ['f', 3], ['g', null]]);
    expect(registry.tasks({ state: [TaskState.failed, TaskState.running] }).map((t) => t.id)).toEqual(['b', 'c']);
    expect(registry.tasks({ agent: 'shell-2' }).map((t) => t.id)).toEqual(['b', 'c']);
    expect(registry.tasks({ state: TaskState.held })).toEqual([]);
  });

  it('numbers tasks stored at one position by id, in the list and for one task alike', () => {
    const { registry } = filledRegistry();
    registry.state.putTask(taskRow('ee', { queuePosition: 3 }));
    registry.state.putTask(taskRow('da', { queuePosition: 3 }));
    const listed = registry.tasks({ waiting: true }).map((t) => [t.id, t.queuePosition]);
    expect(listed).toEqual([['da', 1], ['e', 2], ['ee', 3], ['d', 4], ['f', 5]]);
    expect(listed.map(([id]) => [id, registry.task(id as string)?.queuePosition])).toEqual(listed);
  });

  it('shows one task with its fields, queue position and executions oldest first', () => {
    const { registry } = filledRegistry();
    expect(registry.task('f')).toEqual({
      id: 'f', path: 'tasks/f.md', state: 'ready', attempt: 0, agent: null, reason: null, queuePosition: 3, queueReason: 'all shell agents are busy',
      readySinceMs: 1000, notBeforeMs: 9000, updatedMs: 1000, boardSync: 'clean', executions: [],
    });
    expect(registry.task('d')?.queuePosition).toBe(2);
    expect(registry.task('g')?.queuePosition).toBeNull();
    const b = registry.task('b')!;
    expect([b.state, b.reason, b.executions.map((e) => [e.attempt, e.agent, e.outcome])]).toEqual([
      'failed', 'failed (exit 1): boom', [[1, 'shell-1', 'lost'], [2, 'shell-2', 'failed']],
    ]);
    expect(json(b)).toEqual(b);
    expect(registry.task('nope')).toBeUndefined();
  });
});

describe('agents', () => {
  it('lists the agents table by name, with live fields only from a caller that has them', () => {
    const { registry } = filledRegistry();
    const rows = registry.agents();
    expect(rows).toEqual([
      { name: 'shell-1', template: 'shell', uid: 1900000000, state: 'running', pid: 4001, startedMs: 900, stoppedMs: null, lastExit: null, tasksDone: 2 },
      { name: 'shell-2', template: 'shell', uid: 1900000001, state: 'stopped', pid: null, startedMs: 950, stoppedMs: 5000, lastExit: 'code 0', tasksDone: 0 },
    ]);
    const live = { status: 'busy', load: 1, lastHeartbeatMs: 4990, usage: { memoryBytes: 52_428_800, cpuMs: 310 } };
    const withLive = registry.agents({ live: (name) => (name === 'shell-1' ? live : undefined) });
    expect(withLive[0]).toEqual({ ...rows[0], live });
    expect(withLive[1]).toEqual(rows[1]);
    expect('live' in withLive[1]!).toBe(false);
    expect(json(withLive)).toEqual(withLive);
  });
});

describe('executions', () => {
  it('derives waiting, starting and running times from the recorded ones', () => {
    const { registry } = filledRegistry();
    const all = registry.executions();
    expect(all.map((e) => [e.taskId, e.attempt, e.agent, e.template, e.state, e.outcome, e.waitingMs, e.startingMs, e.runningMs])).toEqual([
      ['h', 1, 'reporter-1', 'reporter', 'finished', 'succeeded', 100, null, 1000], // no ack recorded: run from assignment
      ['a', 1, 'shell-1', 'shell', 'finished', 'succeeded', 500, 100, 1000],
      ['b', 1, 'shell-1', 'shell', 'finished', 'lost', 1000, 100, 900],
      ['b', 2, 'shell-2', 'shell', 'finished', 'failed', 500, 50, 1000],
      ['c', 1, 'shell-2', 'shell', 'acked', null, 3000, 200, null],
    ]);
    expect(all[2]).toEqual({
      taskId: 'b', attempt: 1, agent: 'shell-1', template: 'shell', state: 'finished', outcome: 'lost', exitCode: null, summary: 'lost', outputs: [],
      readySinceMs: 1000, assignedMs: 2000, ackedMs: 2100, finishedMs: 3000, waitingMs: 1000, startingMs: 100, runningMs: 900,
    });
    expect(json(all)).toEqual(all);
  });

  it('filters by task, agent, template, state, outcome and time, in either order, up to a limit', () => {
    const { registry } = filledRegistry();
    const ids = (filter: Parameters<Registry['executions']>[0]) => registry.executions(filter).map((e) => `${e.taskId}#${e.attempt}`);
    const table: [Parameters<Registry['executions']>[0], string[]][] = [
      [{ taskId: 'b' }, ['b#1', 'b#2']],
      [{ agent: 'shell-1' }, ['a#1', 'b#1']],
      [{ template: 'reporter' }, ['h#1']],
      [{ template: 'shell', agent: 'shell-2' }, ['b#2', 'c#1']],
      [{ state: AssignmentState.acked }, ['c#1']],
      [{ state: [AssignmentState.acked, AssignmentState.pending] }, ['c#1']],
      [{ state: [] }, []],
      [{ outcome: 'failed' }, ['b#2']],
      [{ sinceMs: 3500 }, ['b#2', 'c#1']],
      [{ order: 'desc', limit: 2 }, ['c#1', 'b#2']],
      [{ limit: 1 }, ['h#1']],
    ];
    for (const [filter, expected] of table) expect([filter, ids(filter)]).toEqual([filter, expected]);
    expect(() => registry.executions({ limit: 0 })).toThrow(RegistryError);
    expect(() => registry.executions({ limit: 1.5 })).toThrow("'limit' must be a positive whole number, got 1.5");
  });
});

describe('auditPage', () => {
  it('pages forward with a cursor, tails new rows, and lists the newest rows oldest first', () => {
    const { registry } = filledRegistry();
    const seqs = (page: ReturnType<Registry['auditPage']>) => [page.rows.map((r) => r.seq), page.next, page.more];
    const first = registry.auditPage({ limit: 2 });
    expect(seqs(first)).toEqual([[1, 2], 2, true]);
    const second = registry.auditPage({ limit: 2, after: first.next });
    expect(seqs(second)).toEqual([[3, 4], 4, true]);
    const third = registry.auditPage({ limit: 2, after: second.next });
    expect(seqs(third)).toEqual([[5], 5, false]);
    expect(seqs(registry.auditPage({ limit: 2, after: third.next }))).toEqual([[], 5, false]);

    openAudit(registry.db).append({ actor: 'supervisor', action: 'task.complete', object: 'task:a' });
    expect(seqs(registry.auditPage({ after: third.next }))).toEqual([[6], 6, false]);

    expect(seqs(registry.auditPage({ limit: 2, newest: true }))).toEqual([[5, 6], 6, true]);
    const assigns = registry.auditPage({ newest: true, filter: { action: 'task.*' } });
    expect(assigns.rows.map((r) => [r.seq, r.action, r.object, r.details])).toEqual([
      [2, 'task.assign', 'task:a', { agent: 'shell-1', attempt: 1 }],
      [4, 'task.assign', 'task:b', { agent: 'shell-1', attempt: 1 }],
      [6, 'task.complete', 'task:a', undefined],
    ]);
    expect(registry.auditPage({ filter: { decision: 'allow' } }).rows.map((r) => [r.seq, r.actor])).toEqual([[3, 'shell-1']]);
    expect(registry.auditPage({ filter: { object: 'task:a', actor: 'supervisor' } }).rows.map((r) => r.seq)).toEqual([2, 6]);
    expect(json(assigns.rows.map((r) => r.seq))).toEqual([2, 4, 6]);
  });

  it('refuses a bad cursor or limit, naming it', () => {
    const { registry } = filledRegistry();
    expect(() => registry.auditPage({ limit: -1 })).toThrow("'limit' must be a positive whole number, got -1");
    expect(() => registry.auditPage({ after: -2 })).toThrow("'after' must be a whole number ≥ 0, got -2");
    expect(registry.verifyAudit()).toEqual({ ok: true, rows: 5 });
  });
});

describe('analytics', () => {
  it('sums waiting, starting and running times, outcomes and tasks done per template and per agent', () => {
    const { registry } = filledRegistry();
    const facts = registry.analytics();
    expect(facts.templates.map((t) => t.template)).toEqual(['reporter', 'shell']);
    expect(facts.templates[1]).toEqual({
      template: 'shell',
      executions: 4,
      open: 1,
      outcomes: { failed: 1, lost: 1, succeeded: 1 },
      tasksDone: 1,
      waiting: { count: 4, totalMs: 5000, meanMs: 1250, p50Ms: 500, p95Ms: 3000, maxMs: 3000 },
      starting: { count: 4, totalMs: 450, meanMs: 112.5, p50Ms: 100, p95Ms: 200, maxMs: 200 },
      running: { count: 3, totalMs: 2900, meanMs: 2900 / 3, p50Ms: 1000, p95Ms: 1000, maxMs: 1000 },
    });
    expect(facts.templates[0]).toMatchObject({
      template: 'reporter', executions: 1, open: 0, outcomes: { succeeded: 1 }, tasksDone: 1,
      starting: { count: 0, totalMs: 0, meanMs: null, p50Ms: null, p95Ms: null, maxMs: null },
    });
    expect(facts.agents.map((a) => [a.agent, a.template, a.executions, a.open, a.outcomes, a.tasksDone, a.waiting.totalMs, a.running.totalMs])).toEqual([
      ['reporter-1', 'reporter', 1, 0, { succeeded: 1 }, 1, 100, 1000],
      ['shell-1', 'shell', 2, 0, { lost: 1, succeeded: 1 }, 1, 1500, 1900],
      ['shell-2', 'shell', 2, 1, { failed: 1 }, 0, 3500, 1000],
    ]);
    expect(facts.total).toMatchObject({ executions: 5, open: 1, outcomes: { failed: 1, lost: 1, succeeded: 2 }, tasksDone: 2 });
    expect(json(facts)).toEqual(facts);
    expect(registry.analytics({ sinceMs: 3500 }).total).toMatchObject({ executions: 2, open: 1, outcomes: { failed: 1 } });
  });
});

describe('messages', () => {
  it('lists the message decisions newest first, topic publishes among them, and the edges of the ledger', () => {
    const stateDir = tempDir();
    const db = open(join(stateDir, 'warren.db'));
    const registry = openRegistry(db, { stateDir });
    const audit = openAudit(db, { clock: (() => { let t = 1000; return () => (t += 10); })() });
    const message = (from: string, to: string, allowed: boolean) =>
      audit.append({ actor: from, action: 'policy.decide', object: `agent:${to}`, decision: allowed ? 'allow' : 'deny', details: { sub: from, act: 'message', rule: null } });
    message('shell-1', 'reporter-1', true);
    message('shell-1', 'reporter-1', true);
    // Not messages: another act on an agent, and an API route decision.
    audit.append({ actor: 'user:root', action: 'policy.decide', object: 'agent:shell-1', decision: 'allow', details: { sub: 'user:root', act: 'exec', rule: null } });
    audit.append({ actor: 'user:ops', action: 'policy.decide', object: 'api:/api/v1/agents', decision: 'allow', details: { sub: 'user:ops', act: 'GET', rule: null } });
    message('reporter-1', 'shell-1', false);
    message('shell-2', 'shell-1', true);
    // A publish on a topic is a message to '*'; a subscription is not a message.
    audit.append({ actor: 'shell-2', action: 'policy.decide', object: 'topic:builds', decision: 'allow', details: { sub: 'shell-2', act: 'publish', rule: null } });
    audit.append({ actor: 'shell-1', action: 'policy.decide', object: 'topic:builds', decision: 'allow', details: { sub: 'shell-1', act: 'subscribe', rule: null } });
    const all = registry.messages();
    expect(all.messages.map((m) => [m.seq, m.from, m.to, m.topic, m.allowed])).toEqual([
      [7, 'shell-2', '*', 'builds', true],
      [6, 'shell-2', 'shell-1', '', true],
      [5, 'reporter-1', 'shell-1', '', false],
      [2, 'shell-1', 'reporter-1', '', true],
      [1, 'shell-1', 'reporter-1', '', true],
    ]);
    // The edges are the ledger's, not the audit's: empty until the supervisor records messages.
    expect(all.edges).toEqual([]);
    const ledger = new MessageLedger(db);
    ledger.record({ from: 'shell-1', to: 'reporter-1', topic: '', bytes: 10, allowed: true, timeMs: 1010 });
    ledger.record({ from: 'shell-1', to: 'reporter-1', topic: '', bytes: 12, allowed: true, timeMs: 1020 });
    ledger.record({ from: 'reporter-1', to: 'shell-1', topic: '', bytes: 99, allowed: false, timeMs: 1050 });
    ledger.record({ from: 'shell-2', to: 'shell-1', topic: '', bytes: 5, allowed: true, timeMs: 1060 });
    ledger.record({ from: 'shell-2', to: '*', topic: 'builds', bytes: 7, allowed: true, timeMs: 1070 });
    expect(registry.messages().edges).toEqual([
      { from: 'shell-1', to: 'reporter-1', topic: '', count: 2, denied: 0, bytes: 22, firstMs: 1010, lastMs: 1020 },
      { from: 'reporter-1', to: 'shell-1', topic: '', count: 1, denied: 1, bytes: 0, firstMs: 1050, lastMs: 1050 },
      { from: 'shell-2', to: '*', topic: 'builds', count: 1, denied: 0, bytes: 7, firstMs: 1070, lastMs: 1070 },
      { from: 'shell-2', to: 'shell-1', topic: '', count: 1, denied: 0, bytes: 5, firstMs: 1060, lastMs: 1060 },
    ]);
    expect(registry.messages({ agent: 'shell-2' }).messages.map((m) => m.seq)).toEqual([7, 6]);
    expect(registry.messages({ agent: 'shell-2' }).edges.map((e) => [e.to, e.topic])).toEqual([['*', 'builds'], ['shell-1', '']]);
    expect(registry.messages({ agent: 'reporter-1' }).messages.map((m) => m.seq)).toEqual([5, 2, 1]);
    expect(registry.messages({ agent: 'reporter-1' }).edges.map((e) => e.from)).toEqual(['shell-1', 'reporter-1']);
    expect(registry.messages({ limit: 1 }).messages.map((m) => m.seq)).toEqual([7]);
    expect(registry.messages({ limit: 1 }).edges).toHaveLength(4);
    expect(registry.messages({ sinceMs: 1045 }).messages.map((m) => m.seq)).toEqual([7, 6, 5]);
    expect(registry.messages({ sinceMs: 1055 }).edges.map((e) => e.lastMs)).toEqual([1070, 1060]);
    expect(() => registry.messages({ limit: -1 })).toThrow(RegistryError);
  });
});

describe('incidents', () => {
  it('counts recoveries, watchdog kills, retries, spawn failures, unresponsive agents and re-queues', () => {
    const stateDir = tempDir();
    const db = open(join(stateDir, 'warren.db'));
    const registry = openRegistry(db, { stateDir });
    let t = 0;
    const audit = openAudit(db, { clock: () => (t += 100) });
    // A clean start records a recovery that found nothing: not a crash recovery.
    audit.append({ actor: 'supervisor', action: 'supervisor.recovered', object: 'supervisor', details: { resultsApplied: 0, lostExecutions: [], requeued: [], failed: [] } });
    audit.append({ actor: 'supervisor', action: 'supervisor.recovered', object: 'supervisor', details: { resultsApplied: 0, lostExecutions: ['t:1'], requeued: ['t'], failed: [] } });
    for (const action of ['agent.watchdog', 'agent.watchdog', 'task.retry', 'agent.spawn_failed', 'agent.unresponsive', 'task.requeue', 'task.requeue', 'task.assign']) {
      audit.append({ actor: 'supervisor', action, object: 'x' });
    }
    expect(registry.incidents()).toEqual({ crashRecoveries: 1, watchdogKills: 2, retries: 1, spawnFailures: 1, unresponsive: 1, requeues: 2 });
    expect(registry.incidents(700)).toEqual({ crashRecoveries: 0, watchdogKills: 0, retries: 0, spawnFailures: 0, unresponsive: 1, requeues: 2 });
  });
});

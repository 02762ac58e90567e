import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { ResultMessage, RunSpan } from '@warren/broker';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import { createTracing, parseTraceparent, type Tracing } from '@warren/telemetry';
import { makeTempDir, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '@warren/testing';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ExecutionTracing, executionTraceOf } from '../src/tracing.js';

interface Setup {
  otlp: OtlpReceiver;
  db: SqliteDatabase;
  dbPath: string;
  open: () => Promise<{ tracing: Tracing; executions: ExecutionTracing }>;
  /** The clock the executions' tracing reads (ms since the epoch); tests set it to their own time line. */
  clock: { nowMs: number };
}

async function setup(): Promise<Setup> {
  const dir = await makeTempDir('warren-tracing-');
  onTestFinished(() => dir.close());
  const otlp = await startOtlpReceiver();
  onTestFinished(() => otlp.close());
  const dbPath = join(dir.path, 'warren.db');
  const db = openDatabase(dbPath);
  onTestFinished(() => db.close());
  const clock = { nowMs: Date.now() - 60_000 };
  const open = async () => {
    const tracing = await createTracing({ serviceName: 'warren-supervisor', instance: 'test', env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: '50' } });
    onTestFinished(() => tracing.shutdown());
    return { tracing, executions: ExecutionTracing.open({ db, tracing, now: () => clock.nowMs }) };
  };
  return { otlp, db, dbPath, open, clock };
}

function result(taskId: string, attempt: number, finishedAtMs: number, span?: RunSpan): ResultMessage {
  return {
    taskId,
    attempt,
    agent: 'shell-1',
    outcome: 'succeeded',
    exitCode: 0,
    signal: null,
    summary: 'done',
    outputs: [],
    durationMs: 100,
    finishedAtMs,
    ...(span ? { span } : {}),
  };
}

/** The runner's span for a task published with `traceparent`, as the agent runner reports it. */
function runnerSpan(traceparent: string, startMs: number, endMs: number): RunSpan {
  const parent = parseTraceparent(traceparent);
  return { name: 'agent.run', traceId: parent.traceId, spanId: randomBytes(8).toString('hex'), parentSpanId: parent.spanId, startMs, endMs, status: 'ok' };
}

function byName(spans: readonly ReceivedSpan[]): Map<string, ReceivedSpan> {
  return new Map(spans.map((s) => [s.name, s]));
}

describe('execution tracing', () => {
  it("makes one trace per execution: the stage spans under the root, the agent's span under the publish span", async () => {
    const { otlp, db, open, clock } = await setup();
    const { tracing, executions } = await open();
    const t0 = clock.nowMs;
    executions.boardRefreshed(t0, t0 + 10);
    executions.planned(t0 + 20, t0 + 25);
    executions.spawnRequested('shell', ['T-1'], t0 + 25);
    executions.agentReady('shell-1', t0 + 500);
    executions.assigned({ taskId: 'T-1', attempt: 1, agent: 'shell-1', readySinceMs: t0, nowMs: t0 + 600 });
    const publish = executions.publishing('T-1', 1, 'warren.assign.shell-1')!;
    expect(publish).toBeDefined();
    publish.end();
    executions.acked('T-1', 1, t0 + 700);
    executions.resultReceived(result('T-1', 1, t0 + 1100, runnerSpan(publish.traceparent, t0 + 710, t0 + 1090)), t0 + 1200);
    executions.settled('T-1', 1, 'succeeded', 'succeeded', t0 + 1200);
    executions.boardWritten('T-1', 1, { state: 'succeeded', startMs: t0 + 1300, endMs: t0 + 1310, ok: true, column: 'done' });
    await tracing.flush();
    await otlp.waitFor((spans) => spans.length === 9, { what: 'the nine spans of T-1' });

    expect(otlp.traces().size).toBe(1);
    const spans = byName(otlp.spans);
    expect([...spans.keys()].sort()).toEqual(['agent.run', 'assign', 'board.refresh', 'board.write', 'plan', 'publish', 'result', 'spawn', 'task.execution']);
    const root = spans.get('task.execution')!;
    expect(root.parentSpanId).toBeUndefined();
    expect(root).toMatchObject({ startTimeMs: t0, endTimeMs: t0 + 1310 });
    expect(root.attributes).toMatchObject({ 'warren.task.id': 'T-1', 'warren.task.attempt': 1, 'warren.agent.name': 'shell-1', 'warren.outcome': 'succeeded' });
    expect(root.status.code).toBe(1);
    for (const name of ['board.refresh', 'plan', 'spawn', 'assign', 'result', 'board.write']) expect(spans.get(name)!.parentSpanId, name).toBe(root.spanId);
    expect(spans.get('publish')!.parentSpanId).toBe(spans.get('assign')!.spanId);
    expect(spans.get('publish')!.kind).toBe(4); // producer
    expect(spans.get('publish')!.attributes['messaging.destination.name']).toBe('warren.assign.shell-1');
    expect(parseTraceparent(publish.traceparent).spanId).toBe(spans.get('publish')!.spanId);
    expect(spans.get('agent.run')!.parentSpanId).toBe(spans.get('publish')!.spanId);
    expect(spans.get('agent.run')).toMatchObject({ startTimeMs: t0 + 710, endTimeMs: t0 + 1090, kind: 5 });
    expect(spans.get('board.refresh')).toMatchObject({ startTimeMs: t0, endTimeMs: t0 + 10 });
    expect(spans.get('plan')).toMatchObject({ startTimeMs: t0 + 20, endTimeMs: t0 + 25 });
    expect(spans.get('spawn')).toMatchObject({ startTimeMs: t0 + 25, endTimeMs: t0 + 500 });
    expect(spans.get('spawn')!.attributes['warren.template']).toBe('shell');
    expect(spans.get('assign')).toMatchObject({ startTimeMs: t0 + 600, endTimeMs: t0 + 700 });
    expect(spans.get('result')).toMatchObject({ startTimeMs: t0 + 1100, endTimeMs: t0 + 1200 });
    expect(spans.get('board.write')).toMatchObject({ startTimeMs: t0 + 1300, endTimeMs: t0 + 1310 });
    expect(executions.traceIdOf('T-1')).toBe(root.traceId);
    expect(executionTraceOf(db, 'T-1', 1)).toMatchObject({ traceId: root.traceId, traceparent: `00-${root.traceId}-${root.spanId}-01`, startedMs: t0, endedMs: t0 + 1310 });
  });

  it('continues the same trace for an execution after a restart, from the stored row', async () => {
    const { otlp, db, open, clock } = await setup();
    const first = await open();
    const t0 = clock.nowMs;
    first.executions.assigned({ taskId: 'T-2', attempt: 1, agent: 'shell-1', readySinceMs: t0, nowMs: t0 + 5 });
    const publish = first.executions.publishing('T-2', 1)!;
    publish.end();
    // The supervisor dies; the spans it ended were exported, the root was never in memory.
    await first.tracing.shutdown();
    const second = await open();
    // A restarted outbox publishes the execution again: a second publish span in the same trace.
    second.executions.publishing('T-2', 1)!.end();
    second.executions.acked('T-2', 1, t0 + 100);
    second.executions.resultReceived(result('T-2', 1, t0 + 300, runnerSpan(publish.traceparent, t0 + 110, t0 + 290)), t0 + 400);
    second.executions.settled('T-2', 1, 'succeeded', 'succeeded', t0 + 400);
    second.executions.boardWritten('T-2', 1, { state: 'succeeded', startMs: t0 + 410, endMs: t0 + 420, ok: true });
    await second.tracing.flush();
    await otlp.waitFor((spans) => spans.some((s) => s.name === 'task.execution'), { what: 'the root of T-2' });
    await otlp.waitFor((spans) => spans.length === 7, { what: 'seven spans' });
    expect(otlp.traces().size).toBe(1);
    const root = otlp.spans.find((s) => s.name === 'task.execution')!;
    const assign = otlp.spans.find((s) => s.name === 'assign')!;
    expect(assign.parentSpanId).toBe(root.spanId);
    expect(otlp.spans.filter((s) => s.name === 'publish').map((s) => s.parentSpanId)).toEqual([assign.spanId, assign.spanId]);
    expect(root).toMatchObject({ startTimeMs: t0, endTimeMs: t0 + 420 });
    expect(executionTraceOf(db, 'T-2')?.traceId).toBe(root.traceId);
  });

  it('ends an untaken execution\'s assign span as failed, and gives the retry a trace of its own', async () => {
    const { otlp, open, clock } = await setup();
    const { tracing, executions } = await open();
    const t0 = clock.nowMs;
    executions.assigned({ taskId: 'T-3', attempt: 1, agent: 'shell-1', readySinceMs: t0, nowMs: t0 + 5 });
    executions.publishing('T-3', 1)!.end(new Error('no stream'));
    executions.settled('T-3', 1, 'lost', 'agent shell-1 exited during attempt 1', t0 + 50);
    // The card shows it ready again (with the reason), which ends attempt 1's trace.
    executions.boardWritten('T-3', 1, { state: 'ready', startMs: t0 + 60, endMs: t0 + 70, ok: true });
    executions.boardWritten('T-3', 1, { state: 'ready', startMs: t0 + 80, endMs: t0 + 90, ok: true });
    executions.assigned({ taskId: 'T-3', attempt: 2, agent: 'shell-2', readySinceMs: t0 + 50, nowMs: t0 + 100 });
    await tracing.flush();
    await otlp.waitFor((spans) => spans.length === 4, { what: "attempt 1's four spans (attempt 2 has none yet)" });
    const spans = byName(otlp.spans);
    expect(spans.get('assign')!.status).toEqual({ code: 2, message: 'the agent never took it: lost' });
    expect(spans.get('publish')!.status).toEqual({ code: 2, message: 'no stream' });
    expect(spans.get('task.execution')!.status).toEqual({ code: 2, message: 'agent shell-1 exited during attempt 1' });
    expect(otlp.spans.filter((s) => s.name === 'board.write')).toHaveLength(1);
    const attempt1 = executions.traceIdOf('T-3', 1);
    expect(attempt1).toBe(spans.get('task.execution')!.traceId);
    expect(executions.traceIdOf('T-3')).toBe(executions.traceIdOf('T-3', 2));
    expect(executions.traceIdOf('T-3', 2)).not.toBe(attempt1);
  });

  it("keeps the trace open across a card written in progress, and drops an agent's span of another trace", async () => {
    const { otlp, open, clock } = await setup();
    const { tracing, executions } = await open();
    const t0 = clock.nowMs;
    executions.assigned({ taskId: 'T-4', attempt: 1, agent: 'shell-1', readySinceMs: t0, nowMs: t0 + 5 });
    executions.boardWritten('T-4', 1, { state: 'assigned', startMs: t0 + 6, endMs: t0 + 7, ok: true });
    executions.acked('T-4', 1, t0 + 10);
    const foreign: RunSpan = { name: 'agent.run', traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), parentSpanId: 'ef'.repeat(8), startMs: t0 + 11, endMs: t0 + 12, status: 'ok' };
    executions.resultReceived(result('T-4', 1, t0 + 20, foreign), t0 + 30);
    executions.settled('T-4', 1, 'succeeded', 'succeeded', t0 + 30);
    await tracing.flush();
    await otlp.waitFor((spans) => spans.length === 3, { what: 'board.write, assign and result' });
    expect(otlp.spans.map((s) => s.name).sort()).toEqual(['assign', 'board.write', 'result']);
    executions.boardWritten('T-4', 1, { state: 'succeeded', startMs: t0 + 40, endMs: t0 + 50, ok: true });
    await tracing.flush();
    await otlp.waitFor((spans) => spans.some((s) => s.name === 'task.execution'), { what: 'the root of T-4' });
    expect(otlp.spans.some((s) => s.traceId === foreign.traceId)).toBe(false);
  });

  it('ends the trace at the settlement of an execution whose card Warren will not write', async () => {
    const { otlp, open, clock } = await setup();
    const { tracing, executions } = await open();
    const t0 = clock.nowMs;
    executions.assigned({ taskId: 'T-6', attempt: 1, agent: 'shell-1', readySinceMs: t0, nowMs: t0 + 5 });
    executions.acked('T-6', 1, t0 + 10);
    executions.settled('T-6', 1, 'cancelled', 'moved to the failed column by a person', t0 + 20, { cardWritten: false });
    // A later write of its card (a person's own) changes nothing.
    executions.boardWritten('T-6', 1, { state: 'cancelled', startMs: t0 + 30, endMs: t0 + 31, ok: true });
    await tracing.flush();
    await otlp.waitFor((spans) => spans.some((s) => s.name === 'task.execution'), { what: 'the root of T-6' });
    expect(otlp.spans.map((s) => s.name).sort()).toEqual(['assign', 'task.execution']);
    expect(otlp.spans.find((s) => s.name === 'task.execution')).toMatchObject({ startTimeMs: t0, endTimeMs: t0 + 20, status: { code: 2, message: 'moved to the failed column by a person' } });
    expect(executions.traceOf('T-6')?.endedMs).toBe(t0 + 20);
  });

  it('with tracing off writes nothing and gives no traceparent', async () => {
    const { db } = await setup();
    const tracing = await createTracing({ serviceName: 'warren-supervisor', env: {} });
    const executions = ExecutionTracing.open({ db, tracing });
    expect(executions.enabled).toBe(false);
    executions.boardRefreshed(1, 2);
    executions.assigned({ taskId: 'T-5', attempt: 1, agent: 'shell-1', readySinceMs: 1, nowMs: 2 });
    expect(executions.publishing('T-5', 1)).toBeUndefined();
    executions.acked('T-5', 1, 3);
    executions.settled('T-5', 1, 'succeeded', 'succeeded', 4);
    executions.boardWritten('T-5', 1, { state: 'succeeded', startMs: 5, endMs: 6, ok: true });
    expect(executions.traceIdOf('T-5')).toBeUndefined();
    expect(executionTraceOf(db, 'T-5')).toBeUndefined();
    expect(db.prepare('SELECT COUNT(*) AS n FROM execution_traces').get()).toEqual({ n: 0 });
    await executions.close();
  });
});

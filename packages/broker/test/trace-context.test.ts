import { headers as natsHeaders } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { startTestNats } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { connectBroker, type AssignmentMessage, type Broker, type Delivery, type ResultMessage, type RunSpan } from '../src/index.js';
import { Inbox } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<Broker> {
  const nats = await startTestNats();
  cleanups.push(() => nats.close());
  const broker = await connectBroker({ servers: nats.url, name: 'trace-context-test' });
  cleanups.push(() => broker.close());
  await broker.ensureStreams();
  return broker;
}

function assignment(taskId: string): AssignmentMessage {
  return { taskId, attempt: 1, agent: 'shell-1', title: taskId, body: '', fields: {}, timeoutMs: 60_000, assignedAtMs: Date.now() };
}

async function consumeOne(broker: Broker): Promise<Delivery<AssignmentMessage>> {
  const inbox = new Inbox<Delivery<AssignmentMessage>>();
  const sub = await broker.consumeAssignments('shell-1', async (d) => {
    inbox.push(d);
    d.ack();
  });
  cleanups.push(() => sub.stop());
  return inbox.next('the assignment');
}

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

const SPAN: RunSpan = {
  name: 'agent.run',
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spanId: '53995c3f42cd8ad8',
  parentSpanId: '00f067aa0ba902b7',
  startMs: 1_700_000_000_000,
  endMs: 1_700_000_000_900,
  status: 'error',
  message: 'exit code 1',
};

function result(taskId: string, extra: Record<string, unknown> = {}): ResultMessage {
  return {
    taskId,
    attempt: 1,
    agent: 'shell-1',
    outcome: 'failed',
    exitCode: 1,
    signal: null,
    summary: 'exit code 1',
    outputs: [],
    durationMs: 900,
    finishedAtMs: Date.now(),
    ...extra,
  };
}

describe('trace context on the broker', () => {
  it('carries traceparent and tracestate headers on an assignment to its consumer', async () => {
    const broker = await setup();
    await broker.publishAssignment(assignment('T-1'), { traceparent: TRACEPARENT, tracestate: 'warren=t1,congo=t61rcWkgMzE' });
    const d = await consumeOne(broker);
    expect(d.traceparent).toBe(TRACEPARENT);
    expect(d.tracestate).toBe('warren=t1,congo=t61rcWkgMzE');
    expect(d.headers.traceparent).toBe(TRACEPARENT);
  });

  it('refuses to publish trace context the W3C spec calls invalid', async () => {
    const broker = await setup();
    const refused = (options: { traceparent?: string; tracestate?: string }, field: string) =>
      expect(broker.publishAssignment(assignment('T-2'), options)).rejects.toMatchObject({ code: 'WARREN_BROKER_MESSAGE', field });
    await refused({ traceparent: `00-${'0'.repeat(32)}-00f067aa0ba902b7-01` }, 'traceparent');
    await refused({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01' }, 'traceparent');
    await refused({ traceparent: 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }, 'traceparent');
    await refused({ tracestate: 'congo=x' }, 'tracestate');
    await refused({ traceparent: TRACEPARENT, tracestate: 'Not Valid' }, 'tracestate');
    expect(await broker.pendingFor('shell-1')).toEqual({ assignments: 0, messages: 0 });
  });

  it('hands a consumer no trace context when the stored headers are invalid, and still delivers the message', async () => {
    const broker = await setup();
    const h = natsHeaders();
    h.set('traceparent', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`);
    h.set('tracestate', 'congo=t61rcWkgMzE');
    await jetstream(broker.nc).publish('warren.assign.shell-1', JSON.stringify(assignment('T-3')), { msgID: 'T-3:1', headers: h });
    const d = await consumeOne(broker);
    expect(d.data.taskId).toBe('T-3');
    expect(d.traceparent).toBeUndefined();
    expect(d.tracestate).toBeUndefined();
  });

  it("carries the runner's span with a result, and drops a malformed span without losing the result", async () => {
    const broker = await setup();
    const inbox = new Inbox<Delivery<ResultMessage>>();
    const sub = await broker.consumeResults(async (d) => {
      inbox.push(d);
      d.ack();
    });
    cleanups.push(() => sub.stop());
    await broker.publishResult(result('T-4', { span: SPAN }));
    const withSpan = await inbox.next('the result with its span');
    expect(withSpan.data.span).toEqual(SPAN);

    await jetstream(broker.nc).publish('warren.result.shell-1', JSON.stringify(result('T-5', { span: { ...SPAN, spanId: 'not-hex' } })), { msgID: 'T-5:1:result' });
    const broken = await inbox.next('the result with a broken span');
    expect(broken.data.taskId).toBe('T-5');
    expect(broken.data.span).toBeUndefined();

    // A result without a span (a runner before trace context) is as it was.
    await broker.publishResult(result('T-6'));
    const plain = await inbox.next('the result without a span');
    expect(plain.data.span).toBeUndefined();
    expect(plain.data.outcome).toBe('failed');
  });
});

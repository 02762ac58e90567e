import { headers as natsHeaders } from '@nats-io/nats-core';
import { AckPolicy, jetstream } from '@nats-io/jetstream';
import { makeTempDir, startTestNats } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BrokerError,
  InvalidMessageError,
  InvalidNameError,
  connectBroker,
  startNatsServer,
  type AgentMessage,
  type AssignmentMessage,
  type Broker,
  type ConnectBrokerOptions,
  type Delivery,
  type EmbeddedNatsServer,
  type ProgressMessage,
  type ResultMessage,
} from '../src/index.js';
import { Inbox, recordingLogger, until } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function defer<T extends { close(): Promise<void> }>(resource: T): T {
  cleanups.push(() => resource.close());
  return resource;
}

async function setup(
  options: Partial<ConnectBrokerOptions> = {},
): Promise<{ nats: EmbeddedNatsServer; broker: Broker; invalid: Inbox<{ subject: string; error: InvalidMessageError }> }> {
  const nats = defer(await startTestNats());
  const invalid = new Inbox<{ subject: string; error: InvalidMessageError }>();
  const broker = defer(
    await connectBroker({
      servers: nats.url,
      name: 'broker-test',
      onInvalid: (subject, error) => invalid.push({ subject, error }),
      ...options,
    }),
  );
  await broker.ensureStreams();
  return { nats, broker, invalid };
}

function assignment(taskId: string, attempt = 1, agent = 'shell-1'): AssignmentMessage {
  return {
    taskId,
    attempt,
    agent,
    title: `Task ${taskId}`,
    body: 'Run it',
    command: 'echo hi',
    fields: { priority: 1, tags: ['x'] },
    timeoutMs: 60_000,
    assignedAtMs: Date.now(),
  };
}

function result(taskId: string, agent = 'shell-1'): ResultMessage {
  return {
    taskId,
    attempt: 1,
    agent,
    outcome: 'succeeded',
    exitCode: 0,
    signal: null,
    summary: 'done',
    outputs: ['out/report.md'],
    durationMs: 1234,
    finishedAtMs: Date.now(),
  };
}

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('broker', () => {
  it('creates the streams idempotently', async () => {
    const { broker } = await setup();
    await broker.ensureStreams();
    const jsm = await (await import('@nats-io/jetstream')).jetstreamManager(broker.nc);
    for (const [name, subject] of [
      ['WARREN_ASSIGN', 'warren.assign.>'],
      ['WARREN_RESULTS', 'warren.result.>'],
      ['WARREN_MESSAGES', 'warren.msg.>'],
      ['WARREN_OUTBOX', 'warren.send.>'],
    ] as const) {
      const info = await jsm.streams.info(name);
      expect(info.config).toMatchObject({ subjects: [subject], retention: 'workqueue', storage: 'file', duplicate_window: 120_000_000_000 });
    }
  });

  it('publishes an assignment, consumes it and acks it; a re-publish is de-duplicated', async () => {
    const { broker } = await setup();
    const first = await broker.publishAssignment(assignment('T-1.a'), { traceparent: TRACEPARENT });
    const again = await broker.publishAssignment(assignment('T-1.a'));
    expect(first.duplicate).toBe(false);
    expect(again).toEqual({ seq: first.seq, duplicate: true });
    expect(await broker.pendingFor('shell-1')).toEqual({ assignments: 1, messages: 0 });

    const inbox = new Inbox<Delivery<AssignmentMessage>>();
    defer({ close: () => sub.stop() });
    const sub = await broker.consumeAssignments('shell-1', async (d) => {
      inbox.push(d);
      d.ack();
    });
    const d = await inbox.next('the assignment');
    expect(d.data).toEqual({ ...assignment('T-1.a'), assignedAtMs: d.data.assignedAtMs });
    expect(d.subject).toBe('warren.assign.shell-1');
    expect(d.deliveryCount).toBe(1);
    expect(d.headers['Nats-Msg-Id']).toBe('T-1.a:1');
    expect(d.traceparent).toBe(TRACEPARENT);

    // A new attempt is a new message.
    expect((await broker.publishAssignment(assignment('T-1.a', 2))).duplicate).toBe(false);
    expect((await inbox.next('attempt 2')).data.attempt).toBe(2);
    await sub.stop();
    await until(() => broker.pendingFor('shell-1'), { assignments: 0, messages: 0 }, 'pending work of shell-1');
    expect(inbox.size).toBe(0);
  });

  it('redelivers an unacked assignment after the ack wait', async () => {
    const { broker } = await setup();
    const inbox = new Inbox<Delivery<AssignmentMessage>>();
    const sub = await broker.consumeAssignments(
      'shell-2',
      async (d) => {
        inbox.push(d);
        if (d.deliveryCount > 1) d.ack();
      },
      { ackWaitMs: 500, maxDeliver: 3 },
    );
    defer({ close: () => sub.stop() });
    await broker.publishAssignment(assignment('T-2', 1, 'shell-2'));
    const first = await inbox.next('first delivery');
    const second = await inbox.next('redelivery');
    expect(first.deliveryCount).toBe(1);
    expect(second.deliveryCount).toBe(2);
    expect(second.data.taskId).toBe('T-2');
    expect(second.seq).toBe(first.seq);
    await sub.stop();
    await until(() => broker.pendingFor('shell-2'), { assignments: 0, messages: 0 }, 'pending work of shell-2');
  });

  it('working() holds a delivery past its ack wait', async () => {
    const { broker } = await setup();
    const inbox = new Inbox<Delivery<AssignmentMessage>>();
    const sub = await broker.consumeAssignments('shell-5', async (d) => inbox.push(d), { ackWaitMs: 1000 });
    defer({ close: () => sub.stop() });
    await broker.publishAssignment(assignment('T-5', 1, 'shell-5'));
    const d = await inbox.next('the delivery');
    // Keep working for three ack waits; without working() it would be redelivered meanwhile.
    for (let i = 0; i < 10; i++) {
      d.working();
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    d.ack();
    await until(() => broker.pendingFor('shell-5'), { assignments: 0, messages: 0 }, 'pending work of shell-5');
    expect(inbox.size).toBe(0);
  });

  it('runs up to maxInFlight handlers at once and updates the consumer to new options', async () => {
    const { broker } = await setup();
    const started = new Inbox<Delivery<ResultMessage>>();
    const first = await broker.consumeResults(async (d) => started.push(d), { maxInFlight: 1, ackWaitMs: 500 });
    await first.stop();
    const jsm = await (await import('@nats-io/jetstream')).jetstreamManager(broker.nc);
    expect((await jsm.consumers.info('WARREN_RESULTS', 'supervisor-results')).config).toMatchObject({
      ack_wait: 500_000_000,
      max_ack_pending: 1,
    });

    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const sub = await broker.consumeResults(
      async (d) => {
        started.push(d);
        await released;
        d.ack();
      },
      { maxInFlight: 2, ackWaitMs: 20_000 },
    );
    defer({ close: () => sub.stop() });
    expect((await jsm.consumers.info('WARREN_RESULTS', 'supervisor-results')).config).toMatchObject({
      ack_wait: 20_000_000_000,
      max_ack_pending: 2,
    });
    await broker.publishResult(result('T-40'));
    await broker.publishResult(result('T-41'));
    await broker.publishResult(result('T-42'));
    // Two handlers are running (neither has returned) before the third starts.
    const a = await started.next('first result');
    const b = await started.next('second result');
    expect([a.data.taskId, b.data.taskId].sort()).toEqual(['T-40', 'T-41']);
    expect(started.size).toBe(0);
    release();
    expect((await started.next('third result')).data.taskId).toBe('T-42');
  });

  it('stops a consumer and closes while a handler never returns', async () => {
    const { broker } = await setup();
    const inbox = new Inbox<Delivery<AssignmentMessage>>();
    const sub = await broker.consumeAssignments('stuck', (d) => {
      inbox.push(d);
      return new Promise<void>(() => undefined);
    });
    await broker.publishAssignment(assignment('T-50', 1, 'stuck'));
    await inbox.next('the delivery');
    await sub.stop();
    await sub.stop();
    await broker.close();
    expect(broker.nc.isClosed()).toBe(true);
  });

  it('naks a delivery whose handler throws, and it comes back', async () => {
    const logger = recordingLogger();
    const { broker } = await setup({ handlerErrorNakDelayMs: 100, logger });
    const inbox = new Inbox<number>();
    const sub = await broker.consumeAssignments('shell-3', async (d) => {
      inbox.push(d.deliveryCount);
      if (d.deliveryCount === 1) throw new Error('handler exploded');
      d.ack();
    });
    defer({ close: () => sub.stop() });
    await broker.publishAssignment(assignment('T-3', 1, 'shell-3'));
    expect(await inbox.next('first delivery')).toBe(1);
    expect(await inbox.next('delivery after nak')).toBe(2);
    expect(logger.lines.some((l) => l.level === 'warn' && /handler failed/.test(l.msg ?? ''))).toBe(true);
  });

  it('terminates malformed payloads, reports them, and delivers the next valid one', async () => {
    const { broker, invalid } = await setup();
    const inbox = new Inbox<Delivery<AssignmentMessage>>();
    const sub = await broker.consumeAssignments(
      'shell-4',
      async (d) => {
        inbox.push(d);
        d.ack();
      },
      { ackWaitMs: 500 },
    );
    defer({ close: () => sub.stop() });
    const js = jetstream(broker.nc);
    await js.publish('warren.assign.shell-4', 'this is not json');
    await js.publish('warren.assign.shell-4', JSON.stringify({ ...assignment('T-4'), agent: 'shell-4', attempt: 'one' }));
    await js.publish('warren.assign.shell-4', JSON.stringify(assignment('T-4', 1, 'someone-else')));
    await broker.publishAssignment(assignment('T-4', 1, 'shell-4'));

    const notJson = await invalid.next('the non-JSON report');
    expect(notJson.subject).toBe('warren.assign.shell-4');
    expect(notJson.error).toMatchObject({ code: 'WARREN_BROKER_MESSAGE', field: '' });
    expect(notJson.error.message).toMatch(/not UTF-8 JSON/);
    const badField = await invalid.next('the schema report');
    expect(badField.error).toMatchObject({ subject: 'warren.assign.shell-4', field: 'attempt' });
    const wrongAgent = await invalid.next('the wrong-agent report');
    expect(wrongAgent.error).toMatchObject({ field: 'agent' });

    const valid = await inbox.next('the valid assignment');
    expect(valid.data.taskId).toBe('T-4');
    expect(valid.deliveryCount).toBe(1);
    await sub.stop();
    // Terminated messages are neither pending nor waiting for an ack: nothing is redelivered.
    await until(() => broker.pendingFor('shell-4'), { assignments: 0, messages: 0 }, 'pending work of shell-4');
    expect(inbox.size).toBe(0);
    expect(invalid.size).toBe(0);
  });

  it('round-trips results through the supervisor consumer', async () => {
    const { broker, invalid } = await setup();
    const inbox = new Inbox<Delivery<ResultMessage>>();
    const sub = await broker.consumeResults(async (d) => {
      inbox.push(d);
      d.ack();
    });
    defer({ close: () => sub.stop() });
    const r = result('T-5');
    const ack = await broker.publishResult(r, { traceparent: TRACEPARENT });
    expect(await broker.publishResult(r)).toEqual({ seq: ack.seq, duplicate: true });
    await broker.publishResult(result('T-6', 'other-agent'));
    // A result whose agent contradicts its subject is refused.
    await jetstream(broker.nc).publish('warren.result.shell-1', JSON.stringify(result('T-7', 'impostor')));

    const got = [await inbox.next('result 1'), await inbox.next('result 2')].sort((a, b) => a.data.taskId.localeCompare(b.data.taskId));
    expect(got[0]?.data).toEqual(r);
    expect(got[0]?.headers['Nats-Msg-Id']).toBe('T-5:1:result');
    expect(got[0]?.traceparent).toBe(TRACEPARENT);
    expect(got[1]?.data).toMatchObject({ taskId: 'T-6', agent: 'other-agent' });
    expect(got[1]?.subject).toBe('warren.result.other-agent');
    const report = await invalid.next('the impostor report');
    expect(report.error).toMatchObject({ subject: 'warren.result.shell-1', field: 'agent' });
  });

  it('delivers agent messages with Warren-From and refuses ones without it', async () => {
    const { broker, invalid } = await setup();
    const inbox = new Inbox<Delivery<AgentMessage>>();
    const sub = await broker.consumeMessages('reviewer', async (d) => {
      inbox.push(d);
      d.ack();
    });
    defer({ close: () => sub.stop() });
    const message: AgentMessage = { id: 'writer:1:ref 1', from: 'writer', to: 'reviewer', body: { text: 'please review', n: [1, 2] }, sentAtMs: Date.now() };
    expect((await broker.publishMessage(message)).duplicate).toBe(false);
    expect((await broker.publishMessage(message)).duplicate).toBe(true);
    const forged = natsHeaders();
    forged.set('Warren-From', 'writer');
    await jetstream(broker.nc).publish('warren.msg.reviewer.admin', JSON.stringify({ ...message, id: 'x', from: 'admin' }), { headers: forged });
    await jetstream(broker.nc).publish('warren.msg.reviewer.writer', JSON.stringify({ ...message, id: 'y' }));
    // The sender in the subject must be the one in the message.
    await jetstream(broker.nc).publish('warren.msg.reviewer.admin', JSON.stringify({ ...message, id: 'z' }), { headers: forged });

    const d = await inbox.next('the message');
    expect(d.data).toEqual(message);
    expect(d.subject).toBe('warren.msg.reviewer.writer');
    expect(d.headers['Warren-From']).toBe('writer');
    const mismatch = await invalid.next('the forged-from report');
    expect(mismatch.error).toMatchObject({ field: 'from' });
    expect(mismatch.error.message).toContain("header says 'writer'");
    const missing = await invalid.next('the missing-header report');
    expect(missing.error.message).toContain('header is missing');
    const wrongSubject = await invalid.next('the subject-sender report');
    expect(wrongSubject.error).toMatchObject({ field: 'from', subject: 'warren.msg.reviewer.admin' });
    expect(wrongSubject.error.message).toContain("subject names sender 'admin'");
    await sub.stop();
    await until(() => broker.pendingFor('reviewer'), { assignments: 0, messages: 0 }, 'pending work of reviewer');
  });

  it('carries progress and events over core NATS', async () => {
    const { broker, invalid } = await setup();
    const progress = new Inbox<ProgressMessage>();
    const events = new Inbox<{ kind: string; payload: unknown }>();
    const p = broker.subscribeProgress((m) => progress.push(m), { agent: 'shell-1' });
    const e = broker.subscribeEvents((kind, payload) => events.push({ kind, payload }));
    defer({ close: () => p.stop() });
    defer({ close: () => e.stop() });
    broker.publishProgress({ taskId: 'T-8.x', attempt: 1, agent: 'shell-1', message: 'half way', percent: 50, atMs: 1 });
    broker.publishProgress({ taskId: 'T-9', attempt: 1, agent: 'other', message: 'not for this subscriber', atMs: 1 });
    broker.nc.publish('warren.progress.shell-1.T-10', JSON.stringify({ taskId: 'T-11', attempt: 1, agent: 'shell-1', message: 'x', atMs: 1 }));
    broker.publishProgress({ taskId: 'T-12', attempt: 1, agent: 'shell-1', message: 'last', atMs: 2 });
    broker.publishEvent('task.assigned', { taskId: 'T-8.x' });

    expect(await progress.next('progress')).toEqual({ taskId: 'T-8.x', attempt: 1, agent: 'shell-1', message: 'half way', percent: 50, atMs: 1 });
    expect((await progress.next('last progress')).message).toBe('last');
    expect((await invalid.next('the task-token report')).error).toMatchObject({ subject: 'warren.progress.shell-1.T-10', field: 'taskId' });
    expect(await events.next('event')).toEqual({ kind: 'task.assigned', payload: { taskId: 'T-8.x' } });
    expect(() => broker.publishProgress({ taskId: 'T 1', attempt: 1, agent: 'shell-1', message: '', atMs: 1 })).toThrow(InvalidNameError);
    expect(() => broker.publishProgress({ taskId: 'T1', attempt: 1, agent: 'shell-1', message: '', percent: 120, atMs: 1 })).toThrow(
      InvalidMessageError,
    );
  });

  it('makes a new agent consumer with one read and one create, and one made with another filter again', async () => {
    const { broker } = await setup();
    const ns = broker.namespace;
    const { connect } = await import('@nats-io/transport-node');
    const watcher = await connect({ servers: broker.nc.getServer() });
    defer({ close: () => watcher.close() });
    const seen: string[] = [];
    watcher.subscribe('$JS.API.CONSUMER.>', { callback: (_err, msg) => seen.push(msg.subject) });
    await watcher.flush();

    const inbox = new Inbox<Delivery<AssignmentMessage>>();
    await broker.publishAssignment(assignment('T-60', 1, 'fresh-1'));
    const sub = await broker.consumeAssignments('fresh-1', async (d) => {
      inbox.push(d);
      d.ack();
    });
    defer({ close: () => sub.stop() });
    expect((await inbox.next('the fresh agent\'s assignment')).data.taskId).toBe('T-60');
    await watcher.flush();
    const durable = ns.assignConsumerName('fresh-1');
    const about = seen.filter((s) => s.includes(`.${durable}`) && !s.startsWith('$JS.API.CONSUMER.MSG.NEXT.'));
    expect(about.filter((s) => s.includes('.CREATE.'))).toHaveLength(1);
    // The read that finds no consumer; the pull starts from the create's answer, with no read of its own.
    expect(about.filter((s) => s.startsWith('$JS.API.CONSUMER.INFO.'))).toHaveLength(1);

    // A consumer left with another agent's filter (and so another configuration) is made again.
    const jsm = await (await import('@nats-io/jetstream')).jetstreamManager(broker.nc);
    const stale = ns.assignConsumerName('stale-1');
    await jsm.consumers.add(ns.assignStream, { durable_name: stale, filter_subject: ns.assignSubject('other-1'), ack_policy: AckPolicy.Explicit });
    await broker.publishAssignment(assignment('T-61', 1, 'stale-1'));
    const staleInbox = new Inbox<Delivery<AssignmentMessage>>();
    const staleSub = await broker.consumeAssignments('stale-1', async (d) => {
      staleInbox.push(d);
      d.ack();
    });
    defer({ close: () => staleSub.stop() });
    expect((await staleInbox.next('the stale agent\'s assignment')).data.taskId).toBe('T-61');
    expect((await jsm.consumers.info(ns.assignStream, stale)).config.filter_subject).toBe(ns.assignSubject('stale-1'));
  });

  it('keeps an agent\'s assignment pull open 30 s (idle heartbeat 15 s), the supervisor\'s results pull 5 s', async () => {
    const { broker } = await setup();
    const ns = broker.namespace;
    const { connect } = await import('@nats-io/transport-node');
    const watcher = await connect({ servers: broker.nc.getServer() });
    defer({ close: () => watcher.close() });
    const pulls: { subject: string; expires: number; idleHeartbeat: number }[] = [];
    watcher.subscribe('$JS.API.CONSUMER.MSG.NEXT.>', {
      callback: (_err, msg) => {
        const body = msg.json<{ expires: number; idle_heartbeat: number }>();
        pulls.push({ subject: msg.subject, expires: body.expires, idleHeartbeat: body.idle_heartbeat });
      },
    });
    await watcher.flush();
    const inbox = new Inbox<string>();
    const assignments = await broker.consumeAssignments('pull-1', async (d) => {
      inbox.push(d.data.taskId);
      d.ack();
    });
    defer({ close: () => assignments.stop() });
    const results = await broker.consumeResults(async (d) => {
      inbox.push(d.data.taskId);
      d.ack();
    });
    defer({ close: () => results.stop() });
    await broker.publishAssignment(assignment('T-70', 1, 'pull-1'));
    expect(await inbox.next('the assignment')).toBe('T-70');
    await watcher.flush();
    const seconds = 1e9;
    const agentPulls = pulls.filter((p) => p.subject.endsWith(`.${ns.assignConsumerName('pull-1')}`));
    const resultPulls = pulls.filter((p) => p.subject.endsWith(`.${ns.resultsConsumer}`));
    expect(agentPulls.length).toBeGreaterThan(0);
    expect(resultPulls.length).toBeGreaterThan(0);
    for (const p of agentPulls) expect([p.expires, p.idleHeartbeat]).toEqual([30 * seconds, 15 * seconds]);
    for (const p of resultPulls) expect([p.expires, p.idleHeartbeat]).toEqual([5 * seconds, 2.5 * seconds]);
  });

  it('pulls an agent\'s assignments in batches: one pull request for many tasks taken one at a time', async () => {
    const { broker } = await setup();
    const ns = broker.namespace;
    const { connect } = await import('@nats-io/transport-node');
    const watcher = await connect({ servers: broker.nc.getServer() });
    defer({ close: () => watcher.close() });
    const pulls: number[] = [];
    watcher.subscribe(`$JS.API.CONSUMER.MSG.NEXT.${ns.assignStream}.${ns.assignConsumerName('batch-1')}`, {
      callback: (_err, msg) => pulls.push(msg.json<{ batch: number }>().batch),
    });
    await watcher.flush();
    const inbox = new Inbox<string>();
    let inFlight = 0;
    let mostInFlight = 0;
    const sub = await broker.consumeAssignments('batch-1', async (d) => {
      inFlight += 1;
      mostInFlight = Math.max(mostInFlight, inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight -= 1;
      d.ack();
      inbox.push(d.data.taskId);
    });
    defer({ close: () => sub.stop() });
    const tasks = 24;
    for (let i = 0; i < tasks; i++) await broker.publishAssignment(assignment(`T-B${i}`, 1, 'batch-1'));
    const seen = new Set<string>();
    for (let i = 0; i < tasks; i++) seen.add(await inbox.next(`assignment ${i}`));
    expect(seen.size).toBe(tasks);
    await watcher.flush();
    // One task at a time (max ack pending 1), each delivered once; a pull per task before the
    // batches (a pull of 3 refilled after each message), now the first pull and at most a few more
    // (the pull expires after 30 s on a slow machine).
    expect(mostInFlight).toBe(1);
    expect(pulls[0]).toBeGreaterThanOrEqual(tasks);
    expect(pulls.length).toBeLessThan(tasks / 4);
  });

  it('counts pending work, and deletes an agent’s consumers and queued messages', async () => {
    const { broker } = await setup();
    await broker.publishAssignment(assignment('T-20', 1, 'gone'));
    await broker.publishAssignment(assignment('T-21', 1, 'gone'));
    await broker.publishMessage({ id: 'm-1', from: 'a', to: 'gone', body: 'hi', sentAtMs: 1 });
    expect(await broker.pendingFor('gone')).toEqual({ assignments: 2, messages: 1 });

    const inbox = new Inbox<Delivery<AssignmentMessage>>();
    await broker.consumeAssignments('gone', async (d) => inbox.push(d)); // never acks
    await inbox.next('first assignment');
    // One delivered but unacknowledged, one waiting: both count.
    expect(await broker.pendingFor('gone')).toEqual({ assignments: 2, messages: 1 });

    await broker.deleteAgentConsumers('gone');
    expect(await broker.pendingFor('gone')).toEqual({ assignments: 0, messages: 0 });
    const jsm = await (await import('@nats-io/jetstream')).jetstreamManager(broker.nc);
    await expect(jsm.consumers.info('WARREN_ASSIGN', 'assign-gone')).rejects.toThrow(/consumer not found/);
    await broker.deleteAgentConsumers('gone'); // idempotent
  });

  it('refuses bad input before publishing and fails cleanly after close', async () => {
    const { broker } = await setup();
    await expect(broker.publishAssignment({ ...assignment('T-30'), agent: 'Bad.Agent' })).rejects.toThrow(InvalidNameError);
    await expect(broker.publishAssignment({ ...assignment('T-30'), timeoutMs: -1 })).rejects.toMatchObject({ field: 'timeoutMs' });
    await expect(broker.publishAssignment(assignment('T-30'), { traceparent: 'nope' })).rejects.toMatchObject({ field: 'traceparent' });
    await expect(broker.consumeAssignments('a.b', async () => undefined)).rejects.toThrow(InvalidNameError);
    const closing = broker.close();
    expect(broker.close()).toBe(closing);
    await closing;
    expect(broker.nc.isClosed()).toBe(true);
    await expect(broker.publishAssignment(assignment('T-31'))).rejects.toBeInstanceOf(BrokerError);
  });

  it('fails to connect with a BrokerError when no server listens', async () => {
    const nats = await startTestNats();
    const url = nats.url;
    await nats.close();
    await expect(connectBroker({ servers: url, name: 'nobody', timeoutMs: 1000 })).rejects.toMatchObject({
      code: 'WARREN_BROKER',
      operation: 'connect',
    });
  });

  it('keeps consuming after nats-server restarts on the same port and store', async () => {
    const dir = defer(await makeTempDir('warren-broker-restart-'));
    let server = await startNatsServer({ storeDir: dir.path });
    cleanups.push(() => server.close());
    const port = server.port;
    const logger = recordingLogger();
    const broker = defer(await connectBroker({ servers: server.url, name: 'restart-test', reconnectTimeWaitMs: 100, logger }));
    await broker.ensureStreams();
    const inbox = new Inbox<string>();
    const sub = await broker.consumeAssignments('survivor', async (d) => {
      inbox.push(d.data.taskId);
      d.ack();
    });
    defer({ close: () => sub.stop() });
    await broker.publishAssignment(assignment('before', 1, 'survivor'));
    expect(await inbox.next('the assignment before the restart')).toBe('before');

    const reconnected = new Promise<void>((resolve, reject) => {
      (async () => {
        for await (const s of broker.nc.status()) if (s.type === 'reconnect') return resolve();
      })().catch(reject);
    });
    await server.close();
    server = await startNatsServer({ storeDir: dir.path, port });
    await reconnected;

    await broker.publishAssignment(assignment('after', 1, 'survivor'));
    expect(await inbox.next('the assignment after the restart', 45_000)).toBe('after');
    expect(logger.lines.some((l) => l.msg === 'disconnected from NATS')).toBe(true);
    expect(logger.lines.some((l) => l.msg === 'reconnected to NATS')).toBe(true);
  });
});

import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { makeTempDir } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ASSIGN_STREAM,
  RESULTS_CONSUMER,
  RESULTS_STREAM,
  assignConsumerName,
  connectBroker,
  startNatsServer,
  type AssignmentMessage,
  type Broker,
  type Delivery,
  type ResultMessage,
} from '../src/index.js';
import { Inbox } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A broker on a nats-server with its own store, and `streamWentBack(stream)`: stops the server,
 * removes the stream's message blocks (what a SIGKILL before they reached the disk loses: the
 * stream comes back empty, its sequence from 0) and starts it again on the same port and store,
 * keeping the consumers' state, as a killed nats-server 2.9 can come back.
 */
async function setup(): Promise<{
  broker: Broker;
  jsm: () => JetStreamManager;
  streamWentBack: (stream: string) => Promise<void>;
  killAndRestart: () => Promise<void>;
}> {
  const store = await makeTempDir('warren-stranded-');
  cleanups.push(() => store.close());
  let nats = await startNatsServer({ storeDir: store.path });
  const port = nats.port;
  cleanups.push(() => nats.close());
  const broker = await connectBroker({ servers: nats.url, name: 'stranded-test', reconnectTimeWaitMs: 100 });
  cleanups.push(() => broker.close());
  await broker.ensureStreams();
  let nc = await connect({ servers: nats.url, name: 'stranded-test-admin', reconnectTimeWait: 100 });
  cleanups.push(() => nc.close());
  let manager = await jetstreamManager(nc);
  const restart = async (beforeStart: () => void): Promise<void> => {
      beforeStart();
      nats = await startNatsServer({ storeDir: store.path, port });
      await nc.close();
      nc = await connect({ servers: nats.url, name: 'stranded-test-admin' });
      manager = await jetstreamManager(nc);
      // The broker reconnects by itself; wait until it can publish again.
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          await broker.resultsBacklog();
          break;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
  };
  return {
    broker,
    jsm: () => manager,
    streamWentBack: async (stream) => {
      // A graceful stop however long it takes (`close()` sends SIGKILL after 5 s, which on a loaded
      // host can come before the server wrote its consumers' state, and then nothing is stranded).
      process.kill(nats.pid, 'SIGTERM');
      await nats.exited;
      await restart(() => {
        const msgs = join(store.path, 'jetstream', '$G', 'streams', stream, 'msgs');
        for (const name of readdirSync(msgs)) rmSync(join(msgs, name), { force: true });
      });
    },
    killAndRestart: async () => {
      process.kill(nats.pid, 'SIGKILL');
      await nats.exited;
      await restart(() => undefined);
    },
  };
}

function assignment(taskId: string, agent = 'shell-1'): AssignmentMessage {
  return { taskId, attempt: 1, agent, title: `Task ${taskId}`, body: '', command: 'true', fields: {}, timeoutMs: 60_000, assignedAtMs: Date.now() };
}

function result(taskId: string, agent = 'shell-1'): ResultMessage {
  return { taskId, attempt: 1, agent, outcome: 'succeeded', exitCode: 0, signal: null, summary: 'done', outputs: [], durationMs: 1, finishedAtMs: Date.now() };
}

describe('stranded messages (a consumer past its stream\'s sequence)', () => {
  it('an assignment stored behind the agent\'s consumer is found, and delivered once the consumer is made again', async () => {
    const { broker, jsm, streamWentBack } = await setup();
    const inbox = new Inbox<Delivery<AssignmentMessage>>();
    const sub = await broker.consumeAssignments('shell-1', async (d) => inbox.push(d));
    cleanups.push(() => sub.stop());
    for (const id of ['T-1', 'T-2', 'T-3']) {
      await broker.publishAssignment(assignment(id));
      (await inbox.next(`assignment ${id}`)).ack();
    }
    await streamWentBack(ASSIGN_STREAM);
    await broker.publishAssignment(assignment('T-4'));
    // Stored, yet nothing counts it as to deliver: it would wait forever.
    const before = await jsm().consumers.info(ASSIGN_STREAM, assignConsumerName('shell-1'));
    expect(before.num_pending + before.num_ack_pending).toBe(0);
    expect(before.delivered.stream_seq).toBe(3);
    expect((await jsm().streams.info(ASSIGN_STREAM)).state).toMatchObject({ messages: 1, last_seq: 1 });

    const repair = await broker.repairStranded({ agent: 'shell-1' });
    expect(repair.stranded).toBe(1);
    expect(repair.reason).toMatch(/behind the consumer's delivered sequence 3/);
    const delivery = await inbox.next('the stranded assignment');
    expect(delivery.data.taskId).toBe('T-4');
    delivery.ack();
    // Later assignments flow through the new consumer.
    await broker.publishAssignment(assignment('T-5'));
    const next = await inbox.next('the next assignment');
    expect(next.data.taskId).toBe('T-5');
    next.ack();
  });

  it('a result stored behind the supervisor\'s results consumer is delivered once the consumer is made again', async () => {
    const { broker, jsm, streamWentBack } = await setup();
    const inbox = new Inbox<Delivery<ResultMessage>>();
    const sub = await broker.consumeResults(async (d) => inbox.push(d));
    cleanups.push(() => sub.stop());
    for (const id of ['T-1', 'T-2', 'T-3', 'T-4']) {
      await broker.publishResult(result(id));
      (await inbox.next(`result ${id}`)).ack();
    }
    await streamWentBack(RESULTS_STREAM);
    // The scenario: the consumer came back past its emptied stream.
    expect((await jsm().consumers.info(RESULTS_STREAM, RESULTS_CONSUMER)).delivered.stream_seq).toBe(4);
    await broker.publishResult(result('T-5'));
    await broker.publishResult(result('T-6', 'shell-2'));

    const repair = await broker.repairStranded('results');
    expect(repair.stranded).toBe(2);
    const got = [await inbox.next('a stranded result'), await inbox.next('the other stranded result')];
    expect(got.map((d) => d.data.taskId).sort()).toEqual(['T-5', 'T-6']);
    for (const d of got) d.ack();
  });

  it('a healthy consumer with a message delivered and not yet acknowledged is left alone', async () => {
    const { broker, jsm } = await setup();
    const inbox = new Inbox<Delivery<AssignmentMessage>>();
    const sub = await broker.consumeAssignments('shell-1', async (d) => inbox.push(d));
    cleanups.push(() => sub.stop());
    await broker.publishAssignment(assignment('T-1'));
    await broker.publishAssignment(assignment('T-2'));
    const held = await inbox.next('the first assignment');
    const info = await jsm().consumers.info(ASSIGN_STREAM, assignConsumerName('shell-1'));
    expect(await broker.repairStranded({ agent: 'shell-1' })).toEqual({ stranded: 0, reason: '' });
    expect(await broker.repairStranded('results')).toEqual({ stranded: 0, reason: '' });
    // The same consumer: made at the same time, still holding the first message.
    const after = await jsm().consumers.info(ASSIGN_STREAM, assignConsumerName('shell-1'));
    expect(after.created).toBe(info.created);
    expect(after.num_ack_pending).toBe(1);
    held.ack();
    expect((await inbox.next('the second assignment')).data.taskId).toBe('T-2');
  });

  it('unacknowledged deliveries of messages no longer stored (a broker SIGKILLed right after acknowledgements) are cleared from a stopped consumer', async () => {
    const { broker, jsm, killAndRestart } = await setup();
    const inbox = new Inbox<Delivery<ResultMessage>>();
    const sub = await broker.consumeResults(async (d) => inbox.push(d));
    for (const id of ['T-1', 'T-2', 'T-3']) {
      await broker.publishResult(result(id));
      (await inbox.next(`result ${id}`)).ack();
    }
    await sub.stop();
    await killAndRestart();
    // What the server kept of the acknowledgements varies: the consumer's ack floor, the stream's
    // removals, both or neither. Deliveries are phantoms only when nothing is stored.
    const stored = (await jsm().streams.info(RESULTS_STREAM)).state.messages;
    const before = await jsm().consumers.info(RESULTS_STREAM, RESULTS_CONSUMER);
    expect(await broker.clearPhantoms('results')).toBe(stored === 0 ? before.num_ack_pending : 0);
    const after = await jsm().consumers.info(RESULTS_STREAM, RESULTS_CONSUMER);
    if (stored === 0) expect(after.num_ack_pending + after.num_pending).toBe(0);
    expect((await jsm().streams.info(RESULTS_STREAM)).state.messages).toBe(stored);
  });

  it('a consumer with a message stored and unacknowledged keeps it: no phantom to clear', async () => {
    const { broker, jsm } = await setup();
    const inbox = new Inbox<Delivery<AssignmentMessage>>();
    const sub = await broker.consumeAssignments('shell-1', async (d) => inbox.push(d));
    cleanups.push(() => sub.stop());
    await broker.publishAssignment(assignment('T-1'));
    await inbox.next('assignment T-1');
    expect(await broker.clearPhantoms({ agent: 'shell-1' })).toBe(0);
    expect((await jsm().consumers.info(ASSIGN_STREAM, assignConsumerName('shell-1'))).num_ack_pending).toBe(1);
  });

  it('a consumer that does not exist has nothing stranded', async () => {
    const { broker } = await setup();
    expect(await broker.repairStranded({ agent: 'nobody-1' })).toEqual({ stranded: 0, reason: '' });
  });
});

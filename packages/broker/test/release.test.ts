import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startTestNats } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { connectBroker, type AssignmentMessage, type Broker, type Delivery, type EmbeddedNatsServer } from '../src/index.js';
import { Inbox } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function defer<T extends { close(): Promise<void> }>(resource: T): T {
  cleanups.push(() => resource.close());
  return resource;
}

/** A server, a broker on it, a second connection's JetStream manager, and the JetStream API requests seen on the server. */
async function setup(): Promise<{ nats: EmbeddedNatsServer; broker: Broker; jsm: JetStreamManager; requests: Requests }> {
  const nats = defer(await startTestNats());
  const broker = defer(await connectBroker({ servers: nats.url, name: 'release-test' }));
  await broker.ensureStreams();
  const watcher = await connect({ servers: nats.url, name: 'release-test-watcher' });
  cleanups.push(() => watcher.close());
  const subjects: string[] = [];
  // Every JetStream API request any connection makes goes out on $JS.API.>: a subscriber sees a copy.
  watcher.subscribe('$JS.API.>', { callback: (_err, msg) => subjects.push(msg.subject) });
  await watcher.flush();
  // The server routed each copy when it took the request (before its answer came back); a round
  // trip of the watcher's own comes after every copy routed to it before. Both the mark and the
  // reading make one, so a copy of an earlier request never lands after the mark.
  const requests: Requests = {
    mark: async () => {
      await watcher.flush();
      return subjects.length;
    },
    seen: async (kind, from = 0) => {
      await watcher.flush();
      return subjects.slice(from).filter((s) => s.startsWith(`$JS.API.${kind}.`));
    },
  };
  return { nats, broker, jsm: await jetstreamManager(watcher), requests };
}

/** The JetStream API requests seen on the server. */
interface Requests {
  /** How many were seen so far, every request answered before the call included (a mark for {@link seen}). */
  mark(): Promise<number>;
  /** The subjects of those of `kind` (`CONSUMER.CREATE`, `STREAM.PURGE`, …) from index `from` on. */
  seen(kind: string, from?: number): Promise<string[]>;
}

function assignment(taskId: string, agent: string): AssignmentMessage {
  return { taskId, attempt: 1, agent, title: `Task ${taskId}`, body: 'Run it', command: 'true', fields: {}, timeoutMs: 60_000, assignedAtMs: Date.now() };
}

/** Runs one task on agent `agent`: consumes its assignments (acking each) and publishes one, until it is delivered. */
async function runOne(broker: Broker, agent: string, taskId: string): Promise<void> {
  const inbox = new Inbox<Delivery<AssignmentMessage>>();
  await broker.consumeAssignments(agent, async (d) => {
    d.ack();
    inbox.push(d);
  });
  await broker.publishAssignment(assignment(taskId, agent));
  expect((await inbox.next(`assignment ${taskId}`)).data.taskId).toBe(taskId);
}

describe('releaseAgentConsumers', () => {
  it('keeps an idle assignment consumer for the next agent of the name: no deletion, no creation, no purge before the start', async () => {
    const { broker, jsm, requests } = await setup();
    await runOne(broker, 'slot-1', 'T-1');
    const made = await jsm.consumers.info('WARREN_ASSIGN', 'assign-slot-1');
    await until(async () => (await jsm.consumers.info('WARREN_ASSIGN', 'assign-slot-1')).num_ack_pending, 0);

    const mark = await requests.mark();
    await broker.releaseAgentConsumers('slot-1');
    // The next agent of the name: its start purges old assignments, then consumes.
    expect(await broker.purgeAssignments('slot-1')).toBe(0);
    await runOne(broker, 'slot-1', 'T-2');

    // (Its inbox consumer, never made, is deleted once: this connection does not know it is missing.)
    expect(await requests.seen('CONSUMER.DELETE.WARREN_ASSIGN', mark)).toEqual([]);
    expect(await requests.seen('CONSUMER.CREATE', mark)).toEqual([]);
    // One purge of its assignments and one of its messages at the release; none at the start.
    expect((await requests.seen('STREAM.PURGE', mark)).length).toBe(2);
    const kept = await jsm.consumers.info('WARREN_ASSIGN', 'assign-slot-1');
    expect(kept.created).toBe(made.created);
  });

  it('deletes the consumer and purges what an agent left unacknowledged: the next agent of the name never gets it', async () => {
    const { broker, jsm } = await setup();
    const held = new Inbox<Delivery<AssignmentMessage>>();
    await broker.consumeAssignments('slot-2', async (d) => held.push(d)); // never acks
    await broker.publishAssignment(assignment('T-old', 'slot-2'));
    await held.next('the held assignment');
    await broker.releaseAgentConsumers('slot-2');
    await expect(jsm.consumers.info('WARREN_ASSIGN', 'assign-slot-2')).rejects.toThrow(/consumer not found/);
    expect(await broker.pendingFor('slot-2')).toEqual({ assignments: 0, messages: 0 });

    const next = new Inbox<Delivery<AssignmentMessage>>();
    await broker.consumeAssignments('slot-2', async (d) => {
      d.ack();
      next.push(d);
    });
    await broker.publishAssignment(assignment('T-new', 'slot-2'));
    expect((await next.next('the new assignment')).data.taskId).toBe('T-new');
    expect(next.size).toBe(0);
  });

  it('purges again once something was published to the name after the release', async () => {
    const { broker, requests } = await setup();
    await runOne(broker, 'slot-3', 'T-1');
    await broker.releaseAgentConsumers('slot-3');
    // Published while no agent of the name runs: the purge before the next start must remove it.
    await broker.publishAssignment(assignment('T-stale', 'slot-3'));
    const mark = await requests.mark();
    expect(await broker.purgeAssignments('slot-3')).toBe(1);
    expect((await requests.seen('STREAM.PURGE', mark)).length).toBe(1);
    // Now seen empty again: the next purge needs no request.
    const after = await requests.mark();
    expect(await broker.purgeAssignments('slot-3')).toBe(0);
    expect(await requests.seen('STREAM.PURGE', after)).toEqual([]);
  });

  it('makes a kept consumer afresh when the connection was lost since it was kept', async () => {
    const { broker, jsm, requests } = await setup();
    await runOne(broker, 'slot-4', 'T-1');
    await until(async () => (await jsm.consumers.info('WARREN_ASSIGN', 'assign-slot-4')).num_ack_pending, 0);
    await broker.releaseAgentConsumers('slot-4');
    const kept = await jsm.consumers.info('WARREN_ASSIGN', 'assign-slot-4');
    const statuses = broker.nc.status();
    await broker.nc.reconnect();
    for await (const s of statuses) if (s.type === 'reconnect') break;
    // The broker's own status watch got the same event: let it run before going on.
    await new Promise((resolve) => setImmediate(resolve));
    const mark = await requests.mark();
    // Nothing is known any more: the start purges, and the consumer is made again.
    await broker.purgeAssignments('slot-4');
    await runOne(broker, 'slot-4', 'T-2');
    expect((await requests.seen('STREAM.PURGE', mark)).length).toBe(1);
    expect((await requests.seen('CONSUMER.DELETE.WARREN_ASSIGN', mark)).length).toBe(1);
    const made = await jsm.consumers.info('WARREN_ASSIGN', 'assign-slot-4');
    expect(made.created).not.toBe(kept.created);
  });

  it('deletes an inbox consumer once, and again only after it was made again', async () => {
    const { broker, jsm, requests } = await setup();
    expect(await broker.fetchMessages('slot-5')).toEqual([]);
    await jsm.consumers.info('WARREN_MESSAGES', 'msg-slot-5');
    let mark = await requests.mark();
    await broker.releaseAgentConsumers('slot-5');
    expect((await requests.seen('CONSUMER.DELETE.WARREN_MESSAGES', mark)).length).toBe(1);
    await expect(jsm.consumers.info('WARREN_MESSAGES', 'msg-slot-5')).rejects.toThrow(/consumer not found/);

    mark = await requests.mark();
    await broker.releaseAgentConsumers('slot-5');
    expect(await requests.seen('CONSUMER.DELETE.WARREN_MESSAGES', mark)).toEqual([]);

    // Made again by a fetch: the next release deletes it again, and a message waiting for the name is purged.
    expect(await broker.fetchMessages('slot-5')).toEqual([]);
    await broker.publishMessage({ id: 'm-1', from: 'other', to: 'slot-5', body: 'hi', sentAtMs: 1 });
    mark = await requests.mark();
    await broker.releaseAgentConsumers('slot-5');
    expect((await requests.seen('CONSUMER.DELETE.WARREN_MESSAGES', mark)).length).toBe(1);
    expect(await broker.pendingFor('slot-5')).toEqual({ assignments: 0, messages: 0 });
  });

  it('deletes the consumers it kept when the broker closes', async () => {
    const { broker, jsm } = await setup();
    await runOne(broker, 'slot-6', 'T-1');
    await until(async () => (await jsm.consumers.info('WARREN_ASSIGN', 'assign-slot-6')).num_ack_pending, 0);
    await broker.releaseAgentConsumers('slot-6');
    await jsm.consumers.info('WARREN_ASSIGN', 'assign-slot-6');
    await broker.close();
    await expect(jsm.consumers.info('WARREN_ASSIGN', 'assign-slot-6')).rejects.toThrow(/consumer not found/);
  });
});

/** Re-reads `read` until it returns `expected`; the guard only turns a hang into a failure. */
async function until<T>(read: () => Promise<T>, expected: T, guardMs = 20_000): Promise<void> {
  const deadline = Date.now() + guardMs;
  for (;;) {
    if ((await read()) === expected) return;
    if (Date.now() > deadline) throw new Error(`never saw ${String(expected)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

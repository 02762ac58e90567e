import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { startTestNats } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MessageTimeoutError,
  connectBroker,
  type AgentMessage,
  type Broker,
  type Delivery,
  type InvalidMessageError,
  type OutboxDelivery,
  type ReplyMessage,
  type TopicMessage,
} from '../src/index.js';
import { Inbox, until } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function defer<T extends { close(): Promise<unknown> }>(resource: T): T {
  cleanups.push(async () => {
    await resource.close();
  });
  return resource;
}

async function setup(): Promise<{ broker: Broker; invalid: Inbox<{ subject: string; error: InvalidMessageError }> }> {
  const nats = defer(await startTestNats());
  const invalid = new Inbox<{ subject: string; error: InvalidMessageError }>();
  const broker = defer(
    await connectBroker({ servers: nats.url, name: 'messaging-test', onInvalid: (subject, error) => invalid.push({ subject, error }) }),
  );
  await broker.ensureStreams();
  return { broker, invalid };
}

function message(id: string, to = 'inbox-1', from = 'sender'): AgentMessage {
  return { id, from, to, body: { n: id }, sentAtMs: 1 };
}

describe('fetchMessages', () => {
  it('returns what waits, keeps deliveries ackable after the call and delivers unacknowledged ones again', async () => {
    const { broker } = await setup();
    expect(await broker.fetchMessages('inbox-1')).toEqual([]);
    for (const id of ['m1', 'm2', 'm3']) await broker.publishMessage(message(id));
    await broker.publishMessage(message('from-a-person', 'inbox-1', 'user:ann.lee'));

    const first = await broker.fetchMessages('inbox-1', { max: 2 });
    expect(first.map((d) => d.data.id)).toEqual(['m1', 'm2']);
    expect(first[0]?.subject).toBe('warren.msg.inbox-1.sender');
    const rest = await broker.fetchMessages('inbox-1', { max: 10 });
    expect(rest.map((d) => [d.data.id, d.data.from, d.subject])).toEqual([
      ['m3', 'sender', 'warren.msg.inbox-1.sender'],
      ['from-a-person', 'user:ann.lee', 'warren.msg.inbox-1.user:ann~lee'],
    ]);
    // Acknowledged after other calls went by: still settles.
    for (const d of [first[0], ...rest]) d?.ack();
    // m2 was never acknowledged: it comes again once its ack wait (shortened to 1 s now) ran out.
    let again: Delivery<AgentMessage>[] = [];
    const deadline = Date.now() + 20_000;
    while (again.length === 0 && Date.now() < deadline) again = await broker.fetchMessages('inbox-1', { ackWaitMs: 1_000 });
    expect(again.map((d) => d.data.id)).toEqual(['m2']);
    // At least once: a delivery that raced the end of a pull is lost to it and comes yet again.
    expect(again[0]?.deliveryCount).toBeGreaterThanOrEqual(2);
    again[0]?.ack();
    await until(() => broker.pending('inbox-1'), { assignments: 0, messages: 0 }, 'pending messages of inbox-1');
  });

  it('waits for a first message when asked to and refuses bad limits', async () => {
    const { broker } = await setup();
    const waiting = broker.fetchMessages('inbox-2', { max: 5, expiresMs: 20_000 });
    await until(async () => (await jetstreamManager(broker.nc)).consumers.info('WARREN_MESSAGES', 'msg-inbox-2').then((i) => i.num_waiting > 0), true, 'the pull');
    await broker.publishMessage(message('late', 'inbox-2'));
    const got = await waiting;
    expect(got.map((d) => d.data.id)).toEqual(['late']);
    got[0]?.ack();
    await expect(broker.fetchMessages('inbox-2', { max: 0 })).rejects.toThrow(/max/);
    await expect(broker.fetchMessages('inbox-2', { expiresMs: -1 })).rejects.toThrow(/expiresMs/);
    await expect(broker.fetchMessages('Bad')).rejects.toThrow(/agent name/);
  });

  it('remakes a consumer left with the old filter, keeping the stream, and drops invalid messages', async () => {
    const { broker, invalid } = await setup();
    const jsm = await jetstreamManager(broker.nc);
    await jsm.consumers.add('WARREN_MESSAGES', { durable_name: 'msg-old', filter_subject: 'warren.msg.old', ack_policy: AckPolicy.Explicit });
    await broker.publishMessage(message('kept', 'old'));
    await jetstream(broker.nc).publish('warren.msg.old.sender', JSON.stringify(message('no-header', 'old')));
    const forged = natsHeaders();
    forged.set('Warren-From', 'sender');
    await jetstream(broker.nc).publish('warren.msg.old.other', JSON.stringify(message('wrong-subject', 'old')), { headers: forged });

    const got = await broker.fetchMessages('old', { max: 10 });
    expect((await jsm.consumers.info('WARREN_MESSAGES', 'msg-old')).config.filter_subject).toBe('warren.msg.old.>');
    expect(got.map((d) => d.data.id)).toEqual(['kept']);
    got[0]?.ack();
    expect((await invalid.next('the missing header')).error.message).toContain('header is missing');
    expect((await invalid.next('the subject sender')).error.message).toContain("subject names sender 'other'");
    await until(() => broker.pending('old'), { assignments: 0, messages: 0 }, 'pending messages of old');
  });
});

describe('outbox, topics, replies and presence', () => {
  it('relays outbox messages with from and to from the subject and terminates malformed ones', async () => {
    const { broker, invalid } = await setup();
    const outbox = new Inbox<Delivery<OutboxDelivery>>();
    const sub = await broker.consumeOutbox(async (d) => {
      outbox.push(d);
      d.ack();
    });
    defer({ close: () => sub.stop() });
    const js = jetstream(broker.nc);
    await js.publish('warren.send.a.b', JSON.stringify({ id: 'o1', body: [1, 2] }), { msgID: 'o1' });
    expect((await js.publish('warren.send.a.b', JSON.stringify({ id: 'o1', body: [1, 2] }), { msgID: 'o1' })).duplicate).toBe(true);
    await js.publish('warren.send.a', JSON.stringify({ id: 'o2', body: 1 }));
    await js.publish('warren.send.a.b', '{"id":"o3"}');
    const d = await outbox.next('the outbox message');
    expect(d.data).toEqual({ id: 'o1', body: [1, 2], from: 'a', to: 'b' });
    expect((await invalid.next('the short subject')).subject).toBe('warren.send.a');
    expect((await invalid.next('the missing body')).error).toMatchObject({ field: 'body' });
    const jsm = await jetstreamManager(broker.nc);
    await until(async () => (await jsm.streams.info('WARREN_OUTBOX')).state.messages, 0, 'the outbox stream');
  });

  it('carries topic messages to one topic or all, and reports ones whose subject disagrees', async () => {
    const { broker, invalid } = await setup();
    const one = new Inbox<TopicMessage>();
    const all = new Inbox<TopicMessage>();
    const s1 = broker.subscribeTopics('news', (m) => one.push(m));
    const s2 = broker.subscribeTopics('*', (m) => all.push(m));
    defer({ close: () => s1.stop() });
    defer({ close: () => s2.stop() });
    await broker.nc.flush();
    const news: TopicMessage = { id: 't1', from: 'a', topic: 'news', body: 'x', sentAtMs: 1 };
    broker.publishTopic({ ...news, topic: 'other', id: 't0' });
    broker.publishTopic(news);
    broker.nc.publish('warren.topic.news.b', JSON.stringify(news));
    expect(await one.next('news')).toEqual(news);
    expect((await all.next('the first topic message')).id).toBe('t0');
    expect(await all.next('news on all')).toEqual(news);
    expect((await invalid.next('the mismatched sender')).error).toMatchObject({ field: 'from' });
    expect(() => broker.publishTopic({ ...news, topic: 'Bad' })).toThrow(/topic name/);
    expect(() => broker.subscribeTopics('a.b', () => undefined)).toThrow(/topic name/);
  });

  it('takes the first valid reply to a request and times out without one', async () => {
    const { broker, invalid } = await setup();
    const waiting = broker.awaitReply('asker', 'req-1', 20_000);
    const reply = { id: 'r1', from: 'helper', to: 'asker', inReplyTo: 'req-1', body: 42, sentAtMs: 1 };
    broker.nc.publish('warren.reply.asker.helper.req-1', JSON.stringify({ ...reply, inReplyTo: 'req-2' }));
    broker.publishReply(reply);
    expect(await waiting).toEqual(reply);
    expect((await invalid.next('the reply to another request')).error).toMatchObject({ field: 'inReplyTo' });

    const error = await broker.awaitReply('asker', 'req-3', 200).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MessageTimeoutError);
    expect(error).toMatchObject({ code: 'WARREN_MESSAGE_TIMEOUT', requester: 'asker', requestId: 'req-3' });
    expect(() => broker.awaitReply('asker', 'a.b', 1_000)).toThrow(/request id/);

    // Closing the broker ends a wait at once, not at its timeout.
    const cut = broker.awaitReply('asker', 'req-4', 300_000).catch((e: unknown) => e);
    await broker.close();
    expect(await cut).toMatchObject({ code: 'WARREN_BROKER', message: expect.stringContaining('closed before a reply came') as unknown });
  });

  it('shows an observer every reply of the namespace, and reports one whose subject disagrees', async () => {
    const { broker, invalid } = await setup();
    const seen = new Inbox<ReplyMessage>();
    const sub = broker.subscribeReplies((m) => seen.push(m));
    defer({ close: () => sub.stop() });
    await broker.nc.flush();
    const reply: ReplyMessage = { id: 'r1', from: 'helper', to: 'asker', inReplyTo: 'req-1', body: 'ok', sentAtMs: 1 };
    broker.nc.publish('warren.reply.asker.other.req-1', JSON.stringify(reply));
    broker.publishReply(reply);
    expect(await seen.next('the reply')).toEqual(reply);
    expect((await invalid.next('the reply naming another sender')).error).toMatchObject({ field: 'from' });
  });

  it('answers presence requests, and an answer that throws as an error body', async () => {
    const { broker } = await setup();
    const sub = broker.servePresence((from) => {
      if (from === 'broken') throw Object.assign(new Error('no registry'), { code: 'WARREN_TEST' });
      return { agents: [{ name: from }] };
    });
    defer({ close: () => sub.stop() });
    await broker.nc.flush();
    expect((await broker.nc.request('warren.presence.a', '', { timeout: 20_000 })).json()).toEqual({ agents: [{ name: 'a' }] });
    expect((await broker.nc.request('warren.presence.broken', '', { timeout: 20_000 })).json()).toEqual({
      error: { code: 'WARREN_TEST', message: 'no registry' },
    });
  });
});

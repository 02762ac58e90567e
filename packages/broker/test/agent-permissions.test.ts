/**
 * Agents that connect to NATS directly, held by nats-server itself to the allow-lists
 * `agentNatsPermissions` builds: every refusal asserted here is the server's permissions violation
 * (a `-ERR` the client reports), never a timeout.
 */
import { join } from 'node:path';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { errors as natsErrors, nkeyAuthenticator, type NatsConnection, type Subscription as NatsSubscription } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { fromPublic, fromSeed } from '@nats-io/nkeys';
import { makeTempDir, type TempDir } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_NAMESPACE,
  agentNatsConfig,
  agentNatsPermissions,
  brokerNamespace,
  connectBroker,
  createAgentNkey,
  startNatsServer,
  type AgentNatsGrants,
  type AgentNkey,
  type Broker,
  type Delivery,
  type EmbeddedNatsServer,
  type NatsAgentUser,
  type OutboxDelivery,
  type TopicMessage,
} from '../src/index.js';
import { Inbox } from './helpers.js';

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

const AUTH = { user: 'warren', password: 'supervisor-password-0123' };
const ns = DEFAULT_NAMESPACE;
const STREAM = ns.messagesStream;
const encoder = new TextEncoder();

function user(key: AgentNkey, agent: string, grants: AgentNatsGrants): NatsAgentUser {
  return { nkey: key.publicKey, permissions: agentNatsPermissions(ns, agent, grants) };
}

/** A raw NATS client connected as an agent, with every permissions violation the server reports. */
interface AgentClient {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly violations: Inbox<InstanceType<typeof natsErrors.PermissionViolationError>>;
}

async function connectAgent(server: EmbeddedNatsServer, agent: string, key: AgentNkey): Promise<AgentClient> {
  const config = agentNatsConfig(ns, agent, [server.url], key.seed);
  const nc = await connect({
    servers: [...config.servers],
    name: `agent-${agent}`,
    authenticator: nkeyAuthenticator(encoder.encode(config.nkeySeed)),
    inboxPrefix: config.inboxPrefix,
    reconnect: false,
  });
  defer({ close: () => nc.close() });
  const violations = new Inbox<InstanceType<typeof natsErrors.PermissionViolationError>>();
  const watch = async (): Promise<void> => {
    for await (const s of nc.status()) {
      if (s.type === 'error' && s.error instanceof natsErrors.PermissionViolationError) violations.push(s.error);
    }
  };
  watch().catch(() => undefined); // the status stream ends with the connection
  return { nc, js: jetstream(nc), violations };
}

/** Waits for the server's refusal of `operation` on `subject`, skipping refusals of other subjects. */
async function refused(client: AgentClient, operation: 'publish' | 'subscription', subject: string): Promise<void> {
  for (;;) {
    const v = await client.violations.next(`the server's refusal to ${operation} ${subject}`);
    if (v.operation === operation && v.subject === subject) return;
  }
}

/** Publishes, flushes, and expects the server to refuse it. */
async function publishRefused(client: AgentClient, subject: string): Promise<void> {
  client.nc.publish(subject, '{}');
  await client.nc.flush();
  await refused(client, 'publish', subject);
}

/** Subscribes and expects the server to refuse it: the subscription ends with the violation. */
async function subscribeRefused(client: AgentClient, subject: string): Promise<void> {
  const sub = client.nc.subscribe(subject);
  await client.nc.flush();
  await refused(client, 'subscription', subject);
  const ended = await sub.closed;
  expect(ended).toBeInstanceOf(natsErrors.PermissionViolationError);
}

/** A request the server refuses to let out: it is rejected with the violation, not a timeout. */
async function requestRefused(client: AgentClient, subject: string, body = ''): Promise<void> {
  const error = await client.nc.request(subject, body, { timeout: 20_000 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  // The client wraps it in a RequestError whose cause is the violation.
  const violation = error instanceof natsErrors.PermissionViolationError ? error : (error as Error | undefined)?.cause;
  expect(violation, `the refusal of ${subject}`).toBeInstanceOf(natsErrors.PermissionViolationError);
  expect(violation).toMatchObject({ operation: 'publish', subject });
}

function firstMessage(sub: NatsSubscription, what: string): Promise<unknown> {
  return (async () => {
    for await (const m of sub) return m.json();
    throw new Error(`${what}: the subscription ended without a message`);
  })();
}

interface World {
  dir: TempDir;
  server: EmbeddedNatsServer;
  broker: Broker;
  keys: { a: AgentNkey; b: AgentNkey };
}

const GRANTS_A: AgentNatsGrants = { messageTo: ['b'], publishTopics: ['news'], subscribeTopics: ['news'] };
const GRANTS_B: AgentNatsGrants = { messageTo: ['a'], publishTopics: [], subscribeTopics: ['news'] };

async function world(): Promise<World> {
  const dir = defer(await makeTempDir('warren-agent-permissions-'));
  const keys = { a: createAgentNkey(), b: createAgentNkey() };
  const server = defer(
    await startNatsServer({
      storeDir: join(dir.path, 'nats'),
      authorization: AUTH,
      users: [user(keys.a, 'a', GRANTS_A), user(keys.b, 'b', GRANTS_B)],
    }),
  );
  const broker = defer(await connectBroker({ servers: server.url, name: 'supervisor', credentials: { kind: 'user-password', ...AUTH } }));
  await broker.ensureStreams();
  // The supervisor makes each inbox's durable consumer; agents may only pull from their own.
  expect(await broker.fetchMessages('a')).toEqual([]);
  expect(await broker.fetchMessages('b')).toEqual([]);
  return { dir, server, broker, keys };
}

describe('agentNatsPermissions', () => {
  it('allows an agent its outbox, replies, topics, presence and its own inbox consumer, nothing more', () => {
    expect(agentNatsPermissions(ns, 'a', GRANTS_A)).toEqual({
      publish: {
        allow: [
          'warren.send.a.b',
          'warren.reply.b.a.*',
          'warren.topic.news.a',
          'warren.presence.a',
          '$JS.API.CONSUMER.MSG.NEXT.WARREN_MESSAGES.msg-a',
          '$JS.API.CONSUMER.INFO.WARREN_MESSAGES.msg-a',
          '$JS.ACK.WARREN_MESSAGES.msg-a.>',
        ],
      },
      subscribe: { allow: ['_INBOX.warren.agent.a.>', 'warren.reply.a.>', 'warren.topic.news.*'] },
    });
    const wide = agentNatsPermissions(brokerNamespace('inst'), 'a', { messageTo: '*', publishTopics: '*', subscribeTopics: '*' });
    expect(wide.publish.allow).toEqual([
      'warren.inst.send.a.*',
      'warren.inst.reply.*.a.*',
      'warren.inst.topic.*.a',
      'warren.inst.presence.a',
      '$JS.API.CONSUMER.MSG.NEXT.WARREN_inst_MESSAGES.inst-msg-a',
      '$JS.API.CONSUMER.INFO.WARREN_inst_MESSAGES.inst-msg-a',
      '$JS.ACK.WARREN_inst_MESSAGES.inst-msg-a.>',
    ]);
    expect(wide.subscribe.allow).toEqual(['_INBOX.warren.inst.agent.a.>', 'warren.inst.reply.a.>', 'warren.inst.topic.*.*']);
    expect(() => agentNatsPermissions(ns, 'a', { ...GRANTS_A, messageTo: ['b.c'] })).toThrow(/agent name "b.c"/);
    expect(() => agentNatsPermissions(ns, 'a', { ...GRANTS_A, publishTopics: ['>'] })).toThrow(/topic name ">"/);
  });

  it('makes NKey pairs and the agent config', () => {
    const key = createAgentNkey();
    expect(key.publicKey).toMatch(/^U[A-Z2-7]{55}$/);
    expect(key.seed).toMatch(/^SU[A-Z2-7]{56}$/);
    expect(createAgentNkey().publicKey).not.toBe(key.publicKey);
    // The reference implementation reads the seed back to the same public key, and a signature
    // made with it verifies under that key: the native pair is a real NKey pair.
    for (let i = 0; i < 50; i++) {
      const pair = createAgentNkey();
      const reference = fromSeed(new TextEncoder().encode(pair.seed));
      expect(reference.getPublicKey()).toBe(pair.publicKey);
      const nonce = new TextEncoder().encode(`nonce-${i}`);
      expect(fromPublic(pair.publicKey).verify(nonce, reference.sign(nonce))).toBe(true);
    }
    expect(agentNatsConfig(ns, 'a', ['nats://127.0.0.1:4222'], key.seed)).toEqual({
      servers: ['nats://127.0.0.1:4222'],
      nkeySeed: key.seed,
      inboxPrefix: '_INBOX.warren.agent.a',
      subjectPrefix: 'warren',
    });
    expect(() => agentNatsConfig(ns, 'a', [], key.publicKey)).toThrow(/seed/);
  });
});

describe('agents connected to NATS directly', () => {
  it('use their outbox, own inbox, topics, replies and presence', async () => {
    const { server, broker, keys } = await world();
    const outbox = new Inbox<Delivery<OutboxDelivery>>();
    const relay = await broker.consumeOutbox(async (d) => {
      outbox.push(d);
      d.ack();
    });
    defer({ close: () => relay.stop() });
    const a = await connectAgent(server, 'a', keys.a);
    const b = await connectAgent(server, 'b', keys.b);

    // Outbox: a JetStream publish on its own outbox for B; the supervisor reads who from the subject.
    const ack = await a.js.publish(ns.outboxSubject('a', 'b'), JSON.stringify({ id: 'q1', body: { ask: 'status?' }, request: true }), { msgID: 'q1' });
    expect(ack.stream).toBe(ns.outboxStream);
    const sent = await outbox.next('the outbox message');
    expect(sent.data).toEqual({ id: 'q1', body: { ask: 'status?' }, request: true, from: 'a', to: 'b' });

    // Own inbox: the supervisor relays into it, the agent pulls and acknowledges through its consumer.
    await broker.publishMessage({ id: 'm1', from: 'b', to: 'a', body: 'hello a', sentAtMs: Date.now() });
    const consumer = await a.js.consumers.get(STREAM, ns.messageConsumerName('a'));
    const m = await consumer.next({ expires: 20_000 });
    expect(m?.subject).toBe('warren.msg.a.b');
    expect(m?.json()).toMatchObject({ id: 'm1', from: 'b', body: 'hello a' });
    expect(await m?.ackAck()).toBe(true);
    expect(await broker.pending('a')).toEqual({ assignments: 0, messages: 0 });

    // Topics: A publishes on its topic; A, B and the supervisor subscribers get it.
    const seenBySupervisor = new Inbox<TopicMessage>();
    const topicSub = broker.subscribeTopics('news', (msg) => seenBySupervisor.push(msg));
    defer({ close: () => topicSub.stop() });
    const aNews = a.nc.subscribe(ns.topicFilter('news'));
    const bNews = b.nc.subscribe(ns.topicFilter('news'));
    await Promise.all([a.nc.flush(), b.nc.flush(), broker.nc.flush()]);
    const topicMessage: TopicMessage = { id: 't1', from: 'a', topic: 'news', body: 'built', sentAtMs: 1 };
    a.nc.publish(ns.topicSubject('news', 'a'), JSON.stringify(topicMessage));
    expect(await firstMessage(aNews, 'A on news')).toEqual(topicMessage);
    expect(await firstMessage(bNews, 'B on news')).toEqual(topicMessage);
    expect(await seenBySupervisor.next('the supervisor on news')).toEqual(topicMessage);

    // Replies: B answers A's request on A's reply subject; A and the supervisor's awaitReply get it.
    const waiting = broker.awaitReply('a', 'q1', 20_000);
    const aReplies = a.nc.subscribe(`${ns.replyPrefix}.a.>`);
    await Promise.all([a.nc.flush(), broker.nc.flush()]);
    const reply = { id: 'r1', from: 'b', to: 'a', inReplyTo: 'q1', body: 'all green', sentAtMs: 2 };
    b.nc.publish(ns.replySubject('a', 'b', 'q1'), JSON.stringify(reply));
    expect(await firstMessage(aReplies, 'A on its reply subject')).toEqual(reply);
    expect(await waiting).toEqual(reply);

    // Presence: the supervisor answers A's request on A's own presence subject.
    const presence = broker.servePresence((from) => ({ agents: [{ name: from === 'a' ? 'b' : 'a' }] }));
    defer({ close: () => presence.stop() });
    await broker.nc.flush();
    const answer = await a.nc.request(ns.presenceSubject('a'), '', { timeout: 20_000 });
    expect(answer.json()).toEqual({ agents: [{ name: 'b' }] });
    expect(a.violations.size).toBe(0);
    expect(b.violations.size).toBe(0);
  });

  it('cannot read another inbox, touch the JetStream API beyond its consumer, or speak as another agent', async () => {
    const { server, broker, keys } = await world();
    await broker.publishMessage({ id: 'for-b', from: 'a', to: 'b', body: 'secret of b', sentAtMs: 1 });
    const a = await connectAgent(server, 'a', keys.a);

    // B's inbox, in every form: its subjects, its consumer, its request inboxes.
    await subscribeRefused(a, 'warren.msg.b.>');
    await subscribeRefused(a, 'warren.msg.>');
    await subscribeRefused(a, '_INBOX.warren.agent.b.>');
    await subscribeRefused(a, 'warren.reply.b.>');
    await requestRefused(a, `$JS.API.CONSUMER.MSG.NEXT.${STREAM}.msg-b`, JSON.stringify({ batch: 1, expires: 1_000_000_000 }));
    await requestRefused(a, `$JS.API.CONSUMER.INFO.${STREAM}.msg-b`);
    const viaClient = await a.js.consumers.get(STREAM, 'msg-b').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String(viaClient)).toMatch(/Permissions Violation for Publish to "\$JS\.API\.CONSUMER\.INFO\.WARREN_MESSAGES\.msg-b"/);

    // The JetStream API beyond pulling from its own consumer: create, delete, read by sequence.
    const create = JSON.stringify({ stream_name: STREAM, config: { durable_name: 'spy', filter_subject: 'warren.msg.b.>', ack_policy: 'explicit' } });
    await requestRefused(a, `$JS.API.CONSUMER.CREATE.${STREAM}.spy.warren.msg.b.>`, create);
    await requestRefused(a, `$JS.API.CONSUMER.CREATE.${STREAM}`, create);
    await requestRefused(a, `$JS.API.CONSUMER.DURABLE.CREATE.${STREAM}.spy`, create);
    await requestRefused(a, `$JS.API.CONSUMER.DELETE.${STREAM}.msg-b`);
    await requestRefused(a, `$JS.API.CONSUMER.DELETE.${STREAM}.msg-a`);
    await requestRefused(a, `$JS.API.STREAM.MSG.GET.${STREAM}`, JSON.stringify({ seq: 1 }));
    await requestRefused(a, `$JS.API.DIRECT.GET.${STREAM}`, JSON.stringify({ seq: 1 }));
    await requestRefused(a, `$JS.API.STREAM.INFO.${STREAM}`);
    await requestRefused(a, '$JS.API.INFO');

    // Speaking as B, or past the supervisor into an inbox.
    await publishRefused(a, 'warren.send.b.a');
    await publishRefused(a, 'warren.send.b.b');
    await publishRefused(a, 'warren.msg.b.a');
    await publishRefused(a, 'warren.msg.a.a');
    await publishRefused(a, 'warren.topic.news.b');
    await publishRefused(a, 'warren.reply.a.b.q1');
    await publishRefused(a, 'warren.send.a.c');
    await requestRefused(a, 'warren.presence.b');

    // B's message is still there, undelivered, for B alone.
    expect(await broker.pending('b')).toEqual({ assignments: 0, messages: 1 });
    const [forB] = await broker.fetchMessages('b', { max: 5 });
    expect(forB?.data).toMatchObject({ id: 'for-b', body: 'secret of b' });
    forB?.ack();
    expect(a.nc.isClosed()).toBe(false);
  });

  it('loses a revoked permission on its live connection', async () => {
    const { server, broker, keys } = await world();
    const outbox = new Inbox<Delivery<OutboxDelivery>>();
    const relay = await broker.consumeOutbox(async (d) => {
      outbox.push(d);
      d.ack();
    });
    defer({ close: () => relay.stop() });
    const presence = broker.servePresence(() => ({ agents: [] }));
    defer({ close: () => presence.stop() });
    const a = await connectAgent(server, 'a', keys.a);
    const news = a.nc.subscribe(ns.topicFilter('news'));
    await a.nc.flush();
    a.nc.publish(ns.outboxSubject('a', 'b'), JSON.stringify({ id: 'before', body: 1 }));
    expect((await outbox.next('the message before the revocation')).data).toMatchObject({ id: 'before', from: 'a', to: 'b' });

    await server.setUsers([user(keys.a, 'a', { messageTo: [], publishTopics: [], subscribeTopics: [] }), user(keys.b, 'b', GRANTS_B)]);

    // The subscription the server no longer allows ends with its violation, on the same connection.
    await refused(a, 'subscription', ns.topicFilter('news'));
    expect(await news.closed).toBeInstanceOf(natsErrors.PermissionViolationError);
    await publishRefused(a, ns.outboxSubject('a', 'b'));
    await publishRefused(a, ns.topicSubject('news', 'a'));
    // What it still may do works on that connection.
    expect((await a.nc.request(ns.presenceSubject('a'), '', { timeout: 20_000 })).json()).toEqual({ agents: [] });
    expect(a.nc.isClosed()).toBe(false);
    expect(outbox.size).toBe(0);

    // Granted again, the same connection may message B once more.
    await server.setUsers([user(keys.a, 'a', GRANTS_A), user(keys.b, 'b', GRANTS_B)]);
    a.nc.publish(ns.outboxSubject('a', 'b'), JSON.stringify({ id: 'after', body: 2 }));
    expect((await outbox.next('the message after the grant')).data).toMatchObject({ id: 'after' });
  });

  it('checks users, needs authorization for them and serializes reloads', async () => {
    const dir = defer(await makeTempDir('warren-agent-users-'));
    const key = createAgentNkey();
    await expect(startNatsServer({ storeDir: join(dir.path, 'plain'), users: [user(key, 'a', GRANTS_A)] })).rejects.toThrow(/need authorization/);
    const server = defer(await startNatsServer({ storeDir: join(dir.path, 'nats'), authorization: AUTH }));
    await expect(server.setUsers([{ nkey: 'Unot-a-key', permissions: { publish: { allow: [] }, subscribe: { allow: [] } } }])).rejects.toThrow(
      /setUsers users\[0\]\.nkey/,
    );
    await expect(
      server.setUsers([{ nkey: key.publicKey, permissions: { publish: { allow: ['a b'] }, subscribe: { allow: [] } } }]),
    ).rejects.toThrow(/publish\.allow\[0\]/);
    await expect(server.setUsers([user(key, 'a', GRANTS_A), user(key, 'a', GRANTS_B)])).rejects.toThrow(/listed twice/);
    // Several reloads in a row all apply, in order: the last one wins.
    await Promise.all([
      server.setUsers([]),
      server.setUsers([user(key, 'a', GRANTS_B)]),
      server.setUsers([user(key, 'a', GRANTS_A)]),
    ]);
    const a = await connectAgent(server, 'a', key);
    const broker = defer(await connectBroker({ servers: server.url, name: 'supervisor', credentials: { kind: 'user-password', ...AUTH } }));
    const presence = broker.servePresence(() => 'here');
    defer({ close: () => presence.stop() });
    await broker.nc.flush();
    a.nc.publish(ns.topicSubject('news', 'a'), '{}'); // allowed by GRANTS_A, not by GRANTS_B
    expect((await a.nc.request(ns.presenceSubject('a'), '', { timeout: 20_000 })).json()).toBe('here');
    expect(a.violations.size).toBe(0);
  });
});

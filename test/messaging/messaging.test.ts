/**
 * Messaging between agents end to end: `warren up` (the built CLI) with its own nats-server, two
 * shell agents in real sandboxes, and raw NATS clients connected with each agent's own
 * `~/.warren/nats.json` (as an agent on another host would). Checks the supervisor's decisions (the
 * `::send` lines of the agent channel, audited with the body's digest, counted) and the server's
 * (A cannot read B's inbox or speak as B, whatever the supervisor does), the relay of the outbox,
 * request and reply, topics, presence, revocation on a live connection, and waking a sleeping agent.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, type Consumer } from '@nats-io/jetstream';
import { errors as natsErrors, nkeyAuthenticator, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { brokerNamespace, type AgentNatsConfig, type BrokerNamespace } from '@warren/broker';
import { openDatabase } from '@warren/store';
import { beforeAll, describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, startWarren, waitFor, warren, type AuditRow, type TestLayout } from '../support/cli.js';

const { layouts, running } = cleanUpAfterEach();
const clients: NatsConnection[] = [];
const encoder = new TextEncoder();

beforeAll(() => requireMachine());

/** A raw NATS client connected as an agent, with the permission violations the server reports to it. */
interface AgentClient {
  readonly name: string;
  readonly nc: NatsConnection;
  readonly config: AgentNatsConfig;
  readonly ns: BrokerNamespace;
  readonly violations: InstanceType<typeof natsErrors.PermissionViolationError>[];
}

function layout(tasks: Record<string, string>): TestLayout {
  const made = makeTestLayout(tasks);
  layouts.push(made);
  return made;
}

function natsFile(dir: string, agent: string): string {
  return join(dir, 'home', 'shell', agent, '.warren', 'nats.json');
}

async function connectAgent(dir: string, agent: string): Promise<AgentClient> {
  const config = JSON.parse(readFileSync(natsFile(dir, agent), 'utf8')) as AgentNatsConfig;
  const nc = await connect({
    servers: [...config.servers],
    name: `test-${agent}`,
    authenticator: nkeyAuthenticator(encoder.encode(config.nkeySeed)),
    inboxPrefix: config.inboxPrefix,
    reconnect: false,
  });
  clients.push(nc);
  const violations: AgentClient['violations'] = [];
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'error' && s.error instanceof natsErrors.PermissionViolationError) violations.push(s.error);
    }
  })().catch(() => undefined);
  const ns = config.subjectPrefix === 'warren' ? brokerNamespace() : brokerNamespace(config.subjectPrefix.slice('warren.'.length));
  return { name: agent, nc, config, ns, violations };
}

async function closeClients(): Promise<void> {
  for (const nc of clients.splice(0)) await nc.close().catch(() => undefined);
}

/** Waits for the server's refusal of `operation` on `subject` reported to `client` (an error, not a timeout). */
async function refused(client: AgentClient, operation: 'publish' | 'subscription', subject: string): Promise<void> {
  await waitFor(`the server refusing ${client.name} to ${operation} ${subject}`, () => client.violations.some((v) => v.operation === operation && v.subject === subject), 30_000);
}

async function publishRefused(client: AgentClient, subject: string, body: unknown = {}): Promise<void> {
  client.nc.publish(subject, JSON.stringify(body));
  await client.nc.flush();
  await refused(client, 'publish', subject);
}

async function subscribeRefused(client: AgentClient, subject: string): Promise<void> {
  const sub = client.nc.subscribe(subject);
  await client.nc.flush();
  await refused(client, 'subscription', subject);
  expect(await sub.closed).toBeInstanceOf(natsErrors.PermissionViolationError);
}

/** Pulls the agent's inbox with its own credentials until `count` messages came (acknowledging each). */
async function pullInbox(client: AgentClient, count: number): Promise<{ subject: string; data: Record<string, unknown> }[]> {
  const js = jetstream(client.nc);
  const consumer: Consumer = await js.consumers.get(client.ns.messagesStream, client.ns.messageConsumerName(client.name));
  const got: { subject: string; data: Record<string, unknown> }[] = [];
  const deadline = Date.now() + 60_000;
  while (got.length < count && Date.now() < deadline) {
    const batch = await consumer.fetch({ max_messages: count - got.length, expires: 2_000 });
    for await (const m of batch) {
      got.push({ subject: m.subject, data: m.json<Record<string, unknown>>() });
      m.ack();
    }
  }
  return got;
}

function firstMessage(sub: Subscription, what: string): Promise<Record<string, unknown>> {
  return (async () => {
    for await (const m of sub) return m.json<Record<string, unknown>>();
    throw new Error(`${what}: the subscription ended without a message`);
  })();
}

async function audit(args: (...extra: string[]) => string[], action: string): Promise<AuditRow[]> {
  return JSON.parse((await warren(['audit', '--json', '--action', action, ...args()])).stdout) as AuditRow[];
}

async function accountNames(args: (...extra: string[]) => string[]): Promise<string[]> {
  return (JSON.parse((await warren(['accounts', '--json', ...args()])).stdout) as { name: string }[]).map((a) => a.name).sort();
}

/** The audit rows of `action`, read again until `done` holds of them (60 s at most). */
async function auditUntil(args: (...extra: string[]) => string[], action: string, done: (rows: AuditRow[]) => boolean): Promise<AuditRow[]> {
  for (const deadline = Date.now() + 60_000; ; ) {
    const rows = await audit(args, action);
    if (done(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`the audit rows of ${action} never became what was waited for: ${JSON.stringify(rows).slice(0, 2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function sha256(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

/** A task that waits for `$HOME/go` (written by the test), sends what its lines say, then stays busy. */
const waiting = (id: string): string =>
  shellTask(id, 'while [ ! -s $HOME/go ]; do sleep 0.2; done; cat $HOME/go; sleep 300');

describe('messages between agents', () => {
  it('carries messages, requests, replies, topics and presence between two sandboxed agents; A cannot read B\'s inbox or speak as B, neither through the supervisor nor at the server; a revoked permission ends on the live connection', async () => {
    const { dir, args } = layout({ one: waiting('one'), two: waiting('two') });
    appendFileSync(join(dir, 'policies', 'policy.csv'), '\np, role:worker, agent:shell-9, message, deny\n');
    const up = startWarren(args('up', '--http', 'off', '--kill-grace', '1s'));
    running.push(up);
    try {
      await waitFor('two agents with their NATS credentials', () => {
        const names = ['shell-1', 'shell-2'];
        return names.every((n) => existsSync(natsFile(dir, n)));
      }, 120_000);
      const [a, b] = ['shell-1', 'shell-2'];
      const accounts = JSON.parse((await warren(['accounts', '--json', ...args()])).stdout) as { name: string; uid: number }[];
      const uidA = accounts.find((x) => x.name === a)!.uid;
      const info = statSync(natsFile(dir, a));
      expect(info.mode & 0o777).toBe(0o400);
      expect(info.uid).toBe(uidA);

      const A = await connectAgent(dir, a);
      const B = await connectAgent(dir, b);
      const p = A.config.subjectPrefix;
      expect(A.config.inboxPrefix).toBe(`_INBOX.${p}.agent.${a}`);

      // The channel: A's task sends to B and to a denied agent; the body's marker is never audited.
      const marker = 'marker-7f3c9a';
      // The body claims to be from B: the sender is the channel's agent whatever the body says.
      const goLines = [`::send ${b}:: {"hi":"${marker}","from":"${b}"}`, `::send shell-9:: {"secret":"${marker}"}`].join('\n');
      writeFileSync(join(dir, 'home', 'shell', a, 'go'), `${goLines}\n`);

      // B reads its inbox with its own credentials (pull from its consumer): A's message, named by the gateway.
      const [viaChannel] = await pullInbox(B, 1);
      expect(viaChannel!.subject).toBe(`${p}.msg.${b}.${a}`);
      expect(viaChannel!.data).toMatchObject({ from: a, to: b, body: { hi: marker, from: b } });

      // Direct: A's outbox, relayed by the supervisor to B's inbox.
      A.nc.publish(`${p}.send.${a}.${b}`, JSON.stringify({ id: 'direct-1', from: b, body: { n: 1 } }));
      const [direct] = await pullInbox(B, 1);
      expect(direct!.data).toMatchObject({ id: 'direct-1', from: a, to: b, body: { n: 1 } });
      // The same id again (an at-least-once re-send): decided again, but the inbox keeps one copy.
      A.nc.publish(`${p}.send.${a}.${b}`, JSON.stringify({ id: 'direct-1', body: { n: 1 } }));
      await auditUntil(args, 'policy.decide', (r) => r.filter((x) => x.details.messageId === 'direct-1').length === 2);

      // Request and reply: A waits on its reply subject, B answers the request it pulled.
      const replies = A.nc.subscribe(`${p}.reply.${a}.>`);
      const reply = firstMessage(replies, 'the reply');
      await A.nc.flush();
      A.nc.publish(`${p}.send.${a}.${b}`, JSON.stringify({ id: 'req-1', body: 'ping', request: true }));
      const [request] = await pullInbox(B, 1);
      expect(request!.data).toMatchObject({ id: 'req-1', from: a, body: 'ping', request: true });
      B.nc.publish(`${p}.reply.${a}.${b}.req-1`, JSON.stringify({ id: 'rep-1', from: b, to: a, inReplyTo: 'req-1', body: 'pong', sentAtMs: Date.now() }));
      expect(await reply).toMatchObject({ from: b, inReplyTo: 'req-1', body: 'pong' });

      // Topics: both subscribe; A publishes; B gets it.
      const bNews = B.nc.subscribe(`${p}.topic.news.*`);
      const aNews = A.nc.subscribe(`${p}.topic.news.*`);
      const bGot = firstMessage(bNews, 'the topic message');
      await B.nc.flush();
      await A.nc.flush();
      A.nc.publish(`${p}.topic.news.${a}`, JSON.stringify({ id: 'topic-1', from: a, topic: 'news', body: { headline: 1 }, sentAtMs: Date.now() }));
      expect(await bGot).toMatchObject({ from: a, topic: 'news', body: { headline: 1 } });

      // Presence: the supervisor answers with the agents A may message.
      const presence = (await A.nc.request(`${p}.presence.${a}`, '', { timeout: 20_000 })).json<{ agents: { name: string; state: string }[] }>();
      expect(presence.agents.map((x) => x.name)).toEqual([b]);

      // At the server: A cannot read B's inbox, pull B's consumer, or publish as B.
      await subscribeRefused(A, `${p}.msg.${b}.>`);
      await subscribeRefused(A, `${p}.msg.>`);
      await subscribeRefused(A, `_INBOX.${p}.agent.${b}.>`);
      await publishRefused(A, `${p}.send.${b}.${a}`, { id: 'forged', body: 'as b' });
      await publishRefused(A, `${p}.msg.${b}.${a}`);
      await publishRefused(A, `$JS.API.CONSUMER.MSG.NEXT.${A.ns.messagesStream}.${A.ns.messageConsumerName(b)}`);
      await publishRefused(A, `$JS.API.CONSUMER.CREATE.${A.ns.messagesStream}`);
      await publishRefused(A, `${p}.send.${a}.shell-9`);

      // Audit: the allowed and the denied message with the body's digest, never the body; counts.
      const rows = await auditUntil(args, 'message.*', (r) => r.some((x) => x.action === 'message.published') && r.some((x) => (x.details as { id?: string }).id === 'rep-1'));
      expect(JSON.stringify(rows)).not.toContain(marker);
      expect(rows).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ action: 'message.sent', actor: `agent:${a}`, object: `agent:${b}`, details: expect.objectContaining({ sha256: sha256({ hi: marker, from: b }), via: 'channel' }) }),
          expect.objectContaining({ action: 'message.denied', actor: `agent:${a}`, object: 'agent:shell-9', details: expect.objectContaining({ sha256: sha256({ secret: marker }) }) }),
          expect.objectContaining({ action: 'message.sent', object: `agent:${b}`, details: expect.objectContaining({ id: 'direct-1', via: 'outbox', sha256: sha256({ n: 1 }) }) }),
          expect.objectContaining({ action: 'message.sent', object: `agent:${b}`, details: expect.objectContaining({ id: 'req-1', request: true }) }),
          expect.objectContaining({ action: 'message.published', actor: `agent:${a}`, object: 'topic:news', details: expect.objectContaining({ id: 'topic-1', via: 'outbox' }) }),
          expect.objectContaining({ action: 'message.sent', actor: `agent:${b}`, object: `agent:${a}`, details: expect.objectContaining({ id: 'rep-1', inReplyTo: 'req-1', via: 'outbox', sha256: sha256('pong') }) }),
        ]),
      );
      const db = openDatabase(join(dir, 'var', 'warren.db'), { readonly: true });
      try {
        const counts = db.prepare('SELECT from_name AS "from", to_name AS "to", topic, count, denied FROM message_counts ORDER BY 1, 2, 3').all();
        expect(counts).toEqual(
          expect.arrayContaining([
            { from: a, to: b, topic: '', count: 3, denied: 0 },
            { from: a, to: 'shell-9', topic: '', count: 1, denied: 1 },
            { from: a, to: '*', topic: 'news', count: 1, denied: 0 },
            { from: b, to: a, topic: '', count: 1, denied: 0 },
          ]),
        );
      } finally {
        db.close();
      }

      // Revocation: the policy takes A's messages to B and its news subscription; the server applies it to A's live connection.
      const usersBefore = (await audit(args, 'broker.users')).length;
      appendFileSync(join(dir, 'policies', 'policy.csv'), `p, ${a}, agent:${b}, message, deny\np, ${a}, topic:news, subscribe, deny\n`);
      await auditUntil(args, 'broker.users', (r) => r.length > usersBefore);
      expect(await aNews.closed).toBeInstanceOf(natsErrors.PermissionViolationError);
      await publishRefused(A, `${p}.send.${a}.${b}`, { id: 'after-revocation', body: 1 });
      expect(A.nc.isClosed()).toBe(false);
      bNews.unsubscribe();
    } finally {
      await closeClients();
    }
    up.child.kill('SIGTERM');
    const result = await up.done;
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
  });

  it('lets two agents talk through their bus sockets with warren-bus: send, receive, request and reply, topics, presence; a refused send exits 1', async () => {
    const run = (id: string): string =>
      shellTask(id, 'while [ ! -s $HOME/go ]; do sleep 0.2; done; sh $HOME/go > out.txt 2>&1; echo "exit=$?" >> out.txt; sleep 300');
    const { dir, args } = layout({ one: run('one'), two: run('two') });
    appendFileSync(join(dir, 'policies', 'policy.csv'), '\np, role:worker, agent:shell-9, message, deny\n');
    const up = startWarren(args('up', '--http', 'off', '--kill-grace', '1s'));
    running.push(up);
    const card = (id: string): string => readFileSync(join(dir, 'kanban', 'tasks', `${id}.md`), 'utf8');
    await waitFor('both tasks running', () => /^status: in_progress$/m.test(card('one')) && /^status: in_progress$/m.test(card('two')), 120_000);
    const a = /^assignee: (.+)$/m.exec(card('one'))![1]!;
    const b = /^assignee: (.+)$/m.exec(card('two'))![1]!;
    const work = (agent: string, id: string, file: string): string => join(dir, 'home', 'shell', agent, 'work', id, file);
    const idOf = `node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8")).id)'`;
    // B: subscribes to news, takes A's message, answers A's request.
    writeFileSync(
      join(dir, 'home', 'shell', b, 'go'),
      [
        'warren-bus subscribe news --count 1 > news.ndjson &',
        'warren-bus recv --wait 30000 --max 1 > first.ndjson',
        'warren-bus recv --wait 30000 --max 1 > request.ndjson',
        `warren-bus reply ${a} "$(${idOf} < request.ndjson)" '{"pong":true}' > replied.json`,
        'wait',
        'warren-bus subscribe alerts > alerts.ndjson 2> alerts.err; echo $? > alerts-code.txt',
        '',
      ].join('\n'),
    );
    // A: presence, a message, a request, a refused message, then news until B has heard some.
    writeFileSync(
      join(dir, 'home', 'shell', a, 'go'),
      [
        'warren-bus presence > presence.ndjson',
        `warren-bus send ${b} '{"hello":"b"}' > sent.json`,
        `warren-bus request ${b} '{"ping":1}' --timeout 60000 > reply.json`,
        'warren-bus send shell-9 secret 2> refused.txt; echo $? > refused-code.txt',
        "for i in $(seq 1 300); do [ -e $HOME/stop ] && break; warren-bus publish news '{\"n\":'$i'}' > /dev/null; sleep 0.2; done",
        "for i in $(seq 1 300); do [ -e $HOME/stop-alerts ] && break; warren-bus publish alerts '{\"n\":'$i'}' > /dev/null; sleep 0.2; done",
        '',
      ].join('\n'),
    );
    const hasLine = (file: string): boolean => existsSync(file) && readFileSync(file, 'utf8').includes('\n');
    await waitFor('B to hear the news', () => hasLine(work(b, 'two', 'news.ndjson')), 120_000);
    writeFileSync(join(dir, 'home', 'shell', a, 'stop'), 'x');
    // Revocation through the bus: B's live subscription to alerts ends when the policy takes it.
    await waitFor('B to hear an alert', () => hasLine(work(b, 'two', 'alerts.ndjson')), 120_000);
    writeFileSync(join(dir, 'home', 'shell', a, 'stop-alerts'), 'x');
    appendFileSync(join(dir, 'policies', 'policy.csv'), `p, ${b}, topic:alerts, subscribe, deny\n`);
    await waitFor('B to finish its script', () => existsSync(work(b, 'two', 'out.txt')) && /exit=/.test(readFileSync(work(b, 'two', 'out.txt'), 'utf8')), 120_000);
    expect(readFileSync(work(b, 'two', 'alerts-code.txt'), 'utf8').trim()).toBe('1');
    expect(readFileSync(work(b, 'two', 'alerts.err'), 'utf8')).toMatch(/no longer allows/);
    await waitFor('A to finish its script', () => existsSync(work(a, 'one', 'out.txt')) && /exit=/.test(readFileSync(work(a, 'one', 'out.txt'), 'utf8')), 60_000);
    expect(readFileSync(work(b, 'two', 'out.txt'), 'utf8')).toBe('exit=0\n');
    const lines = (file: string): Record<string, unknown>[] =>
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines(work(a, 'one', 'presence.ndjson')).map((x) => x.name)).toEqual([b]);
    expect(lines(work(b, 'two', 'first.ndjson'))).toEqual([expect.objectContaining({ from: a, body: { hello: 'b' }, request: false, deliveries: 1 })]);
    expect(lines(work(b, 'two', 'request.ndjson'))).toEqual([expect.objectContaining({ from: a, body: { ping: 1 }, request: true })]);
    expect(lines(work(a, 'one', 'reply.json'))).toEqual([expect.objectContaining({ from: b, body: { pong: true } })]);
    expect(lines(work(b, 'two', 'news.ndjson'))).toEqual([expect.objectContaining({ from: a, topic: 'news', body: { n: expect.any(Number) } })]);
    expect(readFileSync(work(a, 'one', 'refused-code.txt'), 'utf8').trim()).toBe('1');
    expect(readFileSync(work(a, 'one', 'refused.txt'), 'utf8')).toMatch(/WARREN_POLICY_DENIED/);
    const rows = await audit(args, 'message.*');
    expect(JSON.stringify(rows)).not.toContain('"secret"');
    expect(rows).toEqual(expect.arrayContaining([expect.objectContaining({ action: 'message.denied', object: 'agent:shell-9', details: expect.objectContaining({ sha256: sha256('secret') }) })]));
    up.child.kill('SIGTERM');
    const result = await up.done;
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
  });

  it('keeps a message to a sleeping agent and wakes it when the policy lets the sender wake it', async () => {
    const { dir, args } = layout({ one: waiting('one'), two: shellTask('two', 'true') });
    appendFileSync(join(dir, 'policies', 'policy.csv'), '\np, role:worker, agent:*, wake, allow\n');
    const up = startWarren(args('up', '--http', 'off', '--kill-grace', '1s'));
    running.push(up);
    try {
      await waitFor('the short task to be done', () => /^status: done$/m.test(readFileSync(join(dir, 'kanban', 'tasks', 'two.md'), 'utf8')), 120_000);
      await waitFor('the waiting task to run', () => /^status: in_progress$/m.test(readFileSync(join(dir, 'kanban', 'tasks', 'one.md'), 'utf8')), 120_000);
      const holder = /^assignee: (.+)$/m.exec(readFileSync(join(dir, 'kanban', 'tasks', 'one.md'), 'utf8'))![1]!;
      const names = await accountNames(args);
      const sleeper = names.find((n) => n !== holder);
      expect(sleeper, `a second agent besides ${holder}: ${names.join(', ')}`).toBeDefined();
      expect((await warren(['agent', 'sleep', sleeper!, ...args()])).code).toBe(0);
      const state = async (): Promise<string | undefined> =>
        (JSON.parse((await warren(['agents', '--json', ...args()])).stdout) as { name: string; state: string }[]).find((x) => x.name === sleeper)?.state;
      for (const deadline = Date.now() + 60_000; (await state()) !== 'sleeping'; ) {
        if (Date.now() > deadline) throw new Error(`${sleeper} did not go to sleep`);
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      writeFileSync(join(dir, 'home', 'shell', holder, 'go'), `::send ${sleeper}:: {"wake":"up"}\n`);
      for (const deadline = Date.now() + 60_000; (await state()) !== 'running'; ) {
        if (Date.now() > deadline) throw new Error(`${sleeper} was not woken`);
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      const wakes = await auditUntil(args, 'message.wake', (r) => r.length > 0);
      expect(wakes).toEqual([expect.objectContaining({ actor: `agent:${holder}`, object: `agent:${sleeper}`, details: expect.objectContaining({ woken: true }) })]);
      const woken = await audit(args, 'agent.wake');
      expect(woken.map((r) => r.object)).toContain(`agent:${sleeper}`);
      // The message was kept while it slept: the woken agent reads it from its inbox, with the key of this start.
      let client: AgentClient | undefined;
      for (const deadline = Date.now() + 60_000; client === undefined; ) {
        try {
          client = await connectAgent(dir, sleeper!);
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
      const [kept] = await pullInbox(client, 1);
      expect(kept).toMatchObject({ subject: client.ns.messageSubject(sleeper!, holder), data: { from: holder, to: sleeper, body: { wake: 'up' } } });
    } finally {
      await closeClients();
    }
    up.child.kill('SIGTERM');
    const result = await up.done;
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
  });
});

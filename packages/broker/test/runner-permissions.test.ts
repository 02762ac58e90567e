/**
 * A gateway outside the supervisor (a pod): its broker connects with the agent's NKey and holds
 * only the agent's signing key; nats-server holds it to `agentNatsPermissions(…, { runner: true })`.
 * Every refusal asserted here is the server's permissions violation, never a timeout.
 */
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { errors as natsErrors, headers as natsHeaders, nkeyAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { makeTempDir } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  agentNatsConfig,
  agentNatsPermissions,
  agentSigningKey,
  brokerNamespace,
  connectBroker,
  createAgentNkey,
  signMessage,
  startNatsServer,
  type AgentNatsGrants,
  type AgentNkey,
  type AssignmentMessage,
  type Delivery,
  type ProgressMessage,
  type ResultMessage,
} from '../src/index.js';
import { Inbox } from './helpers.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const AUTH = { user: 'warren', password: 'supervisor-password-0123' };
const ns = brokerNamespace('inst');
const GRANTS: AgentNatsGrants = { messageTo: [], publishTopics: [], subscribeTopics: [] };
const MASTER = new TextEncoder().encode('master-signing-key-0123456789abcdef');
const CONSUME = { ackWaitMs: 30_000, maxDeliver: 5, maxInFlight: 1 };

function assignment(taskId: string, agent: string): AssignmentMessage {
  return { taskId, attempt: 1, agent, title: taskId, body: '', command: 'echo hi', fields: {}, timeoutMs: 60_000, assignedAtMs: 1 };
}

function result(taskId: string, agent: string): ResultMessage {
  return { taskId, attempt: 1, agent, outcome: 'succeeded', exitCode: 0, signal: null, summary: 'done', outputs: [], durationMs: 1, finishedAtMs: 1 };
}

interface RawAgent {
  readonly nc: NatsConnection;
  readonly violations: Inbox<InstanceType<typeof natsErrors.PermissionViolationError>>;
}

async function rawAgent(url: string, agent: string, key: AgentNkey): Promise<RawAgent> {
  const config = agentNatsConfig(ns, agent, [url], key.seed);
  const nc = await connect({
    servers: [...config.servers],
    authenticator: nkeyAuthenticator(new TextEncoder().encode(config.nkeySeed)),
    inboxPrefix: config.inboxPrefix,
    reconnect: false,
  });
  cleanups.push(() => nc.close());
  const violations = new Inbox<InstanceType<typeof natsErrors.PermissionViolationError>>();
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'error' && s.error instanceof natsErrors.PermissionViolationError) violations.push(s.error);
    }
  })().catch(() => undefined);
  return { nc, violations };
}

async function refused(client: RawAgent, operation: 'publish' | 'subscription', subject: string): Promise<void> {
  for (;;) {
    const v = await client.violations.next(`the server's refusal to ${operation} ${subject}`);
    if (v.operation === operation && v.subject === subject) return;
  }
}

async function requestRefused(client: RawAgent, subject: string): Promise<void> {
  const error = await client.nc.request(subject, '{}', { timeout: 20_000 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  const violation = error instanceof natsErrors.PermissionViolationError ? error : (error as Error | undefined)?.cause;
  expect(violation, `the refusal of ${subject}`).toBeInstanceOf(natsErrors.PermissionViolationError);
}

async function world() {
  const dir = await makeTempDir('warren-runner-permissions-');
  cleanups.push(() => dir.close());
  const keys = { a: createAgentNkey(), b: createAgentNkey() };
  const server = await startNatsServer({
    storeDir: join(dir.path, 'nats'),
    authorization: AUTH,
    users: [
      { nkey: keys.a.publicKey, permissions: agentNatsPermissions(ns, 'a', GRANTS, { runner: true }) },
      { nkey: keys.b.publicKey, permissions: agentNatsPermissions(ns, 'b', GRANTS, { runner: true }) },
    ],
  });
  cleanups.push(() => server.close());
  const invalid = new Inbox<{ subject: string; field: string }>();
  const supervisor = await connectBroker({
    servers: server.url,
    name: 'supervisor',
    instance: 'inst',
    credentials: { kind: 'user-password', ...AUTH },
    signingKey: MASTER,
    onInvalid: (subject, error) => invalid.push({ subject, field: error.field }),
  });
  cleanups.push(() => supervisor.close());
  await supervisor.ensureStreams();
  await supervisor.ensureAssignConsumer('a', CONSUME);
  await supervisor.ensureAssignConsumer('b', CONSUME);
  return { server, keys, supervisor, invalid };
}

describe('agentNatsPermissions with runner: true', () => {
  it('adds the channel, result, progress and own assign consumer subjects', () => {
    const plain = agentNatsPermissions(ns, 'a', GRANTS);
    const runner = agentNatsPermissions(ns, 'a', GRANTS, { runner: true });
    expect(runner.publish.allow.slice(plain.publish.allow.length)).toEqual([
      'warren.inst.chan.a.ev',
      'warren.inst.chan.a.rpc',
      'warren.inst.result.a',
      'warren.inst.progress.a.*',
      '$JS.API.CONSUMER.MSG.NEXT.WARREN_inst_ASSIGN.inst-assign-a',
      '$JS.API.CONSUMER.INFO.WARREN_inst_ASSIGN.inst-assign-a',
      '$JS.ACK.WARREN_inst_ASSIGN.inst-assign-a.>',
    ]);
    expect(runner.subscribe.allow.slice(plain.subscribe.allow.length)).toEqual(['warren.inst.chan.a.ctl']);
  });

  it('derives a distinct key per agent from the master key', () => {
    const a = agentSigningKey(MASTER, 'a');
    expect(a).toHaveLength(32);
    expect(Buffer.from(agentSigningKey(MASTER, 'a')).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(agentSigningKey(MASTER, 'b')).equals(Buffer.from(a))).toBe(false);
    expect(Buffer.from(agentSigningKey(new TextEncoder().encode('another-master-key-0123456789'), 'a')).equals(Buffer.from(a))).toBe(false);
  });
});

describe('an agent broker outside the supervisor', () => {
  it('takes its assignments and publishes results and progress with its own key only', async () => {
    const { server, keys, supervisor, invalid } = await world();
    const results = new Inbox<Delivery<ResultMessage>>();
    const resultSub = await supervisor.consumeResults(async (d) => {
      results.push(d);
      d.ack();
    });
    cleanups.push(() => resultSub.stop());
    const progress = new Inbox<ProgressMessage>();
    const progressSub = supervisor.subscribeProgress((m) => progress.push(m));
    cleanups.push(() => progressSub.stop());
    await supervisor.nc.flush();

    const refusedInPod = new Inbox<{ subject: string; field: string }>();
    const pod = await connectBroker({
      servers: server.url,
      name: 'pod-a',
      onInvalid: (subject, error) => refusedInPod.push({ subject, field: error.field }),
      instance: 'inst',
      credentials: { kind: 'nkey', seed: keys.a.seed },
      inboxPrefix: ns.agentInboxPrefix('a'),
      agentKey: { agent: 'a', key: agentSigningKey(MASTER, 'a') },
    });
    cleanups.push(() => pod.close());
    const assigned = new Inbox<Delivery<AssignmentMessage>>();
    const sub = await pod.consumeAssignments('a', async (d) => {
      assigned.push(d);
      d.ack();
    }, CONSUME);
    cleanups.push(() => sub.stop());

    await supervisor.publishAssignment(assignment('T-1', 'a'));
    expect((await assigned.next('the assignment in the pod')).data.taskId).toBe('T-1');
    pod.publishProgress({ taskId: 'T-1', attempt: 1, agent: 'a', message: 'half way', atMs: 1 });
    expect((await progress.next('the progress')).message).toBe('half way');
    await pod.publishResult(result('T-1', 'a'));
    expect((await results.next('the result at the supervisor')).data).toMatchObject({ taskId: 'T-1', agent: 'a' });

    // An assignment stored before per-agent keys (signed with the master key) still verifies at
    // the supervisor; one signed with another agent's key is refused by the pod.
    const js = jetstream(supervisor.nc);
    const legacy = JSON.stringify(result('T-0', 'a'));
    const h = natsHeaders();
    h.set('Warren-Signature', signMessage(MASTER, ns.resultSubject('a'), legacy));
    await js.publish(ns.resultSubject('a'), legacy, { headers: h, msgID: 'legacy-T-0' });
    expect((await results.next('the legacy-signed result')).data.taskId).toBe('T-0');
    const forged = JSON.stringify(assignment('T-2', 'a'));
    const hf = natsHeaders();
    hf.set('Warren-Signature', signMessage(agentSigningKey(MASTER, 'b'), ns.assignSubject('a'), forged));
    await js.publish(ns.assignSubject('a'), forged, { headers: hf, msgID: 'forged-T-2' });
    await supervisor.publishAssignment(assignment('T-3', 'a'));
    expect(await refusedInPod.next('the refusal of the forged assignment')).toEqual({ subject: ns.assignSubject('a'), field: 'Warren-Signature' });
    expect((await assigned.next('the next real assignment')).data.taskId).toBe('T-3');
    expect(invalid.size).toBe(0);
  });

  it('may use its own channel and assign consumer, not another agent\'s or the JetStream API beyond them', async () => {
    const { server, keys, supervisor } = await world();
    const events = new Inbox<string>();
    const evSub = supervisor.nc.subscribe('warren.inst.chan.*.ev', { callback: (_e, m) => events.push(m.subject) });
    cleanups.push(async () => evSub.unsubscribe());
    await supervisor.nc.flush();
    const a = await rawAgent(server.url, 'a', keys.a);

    // Allowed: its own ev, its control subject, its assign consumer's info.
    const ctl = a.nc.subscribe('warren.inst.chan.a.ctl');
    a.nc.publish('warren.inst.chan.a.ev', '{}');
    await a.nc.flush();
    expect(await events.next('a channel event')).toBe('warren.inst.chan.a.ev');
    supervisor.nc.publish('warren.inst.chan.a.ctl', '{"op":"shutdown"}');
    for await (const m of ctl) {
      expect(m.json()).toEqual({ op: 'shutdown' });
      break;
    }
    const info = await jetstream(a.nc).consumers.get(ns.assignStream, ns.assignConsumerName('a'));
    expect((await info.info(true)).name).toBe('inst-assign-a');

    // Refused: another agent's channel, results, progress and consumer; creating or deleting consumers.
    for (const subject of ['warren.inst.chan.b.ev', 'warren.inst.chan.b.rpc', 'warren.inst.result.b', 'warren.inst.progress.b.T-1', 'warren.inst.assign.a']) {
      a.nc.publish(subject, '{}');
      await a.nc.flush();
      await refused(a, 'publish', subject);
    }
    const other = a.nc.subscribe('warren.inst.chan.b.ctl');
    await a.nc.flush();
    await refused(a, 'subscription', 'warren.inst.chan.b.ctl');
    expect(await other.closed).toBeInstanceOf(natsErrors.PermissionViolationError);
    await requestRefused(a, `$JS.API.CONSUMER.MSG.NEXT.${ns.assignStream}.${ns.assignConsumerName('b')}`);
    await requestRefused(a, `$JS.API.CONSUMER.INFO.${ns.assignStream}.${ns.assignConsumerName('b')}`);
    await requestRefused(a, `$JS.API.CONSUMER.CREATE.${ns.assignStream}.spy`);
    await requestRefused(a, `$JS.API.CONSUMER.DELETE.${ns.assignStream}.${ns.assignConsumerName('a')}`);
    await requestRefused(a, `$JS.API.STREAM.INFO.${ns.assignStream}`);
    await requestRefused(a, '$JS.API.INFO');
    expect(a.nc.isClosed()).toBe(false);
  });
});

import { stat, readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { makeTempDir, startTestNats, type TempDir } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  InvalidNameError,
  SIGNATURE_HEADER,
  brokerNamespace,
  connectBroker,
  readOrCreateSecret,
  signMessage,
  startNatsServer,
  verifySignature,
  type AssignmentMessage,
  type Broker,
  type Delivery,
  type InvalidMessageError,
  type ResultMessage,
} from '../src/index.js';
import { Inbox } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function defer<T extends { close(): Promise<void> }>(resource: T): T {
  cleanups.push(() => resource.close());
  return resource;
}

async function tempDir(): Promise<TempDir> {
  return defer(await makeTempDir('warren-broker-security-'));
}

const KEY_A = Buffer.from('key-of-instance-a-0123456789abcdef');
const KEY_B = Buffer.from('key-of-instance-b-0123456789abcdef');

function assignment(taskId: string, agent = 'shell-1'): AssignmentMessage {
  return { taskId, attempt: 1, agent, title: taskId, body: '', command: 'echo hi', fields: {}, timeoutMs: 60_000, assignedAtMs: 1 };
}

function result(taskId: string, agent = 'shell-1'): ResultMessage {
  return {
    taskId, attempt: 1, agent, outcome: 'succeeded', exitCode: 0, signal: null, summary: 'done', outputs: [], durationMs: 1, finishedAtMs: 1,
  };
}

describe('brokerNamespace', () => {
  it('keeps the default names without an instance and prefixes every name with one', () => {
    const plain = brokerNamespace();
    expect(plain.assignSubject('shell-1')).toBe('warren.assign.shell-1');
    expect(plain.resultsConsumer).toBe('supervisor-results');
    expect(plain.streams.map((s) => s.name)).toEqual(['WARREN_ASSIGN', 'WARREN_RESULTS', 'WARREN_MESSAGES', 'WARREN_OUTBOX']);

    const ns = brokerNamespace('wab12cd');
    expect(ns.assignSubject('shell-1')).toBe('warren.wab12cd.assign.shell-1');
    expect(ns.resultSubject('shell-1')).toBe('warren.wab12cd.result.shell-1');
    expect(ns.progressSubject('shell-1', 'T.1')).toBe('warren.wab12cd.progress.shell-1.T~1');
    expect(ns.messageSubject('shell-1', 'writer')).toBe('warren.wab12cd.msg.shell-1.writer');
    expect(ns.outboxSubject('writer', 'shell-1')).toBe('warren.wab12cd.send.writer.shell-1');
    expect(ns.eventSubject('task.assigned')).toBe('warren.wab12cd.events.task.assigned');
    expect(ns.streams).toEqual([
      { name: 'WARREN_wab12cd_ASSIGN', subjects: ['warren.wab12cd.assign.>'] },
      { name: 'WARREN_wab12cd_RESULTS', subjects: ['warren.wab12cd.result.>'] },
      { name: 'WARREN_wab12cd_MESSAGES', subjects: ['warren.wab12cd.msg.>'] },
      { name: 'WARREN_wab12cd_OUTBOX', subjects: ['warren.wab12cd.send.>'] },
    ]);
    expect(ns.resultsConsumer).toBe('wab12cd-supervisor-results');
    expect(ns.assignConsumerName('shell-1')).toBe('wab12cd-assign-shell-1');
    expect(ns.messageConsumerName('shell-1')).toBe('wab12cd-msg-shell-1');
    expect(ns.agentOfSubject('warren.wab12cd.result.shell-1')).toBe('shell-1');
    expect(ns.agentOfSubject('warren.result.shell-1')).toBeUndefined();
    expect(plain.agentOfSubject('warren.result.shell-1')).toBe('shell-1');
  });

  it('refuses instance names that are not one subject token or would overlap the default namespace', () => {
    for (const bad of ['', 'a.b', 'A', '*', '>', 'assign', 'result', 'msg', 'x'.repeat(33)]) {
      expect(() => brokerNamespace(bad), bad).toThrow(InvalidNameError);
    }
  });
});

describe('signatures', () => {
  it('verify only for the same key, subject and payload', () => {
    const payload = new TextEncoder().encode('{"a":1}');
    const signature = signMessage(KEY_A, 'warren.x.result.shell-1', payload);
    expect(signature).toMatch(/^[0-9a-f]{64}$/);
    expect(verifySignature(KEY_A, 'warren.x.result.shell-1', payload, signature)).toBeUndefined();
    expect(verifySignature(KEY_B, 'warren.x.result.shell-1', payload, signature)).toMatch(/does not match/);
    expect(verifySignature(KEY_A, 'warren.x.result.shell-2', payload, signature)).toMatch(/does not match/);
    expect(verifySignature(KEY_A, 'warren.x.result.shell-1', new TextEncoder().encode('{"a":2}'), signature)).toMatch(/does not match/);
    expect(verifySignature(KEY_A, 'warren.x.result.shell-1', payload, undefined)).toMatch(/missing/);
    expect(verifySignature(KEY_A, 'warren.x.result.shell-1', payload, 'zz')).toMatch(/malformed/);
  });

  it('readOrCreateSecret makes a 0600 file in a 0700 dir once and reads it back; a loose mode is tightened', async () => {
    const dir = await tempDir();
    const path = join(dir.path, 'secrets', 'key');
    const first = await readOrCreateSecret(path);
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir.path, 'secrets'))).mode & 0o777).toBe(0o700);
    expect(await readOrCreateSecret(path)).toBe(first);
    await chmod(path, 0o644);
    expect(await readOrCreateSecret(path)).toBe(first);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    await writeFile(path, 'short\n');
    await expect(readOrCreateSecret(path)).rejects.toThrow(`${path}: holds no secret`);
  });
});

describe('signed, namespaced brokers on one NATS', () => {
  it('refuse unsigned, wrongly signed and foreign messages, and deliver their own', async () => {
    const nats = defer(await startTestNats());
    const invalid = new Inbox<{ subject: string; error: InvalidMessageError }>();
    const open = async (instance: string, signingKey: Buffer): Promise<Broker> => {
      const broker = defer(
        await connectBroker({
          servers: nats.url,
          name: `broker-${instance}`,
          instance,
          signingKey,
          onInvalid: (subject, error) => invalid.push({ subject, error }),
        }),
      );
      await broker.ensureStreams();
      return broker;
    };
    const a = await open('inst-a', KEY_A);
    const b = await open('inst-b', KEY_B);

    const resultsA = new Inbox<Delivery<ResultMessage>>();
    const resultsB = new Inbox<Delivery<ResultMessage>>();
    await a.consumeResults(async (d) => {
      resultsA.push(d);
      d.ack();
    });
    await b.resetResultsConsumer();
    await b.consumeResults(async (d) => {
      resultsB.push(d);
      d.ack();
    });
    const assignsA = new Inbox<Delivery<AssignmentMessage>>();
    await a.consumeAssignments('shell-1', async (d) => {
      assignsA.push(d);
      d.ack();
    });

    // A forged result with A's message id, unsigned: refused, and A's real result still stored.
    const js = jetstream(a.nc);
    await js.publish(a.namespace.resultSubject('shell-1'), JSON.stringify({ ...result('T-1'), summary: 'FORGED' }), { msgID: 'T-1:1:result' });
    const unsigned = await invalid.next('the unsigned result');
    expect(unsigned.subject).toBe('warren.inst-a.result.shell-1');
    expect(unsigned.error).toMatchObject({ field: SIGNATURE_HEADER, reason: 'the signature header is missing' });

    // Signed with another instance's key: refused.
    const h = natsHeaders();
    const forged = JSON.stringify(assignment('T-2'));
    h.set(SIGNATURE_HEADER, signMessage(KEY_B, a.namespace.assignSubject('shell-1'), forged));
    await js.publish(a.namespace.assignSubject('shell-1'), forged, { headers: h });
    const wrong = await invalid.next('the wrongly signed assignment');
    expect(wrong.error).toMatchObject({ field: SIGNATURE_HEADER, reason: 'the signature does not match' });

    const ack = await a.publishResult(result('T-1'));
    expect(ack.duplicate).toBe(false);
    expect((await resultsA.next('A result')).data.summary).toBe('done');
    await a.publishAssignment(assignment('T-3'));
    expect((await assignsA.next('A assignment')).data.taskId).toBe('T-3');

    // B's result goes to B only; A's consumer still exists after B reset its own (at its start).
    await b.publishResult(result('T-9'));
    expect((await resultsB.next('B result')).data.taskId).toBe('T-9');
    const jsm = await jetstreamManager(a.nc);
    expect((await jsm.consumers.info('WARREN_inst-a_RESULTS', 'inst-a-supervisor-results')).name).toBe('inst-a-supervisor-results');
    expect(resultsA.size).toBe(0);
    expect(invalid.size).toBe(0);
  });
});

describe('startNatsServer authorization', () => {
  it('refuses connections without the user and password, and keeps its config 0600 in a 0700 dir', async () => {
    const dir = await tempDir();
    const storeDir = join(dir.path, 'nats');
    const authorization = { user: 'warren', password: 'Pa55word-of_the-test' };
    const server = defer(await startNatsServer({ storeDir, authorization }));
    expect((await stat(join(storeDir, 'nats-server.conf'))).mode & 0o777).toBe(0o600);
    expect((await stat(storeDir)).mode & 0o777).toBe(0o700);
    expect(await readFile(join(storeDir, 'nats-server.conf'), 'utf8')).toContain('include "nats-users.conf"');
    expect((await stat(join(storeDir, 'nats-users.conf'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(storeDir, 'nats-users.conf'), 'utf8')).toContain('authorization {');

    await expect(connect({ servers: server.url, reconnect: false })).rejects.toThrow(/Authorization Violation/);
    await expect(connect({ servers: server.url, reconnect: false, user: 'warren', pass: 'wrong-password-123' })).rejects.toThrow(
      /Authorization Violation/,
    );
    const broker = defer(
      await connectBroker({ servers: server.url, name: 'auth-test', credentials: { kind: 'user-password', ...authorization, password: authorization.password } }),
    );
    await broker.ensureStreams();
  });

  it('refuses a password the config format could not hold', async () => {
    const dir = await tempDir();
    await expect(startNatsServer({ storeDir: dir.path, authorization: { user: 'warren', password: 'has"quote-0123456789' } })).rejects.toThrow(
      /authorization.password/,
    );
  });
});

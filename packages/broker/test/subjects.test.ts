import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  InvalidMessageError,
  InvalidNameError,
  agentOfSubject,
  assignConsumerName,
  assignSubject,
  assignmentMessageSchema,
  agentMessageSchema,
  decodeMessage,
  decodeTaskIdToken,
  encodeTaskIdToken,
  eventSubject,
  isAgentName,
  isTaskId,
  messageConsumerName,
  messageSubject,
  messageFilter,
  outboxSubject,
  topicSubject,
  replySubject,
  presenceSubject,
  agentInboxPrefix,
  brokerNamespace,
  isTopicName,
  isRequestId,
  encodeSenderToken,
  decodeSenderToken,
  topicMessageSchema,
  replyMessageSchema,
  outboxMessageSchema,
  MAX_BODY_BYTES,
  progressSubject,
  resultMessageSchema,
  resultSubject,
  validateMessage,
} from '../src/index.js';

const validAssignment = {
  taskId: 'T-1.2',
  attempt: 1,
  agent: 'shell-1',
  title: 'Say hello',
  body: 'Print hello',
  fields: { priority: 2 },
  timeoutMs: 60_000,
  assignedAtMs: 1_700_000_000_000,
};

describe('subjects', () => {
  it('builds the contract subjects and consumer names from valid names', () => {
    expect(assignSubject('shell-1')).toBe('warren.assign.shell-1');
    expect(resultSubject('shell-1')).toBe('warren.result.shell-1');
    expect(messageSubject('a', 'b')).toBe('warren.msg.a.b');
    expect(messageSubject('a', 'user:ann.lee')).toBe('warren.msg.a.user:ann~lee');
    expect(messageFilter('a')).toBe('warren.msg.a.>');
    expect(outboxSubject('a', 'b')).toBe('warren.send.a.b');
    expect(topicSubject('builds', 'a')).toBe('warren.topic.builds.a');
    expect(replySubject('a', 'b', 'req_1-X')).toBe('warren.reply.a.b.req_1-X');
    expect(presenceSubject('a')).toBe('warren.presence.a');
    expect(agentInboxPrefix('a')).toBe('_INBOX.warren.agent.a');
    expect(progressSubject('shell-1', 'T-1.2')).toBe('warren.progress.shell-1.T-1~2');
    expect(eventSubject('task.assigned')).toBe('warren.events.task.assigned');
    expect(assignConsumerName('shell-1')).toBe('assign-shell-1');
    expect(messageConsumerName('shell-1')).toBe('msg-shell-1');
    expect(agentOfSubject('warren.result.shell-1')).toBe('shell-1');
    expect(agentOfSubject('warren.result.Bad')).toBeUndefined();
  });

  it('refuses names that are not one safe subject token', () => {
    for (const bad of ['', 'Shell', '-a', 'a.b', 'a*', 'a>', 'a b', 'x'.repeat(64), 'é']) {
      expect(isAgentName(bad)).toBe(false);
      expect(() => assignSubject(bad)).toThrow(InvalidNameError);
    }
    expect(isAgentName('a'.repeat(63))).toBe(true);
    for (const bad of ['', 'T 1', 'T*1', 'T>1', 'T~1', 'T/1', 'x'.repeat(129)]) {
      expect(isTaskId(bad)).toBe(false);
      expect(() => progressSubject('a', bad)).toThrow(InvalidNameError);
    }
    for (const bad of ['', 'Task', 'a..b', 'a.*', '>', 'a.b.c.d.e']) {
      expect(() => eventSubject(bad)).toThrow(InvalidNameError);
    }
    try {
      assignSubject('a.b');
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: 'WARREN_BROKER_NAME', kind: 'agent name', value: 'a.b' });
    }
  });

  it('encodes any task id as one reversible subject token', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9._-]{1,128}$/), (taskId) => {
        const token = encodeTaskIdToken(taskId);
        expect(token).not.toMatch(/[.*> \s]/);
        expect(decodeTaskIdToken(token)).toBe(taskId);
        expect(progressSubject('a', taskId).split('.')).toHaveLength(4);
      }),
    );
  });
});

describe('messaging subjects', () => {
  it('refuses topic names, request ids and senders that are not one safe token', () => {
    for (const bad of ['', 'Builds', '-x', 'a.b', 'a*', 'a>', 'a b', 'x'.repeat(64), '*']) {
      expect(isTopicName(bad), bad).toBe(false);
      expect(() => topicSubject(bad, 'a'), bad).toThrow(InvalidNameError);
    }
    expect(isTopicName('ci_builds-2')).toBe(true);
    for (const bad of ['', 'a.b', 'a*', 'a>', 'a b', 'x'.repeat(129), 'é']) {
      expect(isRequestId(bad), bad).toBe(false);
      expect(() => replySubject('a', 'b', bad), bad).toThrow(InvalidNameError);
    }
    for (const bad of ['', 'A', 'user:', 'user:A', 'admin:x', 'a.b', 'a~b', 'user:a~b', 'a*']) {
      expect(() => encodeSenderToken(bad), bad).toThrow(InvalidNameError);
      expect(() => messageSubject('a', bad), bad).toThrow(InvalidNameError);
    }
    expect(() => messageSubject('a.b', 'c')).toThrow(InvalidNameError);
    expect(() => outboxSubject('a', 'user:ann')).toThrow(InvalidNameError);
    expect(decodeSenderToken('user:a.b')).toBeUndefined();
    expect(decodeSenderToken('Bad')).toBeUndefined();
  });

  it('encodes any sender as one reversible subject token', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,62}$/), fc.stringMatching(/^user:[a-z0-9][a-z0-9._-]{0,63}$/)),
        (from) => {
          const token = encodeSenderToken(from);
          expect(token).not.toMatch(/[.*> \s]/);
          expect(decodeSenderToken(token)).toBe(from);
          expect(messageSubject('a', from).split('.')).toHaveLength(4);
        },
      ),
    );
  });

  it('parses the subjects it builds, per namespace, and nothing else', () => {
    const ns = brokerNamespace('wab12cd');
    expect(ns.messageSubject('b', 'user:ann.lee')).toBe('warren.wab12cd.msg.b.user:ann~lee');
    expect(ns.parseMessageSubject('warren.wab12cd.msg.b.user:ann~lee')).toEqual({ to: 'b', from: 'user:ann.lee' });
    expect(ns.parseMessageSubject('warren.msg.b.a')).toBeUndefined();
    expect(ns.parseMessageSubject('warren.wab12cd.msg.b')).toBeUndefined();
    expect(ns.parseMessageSubject('warren.wab12cd.msg.b.a.c')).toBeUndefined();
    expect(ns.parseOutboxSubject(ns.outboxSubject('a', 'b'))).toEqual({ from: 'a', to: 'b' });
    expect(ns.parseOutboxSubject('warren.wab12cd.send.a.user:x')).toBeUndefined();
    expect(ns.parseTopicSubject(ns.topicSubject('news', 'a'))).toEqual({ topic: 'news', from: 'a' });
    expect(ns.parseReplySubject(ns.replySubject('a', 'b', 'r1'))).toEqual({ to: 'a', from: 'b', requestId: 'r1' });
    expect(ns.presenceSender('warren.wab12cd.presence.a')).toBe('a');
    expect(ns.presenceSender('warren.wab12cd.presence.a.b')).toBeUndefined();
    expect(ns.topicFilter('*')).toBe('warren.wab12cd.topic.*.*');
    expect(ns.topicFilter('news')).toBe('warren.wab12cd.topic.news.*');
    expect(ns.replyFilter('a', 'r1')).toBe('warren.wab12cd.reply.a.*.r1');
    expect(ns.agentInboxPrefix('a')).toBe('_INBOX.warren.wab12cd.agent.a');
    expect(ns.outboxStream).toBe('WARREN_wab12cd_OUTBOX');
    expect(ns.outboxConsumer).toBe('wab12cd-supervisor-outbox');
    for (const kind of ['send', 'topic', 'reply', 'presence', 'agent']) expect(() => brokerNamespace(kind)).toThrow(InvalidNameError);
  });
});

describe('message schemas', () => {
  it('accepts a valid assignment and drops unknown keys', () => {
    const parsed = validateMessage(assignmentMessageSchema, 'warren.assign.shell-1', { ...validAssignment, extra: true });
    expect(parsed).toEqual(validAssignment);
  });

  it('names the subject and the first offending field', () => {
    try {
      validateMessage(assignmentMessageSchema, 'warren.assign.shell-1', { ...validAssignment, attempt: 0 });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidMessageError);
      expect(error).toMatchObject({ code: 'WARREN_BROKER_MESSAGE', subject: 'warren.assign.shell-1', field: 'attempt' });
      expect((error as Error).message).toContain("field 'attempt'");
    }
    expect(() =>
      validateMessage(resultMessageSchema, 's', {
        taskId: 'T1', attempt: 1, agent: 'a', outcome: 'exploded', exitCode: null, signal: null,
        summary: '', outputs: [], durationMs: 1, finishedAtMs: 1,
      }),
    ).toThrow(/field 'outcome'/);
    expect(() => validateMessage(agentMessageSchema, 's', { id: 'm1', from: 'a', to: 'b', sentAtMs: 1 })).toThrow(/field 'body'/);
  });

  it('refuses bytes that are not UTF-8 JSON', () => {
    expect(() => decodeMessage(assignmentMessageSchema, 'warren.assign.a', new TextEncoder().encode('{nope'))).toThrow(
      /not UTF-8 JSON/,
    );
    expect(() => decodeMessage(assignmentMessageSchema, 'warren.assign.a', Uint8Array.from([0xff, 0xfe]))).toThrow(
      InvalidMessageError,
    );
  });

  it('checks topic, reply and outbox messages and caps every body at 256 KiB', () => {
    const topic = { id: 't1', from: 'a', topic: 'news', body: { n: 1 }, sentAtMs: 1 };
    expect(validateMessage(topicMessageSchema, 's', { ...topic, extra: 1 })).toEqual(topic);
    expect(() => validateMessage(topicMessageSchema, 's', { ...topic, topic: 'a.b' })).toThrow(/field 'topic'/);
    const reply = { id: 'r-1', from: 'b', to: 'a', inReplyTo: 'req1', body: 'yes', sentAtMs: 2 };
    expect(validateMessage(replyMessageSchema, 's', reply)).toEqual(reply);
    expect(() => validateMessage(replyMessageSchema, 's', { ...reply, inReplyTo: 'a.b' })).toThrow(/field 'inReplyTo'/);
    expect(() => validateMessage(replyMessageSchema, 's', { ...reply, to: 'user:ann' })).toThrow(/field 'to'/);
    expect(validateMessage(outboxMessageSchema, 's', { id: 'o 1', body: null })).toEqual({ id: 'o 1', body: null });
    expect(validateMessage(outboxMessageSchema, 's', { id: 'q1', body: 1, request: true })).toEqual({ id: 'q1', body: 1, request: true });
    expect(() => validateMessage(outboxMessageSchema, 's', { id: 'q 1', body: 1, request: true })).toThrow(/field 'id'/);
    expect(() => validateMessage(outboxMessageSchema, 's', { id: 'o1' })).toThrow(/field 'body'/);
    const message = { id: 'm1', from: 'user:ann.lee', to: 'b', body: 'x', sentAtMs: 1, request: true };
    expect(validateMessage(agentMessageSchema, 's', message)).toEqual(message);
    expect(() => validateMessage(agentMessageSchema, 's', { ...message, id: 'not a request id' })).toThrow(/field 'id'/);
    // The JSON of a string has two quotes: this body is one byte over the limit.
    const big = 'x'.repeat(MAX_BODY_BYTES - 1);
    expect(() => validateMessage(agentMessageSchema, 's', { ...message, body: big })).toThrow(/field 'body'.*at most 262144 bytes/);
    expect(validateMessage(agentMessageSchema, 's', { ...message, body: big.slice(1) }).body).toHaveLength(MAX_BODY_BYTES - 2);
    for (const schema of [topicMessageSchema, replyMessageSchema, outboxMessageSchema]) {
      expect(() => validateMessage(schema, 's', { ...topic, ...reply, body: big })).toThrow(/field 'body'/);
    }
  });
});

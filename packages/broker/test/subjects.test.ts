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
    expect(messageSubject('a')).toBe('warren.msg.a');
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
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROTOCOL_VERSION, type GatewayFrame } from '@warren/agent-runner';
import type { AssignmentMessage, Broker, Delivery, ResultMessage } from '@warren/broker';
import { silentLogger } from '@warren/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AgentGateway } from '../src/index.js';
import { RecordingEvents, waitFor } from './support/events.js';

const dirs: string[] = [];
const gateways: AgentGateway[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const gateway of gateways.splice(0)) await gateway.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A delivery of assignment `taskId` whose settlements are recorded in `settled`. */
function delivery(taskId: string, settled: string[]): Delivery<AssignmentMessage> {
  const data: AssignmentMessage = { taskId, attempt: 1, agent: 'a', title: taskId, body: '', command: 'true', fields: {}, timeoutMs: 60_000, assignedAtMs: 1 };
  return {
    data,
    subject: 'warren.assign.a',
    seq: 1,
    deliveryCount: 1,
    headers: {},
    ack: () => settled.push(`ack ${taskId}`),
    nak: () => settled.push(`nak ${taskId}`),
    term: () => settled.push(`term ${taskId}`),
    working: () => undefined,
  } as unknown as Delivery<AssignmentMessage>;
}

describe('AgentGateway delivery of assignments', () => {
  it('acks an assignment its runner acked and leaves no timer behind for it', async () => {
    let handler: ((d: Delivery<AssignmentMessage>) => Promise<void>) | undefined;
    const broker = {
      consumeAssignments: (_agent: string, h: (d: Delivery<AssignmentMessage>) => Promise<void>) => {
        handler = h;
        return Promise.resolve({ stop: () => Promise.resolve() });
      },
    } as unknown as Broker;
    const dir = mkdtempSync(join(tmpdir(), 'warren-gateway-deliver-'));
    dirs.push(dir);
    const events = new RecordingEvents();
    const gateway = await AgentGateway.start({
      identity: { name: 'a', template: 't', uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, home: '/home/a', capabilities: [] },
      socketDir: join(dir, 'socket'),
      broker,
      events,
      logger: silentLogger,
    });
    gateways.push(gateway);
    // The runner's side: it acks every task at once.
    const runner: { channel?: ReturnType<AgentGateway['attachLocal']> } = {};
    const channel = gateway.attachLocal((frame: GatewayFrame) => {
      if (frame.type === 'task') runner.channel?.deliver({ type: 'ack', taskId: frame.taskId, attempt: frame.attempt });
    });
    runner.channel = channel;
    channel.deliver({ type: 'hello', version: PROTOCOL_VERSION, pid: 7 });
    await waitFor('the hello', () => events.hellos.length > 0);

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const settled: string[] = [];
    for (const taskId of ['T-1', 'T-2', 'T-3']) await handler!(delivery(taskId, settled));
    expect(settled).toEqual(['ack T-1', 'ack T-2', 'ack T-3']);
    expect(events.acks.map((a) => a.taskId)).toEqual(['T-1', 'T-2', 'T-3']);
    // Each delivery's ack timeout (15 s) was cleared once its ack came.
    expect(vi.getTimerCount()).toBe(0);
  });

  it("acks the assignment and reports the task started before it publishes the result that came in the same read", async () => {
    const order: string[] = [];
    let handler: ((d: Delivery<AssignmentMessage>) => Promise<void>) | undefined;
    const broker = {
      consumeAssignments: (_agent: string, h: (d: Delivery<AssignmentMessage>) => Promise<void>) => {
        handler = h;
        return Promise.resolve({ stop: () => Promise.resolve() });
      },
      publishResult: (message: ResultMessage) => {
        order.push(`result ${message.taskId}`);
        return Promise.resolve();
      },
    } as unknown as Broker;
    const dir = mkdtempSync(join(tmpdir(), 'warren-gateway-deliver-'));
    dirs.push(dir);
    class OrderedEvents extends RecordingEvents {
      override taskAcked(agent: string, taskId: string, attempt: number): void {
        order.push(`started ${taskId}`);
        super.taskAcked(agent, taskId, attempt);
      }
    }
    const events = new OrderedEvents();
    const gateway = await AgentGateway.start({
      identity: { name: 'a', template: 't', uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, home: '/home/a', capabilities: [] },
      socketDir: join(dir, 'socket'),
      broker,
      events,
      logger: silentLogger,
    });
    gateways.push(gateway);
    // The runner's side: a short task's held ack goes out with its result, two frames read at once.
    const runner: { channel?: ReturnType<AgentGateway['attachLocal']> } = {};
    const channel = gateway.attachLocal((frame: GatewayFrame) => {
      if (frame.type !== 'task') return;
      const { taskId, attempt } = frame;
      queueMicrotask(() => {
        runner.channel?.deliver({ type: 'ack', taskId, attempt });
        runner.channel?.deliver({ type: 'result', taskId, attempt, outcome: 'succeeded', exitCode: 0, signal: null, summary: '', outputs: [], durationMs: 1 });
      });
    });
    runner.channel = channel;
    channel.deliver({ type: 'hello', version: PROTOCOL_VERSION, pid: 7 });
    await waitFor('the hello', () => events.hellos.length > 0);
    await handler!(delivery('T-1', order));
    await waitFor('the result', () => order.includes('result T-1'));
    expect(order).toEqual(['ack T-1', 'started T-1', 'result T-1']);
  });
});

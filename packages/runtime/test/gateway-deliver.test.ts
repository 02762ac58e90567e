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

/**
 * A gateway over a broker stand-in (`extra` adds to it) with a local runner that answers each task
 * frame with `onTask(frame, deliver)`, after its hello. @returns the gateway's assignment handler.
 */
async function gatewayWithRunner(
  events: RecordingEvents,
  onTask: (frame: GatewayFrame & { type: 'task' }, deliver: (frame: Parameters<ReturnType<AgentGateway['attachLocal']>['deliver']>[0]) => void) => void,
  extra: Record<string, unknown> = {},
): Promise<(d: Delivery<AssignmentMessage>) => Promise<void>> {
  let handler: ((d: Delivery<AssignmentMessage>) => Promise<void>) | undefined;
  const broker = {
    consumeAssignments: (_agent: string, h: (d: Delivery<AssignmentMessage>) => Promise<void>) => {
      handler = h;
      return Promise.resolve({ stop: () => Promise.resolve() });
    },
    ...extra,
  } as unknown as Broker;
  const dir = mkdtempSync(join(tmpdir(), 'warren-gateway-deliver-'));
  dirs.push(dir);
  const gateway = await AgentGateway.start({
    identity: { name: 'a', template: 't', uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, home: '/home/a', capabilities: [] },
    socketDir: join(dir, 'socket'),
    broker,
    events,
    logger: silentLogger,
  });
  gateways.push(gateway);
  const runner: { channel?: ReturnType<AgentGateway['attachLocal']> } = {};
  runner.channel = gateway.attachLocal((frame: GatewayFrame) => {
    if (frame.type === 'task') onTask(frame, (f) => runner.channel?.deliver(f));
  });
  runner.channel.deliver({ type: 'hello', version: PROTOCOL_VERSION, pid: 7 });
  await waitFor('the hello', () => events.hellos.length > 0);
  return handler!;
}

describe('AgentGateway delivery of assignments', () => {
  it('acks an assignment its runner acked and leaves no timer behind for it', async () => {
    const events = new RecordingEvents();
    // The runner's side: it acks every task at once.
    const handler = await gatewayWithRunner(events, (frame, deliver) => deliver({ type: 'ack', taskId: frame.taskId, attempt: frame.attempt }));

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const settled: string[] = [];
    for (const taskId of ['T-1', 'T-2', 'T-3']) await handler(delivery(taskId, settled));
    expect(settled).toEqual(['ack T-1', 'ack T-2', 'ack T-3']);
    expect(events.acks.map((a) => a.taskId)).toEqual(['T-1', 'T-2', 'T-3']);
    // Each delivery's ack timeout (15 s) was cleared once its ack came.
    expect(vi.getTimerCount()).toBe(0);
  });

  it("acks the assignment and reports the task started before it publishes the result that came in the same read", async () => {
    const order: string[] = [];
    class OrderedEvents extends RecordingEvents {
      override taskAcked(agent: string, taskId: string, attempt: number): void {
        order.push(`started ${taskId}`);
        super.taskAcked(agent, taskId, attempt);
      }
    }
    const publishResult = (message: ResultMessage): Promise<void> => {
      order.push(`result ${message.taskId}`);
      return Promise.resolve();
    };
    // The runner's side: a short task's held ack goes out with its result, two frames read at once.
    const handler = await gatewayWithRunner(
      new OrderedEvents(),
      ({ taskId, attempt }, deliver) =>
        queueMicrotask(() => {
          deliver({ type: 'ack', taskId, attempt });
          deliver({ type: 'result', taskId, attempt, outcome: 'succeeded', exitCode: 0, signal: null, summary: '', outputs: [], durationMs: 1 });
        }),
      { publishResult },
    );
    await handler(delivery('T-1', order));
    await waitFor('the result', () => order.includes('result T-1'));
    expect(order).toEqual(['ack T-1', 'started T-1', 'result T-1']);
  });
});

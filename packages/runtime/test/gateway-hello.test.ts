import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROTOCOL_VERSION } from '@warren/agent-runner';
import type { AssignmentMessage, Broker, Delivery, Subscription } from '@warren/broker';
import { silentLogger } from '@warren/core';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentGateway } from '../src/index.js';
import { RecordingEvents, waitFor } from './support/events.js';

// The hello of an agent channel starts the agent's assignments consumer. A nats-server reloading
// its configuration (it does for each new agent's NATS user) answers no JetStream API call for a
// moment; a hello that met that moment closed the channel with a protocol error, and the agent
// stayed `starting` until the heartbeat timeout killed it.

/** What the fake broker's consumeAssignments does on each call, in order; the last repeats. */
type Outcome = 'no-responders' | 'invalid' | 'ok' | 'hold';

/** A broker whose consumeAssignments follows `outcomes`; nothing else of it is used by a hello. */
function fakeBroker(outcomes: Outcome[]): { broker: Broker; calls: () => number; stops: () => number; release: () => void } {
  let calls = 0;
  let stops = 0;
  let release = (): void => undefined;
  const subscription: Subscription = {
    stop: () => {
      stops += 1;
      return Promise.resolve();
    },
  };
  const consumeAssignments = (_agent: string, _handler: (d: Delivery<AssignmentMessage>) => Promise<void>): Promise<Subscription> => {
    const outcome = outcomes[Math.min(calls, outcomes.length - 1)]!;
    calls += 1;
    switch (outcome) {
      case 'no-responders':
        // What the JetStream client throws while the server has no JetStream API (cause: no responders).
        return Promise.reject(new Error("consume WARREN_x_ASSIGN/x-assign-a: jetstream is not enabled: no responders: '$JS.API.CONSUMER.INFO.WARREN_x_ASSIGN.x-assign-a'"));
      case 'invalid':
        return Promise.reject(new Error('consume WARREN_x_ASSIGN/x-assign-a: consumer name is invalid'));
      case 'hold':
        return new Promise((resolve, reject) => {
          release = () => reject(new Error("jetstream is not enabled: no responders: '$JS.API.CONSUMER.INFO'"));
        });
      case 'ok':
        return Promise.resolve(subscription);
    }
  };
  return { broker: { consumeAssignments } as unknown as Broker, calls: () => calls, stops: () => stops, release: () => release() };
}

const dirs: string[] = [];
const gateways: AgentGateway[] = [];
afterEach(async () => {
  for (const gateway of gateways.splice(0)) await gateway.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function startGateway(broker: Broker): Promise<{ gateway: AgentGateway; events: RecordingEvents }> {
  const dir = mkdtempSync(join(tmpdir(), 'warren-gateway-hello-'));
  dirs.push(dir);
  const events = new RecordingEvents();
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const gateway = await AgentGateway.start({
    identity: { name: 'a', template: 't', uid, gid, home: '/home/a', capabilities: [] },
    socketDir: join(dir, 'socket'),
    broker,
    events,
    logger: silentLogger,
  });
  gateways.push(gateway);
  return { gateway, events };
}

describe('AgentGateway hello', () => {
  it('starts the assignments consumer again while JetStream has no responders, then reports the hello', async () => {
    const fake = fakeBroker(['no-responders', 'no-responders', 'ok']);
    const { gateway, events } = await startGateway(fake.broker);
    const frames: string[] = [];
    const channel = gateway.attachLocal((frame) => frames.push(frame.type));
    channel.deliver({ type: 'hello', version: PROTOCOL_VERSION, pid: 7 });
    await waitFor('the hello', () => events.hellos.length > 0 || events.protocolErrors.length > 0);
    expect(events.protocolErrors).toEqual([]);
    expect(events.hellos).toEqual([{ agent: 'a', pid: 7 }]);
    expect(fake.calls()).toBe(3);
    expect(frames).toEqual(['welcome']);
  });

  it('closes the channel with a protocol error at once when the consumer cannot be made for another reason', async () => {
    const fake = fakeBroker(['invalid', 'ok']);
    const { gateway, events } = await startGateway(fake.broker);
    const frames: string[] = [];
    const channel = gateway.attachLocal((frame) => frames.push(frame.type));
    channel.deliver({ type: 'hello', version: PROTOCOL_VERSION, pid: 7 });
    await waitFor('the protocol error', () => events.protocolErrors.length > 0);
    expect(events.protocolErrors).toEqual(['cannot consume assignments: consume WARREN_x_ASSIGN/x-assign-a: consumer name is invalid']);
    expect(events.hellos).toEqual([]);
    expect(fake.calls()).toBe(1);
    expect(frames).toEqual(['welcome', 'error']);
    expect(gateway.connected).toBe(false);
  });

  it('stops trying when the channel it was for closed meanwhile, without a hello or a protocol error', async () => {
    const fake = fakeBroker(['hold', 'ok']);
    const { gateway, events } = await startGateway(fake.broker);
    const channel = gateway.attachLocal(() => undefined);
    channel.deliver({ type: 'hello', version: PROTOCOL_VERSION, pid: 7 });
    await waitFor('the consumer start', () => fake.calls() === 1);
    channel.detach();
    fake.release();
    // A second channel says hello and gets its consumer: the first one's failure must not close it.
    const second = gateway.attachLocal(() => undefined);
    second.deliver({ type: 'hello', version: PROTOCOL_VERSION, pid: 8 });
    await waitFor('the second hello', () => events.hellos.length > 0);
    expect(events.hellos).toEqual([{ agent: 'a', pid: 8 }]);
    expect(events.protocolErrors).toEqual([]);
    expect(fake.calls()).toBe(2);
    expect(gateway.connected).toBe(true);
  });
});

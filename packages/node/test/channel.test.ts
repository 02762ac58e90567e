import { randomBytes } from 'node:crypto';
import { connectBroker, type Broker, type EmbeddedNatsServer } from '@warren/broker';
import { WarrenError } from '@warren/core';
import { startTestNats } from '@warren/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChannelHub, channelSubjects, relayChannel, type ChannelControlHandlers } from '../src/index.js';
import { recordingLogger, RecordingEvents, waitFor } from './support.js';

let nats: EmbeddedNatsServer;
let supervisor: Broker;
let host: Broker;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  nats = await startTestNats();
  supervisor = await connectBroker({ servers: nats.url, name: 'channel-test-supervisor', instance: 'chan' });
  host = await connectBroker({ servers: nats.url, name: 'channel-test-host', instance: 'chan' });
});
afterAll(async () => {
  await host?.close();
  await supervisor?.close();
  await nats?.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const newInstance = (): string => randomBytes(8).toString('hex');

interface Controls extends ChannelControlHandlers {
  readonly calls: (readonly unknown[])[];
}
function recordingControls(): Controls {
  const calls: (readonly unknown[])[] = [];
  return {
    calls,
    cancel: (taskId, attempt, reason) => calls.push(['cancel', taskId, attempt, reason]),
    resend: (taskId, attempt) => calls.push(['resend', taskId, attempt]),
    shutdown: (why) => calls.push(['shutdown', why]),
  };
}

function setup(agent = 'shell-1') {
  const logger = recordingLogger();
  const hub = new ChannelHub({ nc: supervisor.nc, ns: supervisor.namespace, logger });
  cleanups.push(() => hub.close());
  const events = new RecordingEvents();
  const instance = newInstance();
  const channel = hub.attach(agent, instance, events);
  const controls = recordingControls();
  const relay = relayChannel({ nc: host.nc, ns: host.namespace, agent, instance, logger: recordingLogger(), control: controls, requestTimeoutMs: 5_000 });
  cleanups.push(() => relay.close());
  return { logger, hub, events, instance, channel, controls, relay, agent };
}

/** Subscriptions are registered with the server once a flush returns: nothing sent before is lost. */
async function settled(): Promise<void> {
  await supervisor.nc.flush();
  await host.nc.flush();
}

describe('channel subjects', () => {
  it('names the three subjects under the namespace prefix and refuses a bad agent name', () => {
    expect(channelSubjects(supervisor.namespace, 'shell-1')).toEqual({
      ev: 'warren.chan.chan.shell-1.ev',
      rpc: 'warren.chan.chan.shell-1.rpc',
      ctl: 'warren.chan.chan.shell-1.ctl',
    });
    expect(() => channelSubjects(supervisor.namespace, 'Shell.1')).toThrow(/invalid agent name/);
  });
});

describe('ChannelHub and relayChannel', () => {
  it('delivers every event type in order and tracks connected and exited', async () => {
    const { events, channel, relay, agent } = setup();
    await settled();
    expect(channel.connected).toBe(false);
    relay.hello(agent, 42);
    await waitFor(() => channel.connected, 'connected after hello');
    relay.taskAcked(agent, 'T-1', 1);
    relay.alive(agent);
    relay.progressEvent!(agent, 'T-1', 1, { kind: 'text', text: 'hi' });
    relay.protocolError(agent, 'bad frame');
    relay.disconnected(agent);
    await waitFor(() => events.calls.length === 6, 'six events');
    expect(events.calls).toEqual([
      ['hello', agent, 42],
      ['taskAcked', agent, 'T-1', 1],
      ['alive', agent],
      ['progressEvent', agent, 'T-1', 1, { kind: 'text', text: 'hi' }],
      ['protocolError', agent, 'bad frame'],
      ['disconnected', agent],
    ]);
    expect(channel.connected).toBe(false);
    relay.hello(agent, 43);
    await waitFor(() => channel.connected, 'connected after a second hello');
    relay.exited({ kind: 'failed', exitCode: 3 });
    await expect(channel.exited).resolves.toEqual({ kind: 'failed', exitCode: 3 });
    expect(channel.connected).toBe(false);
    channel.markExited({ kind: 'succeeded', exitCode: 0 });
    await expect(channel.exited).resolves.toEqual({ kind: 'failed', exitCode: 3 });
  });

  it('markExited settles exited once, the lost kind included', async () => {
    const { channel } = setup();
    channel.markExited({ kind: 'lost', detail: 'node n1 silent since 12:00:00' });
    channel.markExited({ kind: 'succeeded', exitCode: 0 });
    await expect(channel.exited).resolves.toEqual({ kind: 'lost', detail: 'node n1 silent since 12:00:00' });
  });

  it('drops events and refuses requests of a stale instance', async () => {
    const { events, channel, relay, agent, controls } = setup();
    const stale = relayChannel({ nc: host.nc, ns: host.namespace, agent, instance: newInstance(), logger: recordingLogger(), control: controls, requestTimeoutMs: 5_000 });
    cleanups.push(() => stale.close());
    await settled();
    stale.hello(agent, 7);
    stale.exited({ kind: 'oom' });
    await expect(stale.sendMessage(agent, 'other', 'x', 'r1')).rejects.toMatchObject({ code: 'WARREN_CHANNEL_STALE' });
    await expect(stale.authorizeAssignment(agent, 's', 'T-1', 1)).rejects.toMatchObject({ code: 'WARREN_CHANNEL_STALE' });
    // The current instance's event, published after the stale ones, arrives alone.
    relay.alive(agent);
    await waitFor(() => events.calls.length === 1, 'the current instance\'s event');
    expect(events.calls).toEqual([['alive', agent]]);
    expect(channel.connected).toBe(false);
    // A control message reaches only the relay of its instance.
    channel.requestShutdown('sleep');
    await waitFor(() => controls.calls.length > 0, 'shutdown');
    await host.nc.flush();
    expect(controls.calls).toEqual([['shutdown', 'sleep']]);
  });

  it('a new attachment of the agent replaces the old one', async () => {
    const { hub, events, agent, relay } = setup();
    const events2 = new RecordingEvents();
    const instance2 = newInstance();
    const channel2 = hub.attach(agent, instance2, events2);
    const relay2 = relayChannel({ nc: host.nc, ns: host.namespace, agent, instance: instance2, logger: recordingLogger(), control: recordingControls() });
    cleanups.push(() => relay2.close());
    await settled();
    relay.hello(agent, 1);
    relay2.hello(agent, 2);
    await waitFor(() => channel2.connected, 'the new instance connected');
    expect(events2.calls).toEqual([['hello', agent, 2]]);
    expect(events.calls).toEqual([]);
  });

  it('round-trips send and authorize, with refusals and errors', async () => {
    const { events, relay, agent } = setup();
    await settled();
    await expect(relay.sendMessage(agent, 'reviewer-1', { text: 'done' }, 'ref-1')).resolves.toEqual({ id: `m-1-${agent}-reviewer-1` });
    events.onSend = () => Promise.reject(new WarrenError('WARREN_POLICY_DENIED', 'shell-1 may not message reviewer-1'));
    const denied = await relay.sendMessage(agent, 'reviewer-1', 'x', 'ref-2').catch((error: unknown) => error);
    expect(denied).toBeInstanceOf(WarrenError);
    expect(denied).toMatchObject({ code: 'WARREN_POLICY_DENIED', message: 'shell-1 may not message reviewer-1' });

    await expect(relay.authorizeAssignment(agent, 'warren.chan.assign.shell-1', 'T-1', 1)).resolves.toBeNull();
    events.onAuthorize = (_agent, _subject, taskId) => Promise.resolve(`execution ${taskId} is not committed`);
    await expect(relay.authorizeAssignment(agent, 'warren.chan.assign.shell-1', 'T-2', 2)).resolves.toBe('execution T-2 is not committed');
    events.onAuthorize = () => Promise.reject(new Error('database is locked'));
    await expect(relay.authorizeAssignment(agent, 'warren.chan.assign.shell-1', 'T-3', 1)).rejects.toMatchObject({
      code: 'WARREN_INTERNAL',
      message: 'database is locked',
    });
    expect(events.calls.filter((c) => c[0] === 'authorizeAssignment')).toEqual([
      ['authorizeAssignment', agent, 'warren.chan.assign.shell-1', 'T-1', 1],
      ['authorizeAssignment', agent, 'warren.chan.assign.shell-1', 'T-2', 2],
      ['authorizeAssignment', agent, 'warren.chan.assign.shell-1', 'T-3', 1],
    ]);
    expect(events.calls.filter((c) => c[0] === 'sendMessage')).toEqual([
      ['sendMessage', agent, 'reviewer-1', { text: 'done' }, 'ref-1'],
      ['sendMessage', agent, 'reviewer-1', 'x', 'ref-2'],
    ]);
  });

  it('a request nobody answers rejects with the subject named', async () => {
    const relay = relayChannel({ nc: host.nc, ns: host.namespace, agent: 'nobody-1', instance: newInstance(), logger: recordingLogger(), control: recordingControls(), requestTimeoutMs: 500 });
    cleanups.push(() => relay.close());
    await expect(relay.authorizeAssignment('nobody-1', 's', 'T-1', 1)).rejects.toMatchObject({
      code: 'WARREN_BROKER',
      message: expect.stringContaining('warren.chan.chan.nobody-1.rpc: authorize got no reply') as unknown,
    });
  });

  it('carries cancel, resend and shutdown to the gateway host', async () => {
    const { channel, controls, relay, agent } = setup();
    await settled();
    expect(channel.resendResult('T-1', 1)).toBe(false);
    relay.hello(agent, 5);
    await waitFor(() => channel.connected, 'connected');
    channel.cancel('T-2', 3, 'cancelled by alice');
    expect(channel.resendResult('T-2', 3)).toBe(true);
    channel.requestShutdown('sleep');
    await waitFor(() => controls.calls.length === 4, 'four control messages');
    expect(controls.calls).toEqual([
      ['resend', 'T-1', 1],
      ['cancel', 'T-2', 3, 'cancelled by alice'],
      ['resend', 'T-2', 3],
      ['shutdown', 'sleep'],
    ]);
  });

  it('rejects malformed payloads naming the subject and keeps working', async () => {
    const { logger, events, channel, relay, agent, controls } = setup();
    const subjects = channelSubjects(supervisor.namespace, agent);
    await settled();
    host.nc.publish(subjects.ev, new TextEncoder().encode('not json'));
    host.nc.publish(subjects.ev, new TextEncoder().encode(JSON.stringify({ instance: 'zz', seq: 0, type: 'hello', pid: 1 })));
    host.nc.publish(subjects.ev, new TextEncoder().encode(JSON.stringify({ instance: newInstance(), seq: 0, type: 'teleported' })));
    const reply = await host.nc.request(subjects.rpc, new TextEncoder().encode(JSON.stringify({ op: 'send' })), { timeout: 5_000 });
    const refused = JSON.parse(new TextDecoder().decode(reply.data)) as Record<string, unknown>;
    expect(refused).toMatchObject({ ok: false, code: 'WARREN_CHANNEL_INVALID' });
    expect(refused.message).toContain(subjects.rpc);
    supervisor.nc.publish(subjects.ctl, new TextEncoder().encode(JSON.stringify({ op: 'cancel' })));
    await waitFor(() => logger.lines.filter((l) => l.msg === 'malformed channel event dropped').length === 3, 'three malformed events logged');
    for (const line of logger.lines.filter((l) => l.msg === 'malformed channel event dropped')) {
      expect(line.obj.subject).toBe(subjects.ev);
      expect(String(line.obj.error)).toContain(subjects.ev);
    }
    // Everything still works afterwards.
    relay.hello(agent, 9);
    await waitFor(() => channel.connected, 'connected after the malformed ones');
    channel.requestShutdown('stop');
    await waitFor(() => controls.calls.length === 1, 'the valid control message');
    expect(controls.calls).toEqual([['shutdown', 'stop']]);
    expect(events.calls).toEqual([['hello', agent, 9]]);
  });

  it('logs a malformed control message with its subject on the host side', async () => {
    const logger = recordingLogger();
    const relay = relayChannel({ nc: host.nc, ns: host.namespace, agent: 'ctl-1', instance: newInstance(), logger, control: recordingControls() });
    cleanups.push(() => relay.close());
    await settled();
    const { ctl } = channelSubjects(host.namespace, 'ctl-1');
    supervisor.nc.publish(ctl, new TextEncoder().encode(JSON.stringify({ op: 'explode' })));
    const line = await waitFor(() => logger.lines.find((l) => l.msg === 'malformed channel control dropped'), 'the warning');
    expect(line.obj.subject).toBe(ctl);
  });

  it('closes idempotently; a closed channel, relay or hub delivers nothing more', async () => {
    const { hub, events, channel, relay, agent } = setup();
    await settled();
    channel.close();
    channel.close();
    relay.hello(agent, 1);
    await expect(relay.authorizeAssignment(agent, 's', 'T-1', 1)).rejects.toMatchObject({ code: 'WARREN_CHANNEL_STALE' });
    expect(events.calls).toEqual([]);
    await Promise.all([relay.close(), relay.close()]);
    await relay.close();
    relay.alive(agent);
    await expect(relay.sendMessage(agent, 'x', 1, 'r')).rejects.toMatchObject({ code: 'WARREN_CHANNEL_CLOSED' });
    hub.close();
    hub.close();
    expect(() => hub.attach(agent, newInstance(), events)).toThrow(/closed/);
  });
});

import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_SDK_DIR_IN_SANDBOX, agentSdkDistDir } from '@warren/agent-sdk';
import { connectBroker, type Broker, type EmbeddedNatsServer, type ResultMessage } from '@warren/broker';
import { createBubblewrapRuntime, type AgentInstance, type AgentRuntime, type AgentStartSpec } from '@warren/runtime';
import { makeTempDir, startTestNats, type TempDir } from '@warren/testing';
import { RecordingEvents, waitFor } from '../../../packages/runtime/test/support/events.js';
import { requireMachine } from '../../../packages/runtime/test/support/bubblewrap.js';
import { BusChannel } from '../src/messaging/bus-channel.js';
import { MemoryMessaging } from './messaging-memory.js';

// Two agents' runners in real sandboxes, each with its bus socket served by the bus channel (the
// runtime's channel service, as the supervisor serves it) over an in-memory messaging port: shell
// tasks talk to each other with the warren-bus command the runner puts on their PATH.

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** This file's agents' uids: a block of 50 per test process from 1_900_940_000, apart from other suites' blocks. */
const UID_BASE = 1_900_940_000 + (process.pid % 100) * 50;

let temp: TempDir;
let nats: EmbeddedNatsServer;
let broker: Broker;
let runtime: AgentRuntime;
let channel: BusChannel;
const port = new MemoryMessaging().addAgent('alpha-x').addAgent('beta-x');
const instances: AgentInstance[] = [];

beforeAll(async () => {
  requireMachine();
  temp = await makeTempDir('warren-bus-sandbox-');
  chmodSync(temp.path, 0o755);
  mkdirSync(join(temp.path, 'state'), { mode: 0o700 });
  mkdirSync(join(temp.path, 'home'), { mode: 0o755 });
  nats = await startTestNats();
  broker = await connectBroker({ servers: nats.url, name: 'bus-sandbox-test' });
  await broker.ensureStreams();
  channel = new BusChannel({ port });
  // As createAgentRuntime binds it (services/supervisor/src/agent-runtime.ts).
  runtime = createBubblewrapRuntime({
    stateDir: join(temp.path, 'state'),
    homeRoot: join(temp.path, 'home'),
    runnerDir: join(repo, 'packages', 'agent-runner'),
    root: repo,
    instanceTag: `bus${process.pid}`,
    broker,
    channelServices: [channel],
    systemBinds: [{ source: agentSdkDistDir(), target: AGENT_SDK_DIR_IN_SANDBOX }],
  });
});

afterAll(async () => {
  for (const instance of instances) await instance.close();
  await runtime?.close();
  await channel?.close();
  await broker?.close().catch(() => undefined);
  await nats?.close();
  await temp?.close();
});

async function start(name: string, index: number): Promise<{ spec: AgentStartSpec; events: RecordingEvents }> {
  const uid = UID_BASE + index;
  const homeDir = join(temp.path, 'home', name);
  mkdirSync(homeDir, { mode: 0o700 });
  chownSync(homeDir, uid, uid);
  const spec: AgentStartSpec = {
    name,
    template: 'shell',
    uid,
    gid: uid,
    homeDir,
    resources: { memoryMaxBytes: 512 * 2 ** 20, pidsMax: 128, cpuWeight: 100, nofile: 1024, fsizeBytes: 64 * 2 ** 20, tmpfsBytes: 16 * 2 ** 20 },
    capabilities: ['shell'],
    runner: { runtime: { kind: 'shell' }, maxConcurrent: 1, heartbeatIntervalMs: 1_000 },
    homeQuotaBytes: null,
  };
  const events = new RecordingEvents();
  instances.push(await runtime.start(spec, events));
  await waitFor(`${name}'s runner to say hello`, () => events.hellos.length > 0);
  return { spec, events };
}

describe('the bus socket in real sandboxes', () => {
  it('a shell task sends with warren-bus as its agent, another agent receives it and answers', async () => {
    port.allow('alpha-x', 'beta-x').allow('beta-x', 'alpha-x');
    await start('alpha-x', 0);
    await start('beta-x', 1);
    const results: ResultMessage[] = [];
    const consumer = await broker.consumeResults(async (delivery) => {
      results.push(delivery.data);
      delivery.ack();
    });
    const run = async (agent: string, taskId: string, command: string): Promise<ResultMessage> => {
      await broker.publishAssignment({ taskId, attempt: 1, agent, title: taskId, body: '', command, fields: {}, timeoutMs: 60_000, assignedAtMs: Date.now() });
      await waitFor(`the result of ${taskId}`, () => results.some((r) => r.taskId === taskId));
      return results.find((r) => r.taskId === taskId)!;
    };
    try {
      const sent = await run('alpha-x', 'send-1', `test "$WARREN_BUS_SOCKET" = /run/warren/bus.sock && warren-bus send beta-x '{"build":7}' && ! warren-bus send nobody-x hi 2>/dev/null; echo "exit=$?"`);
      expect(sent, sent.summary).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(sent.summary).toMatch(/\{"id":"[^"]+"\}\s+exit=0/);

      const received = await run('beta-x', 'recv-1', `warren-bus recv --wait 5000 | tee inbox.ndjson && warren-bus send alpha-x "got $(wc -l < inbox.ndjson)"`);
      expect(received, received.summary).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(received.summary).toContain('"from":"alpha-x","body":{"build":7}');

      const answer = await run('alpha-x', 'recv-2', 'warren-bus recv --wait 5000');
      expect(answer.summary).toContain('"from":"beta-x","body":"got 1"');
    } finally {
      await consumer.stop();
    }
    // Each socket spoke for its own agent only.
    expect(port.calls.filter((c) => c.method === 'send').map((c) => [c.self, (c.input as { to: string }).to])).toEqual([
      ['alpha-x', 'beta-x'],
      ['alpha-x', 'nobody-x'],
      ['beta-x', 'alpha-x'],
    ]);
  });
});

import { lstatSync, mkdirSync, chownSync, readFileSync, symlinkSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { ResultMessage } from '@warren/broker';
import type { AgentInstance } from '@warren/runtime';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodePayload, NodeDaemon, nodeSubjects } from '../src/index.js';
import { nodeFixture, type NodeFixture, type NodeSide } from './node-fixture.js';
import { RecordingEvents, waitFor } from './support.js';

class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString();
    callback();
  }
}

let fixture: NodeFixture;
let n1: NodeSide;
const started: AgentInstance[] = [];

beforeAll(async () => {
  fixture = await nodeFixture();
  n1 = await fixture.startNode('n1', { maxAgents: 3 });
});
afterEach(async () => {
  for (const instance of started.splice(0)) await instance.close();
});
afterAll(async () => {
  await fixture?.close();
});

async function run(agent: string, command: string, taskId: string): Promise<ResultMessage> {
  const results: ResultMessage[] = [];
  const consumer = await fixture.supervisor.consumeResults(async (delivery) => {
    results.push(delivery.data);
    delivery.ack();
  });
  try {
    await fixture.supervisor.publishAssignment({ taskId, attempt: 1, agent, title: taskId, body: '', command, fields: {}, timeoutMs: 60_000, assignedAtMs: Date.now() });
    return await waitFor(() => results.find((r) => r.taskId === taskId), `the result of ${taskId}`, 60_000);
  } finally {
    await consumer.stop();
  }
}

describe('a node daemon driven by RemoteNodeRuntime over NATS', () => {
  it('registers with its labels and capacity, and probes its runtime', async () => {
    const view = await waitFor(() => fixture.registry.get('n1'), 'n1 in the registry');
    expect(view).toMatchObject({ name: 'n1', state: 'ready', labels: { zone: 'b' }, capacity: { cpus: 2, maxAgents: 3 } });
    expect(view.heartbeat.driver).toMatchObject({ driver: 'bubblewrap', isolation: 'full' });
    await expect(n1.remote.probe()).resolves.toMatchObject({ driver: 'bubblewrap', isolation: 'full' });
  });

  it('starts an agent that takes an assignment and whose result comes back; usage from heartbeats', async () => {
    const spec = fixture.agent('node-a');
    const events = new RecordingEvents();
    const instance = await n1.remote.start(spec, events);
    started.push(instance);
    expect(instance.pid).toBeGreaterThan(0);
    expect(instance.unsafe).toBe(false);
    await waitFor(() => events.calls.some((c) => c[0] === 'hello'), 'the runner to say hello', 30_000);
    expect(instance.connected).toBe(true);
    await waitFor(() => instance.usage().pids > 0 && instance.usage().memoryBytes > 0, 'usage from a heartbeat');
    const result = await run(spec.name, 'echo "$(id -u) $(id -g) $HOME"; pwd', 'whoami');
    expect(result).toMatchObject({ agent: spec.name, outcome: 'succeeded', exitCode: 0 });
    expect(result.summary).toContain(`${spec.uid} ${spec.gid}`);
    expect(events.calls).toContainEqual(['taskAcked', spec.name, 'whoami', 1]);
    expect(events.calls.find((c) => c[0] === 'authorizeAssignment')).toMatchObject(['authorizeAssignment', spec.name, expect.any(String), 'whoami', 1]);
    // The heartbeat lists the instance.
    const view = await waitFor(() => fixture.registry.get('n1')?.instances.find((i) => i.agent === spec.name), 'the instance in a heartbeat');
    expect(view).toMatchObject({ pid: instance.pid, connected: true });
    // Its home is the node's, made for its uid.
    const home = join(n1.homeRoot, spec.name);
    expect(lstatSync(home).uid).toBe(spec.uid);
    instance.requestShutdown('sleep');
    await expect(instance.exited).resolves.toEqual({ kind: 'succeeded', exitCode: 0 });
    expect(instance.connected).toBe(false);
    await waitFor(() => fixture.registry.get('n1')?.instances.length === 0, 'a heartbeat without the instance');
    expect(instance.usage()).toMatchObject({ memoryBytes: 0, pids: 0 });
  });

  it('a refused assignment never reaches the runner; cancel reaches it over the channel', async () => {
    const spec = fixture.agent('node-b');
    const events = new RecordingEvents();
    events.onAuthorize = (_agent, _subject, taskId) => (taskId === 'refused' ? 'not committed' : null);
    const instance = await n1.remote.start(spec, events);
    started.push(instance);
    await waitFor(() => events.calls.some((c) => c[0] === 'hello'), 'hello', 30_000);
    await fixture.supervisor.publishAssignment({ taskId: 'refused', attempt: 1, agent: spec.name, title: 'r', body: '', command: 'true', fields: {}, timeoutMs: 60_000, assignedAtMs: Date.now() });
    const results: ResultMessage[] = [];
    const consumer = await fixture.supervisor.consumeResults(async (delivery) => {
      results.push(delivery.data);
      delivery.ack();
    });
    try {
      await fixture.supervisor.publishAssignment({ taskId: 'long', attempt: 1, agent: spec.name, title: 'l', body: '', command: 'sleep 600', fields: {}, timeoutMs: 600_000, assignedAtMs: Date.now() });
      await waitFor(() => events.calls.some((c) => c[0] === 'taskAcked' && c[2] === 'long'), 'the long task acked', 30_000);
      instance.cancel('long', 1, 'cancelled by the test');
      const result = await waitFor(() => results.find((r) => r.taskId === 'long'), 'the cancelled result', 30_000);
      expect(result.outcome).toBe('cancelled');
    } finally {
      await consumer.stop();
    }
    expect(results.some((r) => r.taskId === 'refused')).toBe(false);
    expect(events.calls.some((c) => c[0] === 'taskAcked' && c[2] === 'refused')).toBe(false);
  });

  it('writes homeFiles as the agent, keeps a changed seed file, replaces an overwrite file and never follows a symlink', async () => {
    const spec = fixture.agent('node-c');
    const home = join(n1.homeRoot, spec.name);
    mkdirSync(home, { recursive: true, mode: 0o700 });
    chownSync(home, spec.uid, spec.gid);
    writeFileSync(join(home, 'AGENTS.md'), 'changed by the agent\n');
    writeFileSync(join(home, 'creds.json'), 'old\n');
    const outside = join(n1.homeRoot, '..', 'outside');
    mkdirSync(outside, { recursive: true });
    symlinkSync(outside, join(home, '.config'));
    symlinkSync(join(outside, 'planted'), join(home, 'planted.txt'));
    const b64 = (text: string) => Buffer.from(text).toString('base64');
    const events = new RecordingEvents();
    const instance = await n1.remote.start(
      {
        ...spec,
        homeFiles: [
          { path: 'AGENTS.md', contentBase64: b64('template text\n'), mode: 0o644 },
          { path: 'notes/seed.txt', contentBase64: b64('seeded\n'), mode: 0o640 },
          { path: 'creds.json', contentBase64: b64('new\n'), mode: 0o600, overwrite: true },
          { path: '.config/tool.json', contentBase64: b64('{}'), mode: 0o600 },
          { path: 'planted.txt', contentBase64: b64('through the link'), mode: 0o600, overwrite: true },
        ],
      },
      events,
    );
    started.push(instance);
    await waitFor(() => events.calls.some((c) => c[0] === 'hello'), 'hello', 30_000);
    expect(readFileSync(join(home, 'AGENTS.md'), 'utf8')).toBe('changed by the agent\n');
    expect(readFileSync(join(home, 'notes', 'seed.txt'), 'utf8')).toBe('seeded\n');
    const seeded = lstatSync(join(home, 'notes', 'seed.txt'));
    expect([seeded.uid, seeded.gid, seeded.mode & 0o777]).toEqual([spec.uid, spec.gid, 0o640]);
    expect(lstatSync(join(home, 'notes')).uid).toBe(spec.uid);
    expect(readFileSync(join(home, 'creds.json'), 'utf8')).toBe('new\n');
    expect(lstatSync(join(home, 'creds.json')).uid).toBe(spec.uid);
    expect(existsSync(join(outside, 'tool.json'))).toBe(false);
    expect(existsSync(join(outside, 'planted'))).toBe(false);
    // The planted link itself was replaced by a regular file of the agent.
    expect(lstatSync(join(home, 'planted.txt')).isSymbolicLink()).toBe(false);
    expect(fixture.logger.lines.some((l) => l.msg?.startsWith('home file refused') && l.obj.path === '.config/tool.json')).toBe(true);
    rmSync(outside, { recursive: true, force: true });
  });

  it('stop with a reason ends the instance with that reason; a second start of a running agent is refused; capacity is enforced', async () => {
    const spec = fixture.agent('node-d');
    const events = new RecordingEvents();
    const instance = await n1.remote.start(spec, events);
    started.push(instance);
    await expect(n1.remote.start(spec, new RecordingEvents())).rejects.toMatchObject({ code: 'WARREN_NODE_BUSY' });
    const others = [];
    for (const name of ['node-e', 'node-f']) others.push(await n1.remote.start(fixture.agent(name), new RecordingEvents()));
    started.push(...others);
    await expect(n1.remote.start(fixture.agent('node-g'), new RecordingEvents())).rejects.toMatchObject({ code: 'WARREN_NODE_FULL' });
    await waitFor(() => events.calls.some((c) => c[0] === 'hello'), 'hello', 30_000);
    const exit = await instance.stop(2_000, { reason: 'watchdog', detail: 'memory over 1 MiB for 10 s' });
    expect(exit).toEqual({ kind: 'watchdog', detail: 'memory over 1 MiB for 10 s' });
    await expect(instance.exited).resolves.toEqual(exit);
    await expect(instance.stop()).resolves.toEqual(exit);
    for (const other of others) {
      const ended = await other.stop(1_000);
      await expect(other.exited).resolves.toEqual(ended);
    }
    await waitFor(() => fixture.registry.get('n1')?.instances.length === 0, 'a heartbeat without them');
  });

  it('exec streams stdout and stderr in order and the exit; stops on request; refuses an unknown program', async () => {
    const spec = fixture.agent('node-h');
    const stdout = new Collect();
    const stderr = new Collect();
    const script = 'for i in 1 2 3; do echo out$i; echo err$i >&2; done; head -c 300000 /dev/zero | tr "\\0" x; echo; [ "$PWD" = "$HOME" ] && echo "in-home $(id -u)"; exit 3';
    const command = await n1.remote.exec(spec, ['sh', '-c', script], { stdout, stderr });
    expect(command.pid).toBeGreaterThan(0);
    await expect(command.exited).resolves.toEqual({ kind: 'failed', exitCode: 3 });
    expect(stdout.text).toBe(`out1\nout2\nout3\n${'x'.repeat(300_000)}\nin-home ${spec.uid}\n`);
    expect(stderr.text).toBe('err1\nerr2\nerr3\n');

    const long = new Collect();
    const sleeper = await n1.remote.exec(spec, ['sh', '-c', 'echo started; exec sleep 600'], { stdout: long, stderr: new Collect() });
    await waitFor(() => long.text.includes('started'), 'the command to start');
    const exit = await sleeper.stop(1_000);
    expect(exit.kind).toBe('signaled');
    await expect(sleeper.exited).resolves.toEqual(exit);

    const streams = { stdout: new Collect(), stderr: new Collect() };
    await expect(n1.remote.exec(spec, [], streams)).rejects.toMatchObject({ code: 'WARREN_USAGE' });
    await expect(n1.remote.exec(spec, ['no-such-program-here'], streams)).rejects.toMatchObject({ code: 'WARREN_USAGE', message: expect.stringContaining('no-such-program-here: not found') as unknown });
  });

  it('refuses a malformed command naming the subject, and drops a malformed heartbeat', async () => {
    const { cmd, hb } = nodeSubjects(fixture.supervisor.namespace, 'n1');
    const reply = await fixture.supervisor.nc.request(cmd, encodePayload({ op: 'start', instance: 'nope' }), { timeout: 10_000 });
    const refused = JSON.parse(new TextDecoder().decode(reply.data)) as Record<string, unknown>;
    expect(refused).toMatchObject({ ok: false, code: 'WARREN_NODE_INVALID' });
    expect(refused.message).toContain(cmd);
    fixture.supervisor.nc.publish(hb, encodePayload({ node: 'n1' }));
    fixture.supervisor.nc.publish(nodeSubjects(fixture.supervisor.namespace, 'n9').hb, encodePayload({ ...fixture.registry.get('n1')!.heartbeat }));
    await waitFor(() => fixture.logger.lines.filter((l) => l.msg === 'malformed node heartbeat dropped').length === 2, 'two heartbeats dropped');
    expect(fixture.registry.get('n9')).toBeUndefined();
    expect(fixture.registry.get('n1')?.state).toBe('ready');
  });

  it('detach and release act on the node\'s home', async () => {
    const spec = fixture.agent('node-i');
    const instance = await n1.remote.start(spec, new RecordingEvents());
    await expect(n1.remote.releaseStorage({ name: spec.name })).rejects.toMatchObject({ code: 'WARREN_NODE_BUSY' });
    await instance.stop(1_000);
    await instance.close();
    await expect(n1.remote.detachStorage({ name: spec.name })).resolves.toBe(false);
    expect(existsSync(join(n1.homeRoot, spec.name))).toBe(true);
    await n1.remote.releaseStorage({ name: spec.name });
    expect(existsSync(join(n1.homeRoot, spec.name))).toBe(false);
  });
});

describe('lost nodes', () => {
  it('a daemon that stops heartbeating is marked lost and its instances end with kind lost', async () => {
    const n2 = await fixture.startNode('n2');
    const events = new RecordingEvents();
    const instance = await n2.remote.start(fixture.agent('lost-a'), events);
    started.push(instance);
    await waitFor(() => events.calls.some((c) => c[0] === 'hello'), 'hello', 30_000);
    await n2.daemon.close();
    await expect(instance.exited).resolves.toMatchObject({ kind: 'lost', detail: expect.stringContaining('node n2 sent no heartbeat') as unknown });
    expect(fixture.lost.map((n) => n.name)).toContain('n2');
    expect(fixture.registry.get('n2')?.state).toBe('lost');
    expect(fixture.registry.get('n1')?.state).toBe('ready');
    await n2.daemon.stopAll(1_000);
  });

  it('an instance reported by its node after it ended here is told to stop', async () => {
    const n3 = await fixture.startNode('n3');
    const events = new RecordingEvents();
    const instance = await n3.remote.start(fixture.agent('lost-b'), events);
    started.push(instance);
    await waitFor(() => events.calls.some((c) => c[0] === 'hello'), 'hello', 30_000);
    // What the supervisor does when the registry calls the node lost (the node kept running).
    n3.remote.nodeLost('node n3 sent no heartbeat');
    await expect(instance.exited).resolves.toEqual({ kind: 'lost', detail: 'node n3 sent no heartbeat' });
    // Its next heartbeats still list the instance: it is stopped there, and later ones no longer list it.
    await waitFor(() => n3.daemon.snapshot().instances.length === 0, 'the stale instance stopped on the node', 30_000);
    await waitFor(() => fixture.registry.get('n3')?.instances.length === 0, 'a heartbeat without it');
    expect(fixture.logger.lines.some((l) => l.msg === 'the node runs an instance that ended here: stopping it' && l.obj.node === 'n3')).toBe(true);
  });

  it('a node whose daemon restarted (another startedMs) ends the instances it no longer reports', async () => {
    const n4 = await fixture.startNode('n4');
    const events = new RecordingEvents();
    const instance = await n4.remote.start(fixture.agent('restart-a'), events);
    started.push(instance);
    await waitFor(() => events.calls.some((c) => c[0] === 'hello'), 'hello', 30_000);
    const firstRun = fixture.registry.get('n4')!.heartbeat.startedMs;
    await n4.daemon.close();
    await new Promise((resolve) => setTimeout(resolve, 5));
    const again = await NodeDaemon.start({
      nc: n4.broker.nc,
      broker: n4.broker,
      ns: n4.broker.namespace,
      name: 'n4',
      labels: {},
      capacity: { cpus: 1, memoryBytes: 2 ** 30, maxAgents: 1 },
      runtime: n4.runtime,
      logger: fixture.logger,
      heartbeatMs: 200,
      homeRoot: n4.homeRoot,
    });
    try {
      await expect(instance.exited).resolves.toMatchObject({ kind: 'lost', detail: expect.stringContaining('node n4 restarted') as unknown });
      expect(fixture.registry.get('n4')!.heartbeat.startedMs).not.toBe(firstRun);
    } finally {
      await again.close();
      await n4.daemon.stopAll(1_000);
    }
  });
});

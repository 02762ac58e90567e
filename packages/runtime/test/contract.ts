import { Writable } from 'node:stream';
import type { Broker, ResultMessage } from '@warren/broker';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AgentInstance, AgentRuntime, AgentSpec, AgentStartSpec } from '../src/index.js';
import { RecordingEvents, waitFor } from './support/events.js';

/**
 * What a driver's test file hands to {@link describeAgentRuntimeContract}: a runtime on a host that
 * can run agents, a broker its channels bridge to, and agents to start.
 */
export interface ContractFixture {
  readonly runtime: AgentRuntime;
  /** The broker the runtime's instances consume assignments from and publish results to (streams made). */
  readonly broker: Broker;
  /**
   * A start spec of a fresh agent `name` whose home exists, empty and owned by it, whose runner runs
   * shell tasks (`{ kind: 'shell' }`), one at a time. Each name gets its own uid.
   */
  agent(name: string): Promise<AgentStartSpec>;
  /** Stops and removes everything the fixture made. Idempotent. */
  close(): Promise<void>;
}

/** A writable that keeps what it is given, as text. */
export class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString();
    callback();
  }
}

/**
 * The behaviour every {@link AgentRuntime} driver must have, written against the interface only:
 * a Kubernetes pod driver or a remote node runs the same tests with its own fixture.
 * @param driver the driver's name, as `probe()` reports it.
 * @param setup makes the fixture once for the file (the `beforeAll` deadline applies).
 */
export function describeAgentRuntimeContract(driver: string, setup: () => Promise<ContractFixture>): void {
  describe(`the ${driver} agent runtime keeps the AgentRuntime contract`, () => {
    let fixture: ContractFixture;
    const started: AgentInstance[] = [];

    beforeAll(async () => {
      fixture = await setup();
    });
    afterEach(async () => {
      for (const instance of started.splice(0)) await instance.close();
    });
    afterAll(async () => {
      await fixture?.close();
    });

    async function start(name: string): Promise<{ spec: AgentStartSpec; instance: AgentInstance; events: RecordingEvents }> {
      const spec = await fixture.agent(name);
      const events = new RecordingEvents();
      const instance = await fixture.runtime.start(spec, events);
      started.push(instance);
      return { spec, instance, events };
    }

    it('probe() describes the host and the isolation it checked', async () => {
      const host = await fixture.runtime.probe();
      expect(host).toMatchObject({ driver, isolation: 'full' });
      expect(typeof host.details).toBe('object');
    });

    it('an instance says hello, reads its usage and runs a task assigned to it through the broker', async () => {
      const { spec, instance, events } = await start('contract-a');
      expect(instance.name).toBe(spec.name);
      expect(instance.pid).toBeGreaterThan(0);
      expect(instance.unsafe).toBe(false);
      await waitFor('the runner to say hello', () => events.hellos.length > 0);
      expect(events.hellos[0]!.agent).toBe(spec.name);
      expect(instance.connected).toBe(true);
      const usage = instance.usage();
      expect(usage.pids).toBeGreaterThan(0);
      expect(usage.memoryBytes).toBeGreaterThan(0);
      expect(usage.cpuMs).toBeGreaterThanOrEqual(0);

      const results: ResultMessage[] = [];
      const consumer = await fixture.broker.consumeResults(async (delivery) => {
        results.push(delivery.data);
        delivery.ack();
      });
      try {
        await fixture.broker.publishAssignment({
          taskId: 'whoami',
          attempt: 1,
          agent: spec.name,
          title: 'who am I',
          body: '',
          command: 'echo "$(id -u) $(id -g)"',
          fields: {},
          timeoutMs: 60_000,
          assignedAtMs: Date.now(),
        });
        await waitFor('the result of whoami', () => results.some((r) => r.taskId === 'whoami'));
      } finally {
        await consumer.stop();
      }
      expect(events.acks).toEqual([{ agent: spec.name, taskId: 'whoami', attempt: 1 }]);
      expect(events.assignmentsChecked).toMatchObject([{ agent: spec.name, taskId: 'whoami', attempt: 1 }]);
      expect(results.find((r) => r.taskId === 'whoami')).toMatchObject({ agent: spec.name, outcome: 'succeeded', exitCode: 0, summary: `${spec.uid} ${spec.gid}` });
      // The channel kept the result: it can be published again for a lost one.
      expect(instance.resendResult('whoami', 1)).toBe(true);
      expect(instance.resendResult('whoami', 2)).toBe(false);
    });

    it('requestShutdown() ends the instance with exit code 0, and close() is idempotent', async () => {
      const { instance, events } = await start('contract-b');
      await waitFor('the runner to say hello', () => events.hellos.length > 0);
      instance.requestShutdown('sleep');
      expect(await instance.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
      await waitFor('the channel to report the disconnect', () => events.disconnects.length > 0);
      expect(instance.connected).toBe(false);
      const first = instance.close();
      expect(instance.close()).toBe(first);
      await first;
      expect(instance.usage()).toMatchObject({ memoryBytes: 0, pids: 0 });
    });

    it('stop() with a reason ends the instance with that reason and its detail', async () => {
      const { instance, events } = await start('contract-c');
      await waitFor('the runner to say hello', () => events.hellos.length > 0);
      const exit = await instance.stop(2_000, { reason: 'watchdog', detail: 'memory over 1 MiB for 10 s' });
      expect(exit).toEqual({ kind: 'watchdog', detail: 'memory over 1 MiB for 10 s' });
      expect(await instance.exited).toEqual(exit);
      expect(await instance.stop()).toEqual(exit);
    });

    it('exec runs a command as the agent in its home and reports its exit', async () => {
      const spec: AgentSpec = await fixture.agent('contract-d');
      const stdout = new Collect();
      const stderr = new Collect();
      const command = await fixture.runtime.exec(spec, ['sh', '-c', 'echo "$(id -u) $(id -g)"; [ "$PWD" = "$HOME" ] && echo in-home; echo oops >&2; exit 3'], { stdout, stderr });
      expect(command.pid).toBeGreaterThan(0);
      expect(await command.exited).toEqual({ kind: 'failed', exitCode: 3 });
      expect(stdout.text).toBe(`${spec.uid} ${spec.gid}\nin-home\n`);
      expect(stderr.text).toBe('oops\n');
    });

    it('exec stops a command on request', async () => {
      const spec = await fixture.agent('contract-e');
      const stdout = new Collect();
      const command = await fixture.runtime.exec(spec, ['sh', '-c', 'echo started; exec sleep 600'], { stdout, stderr: new Collect() });
      await waitFor('the command to start', () => stdout.text.includes('started'));
      const exit = await command.stop(1_000);
      expect(exit.kind).toBe('signaled');
      expect(await command.exited).toEqual(exit);
    });

    it('exec refuses an empty command and a program not on the agent PATH, with WARREN_USAGE', async () => {
      const spec = await fixture.agent('contract-f');
      const streams = { stdout: new Collect(), stderr: new Collect() };
      await expect(fixture.runtime.exec(spec, [], streams)).rejects.toMatchObject({ code: 'WARREN_USAGE' });
      await expect(fixture.runtime.exec(spec, ['no-such-program-here'], streams)).rejects.toMatchObject({
        code: 'WARREN_USAGE',
        message: expect.stringContaining('no-such-program-here: not found'),
      });
    });
  });
}

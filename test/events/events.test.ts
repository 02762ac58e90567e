/**
 * Events on NATS: a plain NATS client subscribed to a supervisor's `warren.<instance>.events.>`
 * during a run receives every event the audit trail holds, in audit order, with the row's fields.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startTestNats } from '@warren/testing';
import type { EmbeddedNatsServer } from '@warren/broker';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, waitFor, warren, warrenSync, type TestLayout } from '../support/cli.js';

const { layouts } = cleanUpAfterEach();
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

beforeAll(() => requireMachine());

/** An event as the supervisor publishes it. */
interface Received {
  readonly subject: string;
  readonly seq: number;
  readonly ts: number;
  readonly kind: string;
  readonly actor: string;
  readonly object: string;
  readonly decision: 'allow' | 'deny' | null;
  readonly details: unknown;
}

/** A row of `warren audit --json`. */
interface Row {
  readonly seq: number;
  readonly timeMs: number;
  readonly actor: string;
  readonly action: string;
  readonly object: string;
  readonly decision: 'allow' | 'deny' | null;
  readonly details: unknown;
}

function auditOf(made: TestLayout): Row[] {
  return JSON.parse(warrenSync(['audit', '--json', '--limit', '100000', ...made.args()])) as Row[];
}

describe('events on NATS', () => {
  it('a plain NATS client subscribed during a run receives every event the audit trail holds, in order', async () => {
    const nats: EmbeddedNatsServer = await startTestNats();
    closers.push(() => nats.close());
    const nc: NatsConnection = await connect({ servers: nats.url, name: 'events-test' });
    closers.push(() => nc.close());
    const received: Received[] = [];
    nc.subscribe('warren.ev1.events.>', {
      callback: (err, msg) => {
        if (!err) received.push({ subject: msg.subject, ...msg.json<Omit<Received, 'subject'>>() });
      },
    });
    await nc.flush();

    const made = makeTestLayout({
      ok: shellTask('ok', 'echo ok > out.txt'),
      fails: shellTask('fails', 'echo broken; exit 3'),
      after: shellTask('after', 'echo after', 'depends_on: [ok]\n'),
      broken: '---\nid: broken\nstatus: nowhere\n---\nNo title, unknown status.\n',
    });
    layouts.push(made);
    const run = await warren(made.args('run', '--until-idle', '--nats-url', nats.url, '--instance', 'ev1'));
    expect(run.code, run.stderr).toBe(1); // `fails` failed and `broken` is held

    const rows = auditOf(made);
    const last = rows.at(-1)!;
    expect(last.action).toBe('supervisor.stop');
    // Core NATS delivers one connection's messages in order: once the last row's event is here, all are.
    await waitFor('the event of the last audit row', () => received.some((e) => e.seq === last.seq), 30_000);

    expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
    expect(received.map((e) => e.seq)).toEqual(rows.map((r) => r.seq));
    expect(received).toEqual(
      rows.map((r) => ({
        subject: `warren.ev1.events.${r.action}`,
        seq: r.seq,
        ts: r.timeMs,
        kind: r.action,
        actor: r.actor,
        object: r.object,
        decision: r.decision,
        details: r.details,
      })),
    );
    // One log line per event: the lines the supervisor has always written, no more.
    const messages = run.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { msg?: string }).msg);
    const count = (msg: string) => messages.filter((m) => m === msg).length;
    const events = (...of: string[]) => received.filter((e) => of.includes(e.kind)).length;
    expect(count('task assigned')).toBe(events('task.assign'));
    expect(count('task finished')).toBe(events('task.complete', 'task.fail'));
    expect(count('agent started')).toBe(events('agent.start', 'agent.wake'));
    expect(count('agent ready')).toBe(events('agent.ready'));
    // The run did what the events say: each kind the tasks above cause is there.
    const kinds = new Set(received.map((e) => e.kind));
    for (const kind of ['supervisor.start', 'task.held', 'input.rejected', 'agent.start', 'agent.ready', 'policy.decide', 'task.assign', 'task.start', 'task.complete', 'task.fail', 'board.write', 'agent.stop', 'supervisor.stop']) {
      expect(kinds, kind).toContain(kind);
    }
  });
});

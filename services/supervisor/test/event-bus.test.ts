/**
 * The event bus on a real SQLite database and a real nats-server: rows are appended inside the
 * caller's transaction, events reach NATS only after the commit and in audit order, and without a
 * broker they stay in the audit trail.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { openAudit, type AuditTrail } from '@warren/audit';
import { connectBroker, eventSubject, type Broker, type EmbeddedNatsServer } from '@warren/broker';
import type { Logger } from '@warren/core';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import { makeTempDir, startTestNats, type TempDir } from '@warren/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, type EventPayload } from '../src/event-bus.js';
import { EVENT_CATALOGUE, EVENT_KINDS, eventLogLine, type WarrenEvent } from '../src/events.js';

let nats: EmbeddedNatsServer;
let broker: Broker;
let nc: NatsConnection;
beforeAll(async () => {
  nats = await startTestNats();
  broker = await connectBroker({ servers: nats.url, name: 'event-bus-test' });
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await broker?.close();
  await nats?.close();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Fixture {
  readonly db: SqliteDatabase;
  readonly audit: AuditTrail;
  readonly bus: EventBus;
  readonly log: RecordingLogger;
  readonly received: EventPayload[];
  /**
   * Waits until `count` events were received (fails after 20 s: a hang, not a speed check). One
   * connection's messages arrive in order, so a test ends with a marker event to know that nothing
   * it expects not to see is still on its way.
   */
  receivedCount: (count: number) => Promise<void>;
}

async function fixture(options: { attach?: boolean } = {}): Promise<Fixture> {
  const dir: TempDir = await makeTempDir('warren-events-');
  cleanups.push(() => dir.close());
  const db = openDatabase(`${dir.path}/warren.db`);
  cleanups.push(() => db.close());
  const audit = openAudit(db);
  const log = recordingLogger();
  const bus = new EventBus({ db, audit, logger: log });
  cleanups.push(() => bus.close());
  if (options.attach !== false) bus.attachBroker(broker);
  const received: EventPayload[] = [];
  const sub: Subscription = nc.subscribe('warren.events.>', {
    callback: (err, msg) => {
      if (!err) received.push(msg.json<EventPayload>());
    },
  });
  cleanups.push(() => sub.unsubscribe());
  await nc.flush();
  const receivedCount = async (count: number): Promise<void> => {
    const deadline = Date.now() + 20_000;
    while (received.length < count) {
      if (Date.now() > deadline) throw new Error(`received ${received.length} of ${count} events`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  return { db, audit, bus, log, received, receivedCount };
}

const blocked = (taskId: string): WarrenEvent => ({ actor: 'board', action: 'task.blocked', object: `task:${taskId}`, details: { reason: `reason of ${taskId}` } });
const assigned = (taskId: string, attempt = 1): WarrenEvent => ({ actor: 'supervisor', action: 'task.assign', object: `task:${taskId}`, details: { agent: 'shell-1', attempt } });

describe('EventBus', () => {
  it('appends, logs one line and publishes an event emitted outside a transaction at once, with its audit row as payload', async () => {
    const { bus, audit, log, received, receivedCount } = await fixture();
    const record = bus.emit(assigned('t1'));
    expect(bus.stats).toEqual({ published: 1, dropped: 0, discarded: 0 });
    await receivedCount(1);
    const [row] = audit.query();
    expect(row).toMatchObject({ seq: record.seq, action: 'task.assign', object: 'task:t1' });
    expect(received).toEqual([
      { seq: row!.seq, ts: row!.timeMs, kind: 'task.assign', actor: 'supervisor', object: 'task:t1', decision: null, details: { agent: 'shell-1', attempt: 1 } },
    ]);
    expect(log.lines).toEqual([{ level: 'info', msg: 'task assigned', obj: { taskId: 't1', agent: 'shell-1', attempt: 1 } }]);
  });

  it('publishes the events of a transaction after its commit and none of one that rolls back', async () => {
    const { bus, audit, db, received, receivedCount } = await fixture();
    bus.transaction(() => {
      db.prepare('CREATE TABLE IF NOT EXISTS t (x INTEGER)').run();
      bus.emit(assigned('a'));
      bus.emit(assigned('b'));
      expect(db.inTransaction).toBe(true);
      expect(bus.stats.published).toBe(0);
    });
    expect(bus.stats.published).toBe(2);
    expect(() =>
      bus.transaction(() => {
        bus.emit(assigned('rolled-back'));
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(bus.stats).toEqual({ published: 2, dropped: 0, discarded: 1 });
    bus.emit(blocked('marker'));
    await receivedCount(3);
    expect(received.map((e) => e.object)).toEqual(['task:a', 'task:b', 'task:marker']);
    expect(audit.query().map((r) => r.object)).toEqual(['task:a', 'task:b', 'task:marker']);
    expect(received.map((e) => e.seq)).toEqual(audit.query().map((r) => r.seq));
  });

  it('joins nested transactions: an inner one that throws loses its events, the outer one keeps its own', async () => {
    const { bus, audit, received, receivedCount } = await fixture();
    bus.transaction(() => {
      bus.emit(assigned('outer-1'));
      try {
        bus.transaction(() => {
          bus.emit(assigned('inner'));
          throw new Error('inner fails');
        });
      } catch {
        // the outer transaction goes on
      }
      bus.transaction(() => bus.emit(assigned('inner-ok')));
      expect(bus.stats.published).toBe(0);
      bus.emit(assigned('outer-2'));
    });
    await receivedCount(3);
    expect(received.map((e) => e.object)).toEqual(['task:outer-1', 'task:inner-ok', 'task:outer-2']);
    expect(received.map((e) => e.seq)).toEqual(audit.query().map((r) => r.seq));
    expect(bus.stats).toEqual({ published: 3, dropped: 0, discarded: 1 });
  });

  it('publishes in audit order, events inside and outside transactions mixed', async () => {
    const { bus, audit, received, receivedCount } = await fixture();
    for (let i = 0; i < 60; i++) {
      if (i % 3 === 0) bus.emit(assigned(`t${i}`));
      else bus.transaction(() => {
        bus.emit(assigned(`t${i}`));
        bus.emit(blocked(`t${i}`));
      });
    }
    const rows = audit.query({ limit: 10_000 });
    expect(rows).toHaveLength(100);
    await receivedCount(rows.length);
    expect(received.map((e) => [e.seq, e.kind, e.object])).toEqual(rows.map((r) => [r.seq, r.action, r.object]));
  });

  it('publishes an event emitted inside a transaction it did not open once that commits, and drops it on rollback', async () => {
    const { bus, audit, db, received, receivedCount } = await fixture();
    db.transaction(() => {
      bus.emit(assigned('foreign-ok'));
    })();
    expect(() =>
      db.transaction(() => {
        bus.emit(assigned('foreign-rolled-back'));
        throw new Error('rollback');
      })(),
    ).toThrow('rollback');
    bus.emit(blocked('marker'));
    await receivedCount(2);
    expect(received.map((e) => e.object)).toEqual(['task:foreign-ok', 'task:marker']);
    expect(received.map((e) => e.seq)).toEqual(audit.query().map((r) => r.seq));
    expect(bus.stats.discarded).toBe(1);
  });

  it('keeps events in the audit trail only without a broker, after the bus closed and with a closed broker, never throwing', async () => {
    const { bus, audit, log } = await fixture({ attach: false });
    bus.emit(assigned('no-broker'));
    bus.transaction(() => bus.emit(assigned('no-broker-tx')));
    expect(bus.stats).toEqual({ published: 0, dropped: 2, discarded: 0 });
    expect(log.lines.filter((l) => l.level === 'debug' && l.msg === 'event kept in the audit trail only')).toHaveLength(2);

    const closedBroker = await connectBroker({ servers: nats.url, name: 'event-bus-closed' });
    await closedBroker.close();
    bus.attachBroker(closedBroker);
    expect(() => bus.emit(assigned('closed-broker'))).not.toThrow();
    expect(bus.stats.dropped).toBe(3);

    await bus.close();
    await bus.close();
    bus.attachBroker(broker);
    bus.emit(assigned('after-close'));
    expect(bus.stats).toEqual({ published: 0, dropped: 4, discarded: 0 });
    expect(audit.query().map((r) => r.object)).toEqual(['task:no-broker', 'task:no-broker-tx', 'task:closed-broker', 'task:after-close']);
  });

  it('neither logs nor publishes an event whose audit row is refused', async () => {
    const { bus, log } = await fixture();
    expect(() => bus.emit({ actor: '', action: 'task.blocked', object: 'task:x', details: { reason: 'r' } })).toThrow(/actor/);
    expect(log.lines).toEqual([]);
    expect(bus.stats).toEqual({ published: 0, dropped: 0, discarded: 0 });
  });

  it('takes a log line override for one emit', async () => {
    const { bus, log } = await fixture({ attach: false });
    bus.emit(blocked('t1'), { message: 'task t1 is blocked: reason of t1' });
    expect(log.lines[0]).toEqual({ level: 'warn', msg: 'task t1 is blocked: reason of t1', obj: { taskId: 't1', reason: 'reason of t1' } });
  });
});

describe('the event catalogue', () => {
  it('gives every kind a valid NATS subject, a description and a log line', () => {
    expect(EVENT_KINDS.length).toBeGreaterThan(50);
    for (const kind of EVENT_KINDS) {
      expect(eventSubject(kind)).toBe(`warren.events.${kind}`);
      expect(EVENT_CATALOGUE[kind].description.length).toBeGreaterThan(10);
      const line = eventLogLine({ actor: 'supervisor', action: kind, object: 'task:t1', details: SAMPLE_DETAILS } as unknown as WarrenEvent);
      expect(['trace', 'debug', 'info', 'warn', 'error']).toContain(line.level);
      expect(line.message.length).toBeGreaterThan(0);
    }
  });

  it('is listed in docs/events.md, one table row per kind', () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'events.md'), 'utf8');
    const catalogue = doc.slice(doc.indexOf('## Catalogue'));
    const listed = [...catalogue.matchAll(/^\| `([a-z_.]+)` \|/gm)].map((m) => m[1]);
    expect(listed).toEqual(EVENT_KINDS);
  });

  it('logs the messages and fields the supervisor has always logged for the common kinds', () => {
    expect(eventLogLine({ actor: 'agent:shell-1', action: 'task.complete', object: 'task:t1', details: { attempt: 1, outcome: 'succeeded', exitCode: 0, durationMs: 12, outputs: [] } })).toEqual({
      level: 'info',
      message: 'task finished',
      fields: { taskId: 't1', agent: 'shell-1', attempt: 1, outcome: 'succeeded', durationMs: 12 },
    });
    expect(eventLogLine({ actor: 'agent:shell-1', action: 'agent.ready', object: 'agent:shell-1', details: { uid: 1900000000 } })).toEqual({
      level: 'info',
      message: 'agent ready',
      fields: { agent: 'shell-1', uid: 1900000000 },
    });
    expect(
      eventLogLine({ actor: 'supervisor', action: 'agent.wake', object: 'agent:shell-1', details: { template: 'shell', uid: 1, gid: 1, pid: 42, home: '/h', isolation: 'full', unsafe: false } }),
    ).toEqual({ level: 'info', message: 'agent started', fields: { agent: 'shell-1', uid: 1, sandboxPid: 42, woken: true } });
    expect(eventLogLine({ actor: 'supervisor', action: 'policy.decide', object: 'task:t1', decision: 'allow', details: { sub: 'shell-1', act: 'assign' } }).level).toBe('debug');
    expect(eventLogLine({ actor: 'supervisor', action: 'board.write', object: 'task:t1', details: { status: 'done' } }).level).toBe('debug');
    expect(() => eventLogLine({ actor: 'x', action: 'no.such', object: 'y', details: {} } as unknown as WarrenEvent)).toThrow(/not an event kind/);
  });
});

/** Details with every field any kind's log line reads. */
const SAMPLE_DETAILS = { attempt: 1, outcome: 'failed', reason: 'r', message: 'm', count: 2, limit: 1, detail: 'd', exit: null, openTasks: [], uid: 1, pid: 2, failures: 3, state: 'done', act: 'assign' };

type RecordingLogger = Logger & { lines: { level: string; msg: string | undefined; obj: object }[] };

function recordingLogger(): RecordingLogger {
  const lines: { level: string; msg: string | undefined; obj: object }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => {
    lines.push({ level, msg, obj });
  };
  const logger: RecordingLogger = { lines, trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return logger;
}

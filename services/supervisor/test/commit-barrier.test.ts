/**
 * The tick's durability barrier on a real SQLite database (WAL): commits made through it do not
 * sync, effects and held events wait for its one sync, and what arrives during a pass waits for
 * the next one.
 */
import { openAudit } from '@warren/audit';
import type { Logger } from '@warren/core';
import { openDatabase, syncWal, type SqliteDatabase } from '@warren/store';
import { makeTempDir, type TempDir } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { EventBus, type EventPayload } from '../src/event-bus.js';
import { CommitBarrier } from '../src/executions/barrier.js';
import { Inbox } from '../src/executions/inbox.js';
import type { AgentLifecycle } from '../src/agents/lifecycle.js';
import type { SupervisorContext } from '../src/context.js';
import type { Settler } from '../src/executions/settle.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const paths = new WeakMap<SqliteDatabase, string>();

const quiet: Logger = { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, fatal: () => undefined, child: () => quiet } as unknown as Logger;

async function database(): Promise<SqliteDatabase> {
  const dir: TempDir = await makeTempDir('warren-barrier-');
  cleanups.push(() => dir.close());
  const db = openDatabase(`${dir.path}/warren.db`);
  paths.set(db, `${dir.path}/warren.db`);
  cleanups.push(() => db.close());
  db.exec('CREATE TABLE t (x INTEGER) STRICT');
  return db;
}

describe('CommitBarrier', () => {
  it('commits without a sync, then syncs once and runs the effects in order; an idle pass does nothing', async () => {
    const db = await database();
    const syncs: number[] = [];
    const levels: unknown[] = [];
    const barrier = new CommitBarrier(db, undefined, async (d) => {
      syncs.push(1);
      await syncWal(d);
    });
    const ran: string[] = [];
    barrier.commit(() => {
      levels.push(db.pragma('synchronous', { simple: true }));
      db.prepare('INSERT INTO t VALUES (1)').run();
    });
    barrier.after(() => ran.push('ack 1'));
    barrier.commit(() => db.prepare('INSERT INTO t VALUES (2)').run());
    barrier.after(() => ran.push('ack 2'));
    expect(levels).toEqual([1]);
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    expect(ran).toEqual([]);
    expect(barrier.waiting).toBe(true);
    const stages: string[] = [];
    await barrier.pass((stage) => stages.push(`${stage} (${ran.length} run)`));
    expect(syncs).toHaveLength(1);
    expect(stages).toEqual(['before (0 run)', 'after (0 run)']);
    expect(ran).toEqual(['ack 1', 'ack 2']);
    expect(barrier.waiting).toBe(false);
    await barrier.pass();
    expect(syncs).toHaveLength(1);
    // A commit that changed no row (a plan that assigns nothing) leaves nothing to sync.
    barrier.commit(() => db.transaction(() => db.prepare('SELECT COUNT(*) FROM t').get())());
    expect(barrier.waiting).toBe(false);
  });

  it('leaves what arrives during a pass (a commit, an effect) for the next pass', async () => {
    const db = await database();
    let release: () => void = () => undefined;
    let syncs = 0;
    const barrier = new CommitBarrier(db, undefined, async () => {
      syncs += 1;
      await new Promise<void>((resolve) => (release = resolve));
    });
    const ran: string[] = [];
    barrier.commit(() => db.prepare('INSERT INTO t VALUES (1)').run());
    barrier.after(() => ran.push('first'));
    const passing = barrier.pass();
    barrier.commit(() => db.prepare('INSERT INTO t VALUES (2)').run());
    barrier.after(() => ran.push('second'));
    release();
    await passing;
    expect(ran).toEqual(['first']);
    expect(barrier.waiting).toBe(true);
    const next = barrier.pass();
    release();
    await next;
    expect(ran).toEqual(['first', 'second']);
    expect(syncs).toBe(2);
  });

  it('does not run the effects when the sync fails', async () => {
    const db = await database();
    const barrier = new CommitBarrier(db, undefined, () => Promise.reject(new Error('EIO: i/o error, fdatasync')));
    const ran: string[] = [];
    barrier.commit(() => db.prepare('INSERT INTO t VALUES (1)').run());
    barrier.after(() => ran.push('ack'));
    await expect(barrier.pass()).rejects.toThrow('EIO');
    expect(ran).toEqual([]);
  });

  it("holds the event bus's events from a commit until the sync is done", async () => {
    const db = await database();
    const bus = new EventBus({ db, audit: openAudit(db), logger: quiet });
    cleanups.push(() => bus.close());
    const seen: EventPayload[] = [];
    bus.subscribe((p) => seen.push(p));
    let synced = false;
    const barrier = new CommitBarrier(db, () => bus.hold(), async (d) => {
      await syncWal(d);
      synced = true;
    });
    barrier.commit(() => bus.transaction(() => bus.emit({ actor: 'supervisor', action: 'supervisor.start', object: 'supervisor' } as never)));
    expect(seen).toEqual([]);
    await barrier.pass();
    expect(synced).toBe(true);
    expect(seen.map((p) => p.kind)).toEqual(['supervisor.start']);
    // No hold open: published at the commit.
    bus.transaction(() => bus.emit({ actor: 'supervisor', action: 'supervisor.start', object: 'supervisor' } as never));
    expect(seen).toHaveLength(2);
  });
});

describe('the tick and its barrier', () => {
  it('passes the barrier once a tick, after the inbox and the plan, before cards, acks and assignments go out', async () => {
    const { TICK_STAGES } = await import('../src/supervisor.js');
    const at = (name: string): number => TICK_STAGES.indexOf(name as (typeof TICK_STAGES)[number]);
    expect(TICK_STAGES.filter((name) => /barrier/i.test(name))).toEqual(['passBarrier']);
    expect(at('applyInbox')).toBeLessThan(at('planAndAssign'));
    expect(at('planAndAssign')).toBeLessThan(at('passBarrier'));
    expect(at('passBarrier')).toBeLessThan(at('flushBoard'));
    expect(at('passBarrier')).toBeLessThan(at('publishAssignments'));
    expect(new Set(TICK_STAGES).size).toBe(TICK_STAGES.length);
  });

  it('starts the agents the plan asks for before the barrier, so that a start runs while the WAL is synced', async () => {
    const { TICK_STAGES } = await import('../src/supervisor.js');
    const at = (name: string): number => TICK_STAGES.indexOf(name as (typeof TICK_STAGES)[number]);
    expect(at('planAndAssign')).toBeLessThan(at('startAgents'));
    expect(at('startAgents')).toBeLessThan(at('passBarrier'));
  });
});

describe('the inbox and the barrier', () => {
  it('applies hellos right behind each other in one transaction, through the barrier', async () => {
    const db = await database();
    const bus = new EventBus({ db, audit: openAudit(db), logger: quiet });
    cleanups.push(() => bus.close());
    const reader = openDatabase(paths.get(db)!, { readonly: true });
    cleanups.push(() => reader.close());
    const committed = () => (reader.prepare("SELECT COUNT(*) AS n FROM audit WHERE action = 'agent.ready'").get() as { n: number }).n;
    let syncs = 0;
    const barrier = new CommitBarrier(db, () => bus.hold(), async (d) => {
      syncs += 1;
      await syncWal(d);
    });
    // What a second connection saw of the earlier readiness rows while each hello was applied.
    const seenAtEach: number[] = [];
    // The lifecycle's markReady as it commits: its own transaction, through the barrier.
    const agents = {
      markReady: (name: string) =>
        barrier.commit(() =>
          bus.transaction(() => {
            bus.emit({ actor: `agent:${name}`, action: 'agent.ready', object: `agent:${name}`, details: { uid: 1 } } as never);
            seenAtEach.push(committed());
          }),
        ),
    } as unknown as AgentLifecycle;
    const ctx = { transaction: (fn: () => void) => bus.transaction(fn) } as unknown as SupervisorContext;
    const inbox = new Inbox(ctx, agents, {} as Settler, (_label, work) => work);
    inbox.events.push({ kind: 'hello', agent: 'a-1' }, { kind: 'hello', agent: 'a-2' }, { kind: 'hello', agent: 'a-3' });
    await inbox.apply(Date.now(), barrier);
    // Applied in order, none committed before the last: one transaction for the three.
    expect(seenAtEach).toEqual([0, 0, 0]);
    expect(committed()).toBe(3);
    expect(syncs).toBe(0);
    await barrier.pass();
    expect(syncs).toBe(1);
    expect(reader.prepare("SELECT object FROM audit WHERE action = 'agent.ready' ORDER BY seq").all()).toEqual([{ object: 'agent:a-1' }, { object: 'agent:a-2' }, { object: 'agent:a-3' }]);
  });
});

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

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const quiet: Logger = { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, fatal: () => undefined, child: () => quiet } as unknown as Logger;

async function database(): Promise<SqliteDatabase> {
  const dir: TempDir = await makeTempDir('warren-barrier-');
  cleanups.push(() => dir.close());
  const db = openDatabase(`${dir.path}/warren.db`);
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

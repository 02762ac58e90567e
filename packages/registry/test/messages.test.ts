import { describe, expect, it } from 'vitest';
import { openAudit } from '@warren/audit';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import { makeTempDir } from '@warren/testing';
import { MessageLedger, migrateMessages, openRegistry, type MessageRecord } from '@warren/registry';

const message = (over: Partial<MessageRecord>): MessageRecord => ({ from: 'a-1', to: 'b-1', topic: '', bytes: 100, allowed: true, timeMs: 1_000, ...over });

const rows = (db: SqliteDatabase) => db.prepare('SELECT * FROM message_counts ORDER BY from_name, to_name, topic').all();

describe('MessageLedger', () => {
  it('counts each (from, to, topic) in one row: messages, denied ones, bytes let through, first and last time', async () => {
    await using dir = await makeTempDir('warren-messages-');
    const db = openDatabase(`${dir.path}/w.db`);
    try {
      const ledger = new MessageLedger(db);
      expect(rows(db)).toEqual([]);
      ledger.record(message({ timeMs: 2_000 }));
      ledger.record(message({ bytes: 50, timeMs: 1_500 })); // out of order: first_ms goes back, last_ms stays
      ledger.record(message({ bytes: 4_000, allowed: false, timeMs: 3_000 }));
      ledger.record(message({ from: 'b-1', to: 'a-1', bytes: 7, timeMs: 2_500 }));
      ledger.record(message({ to: '*', topic: 'builds', bytes: 3, timeMs: 2_600 }));
      ledger.record(message({ to: '*', topic: 'builds', bytes: 0, timeMs: 2_700 }));
      ledger.record(message({ to: '*', topic: 'deploys', allowed: false, timeMs: 2_800 }));
      expect(rows(db)).toEqual([
        { from_name: 'a-1', to_name: '*', topic: 'builds', count: 2, denied: 0, bytes: 3, first_ms: 2_600, last_ms: 2_700 },
        { from_name: 'a-1', to_name: '*', topic: 'deploys', count: 1, denied: 1, bytes: 0, first_ms: 2_800, last_ms: 2_800 },
        { from_name: 'a-1', to_name: 'b-1', topic: '', count: 3, denied: 1, bytes: 150, first_ms: 1_500, last_ms: 3_000 },
        { from_name: 'b-1', to_name: 'a-1', topic: '', count: 1, denied: 0, bytes: 7, first_ms: 2_500, last_ms: 2_500 },
      ]);
      const registry = openRegistry(db, { stateDir: dir.path, audit: openAudit(db) });
      expect(registry.messages().edges.map((e) => [e.from, e.to, e.topic, e.count, e.denied])).toEqual([
        ['a-1', 'b-1', '', 3, 1],
        ['a-1', '*', 'builds', 2, 0],
        ['a-1', '*', 'deploys', 1, 1],
        ['b-1', 'a-1', '', 1, 0],
      ]);
      expect(registry.messages({ agent: 'b-1' }).edges.map((e) => `${e.from}>${e.to}`)).toEqual(['a-1>b-1', 'b-1>a-1']);
      expect(registry.messages({ sinceMs: 2_700 }).edges.map((e) => e.lastMs)).toEqual([3_000, 2_700, 2_800]);
      expect(registry.messages({ agent: 'nobody' }).edges).toEqual([]);
    } finally {
      db.close();
    }
  });

  it('refuses a malformed record, naming the field, and counts nothing', async () => {
    await using dir = await makeTempDir('warren-messages-');
    const db = openDatabase(`${dir.path}/w.db`);
    try {
      const ledger = new MessageLedger(db);
      expect(() => ledger.record(message({ from: '' }))).toThrow(/'from' must be a non-empty string/);
      expect(() => ledger.record(message({ to: undefined }))).toThrow(/'to'/);
      expect(() => ledger.record(message({ topic: null as unknown as string }))).toThrow(/'topic'/);
      expect(() => ledger.record(message({ bytes: -1 }))).toThrow(/'bytes' must be a non-negative whole number, got -1/);
      expect(() => ledger.record(message({ bytes: 1.5 }))).toThrow(/'bytes'/);
      expect(() => ledger.record(message({ timeMs: Number.NaN }))).toThrow(/'timeMs'/);
      expect(rows(db)).toEqual([]);
    } finally {
      db.close();
    }
  });

  it('keeps its counts across reopening; the migration is idempotent and the registry runs it', async () => {
    await using dir = await makeTempDir('warren-messages-');
    const path = `${dir.path}/w.db`;
    let db = openDatabase(path);
    // A database the registry opened first has the table, with no rows: the graph is empty, not an error.
    expect(openRegistry(db, { stateDir: dir.path, audit: openAudit(db) }).messages()).toEqual({ messages: [], edges: [] });
    new MessageLedger(db).record(message({}));
    db.close();
    db = openDatabase(path);
    try {
      migrateMessages(db);
      migrateMessages(db);
      new MessageLedger(db).record(message({ timeMs: 5_000 }));
      expect(rows(db)).toEqual([{ from_name: 'a-1', to_name: 'b-1', topic: '', count: 2, denied: 0, bytes: 200, first_ms: 1_000, last_ms: 5_000 }]);
    } finally {
      db.close();
    }
  });
});

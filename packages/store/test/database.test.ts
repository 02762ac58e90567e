import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { commitWithoutSync, migrate, openDatabase, StoreError, syncWal } from '@warren/store';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warren-store-'));
  dirs.push(dir);
  return join(dir, 'nested', 'state.db');
}

describe('openDatabase', () => {
  it('creates the file in WAL mode with full sync', () => {
    const db = openDatabase(tempDb());
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    db.close();
  });
});

describe('migrate', () => {
  it('applies each step once and keeps versions per component', () => {
    const path = tempDb();
    const steps = [
      { version: 1, sql: 'CREATE TABLE a (x INTEGER) STRICT' },
      { version: 2, sql: 'ALTER TABLE a ADD COLUMN y TEXT' },
    ];
    let db = openDatabase(path);
    migrate(db, 'a', steps);
    migrate(db, 'b', [{ version: 1, sql: 'CREATE TABLE b (x INTEGER) STRICT' }]);
    db.close();
    db = openDatabase(path);
    migrate(db, 'a', steps);
    const columns = db.prepare('PRAGMA table_info(a)').all() as { name: string }[];
    expect(columns.map((c) => c.name)).toEqual(['x', 'y']);
    db.close();
  });

  it('rolls back a failing step and names the component', () => {
    const db = openDatabase(tempDb());
    expect(() =>
      migrate(db, 'broken', [{ version: 1, sql: 'CREATE TABLE t (x INTEGER) STRICT; SELECT nonsense FROM nowhere' }]),
    ).toThrow(StoreError);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 't'").get()).toBeUndefined();
    db.close();
  });
});

describe('commitWithoutSync', () => {
  it('commits with synchronous normal (no fsync of the WAL), restores full sync, and the rows are there for another connection', () => {
    const path = tempDb();
    const db = openDatabase(path);
    db.exec('CREATE TABLE t (x INTEGER) STRICT');
    const seen: unknown[] = [];
    const result = commitWithoutSync(db, () => {
      seen.push(db.pragma('synchronous', { simple: true }));
      db.transaction(() => db.prepare('INSERT INTO t VALUES (1)').run())();
      return 'done';
    });
    expect(result).toBe('done');
    expect(seen).toEqual([1]);
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    const reader = openDatabase(path, { readonly: true });
    expect(reader.prepare('SELECT COUNT(*) AS n FROM t').get()).toEqual({ n: 1 });
    reader.close();
    db.close();
  });

  it('restores the level when the work throws, and inside a transaction leaves the level alone', () => {
    const db = openDatabase(tempDb());
    expect(() =>
      commitWithoutSync(db, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    const inside = db.transaction(() => commitWithoutSync(db, () => db.pragma('synchronous', { simple: true })))();
    expect(inside).toBe(2);
    db.close();
  });

  it('prepares its pragmas once per connection, and leaves a connection already at normal as it is', () => {
    const db = openDatabase(tempDb());
    db.exec('CREATE TABLE t (x INTEGER) STRICT');
    const insert = db.prepare('INSERT INTO t VALUES (1)');
    commitWithoutSync(db, () => insert.run());
    const prepare = vi.spyOn(db, 'prepare');
    for (let i = 0; i < 10; i++) commitWithoutSync(db, () => insert.run());
    expect(prepare).not.toHaveBeenCalled();
    prepare.mockRestore();
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    db.pragma('synchronous = NORMAL');
    expect(commitWithoutSync(db, () => db.pragma('synchronous', { simple: true }))).toBe(1);
    expect(db.pragma('synchronous', { simple: true })).toBe(1);
    expect(db.prepare('SELECT COUNT(*) AS n FROM t').get()).toEqual({ n: 11 });
    db.close();
  });
});

describe('syncWal', () => {
  it('syncs the WAL of a file database (its rows stay readable), the main file once the WAL is gone, and leaves an in-memory one alone', async () => {
    const path = tempDb();
    const db = openDatabase(path);
    db.exec('CREATE TABLE t (x INTEGER) STRICT');
    commitWithoutSync(db, () => db.transaction(() => db.prepare('INSERT INTO t VALUES (2)').run())());
    await syncWal(db);
    expect(db.prepare('SELECT x FROM t').all()).toEqual([{ x: 2 }]);
    const memory = openDatabase(':memory:');
    await syncWal(memory);
    memory.close();
    db.close();
    await expect(syncWal(db)).resolves.toBeUndefined();
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { migrate, openDatabase, StoreError } from '@warren/store';

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

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { migrate, openDatabase } from '@warren/store';
import type { SqliteDatabase } from '@warren/store';
import { AuditError, GENESIS_HASH, canonicalJson, openAudit, rowHash } from '@warren/audit';

const dirs: string[] = [];
const dbs: SqliteDatabase[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warren-audit-'));
  dirs.push(dir);
  return join(dir, 'state.db');
}
function open(path: string): SqliteDatabase {
  const db = openDatabase(path);
  dbs.push(db);
  return db;
}
/** A clock that returns 1000, 1001, 1002, ... */
function steppingClock(startMs = 1000): () => number {
  let now = startMs;
  return () => now++;
}

describe('append and query', () => {
  it('chains rows from 64 zeros and returns them as stored', () => {
    const audit = openAudit(open(tempPath()), { clock: steppingClock() });
    const first = audit.append({ actor: 'supervisor', action: 'agent.start', object: 'agent:shell-1' });
    const second = audit.append({
      actor: 'shell-1',
      action: 'task.assign',
      object: 'task:count-lines',
      decision: 'allow',
      details: { b: 2, a: { d: [1, 'x'], c: null } },
    });
    expect(first).toMatchObject({ seq: 1, timeMs: 1000, decision: null, prevHash: GENESIS_HASH });
    expect(first.details).toBeUndefined();
    expect(second).toMatchObject({ seq: 2, timeMs: 1001, decision: 'allow', prevHash: first.hash });
    expect(second.hash).toMatch(/^[0-9a-f]{64}$/);
    // The documented serialization, computed independently here.
    const expected = createHash('sha256')
      .update(
        JSON.stringify([2, 1001, 'shell-1', 'task.assign', 'task:count-lines', 'allow', '{"a":{"c":null,"d":[1,"x"]},"b":2}', first.hash]),
      )
      .digest('hex');
    expect(second.hash).toBe(expected);
    expect(audit.query()).toEqual([first, second]);
    expect(audit.lastSeq()).toBe(2);
  });

  it('filters by actor, object, decision, time and seq, with limit and order', () => {
    const audit = openAudit(open(tempPath()), { clock: steppingClock(5000) });
    audit.appendMany([
      { actor: 'supervisor', action: 'agent.start', object: 'agent:shell-1' }, // 5000
      { actor: 'shell-1', action: 'task.assign', object: 'task:a', decision: 'allow' }, // 5001
      { actor: 'reporter-1', action: 'task.assign', object: 'task:shell-x', decision: 'deny' }, // 5002
      { actor: 'shell-1', action: 'task.finish', object: 'task:a' }, // 5003
      { actor: 'shell-1', action: 'message.relay', object: 'agent:reporter-1', decision: 'allow' }, // 5004
    ]);
    const seqs = (filter: Parameters<typeof audit.query>[0]): number[] => audit.query(filter).map((r) => r.seq);
    expect(seqs({ actor: 'shell-1' })).toEqual([2, 4, 5]);
    expect(seqs({ object: 'task:a' })).toEqual([2, 4]);
    expect(seqs({ decision: 'deny' })).toEqual([3]);
    expect(seqs({ decision: 'allow' })).toEqual([2, 5]);
    expect(seqs({ decision: null })).toEqual([1, 4]);
    expect(seqs({ sinceMs: 5002 })).toEqual([3, 4, 5]);
    expect(seqs({ untilMs: 5002 })).toEqual([1, 2]);
    expect(seqs({ sinceMs: 5001, untilMs: 5004 })).toEqual([2, 3, 4]);
    expect(seqs({ afterSeq: 3 })).toEqual([4, 5]);
    expect(seqs({ limit: 2 })).toEqual([1, 2]);
    expect(seqs({ order: 'desc', limit: 2 })).toEqual([5, 4]);
    expect(seqs({ order: 'desc' })).toEqual([5, 4, 3, 2, 1]);
    expect(seqs({ actor: 'shell-1', action: 'task.assign' })).toEqual([2]);
  });

  it('matches an action prefix ending in .* exactly, without LIKE wildcards or case folding', () => {
    const audit = openAudit(open(tempPath()));
    audit.appendMany(
      ['task.assign', 'task.finish', 'task', 'taskx.assign', 'TASK.assign', 'task_assign', 'agent.start', 'task.retry.scheduled'].map(
        (action) => ({ actor: 'supervisor', action, object: 'x' }),
      ),
    );
    const actions = (action: string): string[] => audit.query({ action }).map((r) => r.action);
    expect(actions('task.*')).toEqual(['task.assign', 'task.finish', 'task.retry.scheduled']);
    expect(actions('task.retry.*')).toEqual(['task.retry.scheduled']);
    expect(actions('task')).toEqual(['task']);
    expect(actions('*')).toHaveLength(8);
  });

  it('defaults to 1000 rows per query', () => {
    const audit = openAudit(open(tempPath()));
    audit.appendMany(Array.from({ length: 1001 }, (_, i) => ({ actor: 'a', action: 'x.y', object: `o${i}` })));
    expect(audit.query()).toHaveLength(1000);
    expect(audit.query({ afterSeq: 1000 }).map((r) => r.seq)).toEqual([1001]);
  });

  it('stores batches of any size in order, exactly as appendMany returns them', () => {
    const audit = openAudit(open(tempPath()), { clock: steppingClock() });
    const returned = [];
    let n = 0;
    for (const size of [1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 100, 129, 1000]) {
      const batch = Array.from({ length: size }, () => {
        n += 1;
        return {
          actor: `agent:shell-${n % 7}`,
          action: n % 3 === 0 ? 'task.assign' : 'board.write',
          object: `task:t-${n}`,
          ...(n % 5 === 0 ? { decision: 'deny' as const } : {}),
          ...(n % 4 === 0 ? {} : { details: { n, z: [n, { y: 'é', x: null, w: -0, v: NaN, u: undefined }], ...(n % 3 === 0 ? { at: new Date(n) } : {}) } }),
        };
      });
      const records = audit.appendMany(batch);
      expect(records.map((r) => r.object)).toEqual(batch.map((e) => e.object));
      returned.push(...records);
    }
    expect(returned.map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(audit.query({ limit: n })).toEqual(returned);
    expect(audit.verify()).toEqual({ ok: true, rows: n });
  });

  it('rejects invalid entries and filters with AuditError naming the field', () => {
    const audit = openAudit(open(tempPath()));
    const bad = [
      [{ actor: '', action: 'a.b', object: 'o' }, 'actor'],
      [{ actor: 'a', action: 'a.b', object: 'o', decision: 'maybe' as never }, 'decision'],
      [{ actor: 'a', action: 'a.b', object: 'o', details: { n: 10n } }, 'details'],
    ] as const;
    for (const [entry, field] of bad) {
      const error = (() => {
        try {
          audit.append(entry);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(error).toBeInstanceOf(AuditError);
      expect(error).toMatchObject({ code: 'WARREN_AUDIT', field });
    }
    expect(() => audit.query({ limit: 0 })).toThrow(/limit must be a positive integer/);
    expect(audit.lastSeq()).toBe(0);
  });
});

describe('append-only', () => {
  it('refuses UPDATE and DELETE in SQLite itself', () => {
    const db = open(tempPath());
    const audit = openAudit(db);
    audit.append({ actor: 'a', action: 'x.y', object: 'o' });
    expect(() => db.prepare("UPDATE audit SET actor = 'b' WHERE seq = 1").run()).toThrow(/UPDATE refused/);
    expect(() => db.prepare('DELETE FROM audit WHERE seq = 1').run()).toThrow(/DELETE refused/);
    expect(audit.query()[0]?.actor).toBe('a');
  });

  it('appendMany stores all rows or none', () => {
    const db = open(tempPath());
    const audit = openAudit(db);
    audit.append({ actor: 'a', action: 'x.y', object: 'o' });
    // A trigger that fails the third insert makes SQLite abort in the middle of the batch.
    db.exec(`CREATE TRIGGER fail_third BEFORE INSERT ON audit WHEN NEW.seq = 4
      BEGIN SELECT RAISE(ABORT, 'third insert refused'); END`);
    const batch = [1, 2, 3].map((i) => ({ actor: 'a', action: 'x.y', object: `o${i}` }));
    expect(() => audit.appendMany(batch)).toThrow(AuditError);
    expect(() => audit.appendMany(batch)).toThrow(/third insert refused/);
    expect(audit.lastSeq()).toBe(1);
    db.exec('DROP TRIGGER fail_third');
    expect(audit.appendMany(batch).map((r) => r.seq)).toEqual([2, 3, 4]);
    expect(audit.verify()).toEqual({ ok: true, rows: 4 });
    // An invalid entry anywhere in a batch is caught before anything is written.
    expect(() => audit.appendMany([...batch, { actor: 'a', action: '', object: 'o' }])).toThrow(/audit entry 3: action/);
    expect(audit.lastSeq()).toBe(4);
  });
});

describe('verify', () => {
  function tamperable(): { db: SqliteDatabase; audit: ReturnType<typeof openAudit> } {
    const db = open(tempPath());
    const audit = openAudit(db, { clock: steppingClock() });
    audit.appendMany(
      Array.from({ length: 6 }, (_, i) => ({
        actor: 'shell-1',
        action: 'task.assign',
        object: `task:t${i}`,
        decision: 'allow' as const,
        details: { attempt: i },
      })),
    );
    expect(audit.verify()).toEqual({ ok: true, rows: 6 });
    db.exec('DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete');
    return { db, audit };
  }

  it('finds an edited field', () => {
    const { db, audit } = tamperable();
    db.prepare("UPDATE audit SET decision = 'deny' WHERE seq = 4").run();
    expect(audit.verify()).toMatchObject({ ok: false, rows: 4, firstBadSeq: 4 });
    expect(audit.verify().reason).toMatch(/seq 4: stored hash .* does not match/);
  });

  it('finds edited details', () => {
    const { db, audit } = tamperable();
    db.prepare(`UPDATE audit SET details = '{"attempt":9}' WHERE seq = 2`).run();
    expect(audit.verify()).toMatchObject({ ok: false, firstBadSeq: 2 });
  });

  it('finds a row whose hash was recomputed after an edit, at the next link', () => {
    const { db, audit } = tamperable();
    const row = audit.query({ afterSeq: 2, limit: 1 })[0]!;
    const forged = rowHash({
      seq: row.seq,
      timeMs: row.timeMs,
      actor: 'mallory',
      action: row.action,
      object: row.object,
      decision: row.decision,
      detailsJson: canonicalJson(row.details),
      prevHash: row.prevHash,
    });
    db.prepare("UPDATE audit SET actor = 'mallory', hash = ? WHERE seq = 3").run(forged);
    expect(audit.verify()).toMatchObject({ ok: false, rows: 4, firstBadSeq: 4 });
    expect(audit.verify().reason).toMatch(/seq 4: prev_hash .* is not the hash of the row before/);
  });

  it('finds a deleted row', () => {
    const { db, audit } = tamperable();
    db.prepare('DELETE FROM audit WHERE seq = 5').run();
    expect(audit.verify()).toMatchObject({ ok: false, firstBadSeq: 6 });
    expect(audit.verify().reason).toMatch(/seq 6 follows seq 4/);
  });

  it('finds two rows swapped, at the first of them', () => {
    const { db, audit } = tamperable();
    db.exec('UPDATE audit SET seq = -3 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = -3');
    expect(audit.query().map((r) => r.object)).toEqual(['task:t0', 'task:t1', 'task:t3', 'task:t2', 'task:t4', 'task:t5']);
    expect(audit.verify()).toMatchObject({ ok: false, rows: 3, firstBadSeq: 3 });
    expect(audit.verify().reason).toMatch(/seq 3: prev_hash .* is not the hash of the row before/);
  });

  it('finds a deleted first row', () => {
    const { db, audit } = tamperable();
    db.prepare('DELETE FROM audit WHERE seq = 1').run();
    expect(audit.verify()).toMatchObject({ ok: false, rows: 1, firstBadSeq: 2 });
    expect(audit.verify().reason).toMatch(/seq 2 follows seq 0/);
  });

  it('finds an edit deep in a long chain written in large batches', () => {
    const db = open(tempPath());
    const audit = openAudit(db);
    for (let from = 0; from < 3000; from += 1000) {
      audit.appendMany(Array.from({ length: 1000 }, (_, i) => ({ actor: 'supervisor', action: 'task.assign', object: `task:t${from + i}` })));
    }
    expect(audit.verify()).toEqual({ ok: true, rows: 3000 });
    db.exec('DROP TRIGGER audit_no_update');
    db.prepare("UPDATE audit SET object = 'task:other' WHERE seq = 2345").run();
    expect(audit.verify()).toMatchObject({ ok: false, rows: 2345, firstBadSeq: 2345 });
  });

  it('reports an empty trail as intact', () => {
    expect(openAudit(open(tempPath())).verify()).toEqual({ ok: true, rows: 0 });
  });
});

describe('persistence', () => {
  it('continues the chain after reopening the file', () => {
    const path = tempPath();
    let db = open(path);
    let audit = openAudit(db);
    const before = audit.appendMany([
      { actor: 'a', action: 'x.y', object: 'o1' },
      { actor: 'a', action: 'x.y', object: 'o2', details: { k: 'v' } },
    ]);
    db.close();
    db = open(path);
    audit = openAudit(db);
    expect(audit.lastSeq()).toBe(2);
    expect(audit.query()).toEqual(before);
    const next = audit.append({ actor: 'a', action: 'x.y', object: 'o3' });
    expect(next.seq).toBe(3);
    expect(next.prevHash).toBe(before[1]!.hash);
    expect(audit.verify()).toEqual({ ok: true, rows: 3 });
  });

  it('keeps one chain when two connections append to the same file', () => {
    const path = tempPath();
    const one = openAudit(open(path));
    const two = openAudit(open(path));
    one.append({ actor: 'one', action: 'x.y', object: 'o' });
    two.append({ actor: 'two', action: 'x.y', object: 'o' });
    one.append({ actor: 'one', action: 'x.y', object: 'o' });
    expect(two.query().map((r) => `${r.seq}:${r.actor}`)).toEqual(['1:one', '2:two', '3:one']);
    expect(one.verify()).toEqual({ ok: true, rows: 3 });
  });
});

describe('databases written by earlier versions', () => {
  /** The audit schema as version 1 created it, with its four indexes. */
  const VERSION_1 = `
    CREATE TABLE audit (
      seq INTEGER PRIMARY KEY,
      time_ms INTEGER NOT NULL,
      actor TEXT NOT NULL,
      action TEXT NOT NULL,
      object TEXT NOT NULL,
      decision TEXT CHECK (decision IN ('allow', 'deny')),
      details TEXT,
      prev_hash TEXT NOT NULL,
      hash TEXT NOT NULL
    ) STRICT;
    CREATE INDEX audit_time ON audit (time_ms);
    CREATE INDEX audit_actor ON audit (actor, seq);
    CREATE INDEX audit_action ON audit (action, seq);
    CREATE INDEX audit_object ON audit (object, seq);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
      BEGIN SELECT RAISE(ABORT, 'audit rows are append-only: UPDATE refused'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
      BEGIN SELECT RAISE(ABORT, 'audit rows are append-only: DELETE refused'); END;
  `;

  /** Writes `count` rows the way version 1 did: one INSERT per row, hashes by the documented recipe. */
  function writeVersion1(db: SqliteDatabase, count: number): void {
    migrate(db, 'audit', [{ version: 1, sql: VERSION_1 }]);
    const insert = db.prepare(
      `INSERT INTO audit (seq, time_ms, actor, action, object, decision, details, prev_hash, hash)
       VALUES (@seq, @time_ms, @actor, @action, @object, @decision, @details, @prev_hash, @hash)`,
    );
    let prevHash = GENESIS_HASH;
    for (let seq = 1; seq <= count; seq++) {
      const row = {
        seq,
        time_ms: 1_700_000_000_000 + seq,
        actor: seq % 2 === 0 ? 'supervisor' : 'agent:shell-1',
        action: seq % 3 === 0 ? 'task.assign' : 'agent.start',
        object: `task:t${seq}`,
        decision: seq % 3 === 0 ? 'allow' : null,
        details: seq % 2 === 0 ? JSON.stringify({ attempt: seq, z: 'é' }) : null,
        prev_hash: prevHash,
        hash: '',
      };
      row.hash = createHash('sha256')
        .update(JSON.stringify([row.seq, row.time_ms, row.actor, row.action, row.object, row.decision, row.details, row.prev_hash]), 'utf8')
        .digest('hex');
      insert.run(row);
      prevHash = row.hash;
    }
  }

  function auditIndexes(db: SqliteDatabase): string[] {
    return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit' ORDER BY name").all() as { name: string }[]).map(
      (r) => r.name,
    );
  }

  it('opens a version 1 trail, verifies its rows, and continues its chain', () => {
    const path = tempPath();
    let db = open(path);
    writeVersion1(db, 250);
    expect(auditIndexes(db)).toEqual(['audit_action', 'audit_actor', 'audit_object', 'audit_time']);
    db.close();

    db = open(path);
    const audit = openAudit(db, { clock: steppingClock(1_800_000_000_000) });
    expect(auditIndexes(db)).toEqual(['audit_object']);
    expect(db.prepare("SELECT version FROM schema_migrations WHERE component = 'audit'").get()).toEqual({ version: 3 });
    expect(audit.verify()).toEqual({ ok: true, rows: 250 });
    expect(audit.lastSeq()).toBe(250);

    const old = audit.query({ object: 'task:t250' })[0]!;
    expect(old).toMatchObject({ seq: 250, actor: 'supervisor', action: 'agent.start', decision: null, details: { attempt: 250, z: 'é' } });
    const next = audit.appendMany([
      { actor: 'supervisor', action: 'supervisor.start', object: 'supervisor' },
      { actor: 'agent:shell-1', action: 'task.assign', object: 'task:t1', decision: 'allow', details: { attempt: 2 } },
    ]);
    expect(next[0]).toMatchObject({ seq: 251, prevHash: old.hash });
    expect(audit.verify()).toEqual({ ok: true, rows: 252 });

    // Queries that the dropped indexes served still answer the same.
    expect(audit.query({ action: 'task.*', order: 'desc', limit: 3 }).map((r) => r.seq)).toEqual([252, 249, 246]);
    expect(audit.query({ actor: 'agent:shell-1', order: 'desc', limit: 2 }).map((r) => r.seq)).toEqual([252, 249]);
    expect(audit.query({ sinceMs: 1_700_000_000_248, untilMs: 1_700_000_000_250 }).map((r) => r.seq)).toEqual([248, 249]);
    expect(audit.query({ object: 'task:t1' }).map((r) => r.seq)).toEqual([1, 252]);
  });

  it('still finds an edited version 1 row after the upgrade', () => {
    const db = open(tempPath());
    writeVersion1(db, 40);
    const audit = openAudit(db);
    db.exec('DROP TRIGGER audit_no_update');
    db.prepare("UPDATE audit SET details = '{\"attempt\":99,\"z\":\"é\"}' WHERE seq = 18").run();
    expect(audit.verify()).toMatchObject({ ok: false, rows: 18, firstBadSeq: 18 });
  });
});

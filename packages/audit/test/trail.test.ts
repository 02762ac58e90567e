import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '@warren/store';
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

describe('canonicalJson', () => {
  it('sorts keys at every depth and follows JSON.stringify for the rest', () => {
    expect(canonicalJson({ b: 1, a: [{ z: 1, y: undefined, x: NaN }], c: new Date(0) })).toBe(
      '{"a":[{"x":null,"z":1}],"b":1,"c":"1970-01-01T00:00:00.000Z"}',
    );
  });
});

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import { HttpError, MAX_SESSION_MS, TOKEN_FORMAT, openTokenStore } from '@warren/http';

function freshDb(): SqliteDatabase {
  const dir = mkdtempSync(join(tmpdir(), 'warren-tokens-'));
  const db = openDatabase(join(dir, 'warren.db'));
  onTestFinished(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return db;
}

describe('token store', () => {
  test("an agent's token names the agent as principal, replaces its previous one, signs no browser in, and its name is reserved", () => {
    const tokens = openTokenStore(freshDb());
    const first = tokens.createAgentToken('coder-1', 1_000).token;
    expect(tokens.verify(first, 2_000)).toMatchObject({ name: 'agent.coder-1', role: 'agent', principal: 'coder-1' });
    const second = tokens.createAgentToken('coder-1', 3_000).token;
    expect(tokens.verify(first, 4_000)).toBeUndefined();
    expect(tokens.verify(second, 4_000)?.principal).toBe('coder-1');
    expect(tokens.createSession(second, 4_000)).toBeUndefined();
    expect(() => tokens.create({ name: 'agent.coder-1', role: 'operator' }, 5_000)).toThrow(/reserved/);
    expect(() => tokens.createAgentToken('Coder 1', 5_000)).toThrow(HttpError);
    expect(tokens.revokeAgentToken('coder-1', 6_000)).toBe(true);
    expect(tokens.verify(second, 7_000)).toBeUndefined();
    expect(tokens.revokeAgentToken('coder-1', 8_000)).toBe(false);
  });

  test('a token is shown once and stored only as its SHA-256', () => {
    const db = freshDb();
    const tokens = openTokenStore(db);
    const { token, info } = tokens.create({ name: 'alice', role: 'operator' }, 1_000);
    expect(token).toMatch(TOKEN_FORMAT);
    expect(info).toEqual({ id: info.id, name: 'alice', role: 'operator', createdMs: 1_000, expiresMs: null, revokedMs: null, lastUsedMs: null });
    const rows = db.prepare('SELECT * FROM api_tokens').all() as Record<string, unknown>[];
    expect(rows).toHaveLength(1);
    expect(rows[0]!.hash).toBe(createHash('sha256').update(token).digest('hex'));
    const everything = JSON.stringify(db.prepare('SELECT * FROM api_tokens').all()) + JSON.stringify(db.prepare('SELECT * FROM api_sessions').all());
    expect(everything).not.toContain(token.slice(4));
    expect(tokens.verify(token, 2_000)).toMatchObject({ name: 'alice', role: 'operator', principal: 'user:alice', expiresMs: null });
  });

  test('a session id is stored only as its hash and lasts as long as its token, at most 30 days', () => {
    const db = freshDb();
    const tokens = openTokenStore(db);
    const forever = tokens.create({ name: 'alice', role: 'viewer' }, 1_000).token;
    const brief = tokens.create({ name: 'bob', role: 'viewer', expiresMs: 61_000 }, 1_000).token;
    const a = tokens.createSession(forever, 1_000)!;
    const b = tokens.createSession(brief, 1_000)!;
    expect(a.identity.expiresMs).toBe(1_000 + MAX_SESSION_MS);
    expect(b.identity.expiresMs).toBe(61_000);
    expect(JSON.stringify(db.prepare('SELECT * FROM api_sessions').all())).not.toContain(a.sessionId);
    expect(tokens.verifySession(b.sessionId, 60_999)).toMatchObject({ name: 'bob' });
    expect(tokens.verifySession(b.sessionId, 61_000)).toBeUndefined();
    expect(tokens.verifySession(a.sessionId, 1_000 + MAX_SESSION_MS)).toBeUndefined();
    expect(tokens.createSession('wrn_bogus', 1_000)).toBeUndefined();
    tokens.endSession(a.sessionId);
    expect(tokens.verifySession(a.sessionId, 2_000)).toBeUndefined();
  });

  test('expiry, revoke and list', () => {
    const tokens = openTokenStore(freshDb());
    const brief = tokens.create({ name: 'brief', role: 'viewer', expiresMs: 10_000 }, 1_000).token;
    const kept = tokens.create({ name: 'kept', role: 'operator' }, 1_000).token;
    const session = tokens.createSession(kept, 1_000)!.sessionId;
    expect(tokens.verify(brief, 9_999)).toBeDefined();
    expect(tokens.verify(brief, 10_000)).toBeUndefined();
    expect(tokens.revoke('kept', 5_000)).toMatchObject({ name: 'kept', revokedMs: 5_000 });
    expect(tokens.verify(kept, 5_001)).toBeUndefined();
    expect(tokens.verifySession(session, 5_001)).toBeUndefined();
    expect(tokens.revoke('kept', 6_000)).toBeUndefined();
    expect(tokens.revoke('nobody', 6_000)).toBeUndefined();
    expect(tokens.list().map((t) => [t.name, t.role, t.expiresMs, t.revokedMs, t.lastUsedMs])).toEqual([
      ['brief', 'viewer', 10_000, null, 9_999],
      ['kept', 'operator', null, 5_000, 1_000],
    ]);
    expect(JSON.stringify(tokens.list())).not.toMatch(/wrn_|hash/);
  });

  test('names are checked, reserved names refused, a live name taken only with replace', () => {
    const tokens = openTokenStore(freshDb());
    const bad = (f: () => unknown, code: string, message: RegExp) => {
      try {
        f();
        expect.unreachable();
      } catch (error) {
        expect(error).toBeInstanceOf(HttpError);
        expect((error as HttpError).code).toBe(code);
        expect((error as Error).message).toMatch(message);
      }
    };
    bad(() => tokens.create({ name: 'has space', role: 'viewer' }, 1), 'WARREN_TOKEN_INVALID', /token name 'has space'/);
    bad(() => tokens.create({ name: 'root', role: 'viewer' }, 1), 'WARREN_TOKEN_INVALID', /reserved/);
    bad(() => tokens.create({ name: 'anonymous', role: 'viewer' }, 1), 'WARREN_TOKEN_INVALID', /reserved/);
    bad(() => tokens.create({ name: 'x', role: 'admin' as 'viewer' }, 1), 'WARREN_TOKEN_INVALID', /role 'admin' must be one of operator, viewer/);
    bad(() => tokens.create({ name: 'x', role: 'viewer', expiresMs: 1 }, 5), 'WARREN_TOKEN_INVALID', /expiry/);
    const first = tokens.create({ name: 'x', role: 'viewer' }, 1).token;
    bad(() => tokens.create({ name: 'x', role: 'viewer' }, 2), 'WARREN_TOKEN_EXISTS', /revoke it first/);
    const second = tokens.create({ name: 'x', role: 'operator', replace: true }, 3).token;
    expect(tokens.verify(first, 4)).toBeUndefined();
    expect(tokens.verify(second, 4)).toMatchObject({ role: 'operator' });
  });

  test('malformed tokens are refused without a lookup error', () => {
    const tokens = openTokenStore(freshDb());
    for (const text of ['', 'wrn_', `wrn_${'a'.repeat(42)}`, `wrn_${'a'.repeat(44)}`, `xyz_${'a'.repeat(43)}`, `wrn_${'a'.repeat(42)}=`]) {
      expect(tokens.verify(text, 1)).toBeUndefined();
      expect(tokens.verifySession(text, 1)).toBeUndefined();
    }
  });
});

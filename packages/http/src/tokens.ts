import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { migrate, type SqliteDatabase } from '@warren/store';
import { HttpError } from './errors.js';

/** The roles a token can carry; each maps to the policy role `role:<name>`. */
export const TokenRole = { operator: 'operator', viewer: 'viewer' } as const;
export type TokenRole = (typeof TokenRole)[keyof typeof TokenRole];

/**
 * The role of an agent's own token ({@link TokenStore.createAgentToken}): its principal is the
 * agent's name, the policy subject its tasks are decided as, so the agent's template decides
 * what it may call; no `role:` is granted for it.
 */
export const AGENT_TOKEN_ROLE = 'agent';
/** The prefix of agent tokens' names (`agent.<agent name>`); people's tokens cannot use it. */
const AGENT_TOKEN_PREFIX = 'agent.';

const ROLES: ReadonlySet<string> = new Set(Object.values(TokenRole));

/** True when `role` is a {@link TokenRole}. */
export function isTokenRole(role: string): role is TokenRole {
  return ROLES.has(role);
}

/** A token's name: 1–64 of letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Names no token may take: `user:anonymous` is who public routes are decided for, `user:root` an operator by policy. */
const RESERVED_NAMES: ReadonlySet<string> = new Set(['anonymous', 'root']);

/** A token's text: `wrn_` and 43 base64url characters (32 random bytes). */
export const TOKEN_FORMAT = /^wrn_[A-Za-z0-9_-]{43}$/;

/** The name of the browser session cookie. */
export const SESSION_COOKIE = 'warren_session';

/** The longest a browser session lasts when its token has no expiry, in ms (30 days). */
export const MAX_SESSION_MS = 30 * 24 * 60 * 60 * 1000;

/** How often a token's `lastUsedMs` is written at most, in ms: a busy dashboard does not write on every request. */
const LAST_USED_RESOLUTION_MS = 60_000;

/** A token as listed: everything but the secret, which is never stored. */
export interface TokenInfo {
  readonly id: number;
  readonly name: string;
  /** A person's role, or {@link AGENT_TOKEN_ROLE} for an agent's token. */
  readonly role: TokenRole | typeof AGENT_TOKEN_ROLE;
  readonly createdMs: number;
  /** Null: it does not expire. */
  readonly expiresMs: number | null;
  readonly revokedMs: number | null;
  readonly lastUsedMs: number | null;
}

/** Who a valid token or session belongs to. */
export interface TokenIdentity {
  readonly tokenId: number;
  readonly name: string;
  /** A person's role, or {@link AGENT_TOKEN_ROLE} for an agent's token. */
  readonly role: TokenRole | typeof AGENT_TOKEN_ROLE;
  /** The policy subject: `user:<name>`, or the agent's name for an agent's token. */
  readonly principal: string;
  /** When the token (or session) stops being valid, ms since the epoch; null for never. */
  readonly expiresMs: number | null;
}

/** What {@link TokenStore.create} asks for. */
export interface TokenRequest {
  readonly name: string;
  readonly role: TokenRole;
  /** When it expires, ms since the epoch; default never. */
  readonly expiresMs?: number;
  /** Revoke a live token of the same name first (the sign-in link `warren up` prints). Default false. */
  readonly replace?: boolean;
}

interface TokenRecord {
  id: number;
  name: string;
  role: string;
  hash: string;
  created_ms: number;
  expires_ms: number | null;
  revoked_ms: number | null;
  last_used_ms: number | null;
}

const MIGRATIONS = [
  {
    version: 1,
    sql: `
      CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER,
        revoked_ms INTEGER,
        last_used_ms INTEGER
      ) STRICT;
      CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_ms IS NULL;
      CREATE TABLE api_sessions (
        hash TEXT PRIMARY KEY,
        token_id INTEGER NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX api_sessions_token ON api_sessions (token_id);`,
  },
];

/** Lowercase hex SHA-256 of `text`. */
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

const info = (r: TokenRecord): TokenInfo => ({
  id: r.id,
  name: r.name,
  role: r.role as TokenRole | typeof AGENT_TOKEN_ROLE,
  createdMs: r.created_ms,
  expiresMs: r.expires_ms,
  revokedMs: r.revoked_ms,
  lastUsedMs: r.last_used_ms,
});

/**
 * The API's bearer tokens and browser sessions, in the `api_tokens` and `api_sessions` tables of
 * the state database (migration component `http`).
 *
 * A token is `wrn_` + 32 random bytes in base64url; only its SHA-256 is stored, so the database
 * never holds a usable secret. A token is valid until it expires or is revoked.
 *
 * Browser sessions: signing in exchanges a token for a random session id (32 bytes) that the cookie
 * carries; the server keeps only the id's SHA-256, linked to the token's row. This, rather than the
 * token itself (signed) in the cookie, because (1) a revoked or expired token ends its sessions at
 * once, with no signing key to keep; (2) the cookie never holds the token, which works from any
 * command line; (3) signing out deletes the session row, so a copied cookie stops working.
 *
 * Reads and writes go straight to SQLite, so a token the CLI creates or revokes while a supervisor
 * runs takes effect on the supervisor's next request.
 */
export class TokenStore {
  private readonly stmts;
  /** When each token's `last_used_ms` was last written, by token id. */
  private readonly lastWritten = new Map<number, number>();

  /** Use {@link openTokenStore}, which migrates the schema first. */
  constructor(readonly db: SqliteDatabase) {
    this.stmts = {
      insert: db.prepare<[string, string, string, number, number | null]>(
        'INSERT INTO api_tokens (name, role, hash, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?)',
      ),
      live: db.prepare<[string], TokenRecord>('SELECT * FROM api_tokens WHERE name = ? AND revoked_ms IS NULL'),
      list: db.prepare<[], TokenRecord>('SELECT * FROM api_tokens ORDER BY name, id'),
      byHash: db.prepare<[string], TokenRecord>('SELECT * FROM api_tokens WHERE hash = ?'),
      byId: db.prepare<[number], TokenRecord>('SELECT * FROM api_tokens WHERE id = ?'),
      revoke: db.prepare<[number, number]>('UPDATE api_tokens SET revoked_ms = ? WHERE id = ?'),
      touch: db.prepare<[number, number]>('UPDATE api_tokens SET last_used_ms = ? WHERE id = ?'),
      dropSessionsOf: db.prepare<[number]>('DELETE FROM api_sessions WHERE token_id = ?'),
      insertSession: db.prepare<[string, number, number, number]>('INSERT INTO api_sessions (hash, token_id, created_ms, expires_ms) VALUES (?, ?, ?, ?)'),
      session: db.prepare<[string], { token_id: number; expires_ms: number }>('SELECT token_id, expires_ms FROM api_sessions WHERE hash = ?'),
      dropSession: db.prepare<[string]>('DELETE FROM api_sessions WHERE hash = ?'),
      dropExpiredSessions: db.prepare<[number]>('DELETE FROM api_sessions WHERE expires_ms <= ?'),
    };
  }

  /**
   * Makes a token. The plain token is returned once and never stored.
   * @param nowMs the creation time, ms since the epoch.
   * @returns the token's text (`wrn_…`) and its listing.
   * @throws {HttpError} `WARREN_TOKEN_INVALID` when the name, role or expiry is invalid;
   *   `WARREN_TOKEN_EXISTS` when a token of that name is live and `replace` is not set.
   */
  create(request: TokenRequest, nowMs: number): { readonly token: string; readonly info: TokenInfo } {
    const { name, role } = request;
    if (typeof name !== 'string' || !TOKEN_NAME.test(name)) {
      throw new HttpError('WARREN_TOKEN_INVALID', `token name '${String(name)}' must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
    }
    if (RESERVED_NAMES.has(name) || name.startsWith(AGENT_TOKEN_PREFIX)) throw new HttpError('WARREN_TOKEN_INVALID', `token name '${name}' is reserved`);
    if (!isTokenRole(role)) throw new HttpError('WARREN_TOKEN_INVALID', `token role '${String(role)}' must be one of ${[...ROLES].join(', ')}`);
    const expiresMs = request.expiresMs ?? null;
    if (expiresMs !== null && (!Number.isInteger(expiresMs) || expiresMs <= nowMs)) {
      throw new HttpError('WARREN_TOKEN_INVALID', `token '${name}': the expiry must be a time after now, got ${String(expiresMs)}`);
    }
    const token = `wrn_${randomBytes(32).toString('base64url')}`;
    const id = this.db.transaction(() => {
      const existing = this.stmts.live.get(name);
      if (existing) {
        if (!request.replace) throw new HttpError('WARREN_TOKEN_EXISTS', `a token named '${name}' exists; revoke it first ('warren token revoke ${name}')`);
        this.revokeRow(existing.id, nowMs);
      }
      return Number(this.stmts.insert.run(name, role, sha256(token), nowMs, expiresMs).lastInsertRowid);
    })();
    return { token, info: info(this.stmts.byId.get(id)!) };
  }

  /**
   * Makes the token of agent `agent` (named `agent.<agent>`), revoking its previous one: what the
   * agent presents when it calls Warren back (its gateway adds it to the agent's MCP requests).
   * Its principal is `agent`, so the policy decides its calls as it decides the agent's tasks.
   * @param expiresMs when it expires, ms since the epoch; default never (it is revoked when the agent stops).
   * @throws {HttpError} `WARREN_TOKEN_INVALID` when `agent` is not an agent name.
   */
  createAgentToken(agent: string, nowMs: number, expiresMs?: number): { readonly token: string; readonly info: TokenInfo } {
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(agent)) throw new HttpError('WARREN_TOKEN_INVALID', `'${agent}' is not an agent name`);
    const name = `${AGENT_TOKEN_PREFIX}${agent}`;
    const token = `wrn_${randomBytes(32).toString('base64url')}`;
    const id = this.db.transaction(() => {
      const existing = this.stmts.live.get(name);
      if (existing) this.revokeRow(existing.id, nowMs);
      return Number(this.stmts.insert.run(name, AGENT_TOKEN_ROLE, sha256(token), nowMs, expiresMs ?? null).lastInsertRowid);
    })();
    return { token, info: info(this.stmts.byId.get(id)!) };
  }

  /** Revokes agent `agent`'s live token, if any. @returns whether one was revoked. */
  revokeAgentToken(agent: string, nowMs: number): boolean {
    return this.revoke(`${AGENT_TOKEN_PREFIX}${agent}`, nowMs) !== undefined;
  }

  /** Every token ever made (revoked ones too), by name; no secrets. */
  list(): TokenInfo[] {
    return this.stmts.list.all().map(info);
  }

  /**
   * Revokes the live token named `name` and ends its sessions.
   * @returns the revoked token, or undefined when no live token has that name.
   */
  revoke(name: string, nowMs: number): TokenInfo | undefined {
    const existing = this.stmts.live.get(name);
    if (!existing) return undefined;
    this.db.transaction(() => this.revokeRow(existing.id, nowMs))();
    return info(this.stmts.byId.get(existing.id)!);
  }

  private revokeRow(id: number, nowMs: number): void {
    this.stmts.revoke.run(nowMs, id);
    this.stmts.dropSessionsOf.run(id);
  }

  /**
   * Who `token` belongs to, when it is a live token: well formed, known, not revoked, not expired
   * at `nowMs`. Records its use (at most once a minute per token).
   * The lookup is by the token's SHA-256, and the stored hash is compared in constant time.
   */
  verify(token: string, nowMs: number): TokenIdentity | undefined {
    if (typeof token !== 'string' || !TOKEN_FORMAT.test(token)) return undefined;
    const hash = sha256(token);
    const record = this.stmts.byHash.get(hash);
    if (!record || !timingSafeEqual(Buffer.from(record.hash, 'hex'), Buffer.from(hash, 'hex'))) return undefined;
    return this.identity(record, nowMs, null);
  }

  private identity(record: TokenRecord, nowMs: number, sessionExpiresMs: number | null): TokenIdentity | undefined {
    if (record.revoked_ms !== null) return undefined;
    if (record.expires_ms !== null && record.expires_ms <= nowMs) return undefined;
    if (nowMs - (this.lastWritten.get(record.id) ?? -Infinity) >= LAST_USED_RESOLUTION_MS) {
      this.lastWritten.set(record.id, nowMs);
      this.stmts.touch.run(nowMs, record.id);
    }
    return {
      tokenId: record.id,
      name: record.name,
      role: record.role as TokenRole | typeof AGENT_TOKEN_ROLE,
      principal: record.role === AGENT_TOKEN_ROLE ? record.name.slice(AGENT_TOKEN_PREFIX.length) : `user:${record.name}`,
      expiresMs: sessionExpiresMs ?? record.expires_ms,
    };
  }

  /**
   * Starts a browser session for a live `token`: the session lasts until the token expires, at
   * most {@link MAX_SESSION_MS}.
   * @returns the session id (the cookie's value, 43 base64url characters) and who it is, or
   *   undefined when the token is not live.
   */
  createSession(token: string, nowMs: number): { readonly sessionId: string; readonly identity: TokenIdentity } | undefined {
    const identity = this.verify(token, nowMs);
    // An agent's token calls the API; it never signs a browser in.
    if (!identity || identity.role === AGENT_TOKEN_ROLE) return undefined;
    const expiresMs = Math.min(identity.expiresMs ?? Infinity, nowMs + MAX_SESSION_MS);
    const sessionId = randomBytes(32).toString('base64url');
    this.stmts.dropExpiredSessions.run(nowMs);
    this.stmts.insertSession.run(sha256(sessionId), identity.tokenId, nowMs, expiresMs);
    return { sessionId, identity: { ...identity, expiresMs } };
  }

  /** Who the session `sessionId` belongs to, while it and its token are valid. */
  verifySession(sessionId: string, nowMs: number): TokenIdentity | undefined {
    if (typeof sessionId !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(sessionId)) return undefined;
    const session = this.stmts.session.get(sha256(sessionId));
    if (!session || session.expires_ms <= nowMs) return undefined;
    const record = this.stmts.byId.get(session.token_id);
    return record && this.identity(record, nowMs, session.expires_ms);
  }

  /** Ends the session `sessionId` (signing out); no-op when there is none. */
  endSession(sessionId: string): void {
    if (typeof sessionId === 'string') this.stmts.dropSession.run(sha256(sessionId));
  }
}

/**
 * Opens the token store over the state database `db`, creating its tables (migration component
 * `http`) when missing. Closing `db` is the caller's.
 * @throws {StoreError} if the migration fails.
 */
export function openTokenStore(db: SqliteDatabase): TokenStore {
  migrate(db, 'http', MIGRATIONS);
  return new TokenStore(db);
}

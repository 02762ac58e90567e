import { migrate } from '@warren/store';
import type { SqliteDatabase } from '@warren/store';
import { AuditError } from './errors.js';
import { GENESIS_HASH, canonicalJson, rowHash } from './canonical.js';

/** What a caller records: who did what to which object, the policy decision if any, and details. */
export interface AuditEntry {
  /** Who acted: `supervisor`, an agent name (`shell-1`), `user:<name>`. Non-empty. */
  readonly actor: string;
  /** What happened, dotted: `task.assign`, `agent.start`, `policy.decide`. Non-empty. */
  readonly action: string;
  /** What it happened to: `task:<id>`, `agent:<name>`. Non-empty. */
  readonly object: string;
  /** The policy decision this row records, if it records one. Default null. */
  readonly decision?: 'allow' | 'deny' | null;
  /** Any JSON data; stored as canonical JSON (sorted keys). Default none (null). */
  readonly details?: Record<string, unknown>;
}

/** A stored row: the entry plus its place in the chain. */
export interface AuditRecord extends AuditEntry {
  /** 1 for the first row, then consecutive. */
  readonly seq: number;
  /** When it was appended, in ms since the Unix epoch (from the trail's clock). */
  readonly timeMs: number;
  readonly decision: 'allow' | 'deny' | null;
  /** The previous row's `hash`, 64 zeros for the first row. */
  readonly prevHash: string;
  /** Lowercase hex SHA-256 of this row; see `rowHash` for the exact serialization. */
  readonly hash: string;
}

/** Which rows {@link AuditTrail.query} returns; every given field must match. */
export interface AuditFilter {
  readonly actor?: string;
  /** An exact action, or a prefix ending in `.*` (`task.*` matches `task.assign`, `task.done.x`). `*` matches all. */
  readonly action?: string;
  readonly object?: string;
  /** `null` selects rows without a decision. */
  readonly decision?: 'allow' | 'deny' | null;
  /** Rows with `timeMs >= sinceMs`. */
  readonly sinceMs?: number;
  /** Rows with `timeMs < untilMs`. */
  readonly untilMs?: number;
  /** Rows with `seq > afterSeq` (for paging or tailing). */
  readonly afterSeq?: number;
  /** At most this many rows, a positive integer. Default 1000. */
  readonly limit?: number;
  /** By seq ascending (default) or descending. */
  readonly order?: 'asc' | 'desc';
}

/** The outcome of {@link AuditTrail.verify}. */
export interface AuditVerification {
  /** True when every row's hash and link is intact and seqs are consecutive from 1. */
  readonly ok: boolean;
  /** Rows read: all rows when ok, else the rows up to and including the first bad one. */
  readonly rows: number;
  /** The seq of the first row that does not verify. */
  readonly firstBadSeq?: number;
  /** Why it does not verify. */
  readonly reason?: string;
}

/** The append-only, hash-chained audit trail in the `audit` table. */
export interface AuditTrail {
  /**
   * Appends one row in its own transaction and returns it as stored.
   * @throws {AuditError} if a field is invalid (`field` names it) or SQLite refuses the write.
   */
  append(entry: AuditEntry): AuditRecord;
  /**
   * Appends rows in order in one transaction (all or none): the group commit of a supervisor tick.
   * An empty list appends nothing and returns `[]`.
   * @throws {AuditError} as {@link append}; then nothing of the batch is stored.
   */
  appendMany(entries: readonly AuditEntry[]): AuditRecord[];
  /** Rows matching `filter`, by seq. @throws {AuditError} if the filter is invalid. */
  query(filter?: AuditFilter): AuditRecord[];
  /** Re-computes every hash and link from the first row; stops at the first bad row. */
  verify(): AuditVerification;
  /** The seq of the newest row, 0 for an empty trail. */
  lastSeq(): number;
}

/** Options of {@link openAudit}. */
export interface OpenAuditOptions {
  /** The time source, ms since the Unix epoch. Default `Date.now`. */
  readonly clock?: () => number;
}

const MIGRATIONS = [
  {
    version: 1,
    sql: `
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
    `,
  },
];

interface AuditRow {
  seq: number;
  time_ms: number;
  actor: string;
  action: string;
  object: string;
  decision: string | null;
  details: string | null;
  prev_hash: string;
  hash: string;
}

const DEFAULT_LIMIT = 1000;

/**
 * Opens the audit trail kept in `db`, creating the `audit` table (with triggers that refuse UPDATE
 * and DELETE) on first use. Each row's hash covers its fields and the previous row's hash, so an
 * edited or removed row breaks the chain from there on; see `rowHash` for the serialization.
 * Several connections may append to the same file: the tail is read inside the write transaction.
 * @throws {StoreError} if the table cannot be created.
 */
export function openAudit(db: SqliteDatabase, options: OpenAuditOptions = {}): AuditTrail {
  migrate(db, 'audit', MIGRATIONS);
  const clock = options.clock ?? Date.now;

  const tail = db.prepare<[], { seq: number; hash: string }>('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
  const insert = db.prepare(
    `INSERT INTO audit (seq, time_ms, actor, action, object, decision, details, prev_hash, hash)
     VALUES (@seq, @time_ms, @actor, @action, @object, @decision, @details, @prev_hash, @hash)`,
  );
  const maxSeq = db.prepare<[], { seq: number | null }>('SELECT MAX(seq) AS seq FROM audit');

  const writeBatch = db.transaction((entries: readonly PreparedEntry[]): AuditRecord[] => {
    const last = tail.get();
    let seq = last?.seq ?? 0;
    let prevHash = last?.hash ?? GENESIS_HASH;
    const records: AuditRecord[] = [];
    for (const entry of entries) {
      seq += 1;
      const timeMs = readClock(clock);
      const hash = rowHash({ ...entry, seq, timeMs, prevHash });
      const row: AuditRow = {
        seq,
        time_ms: timeMs,
        actor: entry.actor,
        action: entry.action,
        object: entry.object,
        decision: entry.decision,
        details: entry.detailsJson,
        prev_hash: prevHash,
        hash,
      };
      insert.run(row);
      records.push(toRecord(row));
      prevHash = hash;
    }
    return records;
  });

  function appendMany(entries: readonly AuditEntry[]): AuditRecord[] {
    const prepared = entries.map((entry, index) => prepareEntry(entry, entries.length > 1 ? index : undefined));
    if (prepared.length === 0) return [];
    try {
      return writeBatch.immediate(prepared);
    } catch (error) {
      if (error instanceof AuditError) throw error;
      throw new AuditError(`cannot append to the audit trail: ${(error as Error).message}`, { cause: error });
    }
  }

  return {
    append(entry) {
      const [record] = appendMany([entry]);
      if (record === undefined) throw new AuditError('audit append stored no row');
      return record;
    },
    appendMany,
    query(filter = {}) {
      const { sql, params } = buildQuery(filter);
      return db
        .prepare<unknown[], AuditRow>(sql)
        .all(...params)
        .map(toRecord);
    },
    verify() {
      let rows = 0;
      let expectedSeq = 1;
      let prevHash = GENESIS_HASH;
      for (const row of db.prepare<[], AuditRow>('SELECT * FROM audit ORDER BY seq').iterate()) {
        rows += 1;
        const bad = (reason: string): AuditVerification => ({ ok: false, rows, firstBadSeq: row.seq, reason });
        if (row.seq !== expectedSeq) {
          return bad(`seq ${row.seq} follows seq ${expectedSeq - 1}: rows are missing`);
        }
        if (row.prev_hash !== prevHash) {
          return bad(`seq ${row.seq}: prev_hash ${row.prev_hash} is not the hash of the row before (${prevHash})`);
        }
        if (row.decision !== null && row.decision !== 'allow' && row.decision !== 'deny') {
          return bad(`seq ${row.seq}: decision ${JSON.stringify(row.decision)} is not allow, deny or null`);
        }
        const hash = rowHash({
          seq: row.seq,
          timeMs: row.time_ms,
          actor: row.actor,
          action: row.action,
          object: row.object,
          decision: row.decision,
          detailsJson: row.details,
          prevHash: row.prev_hash,
        });
        if (hash !== row.hash) {
          return bad(`seq ${row.seq}: stored hash ${row.hash} does not match the row's contents (${hash})`);
        }
        prevHash = row.hash;
        expectedSeq += 1;
      }
      return { ok: true, rows };
    },
    lastSeq() {
      return maxSeq.get()?.seq ?? 0;
    },
  };
}

interface PreparedEntry {
  readonly actor: string;
  readonly action: string;
  readonly object: string;
  readonly decision: 'allow' | 'deny' | null;
  readonly detailsJson: string | null;
}

function prepareEntry(entry: AuditEntry, index: number | undefined): PreparedEntry {
  const where = index === undefined ? 'audit entry' : `audit entry ${index}`;
  for (const field of ['actor', 'action', 'object'] as const) {
    const value: unknown = entry[field];
    if (typeof value !== 'string' || value.length === 0) {
      throw new AuditError(`${where}: ${field} must be a non-empty string, got ${JSON.stringify(value)}`, { field });
    }
  }
  const decision = entry.decision ?? null;
  if (decision !== null && decision !== 'allow' && decision !== 'deny') {
    throw new AuditError(`${where}: decision must be 'allow', 'deny' or null, got ${JSON.stringify(decision)}`, {
      field: 'decision',
    });
  }
  let detailsJson: string | null = null;
  if (entry.details !== undefined) {
    if (entry.details === null || typeof entry.details !== 'object' || Array.isArray(entry.details)) {
      throw new AuditError(`${where}: details must be an object`, { field: 'details' });
    }
    try {
      detailsJson = canonicalJson(entry.details);
    } catch (error) {
      throw new AuditError(`${where}: details cannot be serialized as JSON: ${(error as Error).message}`, {
        field: 'details',
        cause: error,
      });
    }
  }
  return { actor: entry.actor, action: entry.action, object: entry.object, decision, detailsJson };
}

function readClock(clock: () => number): number {
  const timeMs = clock();
  if (!Number.isSafeInteger(timeMs) || timeMs < 0) {
    throw new AuditError(`the audit clock returned ${timeMs}; expected whole ms since the epoch`, { field: 'timeMs' });
  }
  return timeMs;
}

function toRecord(row: AuditRow): AuditRecord {
  let details: Record<string, unknown> | undefined;
  if (row.details !== null) {
    try {
      details = JSON.parse(row.details) as Record<string, unknown>;
    } catch (error) {
      throw new AuditError(`audit row ${row.seq}: details are not valid JSON`, { seq: row.seq, cause: error });
    }
  }
  return {
    seq: row.seq,
    timeMs: row.time_ms,
    actor: row.actor,
    action: row.action,
    object: row.object,
    decision: row.decision === 'allow' || row.decision === 'deny' ? row.decision : null,
    ...(details === undefined ? {} : { details }),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

function buildQuery(filter: AuditFilter): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.actor !== undefined) {
    where.push('actor = ?');
    params.push(filter.actor);
  }
  if (filter.action !== undefined) {
    if (filter.action === '*') {
      // every action
    } else if (filter.action.endsWith('.*')) {
      // A prefix as a half-open range: exact (case-sensitive, unlike LIKE) and served by the index.
      const prefix = filter.action.slice(0, -1);
      const upper = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
      where.push('action >= ? AND action < ?');
      params.push(prefix, upper);
    } else {
      where.push('action = ?');
      params.push(filter.action);
    }
  }
  if (filter.object !== undefined) {
    where.push('object = ?');
    params.push(filter.object);
  }
  if (filter.decision !== undefined) {
    if (filter.decision === null) {
      where.push('decision IS NULL');
    } else if (filter.decision === 'allow' || filter.decision === 'deny') {
      where.push('decision = ?');
      params.push(filter.decision);
    } else {
      throw new AuditError(`audit query: decision must be 'allow', 'deny' or null, got ${JSON.stringify(filter.decision)}`, {
        field: 'decision',
      });
    }
  }
  for (const [field, op] of [
    ['sinceMs', 'time_ms >= ?'],
    ['untilMs', 'time_ms < ?'],
    ['afterSeq', 'seq > ?'],
  ] as const) {
    const value = filter[field];
    if (value === undefined) continue;
    if (!Number.isFinite(value)) {
      throw new AuditError(`audit query: ${field} must be a finite number, got ${value}`, { field });
    }
    where.push(op);
    params.push(value);
  }
  const limit = filter.limit ?? DEFAULT_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new AuditError(`audit query: limit must be a positive integer, got ${limit}`, { field: 'limit' });
  }
  const order = filter.order ?? 'asc';
  if (order !== 'asc' && order !== 'desc') {
    throw new AuditError(`audit query: order must be 'asc' or 'desc', got ${JSON.stringify(order)}`, { field: 'order' });
  }
  params.push(limit);
  const sql = `SELECT * FROM audit${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY seq ${
    order === 'asc' ? 'ASC' : 'DESC'
  } LIMIT ?`;
  return { sql, params };
}

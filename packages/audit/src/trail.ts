import { migrate } from '@warren/store';
import type { SqliteDatabase } from '@warren/store';
import { AuditError } from './errors.js';
import { GENESIS_HASH, canonicalize, hashRow } from './canonical.js';

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
  /**
   * Rows matching `filter`, by seq. Rows of one `object` are found by index; the other filters are
   * checked while reading rows in seq order from the end `order` starts at, until `limit` rows match,
   * so a filter that few rows match may read the whole table (0.1 to 0.2 s per million rows).
   * @throws {AuditError} if the filter is invalid.
   */
  query(filter?: AuditFilter): AuditRecord[];
  /**
   * Re-computes every hash and link from the first row and stops at the first bad row. Reads the
   * whole table in one pass: a few seconds per million rows. The chain only: `verifyAuditTrail`
   * also checks the signed checkpoints, which find a recomputed chain and a cut tail.
   */
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
  {
    // Every index costs each appended row a descent of its tree and each commit more pages. No query
    // plan used these three: actor, action and time filters are checked on rows read in seq order
    // (the action index made `task.*` slower: SQLite collected every match by it, then sorted).
    version: 2,
    sql: `
      DROP INDEX IF EXISTS audit_actor;
      DROP INDEX IF EXISTS audit_action;
      DROP INDEX IF EXISTS audit_time;
    `,
  },
  {
    // Signed checkpoints (see checkpoint.ts): rows of the trail's own kind, append-only as well.
    version: 3,
    sql: `
      CREATE TABLE audit_checkpoints (
        id INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        count INTEGER NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL
      ) STRICT;
      CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only: UPDATE refused'); END;
      CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only: DELETE refused'); END;
    `,
  },
];

/** The columns of `audit`, in the order the statements below bind and read them. */
const COLUMNS = 'seq, time_ms, actor, action, object, decision, details, prev_hash, hash';
const COLUMN_COUNT = 9;
/** Rows per multi-row INSERT, largest first: a batch is written with as few statements as these allow. */
const INSERT_ROWS = [64, 16, 4, 1] as const;

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

/** A row read in raw mode, columns in {@link COLUMNS} order. */
export type RawAuditRow = [number, number, string, string, string, string | null, string | null, string, string];

/** The statement text that reads every row in raw {@link RawAuditRow} form, by seq. */
export const SELECT_RAW_ROWS = `SELECT ${COLUMNS} FROM audit ORDER BY seq`;

/**
 * Why `row` breaks the chain, or undefined when it holds: it must be row number `expectedSeq`
 * (seqs are consecutive from 1), link to `prevHash` (the hash of the row before it, 64 zeros for
 * the first) and hash to its stored `hash`.
 */
export function chainBreak(row: RawAuditRow, expectedSeq: number, prevHash: string): string | undefined {
  const seq = row[0];
  const decision = row[5];
  const storedPrevHash = row[7];
  const storedHash = row[8];
  if (seq !== expectedSeq) return `seq ${seq} follows seq ${expectedSeq - 1}: rows are missing`;
  if (storedPrevHash !== prevHash) return `seq ${seq}: prev_hash ${storedPrevHash} is not the hash of the row before (${prevHash})`;
  if (decision !== null && decision !== 'allow' && decision !== 'deny') {
    return `seq ${seq}: decision ${JSON.stringify(decision)} is not allow, deny or null`;
  }
  const hash = hashRow(seq, row[1], row[2], row[3], row[4], decision, row[6], storedPrevHash);
  if (hash !== storedHash) return `seq ${seq}: stored hash ${storedHash} does not match the row's contents (${hash})`;
  return undefined;
}

const DEFAULT_LIMIT = 1000;

/**
 * Opens the audit trail kept in `db`, creating the `audit` table (with triggers that refuse UPDATE
 * and DELETE) on first use, and bringing an existing one up to the current schema. Each row's hash
 * covers its fields and the previous row's hash, so an edited or removed row breaks the chain from
 * there on; see `rowHash` for the serialization.
 * Several connections may append to the same file: the tail is read inside the write transaction.
 * @throws {StoreError} if the table cannot be created or migrated.
 */
export function openAudit(db: SqliteDatabase, options: OpenAuditOptions = {}): AuditTrail {
  migrate(db, 'audit', MIGRATIONS);
  const clock = options.clock ?? Date.now;

  const tail = db.prepare<[], { seq: number; hash: string }>('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
  const inserts = INSERT_ROWS.map((rows) => ({
    rows,
    statement: db.prepare<unknown[]>(
      `INSERT INTO audit (${COLUMNS}) VALUES ${Array.from({ length: rows }, () => `(${'?, '.repeat(COLUMN_COUNT - 1)}?)`).join(', ')}`,
    ),
  }));
  const maxSeq = db.prepare<[], { seq: number | null }>('SELECT MAX(seq) AS seq FROM audit');

  const writeBatch = db.transaction((batch: ValidBatch): AuditRecord[] => {
    const last = tail.get();
    let seq = last?.seq ?? 0;
    let prevHash = last?.hash ?? GENESIS_HASH;
    const { values, details, count } = batch;
    const records = new Array<AuditRecord>(count);
    for (let i = 0, at = 0; i < count; i++, at += COLUMN_COUNT) {
      seq += 1;
      const timeMs = readClock(clock);
      const actor = values[at + 2] as string;
      const action = values[at + 3] as string;
      const object = values[at + 4] as string;
      const decision = values[at + 5] as 'allow' | 'deny' | null;
      const detailsJson = values[at + 6] as string | null;
      const hash = hashRow(seq, timeMs, actor, action, object, decision, detailsJson, prevHash);
      values[at] = seq;
      values[at + 1] = timeMs;
      values[at + 7] = prevHash;
      values[at + 8] = hash;
      records[i] =
        detailsJson === null
          ? { seq, timeMs, actor, action, object, decision, prevHash, hash }
          : { seq, timeMs, actor, action, object, decision, details: details[i] as Record<string, unknown>, prevHash, hash };
      prevHash = hash;
    }
    let written = 0;
    for (const { rows, statement } of inserts) {
      for (; count - written >= rows; written += rows) {
        statement.run(...values.slice(written * COLUMN_COUNT, (written + rows) * COLUMN_COUNT));
      }
    }
    return records;
  });

  function appendMany(entries: readonly AuditEntry[]): AuditRecord[] {
    if (entries.length === 0) return [];
    const batch = validateBatch(entries);
    try {
      return writeBatch.immediate(batch);
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
      const all = db.prepare<[], RawAuditRow>(SELECT_RAW_ROWS).raw(true);
      let rows = 0;
      let prevHash = GENESIS_HASH;
      for (const row of all.iterate()) {
        rows += 1;
        const reason = chainBreak(row, rows, prevHash);
        if (reason !== undefined) return { ok: false, rows, firstBadSeq: row[0], reason };
        prevHash = row[8];
      }
      return { ok: true, rows };
    },
    lastSeq() {
      return maxSeq.get()?.seq ?? 0;
    },
  };
}

/**
 * A batch that passed validation: `count` rows laid out as the INSERT binds them, {@link COLUMN_COUNT}
 * values per row in {@link COLUMNS} order. Actor, action, object, decision and details (canonical
 * JSON or null) are filled in; seq, time, prev_hash and hash are filled in inside the transaction.
 * `details[i]` is row i's details as JSON data, for the returned record.
 */
interface ValidBatch {
  readonly count: number;
  readonly values: unknown[];
  readonly details: unknown[];
}

function validateBatch(entries: readonly AuditEntry[]): ValidBatch {
  const count = entries.length;
  const values = new Array<unknown>(count * COLUMN_COUNT).fill(null);
  const detailsData = new Array<unknown>(count).fill(null);
  for (let i = 0, at = 0; i < count; i++, at += COLUMN_COUNT) {
    const entry = entries[i]!;
    const actor: unknown = entry.actor;
    const action: unknown = entry.action;
    const object: unknown = entry.object;
    if (typeof actor !== 'string' || actor.length === 0) throw invalidName(i, count, 'actor', actor);
    if (typeof action !== 'string' || action.length === 0) throw invalidName(i, count, 'action', action);
    if (typeof object !== 'string' || object.length === 0) throw invalidName(i, count, 'object', object);
    const decision: unknown = entry.decision ?? null;
    if (decision !== null && decision !== 'allow' && decision !== 'deny') {
      throw new AuditError(`${entryName(i, count)}: decision must be 'allow', 'deny' or null, got ${JSON.stringify(decision)}`, {
        field: 'decision',
      });
    }
    values[at + 2] = actor;
    values[at + 3] = action;
    values[at + 4] = object;
    values[at + 5] = decision;
    const details: unknown = entry.details;
    if (details !== undefined) {
      if (details === null || typeof details !== 'object' || Array.isArray(details)) {
        throw new AuditError(`${entryName(i, count)}: details must be an object`, { field: 'details' });
      }
      try {
        const canonical = canonicalize(details);
        values[at + 6] = canonical.json;
        detailsData[i] = canonical.data;
      } catch (error) {
        throw new AuditError(`${entryName(i, count)}: details cannot be serialized as JSON: ${(error as Error).message}`, {
          field: 'details',
          cause: error,
        });
      }
    }
  }
  return { count, values, details: detailsData };
}

/** How error messages name entry `index` of a batch of `count`. */
function entryName(index: number, count: number): string {
  return count > 1 ? `audit entry ${index}` : 'audit entry';
}

function invalidName(index: number, count: number, field: 'actor' | 'action' | 'object', value: unknown): AuditError {
  return new AuditError(`${entryName(index, count)}: ${field} must be a non-empty string, got ${JSON.stringify(value)}`, { field });
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
      // A prefix as a half-open range: exact and case-sensitive, unlike LIKE.
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

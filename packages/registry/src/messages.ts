import { migrate, type SqliteDatabase } from '@warren/store';

/**
 * One message the supervisor relayed or refused, as {@link MessageLedger.record} counts it: a direct
 * message from agent `from` to agent `to` (`topic` ''), or a message `from` published on `topic`
 * (`to` `*`). Only sizes are counted, never the body.
 */
export interface MessageRecord {
  /** The sending agent (or `user:<name>` for a person). */
  readonly from: string;
  /** The receiving agent, or `*` for a topic message. */
  readonly to: string;
  /** The topic, or '' for a direct message. */
  readonly topic: string;
  /** The body's encoded size, bytes (a non-negative whole number). Counted only when `allowed`. */
  readonly bytes: number;
  /** Whether the policy let it through; a denied message counts in `count` and in `denied`. */
  readonly allowed: boolean;
  /** When it was decided, ms since the Unix epoch. */
  readonly timeMs: number;
}

/** The `to` of a topic message in the ledger. */
export const TOPIC_RECIPIENT = '*';

const MIGRATIONS = [
  {
    version: 1,
    sql: `
      CREATE TABLE message_counts (
        from_name TEXT NOT NULL,
        to_name TEXT NOT NULL,
        topic TEXT NOT NULL,
        count INTEGER NOT NULL,
        denied INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        first_ms INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        PRIMARY KEY (from_name, to_name, topic)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX message_counts_to ON message_counts (to_name);
      CREATE INDEX message_counts_last ON message_counts (last_ms);
    `,
  },
];

/**
 * Creates the `message_counts` table (migration component `messages`): one row per
 * (from, to, topic) with the messages counted, the denied ones among them, the bytes let through
 * and the first and last message's time (ms since the epoch). Idempotent.
 * @throws {StoreError} if the migration fails.
 */
export function migrateMessages(db: SqliteDatabase): void {
  migrate(db, 'messages', MIGRATIONS);
}

function check(record: MessageRecord): void {
  const text = (field: 'from' | 'to', value: unknown) => {
    if (typeof value !== 'string' || value === '') throw new TypeError(`message record: '${field}' must be a non-empty string, got ${JSON.stringify(value)}`);
  };
  text('from', record.from);
  text('to', record.to);
  if (typeof record.topic !== 'string') throw new TypeError(`message record: 'topic' must be a string ('' for a direct message), got ${JSON.stringify(record.topic)}`);
  if (!Number.isSafeInteger(record.bytes) || record.bytes < 0) throw new TypeError(`message record: 'bytes' must be a non-negative whole number, got ${String(record.bytes)}`);
  if (!Number.isSafeInteger(record.timeMs)) throw new TypeError(`message record: 'timeMs' must be a whole number of ms, got ${String(record.timeMs)}`);
}

/**
 * The counts of every message between agents and on topics, allowed or denied, for the
 * collaboration graph (`Registry.messages`, `GET /api/v1/messages`). The supervisor records each
 * message once, when its policy decision is made; a record is one prepared upsert (no read first).
 */
export class MessageLedger {
  private readonly upsert;

  /** Migrates `db` ({@link migrateMessages}) and prepares the statement. Closing `db` is the caller's. */
  constructor(db: SqliteDatabase) {
    migrateMessages(db);
    this.upsert = db.prepare<{ from: string; to: string; topic: string; denied: number; bytes: number; timeMs: number }>(
      `INSERT INTO message_counts (from_name, to_name, topic, count, denied, bytes, first_ms, last_ms)
       VALUES (@from, @to, @topic, 1, @denied, @bytes, @timeMs, @timeMs)
       ON CONFLICT (from_name, to_name, topic) DO UPDATE SET
         count = count + 1,
         denied = denied + excluded.denied,
         bytes = bytes + excluded.bytes,
         first_ms = MIN(first_ms, excluded.first_ms),
         last_ms = MAX(last_ms, excluded.last_ms)`,
    );
  }

  /**
   * Counts one message: `count` + 1, `denied` + 1 when not allowed, `bytes` + its size when allowed,
   * and the edge's first and last times widened to `timeMs`.
   * @throws {TypeError} naming the field when `record` is malformed (nothing is counted).
   */
  record(record: MessageRecord): void {
    check(record);
    this.upsert.run({
      from: record.from,
      to: record.to,
      topic: record.topic,
      denied: record.allowed ? 0 : 1,
      bytes: record.allowed ? record.bytes : 0,
      timeMs: record.timeMs,
    });
  }
}

import * as crypto from 'node:crypto';
import { openDatabase, StoreError, type SqliteDatabase } from '@warren/store';
import { GENESIS_HASH } from './canonical.js';
import { type Checkpoint, checkpointSignatureValid, keyFingerprint, pathExists, readHead, readVerifyingKey, type HeadRead } from './checkpoint.js';
import { AuditKeyError } from './errors.js';
import { chainBreak, SELECT_RAW_ROWS, type RawAuditRow } from './trail.js';

/** The outcome of {@link verifyAuditTrail}. */
export interface SignedVerification {
  /** True when the chain is intact and every checkpoint and the head file vouch for it. */
  readonly ok: boolean;
  /** Rows read: all rows when ok, else the rows up to and including the first bad one. */
  readonly rows: number;
  /** True when signatures were checked (a key was at hand); false for an unsigned trail, whose tail can be cut unseen. */
  readonly signed: boolean;
  /** The fingerprint of the key signatures were checked with (see `keyFingerprint`). */
  readonly keyId?: string;
  /** The checkpoints that verified: how many, and the newest one's seq and signing time (ms since the epoch). */
  readonly checkpoints: { readonly count: number; readonly lastSeq: number | null; readonly lastMs: number | null };
  /** Rows after the newest verified checkpoint: until the next checkpoint only the chain protects them. */
  readonly unsignedRows: number;
  /** The first row that cannot be vouched for, when one can be named. */
  readonly firstBadSeq?: number;
  /** Why it does not verify. */
  readonly reason?: string;
}

/** What {@link verifyAuditTrail} checks the trail against. */
export interface VerifyAuditTrailOptions {
  /** The key to check signatures with (public, or private whose public half is used). Wins over `keyPath`. */
  readonly publicKey?: crypto.KeyObject;
  /** A PEM file with the key (public or private); a missing file means no key. */
  readonly keyPath?: string;
  /** The head file the signer writes; a missing file means none was written. */
  readonly headPath?: string;
}

/** Rows and checkpoints are read this many at a time. */
const PAGE_ROWS = 10_000;

interface CheckpointRow {
  id: number;
  seq: number;
  hash: string;
  time_ms: number;
  count: number;
  key_id: string;
  signature: string;
}

/**
 * Verifies the audit trail in `db` against its signed checkpoints and head file, reading rows and
 * checkpoints in one read transaction (a consistent snapshot while a supervisor appends), a page
 * at a time, and stopping at the first fault. Checks, in seq order:
 * - the chain: seqs consecutive from 1, each `prev_hash` the previous row's hash, each hash the
 *   row's contents (as `AuditTrail.verify`);
 * - every checkpoint of `audit_checkpoints`: ids consecutive from 1, seqs increasing, `count` the
 *   seqs since the previous one, signed by the key at hand (its `keyId` and its Ed25519 signature),
 *   and its `hash` the hash of row `seq`;
 * - the head file: a valid signed checkpoint by the same key, equal to the table's checkpoint of
 *   its id, and not beyond the last row.
 * A fault a checkpoint finds (rows rewritten with the chain recomputed, a forged checkpoint, another
 * key) names as `firstBadSeq` the first row after the newest checkpoint that verified: the rows it
 * can no longer vouch for start there. Rows or checkpoints missing at the end name the first
 * missing row. Without a key, the head file and checkpoints cannot be checked: the trail is
 * `signed: false`, ok when the chain is intact and nothing was signed (an unsigned state
 * directory); checkpoints without their key are a fault. With a key, a missing head file is a
 * fault: the signer writes one (checkpoint 0, seq 0) before it makes the key.
 * Reads the whole table: a few seconds per million rows.
 * The head file is read before the database snapshot is taken: the signer writes the table first,
 * so the snapshot holds every checkpoint the head file names.
 * @throws {StoreError|Error} only if the database cannot be read; a bad key file is reported as a fault.
 */
export function verifyAuditTrail(db: SqliteDatabase, options: VerifyAuditTrailOptions = {}): SignedVerification {
  const inputs = readInputs(options);
  const walk = db.transaction(() => {
    const pass = walkTrail(db, inputs.key, inputs.head);
    for (let step = pass.next(); ; step = pass.next()) if (step.done) return step.value;
  });
  return withKeyFault(walk.deferred(), inputs.keyFault);
}

/**
 * {@link verifyAuditTrail} on its own connection to the database file at `dbPath`, giving the event
 * loop back after each page of 10,000 rows, for a process that must keep serving meanwhile (the
 * HTTP API of a running supervisor). The read transaction stays open until the end, so the result
 * is of one snapshot; SQLite's WAL lets the supervisor's connection write meanwhile.
 * @throws {StoreError} if the file cannot be opened.
 */
export async function verifyAuditTrailAsync(dbPath: string, options: VerifyAuditTrailOptions = {}): Promise<SignedVerification> {
  const inputs = readInputs(options);
  if (!pathExists(dbPath)) throw new StoreError(`cannot open the state database ${dbPath}: no such file`);
  const db = openDatabase(dbPath);
  try {
    db.exec('BEGIN DEFERRED');
    try {
      const pass = walkTrail(db, inputs.key, inputs.head);
      for (let step = pass.next(); ; step = pass.next()) {
        if (step.done) return withKeyFault(step.value, inputs.keyFault);
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      db.exec('ROLLBACK');
    }
  } finally {
    db.close();
  }
}

/** The head file and the key of `options`; a key file that cannot be used is a fault to report, not an error. */
function readInputs(options: VerifyAuditTrailOptions): { head: HeadRead; key?: crypto.KeyObject; keyFault?: string } {
  // The head file first: the signer writes the table before it, so a later snapshot holds its checkpoint.
  const head: HeadRead = options.headPath ? readHead(options.headPath) : { state: 'missing' };
  if (options.publicKey) {
    return { head, key: options.publicKey.type === 'private' ? crypto.createPublicKey(options.publicKey) : options.publicKey };
  }
  if (options.keyPath && pathExists(options.keyPath)) {
    try {
      return { head, key: readVerifyingKey(options.keyPath) };
    } catch (error) {
      if (!(error instanceof AuditKeyError)) throw error;
      return { head, keyFault: error.message };
    }
  }
  return { head };
}

/** `result`, failed with `keyFault` as its reason when the key file could not be used and no row was named bad. */
function withKeyFault(result: SignedVerification, keyFault: string | undefined): SignedVerification {
  if (keyFault === undefined || result.firstBadSeq !== undefined) return result;
  return { ...result, ok: false, reason: keyFault };
}

/** {@link verifyAuditTrail}'s pass over a snapshot: yields after each page of rows, returns the outcome. */
function* walkTrail(db: SqliteDatabase, key: crypto.KeyObject | undefined, head: HeadRead): Generator<void, SignedVerification> {
  const keyId = key ? keyFingerprint(key) : undefined;
  const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_checkpoints'").get() !== undefined;
  const rowPage = db.prepare<[number, number], RawAuditRow>(`${SELECT_RAW_ROWS.replace(' ORDER BY', ' WHERE seq > ? ORDER BY')} LIMIT ?`).raw(true);
  const checkpointPage = hasTable
    ? db.prepare<[number, number], CheckpointRow>('SELECT id, seq, hash, time_ms, count, key_id, signature FROM audit_checkpoints WHERE id > ? ORDER BY id LIMIT ?')
    : undefined;
  const checkpointTotal = hasTable ? (db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM audit_checkpoints').get()?.n ?? 0) : 0;

  let rows = 0;
  let lastRowSeq = 0;
  let prevHash = GENESIS_HASH;
  /** The newest checkpoint that verified. */
  let good: Checkpoint | undefined;
  let goodCount = 0;
  /** The table's newest checkpoint read (verified or not), for the id/seq/count links. */
  let previous: { id: number; seq: number } = { id: 0, seq: 0 };
  let headSeen = false;

  const result = (fault?: { firstBadSeq?: number; reason: string }): SignedVerification => ({
    ok: fault === undefined,
    rows,
    signed: key !== undefined,
    ...(keyId !== undefined ? { keyId } : {}),
    checkpoints: { count: goodCount, lastSeq: good?.seq ?? null, lastMs: good?.timeMs ?? null },
    unsignedRows: rows - (good?.seq ?? 0),
    ...(fault?.firstBadSeq !== undefined ? { firstBadSeq: fault.firstBadSeq } : {}),
    ...(fault ? { reason: fault.reason } : {}),
  });
  const afterGood = () => (good?.seq ?? 0) + 1;

  if (head.state === 'invalid') return result({ reason: head.reason });
  const headCheckpoint = head.state === 'read' ? head.checkpoint : undefined;

  // Checkpoints are read a page at a time alongside the rows (one statement iterates at a time).
  let buffered: Checkpoint[] = [];
  let at = 0;
  let lastIdRead = 0;
  const peek = (): Checkpoint | undefined => {
    if (at === buffered.length && checkpointPage) {
      buffered = checkpointPage.all(lastIdRead, PAGE_ROWS).map(fromRow);
      at = 0;
      if (buffered.length > 0) lastIdRead = buffered[buffered.length - 1]!.id;
    }
    return buffered[at];
  };

  /** Why `cp` (the next checkpoint by id) does not link to the one before it, if it does not. */
  const linkFault = (cp: Checkpoint): string | undefined => {
    if (cp.id !== previous.id + 1) return `checkpoint ids jump from ${previous.id} to ${cp.id}: checkpoints were deleted`;
    if (cp.seq <= previous.seq) return `checkpoint ${cp.id} covers seq ${cp.seq}, not beyond checkpoint ${previous.id}'s seq ${previous.seq}`;
    if (cp.count !== cp.seq - previous.seq) return `checkpoint ${cp.id} counts ${cp.count} rows since the previous checkpoint, not ${cp.seq - previous.seq}`;
    return undefined;
  };
  /** Why `cp` is not `key`'s signature over row `cp.seq` with hash `rowHash`, if it is not. */
  const signatureFault = (cp: Checkpoint, what: string, rowHash: string): string | undefined => {
    if (!key || !keyId) return undefined;
    if (cp.keyId !== keyId) {
      return `${what} was signed by key ${cp.keyId.slice(0, 16)}…, not by the key at hand (${keyId.slice(0, 16)}…): the signing key was replaced`;
    }
    if (!checkpointSignatureValid(cp, cp.signature, key)) return `${what}: the signature does not verify: the checkpoint was forged or altered`;
    if (cp.hash !== rowHash) {
      return `rows ${afterGood()} to ${cp.seq} were rewritten: row ${cp.seq} has hash ${rowHash}, ${what} signed ${cp.hash}`;
    }
    return undefined;
  };

  if (headCheckpoint && headCheckpoint.seq === 0) {
    // Checkpoint 0, written with the key before anything was signed: it vouches for the empty trail.
    headSeen = true;
    const fault =
      headCheckpoint.id !== 0 || headCheckpoint.hash !== GENESIS_HASH
        ? `the head file's checkpoint ${headCheckpoint.id} covers seq 0 but is not checkpoint 0 of the empty trail`
        : signatureFault(headCheckpoint, "the head file's checkpoint 0", GENESIS_HASH);
    if (fault !== undefined) return result({ firstBadSeq: afterGood(), reason: fault });
  }

  for (;;) {
    const page = rowPage.all(lastRowSeq, PAGE_ROWS);
    for (const row of page) {
      const seq = row[0];
      const broken = chainBreak(row, rows + 1, prevHash);
      rows += 1;
      if (broken !== undefined) return result({ firstBadSeq: seq, reason: broken });
      prevHash = row[8];
      lastRowSeq = seq;
      for (let cp = peek(); cp !== undefined && cp.seq <= seq; cp = peek()) {
        const fault =
          linkFault(cp) ??
          (cp.seq < seq ? `checkpoint ${cp.id} covers seq ${cp.seq}, which is not a row` : undefined) ??
          signatureFault(cp, `checkpoint ${cp.id} (seq ${cp.seq})`, row[8]) ??
          (headCheckpoint && headCheckpoint.id === cp.id && !sameCheckpoint(headCheckpoint, cp)
            ? `checkpoint ${cp.id} differs from the head file's checkpoint of that id`
            : undefined);
        if (fault !== undefined) return result({ firstBadSeq: afterGood(), reason: fault });
        previous = cp;
        at += 1;
        if (key) {
          good = cp;
          goodCount += 1;
        }
      }
      if (headCheckpoint && headCheckpoint.seq === seq) {
        headSeen = true;
        const fault = signatureFault(headCheckpoint, `the head file's checkpoint ${headCheckpoint.id} (seq ${seq})`, row[8]);
        if (fault !== undefined) return result({ firstBadSeq: afterGood(), reason: fault });
      }
    }
    if (page.length < PAGE_ROWS) break;
    yield;
  }

  const leftover = peek();
  if (leftover !== undefined) {
    return result({
      firstBadSeq: lastRowSeq + 1,
      reason: `rows after seq ${lastRowSeq} are missing: checkpoint ${leftover.id} covers seq ${leftover.seq}`,
    });
  }
  if (headCheckpoint && !headSeen) {
    return result({
      firstBadSeq: lastRowSeq + 1,
      reason: `rows after seq ${lastRowSeq} are missing: the head file's checkpoint ${headCheckpoint.id} covers seq ${headCheckpoint.seq}: the tail was cut`,
    });
  }
  if (!key) {
    if (checkpointTotal > 0 || (headCheckpoint && headCheckpoint.id > 0)) {
      return result({ reason: `the trail has signed checkpoints but no key to check them with: the signing key was removed (verify with the public key)` });
    }
    return result();
  }
  if (headCheckpoint && headCheckpoint.id > previous.id) {
    return result({
      firstBadSeq: afterGood(),
      reason: `the head file's checkpoint ${headCheckpoint.id} (seq ${headCheckpoint.seq}) is missing from audit_checkpoints, which ends at checkpoint ${previous.id}: checkpoints were deleted`,
    });
  }
  if (!headCheckpoint) {
    // A signer writes the head file before it makes its key: with a key, a missing head file was removed.
    return result({
      reason: `there is a signing key${checkpointTotal > 0 ? ` and ${checkpointTotal} signed checkpoints` : ''} but no head file: it was removed, and with it the proof of the trail's length`,
    });
  }
  return result();
}

/** Whether two checkpoints say the same thing. */
function sameCheckpoint(a: Checkpoint, b: Checkpoint): boolean {
  return a.id === b.id && a.seq === b.seq && a.hash === b.hash && a.timeMs === b.timeMs && a.count === b.count && a.keyId === b.keyId && a.signature === b.signature;
}

/** A checkpoint from its `audit_checkpoints` row. */
export function fromRow(row: CheckpointRow): Checkpoint {
  return { id: row.id, seq: row.seq, hash: row.hash, timeMs: row.time_ms, count: row.count, keyId: row.key_id, signature: row.signature };
}

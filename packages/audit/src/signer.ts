import * as crypto from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SqliteDatabase } from '@warren/store';
import {
  type Checkpoint,
  checkpointSignatureValid,
  generateSigningKey,
  saveSigningKey,
  keyFingerprint,
  pathExists,
  readHead,
  readSigningKey,
  signCheckpoint,
  writeHead,
} from './checkpoint.js';
import { GENESIS_HASH } from './canonical.js';
import { AuditError, AuditKeyError, AuditTamperError } from './errors.js';
import type { AuditTrail } from './trail.js';
import { fromRow, verifyAuditTrail, type SignedVerification } from './verify.js';

/** Options of {@link openAuditSigner}. */
export interface OpenAuditSignerOptions {
  /** The state database holding the `audit` table. */
  readonly db: SqliteDatabase;
  /** The trail opened on `db` (opening it created the `audit_checkpoints` table). */
  readonly audit: AuditTrail;
  /** The Ed25519 private key, PKCS #8 PEM, mode 0600; made on first use. See `auditSigningPaths` for the default. */
  readonly keyPath: string;
  /** The head file, rewritten atomically with each checkpoint. See `auditSigningPaths` for the default. */
  readonly headPath: string;
  /** {@link AuditSigner.checkpoint} signs at most once per this many ms unless forced. Default 1000. */
  readonly intervalMs?: number;
}

/** Signs checkpoints of one audit trail; see {@link openAuditSigner}. */
export interface AuditSigner {
  /** The fingerprint of the signing key's public half (see `keyFingerprint`). */
  readonly keyId: string;
  /** The public key, SPKI PEM: give it to `warren audit verify --key` from a copy kept elsewhere. */
  readonly publicKeyPem: string;
  /**
   * Signs a checkpoint of the newest row, stores it in `audit_checkpoints` (its own transaction,
   * synchronous) and then rewrites the head file (off the event loop; head writes are queued, so
   * overlapping calls write them in order). The promise resolves once the head file is written. Returns undefined, doing nothing, when no row was appended
   * since the last checkpoint (checked with two indexed reads, no write lock), when less than
   * `intervalMs` passed since the last checkpoint this signer made (unless `force`), or after
   * `close()`. After a quiet spell the first new rows are signed at the next call.
   * @param nowMs the signing time, ms since the epoch; the interval is measured with it.
   * Rejects with {@link AuditError} if the checkpoint or the head file cannot be written (a
   *   checkpoint stored without its head file is still valid: the next one rewrites the file).
   */
  checkpoint(nowMs: number, options?: { readonly force?: boolean }): Promise<Checkpoint | undefined>;
  /** The newest checkpoint in the table, if any. */
  newest(): Checkpoint | undefined;
  /** {@link verifyAuditTrail} with this signer's key and head file. */
  verify(): SignedVerification;
  /**
   * Signs a last checkpoint if rows were appended since the newest (call it after the last audit
   * row, before the database closes), waits for the head file, then stops signing. Idempotent.
   * Rejects with {@link AuditError} as {@link checkpoint}, on the first call only.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Default of {@link OpenAuditSignerOptions.intervalMs}. */
const DEFAULT_INTERVAL_MS = 1000;

/**
 * Opens the signer of the audit trail in `db`. Reads the Ed25519 key at `keyPath`, or, when nothing
 * was signed yet, makes one there (0600, in a 0700 folder), after writing a head file of checkpoint
 * 0 (seq 0) signed by it: from then on a missing head file was removed, never not yet written. Then checks
 * the newest checkpoint and the head file against the rows they cover (point reads: not the whole
 * trail), so that a supervisor never starts signing over a cut or rewritten tail, and brings the
 * head file up to the newest checkpoint (a crash between the two writes leaves it one behind).
 * Between checkpoints, the newest rows are protected by the hash chain only: removing them is seen
 * once a checkpoint covers them, not before.
 * Rejects with {@link AuditKeyError} if the key is missing while checkpoints exist, is readable or
 *   writable by group or others, belongs to another user, is not Ed25519, or is not the key that
 *   signed the newest checkpoint or the head file (it was replaced); with {@link AuditTamperError}
 *   if the newest checkpoint or the head file do not match the rows.
 */
export async function openAuditSigner(options: OpenAuditSignerOptions): Promise<AuditSigner> {
  const { db, audit, keyPath, headPath } = options;
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  if (!Number.isFinite(intervalMs) || intervalMs < 0) throw new AuditError(`audit signer: intervalMs must be a number ≥ 0, got ${intervalMs}`, { field: 'intervalMs' });
  audit.lastSeq(); // the trail is open, so the table exists

  const newestStatement = db.prepare<[], Parameters<typeof fromRow>[0]>(
    'SELECT id, seq, hash, time_ms, count, key_id, signature FROM audit_checkpoints ORDER BY id DESC LIMIT 1',
  );
  const rowHashStatement = db.prepare<[number], { hash: string }>('SELECT hash FROM audit WHERE seq = ?');
  const tailStatement = db.prepare<[], { seq: number; hash: string }>('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
  const insert = db.prepare('INSERT INTO audit_checkpoints (id, seq, hash, time_ms, count, key_id, signature) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const newest = (): Checkpoint | undefined => {
    const row = newestStatement.get();
    return row ? fromRow(row) : undefined;
  };

  const head = readHead(headPath);
  if (head.state === 'invalid') throw new AuditTamperError(head.reason);
  const headCheckpoint = head.state === 'read' ? head.checkpoint : undefined;
  const last = newest();
  let privateKey: crypto.KeyObject;
  if (pathExists(keyPath)) {
    privateKey = readSigningKey(keyPath);
  } else if (last || (headCheckpoint && headCheckpoint.id > 0)) {
    throw new AuditKeyError(
      keyPath,
      `the audit signing key ${keyPath} is missing, but the trail has checkpoints signed by key ${(last ?? headCheckpoint)!.keyId.slice(0, 16)}…: restore the key file`,
    );
  } else {
    // Nothing was signed yet (at most a head file of checkpoint 0): a new key loses nothing.
    // The head file of checkpoint 0 is written before the key, so that from the moment a key
    // exists, a head file does too: a missing one is then always a removed one.
    privateKey = generateSigningKey();
    await mkdir(dirname(headPath), { recursive: true, mode: 0o700 });
    await writeHeadOrThrow(headPath, genesisCheckpoint(privateKey));
    privateKey = saveSigningKey(keyPath, privateKey);
  }
  const publicKey = crypto.createPublicKey(privateKey);
  const keyId = keyFingerprint(publicKey);
  const current = readHead(headPath);
  if (current.state === 'invalid') throw new AuditTamperError(current.reason);
  const headNow = current.state === 'read' ? current.checkpoint : undefined;

  // The newest checkpoint and the head file must be this key's, and match the rows they name.
  for (const [what, cp] of [
    ['the newest checkpoint', last],
    ['the head file', headNow],
  ] as const) {
    if (!cp) continue;
    if (cp.keyId !== keyId) {
      throw new AuditKeyError(keyPath, `${what} was signed by key ${cp.keyId.slice(0, 16)}…, not by the key in ${keyPath} (${keyId.slice(0, 16)}…): the key was replaced`);
    }
    if (!checkpointSignatureValid(cp, cp.signature, publicKey)) throw new AuditTamperError(`${what} (checkpoint ${cp.id}): the signature does not verify`);
    if (cp.id === 0) {
      if (cp.seq !== 0 || cp.hash !== GENESIS_HASH) throw new AuditTamperError(`${what}: checkpoint 0 must cover seq 0`);
      continue;
    }
    const row = rowHashStatement.get(cp.seq);
    if (!row) {
      throw new AuditTamperError(`${what} covers seq ${cp.seq}, but the trail ends at seq ${audit.lastSeq()}: the tail was cut`, { firstBadSeq: audit.lastSeq() + 1 });
    }
    if (row.hash !== cp.hash) throw new AuditTamperError(`${what} (checkpoint ${cp.id}) signed a different hash for seq ${cp.seq}: rows were rewritten`);
  }
  if (!headNow) throw new AuditTamperError(`there is a signing key but no head file ${headPath}: it was removed`);
  if (headNow.id > (last?.id ?? 0)) {
    throw new AuditTamperError(`the head file's checkpoint ${headNow.id} is missing from audit_checkpoints: checkpoints were deleted`);
  }
  if (last && headNow.id < last.id) await writeHeadOrThrow(headPath, last);

  const write = db.transaction((nowMs: number): Checkpoint | undefined => {
    const tail = tailStatement.get();
    const previous = newest();
    if (!tail || (previous && tail.seq <= previous.seq)) return undefined;
    const fields = { seq: tail.seq, hash: tail.hash, timeMs: nowMs, count: tail.seq - (previous?.seq ?? 0), keyId };
    const checkpoint: Checkpoint = { id: (previous?.id ?? 0) + 1, ...fields, signature: signCheckpoint(fields, privateKey) };
    insert.run(checkpoint.id, checkpoint.seq, checkpoint.hash, checkpoint.timeMs, checkpoint.count, checkpoint.keyId, checkpoint.signature);
    return checkpoint;
  });

  let lastSignedMs: number | undefined;
  let closed = false;
  let closing: Promise<void> | undefined;
  /** The newest head write; each waits for the one before it. */
  let headWritten: Promise<void> = Promise.resolve();

  const checkpoint = async (nowMs: number, checkpointOptions: { readonly force?: boolean } = {}): Promise<Checkpoint | undefined> => {
    if (closed) return undefined;
    if (!Number.isSafeInteger(nowMs) || nowMs < 0) throw new AuditError(`audit checkpoint: nowMs must be whole ms since the epoch, got ${nowMs}`, { field: 'timeMs' });
    if (!checkpointOptions.force && lastSignedMs !== undefined && nowMs - lastSignedMs < intervalMs) return undefined;
    let signed: Checkpoint | undefined;
    try {
      // Read first: with no new row, no write lock is taken.
      if ((tailStatement.get()?.seq ?? 0) <= (newest()?.seq ?? 0)) return undefined;
      signed = write.immediate(nowMs);
    } catch (error) {
      throw new AuditError(`cannot store an audit checkpoint: ${(error as Error).message}`, { cause: error });
    }
    if (!signed) return undefined;
    lastSignedMs = nowMs;
    const written = headWritten.then(() => writeHeadOrThrow(headPath, signed));
    headWritten = written.catch(() => undefined);
    await written;
    return signed;
  };

  const close = (): Promise<void> => {
    closing ??= (async () => {
      try {
        await checkpoint(Date.now(), { force: true });
      } finally {
        closed = true;
        await headWritten;
      }
    })();
    return closing;
  };

  return {
    keyId,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    checkpoint,
    newest,
    verify: () => verifyAuditTrail(db, { publicKey, headPath }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Checkpoint 0: the empty trail (seq 0, the genesis hash), the head file's content until the first real checkpoint. */
function genesisCheckpoint(privateKey: crypto.KeyObject): Checkpoint {
  const fields = { seq: 0, hash: GENESIS_HASH, timeMs: 0, count: 0, keyId: keyFingerprint(crypto.createPublicKey(privateKey)) };
  return { id: 0, ...fields, signature: signCheckpoint(fields, privateKey) };
}

async function writeHeadOrThrow(headPath: string, checkpoint: Checkpoint): Promise<void> {
  try {
    await writeHead(headPath, checkpoint);
  } catch (error) {
    throw new AuditError(`checkpoint ${checkpoint.id} is stored but the head file ${headPath} cannot be written: ${(error as Error).message}`, { cause: error });
  }
}

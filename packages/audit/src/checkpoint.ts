import * as crypto from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { AuditKeyError } from './errors.js';

/**
 * A signed statement that the audit trail's row `seq` had the chain hash `hash` at `timeMs`.
 * Because each row's hash covers every row before it, one checkpoint vouches for rows 1 to `seq`.
 */
export interface Checkpoint {
  /** The checkpoint's number in `audit_checkpoints`: 1 for the first, then consecutive. */
  readonly id: number;
  /** The newest row it covers. */
  readonly seq: number;
  /** That row's chain hash (lowercase hex SHA-256). */
  readonly hash: string;
  /** When it was signed, in ms since the Unix epoch. */
  readonly timeMs: number;
  /** Rows it adds to the previous checkpoint: `seq` minus the previous checkpoint's `seq` (0 before the first). */
  readonly count: number;
  /** The signing key's fingerprint, see {@link keyFingerprint}. */
  readonly keyId: string;
  /** The Ed25519 signature (RFC 8032) of {@link checkpointMessage}, base64. */
  readonly signature: string;
}

/** The fields a checkpoint's signature covers. */
export type SignedFields = Pick<Checkpoint, 'seq' | 'hash' | 'timeMs' | 'count' | 'keyId'>;

/** Names the format of the signed bytes, so that a signature over anything else never verifies as a checkpoint's. */
const MESSAGE_TAG = 'warren.audit.checkpoint.v1';
/** The `format` member of a head file. */
const HEAD_FORMAT = 'warren-audit-head/1';

/**
 * The bytes a checkpoint's signature covers: the UTF-8 of
 * `JSON.stringify(["warren.audit.checkpoint.v1", seq, hash, timeMs, count, keyId])`.
 */
export function checkpointMessage(fields: SignedFields): Buffer {
  return Buffer.from(JSON.stringify([MESSAGE_TAG, fields.seq, fields.hash, fields.timeMs, fields.count, fields.keyId]), 'utf8');
}

/**
 * A public key's fingerprint: the lowercase hex SHA-256 of its DER SubjectPublicKeyInfo (RFC 5280;
 * for Ed25519 keys RFC 8410), the bytes RFC 7469 pins hash.
 */
export function keyFingerprint(publicKey: crypto.KeyObject): string {
  return crypto.createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

/** Signs `fields` with the Ed25519 `privateKey`; returns the base64 signature. */
export function signCheckpoint(fields: SignedFields, privateKey: crypto.KeyObject): string {
  return crypto.sign(null, checkpointMessage(fields), privateKey).toString('base64');
}

/** True when `signature` (base64) is `publicKey`'s Ed25519 signature of `fields`. */
export function checkpointSignatureValid(fields: SignedFields, signature: string, publicKey: crypto.KeyObject): boolean {
  const bytes = Buffer.from(signature, 'base64');
  if (bytes.length !== 64) return false;
  return crypto.verify(null, checkpointMessage(fields), publicKey, bytes);
}

/** Where Warren keeps the signing key and the head file by default: `<stateDir>/audit-signing.key` and `<stateDir>/audit.head`. */
export function auditSigningPaths(stateDir: string): { keyPath: string; headPath: string } {
  return { keyPath: join(stateDir, 'audit-signing.key'), headPath: join(stateDir, 'audit.head') };
}

/** True when a file (or anything else) exists at `path`. */
export function pathExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Reads the Ed25519 private key at `path` (PKCS #8 PEM) for signing. The file must be a regular
 * file, owned by this process's user, with no permission for group or others (0600 or 0400).
 * @throws {AuditKeyError} naming the path when any of that does not hold or it cannot be read.
 */
export function readSigningKey(path: string): crypto.KeyObject {
  let stat;
  try {
    stat = statSync(path);
  } catch (error) {
    throw new AuditKeyError(path, `cannot read the audit signing key ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (!stat.isFile()) throw new AuditKeyError(path, `the audit signing key ${path} is not a regular file`);
  if ((stat.mode & 0o077) !== 0) {
    throw new AuditKeyError(
      path,
      `the audit signing key ${path} has mode 0${(stat.mode & 0o777).toString(8)}: group or others may read or replace it; make it 0600 (chmod 600 ${path})`,
    );
  }
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) {
    throw new AuditKeyError(path, `the audit signing key ${path} belongs to uid ${stat.uid}, not to this process's uid ${uid}`);
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(readFileSync(path));
  } catch (error) {
    throw new AuditKeyError(path, `the audit signing key ${path} is not a PEM private key: ${(error as Error).message}`, { cause: error });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new AuditKeyError(path, `the audit signing key ${path} is an ${key.asymmetricKeyType ?? 'unknown'} key; it must be Ed25519`);
  }
  return key;
}

/** A new Ed25519 private key (in memory; see {@link saveSigningKey}). */
export function generateSigningKey(): crypto.KeyObject {
  return crypto.generateKeyPairSync('ed25519').privateKey;
}

/**
 * Writes `privateKey` to a new file at `path` (PKCS #8 PEM), mode 0600, creating missing folders
 * with mode 0700, and fsyncs the file and its folder. Never overwrites: if the file appeared
 * meanwhile, that one is read and returned instead.
 * @throws {AuditKeyError} if the folder or file cannot be made, or the existing file is refused by {@link readSigningKey}.
 */
export function saveSigningKey(path: string, privateKey: crypto.KeyObject): crypto.KeyObject {
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeDurably(path, pem, 'wx');
    const folder = openSync(dirname(path), 'r');
    try {
      fsyncSync(folder);
    } finally {
      closeSync(folder);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readSigningKey(path);
    throw new AuditKeyError(path, `cannot create the audit signing key ${path}: ${(error as Error).message}`, { cause: error });
  }
  return privateKey;
}

/**
 * Reads the public key in the PEM file at `path` for verifying: a public key (SPKI) or a private
 * key (PKCS #8), whose public half is taken. Its permissions are not checked: verifying only reads.
 * @throws {AuditKeyError} if the file cannot be read or is not an Ed25519 key.
 */
export function readVerifyingKey(path: string): crypto.KeyObject {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (error) {
    throw new AuditKeyError(path, `cannot read the audit key ${path}: ${(error as Error).message}`, { cause: error });
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPublicKey(pem);
  } catch (error) {
    throw new AuditKeyError(path, `${path} holds no PEM public or private key: ${(error as Error).message}`, { cause: error });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new AuditKeyError(path, `the audit key ${path} is an ${key.asymmetricKeyType ?? 'unknown'} key; it must be Ed25519`);
  }
  return key;
}

/**
 * Writes `checkpoint` to the head file at `path` atomically: a 0600 temporary file beside it is
 * written and fsynced, renamed over `path`, and the folder fsynced, so a reader sees the old or
 * the new checkpoint, never a part. The content is one JSON object with `format:
 * "warren-audit-head/1"` and the checkpoint's fields. The I/O runs off the event loop; callers
 * must not run two writes of one path at once.
 * @throws {Error} the system error when the file cannot be written.
 */
export async function writeHead(path: string, checkpoint: Checkpoint): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const { id, seq, hash, timeMs, count, keyId, signature } = checkpoint;
  const text = `${JSON.stringify({ format: HEAD_FORMAT, id, seq, hash, timeMs, count, keyId, signature })}\n`;
  try {
    const file = await fsp.open(temporary, 'w', 0o600);
    try {
      await file.writeFile(text, 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    await fsp.rename(temporary, path);
  } catch (error) {
    await fsp.rm(temporary, { force: true }).catch(() => undefined);
    throw error;
  }
  const folder = await fsp.open(dirname(path), 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}

/** What {@link readHead} found: no file, a checkpoint, or why the file is not one. */
export type HeadRead = { readonly state: 'missing' } | { readonly state: 'read'; readonly checkpoint: Checkpoint } | { readonly state: 'invalid'; readonly reason: string };

/** Reads the head file at `path` (see {@link writeHead}); never throws. */
export function readHead(path: string): HeadRead {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    return { state: 'invalid', reason: `cannot read the head file ${path}: ${(error as Error).message}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { state: 'invalid', reason: `the head file ${path} is not JSON` };
  }
  const checkpoint = asCheckpoint(value, HEAD_FORMAT);
  return typeof checkpoint === 'string' ? { state: 'invalid', reason: `the head file ${path}: ${checkpoint}` } : { state: 'read', checkpoint };
}

/** `value` as a checkpoint (with `format` equal to `format` when given), or what is wrong with it. */
function asCheckpoint(value: unknown, format: string): Checkpoint | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  const v = value as Record<string, unknown>;
  if (v.format !== format) return `format is ${JSON.stringify(v.format)}, expected ${JSON.stringify(format)}`;
  for (const field of ['id', 'seq', 'timeMs', 'count'] as const) {
    const n = v[field];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return `'${field}' must be a whole number ≥ 0`;
  }
  for (const field of ['hash', 'keyId', 'signature'] as const) {
    if (typeof v[field] !== 'string') return `'${field}' must be a string`;
  }
  return {
    id: v.id as number,
    seq: v.seq as number,
    hash: v.hash as string,
    timeMs: v.timeMs as number,
    count: v.count as number,
    keyId: v.keyId as string,
    signature: v.signature as string,
  };
}

/** Writes `data` to a new file at `path` (mode 0600) with `flag`, and fsyncs it before closing. */
function writeDurably(path: string, data: string, flag: 'wx'): void {
  const fd = openSync(path, flag, 0o600);
  try {
    const bytes = Buffer.from(data, 'utf8');
    for (let written = 0; written < bytes.length; ) written += writeSync(fd, bytes, written);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

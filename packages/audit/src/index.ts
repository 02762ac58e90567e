/**
 * @warren/audit: the append-only, hash-chained audit trail. Every decision and state change of the
 * supervisor is one row of the `audit` table; SQLite triggers refuse UPDATE and DELETE, and each
 * row's SHA-256 hash covers its fields and the previous row's hash, so `verify()` finds an edit.
 *
 * ```ts
 * import { openDatabase } from '@warren/store';
 * import { openAudit } from '@warren/audit';
 * const db = openDatabase('var/warren.db');
 * const audit = openAudit(db);
 * audit.append({ actor: 'supervisor', action: 'task.assign', object: 'task:count-lines',
 *   decision: 'allow', details: { agent: 'shell-1', attempt: 1 } });
 * audit.query({ action: 'task.*', order: 'desc', limit: 20 });
 * audit.verify(); // { ok: true, rows: 1 }
 *
 * // Signed checkpoints: an Ed25519 key outside the database vouches for the chain's newest hash,
 * // so that rewriting the chain, deleting rows or cutting the tail is found as well.
 * const signer = await openAuditSigner({ db, audit, ...auditSigningPaths('var') });
 * await signer.checkpoint(Date.now()); // { id: 1, seq: 1, hash, timeMs, count: 1, keyId, signature }
 * verifyAuditTrail(db, auditSigningPaths('var')); // { ok: true, rows: 1, signed: true, checkpoints: { count: 1, ... }, ... }
 * await signer.close();
 * db.close();
 * ```
 */
export { openAudit } from './trail.js';
export type { AuditEntry, AuditRecord, AuditFilter, AuditVerification, AuditTrail, OpenAuditOptions } from './trail.js';
export { AuditError, AuditKeyError, AuditTamperError } from './errors.js';
export { openAuditSigner } from './signer.js';
export type { AuditSigner, OpenAuditSignerOptions } from './signer.js';
export { verifyAuditTrail, verifyAuditTrailAsync } from './verify.js';
export type { SignedVerification, VerifyAuditTrailOptions } from './verify.js';
export { auditSigningPaths, checkpointMessage, keyFingerprint, readVerifyingKey } from './checkpoint.js';
export type { Checkpoint, SignedFields } from './checkpoint.js';
export { canonicalJson, rowHash, GENESIS_HASH } from './canonical.js';
export type { HashedFields } from './canonical.js';

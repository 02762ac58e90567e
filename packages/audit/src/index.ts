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
 * db.close();
 * ```
 */
export { openAudit } from './trail.js';
export type { AuditEntry, AuditRecord, AuditFilter, AuditVerification, AuditTrail, OpenAuditOptions } from './trail.js';
export { AuditError } from './errors.js';
export { canonicalJson, rowHash, GENESIS_HASH } from './canonical.js';
export type { HashedFields } from './canonical.js';

import { WarrenError } from '@warren/core';

/**
 * The audit trail cannot be written or read: an entry is invalid (`field` names it), SQLite refused
 * the write (the cause is the SQLite error), or a stored row cannot be decoded (`seq` names it).
 * Code `WARREN_AUDIT`.
 */
export class AuditError extends WarrenError {
  /** The entry field at fault (`actor`, `details`, ...), when the error is about one. */
  readonly field: string | undefined;
  /** The row at fault, when the error is about a stored row. */
  readonly seq: number | undefined;

  constructor(message: string, options: ErrorOptions & { field?: string; seq?: number } = {}) {
    super('WARREN_AUDIT', message, options);
    this.field = options.field;
    this.seq = options.seq;
  }
}

/**
 * The audit signing key cannot be used: the file is missing while checkpoints signed by it exist,
 * it is readable or writable by group or others, owned by another user, not an Ed25519 key, or
 * cannot be read or created (`path` names it; the cause is the system error). Code `WARREN_AUDIT_KEY`.
 */
export class AuditKeyError extends WarrenError {
  /** The key file at fault. */
  readonly path: string;

  constructor(path: string, message: string, options: ErrorOptions = {}) {
    super('WARREN_AUDIT_KEY', message, options);
    this.path = path;
  }
}

/**
 * The newest part of the audit trail does not match its signed checkpoints or head file, found when
 * a signer opens: rows or checkpoints were removed or rewritten (`firstBadSeq` names the first row
 * that cannot be vouched for, when one can be named). Run `warren audit verify` for the whole trail.
 * Code `WARREN_AUDIT_TAMPERED`.
 */
export class AuditTamperError extends WarrenError {
  readonly firstBadSeq: number | undefined;

  constructor(message: string, options: ErrorOptions & { firstBadSeq?: number } = {}) {
    super('WARREN_AUDIT_TAMPERED', message, options);
    this.firstBadSeq = options.firstBadSeq;
  }
}

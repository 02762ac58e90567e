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

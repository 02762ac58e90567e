import type { WarrenEvent } from './events.js';

/** What {@link inputRejected} records: a file Warren refused, and where and why. */
export interface RejectedInput {
  /** What kind of input: `task` (a task file held until it parses) or `template` (an agent template left out). */
  readonly kind: 'task' | 'template' | 'provider';
  /** The file, relative to the board or repository root as it is shown in messages. */
  readonly path: string;
  /** 1-based line at fault, 0 when the problem is the whole file. */
  readonly line: number;
  /** The message, as logged (`path:line: reason`). */
  readonly message: string;
}

/**
 * The `input.rejected` event for an input Warren refused: actor `supervisor`, object
 * `file:<path>`, details `kind`, `path`, `line`, `message`. Callers record it once per distinct
 * problem (not on every re-read of an unchanged file).
 */
export function inputRejected(input: RejectedInput): WarrenEvent<'input.rejected'> {
  return {
    actor: 'supervisor',
    action: 'input.rejected',
    object: `file:${input.path}`,
    details: { kind: input.kind, path: input.path, line: input.line, message: input.message },
  };
}

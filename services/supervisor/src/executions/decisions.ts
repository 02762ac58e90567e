import { isTerminal, TaskState, type TaskRow } from '@warren/registry';
import { retryDelayMs, type RetryPolicy } from '../templates.js';

/** How an execution ended, as settlement sees it: a runner's outcome, or `lost` (its agent or the supervisor died). */
export type ExecutionOutcome = 'succeeded' | 'failed' | 'timed_out' | 'cancelled' | 'lost';

/** What an ended execution means for its task; see {@link decideSettlement}. */
export type Settlement =
  | { readonly kind: 'none' }
  | { readonly kind: 'succeeded' }
  | { readonly kind: 'retry'; readonly delayMs: number; readonly maxAttempts: number }
  | { readonly kind: 'final'; readonly state: TaskState; readonly maxAttempts: number };

/** The inputs of {@link decideSettlement}. */
export interface SettlementInput {
  /** The task's row now, if Warren knows the task. */
  readonly row: Pick<TaskRow, 'attempt' | 'state'> | undefined;
  /** The attempt (1-based) that ended. */
  readonly attempt: number;
  readonly outcome: ExecutionOutcome;
  /** The template's retry policy for `failed` and `timed_out`; none: the first failure is final. */
  readonly retry: RetryPolicy | undefined;
  /** Attempts allowed when executions are lost (`--max-attempts`). */
  readonly maxLostAttempts: number;
}

/**
 * Decides what an ended execution means for its task: success; a retry (back to ready after the
 * template's backoff while attempts remain: `failed` and `timed_out` use the template's retry
 * policy, `lost` allows up to `maxLostAttempts`, `cancelled` is never retried); or a final state.
 * A result for an attempt that is no longer the task's latest, or for a task that already ended or
 * waits ready, changes nothing (`none`).
 */
export function decideSettlement(input: SettlementInput): Settlement {
  const { row, attempt, outcome, retry } = input;
  if (!row || row.attempt !== attempt || isTerminal(row.state) || row.state === TaskState.ready) return { kind: 'none' };
  if (outcome === 'succeeded') return { kind: 'succeeded' };
  const maxAttempts = outcome === 'lost' ? input.maxLostAttempts : outcome === 'cancelled' ? attempt : (retry?.maximumAttempts ?? 1);
  if (attempt < maxAttempts) return { kind: 'retry', delayMs: retry ? retryDelayMs(retry, attempt) : 0, maxAttempts };
  const state = outcome === 'timed_out' ? TaskState.timedOut : outcome === 'cancelled' ? TaskState.cancelled : TaskState.failed;
  return { kind: 'final', state, maxAttempts };
}

/** A result as the runner reported it (the fields {@link classifyResult} reads). */
export interface ReportedResult {
  readonly agent: string;
  readonly outcome: 'succeeded' | 'failed' | 'timed_out' | 'cancelled';
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly summary: string;
}

/** What the supervisor knew of the result's agent when the result arrived. */
export interface ResultContext {
  /** Why the supervisor is stopping the agent (its kind, or the watchdog's finding in words); undefined if it is not. */
  readonly stopping: string | undefined;
  /** Whether an operator asked for this execution to be cancelled. */
  readonly cancelledByOperator: boolean;
  /** A limit the agent hit (out of memory, process limit) that explains a failure better than its output. */
  readonly failure: string | undefined;
  /** The failure the agent's open tasks get because of how it was stopped (its process limit), if any. */
  readonly failTasks: string | undefined;
}

/** The maximum length of a task's reason, in characters. */
export const REASON_MAX_CHARS = 500;

/**
 * Classifies a runner's result for settlement. A runner cancels its tasks when its agent is stopped:
 * unless an operator asked for that cancel, the execution was interrupted (settled as `lost`, so
 * the task runs again), and so was a task killed by a signal while its agent was being stopped. A
 * limit the agent hit makes the outcome `failed` with that limit as the reason.
 * @returns the outcome to settle and the task's reason (one line, at most {@link REASON_MAX_CHARS}).
 */
export function classifyResult(r: ReportedResult, context: ResultContext): { outcome: ExecutionOutcome; reason: string } {
  const succeeded = r.outcome === 'succeeded';
  const { failure, stopping } = context;
  const interrupted =
    failure === undefined &&
    ((r.outcome === 'cancelled' && !context.cancelledByOperator) || (stopping !== undefined && r.outcome !== 'succeeded' && r.signal !== null));
  const reason = succeeded
    ? r.summary.trim() || 'succeeded'
    : interrupted
      ? `interrupted: agent ${r.agent} was stopped${stopping ? ` (${stopping})` : ''}`
      : failure !== undefined && failure === context.failTasks
        ? `failed: ${failure}`
        : `${failure ? 'failed' : r.outcome}${r.exitCode === null ? '' : ` (exit ${r.exitCode})`}${r.signal ? ` (${r.signal})` : ''}: ${failure ?? r.summary.trim()}`;
  return { outcome: interrupted ? 'lost' : failure ? 'failed' : r.outcome, reason: oneLine(reason, REASON_MAX_CHARS) };
}

/** `text` on one line (runs of white space made one space), cut to `max` characters with an ellipsis. */
export function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

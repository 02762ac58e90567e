import { AgentSpecError } from './errors.js';
import { requireMs, requireTime } from './validate.js';

/** Consecutive spawn failures after which a template is not tried again in this run. */
export const MAX_SPAWN_FAILURES = 5;
/** The longest wait between two attempts to start agents of a failing template, ms. */
export const MAX_SPAWN_BACKOFF_MS = 60_000;

/** A template's spawn backoff: consecutive failed starts, why the last failed, when to try again. */
export interface SpawnBackoff {
  /** Consecutive attempts that failed (agents started side by side and failing together are one). */
  readonly failures: number;
  /** Why the last agent could not start, in words. */
  readonly reason: string;
  /** When a start may be tried again, ms since the epoch. */
  readonly nextAttemptMs: number;
}

/** What `decideSpawnFailure` decided. */
export interface SpawnFailureDecision {
  /** The template's backoff from now on. */
  readonly backoff: SpawnBackoff;
  /** True when the failure belongs to the attempt already counted (the template was waiting): not counted again, the wait not lengthened. */
  readonly sameAttempt: boolean;
  /** The wait after `backoff.failures` failures, ms: min(restartBackoffMs × 2^(failures−1), 60 s). */
  readonly delayMs: number;
  /** True once `MAX_SPAWN_FAILURES` attempts failed in a row: the template is failed for this run. */
  readonly givenUp: boolean;
}

/**
 * Counts an agent of a template that could not start or died before it was ready, and backs the
 * template off exponentially: the next start waits min(`restartBackoffMs` × 2^(n−1), 60 s) after
 * the n-th failed attempt in a row. Agents started side by side that fail while the template is
 * already waiting (`nowMs` before `nextAttemptMs`) belong to the same attempt: the count and the
 * wait stay, only the reason is the newest. After `MAX_SPAWN_FAILURES` the template is given up.
 * A successful start ends the backoff (the caller drops it). Pure.
 *
 * @param previous the template's backoff, or undefined when its last start succeeded.
 * @throws {AgentSpecError} `WARREN_AGENT_SPEC` when `nowMs` is not finite or `restartBackoffMs` is
 *   not a non-negative number of ms.
 */
export function decideSpawnFailure(
  previous: SpawnBackoff | undefined,
  failure: { reason: string; nowMs: number; restartBackoffMs: number },
): SpawnFailureDecision {
  const nowMs = requireTime('failure.nowMs', failure.nowMs, undefined);
  const restartBackoffMs = requireMs('failure.restartBackoffMs', failure.restartBackoffMs);
  if (typeof failure.reason !== 'string') throw new AgentSpecError('failure.reason', failure.reason, undefined, 'expected a string');
  const count = previous?.failures ?? 0;
  const sameAttempt = count > 0 && nowMs < (previous?.nextAttemptMs ?? 0);
  const failures = sameAttempt ? count : count + 1;
  const delayMs = Math.min(restartBackoffMs * 2 ** (failures - 1), MAX_SPAWN_BACKOFF_MS);
  const nextAttemptMs = sameAttempt ? (previous?.nextAttemptMs ?? 0) : nowMs + delayMs;
  return {
    backoff: { failures, reason: failure.reason, nextAttemptMs },
    sameAttempt,
    delayMs,
    givenUp: failures >= MAX_SPAWN_FAILURES,
  };
}

/**
 * Whether a template with this backoff may start an agent at `nowMs`: it has none, or it has not
 * been given up and its wait is over. Pure.
 */
export function spawnAllowed(backoff: SpawnBackoff | undefined, nowMs: number): boolean {
  return backoff === undefined || backoff.failures === 0 || (backoff.failures < MAX_SPAWN_FAILURES && nowMs >= backoff.nextAttemptMs);
}

/** Whether the template was given up for this run (`MAX_SPAWN_FAILURES` failed attempts in a row). Pure. */
export function spawnGivenUp(backoff: SpawnBackoff | undefined): boolean {
  return backoff !== undefined && backoff.failures >= MAX_SPAWN_FAILURES;
}

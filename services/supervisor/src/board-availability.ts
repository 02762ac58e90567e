import { existsSync } from 'node:fs';
import type { Logger } from '@warren/core';

/** First wait before the board folder is looked for again after it went missing, in ms. */
const FIRST_RETRY_MS = 200;
/** Longest wait between two looks for a missing board folder, in ms. */
const MAX_RETRY_MS = 10_000;

/**
 * Whether the board folder is there, for the supervisor's board reads and writes. When it goes
 * missing (deleted, renamed, an unmounted share) the supervisor keeps its last good board and its
 * pending writes: one warn line says so, writes wait with exponential backoff (200 ms doubling to
 * 10 s) instead of failing with a stack trace on every tick, and one info line says when the
 * folder is back.
 */
export class BoardAvailability {
  private missingSinceMs: number | undefined;
  private nextLookMs = 0;
  private waitMs = FIRST_RETRY_MS;

  constructor(
    private readonly boardDir: string,
    private readonly log: Logger,
  ) {}

  /** True while the folder is known to be missing. */
  get missing(): boolean {
    return this.missingSinceMs !== undefined;
  }

  /**
   * Called when a board read or write failed: if the board folder is gone, notes it (the warn line
   * the first time) and returns true, so the caller reports nothing more; false for any other failure.
   */
  noteFailure(nowMs: number): boolean {
    if (existsSync(this.boardDir)) return false;
    if (this.missingSinceMs === undefined) {
      this.missingSinceMs = nowMs;
      this.waitMs = FIRST_RETRY_MS;
      this.log.warn({ board: this.boardDir }, 'the board folder is missing; keeping the last good board, board writes wait until it is back');
    }
    this.nextLookMs = nowMs + this.waitMs;
    this.waitMs = Math.min(this.waitMs * 2, MAX_RETRY_MS);
    return true;
  }

  /**
   * Whether board writes may be tried now: always while the folder is there; while it is missing,
   * only once the backoff is over and the folder is back (then the info line, and the backoff resets).
   */
  mayWrite(nowMs: number): boolean {
    if (this.missingSinceMs === undefined) return true;
    if (nowMs < this.nextLookMs) return false;
    if (!existsSync(this.boardDir)) {
      this.nextLookMs = nowMs + this.waitMs;
      this.waitMs = Math.min(this.waitMs * 2, MAX_RETRY_MS);
      return false;
    }
    this.noteBack(nowMs);
    return true;
  }

  /** Called when the board was read: if it had gone missing, says it is back. */
  noteBack(nowMs: number): void {
    if (this.missingSinceMs === undefined) return;
    this.log.info({ board: this.boardDir, missingMs: nowMs - this.missingSinceMs }, 'the board folder is back');
    this.missingSinceMs = undefined;
    this.waitMs = FIRST_RETRY_MS;
    this.nextLookMs = 0;
  }
}

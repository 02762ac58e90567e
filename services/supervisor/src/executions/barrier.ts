import { commitWithoutSync, syncWal, type SqliteDatabase } from '@warren/store';

/**
 * The tick's durability barrier: one fsync of the state database's WAL for the commits made since
 * the last pass (the tick passes it once, after its inbox and its plan), and every effect
 * the outside world sees of those commits held until it.
 *
 * A tick's writes (the inbox's results and starts, the plan's assignments) commit with
 * {@link commit} (`synchronous = NORMAL`: written to the WAL, no fsync). What they allow (a result's
 * broker message acknowledged, an assignment published, a card written, an event handed to NATS
 * or the API's stream) is queued with {@link after} or runs in a stage after {@link pass}, which
 * syncs the WAL once (`fdatasync` in the thread pool, so the event loop keeps working while the
 * disk does) and then runs the queued effects in order. A supervisor killed before the barrier
 * has done nothing anyone heard about (a killed process loses no written frame; a power loss may
 * lose the commits, and nobody had heard of them); killed after it, the commits are on disk and
 * the effects not yet run are done again by the next run (an unacknowledged result is delivered
 * again and found applied, a pending assignment is published again under the same message id, a
 * pending card is written).
 *
 * Follows SQLite's WAL durability rules (https://www.sqlite.org/wal.html, "Durability";
 * https://www.sqlite.org/pragma.html#pragma_synchronous): frames are a prefix after a power loss.
 */
export class CommitBarrier {
  private readonly effects: (() => void)[] = [];
  private unsynced = false;

  /**
   * @param db the state database.
   * @param hold holds what the event bus would publish until {@link pass} (returns the release).
   * @param sync makes the commits so far durable (default {@link syncWal}; tests count calls).
   */
  constructor(
    private readonly db: SqliteDatabase,
    private readonly hold: () => () => void = () => () => undefined,
    private readonly sync: (db: SqliteDatabase) => Promise<void> = syncWal,
  ) {}

  /**
   * Commits `work`'s transactions without an fsync; their effects must wait for {@link pass}. A
   * commit that changed no row (SQLite's `total_changes()`) leaves nothing for the barrier to sync.
   * @returns what `work` returns.
   */
  commit<T>(work: () => T): T {
    const release = this.hold();
    const before = this.changes();
    try {
      return commitWithoutSync(this.db, work);
    } finally {
      if (this.changes() !== before) {
        this.unsynced = true;
        this.releases.push(release);
      } else {
        release();
      }
    }
  }

  /** Queues `effect` (a broker ack, a callback) to run once the commits made so far are durable. */
  after(effect: () => void): void {
    this.effects.push(effect);
  }

  /** True when commits or effects wait for {@link pass}. */
  get waiting(): boolean {
    return this.unsynced || this.effects.length > 0;
  }

  /**
   * Makes the commits so far durable (one fsync, when any was made since the last pass), then
   * runs the effects queued before the call, in order. Commits and effects that arrive meanwhile
   * wait for the next pass.
   * @param crash called between the fsync and the effects when there are effects (fault injection).
   * @throws the sync's error (the effects are then not run: the supervisor must stop, as on a failed commit).
   */
  async pass(crash?: (stage: 'before' | 'after') => void): Promise<void> {
    if (!this.waiting) return;
    const due = this.effects.splice(0);
    const releases = this.releases.splice(0);
    if (this.unsynced) {
      this.unsynced = false;
      if (due.length > 0) crash?.('before');
      await this.sync(this.db);
    }
    if (due.length > 0) crash?.('after');
    for (const release of releases) release();
    for (const effect of due) effect();
  }

  /** Rows changed on the connection so far (SQLite `total_changes()`). */
  private changes(): number {
    const statement = (this.totalChanges ??= this.db.prepare<[], { n: number }>('SELECT total_changes() AS n'));
    return statement.get()?.n ?? 0;
  }

  /** The event holds of commits not yet synced. */
  private readonly releases: (() => void)[] = [];
  private totalChanges: { get(): { n: number } | undefined } | undefined;
}

/**
 * What one broker connection knows of each agent's queue on the server, so that requests whose
 * answer it already knows are not sent: purging an assignment subject it saw empty and published
 * nothing to since, or deleting an inbox consumer it deleted itself and has not made again.
 *
 * Everything here is in memory and starts unknown: a new process (after a crash), a reconnect
 * (the server may have been replaced) or any doubt sends the request as before.
 */
export class AgentLedger {
  /** Assignment publishes started on this connection, by agent (a generation: only grows). */
  private readonly published = new Map<string, number>();
  /** Assignment publishes started and not yet settled, by agent. */
  private readonly inFlight = new Map<string, number>();
  /** Agents whose assignment subject held nothing at generation `published.get(agent)`, with that generation. */
  private readonly emptyAt = new Map<string, number>();
  /** Agents whose inbox consumer this connection deleted (or found missing) and has not made since. */
  private readonly inboxGone = new Set<string>();
  /** Inbox consumers made (or about to be) on this connection, by agent (a generation: only grows). */
  private readonly inboxMakes = new Map<string, number>();
  /** Assignment consumers kept for the next agent of their name, by agent, with the {@link epoch} they were kept in. */
  private readonly kept = new Map<string, number>();
  /** Connections lost so far: a consumer kept in an earlier epoch may have been behind a server that lost its stream's tail. */
  private epoch = 0;

  /**
   * Notes an assignment publish to `agent` that starts now; call the returned function once it has
   * settled (stored or failed). A publish that failed may still have been stored, so either way
   * the subject is no longer known empty.
   */
  publishing(agent: string): () => void {
    this.published.set(agent, (this.published.get(agent) ?? 0) + 1);
    this.inFlight.set(agent, (this.inFlight.get(agent) ?? 0) + 1);
    this.emptyAt.delete(agent);
    let settled = false;
    return () => {
      if (settled) return;
      settled = true;
      const left = (this.inFlight.get(agent) ?? 1) - 1;
      if (left > 0) this.inFlight.set(agent, left);
      else this.inFlight.delete(agent);
    };
  }

  /**
   * A mark to take before a request that will show `agent`'s assignment subject empty (a purge, a
   * consumer with nothing pending): undefined while a publish to it is in flight (it may land after
   * the request's answer).
   */
  mark(agent: string): number | undefined {
    return this.inFlight.has(agent) ? undefined : (this.published.get(agent) ?? 0);
  }

  /**
   * Records that `agent`'s assignment subject held nothing when a request that started at `mark`
   * (from {@link mark}) was answered; ignored when a publish to it started since.
   */
  sawEmpty(agent: string, mark: number | undefined): void {
    if (mark === undefined || this.inFlight.has(agent) || (this.published.get(agent) ?? 0) !== mark) return;
    this.emptyAt.set(agent, mark);
  }

  /** Whether `agent`'s assignment subject is known to hold nothing (seen empty, no publish since). */
  knownEmpty(agent: string): boolean {
    const at = this.emptyAt.get(agent);
    return at !== undefined && !this.inFlight.has(agent) && (this.published.get(agent) ?? 0) === at;
  }

  /** A mark to take before deleting `agent`'s inbox consumer, for {@link inboxDeleted}. */
  inboxMark(agent: string): number {
    return this.inboxMakes.get(agent) ?? 0;
  }

  /**
   * Records that `agent`'s inbox consumer does not exist (a delete that started at `mark` was
   * answered: deleted, or not found); ignored when this connection made it again since.
   */
  inboxDeleted(agent: string, mark: number): void {
    if ((this.inboxMakes.get(agent) ?? 0) === mark) this.inboxGone.add(agent);
  }

  /** Records that `agent`'s inbox consumer may exist (this connection is about to make it). */
  inboxMade(agent: string): void {
    this.inboxMakes.set(agent, (this.inboxMakes.get(agent) ?? 0) + 1);
    this.inboxGone.delete(agent);
  }

  /** Whether `agent`'s inbox consumer is known not to exist. */
  inboxKnownGone(agent: string): boolean {
    return this.inboxGone.has(agent);
  }

  /** Records that `agent`'s assignment consumer was left in place, idle, for the next agent of its name. */
  keep(agent: string): void {
    this.kept.set(agent, this.epoch);
  }

  /**
   * Takes `agent`'s kept consumer back (its agent starts again). @returns `stale` when it was kept
   * before the connection was lost (the server may have lost its stream's tail since, leaving the
   * consumer's delivered sequence ahead of new messages: it must be made again), `kept` when kept
   * since, `unknown` when this connection kept none.
   */
  takeKept(agent: string): 'kept' | 'stale' | 'unknown' {
    const at = this.kept.get(agent);
    this.kept.delete(agent);
    return at === undefined ? 'unknown' : at === this.epoch ? 'kept' : 'stale';
  }

  /** Takes back every kept consumer (the connection closes: no later agent takes them on through it). @returns their agents. */
  takeAllKept(): string[] {
    const agents = [...this.kept.keys()];
    this.kept.clear();
    return agents;
  }

  /** Forgets what the server held (the connection was lost: the server may have been replaced or changed meanwhile). */
  forget(): void {
    this.epoch += 1;
    this.emptyAt.clear();
    this.inboxGone.clear();
  }
}

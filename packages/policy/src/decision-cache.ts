/** Default of {@link DecisionCache.maxEntries}: 10,000 decisions. */
export const DEFAULT_MAX_CACHED_DECISIONS = 10_000;

/**
 * Requests whose `sub`, `obj` and `act` together are longer than this many UTF-16 code units are
 * decided without being cached, so one entry never holds more than about 1 KiB of key.
 */
export const MAX_CACHED_REQUEST_LENGTH = 512;

/**
 * Casbin's answers to whole requests `(sub, obj, act)`, kept until the policy changes: a decision
 * (`T = boolean`) or a decision with the rule that made it.
 *
 * Bounded: at most `maxEntries` decisions, each keyed by a string of at most
 * {@link MAX_CACHED_REQUEST_LENGTH} UTF-16 code units plus a short length prefix; when full, the
 * entry stored first is dropped (FIFO: a hit does not renew an entry, so a hit costs one Map
 * lookup). With the default 10,000 entries that is at most about 13 MiB (1 KiB of key and ~0.3 KiB
 * of Map slot and string header each); 10,000 requests of about 50 characters measured 2.9 MiB of
 * heap on Node 20. The owner calls {@link clear} on every policy change (reload), or
 * {@link deleteSubjects} when a change can alter only some subjects' decisions (a role added or
 * removed).
 */
export class DecisionCache<T = boolean> {
  private readonly decisions = new Map<string, T>();

  /** @param maxEntries the most decisions kept, an integer ≥ 0 (checked by the caller); 0 keeps none. */
  constructor(readonly maxEntries: number = DEFAULT_MAX_CACHED_DECISIONS) {}

  /** The number of decisions held, at most {@link maxEntries}. */
  get size(): number {
    return this.decisions.size;
  }

  /** The cached decision of `(sub, obj, act)`, or undefined when there is none. */
  get(sub: string, obj: string, act: string): T | undefined {
    return this.decisions.get(requestKey(sub, obj, act));
  }

  /**
   * Caches `allowed` as the decision of `(sub, obj, act)`, dropping the oldest entry when full.
   * A request longer than {@link MAX_CACHED_REQUEST_LENGTH} in all is not cached.
   */
  set(sub: string, obj: string, act: string, allowed: T): void {
    if (this.maxEntries === 0 || sub.length + obj.length + act.length > MAX_CACHED_REQUEST_LENGTH) return;
    const key = requestKey(sub, obj, act);
    if (!this.decisions.has(key) && this.decisions.size >= this.maxEntries) {
      const oldest = this.decisions.keys().next();
      if (oldest.done !== true) this.decisions.delete(oldest.value);
    }
    this.decisions.set(key, allowed);
  }

  /** Forgets every decision; called whenever the policy changes. */
  clear(): void {
    this.decisions.clear();
  }

  /**
   * Forgets the decisions whose request's subject `affected` picks (asked once per distinct
   * subject held): O(entries held).
   */
  deleteSubjects(affected: (sub: string) => boolean): void {
    const verdicts = new Map<string, boolean>();
    for (const key of this.decisions.keys()) {
      const sub = subjectOf(key);
      let verdict = verdicts.get(sub);
      if (verdict === undefined) verdicts.set(sub, (verdict = affected(sub)));
      if (verdict) this.decisions.delete(key);
    }
  }
}

/** The subject of a {@link requestKey}. */
function subjectOf(key: string): string {
  const colon = key.indexOf(':');
  const subLength = Number(key.slice(0, colon));
  const start = key.indexOf(':', colon + 1) + 1;
  return key.slice(start, start + subLength);
}

/**
 * One string per request, distinct for distinct requests whatever characters they hold: the
 * lengths of `sub` and `obj` come first, so (`a,b`, `c`) and (`a`, `b,c`) cannot collide.
 */
function requestKey(sub: string, obj: string, act: string): string {
  return `${sub.length}:${obj.length}:${sub}${obj}${act}`;
}

import type { AgentInstance, AgentUsage } from '@warren/runtime';

/**
 * Cgroup readings taken in one tick, kept for the next reader of the same agent in that tick: a
 * result's reading (taken for its OOM kills) serves as the watchdog's reading of that agent when
 * the watchdog reads it in the same tick, instead of five more `pread`s.
 */
export class TickReadings {
  private readonly readings = new Map<string, { readonly instance: AgentInstance; readonly atMs: number; readonly usage: AgentUsage }>();

  /** Keeps `usage`, the reading of `instance` of `agent` taken in the tick of `nowMs` (ms since the epoch). */
  put(agent: string, instance: AgentInstance, nowMs: number, usage: AgentUsage): void {
    this.readings.set(agent, { instance, atMs: nowMs, usage });
  }

  /**
   * The reading of `instance` of `agent` kept for the tick of `nowMs`, once (it is forgotten), or
   * undefined when none was taken in that tick or it was of another instance.
   */
  take(agent: string, instance: AgentInstance, nowMs: number): AgentUsage | undefined {
    const reading = this.readings.get(agent);
    if (reading === undefined) return undefined;
    this.readings.delete(agent);
    return reading.instance === instance && reading.atMs === nowMs ? reading.usage : undefined;
  }

  /** Forgets every reading kept (at the end of the tick's last reader). */
  clear(): void {
    this.readings.clear();
  }

  /** How many readings are kept. */
  get size(): number {
    return this.readings.size;
  }
}

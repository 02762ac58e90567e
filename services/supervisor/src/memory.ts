import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { WarrenError, type Logger } from '@warren/core';

/**
 * Giving back the heap a burst of work left committed.
 *
 * Starting hundreds of agents at once makes garbage faster than V8 collects it: its old space
 * grows to several times what stays live (1,000 agents: 110–135 MB committed against ~70 MB live)
 * and its young generation to its largest size (two 16 MB semi-spaces). Nothing at rest gives that
 * back: V8's memory reducer only starts once the process allocates less than about 1 MB/s, and a
 * supervisor of 1,000 idle agents allocates more (their heartbeats and the tick), so the process
 * keeps the start's peak for minutes. Once a burst has settled, this module asks V8 once for the
 * collection it makes on a low-memory notification (`Isolate::LowMemoryNotification`: full
 * collections that compact the old space and shrink the young generation), which it reaches
 * through the inspector protocol's `HeapProfiler.collectGarbage` in this process (no flag, no
 * port). Measured with 500 agents: heap 106 → 57 MB committed, RSS 175 → 125 MiB, 211 ms of CPU.
 */

const MIB = 2 ** 20;

/** The V8 heap of this process, bytes: committed (pages held by all spaces) and used by objects, live or not yet collected. */
export interface HeapReading {
  readonly committedBytes: number;
  readonly usedBytes: number;
}

/** One look at the process, taken by {@link MemoryWatch} at each check. */
export interface MemorySample {
  /** When the sample was taken, ms (any monotonic origin: only differences are used). */
  readonly nowMs: number;
  /** Agents being started: spawned, or started and not yet ready. */
  readonly starting: number;
  /** Share of the time since the previous sample the event loop spent running code, 0 to 1 (`performance.eventLoopUtilization`). */
  readonly loopUtilization: number;
  readonly heap: HeapReading;
}

/** When {@link CompactionPolicy} asks for a compaction. */
export interface CompactionPolicyOptions {
  /** Growth of the committed heap since the last compaction (or the smallest size seen since) that makes one worth it, bytes. */
  readonly growthBytes: number;
  /** How long nothing may start and the event loop stay under {@link maxLoopUtilization} before the burst counts as settled, ms. */
  readonly quietMs: number;
  /** Above this share of its time running code (0 to 1), the event loop is busy. */
  readonly maxLoopUtilization: number;
  /** Least time between two compactions, ms. */
  readonly minIntervalMs: number;
}

/**
 * The defaults: 32 MiB of growth (a handful of agents starting leaves a few MiB; 300 agents grow
 * the heap by ~70 MB, 1,000 by ~110 MB); 1 s with nothing starting and the loop at most 30 % busy
 * (a supervisor of 1,000 idle agents runs code 3–5 % of the time, 10–20 % in the seconds after the
 * last agent's hello; planning and results of a busy board keep it far above); one compaction in
 * 30 s at most. One compaction costs a pause of 100–600 ms on the event loop (two full
 * collections of a 50–75 MB live heap; the longer under a loaded machine): affordable once per
 * burst on a supervisor that has had nothing to do for a second.
 */
export const DEFAULT_COMPACTION_POLICY: CompactionPolicyOptions = {
  growthBytes: 32 * MIB,
  quietMs: 1_000,
  maxLoopUtilization: 0.3,
  minIntervalMs: 30_000,
};

/**
 * Decides, from samples (see {@link MemorySample}), when to compact the heap: after it grew by
 * {@link CompactionPolicyOptions.growthBytes} since the size the last compaction left (or the
 * smallest committed size seen since, when V8 gave memory back by itself; at first, the first
 * sample's), once for {@link CompactionPolicyOptions.quietMs} no agent was starting and the event
 * loop was never busy, and not within {@link CompactionPolicyOptions.minIntervalMs} of the last
 * compaction. Pure: time comes only from the samples.
 */
export class CompactionPolicy {
  private baselineBytes: number | undefined;
  /** Since when (ms) nothing started and the loop was idle, or undefined while busy. */
  private quietSinceMs: number | undefined;
  private lastCompactionMs: number | undefined;

  constructor(private readonly options: CompactionPolicyOptions = DEFAULT_COMPACTION_POLICY) {}

  /** The committed size growth is counted from, bytes (undefined before the first sample). */
  get baseline(): number | undefined {
    return this.baselineBytes;
  }

  /** Takes one sample. @returns whether to compact now (then call {@link compacted} with the result). */
  observe(sample: MemorySample): boolean {
    const { options } = this;
    const committed = sample.heap.committedBytes;
    if (this.baselineBytes === undefined || committed < this.baselineBytes) this.baselineBytes = committed;
    if (sample.starting > 0 || sample.loopUtilization > options.maxLoopUtilization) {
      this.quietSinceMs = undefined;
      return false;
    }
    // Quiet from this sample on: the count of starting agents says nothing of the time before it.
    this.quietSinceMs ??= sample.nowMs;
    if (sample.nowMs - this.quietSinceMs < options.quietMs) return false;
    if (this.lastCompactionMs !== undefined && sample.nowMs - this.lastCompactionMs < options.minIntervalMs) return false;
    return committed - this.baselineBytes >= options.growthBytes;
  }

  /** Records a compaction that ended at `nowMs` leaving `after`: growth counts from there. */
  compacted(after: HeapReading, nowMs: number): void {
    this.baselineBytes = after.committedBytes;
    this.lastCompactionMs = nowMs;
    this.quietSinceMs = undefined;
  }
}

/**
 * The compaction policy `env.WARREN_HEAP_COMPACTION` asks for: unset, empty or `off`, none (no
 * compaction: the default, since with 1,000 idle agents it lowered RSS at rest 218 → 157 MiB but
 * raised the CPU at rest 4.4 → 5.8 % of a core in the minute after, V8's helper threads marking a
 * heap with less headroom); `on`, {@link DEFAULT_COMPACTION_POLICY}; a number, the defaults with
 * that growth (MiB, above 0).
 * @throws WarrenError `WARREN_USAGE` for anything else.
 */
export function compactionPolicyFromEnv(env: Readonly<Record<string, string | undefined>>): CompactionPolicyOptions | null {
  const value = env.WARREN_HEAP_COMPACTION?.trim();
  if (value === undefined || value === '' || value === 'off') return null;
  if (value === 'on') return DEFAULT_COMPACTION_POLICY;
  const mib = Number(value);
  if (!Number.isFinite(mib) || mib <= 0) throw new WarrenError('WARREN_USAGE', `WARREN_HEAP_COMPACTION must be 'off', 'on' or a growth in MiB above 0, not '${value}'`);
  return { ...DEFAULT_COMPACTION_POLICY, growthBytes: mib * MIB };
}

/** Reads this process's V8 heap (`v8.getHeapStatistics`: `total_physical_size`, `used_heap_size`). */
export function readHeap(): HeapReading {
  const stats = getHeapStatistics();
  return { committedBytes: stats.total_physical_size, usedBytes: stats.used_heap_size };
}

/**
 * Asks V8 to collect all it can and give back what it holds beyond that: the inspector protocol's
 * `HeapProfiler.collectGarbage` on a session with this process (`node:inspector`), which V8 runs as
 * a low-memory notification (at least two full, compacting collections; the young generation
 * shrunk to its least; compilation caches dropped). Resolves once the collection is over.
 * @throws when the inspector is not available (Node built without it) or the protocol call fails.
 */
export async function compactHeap(): Promise<void> {
  const { Session } = await import('node:inspector');
  const session = new Session();
  session.connect();
  try {
    await new Promise<void>((resolve, reject) => session.post('HeapProfiler.collectGarbage', (error) => (error ? reject(error) : resolve())));
  } finally {
    // A session disconnected from within a callback of its own post leaves the process hung (Node
    // 20): disconnect once that callback has returned.
    await new Promise((resolve) => setImmediate(resolve));
    session.disconnect();
  }
}

/** What {@link MemoryWatch} reads and does; each has a default reading or acting on this process, replaced by tests. */
export interface MemoryWatchDeps {
  /** Agents being started now (see {@link MemorySample.starting}). */
  readonly starting: () => number;
  readonly log: Logger;
  /** The clock, ms. Default `performance.now()`. */
  readonly now?: () => number;
  /** Default {@link readHeap}. */
  readonly readHeap?: () => HeapReading;
  /** Event loop utilization since the previous call, 0 to 1. Default from `performance.eventLoopUtilization()`. */
  readonly loopUtilization?: () => number;
  /** Default {@link compactHeap}. */
  readonly compact?: () => Promise<void>;
  readonly policy?: CompactionPolicyOptions;
}

/** How often {@link MemoryWatch.start} samples the process, ms. */
export const MEMORY_CHECK_EVERY_MS = 500;

/** Event loop utilization between successive calls of the function it returns, 0 to 1. */
function loopUtilizationMeter(): () => number {
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(now, last);
    last = now;
    return delta.utilization;
  };
}

/**
 * Samples the process every {@link MEMORY_CHECK_EVERY_MS} and compacts its heap when
 * {@link CompactionPolicy} says a burst of work has settled (see the module's comment). A failed
 * compaction is logged and ends the watch.
 */
export class MemoryWatch {
  private readonly policy: CompactionPolicy;
  private readonly now: () => number;
  private readonly readHeap: () => HeapReading;
  private readonly loopUtilization: () => number;
  private readonly compact: () => Promise<void>;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private failed = false;
  /** Compactions done. */
  compactions = 0;

  constructor(private readonly deps: MemoryWatchDeps) {
    this.policy = new CompactionPolicy(deps.policy);
    this.now = deps.now ?? (() => performance.now());
    this.readHeap = deps.readHeap ?? readHeap;
    this.loopUtilization = deps.loopUtilization ?? loopUtilizationMeter();
    this.compact = deps.compact ?? compactHeap;
  }

  /** Samples every {@link MEMORY_CHECK_EVERY_MS} (the timer does not keep the process alive) until {@link stop}. */
  start(): void {
    this.timer ??= setInterval(() => {
      this.check().catch((error: unknown) => this.deps.log.error({ err: error }, 'cannot sample the memory of the process'));
    }, MEMORY_CHECK_EVERY_MS).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * One sample; compacts when the policy says so (and no compaction runs).
   * @returns whether it compacted.
   */
  async check(): Promise<boolean> {
    if (this.running || this.failed) return false;
    const sample: MemorySample = { nowMs: this.now(), starting: this.deps.starting(), loopUtilization: this.loopUtilization(), heap: this.readHeap() };
    if (!this.policy.observe(sample)) return false;
    this.running = true;
    try {
      await this.compact();
      const after = this.readHeap();
      const endMs = this.now();
      this.policy.compacted(after, endMs);
      // The pause is the compaction's, not the loop's own work: start the next window after it.
      this.loopUtilization();
      this.compactions++;
      this.deps.log.info(
        { committedMiB: round(sample.heap.committedBytes), usedMiB: round(sample.heap.usedBytes), afterCommittedMiB: round(after.committedBytes), afterUsedMiB: round(after.usedBytes), pauseMs: Math.round(endMs - sample.nowMs) },
        'heap compacted after a burst of work',
      );
      return true;
    } catch (error) {
      this.failed = true;
      this.stop();
      this.deps.log.warn({ err: error }, 'cannot compact the heap; the memory a burst of work leaves is given back by V8 alone');
      return false;
    } finally {
      this.running = false;
    }
  }
}

function round(bytes: number): number {
  return Math.round((bytes / MIB) * 10) / 10;
}

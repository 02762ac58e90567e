/**
 * Order statistics over samples. Percentiles use the nearest-rank method on the sorted samples
 * (the p-th percentile is the smallest sample with at least p % of the samples at or below it),
 * so a reported p99 is always a value that was actually measured.
 */

/** The nearest-rank `p`-th percentile (0 < p ≤ 100) of `samples`; NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/** The median (50th percentile, nearest rank); NaN for no samples. */
export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

/** Smallest and largest sample; NaN for no samples. */
export function range(samples: readonly number[]): { min: number; max: number } {
  if (samples.length === 0) return { min: Number.NaN, max: Number.NaN };
  let min = samples[0]!;
  let max = samples[0]!;
  for (const s of samples) {
    if (s < min) min = s;
    if (s > max) max = s;
  }
  return { min, max };
}

/** Milliseconds elapsed since `startNs` (a `process.hrtime.bigint()` reading). */
export function msSince(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e6;
}

/** A deterministic pseudo-random generator (mulberry32), so generated inputs are the same every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

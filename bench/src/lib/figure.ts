import { median, percentile, range } from './stats.js';

/** Which direction is good for a figure: throughput is `higher`, latency and memory are `lower`. */
export type Better = 'higher' | 'lower';

/**
 * A target of issue 6, checked against one statistic of a figure: `p50`, `p99`, `median` (of the
 * rounds) or `ratio` (to the figure's baseline). `op` says which side is good.
 */
export interface Target {
  readonly stat: 'median' | 'p50' | 'p99' | 'ratio';
  readonly op: '<=' | '>=';
  readonly value: number;
}

/**
 * One measured figure of the suite.
 * - `rounds`: one value per measured round (after the warm-up), in `unit`: for a rate the rate of
 *   the round, for a latency the round's p50.
 * - `median`, `min`, `max`: over the rounds for rates; over every sample for latencies.
 * - `p50`, `p99`: over every sample of every round, for figures where latency matters (ms).
 * - `baseline`: the `id` of the raw-mechanism figure measured in the same run; `ratio` is this
 *   figure's headline (p50 for latencies, else the median) divided by the baseline's.
 * - `met`: whether every target holds; undefined when the figure has no target.
 */
export interface Figure {
  readonly id: string;
  readonly scenario: string;
  readonly name: string;
  readonly unit: string;
  readonly better: Better;
  readonly rounds: readonly number[];
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly p50?: number;
  readonly p99?: number;
  /** Samples behind p50/p99 (latency figures). */
  readonly samples?: number;
  readonly baseline?: string;
  ratio?: number;
  readonly targets?: readonly Target[];
  met?: boolean;
  /** What was measured exactly (sizes, N, concurrency) and anything a reader must know. */
  readonly note?: string;
}

/** What every builder takes besides the numbers. */
export interface FigureMeta {
  readonly id: string;
  readonly scenario: string;
  readonly name: string;
  readonly unit: string;
  readonly better: Better;
  readonly baseline?: string;
  readonly targets?: readonly Target[];
  readonly note?: string;
}

/** A figure whose rounds are single values (a rate, a time per pass, a size). */
export function roundsFigure(meta: FigureMeta, rounds: readonly number[]): Figure {
  const { min, max } = range(rounds);
  return { ...meta, rounds: [...rounds], median: median(rounds), min, max };
}

/**
 * A latency figure from per-round samples (ms): `rounds` holds each round's p50; median, min, max,
 * p50 and p99 are over all samples together.
 */
export function latencyFigure(meta: FigureMeta, samplesPerRound: readonly (readonly number[])[]): Figure {
  const all = samplesPerRound.flat();
  const { min, max } = range(all);
  const p50 = percentile(all, 50);
  return {
    ...meta,
    rounds: samplesPerRound.map((s) => percentile(s, 50)),
    median: p50,
    min,
    max,
    p50,
    p99: percentile(all, 99),
    samples: all.length,
  };
}

/** The value a ratio is computed from: p50 for latency figures, else the median of the rounds. */
export function headline(figure: Figure): number {
  return figure.p50 ?? figure.median;
}

/**
 * Fills in `ratio` (against the figure named by `baseline`, when it was measured) and `met` of
 * every figure. A figure whose baseline is missing keeps `ratio` undefined and ratio targets
 * count as not met.
 */
export function resolveFigures(figures: Figure[]): void {
  const byId = new Map(figures.map((f) => [f.id, f]));
  for (const figure of figures) {
    if (figure.baseline !== undefined) {
      const base = byId.get(figure.baseline);
      if (base !== undefined && headline(base) > 0) figure.ratio = headline(figure) / headline(base);
    }
    if (figure.targets && figure.targets.length > 0) {
      figure.met = figure.targets.every((t) => {
        const value = t.stat === 'ratio' ? figure.ratio : t.stat === 'median' ? figure.median : figure[t.stat];
        if (value === undefined || Number.isNaN(value)) return false;
        return t.op === '<=' ? value <= t.value : value >= t.value;
      });
    }
  }
}

/** Runs `fn` `warmup` times unmeasured, then `rounds` times, collecting what each round returns. */
export async function inRounds<T>(rounds: number, warmup: number, fn: (round: number) => Promise<T> | T): Promise<T[]> {
  for (let i = 0; i < warmup; i++) await fn(-1 - i);
  const out: T[] = [];
  for (let i = 0; i < rounds; i++) out.push(await fn(i));
  return out;
}

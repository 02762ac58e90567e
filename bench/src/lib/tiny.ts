import { Bench } from 'tinybench';

/** Options of {@link sampleWithTinybench}. */
export interface TinyOptions {
  /** Measuring time of one round, ms. */
  readonly timeMs: number;
  /** Least iterations of one round. */
  readonly iterations: number;
  /** Warm-up time before the first round, ms (tinybench's own warm-up). */
  readonly warmupMs: number;
}

/**
 * Measures `fn` with tinybench in `rounds` separate runs (a fresh `Bench` each, the first preceded
 * by tinybench's warm-up) and returns each round's latency samples in ms.
 * @throws {Error} if `fn` throws (tinybench `throws: true`).
 */
export async function sampleWithTinybench(name: string, fn: () => unknown, rounds: number, options: TinyOptions): Promise<number[][]> {
  const out: number[][] = [];
  for (let round = 0; round < rounds; round++) {
    const bench = new Bench({
      name,
      time: options.timeMs,
      iterations: options.iterations,
      warmup: round === 0,
      warmupTime: options.warmupMs,
      warmupIterations: 2,
      throws: true,
    });
    bench.add(name, fn);
    await bench.run();
    const result = bench.getTask(name)?.result;
    const samples = result?.latency.samples ?? [];
    if (samples.length === 0) throw new Error(`tinybench measured nothing for ${name}`);
    out.push([...samples]);
  }
  return out;
}

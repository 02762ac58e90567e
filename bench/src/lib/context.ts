import type { Figure } from './figure.js';

/** What every scenario gets: the mode, how many rounds to measure, a scratch directory, a progress line. */
export interface BenchContext {
  /** `--quick`: small sizes, two rounds, the whole suite in under two minutes. */
  readonly quick: boolean;
  /** Measured rounds per figure (after `warmup` unmeasured ones). */
  readonly rounds: number;
  readonly warmup: number;
  /** A directory for this run's files (boards, databases, homes); removed at the end. */
  readonly scratchDir: string;
  /** The repository root (where `services/supervisor/bin/warren.js` is). */
  readonly repoRoot: string;
  /** Writes a progress line to stderr. */
  progress(message: string): void;
}

/** One part of the suite: a title and a function that measures its figures. */
export interface Scenario {
  /** Short id used by `--only` (e.g. `scheduler`). */
  readonly id: string;
  readonly title: string;
  run(ctx: BenchContext): Promise<Figure[]>;
}

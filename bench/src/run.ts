/**
 * Warren's benchmark suite (issue 6): measures Warren's hot paths and, in the same run, the raw
 * mechanisms they are built on, and writes `bench/results/<date>-<host>[-quick].json` plus a
 * markdown summary beside it.
 *
 * ```
 * npm run bench                 # full mode (about ten minutes on 2 cores)
 * npm run bench -- --quick      # smoke run, under two minutes
 * npm run bench -- --only scheduler,audit --out /tmp/results
 * ```
 *
 * Every figure is measured in several rounds after a warm-up; nothing asserts on timings. Needs
 * root, bwrap, setpriv, prlimit and nats-server (the sandbox, broker and CLI scenarios fail
 * otherwise, with the error in the results file). Only loopback addresses are used, and every
 * process the suite starts is stopped by its pid.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext, Scenario } from './lib/context.js';
import { resolveFigures, type Figure } from './lib/figure.js';
import { currentLoad, describeMachine } from './lib/machine.js';
import { stopAllChildren } from './lib/procs.js';
import { renderMarkdown, type BenchResults } from './lib/report.js';
import { auditScenario } from './scenarios/audit.js';
import { brokerScenario } from './scenarios/broker.js';
import { densityScenario } from './scenarios/density.js';
import { e2eScenario } from './scenarios/e2e.js';
import { httpScenario } from './scenarios/http.js';
import { metricsScenario } from './scenarios/metrics.js';
import { policyScenario } from './scenarios/policy.js';
import { sandboxScenario } from './scenarios/sandbox.js';
import { spawnScenario } from './scenarios/spawn.js';
import { schedulerScenario } from './scenarios/scheduler.js';
import { startupScenario } from './scenarios/startup.js';
import { tickScenario } from './scenarios/tick.js';
import { taskCpuScenario } from './scenarios/task-cpu.js';

/** Every scenario, in the order they run (the baselines of `e2e` are measured by `sandbox` and `broker`). */
export const SCENARIOS: readonly Scenario[] = [
  schedulerScenario,
  auditScenario,
  policyScenario,
  sandboxScenario,
  spawnScenario,
  brokerScenario,
  e2eScenario,
  startupScenario,
  densityScenario,
  taskCpuScenario,
  metricsScenario,
  httpScenario,
  tickScenario,
];

/** Command-line options of the suite. */
export interface RunOptions {
  readonly quick: boolean;
  /** Scenario ids to run; all when empty. */
  readonly only: readonly string[];
  /** Where the results go. Default `<repo>/bench/results`. */
  readonly outDir: string;
  /** Free text saved with the results (what was measured, what else ran on the machine). */
  readonly note?: string;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const USAGE = `usage: node bench/dist/run.js [--quick] [--only id,id] [--out dir] [--note text]
  --quick   small sizes, 2 rounds: the whole suite in under two minutes
  --only    run only these scenarios: ${SCENARIOS.map((s) => s.id).join(', ')}
  --out     directory for the results (default bench/results)
  --note    text saved with the results (e.g. the commit measured)
  --full    the issue's sizes where they cost minutes (density: 1,000 idle agents instead of 200)`;

/** Parses argv (after `node run.js`). @throws {Error} with the usage text on a bad option. */
export function parseArgs(argv: readonly string[]): RunOptions {
  let quick = false;
  let only: string[] = [];
  let outDir = join(repoRoot, 'bench', 'results');
  let note: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') quick = true;
    else if (arg === '--only' && argv[i + 1]) only = argv[++i]!.split(',').filter(Boolean);
    else if (arg === '--out' && argv[i + 1]) outDir = resolve(argv[++i]!);
    else if (arg === '--note' && argv[i + 1]) note = argv[++i]!;
    else if (arg === '--full') process.env.WARREN_BENCH_FULL = '1';
    else if (arg === '--help' || arg === '-h') throw new Error(USAGE);
    else throw new Error(`unknown option ${arg}\n${USAGE}`);
  }
  const unknown = only.filter((id) => !SCENARIOS.some((s) => s.id === id));
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')}\n${USAGE}`);
  return { quick, only, outDir, ...(note === undefined ? {} : { note }) };
}

/** Runs the selected scenarios and writes the results; resolves with the paths written and whether all ran. */
export async function runSuite(options: RunOptions): Promise<{ json: string; markdown: string; ok: boolean }> {
  const startedAt = new Date();
  const machine = describeMachine();
  const scratchDir = mkdtempSync(join(tmpdir(), 'warren-bench-'));
  const started = process.hrtime.bigint();
  const ctx: BenchContext = {
    quick: options.quick,
    rounds: options.quick ? 2 : 5,
    warmup: 1,
    scratchDir,
    repoRoot,
    progress: (message) => process.stderr.write(`[${((Number(process.hrtime.bigint() - started) / 1e9)).toFixed(1).padStart(6)} s] ${message}\n`),
  };
  const figures: Figure[] = [];
  const errors: { scenario: string; message: string }[] = [];
  try {
    for (const scenario of SCENARIOS) {
      if (options.only.length > 0 && !options.only.includes(scenario.id)) continue;
      try {
        figures.push(...(await scenario.run(ctx)));
      } catch (error) {
        const message = error instanceof Error ? `${error.message}` : String(error);
        ctx.progress(`${scenario.id} FAILED: ${message}`);
        errors.push({ scenario: scenario.id, message });
        await stopAllChildren();
      }
    }
  } finally {
    await stopAllChildren();
    rmSync(scratchDir, { recursive: true, force: true, maxRetries: 3 });
  }
  resolveFigures(figures);
  machine.loadAverageEnd = currentLoad();
  const results: BenchResults = {
    version: 1,
    mode: options.quick ? 'quick' : 'full',
    startedAt: startedAt.toISOString(),
    durationS: Number(process.hrtime.bigint() - started) / 1e9,
    machine,
    rounds: ctx.rounds,
    warmup: ctx.warmup,
    figures,
    errors,
    ...(options.note === undefined ? {} : { note: options.note }),
  };
  mkdirSync(options.outDir, { recursive: true });
  const base = `${startedAt.toISOString().slice(0, 10)}-${machine.host.replace(/[^A-Za-z0-9._-]/g, '_')}${options.quick ? '-quick' : ''}`;
  const json = join(options.outDir, `${base}.json`);
  const markdown = join(options.outDir, `${base}.md`);
  writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(markdown, renderMarkdown(results));
  return { json, markdown, ok: errors.length === 0 };
}

async function main(): Promise<void> {
  let options: RunOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exitCode = (error as Error).message.startsWith('usage') ? 0 : 2;
    return;
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`${signal}: stopping the processes the suite started\n`);
      stopAllChildren(5_000)
        .catch((error: unknown) => process.stderr.write(`cannot stop every process the suite started: ${String(error)}\n`))
        .finally(() => process.exit(130));
    });
  }
  const { json, markdown, ok } = await runSuite(options);
  process.stdout.write(`${json}\n${markdown}\n`);
  process.exitCode = ok ? 0 : 1;
}

await main();

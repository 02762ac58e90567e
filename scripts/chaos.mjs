#!/usr/bin/env node
// `npm run chaos -- --runs N [--seed S] [--tasks T] [--ms M]`: runs the chaos test
// (test/durability/chaos.test.ts) N times one after the other, each with a random kill-schedule
// seed (or S for every run), and prints each seed with its outcome, kills, invariant counts and
// duration, then a summary. A run that fails prints the test's failure message (on a stall, the
// supervisor's view: tasks not terminal with their execution state, agents with their state) and
// keeps its full output in the log directory. Exits 1 if any run failed. Build first.
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const usage = 'usage: npm run chaos -- --runs N [--seed S] [--tasks T] [--ms M] [--logs DIR]';

function fail(message) {
  process.stderr.write(`chaos: ${message}\n${usage}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      runs: { type: 'string', default: '1' },
      seed: { type: 'string' },
      tasks: { type: 'string' },
      ms: { type: 'string' },
      logs: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  }));
} catch (error) {
  fail(error.message);
}
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}

function wholeNumber(name, text, min) {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) fail(`--${name} must be a whole number ≥ ${min}, got '${text}'`);
  return n;
}

const runs = wholeNumber('runs', values.runs, 1);
const seed = wholeNumber('seed', values.seed, 0);
const tasks = wholeNumber('tasks', values.tasks, 1);
const chaosMs = wholeNumber('ms', values.ms, 0);
const vitest = join(repo, 'node_modules', 'vitest', 'vitest.mjs');
if (!existsSync(join(repo, 'services', 'supervisor', 'dist', 'cli.js'))) fail('the CLI is not built: run `npm run build` first');
const logDir = values.logs ? resolve(values.logs) : mkdtempSync(join(tmpdir(), 'warren-chaos-'));
mkdirSync(logDir, { recursive: true });

/** Runs the chaos test once with `runSeed`; resolves with its report (or a made-up one if it wrote none). */
function runOnce(runSeed, index) {
  const reportPath = join(logDir, `run-${index}-${runSeed}.json`);
  const logPath = join(logDir, `run-${index}-${runSeed}.log`);
  rmSync(reportPath, { force: true });
  const env = {
    ...process.env,
    WARREN_CHAOS_SEED: String(runSeed),
    WARREN_CHAOS_REPORT: reportPath,
    ...(tasks === undefined ? {} : { WARREN_CHAOS_TASKS: String(tasks) }),
    ...(chaosMs === undefined ? {} : { WARREN_CHAOS_MS: String(chaosMs) }),
  };
  const started = Date.now();
  return new Promise((done) => {
    const child = spawn(process.execPath, [vitest, 'run', 'test/durability/chaos.test.ts'], { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks = [];
    child.stdout.on('data', (c) => chunks.push(c));
    child.stderr.on('data', (c) => chunks.push(c));
    // Ctrl-C reaches the test's whole process group: start no more runs once this one ends.
    const stop = () => {
      interrupted = true;
    };
    process.once('SIGINT', stop);
    child.on('close', (code, signal) => {
      process.off('SIGINT', stop);
      const output = Buffer.concat(chunks).toString('utf8');
      writeFileSync(logPath, output);
      let report;
      try {
        report = JSON.parse(readFileSync(reportPath, 'utf8'));
      } catch {
        report = {
          seed: runSeed,
          outcome: 'error',
          kills: undefined,
          counts: undefined,
          durationMs: Date.now() - started,
          message: `the test wrote no report (exit ${code ?? signal}); its output ends:\n${output.slice(-3000)}`,
        };
      }
      if (code !== 0 && report.outcome === 'pass') report.outcome = 'error';
      done({ ...report, logPath });
    });
  });
}

function line(index, r) {
  const k = r.kills ? `kills: supervisor ${r.kills.supervisor}, agent ${r.kills.agent}, broker ${r.kills.broker}` : 'kills: ?';
  const c = r.counts
    ? `succeeded ${r.counts.succeeded}, failed ${r.counts.failed}, cancelled ${r.counts.cancelled}, ready ${r.counts.ready}, in progress ${r.counts.inProgress}${r.counts.auditRows >= 0 ? `, audit rows ${r.counts.auditRows}` : ''}`
    : 'no counts';
  const reasons = Object.entries(r.failedReasons ?? {}).map(([reason, n]) => `\n    ${n} failed: ${reason}`).join('');
  return `run ${index}/${runs} seed ${r.seed}: ${r.outcome} in ${(r.durationMs / 1000).toFixed(1)} s; ${k}; ${c}${reasons}`;
}

process.stdout.write(`chaos: ${runs} run(s)${tasks ? `, ${tasks} tasks` : ''}${chaosMs !== undefined ? `, ${chaosMs} ms of kills` : ''}; logs in ${logDir}\n`);
const results = [];
let interrupted = false;
for (let i = 1; i <= runs && !interrupted; i++) {
  const r = await runOnce(seed ?? randomInt(2 ** 31), i);
  results.push(r);
  process.stdout.write(`${line(i, r)}\n`);
  if (r.outcome !== 'pass') process.stdout.write(`${(r.message ?? '').replace(/^/gm, '  ')}\n  full output: ${r.logPath}\n`);
}
const by = (o) => results.filter((r) => r.outcome === o).length;
const meanS = results.reduce((s, r) => s + r.durationMs, 0) / results.length / 1000;
process.stdout.write(
  `chaos: ${results.length} runs: ${by('pass')} pass, ${by('stall')} stall, ${by('invariants')} invariant failure, ${by('error')} error; mean ${meanS.toFixed(1)} s; seeds ${results.map((r) => r.seed).join(' ')}\n`,
);
process.exitCode = results.every((r) => r.outcome === 'pass') ? 0 : 1;

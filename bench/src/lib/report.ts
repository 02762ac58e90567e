import type { Figure, Target } from './figure.js';
import type { MachineDescription } from './machine.js';

/** The whole results file, `bench/results/<date>-<host>.json`. */
export interface BenchResults {
  readonly version: 1;
  readonly mode: 'quick' | 'full';
  readonly startedAt: string;
  readonly durationS: number;
  readonly machine: MachineDescription;
  readonly rounds: number;
  readonly warmup: number;
  readonly figures: readonly Figure[];
  /** Scenarios that failed, with their error (their figures are missing). */
  readonly errors: readonly { readonly scenario: string; readonly message: string }[];
  /** Free text given with `--note`. */
  readonly note?: string;
}

/** A number printed with 3 significant digits (thousands separated), or `–` for none. */
export function fmt(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return '–';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(2);
}

function targetText(t: Target, unit: string): string {
  const what = t.stat === 'ratio' ? '× baseline' : t.stat === 'median' ? unit : `${t.stat} ${unit}`;
  return `${t.op === '<=' ? '≤' : '≥'} ${fmt(t.value)} ${what}`;
}

/** Renders the markdown summary: machine, then one table per scenario, then errors. */
export function renderMarkdown(results: BenchResults): string {
  const m = results.machine;
  const out: string[] = [];
  out.push(`# Warren benchmarks — ${results.startedAt.slice(0, 10)} on ${m.host} (${results.mode})`, '');
  out.push('| machine | |', '|---|---|');
  out.push(`| cpu | ${m.cpuModel} × ${m.cpuCount} |`);
  out.push(`| memory | ${fmt(m.memoryBytes / 2 ** 30)} GiB |`);
  out.push(`| kernel | ${m.kernel} |`);
  out.push(`| node | ${m.node} |`);
  out.push(`| nats-server | ${m.natsServer} |`);
  out.push(`| bwrap | ${m.bwrap} |`);
  out.push(`| load average (1/5/15 min) | start ${m.loadAverageStart.join(' / ')}, end ${(m.loadAverageEnd ?? []).join(' / ')} |`);
  out.push(`| rounds | ${results.rounds} measured after ${results.warmup} warm-up; whole run ${fmt(results.durationS)} s |`);
  out.push('');
  if (results.note) out.push(`> ${results.note}`, '');
  out.push(
    'Latency rows: median = p50 over every sample, min–max over every sample, p99 over every sample. ' +
      'Other rows: median and min–max of the per-round values. Ratio = this row ÷ its baseline row (p50 for latencies), measured in the same run.',
    '',
  );
  const scenarios = [...new Set(results.figures.map((f) => f.scenario))];
  for (const scenario of scenarios) {
    out.push(`## ${scenario}`, '');
    out.push('| figure | unit | median | min–max | p99 | ratio (baseline) | target | notes |', '|---|---|---:|---:|---:|---:|---|---|');
    for (const f of results.figures.filter((x) => x.scenario === scenario)) {
      const ratio = f.ratio === undefined ? '' : `${f.ratio >= 0.1 ? f.ratio.toFixed(2) : f.ratio.toPrecision(2)}× (${f.baseline})`;
      const target = f.targets?.length
        ? `${f.targets.map((t) => targetText(t, f.unit)).join(', ')}: **${f.met ? 'met' : 'missed'}**`
        : '';
      out.push(`| ${f.name} \`${f.id}\` | ${f.unit} | ${fmt(f.median)} | ${fmt(f.min)}–${fmt(f.max)} | ${fmt(f.p99)} | ${ratio} | ${target} | ${f.note ?? ''} |`);
    }
    out.push('');
  }
  if (results.errors.length > 0) {
    out.push('## Scenarios that failed', '');
    for (const e of results.errors) out.push(`- **${e.scenario}**: ${e.message.replace(/\n/g, ' ').slice(0, 600)}`);
    out.push('');
  }
  return `${out.join('\n')}\n`;
}

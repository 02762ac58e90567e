/// <reference lib="dom" />
/**
 * Analytics (loaded on demand with uPlot): throughput and latency over time; p50/p95 queue wait
 * and run time per template; success, failure and retry rates; utilisation per template and
 * agent; busiest capabilities; errors and recoveries.
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { query } from '../api.js';
import { formatDuration, formatPercent } from '../model.js';
import { theme } from '../theme.js';
import type { AnalyticsView } from '../types.js';
import { ErrorLine, usePoll, useRefetchOn } from '../ui.js';

const RANGES = [
  { label: '1 h', ms: 3_600_000, bucketMs: 60_000 },
  { label: '6 h', ms: 6 * 3_600_000, bucketMs: 5 * 60_000 },
  { label: '24 h', ms: 24 * 3_600_000, bucketMs: 15 * 60_000 },
  { label: '7 d', ms: 7 * 24 * 3_600_000, bucketMs: 2 * 3_600_000 },
] as const;

/** Counts per bucket are drawn as steps (a count holds for its whole bucket). */
const stepped = uPlot.paths.stepped?.({ align: 1 });

/** Reads a CSS custom property of the page (chart colours follow the theme). */
const cssVar = (name: string): string => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';

/** The analytics view. */
export function Analytics(): VNode {
  const [range, setRange] = useState(0);
  const r = RANGES[range] ?? RANGES[0];
  // The start of the window is rounded to the bucket so the URL (and the poll) stays put for a while.
  const sinceMs = Math.floor((Date.now() - r.ms) / r.bucketMs) * r.bucketMs;
  const data = usePoll<AnalyticsView>(`/api/v1/analytics${query({ since: sinceMs, bucketMs: r.bucketMs })}`, 30_000);
  useRefetchOn((kind) => kind === 'task.complete' || kind === 'task.fail' || kind === 'task.retry', data.reload, 5000);
  const a = data.data;
  return html`<section data-testid="analytics-view">
    <header class="view-head">
      <h1>Analytics</h1>
      <div class="segmented" role="group" aria-label="time range">
        ${RANGES.map((x, i) => html`<button type="button" class=${i === range ? 'btn small active' : 'btn small'} aria-pressed=${i === range} onClick=${() => setRange(i)}>${x.label}</button>`)}
      </div>
    </header>
    <${ErrorLine} error=${data.error} />
    ${a === undefined
      ? html`<p class="muted">Loading…</p>`
      : html`
        <div class="kpis">
          <${Kpi} label="Executions" value=${String(a.total.executions)} />
          <${Kpi} label="Success" value=${formatPercent(a.rates.success)} tone="ok" />
          <${Kpi} label="Failure" value=${formatPercent(a.rates.failure)} tone="bad" />
          <${Kpi} label="Retry" value=${formatPercent(a.rates.retry)} tone="warn" />
          <${Kpi} label="Queue wait p50 / p95" value=${`${formatDuration(a.total.waiting.p50Ms)} / ${formatDuration(a.total.waiting.p95Ms)}`} />
          <${Kpi} label="Run time p50 / p95" value=${`${formatDuration(a.total.running.p50Ms)} / ${formatDuration(a.total.running.p95Ms)}`} />
        </div>
        <div class="charts">
          <div class="card"><h2>Throughput</h2><${Chart} testid="chart-throughput" series=${a.series} kind="throughput" /></div>
          <div class="card"><h2>Latency</h2><${Chart} testid="chart-latency" series=${a.series} kind="latency" /></div>
        </div>
        <div class="two-col">
          <div class="card"><h2>Per template</h2>
            <div class="table-wrap"><table class="table" data-testid="analytics-templates">
              <thead><tr><th>Template</th><th>Runs</th><th>Wait p50</th><th>Wait p95</th><th>Run p50</th><th>Run p95</th></tr></thead>
              <tbody>${a.templates.map((t) => html`<tr key=${t.template}><td>${t.template}</td><td>${t.executions}</td>
                <td>${formatDuration(t.waiting.p50Ms)}</td><td>${formatDuration(t.waiting.p95Ms)}</td>
                <td>${formatDuration(t.running.p50Ms)}</td><td>${formatDuration(t.running.p95Ms)}</td></tr>`)}</tbody>
            </table></div>
          </div>
          <div class="card"><h2>Errors and recoveries</h2>
            <dl class="facts">
              <dt>Crash recoveries</dt><dd>${a.incidents.crashRecoveries}</dd>
              <dt>Watchdog kills</dt><dd>${a.incidents.watchdogKills}</dd>
              <dt>Retries</dt><dd>${a.incidents.retries}</dd>
              <dt>Spawn failures</dt><dd>${a.incidents.spawnFailures}</dd>
              ${a.incidents.unresponsive !== undefined && html`<dt>Unresponsive agents</dt><dd>${a.incidents.unresponsive}</dd>`}
              ${a.incidents.requeues !== undefined && html`<dt>Re-queued executions</dt><dd>${a.incidents.requeues}</dd>`}
            </dl>
          </div>
          <div class="card"><h2>Utilisation</h2>
            ${a.utilisation.length === 0 ? html`<p class="muted">No busy time yet.</p>` : html`<ul class="bars">${[...a.utilisation]
              .sort((x, y) => y.ratio - x.ratio)
              .map((u) => html`<li><span class="bar-label">${u.agent ?? u.template}${u.agent !== undefined ? html` <span class="muted small">${u.template}</span>` : ''}</span>
                <span class="bar"><span style=${{ width: `${Math.min(100, u.ratio * 100)}%` }}></span></span><span class="bar-value">${formatPercent(u.ratio)}</span></li>`)}</ul>`}
          </div>
          <div class="card"><h2>Busiest capabilities</h2>
            ${a.capabilities.length === 0 ? html`<p class="muted">No tasks yet.</p>` : html`<ul class="bars">${(() => {
              const top = Math.max(1, ...a.capabilities.map((c) => c.tasks));
              return [...a.capabilities]
                .sort((x, y) => y.tasks - x.tasks)
                .map((c) => html`<li><span class="bar-label">${c.capability}</span><span class="bar"><span style=${{ width: `${(c.tasks / top) * 100}%` }}></span></span><span class="bar-value">${c.tasks}</span></li>`);
            })()}</ul>`}
          </div>
        </div>`}
  </section>`;
}

function Kpi({ label, value, tone }: { label: string; value: string; tone?: string }): VNode {
  return html`<div class=${`card kpi ${tone ?? ''}`}><span class="muted small">${label}</span><strong>${value}</strong></div>`;
}

/** A uPlot chart of the series: finished/succeeded/failed/retried per bucket, or p50/p95 wait and run time. */
function Chart({ series, kind, testid }: { series: AnalyticsView['series']; kind: 'throughput' | 'latency'; testid: string }): VNode {
  const box = useRef<HTMLDivElement>(null);
  const currentTheme = theme.value;
  useEffect(() => {
    const el = box.current;
    if (el === null) return undefined;
    const xs = series.map((p) => p.startMs / 1000);
    const nul = (v: number | null): number | null => v;
    const columns: (number | null)[][] =
      kind === 'throughput'
        ? [series.map((p) => p.succeeded), series.map((p) => p.failed), series.map((p) => p.retried)]
        : [series.map((p) => nul(p.p50WaitMs)), series.map((p) => nul(p.p95WaitMs)), series.map((p) => nul(p.p50RunMs)), series.map((p) => nul(p.p95RunMs))];
    const names = kind === 'throughput' ? ['succeeded', 'failed', 'retried'] : ['wait p50', 'wait p95', 'run p50', 'run p95'];
    const colours = kind === 'throughput' ? ['--ok', '--bad', '--warn'] : ['--accent', '--accent-2', '--ok', '--warn'];
    const axis = { stroke: cssVar('--muted'), grid: { stroke: cssVar('--line') }, ticks: { stroke: cssVar('--line') } };
    const opts: uPlot.Options = {
      width: Math.max(240, el.clientWidth),
      height: 220,
      series: [
        {},
        ...names.map((label, i) => ({
          label,
          stroke: cssVar(colours[i] ?? '--accent'),
          width: 2,
          dash: kind === 'latency' && i % 2 === 1 ? [6, 4] : undefined,
          paths: kind === 'throughput' ? stepped : undefined,
          // A latency is known only in buckets where executions finished: mark each one, so a lone bucket shows.
          points: { show: kind === 'latency', size: 6 },
          spanGaps: kind === 'latency',
          value: (_u: uPlot, v: number | null) => (v === null ? '–' : kind === 'latency' ? formatDuration(v) : String(v)),
        })),
      ],
      axes: [axis, { ...axis, values: (_u: uPlot, ticks: number[]) => ticks.map((t) => (kind === 'latency' ? formatDuration(t) : String(t))), size: 70 }],
      scales: { x: { time: true } },
    };
    const chart = new uPlot(opts, [xs, ...columns] as uPlot.AlignedData, el);
    const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(240, el.clientWidth), height: 220 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      chart.destroy();
    };
  }, [series, kind, currentTheme]);
  return html`<div class="chart" ref=${box} data-testid=${testid}>${series.length === 0 && html`<p class="muted">No finished executions in this range.</p>`}</div>`;
}

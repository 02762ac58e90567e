/// <reference lib="dom" />
/**
 * Cost (loaded on demand with uPlot): what agents' LLM calls cost, from `GET /api/v1/usage`:
 * tokens and US dollars in total, over time, per template, per agent, per provider and model, the
 * most expensive tasks, and the gateway's refusals by reason.
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { query } from '../api.js';
import { formatTokens, formatUsd } from '../model.js';
import { theme } from '../theme.js';
import type { UsageLine, UsageView } from '../types.js';
import { ErrorLine, usePoll, useRefetchOn } from '../ui.js';

const RANGES = [
  { label: '1 h', ms: 3_600_000, bucketMs: 60_000 },
  { label: '24 h', ms: 24 * 3_600_000, bucketMs: 30 * 60_000 },
  { label: '7 d', ms: 7 * 24 * 3_600_000, bucketMs: 6 * 3_600_000 },
  { label: '30 d', ms: 30 * 24 * 3_600_000, bucketMs: 24 * 3_600_000 },
  { label: 'All', ms: null, bucketMs: null },
] as const;

/** Counts per bucket are drawn as steps (a count holds for its whole bucket). */
const stepped = uPlot.paths.stepped?.({ align: 1 });

const cssVar = (name: string): string => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';

/** The cost view. */
export function Cost(): VNode {
  const [range, setRange] = useState(0);
  const r = RANGES[range] ?? RANGES[0];
  // The start of the window is rounded to the bucket so the URL (and the poll) stays put for a while.
  const path =
    r.ms === null ? '/api/v1/usage' : `/api/v1/usage${query({ from: Math.floor((Date.now() - r.ms) / r.bucketMs) * r.bucketMs, bucket: r.bucketMs })}`;
  const data = usePoll<UsageView>(path, 30_000);
  useRefetchOn((kind) => kind === 'task.complete' || kind === 'task.fail', data.reload, 5000);
  const u = data.data;
  return html`<section data-testid="cost-view">
    <header class="view-head">
      <h1>Cost</h1>
      <div class="segmented" role="group" aria-label="time range">
        ${RANGES.map((x, i) => html`<button type="button" class=${i === range ? 'btn small active' : 'btn small'} aria-pressed=${i === range} onClick=${() => setRange(i)}>${x.label}</button>`)}
      </div>
    </header>
    <${ErrorLine} error=${data.error} />
    ${u === undefined
      ? html`<p class="muted">Loading…</p>`
      : html`
        <div class="kpis" data-testid="cost-kpis">
          <${Kpi} label="Cost" value=${formatUsd(u.total.costUsd)} testid="cost-total" />
          <${Kpi} label="Input tokens" value=${formatTokens(u.total.inputTokens)} testid="cost-input" />
          <${Kpi} label="Output tokens" value=${formatTokens(u.total.outputTokens)} testid="cost-output" />
          <${Kpi} label="Calls" value=${String(u.total.calls)} testid="cost-calls" />
          <${Kpi} label="Failed calls" value=${String(u.total.failedCalls)} tone=${u.total.failedCalls > 0 ? 'bad' : undefined} testid="cost-failed" />
          <${Kpi} label="Refused" value=${String(u.refusals.total)} tone=${u.refusals.total > 0 ? 'warn' : undefined} testid="cost-refused" />
        </div>
        <div class="charts">
          <div class="card"><h2>Tokens</h2><${Chart} testid="chart-tokens" series=${u.series} kind="tokens" /></div>
          <div class="card"><h2>Cost</h2><${Chart} testid="chart-cost" series=${u.series} kind="cost" /></div>
        </div>
        <div class="two-col">
          <div class="card"><h2>Top tasks by cost</h2>
            ${u.tasks.length === 0
              ? html`<p class="muted">No task made an LLM call in this range.</p>`
              : html`<div class="table-wrap"><table class="table" data-testid="cost-tasks">
                <thead><tr><th>Task</th><th>Agent</th><th class="num">Attempts</th><th class="num">Calls</th><th class="num">Tokens in / out</th><th class="num">Cost</th></tr></thead>
                <tbody>${u.tasks.map((t) => html`<tr key=${t.taskId}><td><a href=${`#/tasks/${encodeURIComponent(t.taskId)}`}>${t.taskId}</a></td>
                  <td>${t.agent} <span class="muted small">${t.template}</span></td><td class="num">${t.attempts}</td>${cells(t)}</tr>`)}</tbody>
              </table></div>`}
          </div>
          <div class="card"><h2>Per template</h2>
            <${Lines} testid="cost-templates" head="Template" rows=${u.templates.map((t) => ({ key: t.template, name: t.template, line: t }))} />
          </div>
          <div class="card"><h2>Per agent</h2>
            <${Lines} testid="cost-agents" head="Agent" rows=${u.agents.map((a) => ({ key: a.agent, name: html`<a href=${`#/agents/${encodeURIComponent(a.agent)}`}>${a.agent}</a> <span class="muted small">${a.template}</span>`, line: a }))} />
          </div>
          <div class="card"><h2>Per provider and model</h2>
            <${Lines} testid="cost-models" head="Model" rows=${u.models.map((m) => ({ key: `${m.provider}/${m.model}`, name: html`${m.model} <span class="muted small">${m.provider}</span>`, line: m }))} />
          </div>
          <div class="card"><h2>Refused by the gateway</h2>
            ${u.refusals.byReason.length === 0
              ? html`<p class="muted">No refusals.</p>`
              : html`<dl class="facts" data-testid="cost-refusals">${u.refusals.byReason.map((x) => html`<dt>${x.reason}</dt><dd>${x.count}</dd>`)}</dl>`}
          </div>
        </div>`}
  </section>`;
}

function Kpi({ label, value, tone, testid }: { label: string; value: string; tone?: string | undefined; testid: string }): VNode {
  return html`<div class=${`card kpi ${tone ?? ''}`}><span class="muted small">${label}</span><strong data-testid=${testid}>${value}</strong></div>`;
}

/** Calls, tokens in / out and cost as table cells. */
function cells(line: UsageLine): VNode {
  return html`<td class="num">${line.calls}${line.failedCalls > 0 ? html` <span class="error small" title="failed calls">(${line.failedCalls} failed)</span>` : ''}</td>
    <td class="num">${formatTokens(line.inputTokens)} / ${formatTokens(line.outputTokens)}</td><td class="num"><strong>${formatUsd(line.costUsd)}</strong></td>`;
}

function Lines({ rows, head, testid }: { rows: readonly { key: string; name: unknown; line: UsageLine }[]; head: string; testid: string }): VNode {
  if (rows.length === 0) return html`<p class="muted">No LLM calls in this range.</p>`;
  return html`<div class="table-wrap"><table class="table" data-testid=${testid}>
    <thead><tr><th>${head}</th><th class="num">Calls</th><th class="num">Tokens in / out</th><th class="num">Cost</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr key=${r.key}><td>${r.name}</td>${cells(r.line)}</tr>`)}</tbody>
  </table></div>`;
}

/** A uPlot chart of the series: input and output tokens per bucket, or US dollars per bucket. */
function Chart({ series, kind, testid }: { series: UsageView['series']; kind: 'tokens' | 'cost'; testid: string }): VNode {
  const box = useRef<HTMLDivElement>(null);
  const currentTheme = theme.value;
  const empty = series.every((b) => b.calls === 0);
  useEffect(() => {
    const el = box.current;
    if (el === null || empty) return undefined;
    const xs = series.map((b) => b.startMs / 1000);
    const columns = kind === 'tokens' ? [series.map((b) => b.inputTokens), series.map((b) => b.outputTokens)] : [series.map((b) => b.costUsd)];
    const names = kind === 'tokens' ? ['input tokens', 'output tokens'] : ['US dollars'];
    const colours = kind === 'tokens' ? ['--accent', '--accent-2'] : ['--ok'];
    const format = (v: number | null): string => (v === null ? '–' : kind === 'tokens' ? formatTokens(v) : formatUsd(v));
    const axis = { stroke: cssVar('--muted'), grid: { stroke: cssVar('--line') }, ticks: { stroke: cssVar('--line') } };
    const opts: uPlot.Options = {
      width: Math.max(240, el.clientWidth),
      height: 220,
      series: [{}, ...names.map((label, i) => ({ label, stroke: cssVar(colours[i] ?? '--accent'), width: 2, paths: stepped, value: (_u: uPlot, v: number | null) => format(v) }))],
      axes: [axis, { ...axis, values: (_u: uPlot, ticks: number[]) => ticks.map((t) => format(t)), size: 70 }],
      scales: { x: { time: true } },
    };
    const chart = new uPlot(opts, [xs, ...columns] as uPlot.AlignedData, el);
    const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(240, el.clientWidth), height: 220 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      chart.destroy();
    };
  }, [series, kind, currentTheme, empty]);
  return html`<div class="chart" ref=${box} data-testid=${testid}>${empty && html`<p class="muted">No LLM calls in this range.</p>`}</div>`;
}

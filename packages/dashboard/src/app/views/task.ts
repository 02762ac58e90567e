/// <reference lib="dom" />
/** One task: its timeline of attempts, result, output tail, audit rows, trace id; cancel and retry. */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { seg } from '../api.js';
import { formatDuration, timeline, type AttemptModel } from '../model.js';
import type { TaskDetail } from '../types.js';
import { ActionButton, ErrorLine, Pill, formatTime, usePoll, useRefetchOn } from '../ui.js';

/** The task view for `id`. */
export function Task({ id }: { id: string }): VNode {
  const task = usePoll<TaskDetail>(`/api/v1/tasks/${seg(id)}`, 10_000);
  useRefetchOn((kind) => kind.startsWith('task.') || kind.startsWith('command.task.'), task.reload);
  const [nowMs, setNowMs] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNowMs(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const t = task.data;
  const attempts = t === undefined ? [] : timeline(t.executions, nowMs);
  const last = t?.executions.at(-1);
  return html`<section data-testid="task-view">
    <header class="view-head">
      <h1><a href="#/board" class="muted">Board</a> / ${id}</h1>
      <div class="row gap-s">
        <${ActionButton} testid="task-cancel" verb="Cancel task" label="Cancel" title=${`Cancel task ${id}?`} method="POST" danger=${true}
          path=${`/api/v1/tasks/${seg(id)}/cancel`} onSettled=${task.reload} />
        <${ActionButton} testid="task-retry" verb="Retry task" label="Retry" title=${`Retry task ${id}?`} method="POST"
          path=${`/api/v1/tasks/${seg(id)}/retry`} onSettled=${task.reload} />
      </div>
    </header>
    <${ErrorLine} error=${task.error} />
    ${t !== undefined &&
    html`<div class="card">
        <h2 class="task-heading">${t.title ?? t.id}</h2>
        <dl class="facts wide">
          <dt>State</dt><dd><${Pill} value=${t.state} testid="task-state" /></dd>
          <dt>Column</dt><dd>${t.column ?? '–'}</dd>
          <dt>Agent</dt><dd>${t.agent !== null ? html`<a href=${`#/agents/${encodeURIComponent(t.agent)}`}>${t.agent}</a>` : '–'}</dd>
          <dt>Attempt</dt><dd>${t.attempt}</dd>
          ${t.queuePosition !== null && html`<dt>Queue</dt><dd data-testid="task-queue">#${t.queuePosition}${t.queueReason !== null ? `: ${t.queueReason}` : ''}</dd>`}
          ${t.reason !== null && html`<dt>Reason</dt><dd>${t.reason}</dd>`}
          ${t.notBeforeMs !== null && html`<dt>Retry after</dt><dd>${formatTime(t.notBeforeMs)}</dd>`}
          <dt>File</dt><dd class="mono">${t.path}</dd>
          <dt>Trace</dt><dd class="mono" data-testid="task-trace">${t.traceId ?? '–'}</dd>
        </dl>
      </div>
      <h2>Timeline</h2>
      ${attempts.length === 0 ? html`<p class="muted">Not assigned yet.</p>` : html`<${Timeline} attempts=${attempts} />`}
      ${last !== undefined && last.finishedMs !== null &&
      html`<h2>Result</h2>
        <div class="card" data-testid="task-result">
          <p><${Pill} value=${last.outcome} /> ${last.exitCode !== null && html`<span class="muted">exit code ${last.exitCode}</span>`}</p>
          ${last.summary !== null && html`<p>${last.summary}</p>`}
          ${last.outputs.length > 0 && html`<p class="muted">Outputs: ${last.outputs.map((o) => html`<code>${o}</code> `)}</p>`}
        </div>`}
      <h2>Output</h2>
      <pre class="log" tabindex="0" data-testid="task-output">${t.output === '' ? 'No output.' : t.output}</pre>
      <h2>Audit</h2>
      <div class="table-wrap"><table class="table" data-testid="task-audit">
        <thead><tr><th>#</th><th>Time</th><th>Actor</th><th>Action</th><th>Decision</th><th>Details</th></tr></thead>
        <tbody>${t.audit.map(
          (r) => html`<tr key=${r.seq}><td class="mono">${r.seq}</td><td>${formatTime(r.timeMs)}</td><td>${r.actor}</td><td>${r.action}</td>
            <td>${r.decision !== null && html`<${Pill} value=${r.decision} />`}</td>
            <td class="mono small details">${r.details !== undefined && r.details !== null ? JSON.stringify(r.details) : ''}</td></tr>`,
        )}</tbody>
      </table></div>`}
  </section>`;
}

/** The attempts as rows of proportional phase bars, with each phase's duration. */
function Timeline({ attempts }: { attempts: readonly AttemptModel[] }): VNode {
  return html`<ol class="timeline" data-testid="timeline">
    ${attempts.map(
      (a) => html`<li class="card attempt" key=${a.attempt} data-testid="attempt">
        <div class="row between wrap">
          <strong>Attempt ${a.attempt}</strong>
          <span class="muted">${a.agent} (${a.template}) · ${formatDuration(a.totalMs)}</span>
          <${Pill} value=${a.outcome} />
        </div>
        <div class="phases" role="list">
          ${a.phases.map(
            (p) => html`<div role="listitem" class=${`phase phase-${p.name}${p.endMs === null ? ' open' : ''}`}
              style=${{ flexGrow: String(Math.max(p.durationMs, 1)) }} title=${`${p.name} ${formatDuration(p.durationMs)} from ${formatTime(p.startMs)}`}>
              <span>${p.name} ${formatDuration(p.durationMs)}</span></div>`,
          )}
          ${a.finishedMs !== null && html`<div role="listitem" class="phase phase-finished" title=${`finished ${formatTime(a.finishedMs)}`}><span>finished ${formatTime(a.finishedMs)}</span></div>`}
        </div>
      </li>`,
    )}
  </ol>`;
}

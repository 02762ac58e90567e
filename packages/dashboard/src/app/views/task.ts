/// <reference lib="dom" />
/**
 * One task: its timeline of attempts, result, LLM usage per attempt, the agent's transcript (its
 * progress events), output tail, audit rows, trace id; cancel and retry.
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { query, seg } from '../api.js';
import { formatDuration, formatTokens, formatUsd, timeline, transcript, type AttemptModel, type TranscriptEntry } from '../model.js';
import type { AuditPage, TaskDetail, TaskUsage } from '../types.js';
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
      ${t.usage !== undefined && t.usage.attempts.length > 0 && html`<h2>LLM usage</h2><${Usage} usage=${t.usage} />`}
      <${Transcript} id=${id} />
      <h2>Output</h2>
      <pre class="log" tabindex="0" data-testid="task-output">${t.output === '' ? 'No output.' : t.output}</pre>
      <h2>Audit</h2>
      <div class="table-wrap"><table class="table" data-testid="task-audit">
        <thead><tr><th>#</th><th>Time</th><th>Actor</th><th>Action</th><th>Decision</th><th>Details</th></tr></thead>
        <tbody>${t.audit.filter((r) => r.action !== 'task.progress').map(
          (r) => html`<tr key=${r.seq}><td class="mono">${r.seq}</td><td>${formatTime(r.timeMs)}</td><td>${r.actor}</td><td>${r.action}</td>
            <td>${r.decision !== null && html`<${Pill} value=${r.decision} />`}</td>
            <td class="mono small details">${r.details !== undefined && r.details !== null ? JSON.stringify(r.details) : ''}</td></tr>`,
        )}</tbody>
      </table></div>`}
  </section>`;
}

/** The task's LLM calls per attempt: calls, tokens, cost, models. */
function Usage({ usage }: { usage: TaskUsage }): VNode {
  return html`<div class="table-wrap"><table class="table" data-testid="task-usage">
    <thead><tr><th>Attempt</th><th>Agent</th><th>Models</th><th class="num">Calls</th><th class="num">Tokens in</th><th class="num">Tokens out</th><th class="num">Cost</th></tr></thead>
    <tbody>${usage.attempts.map(
      (a) => html`<tr key=${String(a.attempt)}><td>${a.attempt ?? '–'}</td><td>${a.agent}</td><td class="small">${a.models.join(', ')}</td>
        <td class="num">${a.calls}${a.failedCalls > 0 ? html` <span class="error small">(${a.failedCalls} failed)</span>` : ''}</td>
        <td class="num">${formatTokens(a.inputTokens)}</td><td class="num">${formatTokens(a.outputTokens)}</td><td class="num">${formatUsd(a.costUsd)}</td></tr>`,
    )}</tbody>
    ${usage.attempts.length > 1 &&
    html`<tfoot><tr><th colspan="3">Total</th><td class="num">${usage.total.calls}</td><td class="num">${formatTokens(usage.total.inputTokens)}</td>
      <td class="num">${formatTokens(usage.total.outputTokens)}</td><td class="num"><strong>${formatUsd(usage.total.costUsd)}</strong></td></tr></tfoot>`}
  </table></div>`;
}

/** How many progress rows the transcript reads (the newest ones). */
const TRANSCRIPT_ROWS = 1000;

/**
 * The agent's transcript: the task's `task.progress` events (text, tool calls and results, usage,
 * errors, the final answer), by attempt, live. Unknown (raw) lines are folded.
 */
function Transcript({ id }: { id: string }): VNode | null {
  const rows = usePoll<AuditPage>(`/api/v1/audit${query({ object: `task:${id}`, action: 'task.progress', newest: true, limit: TRANSCRIPT_ROWS })}`, 15_000);
  useRefetchOn((kind) => kind === 'task.progress' || kind === 'task.complete' || kind === 'task.fail', rows.reload);
  const entries = rows.data === undefined ? [] : transcript(rows.data.rows);
  if (entries.length === 0) return null;
  const attempts = [...new Set(entries.map((e) => e.attempt))];
  return html`<h2>Transcript</h2>
    <div class="card transcript" data-testid="task-transcript">
      ${rows.data?.more === true && html`<p class="muted small">Earlier events are not shown (the newest ${TRANSCRIPT_ROWS}).</p>`}
      ${attempts.map(
        (attempt) => html`<section key=${String(attempt)}>
          ${attempts.length > 1 && html`<h3>Attempt ${attempt ?? '–'}</h3>`}
          <ol class="events">${entries.filter((e) => e.attempt === attempt).map((e) => html`<${TranscriptItem} key=${e.seq} entry=${e} />`)}</ol>
        </section>`,
      )}
    </div>`;
}

function TranscriptItem({ entry: e }: { entry: TranscriptEntry }): VNode {
  const at = formatTime(e.timeMs);
  switch (e.kind) {
    case 'session':
      return html`<li class="ev ev-session muted small" title=${at}>Session <code>${e.sessionId}</code>${e.model !== null ? ` · ${e.model}` : ''}</li>`;
    case 'text':
      return html`<li class="ev ev-text" title=${at}>${e.text}</li>`;
    case 'tool_call':
      return html`<li class="ev ev-tool" title=${at}><details><summary><span class="tag">tool</span> <strong class="mono">${e.name}</strong></summary><pre class="log">${e.input}</pre></details></li>`;
    case 'tool_result':
      return html`<li class=${`ev ev-result${e.isError ? ' bad' : ''}`} title=${at}><details><summary><span class="tag">${e.isError ? 'error' : 'result'}</span> <span class="muted small">${e.output.split('\n')[0]?.slice(0, 120)}</span></summary><pre class="log">${e.output}</pre></details></li>`;
    case 'usage':
      return html`<li class="ev ev-usage muted small" title=${at}>${formatTokens(e.inputTokens)} in / ${formatTokens(e.outputTokens)} out${e.costUsd !== null ? ` · ${formatUsd(e.costUsd)}` : ''}${e.model !== null ? ` · ${e.model}` : ''}</li>`;
    case 'error':
      return html`<li class="ev ev-error error" title=${at}>${e.message}</li>`;
    case 'final':
      return html`<li class=${`ev ev-final${e.isError ? ' bad' : ''}`} title=${at} data-testid="transcript-final"><span class="muted small">Final answer</span><p>${e.text}</p></li>`;
    case 'raw':
      return html`<li class="ev ev-raw muted small" title=${at}><details><summary>unrecognised line from ${e.source}</summary><pre class="log">${e.line}</pre></details></li>`;
    case 'progress':
      return html`<li class="ev ev-progress muted small" title=${at}>${e.percent !== null ? `${e.percent} % · ` : ''}${e.message}</li>`;
  }
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

/// <reference lib="dom" />
/** One agent: its facts, the operator actions, its recent executions and its live log tail. */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, query, seg } from '../api.js';
import { describeExit, formatBytes, formatDuration } from '../model.js';
import type { AgentDetail } from '../types.js';
import { ActionButton, ErrorLine, Pill, formatTime, usePoll, useRefetchOn } from '../ui.js';

/** Bytes of log kept on the page; older text is dropped from the top. */
const LOG_KEEP_BYTES = 256 * 1024;

/** The agent view for `name`. */
export function Agent({ name }: { name: string }): VNode {
  const agent = usePoll<AgentDetail>(`/api/v1/agents/${seg(name)}`, 5000);
  useRefetchOn((kind) => kind.startsWith('agent.') || kind.startsWith('task.'), agent.reload, 1500);
  const a = agent.data;
  const path = `/api/v1/agents/${seg(name)}`;
  const action = (verb: string, op: string, danger = false): VNode =>
    html`<${ActionButton} testid=${`agent-${op}`} verb=${verb} title=${`${verb} agent ${name}?`} method=${op === 'delete' ? 'DELETE' : 'POST'}
      path=${op === 'delete' ? path : `${path}/${op}`} danger=${danger} onSettled=${agent.reload}
      detail=${op === 'delete' ? 'Its account and home directory are removed. This cannot be undone.' : undefined} />`;
  return html`<section data-testid="agent-view">
    <header class="view-head">
      <h1><a href="#/fleet" class="muted">Fleet</a> / ${name}</h1>
      <div class="row gap-s wrap">
        ${action('Start', 'start')} ${action('Stop', 'stop', true)} ${action('Restart', 'restart')} ${action('Sleep', 'sleep')}
        ${action('Wake', 'wake')} ${action('Delete', 'delete', true)}
      </div>
    </header>
    <${ErrorLine} error=${agent.error} />
    ${a !== undefined &&
    html`<div class="card">
      <dl class="facts wide">
        <dt>State</dt><dd><${Pill} value=${a.state} testid="agent-detail-state" /> ${a.live !== null && html`<${Pill} value=${a.live.status} />`}</dd>
        <dt>Template</dt><dd>${a.template}</dd>
        <dt>uid / gid</dt><dd class="mono">${a.uid} / ${a.gid ?? '–'}</dd>
        <dt>Home</dt><dd class="mono">${a.home ?? '–'}</dd>
        <dt>pid</dt><dd class="mono">${a.pid ?? '–'}</dd>
        <dt>Started</dt><dd>${formatTime(a.startedMs)}</dd>
        <dt>Load</dt><dd>${a.live?.load ?? 0} / ${a.wip}</dd>
        <dt>Memory</dt><dd>${formatBytes(a.live?.memoryBytes)}${a.live?.memoryLimitBytes ? ` of ${formatBytes(a.live.memoryLimitBytes)}` : ''}</dd>
        <dt>CPU time</dt><dd>${formatDuration(a.live?.cpuMs)}</dd>
        <dt>Processes</dt><dd>${a.live?.pids ?? '–'}</dd>
        <dt>Last exit</dt><dd>${describeExit(a.lastExit)}</dd>
        <dt>Capabilities</dt><dd>${a.capabilities.map((c) => html`<span class="tag">${c}</span>`)}</dd>
      </dl>
    </div>
    <h2>Executions</h2>
    ${a.executions.length === 0
      ? html`<p class="muted">No executions yet.</p>`
      : html`<div class="table-wrap"><table class="table">
          <thead><tr><th>Task</th><th>Attempt</th><th>Assigned</th><th>Waited</th><th>Ran</th><th>Outcome</th></tr></thead>
          <tbody>${a.executions.map(
            (e) => html`<tr key=${`${e.taskId}/${e.attempt}`}>
              <td><a href=${`#/tasks/${encodeURIComponent(e.taskId)}`}>${e.taskId}</a></td><td>${e.attempt}</td>
              <td>${formatTime(e.assignedMs)}</td><td>${formatDuration(e.waitingMs)}</td><td>${formatDuration(e.runningMs)}</td>
              <td><${Pill} value=${e.finishedMs === null ? e.state : e.outcome} /></td>
            </tr>`,
          )}</tbody></table></div>`}`}
    <h2>Log</h2>
    <${LogTail} name=${name} />
  </section>`;
}

/** The agent's log, polled with `after=<next>` every 2 s, following the bottom unless scrolled up. */
function LogTail({ name }: { name: string }): VNode {
  const [text, setText] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [paused, setPaused] = useState(false);
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    let next: number | undefined;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = (): void => {
      api<{ text: string; next: number; size: number }>(`/api/v1/agents/${seg(name)}/log${query({ after: next, limit: 65536 })}`).then(
        (r) => {
          if (stopped) return;
          setError(null);
          // A log that shrank (a new run truncated it) is read again from its start by the server.
          const restarted = next !== undefined && r.next < next;
          next = r.next;
          if (restarted) setText(r.text.slice(-LOG_KEEP_BYTES));
          else if (r.text !== '') setText((t) => (t + r.text).slice(-LOG_KEEP_BYTES));
          // Catching up on a long log: the next chunk soon (the API allows 20 requests a second per session).
          timer = setTimeout(poll, r.next < r.size ? 250 : 2000);
        },
        (e: unknown) => {
          if (stopped) return;
          setError(e instanceof Error ? e.message : String(e));
          timer = setTimeout(poll, 5000);
        },
      );
    };
    poll();
    return () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [name]);
  useEffect(() => {
    const el = pre.current;
    if (el !== null && !paused) el.scrollTop = el.scrollHeight;
  }, [text, paused]);
  return html`<div>
    <${ErrorLine} error=${error} />
    <pre class="log" ref=${pre} tabindex="0" data-testid="agent-log" aria-label=${`log of ${name}`}
      onScroll=${(e: Event) => {
        const el = e.target as HTMLPreElement;
        setPaused(el.scrollTop + el.clientHeight < el.scrollHeight - 8);
      }}>${text === '' ? 'No output yet.' : text}</pre>
  </div>`;
}

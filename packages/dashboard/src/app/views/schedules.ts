/// <reference lib="dom" />
/**
 * The board's schedules (`GET /api/v1/schedules`): each with its cron expression and time zone,
 * its last and next fire time (relative, and absolute on the schedule's own clock), the task
 * written for the last fire time (a link to its view), due ones marked, and the schedules file's
 * problems (schedules left out, with line and field).
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { formatInZone, formatRelative, sortSchedules } from '../model.js';
import type { SchedulesView } from '../types.js';
import { ErrorLine, formatTime, usePoll, useRefetchOn } from '../ui.js';

/**
 * A fire time: relative to now, with the absolute time on the schedule's clock under it (and local
 * time on hover). A next fire time the clock has passed before the listing is read again is `now`.
 */
function FireTime({ ms, timezone, nowMs, next, testid }: { ms: number | null; timezone: string | null; nowMs: number; next: boolean; testid: string }): VNode {
  if (ms === null) return html`<span class="muted" data-testid=${testid}>–</span>`;
  return html`<span data-testid=${testid} data-ms=${String(ms)}>
    <span>${next && ms <= nowMs ? 'now' : formatRelative(ms, nowMs)}</span><br />
    <time class="muted small mono" datetime=${new Date(ms).toISOString()} title=${`local time ${formatTime(ms)}`}>${formatInZone(ms, timezone)}</time>
  </span>`;
}

/** The schedules view. */
export function Schedules(): VNode {
  const data = usePoll<SchedulesView>('/api/v1/schedules', 10_000);
  // A fire writes a card (board.write) that becomes a task: the last fire and task change then.
  useRefetchOn((kind) => kind === 'board.write' || kind === 'task.complete' || kind === 'task.fail', data.reload, 2000);
  // Relative times move on every second.
  const [nowMs, setNowMs] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNowMs(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const v = data.data;
  const rows = v === undefined ? [] : sortSchedules(v.schedules);
  return html`<section data-testid="schedules-view">
    <header class="view-head">
      <h1>Schedules</h1>
      ${v !== undefined && v.file !== '' && html`<span class="muted mono small" data-testid="schedules-file">${v.file}</span>`}
    </header>
    <${ErrorLine} error=${data.error} />
    ${v !== undefined &&
    v.problems.length > 0 &&
    html`<div class="card problems" role="alert" data-testid="schedule-problems">
      <h2>${v.problems.length === 1 ? 'One schedule is left out' : `${v.problems.length} problems in the schedules file`}</h2>
      <ul>${v.problems.map((p) => html`<li class="mono small" data-testid="schedule-problem">${p.message}</li>`)}</ul>
    </div>`}
    ${v === undefined
      ? html`<p class="muted">Loading…</p>`
      : rows.length === 0
        ? html`<p class="empty" data-testid="schedules-empty">No schedules. Write them in <code>schedules.yaml</code> in the board folder.</p>`
        : html`<div class="table-wrap"><table class="table" data-testid="schedules-table">
            <thead><tr><th>Name</th><th>Cron</th><th>Time zone</th><th>Last fire</th><th>Last task</th><th>Next fire</th><th>State</th></tr></thead>
            <tbody>${rows.map(
              (s) => html`<tr key=${s.name} data-testid="schedule" data-schedule=${s.name} data-due=${String(s.due)} class=${s.due ? 'due' : undefined}>
                <td><strong>${s.name}</strong></td>
                <td class="mono" data-testid="schedule-cron">${s.cron}</td>
                <td data-testid="schedule-timezone">${s.timezone ?? 'UTC'}</td>
                <td><${FireTime} ms=${s.lastFireMs} timezone=${s.timezone} nowMs=${nowMs} next=${false} testid="schedule-last" /></td>
                <td>${s.lastTaskId === null
                  ? html`<span class="muted" data-testid="schedule-task">–</span>`
                  : html`<a href=${`#/tasks/${encodeURIComponent(s.lastTaskId)}`} data-testid="schedule-task">${s.lastTaskId}</a>`}</td>
                <td><${FireTime} ms=${s.nextFireMs} timezone=${s.timezone} nowMs=${nowMs} next=${true} testid="schedule-next" /></td>
                <td>${s.due
                  ? html`<span class="pill pill-due" data-testid="schedule-due" title="a fire time has come that is not run yet">due</span>`
                  : html`<span class="pill" data-testid="schedule-state">${s.nextFireMs === null ? 'ended' : 'waiting'}</span>`}</td>
              </tr>`,
            )}</tbody>
          </table></div>`}
  </section>`;
}

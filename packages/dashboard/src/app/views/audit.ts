/// <reference lib="dom" />
/** The audit explorer: filters, paging (newest first), one-click chain verification, export. */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api, query } from '../api.js';
import type { AuditPage, AuditVerify } from '../types.js';
import { ErrorLine, Pill, formatTime, usePoll } from '../ui.js';

interface Filters {
  actor: string;
  action: string;
  object: string;
  decision: string;
}

const PAGE = 100;

/** The audit view. */
export function Audit(): VNode {
  const [filters, setFilters] = useState<Filters>({ actor: '', action: '', object: '', decision: '' });
  const [draft, setDraft] = useState<Filters>(filters);
  /**
   * Paging back in time. The API pages forward by seq (`after`) or gives the newest rows; older
   * pages are asked for by time (`until` = the oldest shown row's time + 1 ms) and rows at or after
   * the oldest shown seq are dropped, so a row sharing that millisecond is never lost.
   */
  const [cursor, setCursor] = useState<{ untilMs: number; belowSeq: number } | null>(null);
  const [history, setHistory] = useState<({ untilMs: number; belowSeq: number } | null)[]>([]);
  const path = `/api/v1/audit${query({ ...filters, limit: PAGE, newest: true, until: cursor?.untilMs })}`;
  const page = usePoll<AuditPage>(path, 0);
  const [verify, setVerify] = useState<AuditVerify | null>(null);
  const [verifyError, setVerifyError] = useState<string | null>(null);
  const [verifying, setVerifying] = useState(false);
  const runVerify = (): void => {
    setVerifying(true);
    setVerifyError(null);
    api<AuditVerify>('/api/v1/audit/verify').then(
      (v) => {
        setVerify(v);
        setVerifying(false);
      },
      (e: unknown) => {
        setVerifyError(e instanceof Error ? e.message : String(e));
        setVerifying(false);
      },
    );
  };
  const rows = page.data === undefined ? [] : [...page.data.rows].reverse().filter((r) => cursor === null || r.seq < cursor.belowSeq);
  const oldest = rows.at(-1);
  const exportHref = `/api/v1/audit/export${query({ actor: filters.actor, action: filters.action, object: filters.object, decision: filters.decision })}`;
  const input = (key: keyof Filters, label: string, placeholder: string): VNode => html`<label class="field"><span>${label}</span>
    <input value=${draft[key]} placeholder=${placeholder} data-testid=${`audit-${key}`} onInput=${(e: Event) => setDraft({ ...draft, [key]: (e.target as HTMLInputElement).value })} /></label>`;
  return html`<section data-testid="audit-view">
    <header class="view-head">
      <h1>Audit</h1>
      <div class="row gap-s">
        <button class="btn primary" type="button" data-testid="audit-verify" onClick=${runVerify} disabled=${verifying}>${verifying ? 'Verifying…' : 'Verify chain'}</button>
        <a class="btn" href=${exportHref} download="warren-audit.jsonl" data-testid="audit-export">Export JSONL</a>
      </div>
    </header>
    ${verify !== null &&
    html`<div class=${verify.ok ? 'card verify ok' : 'card verify bad'} role="status" data-testid="audit-verify-result" data-ok=${String(verify.ok)}>
      ${verify.ok
        ? html`<strong>Chain intact</strong>: ${verify.rows} rows verified.`
        : html`<strong>Chain broken</strong> at row ${verify.firstBadSeq ?? '?'}: ${verify.reason ?? 'unknown reason'} (${verify.rows} rows).`}
      ${verify.checkpoints !== undefined &&
      html` <span class="muted" data-testid="audit-checkpoints">${verify.checkpoints.count} ${verify.signed === true || verify.checkpoints.signed === true ? 'signed ' : ''}checkpoint(s)${verify.checkpoints.lastSeq !== null ? `, the last at row ${verify.checkpoints.lastSeq} (${formatTime(verify.checkpoints.lastMs)})` : ''}${verify.unsignedRows !== undefined ? `; ${verify.unsignedRows} row(s) after it, covered by the hash chain` : ''}.</span>`}
    </div>`}
    <${ErrorLine} error=${verifyError} />
    <form class="filters" onSubmit=${(e: Event) => {
      e.preventDefault();
      setFilters(draft);
      setCursor(null);
      setHistory([]);
    }}>
      ${input('actor', 'Actor', 'user:alice, shell-1')} ${input('action', 'Action', 'task.*')} ${input('object', 'Object', 'task:T-1')}
      <label class="field"><span>Decision</span><select value=${draft.decision} onChange=${(e: Event) => setDraft({ ...draft, decision: (e.target as HTMLSelectElement).value })}>
        <option value="">any</option><option value="allow">allow</option><option value="deny">deny</option></select></label>
      <button class="btn" type="submit" data-testid="audit-apply">Apply</button>
    </form>
    <${ErrorLine} error=${page.error} />
    <div class="table-wrap"><table class="table" data-testid="audit-table">
      <thead><tr><th>#</th><th>Time</th><th>Actor</th><th>Action</th><th>Object</th><th>Decision</th><th>Details</th></tr></thead>
      <tbody>${rows.map(
        (r) => html`<tr key=${r.seq} data-testid="audit-row"><td class="mono">${r.seq}</td><td>${formatTime(r.timeMs)}</td><td>${r.actor}</td>
          <td>${r.action}</td><td>${r.object}</td><td>${r.decision !== null && html`<${Pill} value=${r.decision} />`}</td>
          <td class="mono small details">${r.details !== undefined && r.details !== null ? JSON.stringify(r.details) : ''}</td></tr>`,
      )}</tbody>
    </table></div>
    <div class="row gap-s end">
      <button class="btn" type="button" data-testid="audit-newer" disabled=${history.length === 0}
        onClick=${() => {
          setCursor(history.at(-1) ?? null);
          setHistory(history.slice(0, -1));
        }}>Newer</button>
      <button class="btn" type="button" data-testid="audit-older" disabled=${page.data?.more !== true || oldest === undefined}
        onClick=${() => {
          if (oldest === undefined) return;
          setHistory([...history, cursor]);
          setCursor({ untilMs: oldest.timeMs + 1, belowSeq: oldest.seq });
        }}>Older</button>
    </div>
  </section>`;
}

/// <reference lib="dom" />
/**
 * The board, live: columns with WIP limits (over-limit marked) and held files; cards move as
 * events arrive (the board is fetched again on `task.*`/`board.*` events, at most once a second);
 * a waiting card shows its queue position and reason. A form creates a task on the board.
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useMemo, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';
import { changesBoard, groupCards, movedCards } from '../model.js';
import type { BoardView, Card } from '../types.js';
import { ErrorLine, Pill, toast, usePoll, useRefetchOn } from '../ui.js';

/** Cards drawn per column; a column of thousands says how many more it holds. */
const CARDS_SHOWN = 200;

/** The board view. */
export function Board(): VNode {
  const board = usePoll<BoardView>('/api/v1/board', 15_000);
  useRefetchOn(changesBoard, board.reload);
  const [creating, setCreating] = useState(false);
  const columns = useMemo(() => (board.data === undefined ? [] : groupCards(board.data)), [board.data]);
  // Cards whose column or state changed since the last fetch are highlighted for a moment.
  const previous = useRef<ReadonlyMap<string, string> | undefined>(undefined);
  const seen = useRef<unknown>(undefined);
  const moved = useRef<ReadonlySet<string>>(new Set());
  if (board.data !== undefined && seen.current !== board.data) {
    seen.current = board.data;
    const result = movedCards(previous.current, board.data.cards);
    previous.current = result.positions;
    moved.current = result.moved;
  }
  return html`<section data-testid="board-view">
    <header class="view-head">
      <h1>Board ${board.data !== undefined && html`<span class="muted small">${board.data.format}</span>`}</h1>
      <button class="btn primary" type="button" data-testid="new-task" onClick=${() => setCreating(!creating)} aria-expanded=${creating}>New task</button>
    </header>
    <${ErrorLine} error=${board.error} />
     ${creating && html`<${NewTask} columns=${columns.map((c) => ({ key: c.key, name: c.name }))} onDone=${() => { setCreating(false); board.reload(); }} />`}
    ${board.data !== undefined && board.data.held.length > 0 &&
    html`<div class="card held" data-testid="held-files">
      <strong>Held files</strong> <span class="muted">(not scheduled until they parse)</span>
      <ul>${board.data.held.map((h) => html`<li><code>${h.path}</code>: ${h.message}</li>`)}</ul>
    </div>`}
    ${board.data === undefined
      ? html`<p class="muted">Loading the board…</p>`
      : html`<div class="board" data-testid="board">
          ${columns.map(
            (c) => html`<section class=${c.over ? 'column over' : 'column'} key=${c.key} data-testid="board-column" data-column=${c.key} aria-label=${`column ${c.name}`}>
              <header class="column-head">
                <h2>${c.name}</h2>
                <span class=${c.over ? 'wip over' : 'wip'} title=${c.over ? 'over its WIP limit' : 'cards / WIP limit'}>${c.count}${c.wip !== null ? ` / ${c.wip}` : ''}</span>
              </header>
              <div class="cards">${c.cards.slice(0, CARDS_SHOWN).map((card) => html`<${CardView} key=${card.id} card=${card} moved=${moved.current.has(card.id)} />`)}</div>
              ${c.cards.length > CARDS_SHOWN && html`<p class="muted small more">${c.cards.length - CARDS_SHOWN} more cards in this column</p>`}
            </section>`,
          )}
        </div>`}
  </section>`;
}

function CardView({ card, moved }: { card: Card; moved: boolean }): VNode {
  return html`<a class=${moved ? 'task-card moved' : 'task-card'} href=${`#/tasks/${encodeURIComponent(card.id)}`} data-testid="card" data-card=${card.id} data-state=${card.state ?? ''}>
    <div class="row between"><span class="mono muted small">${card.id}</span>${card.state !== null && html`<${Pill} value=${card.state} />`}</div>
    <div class="task-title">${card.title}</div>
    <div class="row gap-s wrap small">
      ${card.priority !== null && html`<span class=${`prio prio-${card.priority}`}>${card.priority}</span>`}
      ${card.capabilities.map((c) => html`<span class="tag">${c}</span>`)}
      ${card.agent !== null && html`<span class="muted">→ ${card.agent}</span>`}
    </div>
    ${card.queuePosition !== null &&
    html`<div class="queue small" data-testid="card-queue">#${card.queuePosition} in queue${card.queueReason !== null ? html`: ${card.queueReason}` : ''}</div>`}
    ${card.dependsOn.length > 0 && html`<div class="muted small">after ${card.dependsOn.join(', ')}</div>`}
  </a>`;
}

function NewTask({ columns, onDone }: { columns: { key: string; name: string }[]; onDone: () => void }): VNode {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = (e: Event): void => {
    e.preventDefault();
    const form = new FormData(e.target as HTMLFormElement);
    const text = (k: string): string => {
      const v = form.get(k);
      return typeof v === 'string' ? v.trim() : '';
    };
    const list = (k: string): string[] | undefined => {
      const items = text(k).split(/[\s,]+/).filter((s) => s !== '');
      return items.length === 0 ? undefined : items;
    };
    const draft = {
      title: text('title'),
      body: text('body') === '' ? undefined : text('body'),
      priority: text('priority') === '' ? undefined : text('priority'),
      column: text('column') === '' ? undefined : text('column'),
      capabilities: list('capabilities'),
      dependsOn: list('dependsOn'),
    };
    setBusy(true);
    api<{ id: string; path: string }>('/api/v1/tasks', { method: 'POST', body: draft }).then(
      (r) => {
        setBusy(false);
        toast(`Created ${r.id} (${r.path})`, 'ok');
        onDone();
      },
      (err: unknown) => {
        setBusy(false);
        setError(err instanceof ApiError ? `${err.status}: ${err.message}` : String(err));
      },
    );
  };
  return html`<form class="card form-grid" onSubmit=${submit} data-testid="new-task-form">
    <label class="field span2"><span>Title</span><input name="title" required data-testid="new-task-title" /></label>
    <label class="field span2"><span>Description</span><textarea name="body" rows="3"></textarea></label>
    <label class="field"><span>Capabilities</span><input name="capabilities" placeholder="shell, python" /></label>
    <label class="field"><span>Depends on</span><input name="dependsOn" placeholder="task ids" /></label>
    <label class="field"><span>Priority</span><select name="priority"><option value="">default</option>
      ${['urgent', 'high', 'medium', 'low'].map((p) => html`<option value=${p}>${p}</option>`)}</select></label>
    <label class="field"><span>Column</span><select name="column"><option value="">default</option>
      ${columns.map((c) => html`<option value=${c.key}>${c.name}</option>`)}</select></label>
    ${error !== null && html`<p class="error span2" role="alert">${error}</p>`}
    <div class="row end span2"><button class="btn primary" type="submit" disabled=${busy} data-testid="new-task-submit">Create</button></div>
  </form>`;
}

import type { BoardNote } from './board-edits.js';
import type { SpawnFailure } from './agents/lifecycle.js';
import type { TemplateError } from './templates.js';

/** What a run did, for the CLI's summary and exit code. */
export interface RunSummary {
  readonly succeeded: readonly string[];
  readonly failed: readonly { readonly taskId: string; readonly reason: string }[];
  /** Task files that could not be read (held until they parse). */
  readonly held: readonly { readonly path: string; readonly message: string }[];
  /** Ready tasks nothing could take, with the reason. */
  readonly unplaced: readonly { readonly taskId: string; readonly reason: string }[];
  /** Ready tasks that can never run as the board stands (a dependency cycle, self or unknown id), with the reason. */
  readonly blocked: readonly { readonly taskId: string; readonly reason: string }[];
  readonly templateErrors: readonly string[];
  /** Cards that do not show what Warren did: moved by a person, deleted, or stopped short of their end column. */
  readonly board: readonly BoardNote[];
  /** True when nothing failed, nothing was held or blocked and every ready task was placed. */
  readonly ok: boolean;
}

/** What {@link summarize} reads. */
export interface SummaryInput {
  readonly succeeded: readonly string[];
  readonly failed: readonly { readonly taskId: string; readonly reason: string }[];
  readonly held: readonly { readonly path: string; readonly message: string }[];
  readonly unplaced: readonly { readonly taskId: string; readonly reason: string }[];
  readonly blocked: readonly { readonly taskId: string; readonly reason: string }[];
  readonly templateErrors: readonly TemplateError[];
  /** Templates failed for this run after their agents could not start. */
  readonly failedTemplates: readonly (readonly [string, SpawnFailure])[];
  readonly board: readonly BoardNote[];
}

/** The run's summary: what succeeded, failed, was held, left unplaced or blocked, and why. */
export function summarize(input: SummaryInput): RunSummary {
  const failedTemplate = input.failedTemplates[0];
  const unplaced = input.unplaced.map((u) =>
    failedTemplate ? { taskId: u.taskId, reason: `${u.reason}; template ${failedTemplate[0]} failed to start: ${failedTemplate[1].reason}` } : u,
  );
  const templateErrors = [...input.templateErrors.map((e) => e.message), ...input.failedTemplates.map(([name, f]) => `${name} failed to start: ${f.reason}`)];
  return {
    succeeded: [...input.succeeded],
    failed: [...input.failed],
    held: [...input.held],
    unplaced,
    blocked: [...input.blocked],
    templateErrors,
    board: [...input.board],
    ok: input.failed.length === 0 && input.held.length === 0 && unplaced.length === 0 && input.blocked.length === 0 && templateErrors.length === 0,
  };
}

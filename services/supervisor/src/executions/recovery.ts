import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentLifecycle } from '../agents/lifecycle.js';
import type { BoardEdits } from '../board-edits.js';
import type { BoardMirror } from '../board/mirror.js';
import { SUPERVISOR, type SupervisorContext } from '../context.js';
import { removeStaleTempFiles } from '../crash.js';
import type { AssignmentRow } from '@warren/registry';
import type { Inbox } from './inbox.js';
import type { Settler } from './settle.js';

/** How long start-up recovery waits for results already on the broker, in ms. */
const RESULTS_WAIT_MS = 5_000;

/**
 * Brings state left by a previous run (which may have been killed at any point) in line before
 * the first tick: results already on the broker are applied first (waiting up to 5 s for the
 * consumer's backlog to empty), then executions still open belong to agents that died with that
 * run, so they are finished as lost and their tasks put back to ready (or failed once attempts
 * are used up), and their queued assignments are purged so no dead execution runs later. Before
 * that, a card a person moved while Warren was stopped keeps their column: its execution is
 * cancelled and its pending board write dropped (see BoardEdits.applyMoves); it runs again only
 * when they moved it to the ready column. Half written board files are removed. One
 * `supervisor.recovered` audit row says what was done.
 */
export async function recover(
  ctx: SupervisorContext,
  parts: { inbox: Inbox; mirror: BoardMirror; edits: BoardEdits; settler: Settler; agents: AgentLifecycle },
  nowMs: number,
): Promise<void> {
  const { inbox, mirror, edits, settler, agents } = parts;
  let resultsApplied = 0;
  const deadline = Date.now() + RESULTS_WAIT_MS;
  for (;;) {
    const applied = inbox.resultsQueued;
    await inbox.apply(Date.now());
    resultsApplied += applied;
    if ((await ctx.broker.resultsBacklog()) === 0 || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // A person's move of a card while Warren was stopped wins over the state Warren left.
  let moved: AssignmentRow[] = [];
  const board = mirror.board;
  if (board) {
    ctx.transaction(() => {
      moved = edits.applyMoves(board.tasks, board.config.roles, new Map(), nowMs, true);
    });
  }
  const orphans = ctx.state.openAssignments();
  const requeued: string[] = [];
  const failed: string[] = [];
  ctx.transaction(() => {
    for (const a of orphans) {
      ctx.state.finishAssignment(a.taskId, a.attempt, { outcome: 'lost', exitCode: null, summary: 'the supervisor stopped during this execution', outputs: [] }, nowMs);
      const reason = `lost when the supervisor stopped during attempt ${a.attempt} on ${a.agent}`;
      const settled = settler.settle(a.taskId, a.attempt, 'lost', reason, nowMs, agents.templateOf(a.agent));
      if (settled === 'retry') requeued.push(a.taskId);
      else if (settled !== undefined) failed.push(a.taskId);
    }
  });
  let assignmentsPurged = 0;
  for (const agent of new Set([...orphans, ...moved].map((a) => a.agent))) {
    assignmentsPurged += await ctx.broker.purgeAssignments(agent);
  }
  const tempFiles = removeStaleTempFiles(join(ctx.config.boardDir, 'tasks'), unlinkSync);
  ctx.emit({
    actor: SUPERVISOR,
    action: 'supervisor.recovered',
    object: 'supervisor',
    details: {
      resultsApplied,
      lostExecutions: orphans.map((a) => `${a.taskId}:${a.attempt}`),
      movedOnTheBoard: moved.map((a) => `${a.taskId}:${a.attempt}`),
      requeued,
      failed,
      assignmentsPurged,
      tempFilesRemoved: tempFiles,
      pendingBoardWrites: ctx.state.pendingBoardTasks().length,
    },
  });
  mirror.recovered = true;
}

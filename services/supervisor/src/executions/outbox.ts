import type { AgentLifecycle } from '../agents/lifecycle.js';
import type { BoardMirror } from '../board/mirror.js';
import { mapLimit, type SupervisorContext } from '../context.js';
import { CrashPoint } from '../crash.js';
import type { Task } from '@warren/kanban';
import type { AssignmentRow } from '@warren/registry';
import { taskRepository } from '../planning.js';
import type { Repositories } from '../repositories.js';
import type { AgentTemplate } from '../templates.js';
import { commitWithoutSync } from '@warren/store';

/** How long an execution may wait for its agent's ack, or its result, before it is chased, in ms. */
export const CHASE_AFTER_MS = 5_000;
/** Assignments published to the broker at once. */
const PUBLISH_CONCURRENCY = 32;

/**
 * The execution outbox: an execution is committed in SQLite (`pending`) before it is published, so
 * a crash between the two loses nothing; each tick publishes what is pending, and chases what the
 * broker may have lost.
 */
export class Outbox {
  /** When each open execution (`taskId:attempt`) was last published or chased, in ms. */
  private readonly sentAt = new Map<string, number>();

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly mirror: BoardMirror,
    private readonly agents: AgentLifecycle,
    private readonly repositories: Repositories,
  ) {}

  /** Publishes committed executions that are not yet on the broker (the outbox), oldest first. */
  async publishPending(): Promise<void> {
    const { ctx } = this;
    const nowMs = Date.now();
    const open = ctx.state.openAssignments();
    this.chaseLostMessages(open, nowMs);
    const pending = open
      .filter((a) => a.state === 'pending' || (a.state === 'published' && this.isStale(`${a.taskId}:${a.attempt}`, nowMs)))
      .map((a) => {
        const task = this.mirror.taskById.get(a.taskId);
        const template = this.agents.handles.get(a.agent)?.template ?? this.agents.templateOf(a.agent);
        return { a, task, template, repository: task && template ? this.repositoryOf(task, template) : undefined };
      })
      // An execution whose repository has no mirror yet waits for it (planning holds new ones back).
      .filter((p) => p.task !== undefined && p.template !== undefined && p.repository !== null);
    if (pending.length === 0) return;
    // Publish them side by side (the broker de-duplicates by message id, so order does not
    // matter), then record every acknowledged one in one transaction.
    const published = await mapLimit(pending, PUBLISH_CONCURRENCY, async ({ a, task, template, repository }) => {
      const trace = ctx.tracing.publishing(a.taskId, a.attempt, ctx.broker.namespace.assignSubject(a.agent));
      try {
        await ctx.broker.publishAssignment({
          taskId: a.taskId,
          attempt: a.attempt,
          agent: a.agent,
          title: task!.title,
          body: task!.body,
          ...(task!.command === undefined ? {} : { command: task!.command }),
          fields: jsonSafe(task!.fields),
          timeoutMs: template!.taskTimeoutMs,
          assignedAtMs: a.assignedMs,
          ...(repository ? { repository } : {}),
        }, trace ? { traceparent: trace.traceparent } : undefined);
        trace?.end();
        return true;
      } catch (error) {
        trace?.end(error);
        ctx.log.warn({ err: error, taskId: a.taskId }, 'cannot publish an assignment yet; will retry');
        return false;
      }
    });
    // Marking them published is a hint (a lost mark publishes the assignment again, under the
    // same message id): the commit does not wait for an fsync; the next durable one covers it.
    commitWithoutSync(ctx.db, () =>
      ctx.transaction(() => {
        pending.forEach(({ a }, i) => {
          if (!published[i]) return;
          this.sentAt.set(`${a.taskId}:${a.attempt}`, nowMs);
          if (a.state === 'pending') ctx.state.markPublished(a.taskId, a.attempt);
        });
      }),
    );
    if (published.some(Boolean)) ctx.crashAt(CrashPoint.assignPublished);
  }

  /**
   * The repository an execution works on: the task's own (`repository:`, `base:`) or its agent's
   * template's, as its mirror inside the sandbox. @returns undefined when it names none, null when
   * its mirror is not there yet.
   */
  private repositoryOf(task: Task, template: AgentTemplate): { mirror: string; base?: string } | null | undefined {
    const own = taskRepository(task, this.ctx.config.boardDir);
    const source = own ?? template.repository?.source;
    if (source === undefined) return undefined;
    const mirror = this.repositories.mirrorInSandbox(source);
    if (mirror === undefined) {
      this.repositories.holdReason(source, Date.now());
      return null;
    }
    const base = own !== undefined ? task.fields['base'] : template.repository?.base;
    return typeof base === 'string' && base !== '' ? { mirror, base } : { mirror };
  }

  /** True once an execution has waited {@link CHASE_AFTER_MS} since it was last sent or chased. */
  private isStale(key: string, nowMs: number): boolean {
    const at = this.sentAt.get(key);
    if (at === undefined) {
      this.sentAt.set(key, nowMs);
      return false;
    }
    return nowMs - at >= CHASE_AFTER_MS;
  }

  /**
   * nats-server 2.9 acknowledges a JetStream publish before it reaches the disk, so a broker killed
   * at the wrong moment can lose an assignment or a result that was acknowledged. Published
   * executions that no agent has acknowledged after {@link CHASE_AFTER_MS} are published again (same
   * message id: the broker drops the copy if it still has the original), and for acknowledged ones
   * still without a result, the agent's gateway publishes its result again if it has one.
   */
  private chaseLostMessages(open: readonly AssignmentRow[], nowMs: number): void {
    for (const a of open) {
      if (a.state !== 'acked') continue;
      const key = `${a.taskId}:${a.attempt}`;
      if (!this.isStale(key, nowMs)) continue;
      this.sentAt.set(key, nowMs);
      this.agents.handles.get(a.agent)?.instance.resendResult(a.taskId, a.attempt);
    }
    if (this.sentAt.size > 4 * open.length + 1_000) {
      const keep = new Set(open.map((a) => `${a.taskId}:${a.attempt}`));
      for (const key of this.sentAt.keys()) if (!keep.has(key)) this.sentAt.delete(key);
    }
  }
}

/** Frontmatter may hold dates; the broker carries JSON. */
function jsonSafe(fields: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(fields)) as Record<string, unknown>;
}

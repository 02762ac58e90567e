/**
 * Agents prepared ahead (a template's `prepared`, see {@link AgentTemplate.prepared}): accounts
 * with their home, NATS user and consumers made and no process, so that a task's start pays for its
 * sandbox only. {@link AgentLifecycle} owns the starts; this keeps the prepared names, makes and
 * removes them in the background, and removes at the next start what a killed supervisor left.
 */
import type { SupervisorContext } from '../context.js';
import type { AgentTemplate } from '../templates.js';
import { prepareAgentAhead } from './prepare.js';

/** How long after a failed removal of a prepared agent it is tried again, in ms. */
const PREPARED_REMOVAL_RETRY_MS = 5_000;

/** How long after a failed preparation of a template no other is tried, in ms. */
const PREPARE_RETRY_MS = 5_000;

/**
 * The agents prepared ahead, by name: a row is written before the account is made (`prepared_ms`),
 * marked `ready_ms` once all is made, and deleted in the commit that writes the agent's row at its
 * start (or once the account is removed), so what a killed supervisor left is found and removed at
 * the next start. Times in ms since the epoch.
 */
const PREPARED_AGENTS_TABLE =
  'CREATE TABLE IF NOT EXISTS prepared_agents (name TEXT PRIMARY KEY, template TEXT NOT NULL, prepared_ms INTEGER NOT NULL, ready_ms INTEGER) STRICT';

/** What {@link PreparedAgents} needs of the agent lifecycle that owns it. */
export interface PreparedAgentsHost {
  /** Runs `work`'s commits through the tick's barrier when there is one (see `AgentLifecycle.useBarrier`). */
  commit<T>(work: () => T): T;
  /** Removes an account with its home, consumers and row. @throws what the runtime or the account store throws. */
  deleteAccount(name: string): Promise<void>;
  /** Whether the template may start agents now (it is not backing off after failed starts). */
  mayStart(templateName: string, nowMs: number): boolean;
  /** The first free name `<template>-<n>` (see `AgentLifecycle`). */
  freeName(template: AgentTemplate): string;
  /** Whether the supervisor is shutting down (no preparation then). */
  shuttingDown(): boolean;
}

/** The agents prepared ahead of one supervisor; see the module comment. */
export class PreparedAgents {
  /** Ready names by template, oldest first. */
  private readonly ready = new Map<string, string[]>();
  /** Names being prepared or having their account removed: no start takes them. */
  private readonly busy = new Set<string>();
  /** Preparations under way, by template. */
  private readonly preparingCounts = new Map<string, number>();
  /** Preparations and removals under way. */
  private readonly work = new Set<Promise<void>>();
  /**
   * Names to remove from {@link leftoversDueMs} on: those a previous run left (it was killed), and
   * those whose removal failed (tried again).
   */
  private readonly leftovers: string[] = [];
  /** When the {@link leftovers} are next removed (ms since the epoch; 0 = at the first tick). */
  private leftoversDueMs = 0;
  /** Per template: no preparation before this time (ms since the epoch) after one failed. */
  private readonly retryAtMs = new Map<string, number>();

  /** Makes the table if missing and takes the rows a previous run left as leftovers to remove. */
  constructor(
    private readonly ctx: SupervisorContext,
    private readonly host: PreparedAgentsHost,
  ) {
    ctx.db.exec(PREPARED_AGENTS_TABLE);
    for (const row of ctx.db.prepare('SELECT name FROM prepared_agents ORDER BY name').all() as { name: string }[]) {
      this.leftovers.push(row.name);
      this.busy.add(row.name);
    }
  }

  /** The names prepared and not started, by template. */
  names(): Map<string, string[]> {
    return new Map([...this.ready].map(([template, names]) => [template, [...names]]));
  }

  /** The oldest agent of `templateName` prepared and not started, if any. */
  first(templateName: string): string | undefined {
    return this.ready.get(templateName)?.[0];
  }

  /** Whether `name` is prepared, being prepared or being removed (no start may take it but through {@link take}). */
  holds(name: string): boolean {
    if (this.busy.has(name)) return true;
    for (const names of this.ready.values()) if (names.includes(name)) return true;
    return false;
  }

  /** Takes `name` of `templateName` out of the prepared list: whether it was prepared ahead. */
  take(templateName: string, name: string): boolean {
    const names = this.ready.get(templateName);
    const at = names?.indexOf(name) ?? -1;
    if (!names || at < 0) return false;
    names.splice(at, 1);
    return true;
  }

  /** Deletes `name`'s row, inside the transaction that makes it an agent's (its start). */
  dropRow(name: string): void {
    this.ctx.db.prepare('DELETE FROM prepared_agents WHERE name = ?').run(name);
  }

  /** Removes, in the background, the leftovers (a killed run's, failed removals) once they are due. */
  removeDueLeftovers(nowMs: number): void {
    if (this.leftovers.length > 0 && nowMs >= this.leftoversDueMs) for (const name of this.leftovers.splice(0)) this.remove(name);
  }

  /**
   * Keeps `prepared` agents of each template (made side by side) and removes those of a template
   * that is gone or wants fewer. Not while shutting down, nor for a template backing off after
   * failed starts or within {@link PREPARE_RETRY_MS} of a failed preparation.
   */
  fill(nowMs: number): void {
    if (this.host.shuttingDown()) return;
    for (const [templateName, names] of this.ready) {
      const wanted = this.ctx.templates.get(templateName)?.prepared ?? 0;
      while (names.length > wanted) this.remove(names.pop()!);
    }
    for (const template of this.ctx.templates.values()) {
      if (template.prepared === 0 || !this.host.mayStart(template.name, nowMs) || nowMs < (this.retryAtMs.get(template.name) ?? 0)) continue;
      const held = (this.ready.get(template.name)?.length ?? 0) + (this.preparingCounts.get(template.name) ?? 0);
      for (let i = held; i < template.prepared; i++) this.prepareOne(template);
    }
  }

  /**
   * At shutdown: removes every prepared agent, after the preparations under way (each removes its
   * own agent once it sees the shutdown), waiting at most `waitMs` for them; what is left is removed
   * at the next start.
   */
  async removeAll(waitMs: number): Promise<void> {
    for (const names of this.ready.values()) for (const name of names.splice(0)) this.remove(name);
    const deadline = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), waitMs).unref());
    while (this.work.size > 0) {
      if ((await Promise.race([Promise.allSettled([...this.work]), deadline])) === 'late') {
        this.ctx.log.warn({ preparing: this.work.size }, 'agents prepared ahead still being made or removed at shutdown; the next start removes them');
        break;
      }
    }
  }

  /** Prepares one agent of `template` in the background. */
  private prepareOne(template: AgentTemplate): void {
    const { ctx, host } = this;
    const name = host.freeName(template);
    this.busy.add(name);
    this.preparingCounts.set(template.name, (this.preparingCounts.get(template.name) ?? 0) + 1);
    const work = (async () => {
      // Its row and the account's (see openAccounts' durableCommits) become durable at the tick's next barrier pass.
      host.commit(() => ctx.db.prepare('INSERT INTO prepared_agents (name, template, prepared_ms) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING').run(name, template.name, Date.now()));
      try {
        const account = await ctx.accounts.create({ name, template: template.name });
        await prepareAgentAhead(ctx, account, template);
      } catch (error) {
        ctx.log.warn({ err: error, agent: name, template: template.name }, 'cannot prepare an agent ahead; its start will make it');
        this.retryAtMs.set(template.name, Date.now() + PREPARE_RETRY_MS);
        await this.deleteOne(name);
        return;
      }
      if (host.shuttingDown() || (ctx.templates.get(template.name)?.prepared ?? 0) <= (this.ready.get(template.name)?.length ?? 0)) {
        await this.deleteOne(name);
        return;
      }
      host.commit(() => ctx.db.prepare('UPDATE prepared_agents SET ready_ms = ? WHERE name = ?').run(Date.now(), name));
      const names = this.ready.get(template.name) ?? [];
      names.push(name);
      this.ready.set(template.name, names);
      ctx.log.debug({ agent: name, template: template.name }, 'agent prepared ahead');
    })().finally(() => {
      this.busy.delete(name);
      this.preparingCounts.set(template.name, (this.preparingCounts.get(template.name) ?? 1) - 1);
      this.work.delete(work);
      ctx.requestTick();
    });
    this.work.add(work);
  }

  /**
   * Removes prepared agent `name` (taken out of the ready lists by the caller) in the background. A
   * removal that fails keeps the name from every start and is tried again after
   * {@link PREPARED_REMOVAL_RETRY_MS} (its row stays, so a restart tries too).
   */
  private remove(name: string): void {
    this.busy.add(name);
    const work = this.deleteOne(name).then((removed) => {
      this.work.delete(work);
      if (removed || this.host.shuttingDown()) {
        this.busy.delete(name);
        return;
      }
      this.leftovers.push(name);
      this.leftoversDueMs = Date.now() + PREPARED_REMOVAL_RETRY_MS;
    });
    this.work.add(work);
  }

  /**
   * Deletes prepared agent `name`'s account (home, consumers) and its row; an account that became an
   * agent's (it has an agent row) is kept. A failure is logged and the row kept. Never rejects.
   * @returns whether the agent is gone (false: it failed).
   */
  private async deleteOne(name: string): Promise<boolean> {
    const { ctx } = this;
    try {
      if (ctx.state.agent(name) === undefined) await this.host.deleteAccount(name);
      this.host.commit(() => this.dropRow(name));
      return true;
    } catch (error) {
      ctx.log.error({ err: error, agent: name, retryInMs: PREPARED_REMOVAL_RETRY_MS }, 'cannot remove an agent prepared ahead; trying again');
      return false;
    }
  }
}

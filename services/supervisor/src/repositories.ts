import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { redactSource, syncMirror, type Mirror } from '@warren/workspace';
import { MIRRORS_IN_SANDBOX } from '@warren/agent-runner';
import type { SupervisorContext } from './context.js';

/** A mirror synced this long ago is fetched again (in the background) before the next task that needs it, in ms. */
export const MIRROR_FRESH_MS = 30_000;
/** After a failed sync, the next try waits this long, in ms. */
const RETRY_AFTER_MS = 15_000;

type MirrorState =
  | { readonly kind: 'syncing'; readonly previous?: Mirror }
  | { readonly kind: 'ready'; readonly mirror: Mirror; readonly syncedMs: number }
  | { readonly kind: 'failed'; readonly reason: string; readonly retryMs: number; readonly previous?: Mirror };

/**
 * The repositories tasks work on, as bare mirrors in `<stateDir>/repos` (root-owned, bound
 * read-only into every sandbox at /opt/warren/repos; see `@warren/workspace`'s syncMirror for why
 * no hook, filter or config of the source ever runs). Level-based: planning asks whether a task's
 * repository is ready; the first time it is not, a sync starts in the background and the task
 * waits with the reason; a mirror older than {@link MIRROR_FRESH_MS} is fetched again meanwhile
 * while tasks go on using it.
 */
export class Repositories {
  private readonly states = new Map<string, MirrorState>();
  private readonly running = new Map<string, Promise<void>>();

  /** Makes `<stateDir>/repos` (0755: bound read-only into sandboxes) so that every sandbox has /opt/warren/repos. */
  constructor(private readonly ctx: SupervisorContext) {
    mkdirSync(this.reposDir, { recursive: true, mode: 0o755 });
  }

  /** Whether a fetch is in progress. */
  get fetching(): boolean {
    return this.running.size > 0;
  }

  /** The directory of the mirrors on the host. */
  get reposDir(): string {
    return join(this.ctx.config.stateDir, 'repos');
  }

  /**
   * Why a task on `source` cannot be assigned yet (its mirror is being made, or cannot be), or
   * undefined when its mirror is there. Starts a sync when none is there or it is stale.
   */
  holdReason(source: string, nowMs: number): string | undefined {
    const state = this.states.get(source);
    const due = state === undefined || (state.kind === 'ready' && nowMs - state.syncedMs >= MIRROR_FRESH_MS) || (state.kind === 'failed' && nowMs >= state.retryMs);
    if (due && !this.running.has(source)) this.startSync(source, state);
    return this.reasonOf(source);
  }

  /** Why a task on `source` cannot run now (no mirror yet, or none could be made), or undefined. */
  private reasonOf(source: string): string | undefined {
    const state = this.states.get(source);
    if (state?.kind === 'ready' || (state !== undefined && 'previous' in state && state.previous !== undefined)) return undefined;
    return state?.kind === 'failed' ? `cannot get its repository: ${state.reason}` : `waiting for its repository to be fetched (${redactSource(source)})`;
  }

  /**
   * Fetches `source` into its mirror now (or joins the fetch in progress).
   * @returns undefined when its mirror is there (an older one counts when the fetch failed), else why not.
   */
  async ensure(source: string): Promise<string | undefined> {
    if (!this.running.has(source)) this.startSync(source, this.states.get(source));
    await this.running.get(source);
    return this.reasonOf(source);
  }

  /** The mirror of `source` as agents see it, `/opt/warren/repos/<name>.git`, or undefined before its first sync. */
  mirrorInSandbox(source: string): string | undefined {
    const state = this.states.get(source);
    const mirror = state?.kind === 'ready' ? state.mirror : state?.previous;
    return mirror === undefined ? undefined : `${MIRRORS_IN_SANDBOX}/${mirror.name}.git`;
  }

  /** Waits for the syncs in progress (at shutdown). */
  async close(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()]);
  }

  private startSync(source: string, before: MirrorState | undefined): void {
    const previous = before?.kind === 'ready' ? before.mirror : before?.kind === 'failed' || before?.kind === 'syncing' ? before.previous : undefined;
    this.states.set(source, { kind: 'syncing', ...(previous ? { previous } : {}) });
    const run = syncMirror({ source, reposDir: this.reposDir })
      .then((mirror) => {
        this.states.set(source, { kind: 'ready', mirror, syncedMs: Date.now() });
        if (previous === undefined) this.ctx.log.info({ source: redactSource(source), mirror: mirror.path, commit: mirror.commit }, 'repository mirrored');
      })
      .catch((error: unknown) => {
        const reason = (error as Error).message;
        this.states.set(source, { kind: 'failed', reason, retryMs: Date.now() + RETRY_AFTER_MS, ...(previous ? { previous } : {}) });
        this.ctx.log.warn({ source: redactSource(source), reason }, 'cannot sync a repository; its tasks wait');
      })
      .finally(() => {
        this.running.delete(source);
        this.ctx.requestTick();
      });
    this.running.set(source, run);
  }
}

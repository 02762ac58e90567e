import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { WarrenEvent } from './events.js';
import type { Logger } from '@warren/core';
import { PolicyLoadError, type PolicyEnforcer } from '@warren/policy';

/** Options of {@link watchPolicy}. */
export interface PolicyReloadOptions {
  /** The enforcer in force; its `reload()` is called for each change. */
  readonly policy: PolicyEnforcer;
  /** The files `policy` was loaded from. */
  readonly modelPath: string;
  readonly policyPath: string;
  /** Records `policy.reloaded` and `policy.reload_failed` rows in the audit trail. */
  readonly emit: (event: WarrenEvent) => void;
  readonly logger: Logger;
  /** Quiet time after the last change event before the files are read, in ms. Default 250. */
  readonly debounceMs?: number;
  /**
   * The files are also compared every this many ms, catching changes `fs.watch` missed and
   * restarting a watch whose folder was replaced. Default 2,000.
   */
  readonly rescanIntervalMs?: number;
  /** Called after a change was applied (e.g. to plan again at once); must not throw. */
  readonly onReloaded?: () => void;
}

/** A running watch of the policy files; see {@link watchPolicy}. */
export interface PolicyReloader {
  /**
   * The SHA-256 (hex) of the files as last read: `sha256(model.conf) + sha256(policy.csv)`,
   * hashed again. Equal to the policy in force unless the last change was refused.
   */
  readonly digest: string;
  /** Resolves once the changes seen so far have been applied or refused (for tests and shutdown). */
  settled(): Promise<void>;
  /** Stops watching and waits for a reload under way. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Default of {@link PolicyReloadOptions.debounceMs}. */
export const DEFAULT_POLICY_DEBOUNCE_MS = 250;
/** Default of {@link PolicyReloadOptions.rescanIntervalMs}. */
export const DEFAULT_POLICY_RESCAN_MS = 2_000;

/** The digest of both files' contents; a file that cannot be read counts as its error code. */
async function digestFiles(modelPath: string, policyPath: string): Promise<string> {
  const part = async (path: string): Promise<string> => {
    try {
      return createHash('sha256').update(await readFile(path)).digest('hex');
    } catch (error) {
      return `unreadable:${(error as NodeJS.ErrnoException).code ?? 'error'}`;
    }
  };
  const [model, policy] = await Promise.all([part(modelPath), part(policyPath)]);
  return createHash('sha256').update(`${model}\n${policy}\n`).digest('hex');
}

/**
 * Reloads the policy while Warren runs. Watches the folders of `model.conf` and `policy.csv`
 * (editors save by writing a new file and renaming it over the old one, which a watch of the file
 * itself would miss), waits `debounceMs` after the last event, and when the files' digest differs
 * from the last one read, calls `policy.reload()`:
 * - applied: logs `policy change applied` and audits `policy.reloaded` (actor `supervisor`, object
 *   `policy`, details `{ digest, modelPath, policyPath, fastPath }`), then calls `onReloaded`;
 * - refused (a broken file): logs an error with the file and line (from `PolicyLoadError`) and
 *   audits `policy.reload_failed` (details `{ digest, file, line, message }`; `file` and `line`
 *   null when the error names none); the last good policy stays in force. The same broken content
 *   is reported once; fixing it applies it.
 * Changes are handled one after the other. The digest of the files as they are when the watch
 * starts is taken as the policy in force, so start it right after `loadPolicy`.
 * @returns the running watch; close it when the supervisor stops.
 * @throws {RangeError} if `debounceMs` or `rescanIntervalMs` is not a finite number ≥ 0 (≥ 1 for the rescan).
 */
export async function watchPolicy(options: PolicyReloadOptions): Promise<PolicyReloader> {
  const { policy, modelPath, policyPath, emit } = options;
  const debounceMs = options.debounceMs ?? DEFAULT_POLICY_DEBOUNCE_MS;
  const rescanIntervalMs = options.rescanIntervalMs ?? DEFAULT_POLICY_RESCAN_MS;
  if (!Number.isFinite(debounceMs) || debounceMs < 0) throw new RangeError(`debounceMs must be a number ≥ 0, got ${debounceMs}`);
  if (!Number.isFinite(rescanIntervalMs) || rescanIntervalMs < 1) throw new RangeError(`rescanIntervalMs must be a number ≥ 1, got ${rescanIntervalMs}`);
  const log = options.logger.child({ component: 'policy-reload' });
  let digest = await digestFiles(modelPath, policyPath);
  let closed = false;
  let debounce: NodeJS.Timeout | undefined;
  /** The check under way (and the ones queued behind it), resolved when all are done. */
  let checking: Promise<void> = Promise.resolve();
  let queued = false;

  const files = new Map<string, Set<string>>();
  for (const path of [modelPath, policyPath]) {
    const names = files.get(dirname(path)) ?? new Set<string>();
    names.add(basename(path));
    files.set(dirname(path), names);
  }
  const watchers = new Map<string, FSWatcher>();

  const check = async (): Promise<void> => {
    const next = await digestFiles(modelPath, policyPath);
    if (closed || next === digest) return;
    digest = next;
    try {
      await policy.reload();
    } catch (error) {
      const file = error instanceof PolicyLoadError ? error.path : null;
      const line = error instanceof PolicyLoadError ? (error.line ?? null) : null;
      const message = error instanceof Error ? error.message : String(error);
      log.error({ file, line, reason: message }, 'policy change refused; the last good policy stays in force');
      emit({ actor: 'supervisor', action: 'policy.reload_failed', object: 'policy', details: { digest: next, file, line, message } });
      return;
    }
    log.info({ digest: next, fastPath: policy.fastPath }, 'policy change applied');
    emit({ actor: 'supervisor', action: 'policy.reloaded', object: 'policy', details: { digest: next, modelPath, policyPath, fastPath: policy.fastPath } });
    options.onReloaded?.();
  };

  /** Runs a check after the one under way; at most one waits. */
  const schedule = (): void => {
    if (closed || queued) return;
    queued = true;
    checking = checking.then(async () => {
      queued = false;
      if (closed) return;
      try {
        await check();
      } catch (error) {
        log.error({ err: error }, 'policy change check failed');
      }
    });
  };

  const noteChange = (): void => {
    if (closed) return;
    if (debounce !== undefined) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = undefined;
      schedule();
    }, debounceMs);
  };

  /** Starts the watches that are not running (a folder replaced or missing is retried at the next rescan). */
  const startWatches = (): void => {
    for (const [dir, names] of files) {
      if (watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, { persistent: false }, (_event, name) => {
          if (name === null || names.has(String(name))) noteChange();
        });
        watcher.on('error', (error) => {
          log.warn({ err: error, path: dir }, 'policy watch failed; relying on rescans until it can be restarted');
          watcher.close();
          if (watchers.get(dir) === watcher) watchers.delete(dir);
        });
        watchers.set(dir, watcher);
      } catch (error) {
        log.debug({ err: error, path: dir }, 'cannot watch the policy folder yet; rescans will retry');
      }
    }
  };

  startWatches();
  const rescan = setInterval(() => {
    startWatches();
    schedule();
  }, rescanIntervalMs);
  rescan.unref();

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      closed = true;
      clearInterval(rescan);
      if (debounce !== undefined) clearTimeout(debounce);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
      await checking;
    })();
    return closing;
  };

  return {
    get digest() {
      return digest;
    },
    settled: async () => {
      // A debounced event becomes a check first; then every check queued so far ends.
      while (debounce !== undefined && !closed) await new Promise((resolve) => setTimeout(resolve, debounceMs));
      await checking;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

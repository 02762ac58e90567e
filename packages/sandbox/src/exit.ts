/** How a sandbox ended ({@link SandboxExit}), classified from what is known once its process is gone, and the one-line descriptions shown for it. */
import { formatBytes } from '@warren/core';

/**
 * How a sandbox ended. Exactly one kind applies; they are checked in this order:
 * - `setup_error`: the sandbox never started the agent (bwrap, setpriv, prlimit or cgroup setup
 *   failed); `message` is the first error line they printed.
 * - `timeout` / `watchdog`: the caller stopped it with that reason (`stop(graceMs, { reason,
 *   detail })`) before it ended; `detail` is the caller's text (e.g. `task t1 ran over 60000 ms`).
 * - `oom`: the kernel's OOM killer acted in its memory cgroup and the agent did not exit 0.
 * - `pids`: its pids cgroup refused a fork (`pids.events` `max` > 0) and the agent did not exit 0.
 * - `signaled`: the agent process was killed by `signal` (e.g. `SIGKILL`, also after `stop()`).
 * - `succeeded`: it exited with code 0.
 * - `failed`: it exited with a non-zero `exitCode`.
 */
export type SandboxExit =
  | { readonly kind: 'succeeded'; readonly exitCode: 0 }
  | { readonly kind: 'failed'; readonly exitCode: number }
  | { readonly kind: 'signaled'; readonly signal: string }
  | { readonly kind: 'oom' }
  | { readonly kind: 'pids' }
  | { readonly kind: 'timeout'; readonly detail: string }
  | { readonly kind: 'watchdog'; readonly detail: string }
  | { readonly kind: 'setup_error'; readonly message: string };

/** Every {@link SandboxExit} kind, in classification order. */
export type SandboxExitKind = SandboxExit['kind'];

/** Why a caller stops a sandbox, recorded as the exit kind (see {@link Sandbox.stop}). */
export interface StopReason {
  readonly reason: 'timeout' | 'watchdog';
  /** Free text kept in the exit, e.g. which limit was exceeded and for how long. */
  readonly detail: string;
}

/**
 * One line for logs, task cards and the audit, e.g. `exit code 3`, `killed by SIGKILL`,
 * `out of memory`, `stopped by the watchdog: memory over 512 MiB for 10 s`.
 */
export function describeExit(exit: SandboxExit): string {
  switch (exit.kind) {
    case 'succeeded':
      return 'exit code 0';
    case 'failed':
      return `exit code ${exit.exitCode}`;
    case 'signaled':
      return `killed by ${exit.signal}`;
    case 'oom':
      return 'out of memory (killed by the OOM killer)';
    case 'pids':
      return 'process limit reached (pids.max refused a fork)';
    case 'timeout':
      return `timed out: ${exit.detail}`;
    case 'watchdog':
      return `stopped by the watchdog: ${exit.detail}`;
    case 'setup_error':
      return `sandbox setup failed: ${exit.message}`;
    default: {
      const unknown: never = exit;
      return `unknown exit ${JSON.stringify(unknown)}`;
    }
  }
}

/**
 * What an agent's card and the CLI say when the OOM killer acted in its memory cgroup:
 * `out of memory (limit 1 GiB)`, `limitBytes` being the cgroup's memory limit in bytes.
 */
export function describeOutOfMemory(limitBytes: number): string {
  return `out of memory (limit ${formatBytes(limitBytes)})`;
}

/**
 * What an agent's card and the CLI say when it was stopped for sitting at its process limit
 * (`pids.max`, processes and threads): `process limit reached (512)`.
 */
export function describeProcessLimit(pidsMax: number): string {
  return `process limit reached (${pidsMax})`;
}

/** What is known once the sandbox's process has ended, for {@link classifyExit}. */
export interface ExitFacts {
  /** The setup error text when the agent never started (or bwrap failed building the sandbox), else null. */
  readonly setupError: string | null;
  /** The reason the caller gave to `stop()` before the end, if any. */
  readonly stopReason: StopReason | null;
  /** The agent's exit code (bwrap passes it on), or null when it was killed by a signal. */
  readonly exitCode: number | null;
  /** The signal that killed the agent (or bwrap), or null. */
  readonly signal: string | null;
  /** OOM kills recorded in the memory cgroup. */
  readonly oomKills: number;
  /** Forks refused by the pids cgroup. */
  readonly pidsMaxEvents: number;
}

/** Classifies an ended sandbox (the order is documented on {@link SandboxExit}). Pure. */
export function classifyExit(facts: ExitFacts): SandboxExit {
  if (facts.setupError !== null) return { kind: 'setup_error', message: facts.setupError };
  if (facts.stopReason) return { kind: facts.stopReason.reason, detail: facts.stopReason.detail };
  const clean = facts.signal === null && facts.exitCode === 0;
  if (facts.oomKills > 0 && !clean) return { kind: 'oom' };
  if (facts.pidsMaxEvents > 0 && !clean) return { kind: 'pids' };
  if (facts.signal !== null) return { kind: 'signaled', signal: facts.signal };
  if (facts.exitCode === 0) return { kind: 'succeeded', exitCode: 0 };
  return { kind: 'failed', exitCode: facts.exitCode ?? 255 };
}

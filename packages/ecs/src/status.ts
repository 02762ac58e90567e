/**
 * The states of an agent. Stored in the `Status` component as a u8 code (`AGENT_STATUS_CODES`).
 *
 * - `pending`: added, its process not yet started;
 * - `spawning`: being spawned (account, home, sandbox) before its process exists: an entity with
 *   `Identity` and `Status` only, so instance counts per template are a query (`addSpawningAgent`);
 * - `starting`: its sandbox is starting, no hello yet;
 * - `idle`: up, holding no task; `busy`: up, holding at least one task;
 * - `sleeping`: stopped on purpose after idling, its account kept, wakes on demand;
 * - `stopping`: asked to stop; `stopped`: stopped on purpose; `failed`: exited or timed out unexpectedly.
 */
export const AgentStatus = {
  pending: 'pending',
  starting: 'starting',
  idle: 'idle',
  busy: 'busy',
  sleeping: 'sleeping',
  stopping: 'stopping',
  stopped: 'stopped',
  failed: 'failed',
  spawning: 'spawning',
} as const;
/** One of the `AgentStatus` values. */
export type AgentStatus = (typeof AgentStatus)[keyof typeof AgentStatus];

/** Status → u8 code, in declaration order (pending 0 … failed 7, spawning 8). */
export const AGENT_STATUS_CODES: Readonly<Record<AgentStatus, number>> = {
  pending: 0,
  starting: 1,
  idle: 2,
  busy: 3,
  sleeping: 4,
  stopping: 5,
  stopped: 6,
  failed: 7,
  spawning: 8,
};
const STATUS_BY_CODE = Object.keys(AGENT_STATUS_CODES) as AgentStatus[];

/**
 * What happens to an idle agent: `persistent` keeps running; `sleep` is stopped after idling for a
 * while and woken on demand; `autodelete` is stopped and removed once it has finished a task.
 * Stored in the `Lifecycle` component as a u8 code (persistent 0, sleep 1, autodelete 2).
 */
export const LifecycleMode = { persistent: 'persistent', sleep: 'sleep', autodelete: 'autodelete' } as const;
/** One of the `LifecycleMode` values. */
export type LifecycleMode = (typeof LifecycleMode)[keyof typeof LifecycleMode];

const MODE_CODES: Readonly<Record<LifecycleMode, number>> = { persistent: 0, sleep: 1, autodelete: 2 };
const MODE_BY_CODE = Object.keys(MODE_CODES) as LifecycleMode[];

/** The u8 code of `status`, or `undefined` when it is not an `AgentStatus`. */
export function statusCode(status: string): number | undefined {
  return Object.hasOwn(AGENT_STATUS_CODES, status) ? AGENT_STATUS_CODES[status as AgentStatus] : undefined;
}

/** The status of u8 `code` (codes outside 0–8 read as `failed`). */
export function statusOf(code: number): AgentStatus {
  return STATUS_BY_CODE[code] ?? 'failed';
}

/** The u8 code of `mode`, or `undefined` when it is not a `LifecycleMode`. */
export function modeCode(mode: string): number | undefined {
  return Object.hasOwn(MODE_CODES, mode) ? MODE_CODES[mode as LifecycleMode] : undefined;
}

/** The lifecycle mode of u8 `code` (codes outside 0–2 read as `persistent`). */
export function modeOf(code: number): LifecycleMode {
  return MODE_BY_CODE[code] ?? 'persistent';
}

/**
 * Why the supervisor stops an agent: `sleep` (idle too long; its account is kept and it wakes on
 * demand), `delete` (an `autodelete` agent after its task, or an operator's delete), `shutdown`
 * (Warren stops), `operator` (`warren agent stop` or `restart`), `unresponsive` (no heartbeat),
 * `watchdog` (over its limits, or its home or a shared disk too full). Stored in the `Stop`
 * component as a u8 code, 0 meaning "not stopping".
 */
export const StopReason = {
  sleep: 'sleep',
  delete: 'delete',
  shutdown: 'shutdown',
  operator: 'operator',
  unresponsive: 'unresponsive',
  watchdog: 'watchdog',
} as const;
/** One of the `StopReason` values. */
export type StopReason = (typeof StopReason)[keyof typeof StopReason];

const STOP_REASONS = Object.keys(StopReason) as StopReason[];

/** The u8 code of `reason` (1–6), or `undefined` when it is not a `StopReason`. */
export function stopReasonCode(reason: string): number | undefined {
  const index = STOP_REASONS.indexOf(reason as StopReason);
  return index < 0 ? undefined : index + 1;
}

/** The stop reason of u8 `code`, or null for 0 (not stopping) and unknown codes. */
export function stopReasonOf(code: number): StopReason | null {
  return code > 0 ? (STOP_REASONS[code - 1] ?? null) : null;
}

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/** How a tracked child ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A child process the suite started, with its exit as a promise that never rejects. */
export interface TrackedChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<ChildExit>;
}

const running = new Map<number, ChildProcess>();

/**
 * Starts a child process and remembers its pid until it exits, so {@link stopAllChildren} can end
 * whatever is still running if the suite fails half-way. Only ever signals pids it started.
 * @throws {Error} if the program cannot be started (no pid).
 */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions = {}): TrackedChild {
  const child = spawn(command, [...args], options);
  if (child.pid === undefined) throw new Error(`cannot start ${command}`);
  const pid = child.pid;
  running.set(pid, child);
  const exited = new Promise<ChildExit>((resolve) => {
    child.once('error', () => {
      running.delete(pid);
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      running.delete(pid);
      resolve({ code, signal });
    });
  });
  return { child, pid, exited };
}

/** Sends `signal` to `pid` if it is still one of ours; ignores a process that is already gone. */
export function signalChild(pid: number, signal: NodeJS.Signals): void {
  if (!running.has(pid)) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Ends every tracked child still running: SIGTERM, then SIGKILL after `graceMs` (default 10000,
 * enough for a supervisor to stop its agents and nats-server). Resolves when all have exited.
 */
export async function stopAllChildren(graceMs = 10_000): Promise<void> {
  const left = [...running.entries()];
  if (left.length === 0) return;
  const waits = left.map(([pid, child]) => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    signalChild(pid, 'SIGTERM');
  }));
  const timer = setTimeout(() => {
    for (const [pid] of left) signalChild(pid, 'SIGKILL');
  }, graceMs);
  await Promise.all(waits);
  clearTimeout(timer);
}

/** Resident set size of `pid` in bytes (VmRSS of /proc/<pid>/status); NaN if it is gone. */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb === undefined ? Number.NaN : Number(kb) * 1024;
  } catch {
    return Number.NaN;
  }
}

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { processExists } from '@warren/core';

/** The file in the state directory where the running supervisor keeps its pid (one decimal line). */
export const SUPERVISOR_PID_FILE = 'supervisor.pid';

/**
 * The pid of the supervisor running on `stateDir`: the one in `<stateDir>/supervisor.pid`, if that
 * process still exists on this host.
 * @returns undefined when there is no pid file, it does not hold a positive integer, or the process
 *   is gone (a file left by a supervisor that was killed).
 */
export function runningSupervisorPid(stateDir: string): number | undefined {
  const pidFile = join(stateDir, SUPERVISOR_PID_FILE);
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return processExists(pid) ? pid : undefined;
}

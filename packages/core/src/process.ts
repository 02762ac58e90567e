/**
 * Whether a process with `pid` exists on this host: `kill(pid, 0)` succeeds, or fails with EPERM
 * (the process exists but belongs to another user). See kill(2).
 * @param pid a positive process id.
 */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

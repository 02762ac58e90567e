import { readdirSync, readFileSync } from 'node:fs';

/**
 * The pids of processes on the host whose real uid is `uid`, read from the `Uid:` line (real,
 * effective, saved, filesystem) of each `/proc/<pid>/status` (proc(5)). Zombies count until they are
 * reaped; processes that vanish while scanning are skipped. Sorted ascending; never throws.
 */
export function processesOfUid(uid: number): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let status: string;
    try {
      status = readFileSync(`/proc/${entry}/status`, 'utf8');
    } catch {
      continue;
    }
    const match = /^Uid:\s+(\d+)/m.exec(status);
    if (match && Number(match[1]) === uid) pids.push(Number(entry));
  }
  return pids.sort((a, b) => a - b);
}

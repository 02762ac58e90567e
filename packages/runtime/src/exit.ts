import { describeExit as describeSandboxExit, describeOutOfMemory as outOfMemory, describeProcessLimit as processLimit } from '@warren/sandbox';
import type { AgentExit } from './runtime.js';

/**
 * One line for logs, task cards and the audit, e.g. `exit code 3`, `killed by SIGKILL`,
 * `out of memory (killed by the OOM killer)`, `stopped by the watchdog: memory over 512 MiB for 10 s`,
 * `lost with its node: …`.
 */
export function describeExit(exit: AgentExit): string {
  if (exit.kind === 'lost') return `lost with its node: ${exit.detail}`;
  return describeSandboxExit(exit);
}

/** What an agent's card and the CLI say when it ran out of memory: `out of memory (limit 1 GiB)`; `limitBytes` in bytes. */
export function describeOutOfMemory(limitBytes: number): string {
  return outOfMemory(limitBytes);
}

/** What an agent's card and the CLI say when it sat at its process limit: `process limit reached (512)`. */
export function describeProcessLimit(pidsMax: number): string {
  return processLimit(pidsMax);
}

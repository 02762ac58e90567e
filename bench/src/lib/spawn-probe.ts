/**
 * The `spawn` scenario's measuring process (`node bench/dist/lib/spawn-probe.js <spawns> <heapMiB>`):
 * fills its heap with `heapMiB` MiB of live objects (a Node process the size of a busy supervisor),
 * then starts `/bin/true` `spawns` times with `child_process.spawn` and `spawns` times with
 * `@warren/spawn`'s `spawnProcess`, alternating in batches of 10, one at a time (each waits for the
 * previous one's exit). For each spawn it records the main thread's time inside the spawn call
 * (the fork or posix_spawn, and for child_process the wait for the exec, all synchronous) and the
 * process's CPU (user + system, every thread) from the call to the exit event. Prints one JSON line:
 * `{ rssMiB, implementation, child_process: { callMs[], cpuMs[] }, posix_spawn: { callMs[], cpuMs[] } }`.
 */
import { spawn } from 'node:child_process';
import { spawnImplementation, spawnProcess } from '@warren/spawn';

interface Samples {
  readonly callMs: number[];
  readonly cpuMs: number[];
}

const [spawns = 200, heapMiB = 200] = process.argv.slice(2).map(Number);

/** Live objects of about `mib` MiB, kept reachable, their pages touched. */
function fillHeap(mib: number): unknown[] {
  const keep: unknown[] = [];
  while (process.memoryUsage().heapUsed < mib * 2 ** 20) {
    const chunk: { id: number; name: string; list: number[] }[] = [];
    for (let i = 0; i < 10_000; i++) chunk.push({ id: i, name: `object ${i}`, list: [i, i + 1, i + 2] });
    keep.push(chunk);
  }
  return keep;
}

function cpuNowMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

async function once(kind: 'child_process' | 'posix_spawn', into: Samples): Promise<void> {
  const cpu = cpuNowMs();
  const start = process.hrtime.bigint();
  const child = kind === 'child_process' ? spawn('/bin/true', [], { stdio: 'ignore', env: {} }) : spawnProcess('/bin/true', [], { env: {} });
  into.callMs.push(Number(process.hrtime.bigint() - start) / 1e6);
  await new Promise<void>((resolve, reject) => {
    child.once('exit', () => resolve());
    child.once('error', reject);
  });
  into.cpuMs.push(cpuNowMs() - cpu);
}

async function main(): Promise<void> {
  const keep = fillHeap(heapMiB);
  const results: Record<'child_process' | 'posix_spawn', Samples> = { child_process: { callMs: [], cpuMs: [] }, posix_spawn: { callMs: [], cpuMs: [] } };
  // A few unmeasured spawns of each first (code paths compiled, the addon loaded).
  for (let i = 0; i < 5; i++) {
    await once('child_process', { callMs: [], cpuMs: [] });
    await once('posix_spawn', { callMs: [], cpuMs: [] });
  }
  for (let done = 0; done < spawns; done += 10) {
    for (const kind of ['child_process', 'posix_spawn'] as const) for (let i = 0; i < 10; i++) await once(kind, results[kind]);
  }
  const rssMiB = process.memoryUsage().rss / 2 ** 20;
  console.log(JSON.stringify({ rssMiB, heapObjects: keep.length, implementation: spawnImplementation(), ...results }));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

import { join } from 'node:path';
import type { BenchContext, Scenario } from '../lib/context.js';
import { inRounds, latencyFigure, type Figure } from '../lib/figure.js';
import { spawnTracked } from '../lib/procs.js';

interface ProbeResult {
  readonly rssMiB: number;
  readonly implementation: string;
  readonly child_process: { readonly callMs: number[]; readonly cpuMs: number[] };
  readonly posix_spawn: { readonly callMs: number[]; readonly cpuMs: number[] };
}

/** One run of `lib/spawn-probe.js` (a Node process holding `heapMiB` MiB of live heap). */
async function probe(ctx: BenchContext, spawns: number, heapMiB: number): Promise<ProbeResult> {
  const script = join(ctx.repoRoot, 'bench', 'dist', 'lib', 'spawn-probe.js');
  const child = spawnTracked(process.execPath, ['--max-old-space-size=1024', script, String(spawns), String(heapMiB)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const stdout = child.child.stdout!;
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const [exit] = await Promise.all([child.exited, new Promise((resolve) => stdout.once('close', resolve))]);
  if (exit.code !== 0) throw new Error(`spawn probe exited ${exit.code ?? exit.signal}: ${err.trim()}`);
  const result = JSON.parse(out) as ProbeResult;
  if (result.implementation !== 'posix_spawn') throw new Error(`@warren/spawn fell back to child_process here: ${err.trim()}`);
  return result;
}

/**
 * What starting a process costs the parent's main thread when the parent is large (issue 18: the
 * supervisor holds 150–250 MiB and starts a sandbox per task): `/bin/true` started one at a time
 * from a Node process holding 200 MiB of live heap (50 MiB quick), with `child_process.spawn` (a
 * fork: the page tables copied) and with `@warren/spawn` (posix_spawn: clone(CLONE_VM|CLONE_VFORK)),
 * alternating in batches of 10 in the same process.
 */
export const spawnScenario: Scenario = {
  id: 'spawn',
  title: 'starting a process from a large Node process: child_process.spawn against posix_spawn',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const spawns = ctx.quick ? 50 : 200;
    const heapMiB = ctx.quick ? 50 : 200;
    ctx.progress(`spawn: ${spawns} × /bin/true each way from a process holding ${heapMiB} MiB of heap`);
    const runs = await inRounds(Math.min(ctx.rounds, 3), 0, () => probe(ctx, spawns, heapMiB));
    const rss = Math.round(runs.reduce((sum, r) => sum + r.rssMiB, 0) / runs.length);
    const meta = (id: string, what: string, how: string, baseline?: string) => ({
      id,
      scenario: 'spawn',
      name: `${what} of /bin/true from a Node process of ~${rss} MiB RSS, ${how}`,
      unit: 'ms',
      better: 'lower' as const,
      ...(baseline === undefined ? {} : { baseline }),
      note: `${spawns} spawns each way a round, one at a time, alternating in batches of 10`,
    });
    return [
      latencyFigure(meta('spawn.call.child_process', 'main-thread time in the spawn call', 'child_process.spawn (fork + exec)'), runs.map((r) => r.child_process.callMs)),
      latencyFigure(meta('spawn.call.posix_spawn', 'main-thread time in the spawn call', '@warren/spawn (posix_spawn)', 'spawn.call.child_process'), runs.map((r) => r.posix_spawn.callMs)),
      latencyFigure(meta('spawn.cpu.child_process', 'process CPU from the spawn to the exit event', 'child_process.spawn'), runs.map((r) => r.child_process.cpuMs)),
      latencyFigure(meta('spawn.cpu.posix_spawn', 'process CPU from the spawn to the exit event', '@warren/spawn', 'spawn.cpu.child_process'), runs.map((r) => r.posix_spawn.cpuMs)),
    ];
  },
};

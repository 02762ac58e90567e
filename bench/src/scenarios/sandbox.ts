import { chownSync, lstatSync, mkdirSync, readlinkSync } from 'node:fs';
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { assertIsolation, probeHost, spawnSandbox, type HostCapabilities, type SandboxSpec } from '@warren/sandbox';
import type { BenchContext, Scenario } from '../lib/context.js';
import { inRounds, latencyFigure, roundsFigure, type Figure } from '../lib/figure.js';
import { spawnTracked } from '../lib/procs.js';
import { msSince } from '../lib/stats.js';

/** The uid the benchmark's sandboxes run as: near the top of Warren's range, far from real accounts. */
export const BENCH_UID = 1_900_999_900;
const LIMITS = { memoryMaxBytes: 256 * 2 ** 20, pidsMax: 64, cpuWeight: 100, nofile: 1024, fsizeBytes: 16 * 2 ** 20, tmpfsBytes: 16 * 2 ** 20 };
const RAW_CGROUP_PARENT = 'warren-bench';

/** bwrap arguments as Warren builds them (namespaces, read-only system dirs, /proc, /dev, /tmp, home), then setpriv. */
function rawBwrapArgs(host: HostCapabilities, home: string, argv: readonly string[]): string[] {
  const system = ['--ro-bind', '/usr', '/usr'];
  for (const path of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    try {
      const info = lstatSync(path);
      if (info.isSymbolicLink()) system.push('--symlink', readlinkSync(path), path);
      else if (info.isDirectory()) system.push('--ro-bind', path, path);
    } catch {
      // not on this host
    }
  }
  return [
    '--unshare-pid', '--unshare-net', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try',
    '--die-with-parent', '--new-session', '--clearenv', '--hostname', 'bench',
    '--perms', '0755', '--dir', '/etc', '--perms', '0755', '--dir', '/home',
    ...system,
    '--ro-bind-try', '/etc/ld.so.cache', '/etc/ld.so.cache',
    '--proc', '/proc', '--dev', '/dev',
    '--perms', '1777', '--size', String(LIMITS.tmpfsBytes), '--tmpfs', '/tmp',
    '--bind', home, '/home/bench',
    '--remount-ro', '/', '--chdir', '/home/bench',
    '--setenv', 'PATH', '/usr/bin:/bin',
    '--',
    host.setprivPath!, `--reuid=${BENCH_UID}`, `--regid=${BENCH_UID}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--',
    ...argv,
  ];
}

const PROLOGUE = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done; exec "$@"';

async function removeCgroupDir(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') throw error;
      await delay(5);
    }
  }
  throw new Error(`cgroup ${dir} stayed busy`);
}

/** Runs one process to its end and fails on a non-zero exit. */
async function runToEnd(command: string, args: readonly string[]): Promise<void> {
  const child = spawnTracked(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env: {} });
  let stderr = '';
  child.child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = await child.exited;
  if (exit.code !== 0) throw new Error(`${command} exited ${exit.code ?? exit.signal}: ${stderr.slice(0, 500)}`);
}

/** The raw figure: `bwrap … -- setpriv … /bin/true`, no cgroups, no prlimit. */
function rawBwrap(host: HostCapabilities, home: string): () => Promise<void> {
  const args = rawBwrapArgs(host, home, ['/bin/true']);
  return () => runToEnd(host.bwrapPath!, args);
}

/**
 * Baseline (a) as raw commands: the recipe Warren uses, written out by hand: cgroup directories
 * (v1 memory, pids, cpu; the controller-less cgroup2 one) made and limited, a shell that joins them
 * and execs `prlimit … bwrap … setpriv … /bin/true`, the directories removed after the exit.
 */
function rawRecipe(host: HostCapabilities, home: string): () => Promise<void> {
  let n = 0;
  const hierarchies = [host.cgroup.paths.unified, host.cgroup.paths.memory, host.cgroup.paths.pids, host.cgroup.paths.cpu]
    .filter((p): p is string => p !== null && p !== undefined)
    .filter((p, i, all) => all.indexOf(p) === i);
  const bwrapArgs = rawBwrapArgs(host, home, ['/bin/true']);
  return async () => {
    const name = `raw-${process.pid}-${n++}`;
    const dirs: string[] = [];
    try {
      for (const h of hierarchies) {
        const dir = join(h, RAW_CGROUP_PARENT, name);
        await mkdir(dir, { recursive: true });
        dirs.push(dir);
        if (h === host.cgroup.paths.memory) await writeFile(join(dir, 'memory.limit_in_bytes'), String(LIMITS.memoryMaxBytes));
        if (h === host.cgroup.paths.pids) await writeFile(join(dir, 'pids.max'), String(LIMITS.pidsMax));
        if (h === host.cgroup.paths.cpu) await writeFile(join(dir, 'cpu.shares'), '1024');
      }
      await runToEnd('/bin/sh', [
        '-c', PROLOGUE, 'bench', String(dirs.length), ...dirs.map((d) => join(d, 'cgroup.procs')),
        host.prlimitPath!, `--nofile=${LIMITS.nofile}:${LIMITS.nofile}`, `--fsize=${LIMITS.fsizeBytes}:${LIMITS.fsizeBytes}`, `--nproc=${LIMITS.pidsMax}:${LIMITS.pidsMax}`, '--',
        host.bwrapPath!, ...bwrapArgs,
      ]);
    } finally {
      for (const dir of dirs.reverse()) await removeCgroupDir(dir);
    }
  };
}

/** Warren: `spawnSandbox` with argv `/bin/true`, awaited until its exit (cgroups removed, log flushed). */
function warrenSpawn(dir: string, home: string): () => Promise<void> {
  let n = 0;
  return async () => {
    const name = `wb-${process.pid}-${n++}`;
    const spec: SandboxSpec = {
      name,
      uid: BENCH_UID,
      gid: BENCH_UID,
      homeHostPath: home,
      homePath: '/home/bench',
      passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\nbench:x:${BENCH_UID}:${BENCH_UID}::/home/bench:/bin/sh\n`,
      group: `root:x:0:\nbench:x:${BENCH_UID}:\n`,
      argv: ['/bin/true'],
      env: { HOME: '/home/bench', PATH: '/usr/bin:/bin' },
      limits: LIMITS,
      runDir: join(dir, 'run', name),
      logPath: join(dir, 'logs', `${name}.log`),
      logMaxBytes: 1024 * 1024,
    };
    const sandbox = await spawnSandbox(spec);
    const exit = await sandbox.exited;
    // 'succeeded' in the current exit classification, 'exited' with code 0 in the earlier one.
    const end = exit as { readonly kind: string; readonly exitCode?: number };
    if (!(end.kind === 'succeeded' || (end.kind === 'exited' && end.exitCode === 0))) throw new Error(`sandbox ${name} ended ${JSON.stringify(exit)}`);
  };
}

/** Runs `total` calls of `fn` with `concurrency` in flight; returns completions per second. */
async function throughput(fn: () => Promise<void>, total: number, concurrency: number): Promise<number> {
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next += 1;
        await fn();
      }
    }),
  );
  return total / (msSince(start) / 1000);
}

/** Runs `count` calls of `fn` one after another; returns each call's ms. */
async function sequential(fn: () => Promise<void>, count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    await fn();
    samples.push(msSince(start));
  }
  return samples;
}

/**
 * Sandbox spawn (issue 6 scenarios 1–2 context): `/bin/true` through raw bwrap + setpriv, through
 * the full raw recipe (baseline a) and through `spawnSandbox`: latency one at a time (p50/p99) and
 * throughput with 16 in flight, as 16 agents would spawn.
 */
export const sandboxScenario: Scenario = {
  id: 'sandbox',
  title: 'Sandbox spawn',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const host = await probeHost();
    assertIsolation(host);
    const dir = join(ctx.scratchDir, 'sandbox');
    const home = join(dir, 'home');
    mkdirSync(home, { recursive: true, mode: 0o700 });
    chownSync(home, BENCH_UID, BENCH_UID);
    const variants = [
      { key: 'raw-bwrap', name: 'raw bwrap + setpriv, /bin/true', fn: rawBwrap(host, home) },
      { key: 'raw-recipe', name: 'baseline (a): raw cgroups + prlimit + bwrap + setpriv, /bin/true', fn: rawRecipe(host, home) },
      { key: 'warren', name: 'spawnSandbox(/bin/true) to exit', fn: warrenSpawn(dir, home) },
    ];
    const count = ctx.quick ? 15 : 60;
    const total = ctx.quick ? 48 : 160;
    const figures: Figure[] = [];
    try {
      await measureVariants();
    } finally {
      // The per-spawn directories are gone; remove their parent in each hierarchy too.
      const parents = [host.cgroup.paths.unified, host.cgroup.paths.memory, host.cgroup.paths.pids, host.cgroup.paths.cpu];
      for (const h of new Set(parents.filter((p): p is string => typeof p === 'string'))) await removeCgroupDir(join(h, RAW_CGROUP_PARENT)).catch(() => undefined);
    }
    return figures;

    async function measureVariants(): Promise<void> {
    for (const v of variants) {
      ctx.progress(`sandbox: ${v.name}`);
      const latency = await inRounds(ctx.rounds, ctx.warmup, () => sequential(v.fn, count));
      const rate = await inRounds(ctx.rounds, ctx.warmup, () => throughput(v.fn, total, 16));
      const baseline = v.key === 'warren' ? { baseline: 'sandbox.latency.raw-recipe' } : v.key === 'raw-recipe' ? { baseline: 'sandbox.latency.raw-bwrap' } : {};
      figures.push(
        latencyFigure(
          { id: `sandbox.latency.${v.key}`, scenario: 'Sandbox spawn', name: `${v.name}, one at a time`, unit: 'ms', better: 'lower', ...baseline, note: `${count} spawns per round` },
          latency,
        ),
      );
      figures.push(
        roundsFigure(
          {
            id: `sandbox.rate.${v.key}`,
            scenario: 'Sandbox spawn',
            name: `${v.name}, 16 in flight`,
            unit: 'sandboxes/s',
            better: 'higher',
            ...(v.key === 'warren' ? { baseline: 'sandbox.rate.raw-recipe' } : v.key === 'raw-recipe' ? { baseline: 'sandbox.rate.raw-bwrap' } : {}),
            note: `${total} spawns per round`,
          },
          rate,
        ),
      );
    }
    }
  },
};

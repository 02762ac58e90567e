import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, hostname, loadavg, release, totalmem, type } from 'node:os';

/** The machine a run was made on, as the results file and the summary print it. */
export interface MachineDescription {
  readonly host: string;
  readonly cpuModel: string;
  readonly cpuCount: number;
  readonly memoryBytes: number;
  readonly kernel: string;
  readonly node: string;
  /** `nats-server --version` output, or `not found`. */
  readonly natsServer: string;
  readonly bwrap: string;
  /** 1, 5 and 15 minute load averages when the run started and when it ended. */
  readonly loadAverageStart: readonly number[];
  loadAverageEnd?: readonly number[];
}

function versionOf(command: string, args: readonly string[]): string {
  for (const candidate of [command, `/usr/sbin/${command}`, `/usr/bin/${command}`]) {
    try {
      return execFileSync(candidate, [...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n')[0] ?? '';
    } catch {
      // try the next place
    }
  }
  return 'not found';
}

/** Describes this machine now (cpu model and count, memory, kernel, node, nats-server, bwrap, load). */
export function describeMachine(): MachineDescription {
  const list = cpus();
  return {
    host: hostname(),
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cpuCount: list.length,
    memoryBytes: totalmem(),
    kernel: `${type()} ${release()}`,
    node: process.version,
    natsServer: versionOf('nats-server', ['--version']),
    bwrap: versionOf('bwrap', ['--version']),
    loadAverageStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** The current 1, 5 and 15 minute load averages, rounded to 0.01. */
export function currentLoad(): number[] {
  return loadavg().map((l) => Math.round(l * 100) / 100);
}

/**
 * CPU time the whole machine has spent busy since boot, in ms summed over every CPU: the
 * non-idle fields (user, nice, system, irq, softirq, steal) of the `cpu` line of /proc/stat
 * (proc(5)), in USER_HZ ticks converted at 100 per second. The difference of two readings is the
 * CPU all processes used between them; on an otherwise idle machine, what a run cost.
 */
export function machineBusyMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('/proc/stat has no cpu line');
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + steal) * 10;
}

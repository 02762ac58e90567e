import { execFileSync } from 'node:child_process';
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

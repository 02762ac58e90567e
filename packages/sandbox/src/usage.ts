import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import type { SandboxCgroups } from './cgroups.js';
import { processesOfUid } from './procs.js';

/**
 * What a sandbox uses right now, for the watchdog.
 * - `memoryBytes`: memory charged to its memory cgroup (v2 `memory.current`, v1
 *   `memory.usage_in_bytes`: anonymous memory plus page cache of files it wrote), in bytes.
 * - `pids`: tasks in its pids cgroup (`pids.current`: processes and threads, including bwrap's two
 *   helpers).
 * - `cpuMs`: CPU time used by the whole tree since it started (cgroup2 `cpu.stat` `usage_usec` or
 *   v1 `cpuacct.usage`), in milliseconds.
 * - `pidsRefused`: forks its pids cgroup refused since it started (`pids.events` `max`, cgroup v1
 *   and v2): a count that keeps growing means something sits at the process limit.
 * - `oomKills`: processes the kernel's OOM killer killed in its memory cgroup since it started
 *   (v2 `memory.events` / v1 `memory.oom_control` `oom_kill`).
 * Without cgroups the two counts are 0.
 */
export interface SandboxUsage {
  readonly memoryBytes: number;
  readonly pids: number;
  readonly cpuMs: number;
  readonly pidsRefused: number;
  readonly oomKills: number;
}

const ZERO: SandboxUsage = { memoryBytes: 0, pids: 0, cpuMs: 0, pidsRefused: 0, oomKills: 0 };

/** The buffer every reader reads into: reads are synchronous and their text copied out at once. */
const READ_BUFFER = Buffer.alloc(512);

/** A reader of one sandbox's usage; {@link close} it when the sandbox ends. */
export interface UsageReader {
  /** Reads the current usage. Never throws (a value that cannot be read is 0). */
  read(): SandboxUsage;
  /** Releases the descriptors; later reads return the last value read, with `memoryBytes` and `pids` 0. */
  close(): void;
}

/**
 * Reads usage from cgroup files through descriptors opened once: each {@link UsageReader.read} is
 * five `pread`s at offset 0 (the kernel regenerates the text on each read), a few microseconds,
 * so it can run every tick for every agent.
 */
export class CgroupUsageReader implements UsageReader {
  private fds: { memory: number | null; pids: number | null; cpu: number | null; pidsEvents: number | null; memoryEvents: number | null } | null = null;
  private last: SandboxUsage = ZERO;
  private closed = false;

  constructor(private readonly files: SandboxCgroups['files']) {}

  private open(path: string | null): number | null {
    if (path === null) return null;
    try {
      return openSync(path, 'r');
    } catch {
      return null;
    }
  }

  private text(fd: number | null): string {
    if (fd === null) return '';
    try {
      const n = readSync(fd, READ_BUFFER, 0, READ_BUFFER.length, 0);
      return READ_BUFFER.toString('latin1', 0, n);
    } catch {
      return '';
    }
  }

  read(): SandboxUsage {
    if (this.closed) return this.last;
    this.fds ??= {
      memory: this.open(this.files.memoryUsage),
      pids: this.open(this.files.pidsCurrent),
      cpu: this.open(this.files.cpu?.path ?? null),
      pidsEvents: this.open(this.files.pidsEvents),
      memoryEvents: this.open(this.files.memoryEvents),
    };
    const memoryBytes = Number.parseInt(this.text(this.fds.memory), 10) || 0;
    const pids = Number.parseInt(this.text(this.fds.pids), 10) || 0;
    let cpuMs = 0;
    const cpuText = this.text(this.fds.cpu);
    if (this.files.cpu?.format === 'cpu.stat') {
      const match = /^usage_usec (\d+)$/m.exec(cpuText);
      cpuMs = match ? Math.floor(Number(match[1]) / 1000) : 0;
    } else if (cpuText.length > 0) {
      cpuMs = Math.floor((Number.parseInt(cpuText, 10) || 0) / 1_000_000);
    }
    const pidsRefused = Number(/^max (\d+)$/m.exec(this.text(this.fds.pidsEvents))?.[1] ?? 0);
    const oomKills = Number(/^oom_kill (\d+)$/m.exec(this.text(this.fds.memoryEvents))?.[1] ?? 0);
    this.last = { memoryBytes, pids, cpuMs, pidsRefused, oomKills };
    return this.last;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.last = { ...this.last, memoryBytes: 0, pids: 0 };
    for (const fd of Object.values(this.fds ?? {})) {
      if (fd !== null) closeSync(fd);
    }
    this.fds = null;
  }
}

/** Page size of x86_64 Linux (the only architecture the seccomp filter supports). */
const PAGE_BYTES = 4096;
/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat, fixed at 100 in the Linux ABI. */
const USER_HZ = 100;

/**
 * Usage of a sandbox without cgroups (`unsafe-no-cgroups` mode on a host without them), summed
 * over the processes whose real uid is `uid`: resident memory from `/proc/<pid>/statm`, CPU time
 * (utime + stime) from `/proc/<pid>/stat`, and the process count (threads not counted). CPU time
 * of processes that already exited is lost. It scans all of /proc: costlier than the cgroup reader.
 */
export class ProcUsageReader implements UsageReader {
  private last: SandboxUsage = ZERO;
  private closed = false;

  constructor(private readonly uid: number) {}

  read(): SandboxUsage {
    if (this.closed) return this.last;
    let memoryBytes = 0;
    let ticks = 0;
    const pids = processesOfUid(this.uid);
    for (const pid of pids) {
      try {
        memoryBytes += (Number(readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ')[1]) || 0) * PAGE_BYTES;
        const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
        // Fields after the parenthesised command name (which may contain spaces); utime and stime
        // are fields 14 and 15 of proc(5), i.e. 12 and 13 after it.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += (Number(fields[11]) || 0) + (Number(fields[12]) || 0);
      } catch {
        // exited while scanning
      }
    }
    this.last = { memoryBytes, pids: pids.length, cpuMs: Math.floor((ticks * 1000) / USER_HZ), pidsRefused: 0, oomKills: 0 };
    return this.last;
  }

  close(): void {
    this.closed = true;
    this.last = { ...this.last, memoryBytes: 0, pids: 0 };
  }
}

/**
 * @warren/sandbox: runs an agent process isolated on Linux, as root, with bubblewrap, setpriv,
 * prlimit and cgroups.
 *
 * ```ts
 * import { assertIsolation, describeExit, probeHost, removeStaleCgroups, spawnSandbox } from '@warren/sandbox';
 * assertIsolation(await probeHost());           // throws, with an apt-get hint, if bwrap etc. are missing
 * await removeStaleCgroups();                    // what a crashed run left under warren/
 * const sandbox = await spawnSandbox({
 *   name: 'shell-1', uid: 1_900_000_001, gid: 1_900_000_001,
 *   homeHostPath: '/var/lib/warren/home/shell-1', homePath: '/home/shell-1',
 *   passwd: 'shell-1:x:1900000001:1900000001::/home/shell-1:/bin/sh\n',
 *   group: 'shell-1:x:1900000001:\n',
 *   argv: ['/usr/bin/node', '/opt/warren/agent-runner/dist/main.js'],
 *   env: { HOME: '/home/shell-1', PATH: '/usr/bin:/bin' },
 *   readOnlyBinds: [{ source: '/srv/warren/agent-runner', target: '/opt/warren/agent-runner' }],
 *   limits: { memoryMaxBytes: 512 * 2 ** 20, pidsMax: 256, cpuWeight: 100, nofile: 1024,
 *             fsizeBytes: 64 * 2 ** 20, tmpfsBytes: 64 * 2 ** 20 },
 *   runDir: '/var/lib/warren/run/agents/shell-1', logPath: '/var/lib/warren/logs/shell-1.log',
 *   logMaxBytes: 8 * 2 ** 20,
 * });
 * const { memoryBytes, pids, cpuMs } = sandbox.usage();   // every watchdog tick
 * const exit = await sandbox.stop(5000, { reason: 'watchdog', detail: 'memory over limit for 10 s' });
 * console.log(describeExit(exit));               // 'stopped by the watchdog: memory over limit for 10 s'
 * ```
 */
export { probeHost, assertIsolation, parseMountInfo } from './host.js';
export type { HostCapabilities, CgroupCapabilities, CgroupVersion, IsolationMode, MountEntry } from './host.js';
export { spawnSandbox, removeStaleCgroups, removeOrphanCgroups } from './sandbox.js';
export type { OnBusyCgroup } from './cgroups.js';
export type { Sandbox, SpawnSandboxOptions } from './sandbox.js';
export { classifyExit, describeExit, describeOutOfMemory, describeProcessLimit } from './exit.js';
export type { SandboxExit, SandboxExitKind, StopReason, ExitFacts } from './exit.js';
export type { SandboxUsage } from './usage.js';
export { validateSpec } from './spec.js';
export type { SandboxSpec, SandboxLimits, BindMount } from './spec.js';
export { processesOfUid } from './procs.js';
export { binShIsDash } from './prologue.js';
export { CGROUP_PARENT } from './cgroups.js';
export {
  buildSeccompProgram,
  X86_64_SYSCALLS,
  DENIED_SYSCALLS,
  UNAVAILABLE_SYSCALLS,
  CLONE_NEW_FLAGS,
  DENIED_IOCTLS,
  ALLOWED_SOCKET_FAMILIES,
  ALLOWED_PERSONALITIES,
  SECCOMP_ERRNO,
} from './seccomp.js';
export type { FilteredSyscall } from './seccomp.js';
export { ensureHomeImage, releaseHomeImage, removeStaleMounts, homeImageUsage, HOME_MOUNT_OPTIONS } from './home.js';
export type { HomeImageOptions, HomeImage } from './home.js';
export { SandboxError, SandboxSpecError, SandboxUnavailableError } from './errors.js';

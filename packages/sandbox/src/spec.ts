import { isAbsolute, normalize } from 'node:path';
import { SandboxSpecError } from './errors.js';
import type { IsolationMode } from './host.js';

/** A host path bound into the sandbox at `target` (both absolute). */
export interface BindMount {
  readonly source: string;
  readonly target: string;
}

/**
 * Resource limits of one sandbox. Sizes are bytes; `cpuWeight` is relative CPU share.
 * - `memoryMaxBytes`: memory cgroup limit (RAM, no swap); exceeding it OOM-kills (exit kind `oom`).
 * - `pidsMax`: pids cgroup limit (processes + threads), also RLIMIT_NPROC of the agent uid.
 * - `cpuWeight`: 1..10000, 100 = default (cgroup v2 `cpu.weight`, v1 `cpu.shares` = weight × 10.24).
 * - `nofile`: RLIMIT_NOFILE (open files). `fsizeBytes`: RLIMIT_FSIZE (largest file written).
 * - `tmpfsBytes`: size of the tmpfs mounted on /tmp.
 */
export interface SandboxLimits {
  readonly memoryMaxBytes: number;
  readonly pidsMax: number;
  readonly cpuWeight: number;
  readonly nofile: number;
  readonly fsizeBytes: number;
  readonly tmpfsBytes: number;
}

/**
 * Everything needed to run one agent process sandboxed.
 * - `name`: unique among live sandboxes, `[a-z0-9][a-z0-9-]*` (at most 63 chars); names the
 *   cgroups (`warren/<name>`) and the UTS hostname.
 * - `uid`, `gid`: the agent's numeric ids (never 0); the process runs as them with no capabilities.
 * - `homeHostPath`: host directory, owned by `uid` (mode 0700), bound read-write at `homePath`.
 * - `passwd`, `group`: full contents of `/etc/passwd` and `/etc/group` inside.
 * - `argv`: the program (absolute path inside the sandbox) and its arguments.
 * - `cwd`: working directory inside; default `homePath`.
 * - `env`: the whole environment inside; nothing from the host leaks in.
 * - `readOnlyBinds`, `binds`: extra host paths bound read-only / read-write.
 * - `runDir`: host directory for generated files (`passwd`, `group`); created if missing.
 * - `runDir` must not be writable by the agent (Warren's state dir); it is created mode 0700.
 * - Bind targets must not lie in places the agent can write (`homePath`, `/tmp`) or that the
 *   sandbox builds itself (`/proc`, `/dev`, `/etc/passwd`, `/etc/group`): bwrap, as root, would
 *   create their mount points there following the agent's symlinks.
 * - `logPath`: host file receiving stdout and stderr; `logMaxBytes` caps it (then it rotates
 *   to `<logPath>.1` and earlier bytes are dropped and counted).
 * - `network`: `none` (default) gives the sandbox a network namespace of its own with only a
 *   loopback; `host` shares the host's network (used only where the sandbox stands for a Kubernetes
 *   pod, which has a network: the fake kubelet of `@warren/testing`).
 * - `isolation`: default `full`; `unsafe-no-cgroups` only when a template asks for it by name (see
 *   {@link IsolationMode}); the sandbox then reports `unsafe === true`.
 */
export interface SandboxSpec {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly homeHostPath: string;
  readonly homePath: string;
  readonly passwd: string;
  readonly group: string;
  readonly argv: readonly string[];
  readonly cwd?: string;
  readonly env: Readonly<Record<string, string>>;
  readonly readOnlyBinds?: readonly BindMount[];
  readonly binds?: readonly BindMount[];
  readonly limits: SandboxLimits;
  readonly runDir: string;
  readonly logPath: string;
  readonly logMaxBytes: number;
  readonly isolation?: IsolationMode;
  readonly network?: 'none' | 'host';
}

/** Places inside the sandbox a bind target may not be at or under (besides `homePath`). */
const RESERVED_TARGETS = ['/tmp', '/proc', '/dev', '/etc/passwd', '/etc/group'];

/** Whether `path` is `dir` or below it (both normalized absolute paths). */
function within(path: string, dir: string): boolean {
  const base = dir.replace(/\/+$/, '');
  return path === base || path.startsWith(`${base}/`);
}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_ID = 4_294_967_294;

/**
 * Checks `spec` field by field.
 * @throws {SandboxSpecError} naming the first invalid field (e.g. `limits.pidsMax`, `binds[1].target`).
 */
export function validateSpec(spec: SandboxSpec): void {
  const name = typeof spec.name === 'string' ? spec.name : '?';
  const fail = (field: string, message: string): never => {
    throw new SandboxSpecError(name, field, message);
  };
  if (!NAME.test(spec.name)) fail('name', `${JSON.stringify(spec.name)} must match ${NAME.source}`);
  for (const key of ['uid', 'gid'] as const) {
    const id = spec[key];
    if (!Number.isInteger(id) || id <= 0 || id > MAX_ID) fail(key, `${id} must be an integer in 1..${MAX_ID} (never 0)`);
  }
  const noNul = (field: string, value: unknown): string => {
    if (typeof value !== 'string') return fail(field, 'must be a string');
    if (value.includes('\0')) fail(field, 'must not contain NUL');
    return value;
  };
  const absolute = (field: string, value: unknown): void => {
    const path = noNul(field, value);
    if (!isAbsolute(path)) fail(field, `${JSON.stringify(path)} must be an absolute path`);
  };
  const target = (field: string, value: unknown): void => {
    absolute(field, value);
    const path = value as string;
    if (path.split('/').includes('..') || normalize(path) !== path.replace(/\/+$/, '') || path === '/') {
      fail(field, `${JSON.stringify(path)} must be a normalized absolute path other than /`);
    }
  };
  absolute('homeHostPath', spec.homeHostPath);
  target('homePath', spec.homePath);
  noNul('passwd', spec.passwd);
  noNul('group', spec.group);
  if (!Array.isArray(spec.argv) || spec.argv.length === 0) fail('argv', 'must list at least the program');
  spec.argv.forEach((arg, i) => noNul(`argv[${i}]`, arg));
  absolute('argv[0]', spec.argv[0]);
  if (spec.cwd !== undefined) absolute('cwd', spec.cwd);
  for (const [key, value] of Object.entries(spec.env)) {
    if (!ENV_KEY.test(key)) fail(`env.${key}`, `variable name must match ${ENV_KEY.source}`);
    noNul(`env.${key}`, value);
  }
  for (const [list, binds] of [['readOnlyBinds', spec.readOnlyBinds ?? []], ['binds', spec.binds ?? []]] as const) {
    binds.forEach((bind, i) => {
      absolute(`${list}[${i}].source`, bind.source);
      target(`${list}[${i}].target`, bind.target);
      const taken = [spec.homePath, ...RESERVED_TARGETS].find((dir) => within(bind.target, dir) || within(dir, bind.target));
      if (taken !== undefined) {
        fail(`${list}[${i}].target`, `${JSON.stringify(bind.target)} overlaps ${taken}, which the agent can write or the sandbox builds`);
      }
    });
  }
  const positive = (field: string, value: number, min = 1, max = Number.MAX_SAFE_INTEGER): void => {
    if (!Number.isInteger(value) || value < min || value > max) fail(field, `${value} must be an integer in ${min}..${max}`);
  };
  const { limits } = spec;
  positive('limits.memoryMaxBytes', limits.memoryMaxBytes, 4 * 1024 * 1024);
  positive('limits.pidsMax', limits.pidsMax);
  positive('limits.cpuWeight', limits.cpuWeight, 1, 10_000);
  positive('limits.nofile', limits.nofile, 16);
  positive('limits.fsizeBytes', limits.fsizeBytes);
  positive('limits.tmpfsBytes', limits.tmpfsBytes);
  absolute('runDir', spec.runDir);
  absolute('logPath', spec.logPath);
  positive('logMaxBytes', spec.logMaxBytes);
  if (spec.isolation !== undefined && spec.isolation !== 'full' && spec.isolation !== 'unsafe-no-cgroups') {
    fail('isolation', `${JSON.stringify(spec.isolation)} must be 'full' or 'unsafe-no-cgroups'`);
  }
  if (spec.network !== undefined && spec.network !== 'none' && spec.network !== 'host') {
    fail('network', `${JSON.stringify(spec.network)} must be 'none' or 'host'`);
  }
}

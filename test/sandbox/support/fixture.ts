/**
 * The escape and exhaustion battery's fixture: a Warren layout in a temp directory (state
 * database, policies, homes made by @warren/accounts, runner socket directories) and agents
 * spawned with exactly the spec shape the supervisor's `spawnAgent` uses (bwrap + setpriv +
 * cgroups through `spawnSandbox`, generated passwd/group, home bound read-write, the runner
 * socket directory bound read-only at /run/warren, repository directories read-only), plus the
 * host-side checks the battery makes (file hashes, the process table, namespaces, cgroups).
 */
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { openAccounts, type Account, type AccountStore } from '@warren/accounts';
import {
  assertIsolation,
  CGROUP_PARENT,
  probeHost,
  processesOfUid,
  spawnSandbox,
  type HostCapabilities,
  type Sandbox,
  type SandboxExit,
  type SandboxLimits,
  type SandboxSpec,
} from '@warren/sandbox';
import { openDatabase, type SqliteDatabase } from '@warren/store';

/** The repository root. */
export const repo = join(import.meta.dirname, '..', '..', '..');

const MiB = 1024 * 1024;

/** `resources` of agents/shell.yaml, as the supervisor's template loader turns them into limits. */
export const SHELL_LIMITS: SandboxLimits = {
  memoryMaxBytes: 1024 * MiB,
  pidsMax: 512,
  cpuWeight: 100,
  nofile: 4096,
  fsizeBytes: 256 * MiB,
  tmpfsBytes: 256 * MiB,
};

/** `mounts` of agents/shell.yaml: repository paths bound read-only under /repo. */
const SHELL_MOUNTS = [
  ['package.json', '/repo/package.json'],
  ['package-lock.json', '/repo/package-lock.json'],
  ['tsconfig.base.json', '/repo/tsconfig.base.json'],
  ['vitest.config.ts', '/repo/vitest.config.ts'],
  ['packages', '/repo/packages'],
  ['services', '/repo/services'],
  ['node_modules', '/repo/node_modules'],
] as const;

/** `environment` of agents/shell.yaml: the only supervisor variables passed in. */
const SHELL_ENV_ALLOW = ['LANG', 'TZ'];

/** The supervisor's paths inside a sandbox (services/supervisor/src/supervisor.ts). */
export const RUNNER_IN_SANDBOX = '/opt/warren/agent-runner';
export const AGENTS_BIN_IN_SANDBOX = '/opt/warren/agents/bin';
/** The runner channel socket's file name in the socket directory (the gateway's `agent.sock`). */
export const SOCKET_NAME = 'agent.sock';

/**
 * Fails (never skips) when the machine cannot run the battery: root, bwrap, setpriv, prlimit and
 * the memory and pids cgroup controllers (from `assertIsolation`, with its apt-get hint), and the
 * programs the battery runs inside sandboxes.
 */
export async function requireBatteryHost(): Promise<HostCapabilities> {
  const host = await probeHost();
  assertIsolation(host);
  const tools: [string, string][] = [
    ['/bin/sh', 'dash'],
    ['/usr/bin/perl', 'perl-base'],
    ['/usr/bin/node', 'nodejs'],
    ['/usr/bin/head', 'coreutils'],
    ['/usr/bin/sha256sum', 'coreutils'],
    ['/usr/bin/setsid', 'util-linux'],
  ];
  const missing = tools.filter(([path]) => !existsSync(path));
  if (missing.length > 0) {
    throw new Error(
      `the sandbox battery needs ${missing.map(([p]) => p).join(', ')}: apt-get install -y ${[...new Set(missing.map(([, p]) => p))].join(' ')}`,
    );
  }
  const perlModules = spawnSync('/usr/bin/perl', ['-MSocket', '-MPOSIX', '-e', '1']);
  if (perlModules.status !== 0) throw new Error('perl lacks Socket or POSIX: apt-get install -y perl-base');
  if (!existsSync(join(repo, 'packages', 'agent-runner', 'dist', 'main.js'))) {
    throw new Error('the agent runner is not built (it is bound into every sandbox): run `npm run build`');
  }
  if (!existsSync(join(repo, 'packages', 'sandbox', 'dist', 'index.js'))) {
    throw new Error('@warren/sandbox is not built (the crash test runs it in a separate process): run `npm run build`');
  }
  return host;
}

/** errno name → the `errno:N` text probes print (numbers from the running system). */
export function E(name: keyof typeof constants.errno): string {
  return `errno:${constants.errno[name]}`;
}

/** SHA-256 (hex) of a file's bytes. */
export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/**
 * SHA-256 over a directory tree: every entry's relative path, type, mode, owner and (for files)
 * content, symlinks not followed. At most `maxEntries` entries (throws beyond, to stay bounded).
 */
export function sha256Tree(dir: string, maxEntries = 5000): string {
  const hash = createHash('sha256');
  let count = 0;
  const walk = (path: string, rel: string): void => {
    if (++count > maxEntries) throw new Error(`sha256Tree: more than ${maxEntries} entries under ${dir}`);
    const info = lstatSync(path);
    const link = info.isSymbolicLink() ? readlinkSync(path) : null;
    hash.update(`${rel}\0${info.mode}\0${info.uid}:${info.gid}\0${link ?? ''}\0`);
    if (link !== null) return;
    if (info.isDirectory()) {
      for (const entry of readdirSync(path).sort()) walk(join(path, entry), `${rel}/${entry}`);
    } else if (info.isFile()) {
      hash.update(readFileSync(path));
    }
  };
  walk(dir, '.');
  return hash.digest('hex');
}

/** The target of /proc/<pid>/ns/<ns> (e.g. `net:[4026531840]`), or null if the process is gone. */
export function namespaceOf(pid: number | 'self', ns: 'net' | 'user' | 'mnt' | 'pid' | 'cgroup' | 'ipc' | 'uts'): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/${ns}`);
  } catch {
    return null;
  }
}

/** A field of /proc/<pid>/status (e.g. `Seccomp`, `NoNewPrivs`, `TracerPid`, `Uid`), or null. */
export function statusField(pid: number | 'self', field: string): string | null {
  try {
    const match = new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? match[1]!.trim() : null;
  } catch {
    return null;
  }
}

/** The command name of a host process (/proc/<pid>/comm), or null if it is gone. */
export function commOf(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

/**
 * The cgroup paths of a host process, one per hierarchy line of /proc/<pid>/cgroup
 * (`id:controllers:path`), or null if the process is gone.
 */
export function cgroupsOf(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split(':').slice(2).join(':'));
  } catch {
    return null;
  }
}

/** `key=value` lines of a probe's output, later keys winning. */
export function parseProbe(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z0-9_.-]+)=(.*)$/.exec(line);
    if (match) result[match[1]!] = match[2]!;
  }
  return result;
}

/** Polls `check` every 25 ms until it returns true; fails naming `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(25);
  }
}

/**
 * The exit code of an exit that carries one (`exited`, and the `succeeded`/`failed` kinds of the
 * hardened classification), else null.
 */
export function exitCodeOf(exit: SandboxExit): number | null {
  const code = (exit as { exitCode?: unknown }).exitCode;
  return typeof code === 'number' ? code : null;
}

/** Whether an exit is a clean exit 0 (`exited` 0, or `succeeded`). */
export function succeeded(exit: SandboxExit): boolean {
  const kind: string = exit.kind;
  return kind === 'succeeded' || (kind === 'exited' && exitCodeOf(exit) === 0);
}

/** Options of {@link Warren.spawn}: what a template would change. */
export interface AgentOptions {
  /** Replaces entries of {@link SHELL_LIMITS}. */
  readonly limits?: Partial<SandboxLimits>;
  /** Extra read-only binds, after the supervisor's. */
  readonly readOnlyBinds?: readonly { source: string; target: string }[];
  /** The template's log cap; default the supervisor's 8 MiB. */
  readonly logMaxBytes?: number;
}

/** One agent as the supervisor runs it: its account, the runner socket and its sandbox. */
export interface Agent {
  readonly name: string;
  readonly account: Account;
  readonly spec: SandboxSpec;
  readonly sandbox: Sandbox;
  /** Connections accepted on the agent's runner socket (/run/warren/agent.sock inside). */
  readonly runnerConnections: () => number;
  /** The agent's output so far (the current log file). */
  log(): string;
  /** Host pids whose real uid is the agent's. */
  hostPids(): number[];
  /** Waits until the log contains `text`; fails with the log if the sandbox ends first or after `timeoutMs`. */
  waitForLog(text: string, timeoutMs?: number): Promise<void>;
}

let fixtures = 0;

/**
 * A Warren layout in a temp directory, laid out as `warren up` lays out its own: `var/` (state
 * database `warren.db`, `run/agents/<name>/socket`, `logs/`), `policies/` (a copy of the repo's),
 * `home/<template>/<name>` homes from `home/skel`. Agents get uids from a range private to this
 * process (1_900_500_000 + …), so parallel test files never share one.
 */
export class Warren {
  private readonly agents: Agent[] = [];
  private readonly servers: Server[] = [];
  private closing: Promise<void> | undefined;
  private counter = 0;

  private constructor(
    readonly root: string,
    readonly stateDir: string,
    readonly homeRoot: string,
    readonly policiesDir: string,
    readonly db: SqliteDatabase,
    readonly accounts: AccountStore,
    readonly host: HostCapabilities,
  ) {}

  /** Makes the layout (the temp root is mode 0711 so agent uids can reach their homes, as on a real host). */
  static async open(): Promise<Warren> {
    const host = await requireBatteryHost();
    const root = mkdtempSync(join(tmpdir(), 'warren-battery-'));
    chmodSync(root, 0o711);
    const stateDir = join(root, 'var');
    mkdirSync(stateDir, { mode: 0o700 });
    const policiesDir = join(root, 'policies');
    cpSync(join(repo, 'policies'), policiesDir, { recursive: true });
    const homeRoot = join(root, 'home');
    const db = openDatabase(join(stateDir, 'warren.db'));
    const uidMin = 1_900_500_000 + (process.pid % 4000) * 100 + (fixtures++ % 5) * 20;
    const accounts = openAccounts(db, { homeRoot, skeletonDir: join(repo, 'home', 'skel'), uidMin, uidMax: uidMin + 19 });
    return new Warren(root, stateDir, homeRoot, policiesDir, db, accounts, host);
  }

  /** The state database's path on the host. */
  get databasePath(): string {
    return join(this.stateDir, 'warren.db');
  }

  /**
   * Creates the account {@link account}`(prefix)` and starts `argv` in its
   * sandbox exactly as the supervisor's `spawnAgent` does; the gateway's part (a socket directory
   * owned by the agent, mode 0700, with a listening `agent.sock`, mode 0600) is done here.
   */
  async spawn(prefix: string, argv: readonly string[], options: AgentOptions = {}): Promise<Agent> {
    return this.spawnAs(await this.account(prefix), argv, options);
  }

  /**
   * Creates an account of template `shell` named `<prefix>-<pid in base 36>-<n>`: sandbox names
   * (and so cgroups `warren/<name>`) are host-wide, so names never repeat across test processes.
   */
  account(prefix: string): Promise<Account> {
    return this.accounts.create({ name: `${prefix}-${process.pid.toString(36)}-${++this.counter}`, template: 'shell' });
  }

  /** {@link spawn} for an existing account (one made with `accounts.create`). */
  async spawnAs(account: Account, argv: readonly string[], options: AgentOptions = {}): Promise<Agent> {
    const { name } = account;
    const runDir = join(this.stateDir, 'run', 'agents', name);
    const socketDir = join(runDir, 'socket');
    rmSync(socketDir, { recursive: true, force: true });
    mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    let connections = 0;
    const server = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    this.servers.push(server);
    const socketPath = join(socketDir, SOCKET_NAME);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    chownSync(socketDir, account.uid, account.gid);
    chownSync(socketPath, account.uid, account.gid);
    chmodSync(socketPath, 0o600);

    const homeInSandbox = `/home/${name}`;
    const env: Record<string, string> = {
      HOME: homeInSandbox,
      USER: name,
      LOGNAME: name,
      PATH: '/usr/local/bin:/usr/bin:/bin',
      LANG: 'C.UTF-8',
      WARREN_AGENT: name,
      WARREN_RUNTIME: JSON.stringify({ kind: 'shell', timeoutMs: 300_000 }),
      WARREN_MAX_CONCURRENT: '1',
    };
    for (const key of SHELL_ENV_ALLOW) {
      const value = process.env[key];
      if (value !== undefined) env[key] = value;
    }
    const spec: SandboxSpec = {
      name,
      uid: account.uid,
      gid: account.gid,
      homeHostPath: account.home,
      homePath: homeInSandbox,
      passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\n${this.accounts.passwdLine(account, { home: homeInSandbox })}\n`,
      group: `root:x:0:\n${this.accounts.groupLine(account)}\n`,
      argv: [...argv],
      env,
      readOnlyBinds: [
        { source: join(repo, 'packages', 'agent-runner'), target: RUNNER_IN_SANDBOX },
        { source: join(repo, 'agents', 'bin'), target: AGENTS_BIN_IN_SANDBOX },
        { source: socketDir, target: '/run/warren' },
        ...SHELL_MOUNTS.map(([source, target]) => ({ source: join(repo, source), target })),
        ...(options.readOnlyBinds ?? []),
      ],
      limits: { ...SHELL_LIMITS, ...options.limits },
      runDir,
      logPath: join(this.stateDir, 'logs', `${name}.log`),
      logMaxBytes: options.logMaxBytes ?? 8 * MiB,
    };
    const sandbox = await spawnSandbox(spec);
    let ended = false;
    const markEnded = (): void => {
      ended = true;
    };
    sandbox.exited.then(markEnded, markEnded);
    const log = (): string => {
      try {
        return readFileSync(spec.logPath, 'utf8');
      } catch {
        return '';
      }
    };
    const agent: Agent = {
      name,
      account,
      spec,
      sandbox,
      runnerConnections: () => connections,
      log,
      hostPids: () => processesOfUid(account.uid),
      waitForLog: async (text, timeoutMs = 20_000) => {
        const deadline = Date.now() + timeoutMs;
        while (!log().includes(text)) {
          if (ended) {
            // the last bytes may still be on their way to the file
            await sandbox.exited;
            if (log().includes(text)) return;
            throw new Error(`agent ${name} ended (${JSON.stringify(await sandbox.exited)}) before printing ${JSON.stringify(text)}; log:\n${log().slice(-3000)}`);
          }
          if (Date.now() > deadline) throw new Error(`agent ${name} did not print ${JSON.stringify(text)} in ${timeoutMs} ms; log:\n${log().slice(-3000)}`);
          await delay(25);
        }
      },
    };
    this.agents.push(agent);
    return agent;
  }

  /** The cgroup directories Warren makes for sandbox `name` in every hierarchy this host has. */
  cgroupDirs(name: string): string[] {
    const { paths } = this.host.cgroup;
    // `cpuacct` is its own hierarchy on some v1 hosts (newer @warren/sandbox reads CPU time there).
    const cpuacct = (paths as { cpuacct?: string | null }).cpuacct ?? null;
    const hierarchies = [paths.unified, paths.memory, paths.pids, paths.cpu, cpuacct];
    return [...new Set(hierarchies.filter((p): p is string => p !== null))].map((p) =>
      join(p, CGROUP_PARENT, name),
    );
  }

  /**
   * The cgroup directories sandbox `name` has right now (those of {@link cgroupDirs} that exist);
   * fails unless its memory and pids cgroups are among them.
   */
  liveCgroupDirs(name: string): string[] {
    const dirs = this.cgroupDirs(name).filter((dir) => existsSync(dir));
    for (const controller of ['memory', 'pids'] as const) {
      const file = this.cgroupFile(name, controller, 'cgroup.procs');
      if (!file || !existsSync(file)) throw new Error(`sandbox ${name} has no ${controller} cgroup (${file})`);
    }
    return dirs;
  }

  /** A cgroup control file of sandbox `name` in the hierarchy of `controller` (v1), or null when absent. */
  cgroupFile(name: string, controller: 'memory' | 'pids' | 'cpu', file: string): string | null {
    const { cgroup } = this.host;
    const base = cgroup.version === 'v2' ? cgroup.paths.unified : cgroup.paths[controller];
    return base ? join(base, CGROUP_PARENT, name, file) : null;
  }

  /** Reads a cgroup control file of sandbox `name` as text, or null when it is gone. */
  readCgroup(name: string, controller: 'memory' | 'pids' | 'cpu', file: string): string | null {
    const path = this.cgroupFile(name, controller, file);
    if (!path) return null;
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      return null;
    }
  }

  /**
   * Creates `<home>/<file>` on the host for a held agent to see (exclusive create: never follows a
   * symlink the agent may have planted there).
   */
  release(agent: Agent, file = 'release'): void {
    const fd = openSync(join(agent.account.home, file), 'wx', 0o644);
    writeSync(fd, 'go\n');
    closeSync(fd);
  }

  /**
   * A well-behaved agent of another uid that runs a small job to the end: writes 1..2000 to
   * `numbers.txt` in its home and prints its sha256. Resolves with what the test must check.
   */
  async neighbourJob(): Promise<{ exit: SandboxExit; printed: string; expected: string; onHost: string }> {
    const agent = await this.spawn('neighbour', [
      '/bin/sh',
      '-c',
      'seq 1 2000 > "$HOME/numbers.txt" && sha256sum < "$HOME/numbers.txt" && echo neighbour-done',
    ]);
    const exit = await agent.sandbox.exited;
    const numbers = Array.from({ length: 2000 }, (_, i) => `${i + 1}\n`).join('');
    const expected = createHash('sha256').update(numbers).digest('hex');
    const onHost = (() => {
      try {
        return sha256File(join(agent.account.home, 'numbers.txt'));
      } catch {
        return '';
      }
    })();
    return { exit, printed: agent.log(), expected, onHost };
  }

  /** A fresh random marker. */
  static marker(): string {
    return randomBytes(12).toString('hex');
  }

  /**
   * Stops every agent (SIGKILL after no grace), closes the runner sockets, removes the accounts
   * and homes, closes the database and removes the layout. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled(this.agents.map((a) => a.sandbox.stop(0)));
      await Promise.all(this.servers.map((s) => new Promise((resolve) => s.close(resolve))));
      for (const account of this.accounts.list()) await this.accounts.remove(account.name).catch(() => undefined);
      this.db.close();
      rmSync(this.root, { recursive: true, force: true });
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

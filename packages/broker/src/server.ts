import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, chmod, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { ConfigError, MissingCapabilityError, silentLogger, type Logger } from '@warren/core';
import { NatsServerError } from './errors.js';

/** Options of {@link startNatsServer}. */
export interface StartNatsServerOptions {
  /**
   * Directory for the server's config file (`nats-server.conf`), ports file and JetStream store
   * (`<storeDir>/jetstream`). Created if missing. Reusing it keeps streams and consumers.
   */
  storeDir: string;
  /** The nats-server executable (a path or a name looked up on PATH). Default: `nats-server` on PATH, then /usr/sbin, /usr/local/bin, /usr/bin. */
  binary?: string;
  /** Port on 127.0.0.1; default: a free port chosen by the server (`port: -1`). */
  port?: number;
  /** Receives the server's log lines (debug; warnings and errors at their level). Default: silent. */
  logger?: Logger;
  /** How long to wait for the server to listen, in ms. Default 10000. */
  startTimeoutMs?: number;
  /**
   * The one user allowed to connect. Default: none, and then any client connecting to the port
   * may use the server (for tests). Warren's supervisor always gives one.
   */
  authorization?: NatsAuthorization;
  /**
   * Users that connect with an NKey (agents connected to NATS directly), each held to its publish
   * and subscribe allow-lists by the server; kept in `<storeDir>/nats-users.conf`, which the config
   * includes, and changed later with {@link EmbeddedNatsServer.setUsers}. Needs `authorization`
   * (the supervisor's own user, which keeps full access). Default: none.
   */
  users?: readonly NatsAgentUser[];
  /**
   * The server's name (`server_name`), which a JetStream cluster needs distinct on every server:
   * 1 to 64 of `[A-Za-z0-9_-]`. Default: none (nats-server makes one up).
   */
  serverName?: string;
  /**
   * Joins a NATS cluster (nats-server `cluster` block, see
   * https://docs.nats.io/running-a-nats-service/configuration/clustering/cluster_config): routes
   * listen on 127.0.0.1:`port` and connect to `routes`. JetStream then runs clustered (streams
   * with replicas, leaders elected by Raft), which needs `serverName`. Default: a lone server.
   */
  cluster?: NatsClusterOptions;
}

/** The cluster block of a server in a NATS cluster (see {@link StartNatsServerOptions.cluster}). */
export interface NatsClusterOptions {
  /** The cluster's name, the same on every server: 1 to 64 of `[A-Za-z0-9_-]`. */
  readonly name: string;
  /** The route port on 127.0.0.1 (1 to 65535). */
  readonly port: number;
  /** The other servers' route URLs, `nats-route://127.0.0.1:<port>`. */
  readonly routes: readonly string[];
}

/**
 * The subjects one NATS user may publish to and subscribe to (nats-server `permissions`, see
 * https://docs.nats.io/running-a-nats-service/configuration/securing_nats/authorization). Each is
 * a subject or a wildcard pattern (`*` one token, `>` the rest); nothing else is allowed.
 */
export interface NatsPermissions {
  readonly publish: { readonly allow: readonly string[] };
  readonly subscribe: { readonly allow: readonly string[] };
}

/** A user that authenticates with an NKey (https://docs.nats.io/running-a-nats-service/configuration/securing_nats/auth_intro/nkey_auth). */
export interface NatsAgentUser {
  /** The user's public NKey: `U` and 55 more base32 characters. */
  readonly nkey: string;
  readonly permissions: NatsPermissions;
}

/** The user and password a server takes (nats-server `authorization { user, password }`). */
export interface NatsAuthorization {
  /** `[A-Za-z0-9_-]{1,64}`. */
  readonly user: string;
  /** 16 to 256 characters of `[A-Za-z0-9_-]` (such as base64url). */
  readonly password: string;
}

/** A nats-server child with JetStream, listening on 127.0.0.1 only. */
export interface EmbeddedNatsServer {
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** The child's process id. */
  readonly pid: number;
  /** The store directory it was started with (absolute). */
  readonly storeDir: string;
  /** The user clients must connect as, when the server was started with one. */
  readonly authorization: NatsAuthorization | undefined;
  /** Resolves when the child has exited (however it ended). */
  readonly exited: Promise<NatsServerExit>;
  /**
   * Replaces the NKey users (see {@link StartNatsServerOptions.users}): rewrites
   * `<storeDir>/nats-users.conf` atomically (a temporary file renamed over it) and sends SIGHUP to
   * the server, resolving once the server logged that it reloaded its configuration. The server
   * applies changed permissions to live connections (subscriptions no longer allowed end) and
   * closes the connections of users removed. Calls run one at a time, in order.
   * @throws {ConfigError} for an invalid user, or when the server was started without `authorization`.
   * @throws {NatsServerError} if the server refused the new configuration, did not report a reload
   *   within 10 s, or is not running.
   */
  setUsers(users: readonly NatsAgentUser[]): Promise<void>;
  /**
   * Stops the server: SIGTERM, then SIGKILL if it is still running after 5 s. Resolves once the
   * process is gone. Idempotent (the same promise every time).
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** How the nats-server child ended. */
export interface NatsServerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

const INSTALL_HINT = 'apt-get install -y nats-server';
const FALLBACK_DIRS = ['/usr/sbin', '/usr/local/bin', '/usr/bin', '/usr/local/sbin'];
const TAIL_LINES = 40;
const KILL_AFTER_MS = 5_000;
const POLL_MS = 20;

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the nats-server executable: `binary` if it is a path, else `binary` (default
 * `nats-server`) on PATH, then in /usr/sbin, /usr/local/bin, /usr/bin, /usr/local/sbin.
 * @returns the absolute path of the executable.
 * @throws {MissingCapabilityError} (`WARREN_MISSING_CAPABILITY`, hint `apt-get install -y nats-server`).
 */
export async function findNatsServer(binary?: string): Promise<string> {
  const name = binary ?? 'nats-server';
  if (name.includes('/')) {
    const path = resolve(name);
    if (await isExecutable(path)) return path;
    throw new MissingCapabilityError(`nats-server (${path})`, INSTALL_HINT);
  }
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => isAbsolute(d)), ...FALLBACK_DIRS];
  for (const dir of dirs) {
    const path = join(dir, name);
    if (await isExecutable(path)) return path;
  }
  throw new MissingCapabilityError(name, INSTALL_HINT);
}

function confString(value: string, source: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f"\\]/.test(value)) {
    throw new ConfigError(source, `path ${JSON.stringify(value)} must not contain quotes, backslashes or control characters`);
  }
  return `"${value}"`;
}

function checkAuthorization(auth: NatsAuthorization): void {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(auth.user)) {
    throw new ConfigError('startNatsServer authorization.user', 'must be 1 to 64 of [A-Za-z0-9_-]');
  }
  if (!/^[A-Za-z0-9_-]{16,256}$/.test(auth.password)) {
    throw new ConfigError('startNatsServer authorization.password', 'must be 16 to 256 of [A-Za-z0-9_-]');
  }
}

const NKEY_USER = /^U[A-Z2-7]{55}$/;
/** A subject or wildcard pattern of a permission: printable ASCII tokens without quotes, backslashes or spaces. */
const PERMISSION_SUBJECT = /^[!#-[\]-~]+$/;
const USERS_FILE = 'nats-users.conf';
const RELOAD_TIMEOUT_MS = 10_000;

function checkUsers(users: readonly NatsAgentUser[], source: string): void {
  const seen = new Set<string>();
  users.forEach((user, i) => {
    if (typeof user?.nkey !== 'string' || !NKEY_USER.test(user.nkey)) {
      throw new ConfigError(`${source}[${i}].nkey`, 'must be a public user NKey (U and 55 base32 characters)');
    }
    if (seen.has(user.nkey)) throw new ConfigError(`${source}[${i}].nkey`, `${user.nkey} is listed twice`);
    seen.add(user.nkey);
    for (const kind of ['publish', 'subscribe'] as const) {
      const allow = user.permissions?.[kind]?.allow;
      if (!Array.isArray(allow)) throw new ConfigError(`${source}[${i}].permissions.${kind}.allow`, 'must be an array of subjects');
      allow.forEach((subject: unknown, j) => {
        if (typeof subject !== 'string' || !PERMISSION_SUBJECT.test(subject) || subject.split('.').some((t) => t === '')) {
          throw new ConfigError(`${source}[${i}].permissions.${kind}.allow[${j}]`, `${JSON.stringify(subject)} is not a subject (dot-separated tokens of printable ASCII, no quotes, backslashes or spaces)`);
        }
      });
    }
  });
}

/**
 * The users file `<storeDir>/nats-users.conf`: the whole `authorization` block, the supervisor's
 * user (no permissions: everything) and the NKey users with their allow-lists (an empty list
 * allows nothing).
 */
function renderUsers(auth: NatsAuthorization, users: readonly NatsAgentUser[]): string {
  const list = (subjects: readonly string[]) => `[${subjects.map((x) => `"${x}"`).join(', ')}]`;
  return [
    '# Written by @warren/broker; rewritten by setUsers.',
    'authorization {',
    '  users: [',
    `    { user: "${auth.user}", password: "${auth.password}" }`,
    ...users.map(
      (u) =>
        `    { nkey: "${u.nkey}", permissions: { publish: { allow: ${list(u.permissions.publish.allow)} }, subscribe: { allow: ${list(u.permissions.subscribe.allow)} } } }`,
    ),
    '  ]',
    '}',
    '',
  ].join('\n');
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const ROUTE_URL = /^nats-route:\/\/127\.0\.0\.1:(\d{1,5})$/;

function checkPort(port: number, source: string): void {
  if (!(Number.isInteger(port) && port > 0 && port < 65536)) throw new ConfigError(source, `must be an integer from 1 to 65535, got ${port}`);
}

function checkCluster(serverName: string | undefined, cluster: NatsClusterOptions | undefined): void {
  if (serverName !== undefined && !NAME.test(serverName)) throw new ConfigError('startNatsServer serverName', 'must be 1 to 64 of [A-Za-z0-9_-]');
  if (cluster === undefined) return;
  if (serverName === undefined) throw new ConfigError('startNatsServer cluster', 'a clustered JetStream server needs a serverName');
  if (typeof cluster.name !== 'string' || !NAME.test(cluster.name)) throw new ConfigError('startNatsServer cluster.name', 'must be 1 to 64 of [A-Za-z0-9_-]');
  checkPort(cluster.port, 'startNatsServer cluster.port');
  cluster.routes.forEach((route, i) => {
    const match = ROUTE_URL.exec(route);
    if (!match) throw new ConfigError(`startNatsServer cluster.routes[${i}]`, `${JSON.stringify(route)} is not nats-route://127.0.0.1:<port>`);
    checkPort(Number(match[1]), `startNatsServer cluster.routes[${i}]`);
  });
}

/** The `server_name` line and `cluster` block of a clustered server, or nothing. */
function renderCluster(serverName: string | undefined, cluster: NatsClusterOptions | undefined): string[] {
  return [
    ...(serverName === undefined ? [] : [`server_name: "${serverName}"`]),
    ...(cluster === undefined
      ? []
      : [
          'cluster {',
          `  name: "${cluster.name}"`,
          `  listen: "127.0.0.1:${cluster.port}"`,
          `  routes: [${cluster.routes.map((r) => `"${r}"`).join(', ')}]`,
          '}',
        ]),
  ];
}

/** The nats-server config written to `<storeDir>/nats-server.conf` (format: https://docs.nats.io/running-a-nats-service/configuration). */
function renderConfig(storeDir: string, port: number, auth: NatsAuthorization | undefined, clusterLines: readonly string[] = []): string {
  return [
    '# Written by @warren/broker startNatsServer; rewritten on every start.',
    ...clusterLines,
    'host: "127.0.0.1"',
    `port: ${port}`,
    `ports_file_dir: ${confString(storeDir, 'startNatsServer storeDir')}`,
    'jetstream {',
    `  store_dir: ${confString(storeDir, 'startNatsServer storeDir')}`,
    '}',
    // The include path is relative to this file's directory (nats-server refuses absolute ones).
    ...(auth ? [`include "${USERS_FILE}"`] : []),
    '',
  ].join('\n');
}

function probeTcp(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolvePromise(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolvePromise(false);
    });
  });
}

class OutputTail {
  private readonly lines: string[] = [];
  private partial = '';
  /** Called with every complete line (for reload reports). */
  readonly listeners = new Set<(line: string) => void>();

  constructor(private readonly logger: Logger) {}

  push(chunk: Buffer): void {
    const text = this.partial + chunk.toString('utf8');
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) this.line(line);
  }

  flush(): void {
    if (this.partial) this.line(this.partial);
    this.partial = '';
  }

  private line(line: string): void {
    const trimmed = line.trimEnd();
    if (!trimmed) return;
    for (const listener of this.listeners) listener(trimmed);
    // The password sits in a 0600 config file that only root reads; nkeys or bcrypt would need
    // tools the host may not have.
    if (trimmed.includes('Plaintext passwords detected')) {
      this.logger.debug({ line: trimmed }, 'nats-server');
      return;
    }
    this.lines.push(trimmed);
    if (this.lines.length > TAIL_LINES) this.lines.shift();
    if (trimmed.includes('[ERR]') || trimmed.includes('[FTL]')) this.logger.error({ line: trimmed }, 'nats-server');
    else if (trimmed.includes('[WRN]')) this.logger.warn({ line: trimmed }, 'nats-server');
    else this.logger.debug({ line: trimmed }, 'nats-server');
  }

  text(): string {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].join('\n');
  }
}

/**
 * Starts nats-server with JetStream as a child process, listening on 127.0.0.1 only.
 *
 * Writes `<storeDir>/nats-server.conf` (mode 0600; listen 127.0.0.1, `port` or -1, `ports_file_dir`
 * and JetStream `store_dir` both `storeDir`, and with `authorization` an `include` of
 * `<storeDir>/nats-users.conf`, mode 0600: the user and password every client but the NKey users
 * must give, and the NKey `users` with their allow-lists; `storeDir` is then set to mode 0700),
 * starts the child, waits for its ports file (`<name>_<pid>.ports`) while watching for an early
 * exit, then probes the TCP port.
 *
 * @returns the running server; close it with {@link EmbeddedNatsServer.close}.
 * @throws {MissingCapabilityError} if nats-server is not installed.
 * With `serverName` and `cluster`, the config also names the server and holds its `cluster` block
 * (JetStream then runs clustered).
 *
 * @throws {ConfigError} if `storeDir` contains characters the config format cannot hold, `port` is out
 *   of range, `serverName` or `cluster` is invalid, a user is invalid (see {@link EmbeddedNatsServer.setUsers}) or `users` come without `authorization`.
 * @throws {NatsServerError} (`WARREN_NATS_SERVER`) if the child fails to start, exits early or does
 *   not listen within `startTimeoutMs`; the error carries the tail of its output.
 */
export async function startNatsServer(options: StartNatsServerOptions): Promise<EmbeddedNatsServer> {
  const logger = options.logger ?? silentLogger;
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;
  const port = options.port ?? -1;
  if (port !== -1) checkPort(port, 'startNatsServer port');
  checkCluster(options.serverName, options.cluster);
  if (options.authorization) checkAuthorization(options.authorization);
  if (options.users !== undefined) {
    if (!options.authorization) throw new ConfigError('startNatsServer users', 'NKey users need authorization (the supervisor\'s own user)');
    checkUsers(options.users, 'startNatsServer users');
  }
  const binary = await findNatsServer(options.binary);
  const storeDir = resolve(options.storeDir);
  await mkdir(storeDir, { recursive: true, mode: 0o700 });
  const configPath = join(storeDir, 'nats-server.conf');
  // The config may hold the password: readable by its owner only, also when an older run left it 0644.
  await writeFile(configPath, renderConfig(storeDir, port, options.authorization, renderCluster(options.serverName, options.cluster)), { mode: 0o600 });
  await chmod(configPath, 0o600);
  const usersPath = join(storeDir, USERS_FILE);
  const writeUsers = async (users: readonly NatsAgentUser[]): Promise<void> => {
    if (!options.authorization) return;
    const temporary = `${usersPath}.${process.pid}.tmp`;
    await writeFile(temporary, renderUsers(options.authorization, users), { mode: 0o600 });
    await chmod(temporary, 0o600);
    await rename(temporary, usersPath);
  };
  await writeUsers(options.users ?? []);
  if (options.authorization) await chmod(storeDir, 0o700);

  const tail = new OutputTail(logger);
  // The server must not outlive a supervisor killed with SIGKILL (a second server on the same store
  // would fight over it): where setpriv(1) exists, it sets the parent-death signal and execs the
  // server, so the pid is the server's own.
  const setpriv = await findExecutable(['/usr/bin/setpriv', '/bin/setpriv']);
  const [command, args] = setpriv
    ? [setpriv, ['--pdeathsig', 'SIGTERM', '--', binary, '-c', configPath]]
    : [binary, ['-c', configPath]];
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (chunk: Buffer) => tail.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => tail.push(chunk));

  let spawnError: Error | undefined;
  let exit: NatsServerExit | undefined;
  const exited = new Promise<NatsServerExit>((resolveExit) => {
    child.once('error', (error) => {
      spawnError = error;
      // A child that failed to spawn emits no 'exit' event.
      if (child.pid === undefined) {
        exit = { code: null, signal: null };
        resolveExit(exit);
      }
    });
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      tail.flush();
      resolveExit(exit);
    });
  });

  const fail = async (message: string, cause?: unknown): Promise<never> => {
    if (!exit && child.pid !== undefined) {
      child.kill('SIGKILL');
      await exited;
    }
    throw new NatsServerError(storeDir, message, tail.text(), exit?.code ?? null, exit?.signal ?? null, cause === undefined ? undefined : { cause });
  };

  const pid = child.pid;
  if (pid === undefined) {
    await exited;
    return fail(`cannot run ${binary}: ${spawnError?.message ?? 'spawn failed'}`, spawnError);
  }

  const deadline = Date.now() + startTimeoutMs;
  const suffix = `_${pid}.ports`;
  let listenPort: number | undefined;
  let lastReadError: unknown;
  while (listenPort === undefined) {
    if (exit) return fail(`exited during startup (code ${exit.code}, signal ${exit.signal})`);
    if (Date.now() > deadline) return fail(`did not write its ports file within ${startTimeoutMs} ms`, lastReadError);
    try {
      const name = (await readdir(storeDir)).find((f) => f.endsWith(suffix));
      if (name) {
        const ports = JSON.parse(await readFile(join(storeDir, name), 'utf8')) as { nats?: unknown };
        const first: unknown = Array.isArray(ports.nats) ? ports.nats[0] : undefined;
        const parsed = typeof first === 'string' ? Number(new URL(first).port) : NaN;
        if (Number.isInteger(parsed) && parsed > 0) listenPort = parsed;
      }
    } catch (error) {
      lastReadError = error; // the file may be half written; read it again
    }
    if (listenPort === undefined) await Promise.race([exited, new Promise((r) => setTimeout(r, POLL_MS))]);
  }
  while (!(await probeTcp(listenPort))) {
    if (exit) return fail(`exited during startup (code ${exit.code}, signal ${exit.signal})`);
    if (Date.now() > deadline) return fail(`port ${listenPort} did not accept connections within ${startTimeoutMs} ms`);
    await Promise.race([exited, new Promise((r) => setTimeout(r, POLL_MS))]);
  }

  let closing: Promise<void> | undefined;
  exited
    .then((e) => {
      if (!closing) logger.error({ pid, code: e.code, signal: e.signal }, 'nats-server exited unexpectedly');
    })
    .catch((error: unknown) => logger.error({ err: error, pid }, 'cannot report the exit of nats-server'));
  const url = `nats://127.0.0.1:${listenPort}`;
  logger.info({ pid, url, storeDir }, 'nats-server started');

  const close = (): Promise<void> => {
    closing ??= (async () => {
      if (!exit) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          if (!exit) {
            logger.warn({ pid }, 'nats-server ignored SIGTERM; sending SIGKILL');
            child.kill('SIGKILL');
          }
        }, KILL_AFTER_MS);
        await exited;
        clearTimeout(timer);
      }
      logger.info({ pid, code: exit?.code ?? null, signal: exit?.signal ?? null }, 'nats-server stopped');
    })();
    return closing;
  };

  let usersQueue: Promise<unknown> = Promise.resolve();
  const reload = async (users: readonly NatsAgentUser[]): Promise<void> => {
    if (!options.authorization) throw new ConfigError('setUsers', 'the server was started without authorization; NKey users need it');
    checkUsers(users, 'setUsers users');
    if (exit || closing) throw new NatsServerError(storeDir, 'cannot reload: the server is not running', tail.text(), exit?.code ?? null, exit?.signal ?? null);
    await writeUsers(users);
    let listener: ((line: string) => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const outcome = await new Promise<string | undefined>((resolveReload, rejectReload) => {
        listener = (line) => {
          // nats-server 2.9 logs "Reloaded server configuration" or "Failed to reload server configuration: …".
          if (line.includes('Reloaded server configuration')) resolveReload(undefined);
          else if (line.includes('Failed to reload')) resolveReload(line);
        };
        tail.listeners.add(listener);
        timer = setTimeout(() => resolveReload(`no reload reported within ${RELOAD_TIMEOUT_MS} ms`), RELOAD_TIMEOUT_MS);
        exited.then(() => resolveReload('the server exited during the reload'), rejectReload);
        if (!child.kill('SIGHUP')) resolveReload('cannot send SIGHUP');
      });
      const ended = exit as NatsServerExit | undefined; // set by the exit listener meanwhile
      if (outcome !== undefined) throw new NatsServerError(storeDir, `users not applied: ${outcome}`, tail.text(), ended?.code ?? null, ended?.signal ?? null);
      logger.info({ pid, users: users.length }, 'nats-server users reloaded');
    } finally {
      clearTimeout(timer);
      if (listener) tail.listeners.delete(listener);
    }
  };
  const setUsers = (users: readonly NatsAgentUser[]): Promise<void> => {
    const next = usersQueue.then(() => reload(users));
    usersQueue = next.catch(() => undefined);
    return next;
  };

  return {
    url,
    port: listenPort,
    pid,
    storeDir,
    authorization: options.authorization,
    exited,
    setUsers,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** The first of `candidates` that exists and is executable, or undefined. */
async function findExecutable(candidates: readonly string[]): Promise<string | undefined> {
  for (const candidate of candidates) {
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

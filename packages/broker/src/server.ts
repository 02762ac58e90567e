import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
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

/** The nats-server config written to `<storeDir>/nats-server.conf` (format: https://docs.nats.io/running-a-nats-service/configuration). */
function renderConfig(storeDir: string, port: number, auth: NatsAuthorization | undefined): string {
  return [
    '# Written by @warren/broker startNatsServer; rewritten on every start.',
    'host: "127.0.0.1"',
    `port: ${port}`,
    `ports_file_dir: ${confString(storeDir, 'startNatsServer storeDir')}`,
    'jetstream {',
    `  store_dir: ${confString(storeDir, 'startNatsServer storeDir')}`,
    '}',
    ...(auth ? ['authorization {', `  user: "${auth.user}"`, `  password: "${auth.password}"`, '}'] : []),
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
 * and JetStream `store_dir` both `storeDir`, and with `authorization` a user and password every
 * client must give; `storeDir` is then set to mode 0700), starts the child, waits for its ports file
 * (`<name>_<pid>.ports`) while watching for an early exit, then probes the TCP port.
 *
 * @returns the running server; close it with {@link EmbeddedNatsServer.close}.
 * @throws {MissingCapabilityError} if nats-server is not installed.
 * @throws {ConfigError} if `storeDir` contains characters the config format cannot hold or `port` is out of range.
 * @throws {NatsServerError} (`WARREN_NATS_SERVER`) if the child fails to start, exits early or does
 *   not listen within `startTimeoutMs`; the error carries the tail of its output.
 */
export async function startNatsServer(options: StartNatsServerOptions): Promise<EmbeddedNatsServer> {
  const logger = options.logger ?? silentLogger;
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;
  const port = options.port ?? -1;
  if (port !== -1 && !(Number.isInteger(port) && port > 0 && port < 65536)) {
    throw new ConfigError('startNatsServer port', `must be an integer from 1 to 65535, got ${port}`);
  }
  if (options.authorization) checkAuthorization(options.authorization);
  const binary = await findNatsServer(options.binary);
  const storeDir = resolve(options.storeDir);
  await mkdir(storeDir, { recursive: true, mode: 0o700 });
  const configPath = join(storeDir, 'nats-server.conf');
  // The config may hold the password: readable by its owner only, also when an older run left it 0644.
  await writeFile(configPath, renderConfig(storeDir, port, options.authorization), { mode: 0o600 });
  await chmod(configPath, 0o600);
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

  return {
    url,
    port: listenPort,
    pid,
    storeDir,
    authorization: options.authorization,
    exited,
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

import { createServer } from 'node:net';
import { join } from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type EmbeddedNatsServer, type NatsServerExit } from '@warren/broker';
import { ConfigError, silentLogger, type Logger } from '@warren/core';
import { makeTempDir, type TempDir } from './temp.js';

/** Options of {@link startNatsCluster}. */
export interface StartNatsClusterOptions {
  /** How many servers: 1 to 9. Default 3 (the smallest cluster that keeps a quorum with one down). */
  size?: number;
  /** The cluster's name (the `cluster.name` of every server). Default `warren-test`. */
  name?: string;
  /** Receives the servers' log lines, each with field `server`. Default: silent. */
  logger?: Logger;
  /** How long each server may take to listen, in ms. Default 10000. */
  startTimeoutMs?: number;
}

/** One server of a {@link NatsCluster}. */
export interface NatsClusterServer {
  /** Its `server_name`: `n0`, `n1`, … (what stream info's `cluster.leader` names). */
  readonly name: string;
  /** `nats://127.0.0.1:<port>`; the same after {@link NatsCluster.restart}. */
  readonly url: string;
  /** The pid of its current process (a new one after a restart). */
  readonly pid: number;
  /** Whether its current process is running. */
  readonly running: boolean;
}

/** Options of {@link NatsCluster.waitForHealthy}. */
export interface WaitForHealthyOptions {
  /** Give up after this long, in ms. Default 60000. */
  timeoutMs?: number;
}

/** A NATS cluster of nats-server children on 127.0.0.1 with clustered JetStream. */
export interface NatsCluster {
  /** Every server's client URL, in order (also of servers that are down). */
  readonly urls: readonly string[];
  /** The servers, in order. */
  readonly servers: readonly NatsClusterServer[];
  /**
   * Sends `signal` (default SIGKILL) to server `i`'s process and waits until it has exited.
   * @throws {RangeError} for an index out of range; {@link Error} if that server is not running.
   */
  kill(i: number, signal?: NodeJS.Signals): Promise<NatsServerExit>;
  /**
   * Starts server `i` again with the same name, store, client port and route port.
   * @throws {Error} if it is still running; {@link NatsServerError} if it does not start.
   */
  restart(i: number): Promise<void>;
  /**
   * The index of the server leading `stream` (stream info's `cluster.leader`), or undefined while
   * the stream has none that is running (an election is under way, or the info request timed out
   * after 5 s because its leader is gone).
   * @throws {Error} for other errors, such as a stream that does not exist.
   */
  streamLeader(stream: string): Promise<number | undefined>;
  /**
   * Waits until JetStream answers, every stream and every consumer has a leader that is running and each of their
   * replicas on a running server is current (replicas on servers that are down are not waited
   * for). Polls every 200 ms.
   * @throws {Error} naming what is not healthy when `timeoutMs` passes.
   */
  waitForHealthy(options?: WaitForHealthyOptions): Promise<void>;
  /**
   * Stops every server (SIGTERM, then SIGKILL after 5 s), closes the checking connection and
   * removes the stores. Idempotent (the same promise every time).
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Free TCP ports on 127.0.0.1, each found by listening on port 0 and closing again. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<import('node:net').Server>((resolvePromise, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolvePromise(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('a TCP server has no port');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

/** A request that timed out or that JetStream refused as temporarily unavailable (503, as during an election). */
function isElectionError(error: unknown): boolean {
  const e = error as { name?: string; code?: unknown; message?: string };
  return e?.name === 'TimeoutError' || e?.code === 503 || e?.code === '503' || /timeout|no responders|temporarily unavailable/i.test(e?.message ?? '');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts `size` nats-server children as one NATS cluster with JetStream, all on 127.0.0.1: server
 * `i` is named `n<i>`, stores in its own temp directory, listens for clients on a free port and for
 * routes on another, with routes to every other server (nats-server cluster configuration:
 * https://docs.nats.io/running-a-nats-service/configuration/clustering/jetstream_clustering).
 * The servers are started side by side and the call returns once JetStream answers (a meta leader
 * was elected). No authorization: any local client may connect.
 *
 * @throws {ConfigError} for a `size` outside 1 to 9.
 * @throws {MissingCapabilityError} if nats-server is not installed.
 * @throws {NatsServerError} if a server does not start (the others are stopped again).
 */
export async function startNatsCluster(options: StartNatsClusterOptions = {}): Promise<NatsCluster> {
  const size = options.size ?? 3;
  if (!Number.isInteger(size) || size < 1 || size > 9) throw new ConfigError('startNatsCluster size', `must be an integer from 1 to 9, got ${size}`);
  const clusterName = options.name ?? 'warren-test';
  const logger = options.logger ?? silentLogger;
  const routePorts = await freePorts(size);
  const dirs: TempDir[] = [];
  const processes: (EmbeddedNatsServer | undefined)[] = Array.from({ length: size }, () => undefined);
  const clientPorts: (number | undefined)[] = Array.from({ length: size }, () => undefined);
  const names = Array.from({ length: size }, (_, i) => `n${i}`);
  let nc: NatsConnection | undefined;
  let jsm: JetStreamManager | undefined;

  const startOne = async (i: number): Promise<EmbeddedNatsServer> => {
    const server = await startNatsServer({
      storeDir: join(dirs[i]!.path, 'store'),
      ...(clientPorts[i] === undefined ? {} : { port: clientPorts[i] }),
      serverName: names[i]!,
      cluster: {
        name: clusterName,
        port: routePorts[i]!,
        routes: routePorts.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`),
      },
      logger: logger.child({ server: names[i] }),
      ...(options.startTimeoutMs === undefined ? {} : { startTimeoutMs: options.startTimeoutMs }),
    });
    clientPorts[i] = server.port;
    processes[i] = server;
    return server;
  };

  const stopAll = async (): Promise<void> => {
    if (nc && !nc.isClosed()) await nc.close().catch(() => undefined);
    await Promise.allSettled(processes.map((p) => p?.close() ?? Promise.resolve()));
    await Promise.allSettled(dirs.map((d) => d.close()));
  };

  try {
    for (let i = 0; i < size; i++) dirs.push(await makeTempDir(`warren-nats-${names[i]}-`));
    const started = await Promise.allSettled(names.map((_, i) => startOne(i)));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  } catch (error) {
    await stopAll();
    throw error;
  }

  const urls = clientPorts.map((p) => `nats://127.0.0.1:${p!}`);
  const manager = async (): Promise<JetStreamManager> => {
    if (jsm && nc && !nc.isClosed()) return jsm;
    nc = await connect({ servers: [...urls], name: 'nats-cluster-check', maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: 5_000 });
    jsm = await jetstreamManager(nc, { timeout: 5_000 });
    return jsm;
  };

  const serverView = (i: number): NatsClusterServer => ({
    get name() {
      return names[i]!;
    },
    get url() {
      return urls[i]!;
    },
    get pid() {
      return processes[i]!.pid;
    },
    get running() {
      return isAlive(processes[i]!.pid);
    },
  });
  const servers = names.map((_, i) => serverView(i));
  const checkIndex = (i: number): void => {
    if (!Number.isInteger(i) || i < 0 || i >= size) throw new RangeError(`server index ${i} is not from 0 to ${size - 1}`);
  };

  /** What is not healthy now, or an empty list. */
  const unhealthy = async (): Promise<string[]> => {
    const m = await manager();
    await m.getAccountInfo(); // fails while there is no meta leader
    const running = new Set(names.filter((_, i) => servers[i]!.running));
    const problems: string[] = [];
    const check = (what: string, cluster: { leader?: string; replicas?: { name: string; current: boolean }[] } | undefined): void => {
      if (!cluster?.leader) problems.push(`${what} has no leader`);
      else if (!running.has(cluster.leader)) problems.push(`${what} is still led by ${cluster.leader}, which is down`);
      for (const r of cluster?.replicas ?? []) if (running.has(r.name) && !r.current) problems.push(`${what} replica on ${r.name} is not current`);
    };
    for await (const info of m.streams.list()) {
      check(`stream ${info.config.name}`, info.cluster);
      for await (const consumer of m.consumers.list(info.config.name)) check(`consumer ${info.config.name}/${consumer.name}`, consumer.cluster);
    }
    return problems;
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= stopAll();
    return closing;
  };

  const cluster: NatsCluster = {
    urls,
    servers,
    async kill(i, signal = 'SIGKILL') {
      checkIndex(i);
      const server = processes[i]!;
      if (!isAlive(server.pid)) throw new Error(`server ${names[i]} (pid ${server.pid}) is not running`);
      process.kill(server.pid, signal);
      return server.exited;
    },
    async restart(i) {
      checkIndex(i);
      const server = processes[i]!;
      if (isAlive(server.pid)) throw new Error(`server ${names[i]} (pid ${server.pid}) is still running`);
      await server.exited;
      await startOne(i);
    },
    async streamLeader(stream) {
      let info;
      try {
        info = await (await manager()).streams.info(stream);
      } catch (error) {
        // Nobody answers for a stream whose leader is gone until the next is elected.
        if (isElectionError(error)) return undefined;
        throw error;
      }
      const leader = info.cluster?.leader;
      if (!leader) return undefined;
      const i = names.indexOf(leader);
      if (i < 0) throw new Error(`stream ${stream} is led by ${leader}, which is not a server of this cluster`);
      return servers[i]!.running ? i : undefined;
    },
    async waitForHealthy(waitOptions = {}) {
      const timeoutMs = waitOptions.timeoutMs ?? 60_000;
      const deadline = Date.now() + timeoutMs;
      let last = 'not checked yet';
      for (;;) {
        try {
          const problems = await unhealthy();
          if (problems.length === 0) return;
          last = problems.join('; ');
        } catch (error) {
          last = (error as Error).message;
        }
        if (Date.now() > deadline) throw new Error(`the NATS cluster is not healthy after ${timeoutMs} ms: ${last}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    close,
    [Symbol.asyncDispose]: close,
  };
  await cluster.waitForHealthy({ timeoutMs: 30_000 }).catch(async (error: unknown) => {
    await close();
    throw error;
  });
  return cluster;
}

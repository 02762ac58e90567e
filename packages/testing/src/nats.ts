import { startNatsServer, type EmbeddedNatsServer } from '@warren/broker';
import type { Logger } from '@warren/core';
import { makeTempDir } from './temp.js';

/** Options of {@link startTestNats}. */
export interface StartTestNatsOptions {
  /** Receives the server's log lines. Default: silent. */
  logger?: Logger;
  /** How long to wait for the server to listen, in ms. Default 10000. */
  startTimeoutMs?: number;
}

/**
 * Starts a real nats-server with JetStream on a free 127.0.0.1 port, storing in a fresh temp
 * directory. Closing it stops the server (SIGTERM, SIGKILL after 5 s) and then removes the
 * directory.
 * @throws {MissingCapabilityError} if nats-server is not installed (hint: `apt-get install -y nats-server`).
 * @throws {NatsServerError} if it does not start.
 */
export async function startTestNats(options: StartTestNatsOptions = {}): Promise<EmbeddedNatsServer> {
  const dir = await makeTempDir('warren-nats-');
  let server: EmbeddedNatsServer;
  try {
    server = await startNatsServer({
      storeDir: dir.path,
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.startTimeoutMs === undefined ? {} : { startTimeoutMs: options.startTimeoutMs }),
    });
  } catch (error) {
    await dir.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= server.close().finally(() => dir.close());
    return closing;
  };
  return {
    url: server.url,
    port: server.port,
    pid: server.pid,
    storeDir: server.storeDir,
    authorization: server.authorization,
    exited: server.exited,
    setUsers: (users) => server.setUsers(users),
    close,
    [Symbol.asyncDispose]: close,
  };
}

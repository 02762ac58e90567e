/**
 * The LLM forwarder: agents have no network, only their sandbox's own loopback, so the runner
 * listens on `127.0.0.1:<port>` there (4141, `LLM_PORT_IN_SANDBOX`) and pipes each TCP connection,
 * byte for byte, to the gateway's Unix socket (`/run/warren/llm.sock`), which speaks HTTP
 * (`/p/<provider>/…`, `/mcp`). CLIs are pointed at `http://127.0.0.1:<port>/p/<provider>`.
 *
 * Node built-ins only: this module runs inside the sandbox.
 */
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';

/** A running forwarder; see {@link startLlmForwarder}. */
export interface LlmForwarder {
  /** The port it listens on (the one asked for, or the one the system chose for 0). */
  readonly port: number;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Stops listening and ends every piped connection. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link startLlmForwarder}. */
export interface LlmForwarderOptions {
  /** The gateway's Unix socket. */
  readonly socketPath: string;
  /** TCP port on 127.0.0.1; 0 lets the system choose. */
  readonly port: number;
  /** Diagnostics, one line each. */
  readonly log?: (line: string) => void;
}

/**
 * Starts the forwarder on `127.0.0.1:<port>`. A connection the gateway socket refuses (missing,
 * not listening) is closed at once; an error on either side ends both.
 * @throws the listen error (e.g. EADDRINUSE) when the port cannot be bound.
 */
export async function startLlmForwarder(options: LlmForwarderOptions): Promise<LlmForwarder> {
  const connections = new Set<Socket>();
  const server = createServer((client) => {
    connections.add(client);
    const upstream = createConnection(options.socketPath);
    connections.add(upstream);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', (error) => {
      options.log?.(`llm forwarder: ${options.socketPath}: ${error.message}`);
      end();
    });
    client.once('close', () => {
      connections.delete(client);
      upstream.end();
    });
    upstream.once('close', () => {
      connections.delete(upstream);
      client.end();
    });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of connections) socket.destroy();
        connections.clear();
      });
      return closing;
    },
  };
}

import type { Readable, Writable } from 'node:stream';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { isJSONRPCResultResponse, type JSONRPCMessage } from '@modelcontextprotocol/server';

/** Options of {@link bridgeStdioToHttp}. */
export interface StdioBridgeOptions {
  /** The MCP endpoint, e.g. `http://127.0.0.1:7070/mcp`. */
  readonly url: URL;
  /** The bearer token every request carries. */
  readonly token: string;
  /** Where JSON-RPC messages come from, one per line. Default `process.stdin`. */
  readonly input?: Readable;
  /** Where the answers go, one per line. Default `process.stdout`. */
  readonly output?: Writable;
  /** Told about a message the endpoint could not take (the client gets a JSON-RPC error for requests). */
  readonly onError?: (error: Error) => void;
}

/** A running bridge; `closed` settles when stdin ends or {@link close} is called. */
export interface StdioBridge {
  readonly closed: Promise<void>;
  /** Stops reading and closes both sides. Idempotent. */
  close(): Promise<void>;
}

/**
 * Serves an MCP client on stdio by forwarding every JSON-RPC message to Warren's Streamable HTTP
 * endpoint and every answer and notification back (the SDK's stdio server transport one side, its
 * Streamable HTTP client transport the other; both protocol eras: a 2025 `initialize` result sets
 * the protocol version header of what follows, 2026-07-28 messages carry their own).
 */
export async function bridgeStdioToHttp(options: StdioBridgeOptions): Promise<StdioBridge> {
  const stdio = new StdioServerTransport(options.input ?? process.stdin, options.output ?? process.stdout);
  const http = new StreamableHTTPClientTransport(options.url, { requestInit: { headers: { authorization: `Bearer ${options.token}` } } });
  const initializes = new Set<string | number>();
  let closing = false;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  const close = async (): Promise<void> => {
    if (closing) return closed;
    closing = true;
    await Promise.allSettled([http.close(), stdio.close()]);
    resolveClosed();
    return closed;
  };

  http.onmessage = (message: JSONRPCMessage) => {
    if (isJSONRPCResultResponse(message) && initializes.delete(message.id)) {
      const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
      if (typeof version === 'string') http.setProtocolVersion(version);
    }
    void stdio.send(message).catch((error: unknown) => options.onError?.(error as Error));
  };
  http.onerror = (error) => options.onError?.(error);
  stdio.onmessage = (message: JSONRPCMessage) => {
    const request = 'method' in message && 'id' in message ? message : undefined;
    if (request?.method === 'initialize') initializes.add(request.id);
    http.send(message).catch((error: unknown) => {
      options.onError?.(error as Error);
      if (request) stdio.send({ jsonrpc: '2.0', id: request.id, error: { code: -32603, message: `Warren's MCP endpoint did not answer: ${(error as Error).message}` } }).catch(() => undefined);
    });
  };
  stdio.onerror = (error) => options.onError?.(error);
  stdio.onclose = () => {
    void close().catch(() => undefined);
  };
  (options.input ?? process.stdin).once('end', () => {
    void close().catch(() => undefined);
  });
  await http.start();
  await stdio.start();
  return { closed, close };
}

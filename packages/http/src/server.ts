import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { allowHost, closeEventStreams, createHttpApp, type HttpAppOptions } from './app.js';
import { HttpError } from './errors.js';
import type { HttpPorts } from './ports.js';
import type { TokenStore } from './tokens.js';

/** Options of {@link startHttpServer}: where to listen, and the app's options. */
export interface HttpServerOptions extends HttpAppOptions {
  /** The address to listen on. Default `127.0.0.1`. */
  readonly host?: string;
  /** The TCP port; 0 picks a free one. Default 7070. */
  readonly port?: number;
}

/** A listening HTTP server: {@link startHttpServer}. */
export interface HttpServer {
  /** `http://<host>:<port>` as a browser reaches it (`127.0.0.1` for a wildcard address). */
  readonly url: string;
  readonly address: { readonly host: string; readonly port: number };
  readonly app: FastifyInstance;
  /** Ends the event streams, then stops listening and waits for requests in flight. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** `host:port` with brackets around an IPv6 host. */
function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Parses a listen address as `--http` takes it: `host:port`, `[v6]:port`, `:port` (127.0.0.1),
 * or `off`.
 * @returns the host and port, or false for `off`.
 * @throws {HttpError} `WARREN_HTTP_OPTIONS` naming the value when it is none of these.
 */
export function parseListenAddress(value: string): { readonly host: string; readonly port: number } | false {
  if (value === 'off') return false;
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65_535) throw new HttpError('WARREN_HTTP_OPTIONS', `--http '${value}' must be host:port (127.0.0.1:7070, [::1]:7070, :7070) or off`);
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '127.0.0.1' : host, port };
}

/**
 * Builds the app ({@link createHttpApp}) and listens on `host:port`. The server answers as
 * `127.0.0.1:<port>`, `localhost:<port>`, `[::1]:<port>` and `<host>:<port>` (plus
 * `allowedHosts`).
 * @throws what `listen` throws (`EADDRINUSE`, `EACCES`), after closing the app.
 */
export async function startHttpServer(ports: HttpPorts, options: HttpServerOptions = {}): Promise<HttpServer> {
  const host = options.host ?? '127.0.0.1';
  const app = await createHttpApp(ports, options);
  try {
    await app.listen({ host, port: options.port ?? 7070 });
  } catch (error) {
    await app.close();
    throw error;
  }
  const port = (app.server.address() as AddressInfo).port;
  for (const name of ['127.0.0.1', 'localhost', '::1', host]) allowHost(app, hostPort(name, port));
  const browserHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      closeEventStreams(app);
      await app.close();
    })();
    return closing;
  };
  return { url: `http://${hostPort(browserHost, port)}`, address: { host, port }, app, close, [Symbol.asyncDispose]: close };
}

/** Options of {@link createSignInLink}. */
export interface SignInLinkOptions {
  /** The token's name; a live token of that name is replaced. Default `local-operator`. */
  readonly name?: string;
  /** How long the token (and the browser session made from it) lasts, in ms. Default 12 hours. */
  readonly ttlMs?: number;
  /** The clock, ms since the epoch. */
  readonly nowMs: number;
}

/**
 * Makes an operator token for the person who just ran `warren up` and the link that signs a
 * browser in with it: `<baseUrl>/signin?token=<token>`. Each call replaces the previous token of
 * that name (and so ends the sessions made from it).
 * @throws {HttpError} `WARREN_TOKEN_INVALID` if `name` or `ttlMs` is invalid.
 */
export function createSignInLink(tokens: TokenStore, baseUrl: string, options: SignInLinkOptions): { readonly url: string; readonly token: string; readonly expiresMs: number } {
  const ttlMs = options.ttlMs ?? 12 * 60 * 60 * 1000;
  const expiresMs = options.nowMs + ttlMs;
  const { token } = tokens.create({ name: options.name ?? 'local-operator', role: 'operator', expiresMs, replace: true }, options.nowMs);
  return { url: `${baseUrl.replace(/\/+$/, '')}/signin?token=${token}`, token, expiresMs };
}

/**
 * The pod `exec` subresource of the fake API server over WebSocket, as `@kubernetes/client-node`'s
 * `Exec` uses it: `GET /api/v1/namespaces/{ns}/pods/{name}/exec?command=…&container=…&stdin=…&stdout=…&stderr=…&tty=…`
 * upgraded with a `v5.channel.k8s.io` or `v4.channel.k8s.io` subprotocol. Every binary message starts
 * with its channel byte: 0 stdin, 1 stdout, 2 stderr, 3 the final `Status` (JSON), 4 terminal
 * resize, and with v5 255 closes a channel (https://github.com/kubernetes/enhancements/tree/master/keps/sig-api-machinery/4006-transition-spdy-to-websockets).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { PassThrough, Writable } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { badRequestStatus, notFoundStatus, unauthorizedStatus, type KubeStatus } from './status.js';
import type { FakeExecHandler, KubeObject } from './types.js';

const SUBPROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const STATUS = 3;
const CLOSE = 255;
const EXEC_PATH = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/exec$/;

/** What the exec endpoint needs from the server around it. */
export interface ExecEndpointOptions {
  /** The stored pod, or undefined. */
  readonly getPod: (namespace: string, name: string) => KubeObject | undefined;
  /** The bearer token required, if any. */
  readonly token: string | undefined;
  /** Runs the command; undefined answers every exec with a Failure `Status`. */
  readonly handler: ((request: Parameters<FakeExecHandler>[0]) => Promise<number>) | undefined;
  /** Records the request in the server's log. */
  readonly record: (method: string, url: string, status: number) => void;
}

/** The exec endpoint: `handleUpgrade` takes a server's `upgrade` events; `close` ends every session. */
export interface ExecEndpoint {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  close(): void;
}

function reject(socket: Duplex, status: KubeStatus): void {
  const body = JSON.stringify(status);
  socket.end(
    `HTTP/1.1 ${status.code} ${status.reason ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** The `Status` the API server sends on channel 3 when the command has ended. */
export function execStatus(command: readonly string[], exitCode: number): Record<string, unknown> {
  if (exitCode === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

/** Makes the exec endpoint over a `ws` server that shares the API server's port. */
export function execEndpoint(options: ExecEndpointOptions): ExecEndpoint {
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => SUBPROTOCOLS.find((protocol) => offered.has(protocol)) ?? false,
  });
  const sessions = new Set<AbortController>();

  const check = (req: IncomingMessage): { status: KubeStatus } | { pod: KubeObject; container: string; query: URLSearchParams } => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const match = EXEC_PATH.exec(url.pathname);
    if (match === null) return { status: { ...notFoundStatus({ group: '', plural: 'pods' }, url.pathname), message: 'the server could not find the requested resource' } };
    if (options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`) return { status: unauthorizedStatus() };
    const namespace = decodeURIComponent(match[1] ?? '');
    const name = decodeURIComponent(match[2] ?? '');
    const pod = options.getPod(namespace, name);
    if (pod === undefined) return { status: notFoundStatus({ group: '', plural: 'pods' }, name) };
    const containers = (Array.isArray((pod.spec as { containers?: unknown })?.containers) ? (pod.spec as { containers: { name?: string }[] }).containers : []).map(
      (c) => c.name ?? '',
    );
    const query = url.searchParams;
    const container = query.get('container') ?? (containers.length === 1 ? (containers[0] ?? '') : '');
    if (container === '') {
      return { status: badRequestStatus(`a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]`) };
    }
    if (!containers.includes(container)) return { status: badRequestStatus(`container ${container} is not valid for pod ${name}`) };
    if (query.getAll('command').length === 0) return { status: badRequestStatus('you must specify at least 1 command') };
    const phase = (pod.status as { phase?: string } | undefined)?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') {
      return { status: badRequestStatus(`cannot exec into a container in a completed pod; current phase is ${phase}`) };
    }
    if (phase !== 'Running') return { status: badRequestStatus(`unable to upgrade connection: container not found ("${container}")`) };
    return { pod, container, query };
  };

  const run = (ws: WebSocket, pod: KubeObject, container: string, query: URLSearchParams): void => {
    const abort = new AbortController();
    sessions.add(abort);
    const command = query.getAll('command');
    const flag = (name: string): boolean => query.get(name) === 'true' || query.get(name) === '1';
    const frame = (channel: number, data: Buffer): Buffer => Buffer.concat([Buffer.from([channel]), data]);
    const output = (channel: number): Writable =>
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          if (ws.readyState !== ws.OPEN) {
            callback();
            return;
          }
          ws.send(frame(channel, chunk), (error) => callback(error ?? null));
        },
      });
    const stdin = flag('stdin') ? new PassThrough() : undefined;
    const stdout = flag('stdout') ? output(STDOUT) : undefined;
    const stderr = flag('stderr') ? output(STDERR) : undefined;
    ws.on('message', (data, isBinary) => {
      const bytes = toBuffer(data);
      if (!isBinary || bytes.length === 0) return;
      if (bytes[0] === STDIN) stdin?.write(bytes.subarray(1));
      else if (bytes[0] === CLOSE && bytes[1] === STDIN) stdin?.end();
    });
    ws.on('close', () => {
      stdin?.end();
      abort.abort();
      sessions.delete(abort);
    });
    const finish = (status: Record<string, unknown>): void => {
      sessions.delete(abort);
      if (ws.readyState !== ws.OPEN) return;
      ws.send(frame(STATUS, Buffer.from(JSON.stringify(status))), () => ws.close(1000));
    };
    const handler = options.handler;
    if (handler === undefined) {
      finish({ metadata: {}, status: 'Failure', reason: 'InternalError', message: 'Internal error occurred: the fake API server has no onPodExec handler' });
      return;
    }
    handler({ pod: structuredClone(pod), container, command, tty: flag('tty'), stdin, stdout, stderr, signal: abort.signal }).then(
      (exitCode) => finish(execStatus(command, exitCode)),
      (error: unknown) =>
        finish({
          metadata: {},
          status: 'Failure',
          reason: 'InternalError',
          message: `Internal error occurred: error executing command in container: ${error instanceof Error ? error.message : String(error)}`,
        }),
    );
  };

  return {
    handleUpgrade(req, socket, head) {
      const checked = check(req);
      if ('status' in checked) {
        options.record(req.method ?? 'GET', req.url ?? '/', checked.status.code);
        reject(socket, checked.status);
        return;
      }
      options.record(req.method ?? 'GET', req.url ?? '/', 101);
      wss.handleUpgrade(req, socket, head, (ws) => run(ws, checked.pod, checked.container, checked.query));
    },
    close() {
      for (const session of sessions) session.abort();
      for (const client of wss.clients) client.terminate();
      wss.close();
    },
  };
}

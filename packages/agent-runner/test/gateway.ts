import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeAgentFrame, encodeFrame, LineSplitter, type AgentFrame, type GatewayFrame } from '@warren/agent-runner';

export const PACKAGE_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const MAIN_JS = join(PACKAGE_DIR, 'dist', 'main.js');

/**
 * Builds the runner's dist/ (it runs as plain JS, outside the test's source transform). Test files
 * run in parallel, so builds are serialized with a lock directory: a second `tsc -b` finds dist/
 * up to date and writes nothing, and no runner starts while files are being rewritten.
 */
export async function buildRunner(): Promise<void> {
  const lock = join(tmpdir(), 'warren-agent-runner-build.lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // A lock older than the deadline is from a killed run.
      if (Date.now() - statSync(lock).mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`build lock ${lock} is held`);
      await delay(50);
    }
  }
  try {
    execFileSync('npx', ['tsc', '-b', 'packages/agent-runner'], { cwd: dirname(dirname(PACKAGE_DIR)), stdio: 'pipe' });
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * A gateway stand-in: serves a Unix socket, takes one runner connection, decodes the runner's
 * frames (a malformed one fails the test) and lets the test await them in order.
 */
export class TestGateway {
  readonly frames: AgentFrame[] = [];
  /** The types of the frames each chunk read from the runner ended (a frame split over chunks counts in its last). */
  readonly chunks: AgentFrame['type'][][] = [];
  private waiters: (() => void)[] = [];
  private connection: Socket | undefined;
  private connected: Promise<Socket>;
  readonly closed: Promise<void>;
  protocolErrors: string[] = [];

  private constructor(
    private readonly server: Server,
    readonly socketPath: string,
  ) {
    let onConnect!: (s: Socket) => void;
    let onClose!: () => void;
    this.connected = new Promise((resolve) => (onConnect = resolve));
    this.closed = new Promise((resolve) => (onClose = resolve));
    server.on('connection', (socket) => {
      this.connection = socket;
      const splitter = new LineSplitter((line) => {
        try {
          this.frames.push(decodeAgentFrame(line));
        } catch (error) {
          this.protocolErrors.push((error as Error).message);
        }
        for (const wake of this.waiters.splice(0)) wake();
      });
      socket.on('data', (chunk: Buffer) => {
        const before = this.frames.length;
        splitter.push(chunk);
        this.chunks.push(this.frames.slice(before).map((f) => f.type));
      });
      socket.on('close', () => {
        onClose();
        for (const wake of this.waiters.splice(0)) wake();
      });
      socket.on('error', () => undefined);
      onConnect(socket);
    });
  }

  static async start(dir: string): Promise<TestGateway> {
    const socketPath = join(dir, 'agent.sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    return new TestGateway(server, socketPath);
  }

  async accept(): Promise<Socket> {
    return this.connected;
  }

  send(frame: GatewayFrame | Record<string, unknown>): void {
    this.connection!.write(encodeFrame(frame as GatewayFrame));
  }

  sendRaw(text: string): void {
    this.connection!.write(text);
  }

  /** Resolves with the first frame (after index `from`) matching `match`; fails after `timeoutMs`. */
  async next<T extends AgentFrame>(match: (f: AgentFrame) => f is T, what: string, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${what} frame; got ${JSON.stringify(this.frames.map((f) => f.type))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  result(taskId: string): Promise<Extract<AgentFrame, { type: 'result' }>> {
    return this.next((f): f is Extract<AgentFrame, { type: 'result' }> => f.type === 'result' && f.taskId === taskId, `result of ${taskId}`);
  }

  ofType<K extends AgentFrame['type']>(type: K, taskId?: string): Extract<AgentFrame, { type: K }>[] {
    return this.frames.filter((f) => f.type === type && (taskId === undefined || (f as { taskId?: string }).taskId === taskId)) as Extract<
      AgentFrame,
      { type: K }
    >[];
  }

  /** Ends the runner's connection from this side. */
  drop(): void {
    this.connection?.destroy();
  }

  async close(): Promise<void> {
    this.connection?.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** A runner child process (`node dist/main.js`) with its exit awaited. */
export interface RunnerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stderr: () => string;
}

/** Starts `script` (default `dist/main.js`; the bundle `dist/runner.cjs` works the same) with `env`. */
export function startRunner(env: Record<string, string>, script: string = MAIN_JS): RunnerProcess {
  const child = spawn(process.execPath, [script], { env: { PATH: '/usr/bin:/bin', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, stderr: () => stderr };
}

export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'warren-runner-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

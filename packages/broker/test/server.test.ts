import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MissingCapabilityError } from '@warren/core';
import { makeTempDir, type TempDir } from '@warren/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { NatsServerError, connectBroker, findNatsServer, startNatsServer, type EmbeddedNatsServer } from '../src/index.js';
import { processExists } from '@warren/core';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<TempDir> {
  const dir = await makeTempDir('warren-broker-server-');
  cleanups.push(() => dir.close());
  return dir;
}

async function start(storeDir: string, port?: number): Promise<EmbeddedNatsServer> {
  const server = await startNatsServer({ storeDir, ...(port === undefined ? {} : { port }) });
  cleanups.push(() => server.close());
  return server;
}

describe('startNatsServer', () => {
  it('runs nats-server on 127.0.0.1 with JetStream in the store dir, and stops it on close', async () => {
    const dir = await tempDir();
    const server = await start(dir.path);
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.storeDir).toBe(dir.path);
    expect(processExists(server.pid)).toBe(true);

    const config = await readFile(join(dir.path, 'nats-server.conf'), 'utf8');
    expect(config).toContain('host: "127.0.0.1"');
    expect(config).toContain(`store_dir: "${dir.path}"`);

    const broker = await connectBroker({ servers: server.url, name: 'server-test' });
    await broker.ensureStreams();
    await broker.close();
    const streams = await readdir(join(dir.path, 'jetstream', '$G', 'streams'));
    expect(streams.sort()).toEqual(['WARREN_ASSIGN', 'WARREN_MESSAGES', 'WARREN_OUTBOX', 'WARREN_RESULTS']);

    const closing = server.close();
    expect(server.close()).toBe(closing);
    await closing;
    expect(processExists(server.pid)).toBe(false);
    const exit = await server.exited;
    expect(exit.code !== null || exit.signal !== null).toBe(true);
    // The server removes its ports file when it exits.
    expect((await readdir(dir.path)).filter((f) => f.endsWith('.ports'))).toEqual([]);
  });

  it('starts again on the same port with the same store', async () => {
    const dir = await tempDir();
    const first = await start(dir.path);
    const port = first.port;
    await first.close();
    const second = await start(dir.path, port);
    expect(second.port).toBe(port);
    expect(second.pid).not.toBe(first.pid);
  });

  it('reports an early exit with the server output', async () => {
    const dir = await tempDir();
    const other = await tempDir();
    const running = await start(dir.path);
    // A second server cannot listen on a port that is taken: it exits during startup.
    const error = await startNatsServer({ storeDir: other.path, port: running.port }).then(
      () => expect.unreachable(),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(NatsServerError);
    expect(error).toMatchObject({ code: 'WARREN_NATS_SERVER', storeDir: other.path });
    expect((error as NatsServerError).stderrTail).toMatch(/address already in use|listen/i);
    expect((error as Error).message).toContain('exited during startup');
  });

  it('says how to install nats-server when the binary is missing', async () => {
    const dir = await tempDir();
    for (const binary of ['/nonexistent/bin/nats-server', 'warren-no-such-nats-server']) {
      const error = await startNatsServer({ storeDir: dir.path, binary }).then(
        () => expect.unreachable(),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(MissingCapabilityError);
      expect(error).toMatchObject({ code: 'WARREN_MISSING_CAPABILITY', installHint: 'apt-get install -y nats-server' });
      expect((error as Error).message).toContain('apt-get install -y nats-server');
    }
    // Nothing was started or written for a missing binary.
    expect(existsSync(join(dir.path, 'nats-server.conf'))).toBe(false);
  });

  it('finds the installed nats-server', async () => {
    const path = await findNatsServer();
    expect(path).toMatch(/\/nats-server$/);
  });
});

describe('a supervisor killed with SIGKILL', () => {
  it('takes its embedded nats-server with it', async () => {
    const { spawn } = await import('node:child_process');
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const storeDir = await mkdtemp(path.join(tmpdir(), 'warren-pdeath-'));
    const script = `import { startNatsServer } from '@warren/broker';
      const server = await startNatsServer({ storeDir: ${JSON.stringify(storeDir)} });
      console.log(server.pid);
      setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: path.join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const serverPid = await new Promise<number>((resolve, reject) => {
        parent.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
        parent.once('exit', (code) => reject(new Error(`parent exited early (${code}); is the package built?`)));
      });
      expect(() => process.kill(serverPid, 0)).not.toThrow();
      parent.kill('SIGKILL');
      const deadline = Date.now() + 10_000;
      let alive = true;
      while (alive && Date.now() < deadline) {
        try {
          process.kill(serverPid, 0);
          await new Promise((r) => setTimeout(r, 50));
        } catch {
          alive = false;
        }
      }
      expect(alive).toBe(false);
    } finally {
      parent.kill('SIGKILL');
      await rm(storeDir, { recursive: true, force: true });
    }
  });
});

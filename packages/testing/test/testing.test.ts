import { existsSync } from 'node:fs';
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { connectBroker } from '@warren/broker';
import { describe, expect, it } from 'vitest';
import { makeTempDir, startTestNats } from '../src/index.js';

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

describe('makeTempDir', () => {
  it('makes a fresh directory and removes it with its contents on close', async () => {
    const a = await makeTempDir('warren-testing-');
    const b = await makeTempDir('warren-testing-');
    expect(a.path).not.toBe(b.path);
    expect(a.path).toMatch(/warren-testing-[^/]+$/);
    await mkdir(join(a.path, 'sub'));
    await writeFile(join(a.path, 'sub', 'file.txt'), 'x');
    const closing = a.close();
    expect(a.close()).toBe(closing);
    await closing;
    expect(existsSync(a.path)).toBe(false);
    await b[Symbol.asyncDispose]();
    expect(existsSync(b.path)).toBe(false);
  });
});

describe('startTestNats', () => {
  it('runs a JetStream server in a temp store that is removed on close', async () => {
    const nats = await startTestNats();
    try {
      expect(nats.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
      expect(processExists(nats.pid)).toBe(true);
      const broker = await connectBroker({ servers: nats.url, name: 'testing-test' });
      await broker.ensureStreams();
      expect((await broker.publishAssignment({
        taskId: 'T-1', attempt: 1, agent: 'a', title: 't', body: '', fields: {}, timeoutMs: 1, assignedAtMs: 1,
      })).duplicate).toBe(false);
      await broker.close();
      expect(existsSync(join(nats.storeDir, 'jetstream'))).toBe(true);
    } finally {
      await nats.close();
    }
    expect(processExists(nats.pid)).toBe(false);
    expect(existsSync(nats.storeDir)).toBe(false);
  });

  it('gives each server its own port and store', async () => {
    const [a, b] = await Promise.all([startTestNats(), startTestNats()]);
    try {
      expect(a.port).not.toBe(b.port);
      expect(a.storeDir).not.toBe(b.storeDir);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanUpAfterEach,
  makeTestLayout,
  processesMentioning,
  requireMachine,
  shellTask,
  startWarren,
  waitFor,
  warren,
  type TestLayout,
} from '../support/cli.js';
import { fillDisk, mountsUnder, mountTmpfs, type TestTmpfs } from './support.js';

const { layouts, running } = cleanUpAfterEach();
const mounts: TestTmpfs[] = [];
const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
  for (const mount of mounts.splice(0)) mount.unmount();
});

function layout(tasks: Record<string, string>): TestLayout {
  const made = makeTestLayout(tasks);
  layouts.push(made);
  return made;
}

beforeAll(() => requireMachine());

describe('a fatal error ends the process (attack cases 57, 59)', () => {
  it('exits non-zero when NATS_URL points at a service that is not NATS', async () => {
    const server = createServer((_req, res) => res.end('not nats\n'));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const { args } = layout({ t1: shellTask('t1', 'echo ok') });
    // `warren` kills the command and fails if it has not ended after 60 s.
    const run = await warren([...args('run', '--until-idle'), '--nats-url', `nats://127.0.0.1:${port}`], 60_000);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/connect nats:\/\/127\.0\.0\.1:\d+.*\[WARREN_BROKER\]/);
  }, 300_000);

  it('exits non-zero on SQLITE_FULL, its nats-server gone, and a restart after space returns completes every task', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `t${String(i + 1).padStart(2, '0')}`);
    const { dir, args, file } = layout(Object.fromEntries(ids.map((id) => [id, shellTask(id, `sleep 0.3; echo ${id}`)])));
    const stateDir = join(dir, 'var');
    // The state dir on a small tmpfs; the JetStream store beside it on the disk, so that only
    // SQLite meets the full filesystem.
    mounts.push(mountTmpfs(stateDir, '8m'));
    mkdirSync(join(dir, 'nats'));
    symlinkSync(join(dir, 'nats'), join(stateDir, 'nats'));
    const run = startWarren([...args('run', '--until-idle'), '--disk-reserve', '0']);
    running.push(run);
    await waitFor('a first task to finish', () => /"msg":"task finished"/.test(run.stderr()), 120_000);
    const nats = processesMentioning(join(stateDir, 'nats', 'nats-server.conf'));
    expect(nats).toHaveLength(1);
    fillDisk(join(stateDir, 'filler'));
    const end = await Promise.race([
      run.done,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still running 120 s after the disk filled\n${run.stderr().slice(-3000)}`)), 120_000)),
    ]);
    running.splice(running.indexOf(run), 1);
    expect(end.code, end.stderr.slice(-3000)).toBe(1);
    expect(end.stderr).toMatch(/SQLITE_FULL|database or disk is full/);
    await waitFor('nats-server to be gone', () => processesMentioning(join(stateDir, 'nats', 'nats-server.conf')).length === 0, 30_000);

    rmSync(join(stateDir, 'filler'));
    const again = await warren(args('run', '--until-idle'));
    expect(again.code, again.stderr.slice(-3000)).toBe(0);
    for (const id of ids) expect(file(id), id).toMatch(/^status: done$/m);
    const verify = await warren(['audit', '--verify', ...args()]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    mounts.splice(0).forEach((m) => m.unmount());
    expect(mountsUnder(dir)).toEqual([]);
  }, 300_000);
});

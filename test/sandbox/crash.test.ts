/**
 * A supervisor killed with SIGKILL: bwrap runs with --die-with-parent in its own pid namespace,
 * so when the process that spawned the sandbox dies, every agent process dies with it (a tree
 * that double-forks, calls setsid and ignores SIGTERM included). The cgroups it leaves are removed
 * by `removeStaleCgroups()` on the next start. The stand-in supervisor is a separate Node process
 * running the built @warren/sandbox (support/spawn-and-wait.mjs).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processesOfUid, removeStaleCgroups, type SandboxSpec } from '@warren/sandbox';
import { cgroupsOf, repo, SHELL_LIMITS, waitFor, Warren } from './support/fixture.js';
import { STUBBORN_TREE } from './support/probes.js';

const MiB = 1024 * 1024;
/** How long removeStaleCgroups leaves an empty cgroup alone (another process may be setting it up). */
const YOUNG_EMPTY_MS = 10_000;

let warren: Warren;
beforeAll(async () => {
  warren = await Warren.open();
});
afterAll(() => warren?.close());

describe('supervisor crash', () => {
  it('a supervisor killed with SIGKILL leaves no agent running; its cgroups are removed as stale on the next start', async () => {
    const account = await warren.account('orphan');
    const home = `/home/${account.name}`;
    const spec: SandboxSpec = {
      name: account.name,
      uid: account.uid,
      gid: account.gid,
      homeHostPath: account.home,
      homePath: home,
      passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\n${warren.accounts.passwdLine(account, { home })}\n`,
      group: `root:x:0:\n${warren.accounts.groupLine(account)}\n`,
      argv: ['/bin/sh', '-c', STUBBORN_TREE],
      env: { HOME: home, USER: account.name, LOGNAME: account.name, PATH: '/usr/local/bin:/usr/bin:/bin', WARREN_AGENT: account.name },
      limits: SHELL_LIMITS,
      runDir: join(warren.stateDir, 'run', 'agents', account.name),
      logPath: join(warren.stateDir, 'logs', `${account.name}.log`),
      logMaxBytes: 8 * MiB,
    };
    const supervisor = spawn(process.execPath, [join(import.meta.dirname, 'support', 'spawn-and-wait.mjs'), JSON.stringify(spec)], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    supervisor.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    supervisor.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise((resolve) => supervisor.once('exit', resolve));
    try {
      const log = () => (existsSync(spec.logPath) ? readFileSync(spec.logPath, 'utf8') : '');
      await waitFor(`the agent tree to start (supervisor said: ${output})`, () => log().includes('tree-ready'), 20_000);
      await waitFor('the whole tree to start', () => processesOfUid(account.uid).length >= 7, 20_000);
      // The cgroups the kernel has the agent in, in every hierarchy (memory and pids at least).
      const dirs = warren.liveCgroupDirs(spec.name);
      for (const pid of processesOfUid(account.uid)) {
        const paths = cgroupsOf(pid);
        if (paths !== null) expect(paths, `cgroups of ${pid}`).toContain(`/warren/${spec.name}`);
      }
      supervisor.kill('SIGKILL');
      await exited;
      // Host side: bwrap died with its parent and the pid namespace took every agent process.
      await waitFor('every agent process to be gone', () => processesOfUid(account.uid).length === 0, 10_000);
      for (const dir of dirs) expect(readFileSync(join(dir, 'cgroup.procs'), 'utf8'), dir).toBe('');
      // The next start: once past the set-up window in which an empty cgroup may be another
      // supervisor's, the leftovers are removed.
      const madeMs = Math.max(...dirs.map((dir) => statSync(dir).mtimeMs));
      await waitFor('the leftover cgroups to leave the set-up window', () => Date.now() - madeMs > YOUNG_EMPTY_MS + 100, YOUNG_EMPTY_MS + 5000);
      // (A supervisor started meanwhile by another test may have removed them first.)
      const left = dirs.filter((dir) => existsSync(dir));
      // (A leftover of another test that stays busy is not this test's concern.)
      const removed = await removeStaleCgroups({ onBusy: () => undefined });
      for (const dir of left) expect(removed).toContain(dir);
      for (const dir of dirs) expect(existsSync(dir), dir).toBe(false);
    } finally {
      supervisor.kill('SIGKILL');
      await exited;
    }
  }, 90_000);
});

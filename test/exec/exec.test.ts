import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, makeTestLayout, processesOfUids, repo, requireMachine, shellTask, waitFor, warren, type AuditRow, type TestLayout } from '../support/cli.js';

// `warren exec` against one agent account made by a first run: output arrives whole, and an
// interrupted or killed exec leaves no cgroup or run directory behind.

let layout: TestLayout;
let agent: { name: string; uid: number };

beforeAll(async () => {
  requireMachine();
  layout = makeTestLayout({ first: shellTask('first', 'echo ready') });
  const run = await warren(layout.args('run', '--until-idle'));
  expect(run.code, run.stderr.slice(-2000)).toBe(0);
  const accounts = JSON.parse((await warren(['accounts', '--json', ...layout.args()])).stdout) as { name: string; uid: number }[];
  agent = accounts[0]!;
});

afterAll(() => layout?.remove());

/** What an exec printed: sha256 and byte count of stdout, all of stderr, and how it ended. */
interface Streamed {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly sha256: string;
  readonly bytes: number;
  readonly stderr: string;
}

/** Starts `warren exec <agent> -- <argv>`, hashing its stdout as it arrives. */
function startExec(argv: readonly string[]): { pid: number; done: Promise<Streamed>; kill(signal: NodeJS.Signals): void } {
  const child = spawn(process.execPath, [cli, 'exec', agent.name, ...layout.args(), '--', ...argv], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  const hash = createHash('sha256');
  let bytes = 0;
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<Streamed>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, sha256: hash.digest('hex'), bytes, stderr }));
  });
  return { pid: child.pid!, done, kill: (signal) => child.kill(signal) };
}

/** The cgroup directories named after exec process `pid`, in every hierarchy. */
function execCgroups(pid: number): string[] {
  const found: string[] = [];
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const parent = join('/sys/fs/cgroup', hierarchy, 'warren');
    if (!existsSync(parent)) continue;
    for (const name of readdirSync(parent)) if (name.endsWith(`-x${pid}`)) found.push(join(parent, name));
  }
  if (existsSync('/sys/fs/cgroup/warren')) {
    for (const name of readdirSync('/sys/fs/cgroup/warren')) if (name.endsWith(`-x${pid}`)) found.push(join('/sys/fs/cgroup/warren', name));
  }
  return found;
}

function sha256Of(argv: readonly string[]): string {
  const result = spawnSync(argv[0]!, argv.slice(1), { maxBuffer: 1 << 30 });
  return createHash('sha256').update(result.stdout).digest('hex');
}

const STUBBORN = 'trap "" TERM INT HUP; (setsid sh -c "trap \\"\\" TERM INT HUP; sleep 1000" &); echo started; sleep 1000';

describe('warren exec output (#55)', () => {
  it('delivers every byte of output far beyond the log cap, in order', { timeout: 180_000 }, async () => {
    const lines = await startExec(['seq', '1', '3000000']).done;
    expect(lines.stderr).toBe('');
    expect(lines.code).toBe(0);
    expect(lines.sha256).toBe(sha256Of(['seq', '1', '3000000']));

    const zeros = await startExec(['head', '-c', String(64 * 2 ** 20), '/dev/zero']).done;
    expect(zeros.code).toBe(0);
    expect(zeros.bytes).toBe(64 * 2 ** 20);
  });

  it('keeps stderr apart from stdout and passes the exit code on', async () => {
    const run = await warren(['exec', agent.name, ...layout.args(), '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    expect(run.code).toBe(7);
    expect(run.stdout).toBe('out\n');
    expect(run.stderr).toBe('err\n');
  });

  it('names an OOM kill with the memory limit (#46)', { timeout: 120_000 }, async () => {
    const run = await warren(['exec', agent.name, ...layout.args(), '--', 'perl', '-e', '$x = q(a) x (2 * 1024**3)']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('warren: out of memory (limit 1 GiB)');
  });

  it('closes the pipe of a command whose reader went away, as a shell pipeline does', { timeout: 120_000 }, async () => {
    const result = spawnSync('sh', ['-c', `${process.execPath} ${cli} exec ${agent.name} ${layout.args().join(' ')} -- seq 1 100000000 | head -n 3`], {
      cwd: repo,
      encoding: 'utf8',
      timeout: 110_000,
    });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('1\n2\n3\n');
    expect(processesOfUids(new Set([agent.uid]))).toEqual([]);
  });
});

describe('an interrupted warren exec (#56)', () => {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`${signal} stops the command's whole tree and removes its cgroups and run directory`, { timeout: 120_000 }, async () => {
      const exec = startExec(['sh', '-c', STUBBORN]);
      const runDir = join(layout.dir, 'var', 'run', 'exec', String(exec.pid));
      await waitFor('the exec sandbox', () => execCgroups(exec.pid).length > 0 && processesOfUids(new Set([agent.uid])).length >= 3);
      exec.kill(signal);
      const end = await exec.done;
      expect(end.signal).toBeNull();
      expect(end.code).toBe(128 + { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 }[signal]);
      expect(end.stderr).toContain(`interrupted by ${signal}`);
      expect(execCgroups(exec.pid)).toEqual([]);
      expect(existsSync(runDir)).toBe(false);
      expect(processesOfUids(new Set([agent.uid]))).toEqual([]);
      const rows = JSON.parse((await warren(['audit', '--json', '--action', 'agent.exec_exit', ...layout.args()])).stdout) as AuditRow[];
      expect(rows.some((row) => row.details.signal === signal)).toBe(true);
    });
  }

  it('what an exec killed with SIGKILL left is removed by the next exec', { timeout: 120_000 }, async () => {
    const exec = startExec(['sh', '-c', STUBBORN]);
    const runDir = join(layout.dir, 'var', 'run', 'exec', String(exec.pid));
    // Killed while its command runs (its shell, the setsid'ed sleep and the shell's sleep), as the signal tests above.
    await waitFor('the exec sandbox', () => execCgroups(exec.pid).length > 0 && existsSync(runDir) && processesOfUids(new Set([agent.uid])).length >= 3);
    exec.kill('SIGKILL');
    await exec.done;
    // bwrap dies with its parent, and the sandbox's pid namespace with it.
    await waitFor('the agent processes to end', () => processesOfUids(new Set([agent.uid])).length === 0);
    expect(existsSync(runDir)).toBe(true);
    const next = await warren(['exec', agent.name, ...layout.args(), '--', 'true']);
    expect(next.code).toBe(0);
    expect(execCgroups(exec.pid)).toEqual([]);
    expect(existsSync(runDir)).toBe(false);
  });
});

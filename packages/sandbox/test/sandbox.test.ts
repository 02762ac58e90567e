import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  assertIsolation,
  CGROUP_PARENT,
  probeHost,
  processesOfUid,
  removeOrphanCgroups,
  removeStaleCgroups,
  SandboxError,
  SandboxSpecError,
  SandboxUnavailableError,
  spawnSandbox,
  type HostCapabilities,
} from '@warren/sandbox';
import { findDirs, removeLeftover } from '../src/cgroups.js';
import { cleanup, freshUid, makeSpec, readLog, requireSandboxHost, track, waitUntil } from './helpers.js';

let host: HostCapabilities;
beforeAll(async () => {
  await requireSandboxHost();
  host = await probeHost();
});
afterEach(cleanup);

/** Kills `pid` after the test if it is still alive. */
function cleanupPid(pid: number): void {
  onTestFinished(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone, as expected
    }
  });
}

/** The cgroup directories a sandbox named `name` would have on this host. */
function cgroupDirs(name: string): string[] {
  const { paths } = host.cgroup;
  return [...new Set([paths.unified, paths.memory, paths.pids, paths.cpu, paths.unified === null ? (paths.cpuacct ?? null) : null].filter((p): p is string => p !== null))].map((p) =>
    join(p, CGROUP_PARENT, name),
  );
}

describe('probeHost and assertIsolation', () => {
  it('finds root, bwrap, setpriv, prlimit and memory + pids cgroups on this host', () => {
    expect(host.isRoot).toBe(true);
    expect(host.bwrapPath).toMatch(/\/bwrap$/);
    expect(host.setprivPath).toMatch(/^\/usr\/.*setpriv$/);
    expect(host.prlimitPath).toMatch(/\/prlimit$/);
    expect(host.cgroup.version).not.toBe('none');
    expect(host.cgroup.memory && host.cgroup.pids).toBe(true);
  });

  it('says exactly what is missing, with an apt-get hint', () => {
    const broken: HostCapabilities = {
      ...host,
      isRoot: false,
      bwrapPath: null,
      cgroup: { ...host.cgroup, pids: false },
    };
    let caught: unknown;
    try {
      assertIsolation(broken);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SandboxUnavailableError);
    const error = caught as SandboxUnavailableError;
    expect(error.code).toBe('WARREN_MISSING_CAPABILITY');
    expect(error.missing).toEqual(['root privileges', 'bwrap', 'cgroup pids controller']);
    expect(error.message).toContain('apt-get install -y bubblewrap');
    expect(() => assertIsolation(host)).not.toThrow();
  });
});

describe('spec validation', () => {
  it('refuses uid 0, bad names and relative paths, naming the field', async () => {
    const base = makeSpec(['/usr/bin/true']);
    const cases: [Partial<typeof base>, string][] = [
      [{ uid: 0 }, 'uid'],
      [{ gid: 0 }, 'gid'],
      [{ name: 'Bad_Name' }, 'name'],
      [{ argv: ['true'] }, 'argv[0]'],
      [{ homePath: '/home/../root' }, 'homePath'],
      [{ binds: [{ source: '/tmp', target: 'rel' }] }, 'binds[0].target'],
      [{ env: { 'A=B': 'x' } }, 'env.A=B'],
      [{ limits: { ...base.limits, cpuWeight: 0 } }, 'limits.cpuWeight'],
    ];
    for (const [override, field] of cases) {
      const error = await spawnSandbox({ ...base, ...override }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error, field).toBeInstanceOf(SandboxSpecError);
      expect((error as SandboxSpecError).field).toBe(field);
      expect((error as SandboxSpecError).code).toBe('WARREN_SANDBOX');
    }
  });

  it('refuses a home not owned by the uid', async () => {
    const spec = makeSpec(['/usr/bin/true']);
    const error = await spawnSandbox({ ...spec, uid: spec.uid + 1, gid: spec.uid + 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxSpecError);
    expect((error as SandboxSpecError).field).toBe('homeHostPath');
    expect((error as Error).message).toContain(`owned by uid ${spec.uid}`);
  });
});

describe('spawnSandbox', () => {
  it('runs as the agent uid/gid with the generated passwd and exactly spec.env', async () => {
    const spec = makeSpec(['/bin/sh', '-c', 'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"; cat /etc/passwd; echo ---; exec /usr/bin/env']);
    const sandbox = track(await spawnSandbox(spec));
    expect(sandbox.pid).toBeGreaterThan(0);
    expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    const log = readLog(spec);
    expect(log).toContain(`uid=${spec.uid} gid=${spec.gid} groups=${spec.gid}\n`);
    const [passwd, env] = log.split(/^uid=.*\n/m)[1]!.split('---\n');
    expect(passwd).toBe(spec.passwd);
    const seen = Object.fromEntries(
      env!
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    // sh exports PWD itself; everything else is exactly spec.env
    delete seen.PWD;
    expect(seen).toEqual(spec.env);
    for (const dir of cgroupDirs(spec.name)) expect(existsSync(dir), dir).toBe(false);
  });

  it('reports the exit code, and a signal as signaled', async () => {
    const a = makeSpec(['/bin/sh', '-c', 'exit 7']);
    expect(await track(await spawnSandbox(a)).exited).toEqual({ kind: 'failed', exitCode: 7 });
    const b = makeSpec(['/bin/sh', '-c', 'kill -USR1 $$']);
    expect(await track(await spawnSandbox(b)).exited).toEqual({ kind: 'signaled', signal: 'SIGUSR1' });
  });

  it('lets the agent write only its home and /tmp, and read nothing outside its binds', async () => {
    const spec = makeSpec([]);
    const secret = join(spec.hostDir, 'secret.txt');
    writeFileSync(secret, 'host secret');
    const shared = join(spec.hostDir, 'shared');
    mkdirSync(shared);
    writeFileSync(join(shared, 'visible.txt'), 'shared text');
    const script = [
      'touch /usr/x 2>/dev/null && echo usr-writable',
      '{ echo x >> /etc/passwd; } 2>/dev/null && echo passwd-writable',
      'touch /x 2>/dev/null && echo root-writable',
      'touch /opt/shared/y 2>/dev/null && echo ro-bind-writable',
      'ls /root 2>/dev/null && echo root-readable',
      `cat ${secret} 2>/dev/null && echo secret-readable`,
      'cat /opt/shared/visible.txt; echo',
      'echo hi > "$HOME/made.txt" && echo home-ok',
      'echo hi > /tmp/t && echo tmp-ok',
      'echo done',
    ].join('; ');
    const sandbox = track(
      await spawnSandbox({ ...spec, argv: ['/bin/sh', '-c', script], readOnlyBinds: [{ source: shared, target: '/opt/shared' }] }),
    );
    expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    expect(readLog(spec)).toBe('shared text\nhome-ok\ntmp-ok\ndone\n');
    const made = statSync(join(spec.homeHostPath, 'made.txt'));
    expect([made.uid, made.gid]).toEqual([spec.uid, spec.gid]);
  });

  it('has no network: only lo, and no TCP to a server on the host loopback', async () => {
    let connections = 0;
    const server: Server = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const probe = `
        const fs = require('node:fs');
        const ifaces = fs.readFileSync('/proc/net/dev', 'utf8').split('\\n').slice(2).map((l) => l.split(':')[0].trim()).filter(Boolean);
        console.log('ifaces=' + ifaces.join(','));
        const s = require('node:net').connect(${port}, '127.0.0.1');
        s.on('connect', () => { console.log('connected'); process.exit(0); });
        s.on('error', (e) => { console.log('error=' + e.code); process.exit(0); });`;
      const spec = makeSpec(['/usr/bin/node', '-e', probe]);
      const sandbox = track(await spawnSandbox(spec));
      expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
      expect(readLog(spec)).toBe('ifaces=lo\nerror=ECONNREFUSED\n');
      expect(connections).toBe(0);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('applies nofile, fsize and the /tmp size', async () => {
    const spec = makeSpec(
      [
        '/bin/sh',
        '-c',
        [
          'echo nofile=$(ulimit -n)',
          'head -c 2000000 /dev/zero > "$HOME/big" 2>/dev/null; echo big=$(wc -c < "$HOME/big")',
          'head -c 900000 /dev/zero > /tmp/fill 2>/dev/null; head -c 900000 /dev/zero > /tmp/fill2 2>/dev/null || echo tmp-full',
        ].join('; '),
      ],
      { limits: { nofile: 123, fsizeBytes: 1_000_000, tmpfsBytes: 1024 * 1024 } },
    );
    const sandbox = track(await spawnSandbox(spec));
    await sandbox.exited;
    const log = readLog(spec);
    expect(log).toContain('nofile=123\n');
    expect(log).toContain('big=1000000\n');
    expect(log).toContain('tmp-full\n');
  });

  it('ends with kind oom when the memory limit is exceeded', async () => {
    const spec = makeSpec(['/usr/bin/node', '-e', 'const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1));'], {
      limits: { memoryMaxBytes: 96 * 1024 * 1024 },
    });
    const sandbox = track(await spawnSandbox(spec));
    expect(await sandbox.exited).toEqual({ kind: 'oom' });
  });

  it('caps a fork loop at pidsMax', async () => {
    const uid = freshUid();
    // The inner shell forks until fork fails (dash then exits 2); the outer one reports and waits.
    const loop = 'i=0; while [ $i -lt 100 ]; do sleep 1000 & i=$((i + 1)); done';
    const script = `sh -c '${loop}' 2>/dev/null; echo loop-exit=$?; exec sleep 1000`;
    const spec = makeSpec(['/bin/sh', '-c', script], { uid, limits: { pidsMax: 16 } });
    const sandbox = track(await spawnSandbox(spec));
    await waitUntil('the fork loop to end', () => readLog(spec).includes('loop-exit='));
    expect(readLog(spec)).toBe('loop-exit=2\n');
    const count = processesOfUid(uid).length;
    // bwrap's two root helpers share the pids cgroup: at most 14 agent processes.
    expect(count).toBeGreaterThanOrEqual(10);
    expect(count).toBeLessThanOrEqual(16 - 2);
    expect(await sandbox.stop(0)).toEqual({ kind: 'pids' });
    expect(processesOfUid(uid)).toEqual([]);
  });

  it('stop() kills a tree that ignores SIGTERM, double-forks and calls setsid, then removes its cgroups', async () => {
    const uid = freshUid();
    const script = [
      "trap '' TERM",
      "setsid sh -c \"trap '' TERM; (trap '' TERM; sleep 1000) & sleep 1000\" &",
      "(sh -c \"trap '' TERM; exec sleep 1000\" &)",
      'echo ready',
      'while :; do sleep 1; done',
    ].join('\n');
    const spec = makeSpec(['/bin/sh', '-c', script], { uid });
    const sandbox = track(await spawnSandbox(spec));
    await waitUntil('the tree to start', () => readLog(spec).includes('ready') && processesOfUid(uid).length >= 5);
    for (const dir of cgroupDirs(spec.name)) expect(existsSync(dir), dir).toBe(true);
    const exit = await sandbox.stop(300);
    expect(exit).toEqual({ kind: 'signaled', signal: 'SIGKILL' });
    expect(processesOfUid(uid)).toEqual([]);
    for (const dir of cgroupDirs(spec.name)) expect(existsSync(dir), dir).toBe(false);
    expect(await sandbox.stop()).toBe(exit);
    expect(await sandbox.exited).toBe(exit);
  });

  it('stop() lets a process that handles SIGTERM exit by itself', async () => {
    const spec = makeSpec(['/bin/sh', '-c', "trap 'echo bye; exit 3' TERM; echo ready; while :; do sleep 1; done"]);
    const sandbox = track(await spawnSandbox(spec));
    await waitUntil('ready', () => readLog(spec).includes('ready'));
    expect(await sandbox.stop(30_000)).toEqual({ kind: 'failed', exitCode: 3 });
    expect(readLog(spec)).toMatch(/^ready\n(.*\n)*bye\n$/);
  });

  it('reports setup_error when bwrap cannot build the sandbox', async () => {
    const spec = makeSpec(['/usr/bin/true']);
    const sandbox = track(
      await spawnSandbox({ ...spec, readOnlyBinds: [{ source: join(spec.hostDir, 'does-not-exist'), target: '/opt/x' }] }),
    );
    const exit = await sandbox.exited;
    expect(exit.kind).toBe('setup_error');
    expect(exit.kind === 'setup_error' && exit.message).toContain('does-not-exist');
    for (const dir of cgroupDirs(spec.name)) expect(existsSync(dir), dir).toBe(false);
  });

  it('refuses a second live sandbox of the same name', async () => {
    const spec = makeSpec(['/bin/sh', '-c', 'sleep 1000']);
    const sandbox = track(await spawnSandbox(spec));
    const error = await spawnSandbox(spec).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxError);
    expect((error as Error).message).toContain('already running');
    await sandbox.stop(0);
  });

  it('caps the log: rotates once to .1 and counts dropped bytes', async () => {
    // 6 x 40 KB blocks through a 100 KB cap.
    const spec = makeSpec(['/bin/sh', '-c', 'for i in 1 2 3 4 5 6; do head -c 40000 /dev/zero | tr "\\0" "$i"; done'], {
      logMaxBytes: 100_000,
    });
    const sandbox = track(await spawnSandbox(spec));
    expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    const current = readFileSync(spec.logPath);
    const previous = readFileSync(`${spec.logPath}.1`);
    expect(current.length).toBeLessThanOrEqual(100_000);
    expect(previous.length).toBeLessThanOrEqual(100_000);
    expect(current.length + previous.length + sandbox.logDroppedBytes).toBe(240_000);
    expect(sandbox.logDroppedBytes).toBeGreaterThan(0);
    // the newest output is kept
    expect(current.subarray(-1).toString()).toBe('6');
  });

  it('passes stdout and stderr whole to options.output and reads stdin from a pipe, making no log file then', async () => {
    const spec = makeSpec(['/bin/sh', '-c', 'read line; echo "out:$line"; echo err >&2']);
    const chunks = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const sink = (into: Buffer[]): Writable =>
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          into.push(chunk);
          done();
        },
      });
    const sandbox = track(await spawnSandbox(spec, { output: { stdout: sink(chunks.stdout), stderr: sink(chunks.stderr) }, stdin: 'pipe' }));
    sandbox.stdin!.end('hello\n');
    expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    expect(Buffer.concat(chunks.stdout).toString()).toBe('out:hello\n');
    expect(Buffer.concat(chunks.stderr).toString()).toBe('err\n');
    expect(existsSync(spec.logPath)).toBe(false);
    expect(sandbox.logDroppedBytes).toBe(0);
  });
});

describe('removeStaleCgroups', () => {
  it('kills and removes cgroups a previous run left, but not live ones', async () => {
    const live = makeSpec(['/bin/sh', '-c', 'sleep 1000']);
    const sandbox = track(await spawnSandbox(live));
    const staleName = `stale-${process.pid}`;
    const dirs = cgroupDirs(staleName);
    for (const dir of dirs) mkdirSync(dir, { recursive: true });
    // An orphan (its parent shell exits at once) inside the stale cgroups, as a crashed run leaves.
    const starter = spawn(
      '/bin/sh',
      [
        '-c',
        `sh -c 'for f; do echo $$ > "$f"; done; exec sleep 1000' sh "$@" >/dev/null 2>&1 & echo $!`,
        'sh',
        ...dirs.map((d) => join(d, 'cgroup.procs')),
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let out = '';
    starter.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await new Promise((resolve) => starter.once('close', resolve));
    const orphan = Number(out.trim());
    cleanupPid(orphan);
    await waitUntil('the orphan to join its cgroups', () =>
      dirs.every((d) => readFileSync(join(d, 'cgroup.procs'), 'utf8').trim() === String(orphan)),
    );
    const removed = await removeStaleCgroups();
    for (const dir of dirs) expect(removed).toContain(dir);
    for (const dir of cgroupDirs(live.name)) expect(removed).not.toContain(dir);
    await waitUntil('the orphan to die', () => !existsSync(`/proc/${orphan}`) || readFileSync(`/proc/${orphan}/status`, 'utf8').includes('zombie'));
    for (const dir of dirs) expect(existsSync(dir)).toBe(false);
    for (const dir of cgroupDirs(live.name)) expect(existsSync(dir), dir).toBe(true);
    await sandbox.stop(0);
  });
});

/** The cgroup v1 freezer hierarchy, where SIGKILL does not end a frozen process until it is thawed. */
const V1_FREEZER = '/sys/fs/cgroup/freezer';

/**
 * Starts a process in the cgroup directories `dirs` and returns its pid. It stays this test
 * process's child, so every other supervisor's sweep of leftovers (`removeStaleCgroups`) takes its
 * cgroups for another live process's and leaves them: only the named sweep below touches them.
 */
async function processIn(dirs: readonly string[]): Promise<number> {
  for (const dir of dirs) mkdirSync(dir, { recursive: true });
  const child = spawn('/bin/sh', ['-c', 'for f; do echo $$ > "$f"; done; exec sleep 1000', 'sh', ...dirs.map((d) => join(d, 'cgroup.procs'))], { stdio: 'ignore' });
  const pid = child.pid!;
  cleanupPid(pid);
  await waitUntil('the process to join its cgroups', () => dirs.every((d) => readFileSync(join(d, 'cgroup.procs'), 'utf8').trim() === String(pid)));
  return pid;
}

describe('removing leftover cgroups when one stays busy', () => {
  // Our hosts mount the v1 freezer; on a cgroup2-only host a frozen process dies of SIGKILL and
  // nothing stays busy, so there is nothing to test.
  it.runIf(existsSync(join(V1_FREEZER, 'cgroup.procs')))(
    'reports it to onBusy, leaves it, and still removes the other leftovers',
    async () => {
      const stuckName = `stuck-${process.pid}`;
      const staleName = `stale2-${process.pid}`;
      const ours = (name: string) => name === stuckName || name === staleName;
      const stuckDirs = cgroupDirs(stuckName);
      const staleDirs = cgroupDirs(staleName);
      const freezer = join(V1_FREEZER, `warren-test-${process.pid}`);
      mkdirSync(freezer, { recursive: true });
      const stuck = await processIn([...stuckDirs, freezer]);
      await processIn(staleDirs);
      const thaw = () => {
        try {
          writeFileSync(join(freezer, 'freezer.state'), 'THAWED');
        } catch {
          // already gone
        }
      };
      const dead = () => !existsSync(`/proc/${stuck}`) || readFileSync(`/proc/${stuck}/status`, 'utf8').includes('zombie');
      onTestFinished(async () => {
        thaw();
        await waitUntil('the stuck process to die', dead);
        await removeOrphanCgroups(ours, { onBusy: () => undefined });
        rmdirSync(freezer);
      });
      writeFileSync(join(freezer, 'freezer.state'), 'FROZEN');
      await waitUntil('the process to be frozen', () => readFileSync(join(freezer, 'freezer.state'), 'utf8').trim() === 'FROZEN');
      const busy: SandboxError[] = [];
      const removed = await removeOrphanCgroups(ours, { onBusy: (error) => busy.push(error) });
      // The frozen process got its SIGKILL but cannot leave: its cgroups stay, named in onBusy.
      expect(busy.length).toBeGreaterThan(0);
      for (const error of busy) {
        expect(error).toBeInstanceOf(SandboxError);
        expect(stuckDirs).toContain(error.path);
        expect(error.message).toMatch(/cannot remove cgroup .*busy/i);
      }
      expect(stuckDirs.some((dir) => existsSync(dir))).toBe(true);
      // The sweep went on past it.
      for (const dir of staleDirs) {
        expect(removed).toContain(dir);
        expect(existsSync(dir), dir).toBe(false);
      }
      // Thawed, the killed process dies and the next sweep removes what was left.
      thaw();
      await waitUntil('the stuck process to die', dead);
      const later = await removeOrphanCgroups(ours);
      for (const dir of stuckDirs.filter((d) => busy.some((e) => e.path === d))) expect(later).toContain(dir);
      for (const dir of stuckDirs) expect(existsSync(dir), dir).toBe(false);
    },
    60_000,
  );
});

describe('a sweep that judged a name before its sandbox was made again', () => {
  it("leaves the new sandbox's cgroups and process alone (the path holds another directory)", async () => {
    const name = `remade-${process.pid}`;
    const dirs = cgroupDirs(name);
    for (const dir of dirs) mkdirSync(dir, { recursive: true });
    // The sweep found the first sandbox's directories (and would judge them a leftover) ...
    const judged = await findDirs(dirs);
    expect(judged.map((d) => d.path)).toEqual(dirs);
    // ... then that sandbox ended, its owner removed them and made a new sandbox of the same name.
    for (const dir of dirs) rmdirSync(dir);
    const pid = await processIn(dirs);
    onTestFinished(async () => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // killed by the sweep, as expected
      }
      await waitUntil('the process to leave its cgroups', () => dirs.every((d) => !existsSync(d) || readFileSync(join(d, 'cgroup.procs'), 'utf8').trim() === ''));
      for (const dir of dirs) if (existsSync(dir)) rmdirSync(dir);
    });
    const removed: string[] = [];
    await removeLeftover(name, judged, removed, undefined);
    expect(removed).toEqual([]);
    for (const dir of dirs) expect(readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim(), dir).toBe(String(pid));
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).not.toMatch(/zombie/);
    // Directories found now are the new ones: a sweep judging them removes them (and kills the process).
    await removeLeftover(name, await findDirs(dirs), removed, undefined);
    expect(removed.sort()).toEqual([...dirs].sort());
    for (const dir of dirs) expect(existsSync(dir), dir).toBe(false);
  });

  it('finds no directory of a name whose directories are gone, so there is nothing to judge', async () => {
    expect(await findDirs(cgroupDirs(`gone-${process.pid}`))).toEqual([]);
  });
});

describe('processesOfUid', () => {
  it('lists the processes whose real uid is uid', async () => {
    const uid = freshUid();
    const child = spawn('/usr/bin/setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '/bin/sleep', '1000'], {
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      await waitUntil('setpriv to switch uid', () => processesOfUid(uid).length === 1);
      expect(processesOfUid(uid)).toEqual([child.pid]);
      expect(processesOfUid(process.getuid!())).toContain(process.pid);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    expect(processesOfUid(uid)).toEqual([]);
  });
});

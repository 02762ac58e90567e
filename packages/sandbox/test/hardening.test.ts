import { spawn } from 'node:child_process';
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureHomeImage, releaseHomeImage, SandboxError, SandboxSpecError, spawnSandbox } from '@warren/sandbox';
import { spawnImplementation } from '@warren/spawn';
import { prologueArgv, type PrologueLimits, type PrologueShell } from '../src/prologue.js';
import { cleanup, makeSpec, readLog, requireSandboxHost, tempDir, track } from './helpers.js';

beforeAll(requireSandboxHost);
afterEach(cleanup);

/** A host file a planted symlink points at; it must never change. */
function victim(dir: string): { path: string; unchanged: () => boolean } {
  const path = join(dir, 'victim');
  writeFileSync(path, 'precious\n');
  chmodSync(path, 0o600);
  return { path, unchanged: () => readFileSync(path, 'utf8') === 'precious\n' && (lstatSync(path).mode & 0o777) === 0o600 };
}

describe('planted symlinks and files on host paths the package writes', () => {
  it('refuses a log path that is a symlink, a FIFO or a hard link, without touching the target', async () => {
    const spec = makeSpec(['/bin/sh', '-c', 'echo written']);
    const target = victim(spec.hostDir);
    mkdirSync(join(spec.hostDir, 'logs'), { recursive: true });
    symlinkSync(target.path, spec.logPath);
    const viaSymlink = await spawnSandbox(spec).catch((e: unknown) => e);
    expect(viaSymlink).toBeInstanceOf(SandboxError);
    expect((viaSymlink as SandboxError).path).toBe(spec.logPath);
    expect(target.unchanged()).toBe(true);

    const fifo = makeSpec(['/bin/sh', '-c', 'echo written']);
    mkdirSync(join(fifo.hostDir, 'logs'), { recursive: true });
    await new Promise<void>((resolve, reject) =>
      spawn('/usr/bin/mkfifo', [fifo.logPath]).once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mkfifo ${code}`)))),
    );
    // O_NONBLOCK: opening a FIFO without a reader fails at once (ENXIO) instead of hanging the supervisor.
    const viaFifo = await spawnSandbox(fifo).catch((e: unknown) => e);
    expect(viaFifo).toBeInstanceOf(SandboxError);
    expect((viaFifo as Error).message).toMatch(/ENXIO|not a regular file/);

    const hard = makeSpec(['/bin/sh', '-c', 'echo written']);
    const hardTarget = victim(hard.hostDir);
    mkdirSync(join(hard.hostDir, 'logs'), { recursive: true });
    linkSync(hardTarget.path, hard.logPath);
    await expect(spawnSandbox(hard)).rejects.toThrow(/2 hard links/);
    expect(hardTarget.unchanged()).toBe(true);
  });

  it('replaces a symlink planted at <log>.1 on rotation instead of writing through it', async () => {
    const spec = makeSpec(['/bin/sh', '-c', 'head -c 300000 /dev/zero'], { logMaxBytes: 100_000 });
    const target = victim(spec.hostDir);
    mkdirSync(join(spec.hostDir, 'logs'), { recursive: true });
    symlinkSync(target.path, `${spec.logPath}.1`);
    const sandbox = track(await spawnSandbox(spec));
    expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    expect(target.unchanged()).toBe(true);
    expect(lstatSync(`${spec.logPath}.1`).isFile()).toBe(true);
  });

  it('replaces symlinks planted at runDir/passwd and runDir/group; the sandbox sees the generated files', async () => {
    const spec = makeSpec(['/bin/sh', '-c', 'cat /etc/passwd /etc/group']);
    const target = victim(spec.hostDir);
    mkdirSync(spec.runDir, { mode: 0o700 });
    symlinkSync(target.path, join(spec.runDir, 'passwd'));
    symlinkSync(target.path, join(spec.runDir, 'group'));
    const sandbox = track(await spawnSandbox(spec));
    expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    expect(readLog(spec)).toBe(spec.passwd + spec.group);
    expect(target.unchanged()).toBe(true);
    expect(lstatSync(join(spec.runDir, 'passwd')).isFile()).toBe(true);
  });

  it('refuses a runDir that is a symlink or that others can write', async () => {
    const linked = makeSpec(['/usr/bin/true']);
    const elsewhere = tempDir();
    symlinkSync(elsewhere, linked.runDir);
    await expect(spawnSandbox(linked)).rejects.toThrow(/not a directory \(a symlink\?\)/);
    expect(() => lstatSync(join(elsewhere, 'passwd'))).toThrow();

    const open = makeSpec(['/usr/bin/true']);
    mkdirSync(open.runDir);
    chmodSync(open.runDir, 0o777);
    await expect(spawnSandbox(open)).rejects.toThrow(/writable by group or others/);
  });

  it('refuses a home that is a symlink, even to a directory the uid owns', async () => {
    const spec = makeSpec(['/usr/bin/true']);
    const link = join(spec.hostDir, 'home-link');
    symlinkSync(spec.homeHostPath, link);
    const error = await spawnSandbox({ ...spec, homeHostPath: link }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxSpecError);
    expect((error as SandboxSpecError).field).toBe('homeHostPath');
  });

  it('refuses bind targets where bwrap would follow agent symlinks (inside the home or /tmp) or over generated files', async () => {
    const spec = makeSpec(['/usr/bin/true']);
    const source = tempDir();
    const cases: [Partial<typeof spec>, string][] = [
      [{ readOnlyBinds: [{ source, target: `${spec.homePath}/repo` }] }, 'readOnlyBinds[0].target'],
      [{ binds: [{ source, target: '/tmp/x' }] }, 'binds[0].target'],
      [{ readOnlyBinds: [{ source, target: '/etc/passwd' }] }, 'readOnlyBinds[0].target'],
      [{ binds: [{ source, target: '/home' }] }, 'binds[0].target'],
    ];
    for (const [override, field] of cases) {
      const error = await spawnSandbox({ ...spec, ...override }).catch((e: unknown) => e);
      expect(error, field).toBeInstanceOf(SandboxSpecError);
      expect((error as SandboxSpecError).field).toBe(field);
    }
  });

  it('moves a home into its image without following symlinks planted in it, and deletes only the links', async () => {
    const spec = makeSpec(['/usr/bin/true']);
    const target = victim(spec.hostDir);
    const targetDir = tempDir();
    writeFileSync(join(targetDir, 'keep'), 'keep');
    symlinkSync(target.path, join(spec.homeHostPath, 'file-link'));
    symlinkSync(targetDir, join(spec.homeHostPath, 'dir-link'));
    const imagePath = join(spec.hostDir, 'home.ext4');
    await ensureHomeImage({ imagePath, sizeBytes: 8 * 1024 * 1024, mountPoint: spec.homeHostPath, uid: spec.uid, gid: spec.gid });
    try {
      expect(readlinkSync(join(spec.homeHostPath, 'file-link'))).toBe(target.path);
      expect(readlinkSync(join(spec.homeHostPath, 'dir-link'))).toBe(targetDir);
    } finally {
      await releaseHomeImage(spec.homeHostPath);
    }
    expect(target.unchanged()).toBe(true);
    expect(readFileSync(join(targetDir, 'keep'), 'utf8')).toBe('keep');
    expect(readdirSync(spec.homeHostPath)).toEqual([]);
  });
});

const FD_LISTER =
  'opendir(my $d, "/proc/self/fd") or die; for (sort { $a <=> $b } grep { /^\\d+$/ } readdir $d) { my $t = readlink("/proc/self/fd/$_") // ""; print "$_\\n" unless $t =~ m{^/proc/\\d+/fd$} }';

/** The shells the prologue may run under on this host (bash, dash as /bin/sh, and `sh`: any /bin/sh with prlimit). */
const SHELLS: PrologueShell[] = [
  ...(existsSync('/bin/bash') ? [{ path: '/bin/bash', kind: 'bash' } as const] : []),
  ...(basename(realpathSync('/bin/sh')) === 'dash' ? [{ path: '/bin/sh', kind: 'dash' } as const] : []),
  { path: '/bin/sh', kind: 'sh' },
];
const LIMITS: PrologueLimits = { nofile: 123, fsizeBytes: 4 * 1024 * 1024, nproc: 77 };

/** Runs the real prologue under `shell` with extra inherited descriptors; returns its exit code, stdout and stderr. */
async function runPrologue(
  shell: PrologueShell,
  extraFds: number[],
  command: string[],
  limits = LIMITS,
  options?: { perlPath?: string; stdinSocket?: boolean; env?: Record<string, string> },
): Promise<{ code: number | null; out: string; err: string }> {
  const highest = Math.max(4, ...extraFds);
  const stdio: ('pipe' | 'ignore')[] = [options?.stdinSocket ? 'pipe' : 'ignore', 'pipe', 'pipe'];
  for (let fd = 3; fd <= highest; fd++) stdio.push(fd <= 4 || extraFds.includes(fd) ? 'pipe' : 'ignore');
  const perl = options?.perlPath === undefined ? undefined : { perlPath: options.perlPath };
  const child = spawn(shell.path, prologueArgv(shell, [], limits, '/usr/bin/prlimit', command, perl), { stdio, env: options?.env ?? {} });
  child.stdin?.end();
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, out, err };
}

/** Runs the real prologue under `shell` with extra inherited descriptors and returns the descriptors the command sees. */
async function descriptorsSeen(shell: PrologueShell, extraFds: number[]): Promise<number[]> {
  const { code, out, err } = await runPrologue(shell, extraFds, ['/usr/bin/perl', '-e', FD_LISTER]);
  expect(err).toBe('');
  expect(code).toBe(0);
  return out
    .trim()
    .split('\n')
    .map(Number);
}

/** The soft and hard values of the limits the prologue sets, as the command's /proc/self/limits shows them. */
async function limitsSeen(shell: PrologueShell, limits: PrologueLimits): Promise<string[]> {
  const { code, out, err } = await runPrologue(shell, [], ['/bin/grep', '-E', '^Max (open files|file size|processes) ', '/proc/self/limits'], limits);
  expect(err).toBe('');
  expect(code).toBe(0);
  return out
    .trim()
    .split('\n')
    .map((line) => line.replace(/\s+/g, ' ').trim());
}

describe('inherited descriptors', () => {
  it.each(SHELLS)('closes every descriptor but 0-4 before bwrap, also above 9 ($kind)', async (shell) => {
    expect(await descriptorsSeen(shell, [5, 7, 9])).toEqual([0, 1, 2, 3, 4]);
    expect(await descriptorsSeen(shell, [6, 12, 40])).toEqual([0, 1, 2, 3, 4]);
  });

  it('closes descriptors above 9 under bash without Perl, where dash needs it', async () => {
    const bash = SHELLS.find((shell) => shell.kind === 'bash');
    expect(bash, 'this host has /bin/bash').toBeDefined();
    const noPerl = { perlPath: '' };
    const underBash = await runPrologue(bash!, [6, 12, 40], ['/usr/bin/perl', '-e', FD_LISTER], LIMITS, noPerl);
    expect(underBash.err).toBe('');
    expect(underBash.out.trim().split('\n').map(Number)).toEqual([0, 1, 2, 3, 4]);
    for (const shell of SHELLS.filter((s) => s.kind !== 'bash')) {
      const without = await runPrologue(shell, [12], ['/bin/true'], LIMITS, noPerl);
      expect(without.code, shell.kind).toBe(125);
      expect(without.err, shell.kind).toMatch(/^warren-sandbox: inherited descriptors above 9 need perl/);
    }
  });

  it('runs no startup file under bash, also with a socket for stdin (which bash takes for sshd)', async () => {
    const bash = SHELLS.find((shell) => shell.kind === 'bash');
    expect(bash, 'this host has /bin/bash').toBeDefined();
    const home = tempDir();
    writeFileSync(join(home, '.bashrc'), 'echo "sourced .bashrc" >&2\n');
    const { code, err } = await runPrologue(bash!, [], ['/bin/true'], LIMITS, { stdinSocket: true, env: { HOME: home } });
    expect(err).toBe('');
    expect(code).toBe(0);
  });

  /**
   * Runs `expression` (given the module `m` of the built prologue) in a node whose only inherited
   * descriptors are 0-2 (bash closes what this test runner inherited) and, with `keep40`, 40 (a
   * socket; Node itself marks some low ones close-on-exec at start, and all of its own): prints it.
   */
  const inNodeWithDescriptors = (keep40: boolean, expression: string): Promise<string> => {
    const probe = `import(${JSON.stringify(join(import.meta.dirname, '..', 'dist', 'prologue.js'))}).then((m) => process.stdout.write(String(${expression})))`;
    const closeAllBut = 'for f in /proc/self/fd/*; do fd=${f##*/}; case " $KEEP " in *" $fd "*) ;; *) eval "exec $fd>&-" ;; esac; done; exec "$0" "$@"';
    return new Promise((resolve) => {
      const stdio: ('pipe' | 'ignore')[] = ['ignore', 'pipe', 'ignore'];
      if (keep40) for (let fd = 3; fd <= 40; fd++) stdio.push(fd === 40 ? 'pipe' : 'ignore');
      const child = spawn('/bin/bash', ['-c', closeAllBut, process.execPath, '-e', probe], { stdio, env: { KEEP: keep40 ? '0 1 2 40' : '0 1 2' } });
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.once('close', () => resolve(out));
    });
  };

  it('says whether this process holds inheritable descriptors above 9', async () => {
    expect(await inNodeWithDescriptors(true, 'm.inheritsHighDescriptors()')).toBe('true');
    expect(await inNodeWithDescriptors(false, 'm.inheritsHighDescriptors()')).toBe('false');
  });

  it('keeps the lightest shell when posix_spawn closes inherited descriptors above 9 itself', async () => {
    expect(spawnImplementation()).toBe('posix_spawn');
    const kind = await inNodeWithDescriptors(true, 'm.prologueShell().kind');
    expect(basename(realpathSync('/bin/sh')), "this host's /bin/sh is dash").toBe('dash');
    expect(kind).toBe('dash');
  });
});

describe('resource limits set by the prologue', () => {
  it.each(SHELLS)('sets nofile, fsize and nproc, soft and hard ($kind)', async (shell) => {
    expect(await limitsSeen(shell, LIMITS)).toEqual([
      'Max file size 4194304 4194304 bytes',
      'Max processes 77 77 processes',
      'Max open files 123 123 files',
    ]);
    // Not a whole number of ulimit blocks: prlimit sets it exactly.
    expect(await limitsSeen(shell, { ...LIMITS, fsizeBytes: 1_000_001 })).toContain('Max file size 1000001 1000001 bytes');
  });

  it('fails with status 125 and a warren-sandbox line when a limit cannot be set', async () => {
    for (const shell of SHELLS.filter((s) => s.kind !== 'sh')) {
      // RLIMIT_NOFILE above the kernel's nr_open is refused even to root.
      const { code, err } = await runPrologue(shell, [], ['/bin/true'], { ...LIMITS, nofile: 1 << 30 });
      expect(code, shell.kind).toBe(125);
      expect(err, shell.kind).toMatch(/^warren-sandbox: cannot set the resource limits/);
    }
  });

  it('needs no prlimit when the shell sets the limits, and says so when it does', () => {
    const dash: PrologueShell = { path: '/bin/sh', kind: 'dash' };
    expect(prologueArgv(dash, [], LIMITS, null, ['/bin/true'])).not.toContain('/usr/bin/prlimit');
    expect(() => prologueArgv({ path: '/bin/sh', kind: 'sh' }, [], LIMITS, null, ['/bin/true'])).toThrow(/prlimit is needed/);
    expect(prologueArgv({ path: '/bin/sh', kind: 'sh' }, [], LIMITS, '/usr/bin/prlimit', ['/bin/true'])).toContain('/usr/bin/prlimit');
  });
});

describe('the agent\'s descriptors', () => {
  it('lets nothing but stdin, stdout and stderr reach the agent', async () => {
    const spec = makeSpec([
      '/usr/bin/perl',
      '-e',
      'opendir(my $d, "/proc/self/fd") or die; for (sort { $a <=> $b } grep { /^\\d+$/ } readdir $d) { my $t = readlink("/proc/self/fd/$_") // ""; print "$_\\n" unless $t =~ m{^/proc/\\d+/fd$} }',
    ]);
    const sandbox = track(await spawnSandbox(spec));
    expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    expect(readLog(spec)).toBe('0\n1\n2\n');
  });
});

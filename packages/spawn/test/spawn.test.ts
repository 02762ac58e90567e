import { spawn as forkSpawn, execFileSync } from 'node:child_process';
import { chmodSync, closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnImplementation, spawnProcess, type SpawnedProcess, type SpawnProcessOptions } from '@warren/spawn';

const PATH = '/usr/bin:/bin';
const started: SpawnedProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const child of started.splice(0)) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function start(file: string, args: readonly string[], options: SpawnProcessOptions): SpawnedProcess {
  const child = spawnProcess(file, args, options);
  started.push(child);
  return child;
}

function tempDir(): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'warren-spawn-test-')));
  dirs.push(dir);
  return dir;
}

interface End {
  readonly code: number | null;
  readonly signal: string | null;
}

function ended(child: SpawnedProcess): Promise<End> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', reject);
  });
}

function failed(child: SpawnedProcess): Promise<NodeJS.ErrnoException & { path?: string; spawnargs?: string[] }> {
  return new Promise((resolve, reject) => {
    child.once('error', resolve);
    child.once('exit', () => reject(new Error('the child started')));
  });
}

function text(stream: Readable | null | undefined): Promise<string> {
  if (!stream) throw new Error('no stream');
  return new Promise((resolve, reject) => {
    let all = '';
    stream.on('data', (chunk: Buffer) => (all += chunk.toString('utf8')));
    stream.once('close', () => resolve(all));
    stream.once('error', reject);
  });
}

/** Output of a shell command run with our spawn: fd 1 a pipe, the end. */
async function shell(script: string, options: Partial<SpawnProcessOptions> = {}): Promise<{ out: string; end: End }> {
  const child = start('/bin/sh', ['-c', script], { env: { PATH }, stdio: ['ignore', 'pipe', 'ignore'], ...options });
  const [out, end] = await Promise.all([text(child.stdout), ended(child)]);
  return { out, end };
}

/** Our children that are zombies (exited, not reaped). */
function zombieChildren(): number[] {
  const zombies: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' && Number(fields[1]) === process.pid) zombies.push(Number(name));
  }
  return zombies;
}

/** The built module (`dist/index.js`), for a separate Node process (which cannot load TypeScript). */
function distIndex(): string {
  return fileURLToPath(new URL('../dist/index.js', import.meta.url));
}

/** Our descriptors that are pidfds. */
function openPidfds(): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[pidfd]') count++;
    } catch {
      // closed meanwhile (the directory's own descriptor)
    }
  }
  return count;
}

describe('spawnProcess', () => {
  it('uses posix_spawn on Linux x64 (the addon is built and loads)', () => {
    if (process.platform !== 'linux' || process.arch !== 'x64') return;
    expect(spawnImplementation()).toBe('posix_spawn');
  });

  it('reports the exit code and the signal', async () => {
    const exited = start('/bin/sh', ['-c', 'exit 7'], { env: {} });
    expect(exited.pid).toBeGreaterThan(0);
    expect(await ended(exited)).toEqual({ code: 7, signal: null });
    expect(exited.exitCode).toBe(7);
    expect(exited.signalCode).toBeNull();
    const signaled = start('/bin/sh', ['-c', 'kill -USR1 $$'], { env: {} });
    expect(await ended(signaled)).toEqual({ code: null, signal: 'SIGUSR1' });
    expect(signaled.signalCode).toBe('SIGUSR1');
  });

  it('gives a program that cannot be run as an error event with the path, as child_process does', async () => {
    const missing = start('/nonexistent/program', ['a'], { env: {} });
    expect(missing.pid).toBeUndefined();
    const error = await failed(missing);
    expect(error.message).toBe('spawn /nonexistent/program ENOENT');
    expect(error.code).toBe('ENOENT');
    expect(error.path).toBe('/nonexistent/program');
    expect(error.spawnargs).toEqual(['a']);
    expect(missing.kill()).toBe(false);

    const dir = tempDir();
    const notExecutable = join(dir, 'script');
    writeFileSync(notExecutable, '#!/bin/sh\nexit 0\n');
    chmodSync(notExecutable, 0o644);
    const denied = await failed(start(notExecutable, [], { env: {} }));
    expect(denied.code).toBe('EACCES');

    expect((await failed(start('no-such-program-here', [], { env: { PATH } }))).code).toBe('ENOENT');
    expect((await failed(start('/bin/true', [], { env: {}, cwd: join(dir, 'missing') }))).code).toBe('ENOENT');
  });

  it('searches the PATH of the given environment for a bare name', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'say-hello'), '#!/bin/sh\necho hello from $0\n', { mode: 0o755 });
    const { out, end } = await shell('exec say-hello', { env: { PATH: `/nonexistent:${dir}:${PATH}` } });
    expect(end).toEqual({ code: 0, signal: null });
    expect(out).toBe(`hello from ${dir}/say-hello\n`);
  });

  it('connects pipes to the child descriptors they were given for', async () => {
    const child = start('/bin/sh', ['-c', 'read line; echo "out:$line"; echo err >&2; echo status >&3'], {
      env: { PATH },
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
    const outputs = Promise.all([text(child.stdout), text(child.stderr), text(child.stdio[3] as Readable)]);
    child.stdin!.end('typed\n');
    expect(await ended(child)).toEqual({ code: 0, signal: null });
    expect(await outputs).toEqual(['out:typed\n', 'err\n', 'status\n']);
    expect(child.stdio[0]).toBe(child.stdin);
  });

  it('gives the child copies of our descriptors at their positions, even when the positions cross', async () => {
    const dir = tempDir();
    const a = openSync(join(dir, 'a'), 'w');
    const b = openSync(join(dir, 'b'), 'w');
    try {
      // Child fd a gets our b and child fd b gets our a: a naive dup2 order would clobber one source.
      const stdio: ('ignore' | number)[] = Array.from({ length: Math.max(a, b) + 1 }, () => 'ignore');
      stdio[a] = b;
      stdio[b] = a;
      const child = start('/bin/sh', ['-c', `readlink /proc/$$/fd/${a} /proc/$$/fd/${b} > /proc/$$/fd/${a}`], { env: { PATH }, stdio });
      expect(await ended(child)).toEqual({ code: 0, signal: null });
    } finally {
      closeSync(a);
      closeSync(b);
    }
    expect(readFileSync(join(dir, 'b'), 'utf8')).toBe(`${join(dir, 'b')}\n${join(dir, 'a')}\n`);
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('');
  });

  it('gives /dev/null to ignored descriptors 0–2 and no descriptor past the stdio list', async () => {
    const { out } = await shell('ls /proc/$$/fd; readlink /proc/$$/fd/0 /proc/$$/fd/2');
    expect(out.trim().split('\n')).toEqual(['0', '1', '2', '/dev/null', '/dev/null']);
  });

  it('gives the child exactly the environment asked for', async () => {
    const child = start('/usr/bin/env', [], { env: { ONE: '1', 'WITH SPACE': 'a=b c' }, stdio: ['ignore', 'pipe', 'ignore'] });
    const [out] = await Promise.all([text(child.stdout), ended(child)]);
    expect(out).toBe('ONE=1\nWITH SPACE=a=b c\n');
  });

  it('starts the child in cwd', async () => {
    const dir = tempDir();
    const { out } = await shell('pwd -P', { cwd: dir });
    expect(out).toBe(`${dir}\n`);
  });

  it('starts the child with every signal at its default and none blocked (Node ignores SIGPIPE)', async () => {
    const signals = start('/bin/grep', ['-E', '^Sig(Ign|Blk)', '/proc/self/status'], { env: {}, stdio: ['ignore', 'pipe', 'ignore'] });
    const [out] = await Promise.all([text(signals.stdout), ended(signals)]);
    expect(out).toBe('SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n');
    // `yes` dies of SIGPIPE once `head` has gone; with SIGPIPE ignored it would write on (EPIPE) forever.
    expect(await shell('yes | head -n 1')).toEqual({ out: 'y\n', end: { code: 0, signal: null } });
  });

  it('starts a new session when detached, and stays in ours otherwise', async () => {
    const session = (stat: string): number => Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
    const ours = session(readFileSync('/proc/self/stat', 'utf8'));
    const detached = start('/bin/sh', ['-c', 'cat /proc/$$/stat'], { env: { PATH }, stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    const [detachedStat] = await Promise.all([text(detached.stdout), ended(detached)]);
    expect(session(detachedStat)).toBe(detached.pid);
    const { out } = await shell('cat /proc/$$/stat');
    expect(session(out)).toBe(ours);
  });

  it('kills a running child, and reports false once it has been reaped', async () => {
    const child = start('/bin/sleep', ['30'], { env: {} });
    expect(child.kill()).toBe(true);
    expect(await ended(child)).toEqual({ code: null, signal: 'SIGTERM' });
    expect(child.kill('SIGKILL')).toBe(false);
    expect(() => start('/bin/sleep', ['30'], { env: {} }).kill('SIGNOPE' as NodeJS.Signals)).toThrow(TypeError);
  });

  it('reaps 200 children started at once: every exit seen, no zombie, no pidfd left open', async () => {
    const children = Array.from({ length: 200 }, (_, i) => start('/bin/sh', ['-c', `exit ${i % 100}`], { env: {} }));
    const ends = await Promise.all(children.map(ended));
    expect(ends).toEqual(children.map((_, i) => ({ code: i % 100, signal: null })));
    expect(zombieChildren()).toEqual([]);
    expect(openPidfds()).toBe(0);
  });

  it('leaves child_process its own children, and child_process leaves us ours', async () => {
    const ours = Array.from({ length: 20 }, (_, i) => start('/bin/sh', ['-c', `sleep 0.0${i % 10}; exit ${i + 1}`], { env: {} }));
    const theirs = Array.from({ length: 20 }, (_, i) => forkSpawn('/bin/sh', ['-c', `sleep 0.0${i % 10}; exit ${i + 101}`], { stdio: 'ignore' }));
    const theirEnds = theirs.map((child) => new Promise<End>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))));
    expect(await Promise.all(ours.map(ended))).toEqual(ours.map((_, i) => ({ code: i + 1, signal: null })));
    expect(await Promise.all(theirEnds)).toEqual(theirs.map((_, i) => ({ code: i + 101, signal: null })));
    expect(zombieChildren()).toEqual([]);
  });

  it('passes an exception thrown by an exit listener on as an uncaught exception', () => {
    const script = [
      `import { spawnProcess } from ${JSON.stringify(distIndex())};`,
      "process.on('uncaughtException', (error) => console.log('uncaught', error.message));",
      "spawnProcess('/bin/true', [], { env: {} }).on('exit', () => { throw new Error('from the listener'); });",
      "spawnProcess('/bin/sh', ['-c', 'sleep 0.1; exit 4'], { env: {} }).on('exit', (code) => console.log('exit', code));",
    ].join('\n');
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(out).toBe('uncaught from the listener\nexit 4\n');
  });

  it('keeps Node running while a child runs, and not after its exit', () => {
    const script = [
      `import { spawnProcess } from ${JSON.stringify(distIndex())};`,
      "const child = spawnProcess('/bin/sh', ['-c', 'sleep 0.2; exit 3'], { env: {} });",
      "child.on('exit', (code) => console.log('exit', code));",
    ].join('\n');
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(out).toBe('exit 3\n');
  });
});

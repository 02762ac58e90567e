import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, type TempDir } from '@warren/testing';
import { mirrorName, RepositoryError, syncMirror } from '@warren/workspace';

const GIT_ENV = { PATH: '/usr/bin:/bin', HOME: '/nonexistent', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', LC_ALL: 'C' };

/** Runs git as the test's own tooling (not the code under test); returns trimmed stdout. */
function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.invalid', ...args], { cwd, env: GIT_ENV, encoding: 'utf8' }).trim();
}

function makeRepo(path: string, branch = 'main'): string {
  mkdirSync(path, { recursive: true });
  git(path, 'init', '--quiet', '-b', branch);
  writeFileSync(join(path, 'README.md'), 'hello\n');
  git(path, 'add', 'README.md');
  git(path, 'commit', '--quiet', '-m', 'first');
  return git(path, 'rev-parse', 'HEAD');
}

const temps: TempDir[] = [];
afterEach(async () => {
  for (const temp of temps.splice(0)) await temp.close();
});
async function temp(): Promise<string> {
  const dir = await makeTempDir('warren-mirror-');
  temps.push(dir);
  return dir.path;
}

/** Every entry under `dir` (itself included), not following symlinks. */
function walk(dir: string): string[] {
  const found = [dir];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...walk(path));
    else found.push(path);
  }
  return found;
}

describe('syncMirror', () => {
  it('mirrors a local repository, then fetches its new commits and branches and prunes deleted ones', async () => {
    const dir = await temp();
    const source = join(dir, 'src');
    const first = makeRepo(source);
    git(source, 'branch', 'old-feature');
    const reposDir = join(dir, 'repos');

    const mirror = await syncMirror({ source, reposDir });
    expect(mirror).toEqual({ path: join(reposDir, `${mirrorName(source)}.git`), name: mirrorName(source), defaultBranch: 'main', commit: first, created: true });
    expect(mirror.name).toMatch(/^[0-9a-f]{16}$/);
    expect(git(mirror.path, 'rev-parse', '--is-bare-repository')).toBe('true');
    expect(git(mirror.path, 'for-each-ref', '--format=%(refname)').split('\n')).toEqual(['refs/heads/main', 'refs/heads/old-feature']);
    expect(readdirSync(reposDir)).toEqual([`${mirror.name}.git`]);

    writeFileSync(join(source, 'README.md'), 'hello again\n');
    git(source, 'commit', '--quiet', '-am', 'second');
    const second = git(source, 'rev-parse', 'HEAD');
    git(source, 'branch', 'new-feature');
    git(source, 'branch', '-D', 'old-feature');

    const updated = await syncMirror({ source, reposDir });
    expect(updated).toEqual({ ...mirror, commit: second, created: false });
    expect(git(mirror.path, 'for-each-ref', '--format=%(refname)').split('\n')).toEqual(['refs/heads/main', 'refs/heads/new-feature']);
  });

  it('follows a change of the default branch of the source', async () => {
    const dir = await temp();
    const source = join(dir, 'src');
    makeRepo(source);
    const reposDir = join(dir, 'repos');
    await syncMirror({ source, reposDir });
    git(source, 'checkout', '--quiet', '-b', 'trunk');
    writeFileSync(join(source, 'trunk.txt'), 'on trunk\n');
    git(source, 'add', 'trunk.txt');
    git(source, 'commit', '--quiet', '-m', 'trunk');
    const updated = await syncMirror({ source, reposDir });
    expect(updated).toMatchObject({ defaultBranch: 'trunk', commit: git(source, 'rev-parse', 'HEAD'), created: false });
  });

  it('keeps the mirror owned by the caller, readable by all and writable by no one else, even under umask 077', async () => {
    const dir = await temp();
    const source = join(dir, 'src');
    makeRepo(source);
    const reposDir = join(dir, 'repos');
    const before = process.umask(0o077);
    let mirror;
    try {
      mirror = await syncMirror({ source, reposDir });
      writeFileSync(join(source, 'more.txt'), 'more\n');
      git(source, 'add', 'more.txt');
      git(source, 'commit', '--quiet', '-m', 'more');
      await syncMirror({ source, reposDir });
    } finally {
      process.umask(before);
    }
    const reposInfo = lstatSync(reposDir);
    expect(reposInfo.mode & 0o777).toBe(0o755);
    const problems = walk(mirror.path).flatMap((path) => {
      const info = lstatSync(path);
      const mode = info.mode & 0o7777;
      const wrong =
        info.uid !== process.getuid!() ||
        (mode & 0o022) !== 0 ||
        (info.isDirectory() ? (mode & 0o055) !== 0o055 : (mode & 0o044) !== 0o044);
      return wrong ? [`${path} uid ${info.uid} mode ${mode.toString(8)}`] : [];
    });
    expect(problems).toEqual([]);
  });

  it('runs no hook, fsmonitor, filter or other command that the source repository configures', async () => {
    const dir = await temp();
    const source = join(dir, 'src');
    const marker = join(dir, 'marker');
    const evil = join(dir, 'evil.sh');
    writeFileSync(evil, `#!/bin/sh\necho "$0 $*" >> ${marker}\ncat\n`);
    chmodSync(evil, 0o755);
    makeRepo(source);
    writeFileSync(join(source, '.gitattributes'), '* filter=evil diff=evil\n');
    git(source, 'add', '.gitattributes');
    git(source, 'commit', '--quiet', '-m', 'attributes');
    const hooks = join(dir, 'hooks');
    mkdirSync(hooks);
    for (const hook of ['pre-commit', 'post-checkout', 'post-merge', 'reference-transaction', 'post-update', 'update', 'pre-receive', 'post-receive', 'fsmonitor-watchman']) {
      writeFileSync(join(hooks, hook), `#!/bin/sh\n${evil} hook-${hook} </dev/null\n`);
      chmodSync(join(hooks, hook), 0o755);
      writeFileSync(join(source, '.git', 'hooks', hook), `#!/bin/sh\n${evil} local-hook-${hook} </dev/null\n`);
      chmodSync(join(source, '.git', 'hooks', hook), 0o755);
    }
    for (const [key, value] of [
      ['core.hooksPath', hooks],
      ['core.fsmonitor', evil],
      ['filter.evil.clean', evil],
      ['filter.evil.smudge', evil],
      ['filter.evil.required', 'true'],
      ['diff.evil.command', evil],
      ['diff.external', evil],
      ['core.sshCommand', evil],
      ['core.pager', evil],
      ['core.alternateRefsCommand', evil],
      ['uploadpack.packObjectsHook', evil],
      ['credential.helper', `!${evil}`],
    ] as const) {
      git(source, 'config', key, value);
    }
    // The configuration works: a status in the source runs its fsmonitor and its hooks.
    writeFileSync(join(source, 'README.md'), 'changed\n');
    git(source, 'add', 'README.md');
    git(source, 'commit', '--quiet', '-m', 'with hooks');
    expect(existsSync(marker)).toBe(true);
    rmSync(marker);

    const reposDir = join(dir, 'repos');
    const mirror = await syncMirror({ source, reposDir });
    writeFileSync(join(source, 'next.txt'), 'next\n');
    git(source, '-c', 'core.hooksPath=/dev/null', '-c', 'core.fsmonitor=false', 'add', 'next.txt');
    git(source, '-c', 'core.hooksPath=/dev/null', '-c', 'core.fsmonitor=false', 'commit', '--quiet', '-m', 'next');
    rmSync(marker, { force: true });
    const updated = await syncMirror({ source, reposDir });
    expect(updated.created).toBe(false);
    expect(updated.commit).toBe(git(source, '-c', 'core.fsmonitor=false', 'rev-parse', 'HEAD'));
    expect(existsSync(marker)).toBe(false);
    // The mirror's own configuration names none of them (`--get-regexp` exits 1 when nothing matches).
    expect(() => git(mirror.path, 'config', '--get-regexp', '^(core\\.(hookspath|fsmonitor|sshcommand|pager)|filter\\.|diff\\.)')).toThrow(/status 1|code 1|Command failed/);
  });

  it('refuses a local source owned by another uid, such as an agent-writable repository', async () => {
    const dir = await temp();
    const source = join(dir, 'agent-src');
    makeRepo(source);
    const uid = 60_000 + (process.pid % 1000);
    execFileSync('chown', ['-R', `${uid}:${uid}`, source]);
    const reposDir = join(dir, 'repos');
    const error = await syncMirror({ source, reposDir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RepositoryError);
    expect(error).toMatchObject({ code: 'WARREN_REPOSITORY_SYNC', source });
    expect((error as Error).message).toContain('dubious ownership');
    expect(readdirSync(reposDir)).toEqual([]);
    chownSync(source, 0, 0);
  });

  it('fails with the source and git stderr for a path that is not a repository, leaving nothing behind', async () => {
    const dir = await temp();
    const source = join(dir, 'missing');
    const reposDir = join(dir, 'repos');
    const error = await syncMirror({ source, reposDir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RepositoryError);
    expect(error).toMatchObject({ code: 'WARREN_REPOSITORY_SYNC' });
    expect((error as Error).message).toMatch(new RegExp(`^repository "${source}": git clone --mirror .* failed \\(exit code 128\\): .*${source}`));
    expect(readdirSync(reposDir)).toEqual([]);
  });

  it('fails clearly for a repository without commits', async () => {
    const dir = await temp();
    const source = join(dir, 'empty');
    mkdirSync(source);
    git(source, 'init', '--quiet', '-b', 'main');
    const error = await syncMirror({ source, reposDir: join(dir, 'repos') }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'WARREN_REPOSITORY_SYNC', message: `repository "${source}": its default branch main has no commit` });
  });

  it('refuses a relative path, an option-like or ext:: source, and hides a URL password in errors', async () => {
    const reposDir = join(await temp(), 'repos');
    for (const source of ['repos/app', '-uhack', 'ext::sh -c touch% /tmp/x', '']) {
      await expect(syncMirror({ source, reposDir })).rejects.toMatchObject({ code: 'WARREN_REPOSITORY_INVALID' });
    }
    // Port 1 on loopback: nothing listens, so git fails at once.
    const error = await syncMirror({ source: 'http://alice:s3cret@127.0.0.1:1/app.git', reposDir }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'WARREN_REPOSITORY_SYNC', source: 'http://***@127.0.0.1:1/app.git' });
    expect((error as Error).message).not.toContain('s3cret');
    expect((error as Error).message).toContain('http://***@127.0.0.1:1/app.git');
  });

  it('serialises concurrent calls for one source', async () => {
    const dir = await temp();
    const source = join(dir, 'src');
    const commit = makeRepo(source);
    const reposDir = join(dir, 'repos');
    const results = await Promise.all([syncMirror({ source, reposDir }), syncMirror({ source, reposDir }), syncMirror({ source, reposDir })]);
    expect(results.map((r) => r.created)).toEqual([true, false, false]);
    expect(new Set(results.map((r) => `${r.path} ${r.commit}`))).toEqual(new Set([`${join(reposDir, `${mirrorName(source)}.git`)} ${commit}`]));
    expect(readdirSync(reposDir)).toEqual([`${mirrorName(source)}.git`]);
  });
});

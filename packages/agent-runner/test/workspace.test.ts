import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, type TempDir } from '@warren/testing';
import { assertIsolation, probeHost, processesOfUid, spawnSandbox } from '@warren/sandbox';
import { syncMirror } from '@warren/workspace';
import { formatGitWorkspaceSummary, gitIdentityEnv, GitWorkspaceError, mirrorInSandbox, prepareGitWorkspace, summarizeGitWorkspace } from '../src/workspace.js';
import { buildRunner, PACKAGE_DIR } from './gateway.js';

const GIT_ENV = { PATH: '/usr/bin:/bin', HOME: '/nonexistent', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', LC_ALL: 'C' };

/** The test's own git (not the code under test), trusting every directory; returns trimmed stdout. */
function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'safe.directory=*', '-c', 'user.name=Test', '-c', 'user.email=test@example.invalid', ...args], {
    cwd,
    env: GIT_ENV,
    encoding: 'utf8',
  }).trim();
}

const temps: TempDir[] = [];
afterEach(async () => {
  for (const temp of temps.splice(0)) await temp.close();
});

/** A source repository (main: README.md of 3 lines; branch feature; tag v1), its mirror and a home. */
async function setup(): Promise<{ dir: string; source: string; reposDir: string; mirror: string; commit: string; home: string }> {
  const temp = await makeTempDir('warren-gitws-');
  temps.push(temp);
  const dir = temp.path;
  chmodSync(dir, 0o755);
  const source = join(dir, 'src');
  mkdirSync(source);
  git(source, 'init', '--quiet', '-b', 'main');
  writeFileSync(join(source, 'README.md'), 'one\ntwo\nthree\n');
  git(source, 'add', 'README.md');
  git(source, 'commit', '--quiet', '-m', 'first');
  git(source, 'tag', 'v1');
  git(source, 'checkout', '--quiet', '-b', 'feature');
  writeFileSync(join(source, 'feature.txt'), 'feature\n');
  git(source, 'add', 'feature.txt');
  git(source, 'commit', '--quiet', '-m', 'feature');
  git(source, 'checkout', '--quiet', 'main');
  const reposDir = join(dir, 'repos');
  const mirror = await syncMirror({ source, reposDir });
  const home = join(dir, 'home');
  mkdirSync(home, { mode: 0o700 });
  return { dir, source, reposDir, mirror: mirror.path, commit: mirror.commit, home };
}

/** `git diff --numstat base head`, summed independently of the code under test. */
function numstat(cwd: string, base: string, head: string): { filesChanged: number; insertions: number; deletions: number } {
  const rows = git(cwd, 'diff', '--numstat', '--no-renames', base, head)
    .split('\n')
    .filter(Boolean)
    .map((row) => row.split('\t'));
  return {
    filesChanged: rows.length,
    insertions: rows.reduce((sum, [added]) => sum + Number(added), 0),
    deletions: rows.reduce((sum, [, deleted]) => sum + Number(deleted), 0),
  };
}

describe('prepareGitWorkspace and summarizeGitWorkspace', () => {
  it('clones the mirror once per agent and makes a worktree per task on warren/<agent>/<task> from the mirror HEAD', async () => {
    const { mirror, commit, home } = await setup();
    const name = mirror.split('/').at(-1)!.replace(/\.git$/, '');
    const ws = await prepareGitWorkspace({ mirror, home, agent: 'coder-1', taskId: 'fix-readme' });
    expect(ws).toEqual({ path: join(home, 'work', 'fix-readme'), branch: 'warren/coder-1/fix-readme', baseCommit: commit, clone: join(home, 'repos', name), reused: false });
    expect(git(ws.path, 'symbolic-ref', '--short', 'HEAD')).toBe('warren/coder-1/fix-readme');
    expect(git(ws.path, 'rev-parse', 'HEAD')).toBe(commit);
    expect(readFileSync(join(ws.path, 'README.md'), 'utf8')).toBe('one\ntwo\nthree\n');
    expect(git(ws.clone, 'config', '--get', 'remote.origin.url')).toBe(mirror);
    // --no-hardlinks: the clone's objects are its own files, not links into the read-only mirror.
    const objects = (readdirSync(join(ws.clone, '.git', 'objects'), { recursive: true }) as string[])
      .map((f) => join(ws.clone, '.git', 'objects', f))
      .filter((f) => lstatSync(f).isFile());
    expect(objects.length).toBeGreaterThan(0);
    expect(objects.filter((f) => lstatSync(f).nlink !== 1)).toEqual([]);
  });

  it('summarises an edit and a new file as git diff --numstat counts them, and commits them on the branch as the agent', async () => {
    const { mirror, home } = await setup();
    const ws = await prepareGitWorkspace({ mirror, home, agent: 'coder-1', taskId: 'edit' });
    writeFileSync(join(ws.path, 'README.md'), 'one\n2\nthree\nfour\nfive\n');
    mkdirSync(join(ws.path, 'src'));
    writeFileSync(join(ws.path, 'src', 'main.ts'), 'export const a = 1;\nexport const b = 2;\n');
    // The runner's own files in the workspace are never part of the result.
    writeFileSync(join(ws.path, 'task.json'), '{}\n');
    writeFileSync(join(ws.path, 'output.log'), 'log\n');

    const summary = await summarizeGitWorkspace({ path: ws.path, baseCommit: ws.baseCommit, agent: 'coder-1', taskId: 'edit', attempt: 1 });
    const head = git(ws.path, 'rev-parse', 'HEAD');
    expect(summary).toEqual({
      branch: 'warren/coder-1/edit',
      head,
      commits: 1,
      ...numstat(ws.path, ws.baseCommit, head),
      // git's own --stat lines, each starting with a space (the helper trims the first).
      stat: ` ${git(ws.path, 'diff', '--stat=100', '--no-renames', ws.baseCommit, head)}`,
      uncommitted: true,
    });
    expect(summary).toMatchObject({ filesChanged: 2, insertions: 5, deletions: 1 });
    expect(git(ws.path, 'log', '-1', '--format=%an <%ae> | %cn | %s')).toBe('coder-1 <coder-1@agents.warren.invalid> | coder-1 | warren: edit attempt 1');
    expect(git(ws.path, 'show', '--name-only', '--format=', 'HEAD').split('\n').sort()).toEqual(['README.md', 'src/main.ts']);
    expect(git(ws.clone, 'rev-parse', 'refs/heads/warren/coder-1/edit')).toBe(head);
    expect(git(ws.path, 'status', '--porcelain')).toBe('');
    expect(formatGitWorkspaceSummary(summary)).toBe(`branch warren/coder-1/edit: 1 commit, 2 files changed, 5 insertions(+), 1 deletion(-)\n${summary.stat}`);

    // The agent's own commit (its identity from gitIdentityEnv), then nothing left to commit:
    // counted, no new commit.
    writeFileSync(join(ws.path, 'NOTES.md'), 'a\n');
    execFileSync('git', ['add', 'NOTES.md'], { cwd: ws.path, env: GIT_ENV });
    execFileSync('git', ['commit', '--quiet', '-m', 'notes'], { cwd: ws.path, env: { ...GIT_ENV, ...gitIdentityEnv('coder-1') } });
    expect(git(ws.path, 'log', '-1', '--format=%an <%ae>')).toBe('coder-1 <coder-1@agents.warren.invalid>');
    const again = await summarizeGitWorkspace({ path: ws.path, baseCommit: ws.baseCommit, agent: 'coder-1', taskId: 'edit', attempt: 2 });
    expect(again).toMatchObject({ commits: 2, filesChanged: 3, insertions: 6, deletions: 1, uncommitted: false });
  });

  it('caps the stat and counts a deleted and a binary file', async () => {
    const { mirror, home } = await setup();
    const ws = await prepareGitWorkspace({ mirror, home, agent: 'coder-1', taskId: 'bin' });
    rmSync(join(ws.path, 'README.md'));
    writeFileSync(join(ws.path, 'blob.bin'), Buffer.from([0, 1, 2, 0, 255]));
    const summary = await summarizeGitWorkspace({ path: ws.path, baseCommit: ws.baseCommit, agent: 'coder-1', taskId: 'bin', attempt: 1, statMaxChars: 20 });
    expect(summary).toMatchObject({ commits: 1, filesChanged: 2, insertions: 0, deletions: 3, uncommitted: true });
    expect(summary.stat).toHaveLength(20);
    expect(summary.stat.endsWith('…')).toBe(true);
  });

  it('gives a second task its own worktree from the updated mirror, and reuses a retried task worktree and its base', async () => {
    const { source, reposDir, mirror, commit, home } = await setup();
    const first = await prepareGitWorkspace({ mirror, home, agent: 'coder-1', taskId: 't1' });
    writeFileSync(join(first.path, 'README.md'), 'work in progress\n');

    writeFileSync(join(source, 'later.txt'), 'later\n');
    git(source, 'add', 'later.txt');
    git(source, 'commit', '--quiet', '-m', 'later');
    const updated = await syncMirror({ source, reposDir });

    const retry = await prepareGitWorkspace({ mirror, home, agent: 'coder-1', taskId: 't1' });
    expect(retry).toEqual({ ...first, reused: true });
    expect(retry.baseCommit).toBe(commit);
    expect(readFileSync(join(retry.path, 'README.md'), 'utf8')).toBe('work in progress\n');

    const second = await prepareGitWorkspace({ mirror, home, agent: 'coder-1', taskId: 't2' });
    expect(second).toMatchObject({ path: join(home, 'work', 't2'), branch: 'warren/coder-1/t2', baseCommit: updated.commit, reused: false });
    expect(existsSync(join(second.path, 'later.txt'))).toBe(true);

    // The worktree removed (the home cleaned), the branch kept: added again with its work and base.
    const summary = await summarizeGitWorkspace({ path: first.path, baseCommit: first.baseCommit, agent: 'coder-1', taskId: 't1', attempt: 1 });
    rmSync(first.path, { recursive: true });
    const third = await prepareGitWorkspace({ mirror, home, agent: 'coder-1', taskId: 't1' });
    expect(third).toEqual({ ...first, reused: true });
    expect(git(third.path, 'rev-parse', 'HEAD')).toBe(summary.head);
    expect(readFileSync(join(third.path, 'README.md'), 'utf8')).toBe('work in progress\n');
  });

  it('prepares and summarises several tasks of one agent at once, one clone for all', async () => {
    const { mirror, commit, home } = await setup();
    const ids = ['c1', 'c2', 'c3', 'c4'];
    const spaces = await Promise.all(ids.map((taskId) => prepareGitWorkspace({ mirror, home, agent: 'a', taskId })));
    expect(spaces.map((ws) => [ws.branch, ws.baseCommit, ws.reused])).toEqual(ids.map((id) => [`warren/a/${id}`, commit, false]));
    expect(readdirSync(join(home, 'repos'))).toHaveLength(1);
    for (const ws of spaces) writeFileSync(join(ws.path, `${basename(ws.path)}.txt`), 'done\n');
    const summaries = await Promise.all(
      spaces.map((ws, i) => summarizeGitWorkspace({ path: ws.path, baseCommit: ws.baseCommit, agent: 'a', taskId: ids[i]!, attempt: 1 })),
    );
    expect(summaries.map((s) => [s.branch, s.commits, s.filesChanged, s.uncommitted])).toEqual(ids.map((id) => [`warren/a/${id}`, 1, 1, true]));
  });

  it('starts from a named branch, tag or commit, and refuses a base that names nothing', async () => {
    const { source, mirror, commit, home } = await setup();
    const feature = git(source, 'rev-parse', 'feature');
    expect((await prepareGitWorkspace({ mirror, home, agent: 'a', taskId: 'on-branch', base: 'feature' })).baseCommit).toBe(feature);
    expect((await prepareGitWorkspace({ mirror, home, agent: 'a', taskId: 'on-tag', base: 'v1' })).baseCommit).toBe(commit);
    expect((await prepareGitWorkspace({ mirror, home, agent: 'a', taskId: 'on-commit', base: feature })).baseCommit).toBe(feature);
    const error = await prepareGitWorkspace({ mirror, home, agent: 'a', taskId: 'nowhere', base: 'no-such-branch' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GitWorkspaceError);
    expect(error).toMatchObject({ code: 'WARREN_GIT_WORKSPACE', message: expect.stringContaining('base "no-such-branch" names no branch, tag or commit') });
    await expect(prepareGitWorkspace({ mirror, home, agent: 'a', taskId: 'opt', base: '--upload-pack=x' })).rejects.toThrow('must be a branch, tag or commit name');
  });

  it('refuses unsafe names and a directory in the way', async () => {
    const { mirror, home } = await setup();
    await expect(prepareGitWorkspace({ mirror, home, agent: 'coder-1', taskId: '../escape' })).rejects.toMatchObject({ code: 'WARREN_GIT_WORKSPACE' });
    await expect(prepareGitWorkspace({ mirror, home, agent: 'a b', taskId: 't' })).rejects.toThrow('agent "a b" must match');
    await expect(prepareGitWorkspace({ mirror, home, agent: 'a', taskId: 'x.lock' })).rejects.toThrow('taskId "x.lock"');
    mkdirSync(join(home, 'work', 'taken'), { recursive: true });
    writeFileSync(join(home, 'work', 'taken', 'file'), 'x');
    await expect(prepareGitWorkspace({ mirror, home, agent: 'a', taskId: 'taken' })).rejects.toThrow(`${join(home, 'work', 'taken')}: exists and is not a worktree`);
    // An empty directory (made before the workspace was prepared) is taken over.
    mkdirSync(join(home, 'work', 'empty'));
    expect((await prepareGitWorkspace({ mirror, home, agent: 'a', taskId: 'empty' })).reused).toBe(false);
  });

  it('runs no hook that the clone names, for its own git commands', async () => {
    const { dir, mirror, home } = await setup();
    const ws = await prepareGitWorkspace({ mirror, home, agent: 'a', taskId: 't' });
    const marker = join(dir, 'marker');
    const hooks = join(dir, 'agent-hooks');
    mkdirSync(hooks);
    for (const hook of ['pre-commit', 'commit-msg', 'post-commit', 'post-checkout', 'reference-transaction']) {
      for (const where of [hooks, join(ws.clone, '.git', 'hooks')]) {
        writeFileSync(join(where, hook), `#!/bin/sh\necho ${hook} >> ${marker}\n`);
        chmodSync(join(where, hook), 0o755);
      }
    }
    git(ws.clone, 'config', 'core.hooksPath', hooks);
    writeFileSync(join(ws.path, 'x.txt'), 'x\n');
    await summarizeGitWorkspace({ path: ws.path, baseCommit: ws.baseCommit, agent: 'a', taskId: 't', attempt: 1 });
    await prepareGitWorkspace({ mirror, home, agent: 'a', taskId: 't2' });
    expect(existsSync(marker)).toBe(false);
    // The hooks do run for git commands without the runner's settings.
    git(ws.path, 'commit', '--quiet', '--allow-empty', '-m', 'by hand');
    expect(readFileSync(marker, 'utf8')).toContain('pre-commit');
  });
});

describe('as the agent uid against a root-owned mirror', () => {
  beforeAll(async () => {
    await buildRunner();
  });

  it('clones, works and commits, every file owned by the agent and the mirror untouched', async () => {
    const { mirror, home } = await setup();
    const uid = 60_000 + (process.pid % 1000);
    chownSync(home, uid, uid);
    const mirrorRefs = git(mirror, 'for-each-ref');
    const script = `
      import { writeFileSync } from 'node:fs';
      import { prepareGitWorkspace, summarizeGitWorkspace } from ${JSON.stringify(join(PACKAGE_DIR, 'dist', 'workspace.js'))};
      const ws = await prepareGitWorkspace({ mirror: ${JSON.stringify(mirror)}, home: ${JSON.stringify(home)}, agent: 'coder-1', taskId: 'as-agent' });
      writeFileSync(ws.path + '/new.txt', 'new\\n');
      const summary = await summarizeGitWorkspace({ path: ws.path, baseCommit: ws.baseCommit, agent: 'coder-1', taskId: 'as-agent', attempt: 1 });
      process.stdout.write(JSON.stringify({ ws, summary }));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      uid,
      gid: uid,
      cwd: home,
      env: { PATH: '/usr/bin:/bin', HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const { ws, summary } = JSON.parse(stdout) as { ws: { path: string; clone: string }; summary: { filesChanged: number; uncommitted: boolean } };
    expect(summary).toMatchObject({ filesChanged: 1, uncommitted: true });
    for (const path of [ws.clone, join(ws.clone, '.git', 'config'), ws.path, join(ws.path, 'new.txt')]) {
      expect([path, lstatSync(path).uid]).toEqual([path, uid]);
    }
    expect(git(mirror, 'for-each-ref')).toBe(mirrorRefs);
    expect(lstatSync(mirror).uid).toBe(process.getuid!());
  });
});

describe('inside a real sandbox', () => {
  beforeAll(async () => {
    // Fails with an install hint (bubblewrap, util-linux, root) rather than skipping.
    assertIsolation(await probeHost());
    await buildRunner();
  });

  it('works in a worktree cloned from the mirror bound read-only at /opt/warren/repos, which it cannot change', async () => {
    const { dir, mirror, commit, home } = await setup();
    const uid = 1_900_902_000 + (process.pid % 1000);
    chownSync(home, uid, uid);
    const name = mirror.split('/').at(-1)!;
    const inside = mirrorInSandbox(join(dir, 'src'));
    expect(inside).toBe(`/opt/warren/repos/${name}`);
    const script = `
      import { writeFileSync } from 'node:fs';
      import { prepareGitWorkspace, summarizeGitWorkspace } from '/opt/warren/agent-runner/dist/workspace.js';
      let mirrorWrite = 'written';
      try { writeFileSync(${JSON.stringify(`${inside}/config`)}, ''); } catch (error) { mirrorWrite = error.code; }
      const ws = await prepareGitWorkspace({ mirror: ${JSON.stringify(inside)}, home: '/home/agent', agent: 'coder-1', taskId: 'boxed' });
      writeFileSync(ws.path + '/README.md', 'one\\nTWO\\nthree\\n');
      const summary = await summarizeGitWorkspace({ path: ws.path, baseCommit: ws.baseCommit, agent: 'coder-1', taskId: 'boxed', attempt: 1 });
      writeFileSync('/home/agent/result.json', JSON.stringify({ ws, summary, mirrorWrite }));`;
    const logPath = join(dir, 'sandbox.log');
    const sandbox = await spawnSandbox({
      name: `gitws-${process.pid}`,
      uid,
      gid: uid,
      homeHostPath: home,
      homePath: '/home/agent',
      passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\nagent:x:${uid}:${uid}::/home/agent:/bin/sh\n`,
      group: `root:x:0:\nagent:x:${uid}:\n`,
      argv: ['/usr/bin/node', '--input-type=module', '-e', script],
      env: { HOME: '/home/agent', PATH: '/usr/bin:/bin' },
      readOnlyBinds: [
        { source: PACKAGE_DIR, target: '/opt/warren/agent-runner' },
        { source: mirror, target: inside },
      ],
      limits: { memoryMaxBytes: 512 * 2 ** 20, pidsMax: 128, cpuWeight: 100, nofile: 1024, fsizeBytes: 64 * 2 ** 20, tmpfsBytes: 16 * 2 ** 20 },
      runDir: join(dir, 'run'),
      logPath,
      logMaxBytes: 1024 * 1024,
    });
    try {
      const exit = await sandbox.exited;
      expect({ exit, log: existsSync(logPath) ? readFileSync(logPath, 'utf8') : '' }).toMatchObject({ exit: { kind: 'succeeded' } });
    } finally {
      await sandbox.close();
    }
    const result = JSON.parse(readFileSync(join(home, 'result.json'), 'utf8')) as {
      ws: { path: string; branch: string; baseCommit: string };
      summary: { commits: number; filesChanged: number; insertions: number; deletions: number; uncommitted: boolean };
      mirrorWrite: string;
    };
    expect(result.mirrorWrite).toMatch(/^(EROFS|EACCES)$/);
    expect(result.ws).toMatchObject({ path: '/home/agent/work/boxed', branch: 'warren/coder-1/boxed', baseCommit: commit });
    expect(result.summary).toMatchObject({ commits: 1, filesChanged: 1, insertions: 1, deletions: 1, uncommitted: true });
    expect(lstatSync(join(home, 'work', 'boxed', 'README.md')).uid).toBe(uid);
    // The worktree's .git file names the sandbox's path, so on the host the branch is read in the clone.
    const clone = join(home, 'repos', name.replace(/\.git$/, ''));
    expect(git(clone, 'log', '-1', '--format=%an %s', 'refs/heads/warren/coder-1/boxed')).toBe('coder-1 warren: boxed attempt 1');
    expect(processesOfUid(uid)).toEqual([]);
  });
});

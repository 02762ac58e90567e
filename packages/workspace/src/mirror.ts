import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { execa } from 'execa';
import { RepositoryError } from './errors.js';

/** Options of {@link syncMirror}. */
export interface SyncMirrorOptions {
  /**
   * The repository as a template or task names it: an absolute host path (`/srv/git/app`,
   * `/srv/git/app.git`) or a URL git understands (`https://…`, `ssh://…`, `git://…`, `file://…`,
   * scp-like `git@host:org/app.git`). Relative paths are refused (their meaning would depend on
   * the supervisor's working directory).
   */
  readonly source: string;
  /**
   * The directory of mirrors, e.g. `<stateDir>/repos`: made 0755 if missing; it must be a real
   * directory owned by the calling user (root) and not writable by group or others, since it is
   * bound read-only into sandboxes.
   */
  readonly reposDir: string;
  /** Limit of each git command, in ms. Default 600 000 (10 minutes). */
  readonly timeoutMs?: number;
  /** The git program. Default `git`, found on `/usr/local/bin:/usr/bin:/bin`. */
  readonly git?: string;
}

/** A bare mirror made or brought up to date by {@link syncMirror}. */
export interface Mirror {
  /** `<reposDir>/<name>.git`, absolute if `reposDir` is. */
  readonly path: string;
  /** `sha256(source)` in hex, first 16 characters (see {@link mirrorName}). */
  readonly name: string;
  /** The source's default branch, e.g. `main` (the mirror's HEAD). */
  readonly defaultBranch: string;
  /** The commit of the default branch after the sync, 40 hex digits. */
  readonly commit: string;
  /** True when this call made the mirror (`git clone --mirror`), false when it fetched into it. */
  readonly created: boolean;
}

/** The default of {@link SyncMirrorOptions.timeoutMs}, in ms. */
export const MIRROR_TIMEOUT_MS = 600_000;

/**
 * `-c` settings on every git command of the host side: no hooks, no fsmonitor command, local
 * (`file://` and path) sources allowed, no automatic gc or maintenance (no repacking, and no
 * detached background process, while sandboxes read the mirror).
 */
export const HOST_GIT_CONFIG: readonly string[] = [
  'core.hooksPath=/dev/null',
  'core.fsmonitor=false',
  'protocol.file.allow=always',
  'gc.auto=0',
  'maintenance.auto=false',
];

const URL_SOURCE = /^[a-z][a-z0-9+.-]*:\/\/[^\s]+$/i;
const SCP_SOURCE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$/;
const GROUP_OTHER_WRITE = 0o022;
const STDERR_CHARS = 2000;

/** The mirror's name for `source`: the first 16 hex digits of its SHA-256 (FIPS 180-4) over UTF-8. */
export function mirrorName(source: string): string {
  return createHash('sha256').update(source, 'utf8').digest('hex').slice(0, 16);
}

/** `source` with any `user:password@` of a URL replaced by `***@`, for messages. */
export function redactSource(source: string): string {
  return source.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, '$1***@');
}

/**
 * Checks that `source` names a repository as {@link SyncMirrorOptions.source} allows.
 * @throws {RepositoryError} `WARREN_REPOSITORY_INVALID` naming what is wrong.
 */
export function validateSource(source: unknown): asserts source is string {
  if (typeof source !== 'string' || source.trim() === '') {
    throw new RepositoryError('WARREN_REPOSITORY_INVALID', String(source), 'must be a non-empty string');
  }
  if (source.startsWith('-') || /[\0\n\r]/.test(source)) {
    throw new RepositoryError('WARREN_REPOSITORY_INVALID', redactSource(source), 'must not start with "-" or contain NUL or line breaks');
  }
  if (source.startsWith('ext::') || /^ext::/i.test(source)) {
    throw new RepositoryError('WARREN_REPOSITORY_INVALID', redactSource(source), 'the ext:: transport runs commands and is refused');
  }
  if (!isAbsolute(source) && !URL_SOURCE.test(source) && !SCP_SOURCE.test(source)) {
    throw new RepositoryError(
      'WARREN_REPOSITORY_INVALID',
      redactSource(source),
      'must be an absolute path or a URL (https://, ssh://, git://, file://, or user@host:path)',
    );
  }
}

interface GitRun {
  readonly git: string;
  readonly home: string;
  readonly timeoutMs: number;
  readonly source: string;
}

/** Runs git with the host's safe settings; returns stdout, or throws RepositoryError with stderr. */
async function git(run: GitRun, args: readonly string[], cwd?: string): Promise<string> {
  const argv = [...HOST_GIT_CONFIG.flatMap((setting) => ['-c', setting]), ...args];
  const result = await execa(run.git, argv, {
    ...(cwd ? { cwd } : {}),
    extendEnv: false,
    env: {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      HOME: run.home,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_TERMINAL_PROMPT: '0',
      GIT_ASKPASS: '/bin/false',
      SSH_ASKPASS: '/bin/false',
      LC_ALL: 'C',
    },
    stdin: 'ignore',
    reject: false,
    timeout: run.timeoutMs,
    forceKillAfterDelay: 5000,
  });
  if (result.failed) {
    const command = `git ${args.map((a) => (a === run.source ? redactSource(a) : a)).join(' ')}`;
    const why = result.timedOut
      ? `timed out after ${run.timeoutMs} ms`
      : result.exitCode === undefined
        ? result.shortMessage
        : `exit code ${result.exitCode}`;
    const stderr = String(result.stderr ?? '').trim().slice(-STDERR_CHARS);
    throw new RepositoryError('WARREN_REPOSITORY_SYNC', redactSource(run.source), `${command} failed (${why})${stderr ? `: ${stderr}` : ''}`);
  }
  return String(result.stdout ?? '').trim();
}

/**
 * Makes every file of the mirror readable by all and writable by none but its owner: directories
 * get r-x for group and others, files r-- (git also keeps new files so: `core.sharedRepository`).
 * Symlinks are left alone (a mirror made by git has none).
 */
async function makeReadable(dir: string): Promise<void> {
  const info = await lstat(dir);
  const want = (info.mode | 0o755) & ~GROUP_OTHER_WRITE & 0o7777;
  if ((info.mode & 0o7777) !== want) await chmod(dir, want);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await makeReadable(path);
    else if (entry.isFile()) {
      const mode = (await lstat(path)).mode & 0o7777;
      const fileWant = (mode | 0o044) & ~GROUP_OTHER_WRITE;
      if (mode !== fileWant) await chmod(path, fileWant);
    }
  }
}

/** `reposDir` exists (made 0755 if missing), is a real directory of ours, not writable by others. */
async function requireReposDir(source: string, reposDir: string): Promise<void> {
  await mkdir(reposDir, { recursive: true, mode: 0o755 });
  const info = await lstat(reposDir);
  const uid = process.getuid?.();
  const problem = !info.isDirectory()
    ? 'is not a directory (symlinks are refused)'
    : uid !== undefined && info.uid !== uid
      ? `is owned by uid ${info.uid}, not ${uid}`
      : (info.mode & GROUP_OTHER_WRITE) !== 0
        ? `is writable by group or others (mode ${(info.mode & 0o7777).toString(8)})`
        : undefined;
  if (problem) throw new RepositoryError('WARREN_REPOSITORY_SYNC', redactSource(source), `repositories directory ${reposDir} ${problem}`);
  // Sandboxes (other uids) must be able to reach the mirrors through it, whatever the umask was.
  if ((info.mode & 0o755) !== 0o755) await chmod(reposDir, (info.mode | 0o755) & 0o7777);
}

const queues = new Map<string, Promise<unknown>>();

/** Runs `fn` after every earlier call with the same key has settled. */
function serialise<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = queues.get(key) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  queues.set(key, tail);
  tail.then(
    () => {
      if (queues.get(key) === tail) queues.delete(key);
    },
    () => undefined,
  );
  return run;
}

async function sync(options: SyncMirrorOptions): Promise<Mirror> {
  const { source, reposDir } = options;
  const name = mirrorName(source);
  const path = join(reposDir, `${name}.git`);
  await requireReposDir(source, reposDir);
  // A private, empty HOME: nothing of the supervisor's user (~/.gitconfig, ~/.ssh/config) applies.
  const home = await mkdtemp(join(tmpdir(), 'warren-git-home-'));
  const run: GitRun = { git: options.git ?? 'git', home, timeoutMs: options.timeoutMs ?? MIRROR_TIMEOUT_MS, source };
  try {
    const existing = await lstat(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw error;
    });
    let created = false;
    if (existing === null) {
      // Cloned beside, then renamed: a failed or interrupted clone never looks like a mirror.
      const fresh = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      try {
        await git(run, ['clone', '--mirror', '--quiet', '--config', 'core.sharedRepository=0644', '--', source, fresh]);
        await makeReadable(fresh);
        await rename(fresh, path);
      } catch (error) {
        await rm(fresh, { recursive: true, force: true });
        throw error;
      }
      created = true;
    } else {
      if (!existing.isDirectory()) {
        throw new RepositoryError('WARREN_REPOSITORY_SYNC', redactSource(source), `${path} is not a directory (symlinks are refused)`);
      }
      await git(run, ['fetch', '--prune', '--quiet', 'origin'], path);
      // Follow a change of the source's default branch.
      const head = /^ref: refs\/heads\/(\S+)\tHEAD$/m.exec(await git(run, ['ls-remote', '--symref', 'origin', 'HEAD'], path));
      if (head) {
        const current = await git(run, ['symbolic-ref', 'HEAD'], path).catch(() => '');
        if (current !== `refs/heads/${head[1]}`) await git(run, ['symbolic-ref', 'HEAD', `refs/heads/${head[1]}`], path);
      }
      await makeReadable(path);
    }
    const defaultBranch = await git(run, ['symbolic-ref', '--short', 'HEAD'], path);
    let commit: string;
    try {
      commit = await git(run, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], path);
    } catch (error) {
      throw new RepositoryError('WARREN_REPOSITORY_SYNC', redactSource(source), `its default branch ${defaultBranch} has no commit`, { cause: error });
    }
    return { path, name, defaultBranch, commit, created };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/**
 * Makes or updates the bare mirror `<reposDir>/<sha256(source)[0..16]>.git` of a repository, for
 * sandboxes to clone from (bound read-only at `/opt/warren/repos/<name>.git`).
 *
 * The first call runs `git clone --mirror` (into a temporary name, renamed when complete); later
 * calls `git fetch --prune origin` and follow the source's default branch (`ls-remote --symref`).
 * Every git command runs with `-c core.hooksPath=/dev/null -c core.fsmonitor=false
 * -c protocol.file.allow=always -c gc.auto=0 -c maintenance.auto=false` (see
 * {@link HOST_GIT_CONFIG}), no stdin, env `GIT_CONFIG_NOSYSTEM=1`, `GIT_CONFIG_GLOBAL=/dev/null`,
 * `GIT_TERMINAL_PROMPT=0`, `HOME` a fresh empty directory, `PATH=/usr/local/bin:/usr/bin:/bin`.
 * No checkout happens, so no filter or attribute of the source runs. A local source owned by
 * another user (an agent's home) is refused by git itself ("dubious ownership", git ≥ 2.39.4).
 * The mirror is owned by the caller (root), directories 0755 and files 0644/0444, never writable by
 * an agent. Concurrent calls for one source in this process run one after the other.
 *
 * @returns the mirror's path and name, the default branch and its commit.
 * @throws {RepositoryError} `WARREN_REPOSITORY_INVALID` for a source that is neither an absolute
 *   path nor a URL; `WARREN_REPOSITORY_SYNC` when git fails or times out (the message names the
 *   source, with any URL password replaced by `***`, the git command and git's stderr), when the
 *   source has no commit on its default branch, or when `reposDir` is unsafe.
 */
export async function syncMirror(options: SyncMirrorOptions): Promise<Mirror> {
  validateSource(options.source);
  return serialise(join(options.reposDir, mirrorName(options.source)), () => sync(options));
}

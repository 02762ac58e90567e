import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';

/**
 * The agent's side of git workspaces: a clone per agent of the repository's read-only mirror
 * (bound at `/opt/warren/repos/<name>.git` by the supervisor), a worktree per task on branch
 * `warren/<agent>/<taskId>`, and a summary of what the task did there, its uncommitted work
 * committed so that the branch holds the result. Node built-ins and the `git` program only.
 *
 * Inside the sandbox the agent's own repository configuration is the agent's business (it runs as
 * the agent, without network), but the runner's own git commands still run no hook and no
 * fsmonitor (`-c core.hooksPath=/dev/null -c core.fsmonitor=false`), read no system or global
 * configuration, and never use an external diff or textconv.
 */

/**
 * A git workspace could not be prepared or summarised (code `WARREN_GIT_WORKSPACE`): a bad name,
 * git failing (the message carries the command and git's stderr), or a path in the way.
 * `path` names the directory concerned.
 */
export class GitWorkspaceError extends Error {
  readonly code = 'WARREN_GIT_WORKSPACE';
  constructor(
    readonly path: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${path}: ${message}`, options);
    this.name = 'GitWorkspaceError';
  }
}

/** Where mirrors are bound in the sandbox: `/opt/warren/repos/<name>.git`. */
export const MIRRORS_IN_SANDBOX = '/opt/warren/repos';

/**
 * Where the mirror of `source` (the repository as the template or task names it) is in the
 * sandbox: `/opt/warren/repos/<name>.git`, `<name>` being the first 16 hex digits of the SHA-256
 * of `source` in UTF-8 — the name `syncMirror` of `@warren/workspace` gives it on the host.
 */
export function mirrorInSandbox(source: string): string {
  return `${MIRRORS_IN_SANDBOX}/${createHash('sha256').update(source, 'utf8').digest('hex').slice(0, 16)}.git`;
}

/**
 * The environment that makes `agent` the author and committer of git commits (git's
 * `GIT_AUTHOR_*`/`GIT_COMMITTER_*` variables), for the task's process too, so that a CLI's own
 * `git commit` in the worktree works without a `user.name` in any configuration.
 * @param email default `<agent>@agents.warren.invalid` (RFC 2606 reserves `.invalid`).
 */
export function gitIdentityEnv(agent: string, email = `${agent}@agents.warren.invalid`): Record<string, string> {
  return { GIT_AUTHOR_NAME: agent, GIT_AUTHOR_EMAIL: email, GIT_COMMITTER_NAME: agent, GIT_COMMITTER_EMAIL: email };
}

/** The `-c` settings of every git command the runner runs. */
export const RUNNER_GIT_CONFIG: readonly string[] = [
  'core.hooksPath=/dev/null',
  'core.fsmonitor=false',
  'commit.gpgSign=false',
  'color.ui=false',
  'gc.auto=0',
  'maintenance.auto=false',
];

/** The runner's own files in a task's workspace (execution.ts): never committed. */
export const RUNNER_FILES: readonly string[] = ['task.json', 'output.log'];

/** The longest `stat` a summary carries, in characters, by default. */
export const MAX_STAT_CHARS = 4000;

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const DEFAULT_TIMEOUT_MS = 300_000;
const STDERR_CHARS = 2000;

/** Options of {@link prepareGitWorkspace}. */
export interface PrepareGitWorkspaceOptions {
  /** The mirror, e.g. `/opt/warren/repos/5f0c2a9be1d3c4f7.git`; its basename without `.git` names the clone. */
  readonly mirror: string;
  /** The agent's home, e.g. `/home/coder-1`. */
  readonly home: string;
  /** The agent's name: `[A-Za-z0-9][A-Za-z0-9._-]*`, a valid git ref component. */
  readonly agent: string;
  /** The task's id, same rule. */
  readonly taskId: string;
  /**
   * The ref the task starts from: a branch of the repository (`main`, `release/2.x`), a tag, or a
   * commit. Default: the mirror's HEAD (its default branch).
   */
  readonly base?: string;
  /** Limit of each git command, in ms. Default 300 000. */
  readonly timeoutMs?: number;
}

/** A task's worktree, made or found by {@link prepareGitWorkspace}. */
export interface GitWorkspace {
  /** `<home>/work/<taskId>`: the worktree, the task's working directory. */
  readonly path: string;
  /** `warren/<agent>/<taskId>`. */
  readonly branch: string;
  /** The commit the branch started from, 40 hex digits: the base of the task's diff. */
  readonly baseCommit: string;
  /** `<home>/repos/<name>`: the agent's clone of the mirror. */
  readonly clone: string;
  /** True when the branch already existed (a retried attempt): its worktree and work are kept. */
  readonly reused: boolean;
}

/** Options of {@link summarizeGitWorkspace}. */
export interface SummarizeGitWorkspaceOptions {
  /** The worktree ({@link GitWorkspace.path}). */
  readonly path: string;
  /** {@link GitWorkspace.baseCommit}. */
  readonly baseCommit: string;
  /** The agent: author and committer of the commit of uncommitted work. */
  readonly agent: string;
  /** The author's e-mail address. Default `<agent>@agents.warren.invalid` (RFC 2606 `.invalid`). */
  readonly email?: string;
  readonly taskId: string;
  /** The attempt number, for the commit message `warren: <taskId> attempt <n>`. */
  readonly attempt: number;
  /** Cap of `stat`, in characters. Default {@link MAX_STAT_CHARS}. */
  readonly statMaxChars?: number;
  /** Limit of each git command, in ms. Default 300 000. */
  readonly timeoutMs?: number;
}

/** What a task did in its worktree, from `baseCommit` to the branch's head. */
export interface GitWorkspaceSummary {
  /** The branch the worktree is on (normally `warren/<agent>/<taskId>`). */
  readonly branch: string;
  /** The branch's head after the summary's own commit, 40 hex digits. */
  readonly head: string;
  /** Commits on the branch since `baseCommit` (`git rev-list --count base..HEAD`). */
  readonly commits: number;
  /** From `git diff --numstat base HEAD` (renames as delete + add; a binary file counts 0 lines). */
  readonly filesChanged: number;
  readonly insertions: number;
  readonly deletions: number;
  /** `git diff --stat base HEAD`, at most `statMaxChars` characters (then ending in `…`). */
  readonly stat: string;
  /** True when the worktree had uncommitted changes, now committed as `warren: <taskId> attempt <n>`. */
  readonly uncommitted: boolean;
}

interface Git {
  readonly env: NodeJS.ProcessEnv;
  readonly timeoutMs: number;
}

/** Runs git; resolves with stdout, or rejects with GitWorkspaceError naming the command and stderr. */
function git(ctx: Git, cwd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const argv = [...RUNNER_GIT_CONFIG.flatMap((setting) => ['-c', setting]), ...args];
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      argv,
      { cwd, env: { ...ctx.env, ...env }, timeout: ctx.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (!error) {
          resolve(stdout);
          return;
        }
        const { killed, code } = error as { killed?: boolean; code?: unknown };
        const why = killed ? `timed out after ${ctx.timeoutMs} ms` : typeof code === 'number' ? `exit code ${code}` : error.message;
        const detail = stderr.trim().slice(-STDERR_CHARS);
        reject(new GitWorkspaceError(cwd, `git ${args.join(' ')} failed (${why})${detail ? `: ${detail}` : ''}`, { cause: error }));
      },
    );
  });
}

/** Like {@link git}, but resolves undefined when git exits with 1 (a query with no answer). */
async function gitMaybe(ctx: Git, cwd: string, args: readonly string[]): Promise<string | undefined> {
  try {
    return await git(ctx, cwd, args);
  } catch (error) {
    const cause = (error as Error).cause as { code?: unknown } | undefined;
    if (cause?.code === 1) return undefined;
    throw error;
  }
}

/**
 * The environment of the runner's git commands, and a cleanup: only PATH, HOME and LC_ALL of
 * `base`; no system config; as global config a private file that trusts `mirror` (git refuses to
 * read a repository owned by another user, here root, unless `safe.directory` names it, and takes
 * that setting only from protected configuration).
 */
function gitEnvironment(home: string, mirror: string | undefined): { env: NodeJS.ProcessEnv; dispose: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'warren-git-'));
  const globalConfig = join(dir, 'config');
  writeFileSync(globalConfig, mirror ? `[safe]\n\tdirectory = ${mirror}\n` : '', { mode: 0o600 });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    LC_ALL: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: globalConfig,
    GIT_TERMINAL_PROMPT: '0',
  };
  return { env, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

function requireSegment(field: string, value: unknown, where: string): asserts value is string {
  if (typeof value !== 'string' || !SEGMENT.test(value) || value.includes('..') || value.endsWith('.lock') || value.endsWith('.')) {
    throw new GitWorkspaceError(where, `${field} ${JSON.stringify(value)} must match ${SEGMENT.source}, without "..", and not end in "." or ".lock"`);
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

const queues = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` after every earlier call with the same key (a clone's git directory) has settled: the
 * runner may run several tasks at once, and git's ref and index locks fail rather than wait.
 */
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

/** Adds the runner's files to the clone's `info/exclude` (shared by its worktrees) unless there. */
function excludeRunnerFiles(clone: string): void {
  const infoDir = join(clone, '.git', 'info');
  mkdirSync(infoDir, { recursive: true });
  const exclude = join(infoDir, 'exclude');
  let text = '';
  try {
    text = readFileSync(exclude, 'utf8');
  } catch {
    // none yet
  }
  const lines = new Set(text.split('\n'));
  const missing = RUNNER_FILES.map((f) => `/${f}`).filter((line) => !lines.has(line));
  if (missing.length === 0) return;
  writeFileSync(exclude, `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}# the runner's own files\n${missing.join('\n')}\n`);
}

/** The commit `base` names in the clone: a branch of origin, a tag, or a commit. */
async function resolveBase(ctx: Git, clone: string, base: string | undefined): Promise<string> {
  if (base === undefined) {
    // The mirror's HEAD, as it is now (refs/remotes/origin/HEAD is only set at clone time).
    const out = await git(ctx, clone, ['ls-remote', '--symref', 'origin', 'HEAD']);
    const commit = /^([0-9a-f]{40,64})\tHEAD$/m.exec(out)?.[1];
    if (!commit) throw new GitWorkspaceError(clone, `the mirror has no HEAD commit (git ls-remote: ${out.trim() || 'nothing'})`);
    return commit;
  }
  if (typeof base !== 'string' || base === '' || base.startsWith('-') || /[\s\0~^:?*[\\]/.test(base)) {
    throw new GitWorkspaceError(clone, `base ${JSON.stringify(base)} must be a branch, tag or commit name`);
  }
  for (const candidate of [`refs/remotes/origin/${base}`, `refs/tags/${base}`, base]) {
    const commit = await gitMaybe(ctx, clone, ['rev-parse', '--verify', '--quiet', `${candidate}^{commit}`]).catch(() => undefined);
    if (commit?.trim()) return commit.trim();
  }
  throw new GitWorkspaceError(clone, `base ${JSON.stringify(base)} names no branch, tag or commit of the repository`);
}

/** The worktree registered at `path` in `clone` (`git worktree list --porcelain`), if any. */
async function findWorktree(ctx: Git, clone: string, path: string): Promise<{ branch?: string } | undefined> {
  const out = await git(ctx, clone, ['worktree', 'list', '--porcelain']);
  for (const block of out.split('\n\n')) {
    const lines = block.split('\n');
    if (lines.includes(`worktree ${path}`)) {
      const branch = lines.find((l) => l.startsWith('branch '))?.slice('branch '.length);
      return branch === undefined ? {} : { branch };
    }
  }
  return undefined;
}

/**
 * Prepares the task's git worktree in the agent's home.
 *
 * 1. The agent's clone `<home>/repos/<name>` of `mirror` (`<name>` = the mirror's basename without
 *    `.git`): made with `git clone --no-hardlinks --no-checkout` (into a temporary name, renamed
 *    when complete), else brought up to date with `git fetch --prune origin`. Its `info/exclude`
 *    lists the runner's files (`/task.json`, `/output.log`).
 * 2. The worktree `<home>/work/<taskId>` on branch `warren/<agent>/<taskId>`: when the branch
 *    exists (a retried attempt), its worktree is reused as it is (or added again if it was
 *    removed); else the branch is made at `base` (default: the mirror's HEAD) with
 *    `git worktree add -b`, and its base commit is kept in the clone's config
 *    (`branch.<branch>.warrenBase`) for later attempts.
 *
 * Call it at task start, before the task's process runs and before anything creates
 * `<home>/work/<taskId>` (an empty directory there is replaced; a non-empty one that is not this
 * worktree is an error). Every git command: see {@link RUNNER_GIT_CONFIG}.
 *
 * @throws {GitWorkspaceError} for a bad agent, task id, mirror name or base; a base that names
 *   nothing; a clone or worktree path in the way; git failing (command and stderr in the message).
 */
export async function prepareGitWorkspace(options: PrepareGitWorkspaceOptions): Promise<GitWorkspace> {
  const { mirror, home, agent, taskId } = options;
  requireSegment('agent', agent, home);
  requireSegment('taskId', taskId, home);
  const name = basename(mirror).replace(/\.git$/, '');
  requireSegment('mirror name', name, mirror);
  const clone = join(home, 'repos', name);
  return serialise(join(clone, '.git'), () => prepare(options, clone));
}

async function prepare(options: PrepareGitWorkspaceOptions, clone: string): Promise<GitWorkspace> {
  const { mirror, home, agent, taskId } = options;
  const repos = join(home, 'repos');
  const path = join(home, 'work', taskId);
  const branch = `warren/${agent}/${taskId}`;
  const { env, dispose } = gitEnvironment(home, mirror);
  const ctx: Git = { env, timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS };
  try {
    mkdirSync(repos, { recursive: true, mode: 0o700 });
    mkdirSync(join(home, 'work'), { recursive: true, mode: 0o700 });
    if (!exists(clone)) {
      const fresh = `${clone}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      rmSync(fresh, { recursive: true, force: true });
      try {
        await git(ctx, repos, ['clone', '--quiet', '--no-hardlinks', '--no-checkout', '--', mirror, fresh]);
        renameSync(fresh, clone);
      } catch (error) {
        rmSync(fresh, { recursive: true, force: true });
        throw error;
      }
    } else {
      const origin = (await gitMaybe(ctx, clone, ['config', '--get', 'remote.origin.url']))?.trim();
      if (origin === undefined) throw new GitWorkspaceError(clone, `is not a clone with an origin (expected ${mirror})`);
      if (origin !== mirror) await git(ctx, clone, ['remote', 'set-url', 'origin', mirror]);
      await git(ctx, clone, ['fetch', '--prune', '--quiet', 'origin']);
    }
    excludeRunnerFiles(clone);
    await git(ctx, clone, ['worktree', 'prune']);

    const baseKey = `branch.${branch}.warrenBase`;
    const storedBase = async (): Promise<string | undefined> => (await gitMaybe(ctx, clone, ['config', '--get', baseKey]))?.trim() || undefined;
    const registered = await findWorktree(ctx, clone, path);
    if (registered) {
      if (registered.branch !== `refs/heads/${branch}`) {
        throw new GitWorkspaceError(path, `is a worktree on ${registered.branch ?? 'a detached HEAD'}, not on ${branch}`);
      }
      const baseCommit = (await storedBase()) ?? (await git(ctx, clone, ['merge-base', branch, await resolveBase(ctx, clone, options.base)])).trim();
      return { path, branch, baseCommit, clone, reused: true };
    }
    if (exists(path)) {
      if (readdirSync(path).length > 0) throw new GitWorkspaceError(path, `exists and is not a worktree of ${clone}`);
      rmdirSync(path);
    }
    const branchExists = (await gitMaybe(ctx, clone, ['rev-parse', '--verify', '--quiet', `refs/heads/${branch}`])) !== undefined;
    if (branchExists) {
      await git(ctx, clone, ['worktree', 'add', '--quiet', path, branch]);
      const baseCommit = (await storedBase()) ?? (await git(ctx, clone, ['merge-base', branch, await resolveBase(ctx, clone, options.base)])).trim();
      return { path, branch, baseCommit, clone, reused: true };
    }
    await git(ctx, clone, ['check-ref-format', `refs/heads/${branch}`]);
    const baseCommit = await resolveBase(ctx, clone, options.base);
    await git(ctx, clone, ['worktree', 'add', '--quiet', '--no-track', '-b', branch, path, baseCommit]);
    await git(ctx, clone, ['config', baseKey, baseCommit]);
    return { path, branch, baseCommit, clone, reused: false };
  } finally {
    dispose();
  }
}

/** Parses `git diff --numstat -z` output (without renames): files, insertions, deletions. */
function parseNumstat(out: string): { filesChanged: number; insertions: number; deletions: number } {
  let filesChanged = 0;
  let insertions = 0;
  let deletions = 0;
  for (const record of out.split('\0')) {
    const match = /^(\d+|-)\t(\d+|-)\t/.exec(record);
    if (!match) continue;
    filesChanged += 1;
    if (match[1] !== '-') insertions += Number(match[1]);
    if (match[2] !== '-') deletions += Number(match[2]);
  }
  return { filesChanged, insertions, deletions };
}

/**
 * Summarises a task's worktree at task end, after committing its uncommitted work.
 *
 * When `git status` shows changes (the runner's own files excepted), they are staged with
 * `git add -A` and committed as `warren: <taskId> attempt <attempt>`, author and committer the
 * agent, without hooks or signing. If the worktree's HEAD is detached, the branch
 * `warren/<agent>/<taskId>` is then moved to it. The numbers come from `git diff --numstat` and
 * `git rev-list --count` between `baseCommit` and the head; `stat` from `git diff --stat`
 * (no external diff, no textconv, renames as delete + add).
 *
 * @throws {GitWorkspaceError} for a bad agent, task id, attempt or base commit, or when git fails
 *   (command and stderr in the message), e.g. `path` is not a worktree or `baseCommit` is unknown.
 */
export async function summarizeGitWorkspace(options: SummarizeGitWorkspaceOptions): Promise<GitWorkspaceSummary> {
  const { path, baseCommit, agent, taskId, attempt } = options;
  requireSegment('agent', agent, path);
  requireSegment('taskId', taskId, path);
  if (!Number.isInteger(attempt) || attempt < 1) throw new GitWorkspaceError(path, `attempt ${String(attempt)} must be an integer >= 1`);
  if (!/^[0-9a-f]{40,64}$/.test(baseCommit)) throw new GitWorkspaceError(path, `baseCommit ${JSON.stringify(baseCommit)} must be a full commit id`);
  const { env, dispose } = gitEnvironment(path, undefined);
  const ctx: Git = { env, timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS };
  let commonDir: string;
  try {
    commonDir = resolve(path, (await git(ctx, path, ['rev-parse', '--git-common-dir'])).trim());
  } catch (error) {
    dispose();
    throw error;
  }
  return serialise(commonDir, () => summarize(options, ctx).finally(dispose));
}

async function summarize(options: SummarizeGitWorkspaceOptions, ctx: Git): Promise<GitWorkspaceSummary> {
  const { path, baseCommit, agent, taskId, attempt } = options;
  const pathspec = ['--', ':/', ...RUNNER_FILES.map((f) => `:(top,exclude)${f}`)];
  const status = await git(ctx, path, ['status', '--porcelain=v1', '-z', '--untracked-files=all', ...pathspec]);
  const uncommitted = status.length > 0;
  if (uncommitted) {
    // Ignored files (the runner's, through info/exclude) are left out by `add -A`; naming them in
    // an exclude pathspec would make it fail. A runner file the repository tracks is unstaged.
    await git(ctx, path, ['add', '-A', '--', ':/']);
    const staged = (await git(ctx, path, ['diff', '--cached', '--name-only', '-z', '--', ...RUNNER_FILES.map((f) => `:(top)${f}`)])).split('\0').filter(Boolean);
    if (staged.length > 0) await git(ctx, path, ['reset', '--quiet', '--', ...staged.map((f) => `:(top,literal)${f}`)]);
    await git(ctx, path, ['commit', '--quiet', '--no-verify', '-m', `warren: ${taskId} attempt ${attempt}`], gitIdentityEnv(agent, options.email));
  }
  let branch = (await gitMaybe(ctx, path, ['symbolic-ref', '--quiet', '--short', 'HEAD']))?.trim();
  if (!branch) {
    branch = `warren/${agent}/${taskId}`;
    await git(ctx, path, ['branch', '--force', branch, 'HEAD']);
  }
  const head = (await git(ctx, path, ['rev-parse', '--verify', 'HEAD^{commit}'])).trim();
  const commits = Number((await git(ctx, path, ['rev-list', '--count', `${baseCommit}..${head}`])).trim());
  const diff = ['diff', '--no-ext-diff', '--no-textconv', '--no-renames', baseCommit, head];
  const counts = parseNumstat(await git(ctx, path, [...diff.slice(0, 1), '--numstat', '-z', ...diff.slice(1)]));
  const max = options.statMaxChars ?? MAX_STAT_CHARS;
  const fullStat = (await git(ctx, path, [...diff.slice(0, 1), '--stat=100', ...diff.slice(1)])).replace(/\s+$/, '');
  const stat = fullStat.length > max ? `${fullStat.slice(0, Math.max(0, max - 1))}…` : fullStat;
  return { branch, head, commits, ...counts, stat, uncommitted };
}

/**
 * The text a task's result gives for its workspace, first line e.g.
 * `branch warren/coder-1/fix-login: 2 commits, 3 files changed, 10 insertions(+), 2 deletions(-)`,
 * then the diff stat.
 */
export function formatGitWorkspaceSummary(summary: GitWorkspaceSummary): string {
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
  const head = `branch ${summary.branch}: ${plural(summary.commits, 'commit')}, ${summary.filesChanged} file${summary.filesChanged === 1 ? '' : 's'} changed, ${plural(summary.insertions, 'insertion')}(+), ${plural(summary.deletions, 'deletion')}(-)`;
  return summary.stat ? `${head}\n${summary.stat}` : head;
}

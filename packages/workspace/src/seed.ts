import { constants } from 'node:fs';
import { lstat, mkdir, open, readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { SeedError } from './errors.js';

/**
 * One file a template seeds into its agents' homes: `path` relative to the home with `/` between
 * segments (`AGENTS.md`, `CLAUDE.md`, `.config/opencode/opencode.json`), and exactly one of
 * `content` (the bytes, or a string written as UTF-8) and `sourcePath` (a host file, read by the
 * supervisor, e.g. from the template's directory).
 */
export interface SeedFile {
  readonly path: string;
  readonly content?: string | Uint8Array;
  readonly sourcePath?: string;
  /** Permission bits of the new file, 0..0o777. Default 0o600; directories made for it are 0700. */
  readonly mode?: number;
}

/** Options of {@link seedHome}. */
export interface SeedHomeOptions {
  /** The agent's home on the host: an absolute path to a real directory (not a symlink). */
  readonly homeDir: string;
  /** The agent's uid and gid: owner of every file and directory made. Never 0. */
  readonly uid: number;
  readonly gid: number;
  readonly files: readonly SeedFile[];
}

/** A seed file that was not written because of what is in the home; see {@link seedHome}. */
export interface SeedRefusal {
  readonly path: string;
  /** What is in the way, e.g. `.config is a symlink`. */
  readonly reason: string;
}

/** What {@link seedHome} did, paths as given in the files. */
export interface SeedResult {
  /** Files written by this call. */
  readonly written: readonly string[];
  /** Files left as they were: a regular file already exists there (perhaps changed by the agent). */
  readonly kept: readonly string[];
  /** Files not written because a symlink or a non-directory is in the way. */
  readonly refused: readonly SeedRefusal[];
}

const DEFAULT_MODE = 0o600;

/** The path's segments, or a SeedError: relative, `/`-separated, no empty, `.` or `..` segment. */
function segmentsOf(path: unknown): string[] {
  if (typeof path !== 'string' || path === '') throw new SeedError(String(path), 'path must be a non-empty string');
  if (path.includes('\0')) throw new SeedError(JSON.stringify(path), 'path must not contain NUL');
  if (isAbsolute(path)) throw new SeedError(path, 'path must be relative to the home');
  const segments = path.split('/');
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new SeedError(path, `path must not leave the home or have empty, "." or ".." segments`);
    }
  }
  return segments;
}

interface PreparedFile {
  readonly path: string;
  readonly segments: readonly string[];
  readonly bytes: Uint8Array;
  readonly mode: number;
}

/** Validates every entry and reads every source, before anything is written. */
async function prepare(files: readonly SeedFile[]): Promise<PreparedFile[]> {
  const list: unknown = files;
  if (!Array.isArray(list)) throw new SeedError('files', 'must be an array');
  const seen = new Set<string>();
  const prepared: PreparedFile[] = [];
  for (const file of files) {
    const segments = segmentsOf(file?.path);
    const path = file.path;
    if (seen.has(path)) throw new SeedError(path, 'is listed twice');
    seen.add(path);
    const hasContent = file.content !== undefined;
    const hasSource = file.sourcePath !== undefined;
    if (hasContent === hasSource) throw new SeedError(path, 'needs exactly one of content and sourcePath');
    const mode = file.mode ?? DEFAULT_MODE;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new SeedError(path, `mode ${String(file.mode)} must be an integer in 0..0o777`);
    let bytes: Uint8Array;
    if (hasContent) {
      bytes = typeof file.content === 'string' ? Buffer.from(file.content, 'utf8') : file.content;
    } else {
      try {
        bytes = await readFile(file.sourcePath as string);
      } catch (error) {
        throw new SeedError(path, `cannot read sourcePath ${file.sourcePath}: ${(error as Error).message}`, { cause: error });
      }
    }
    prepared.push({ path, segments, bytes, mode });
  }
  return prepared;
}

async function lstatOrNull(path: string): Promise<Awaited<ReturnType<typeof lstat>> | null> {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Gives the directory at `path` (just made) to uid:gid with `mode`, through a no-follow handle. */
async function ownDirectory(path: string, uid: number, gid: number, mode: number): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    await handle.chown(uid, gid);
    await handle.chmod(mode);
  } finally {
    await handle.close();
  }
}

type Outcome = { kind: 'written' } | { kind: 'kept' } | { kind: 'refused'; reason: string };

async function seedOne(homeDir: string, file: PreparedFile, uid: number, gid: number): Promise<Outcome> {
  let current = homeDir;
  const parents = file.segments.slice(0, -1);
  for (const [i, segment] of parents.entries()) {
    current = join(current, segment);
    const shown = file.segments.slice(0, i + 1).join('/');
    let info = await lstatOrNull(current);
    if (info === null) {
      try {
        // mkdir(2) never follows a symlink at its last component: it fails with EEXIST.
        await mkdir(current, { mode: 0o700 });
        await ownDirectory(current, uid, gid, 0o700);
        continue;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        info = await lstat(current);
      }
    }
    if (info.isSymbolicLink()) return { kind: 'refused', reason: `${shown} is a symlink` };
    if (!info.isDirectory()) return { kind: 'refused', reason: `${shown} is not a directory` };
  }
  const target = join(current, file.segments.at(-1)!);
  const present = (info: Awaited<ReturnType<typeof lstat>>): Outcome =>
    info.isSymbolicLink()
      ? { kind: 'refused', reason: `${file.path} is a symlink` }
      : info.isFile()
        ? { kind: 'kept' }
        : { kind: 'refused', reason: `${file.path} exists and is not a regular file` };
  const existing = await lstatOrNull(target);
  if (existing !== null) return present(existing);
  let handle;
  try {
    // O_EXCL: never overwrite; O_NOFOLLOW (and O_EXCL): never through a symlink.
    handle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, file.mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return present(await lstat(target));
    throw error;
  }
  try {
    await handle.writeFile(file.bytes);
    await handle.chown(uid, gid);
    await handle.chmod(file.mode);
  } finally {
    await handle.close();
  }
  return { kind: 'written' };
}

/**
 * Copies a template's seed files (AGENTS.md, CLAUDE.md, a persona, tool configuration) into an
 * agent's home where they are absent, owned by the agent: a file already there (perhaps changed by
 * the agent) is kept as it is, never overwritten.
 *
 * The home is the agent's, so nothing in it is trusted: every parent directory is checked with
 * `lstat` (a symlink or non-directory in the way refuses that file), missing parents are made with
 * mkdir(2) (0700) and given to uid:gid through an `O_NOFOLLOW` handle, and each file is created
 * with `O_CREAT | O_EXCL | O_NOFOLLOW`, then `fchown`/`fchmod`ed. Call it before the agent's sandbox
 * starts (no process of the agent runs), so nothing can swap a checked directory meanwhile.
 *
 * @returns which files were written, kept, or refused (with the reason; a refusal is the home's
 *   doing, to be audited, and the other files are still seeded).
 * @throws {SeedError} `WARREN_SEED_INVALID`, before anything is written, when an entry is invalid
 *   (path absolute, leaving the home, repeated; not exactly one of content and sourcePath; a
 *   sourcePath that cannot be read; a bad mode), the home is not a real directory, or uid/gid is
 *   not an integer in 1..4294967294.
 */
export async function seedHome(options: SeedHomeOptions): Promise<SeedResult> {
  const { homeDir, uid, gid } = options;
  if (typeof homeDir !== 'string' || !isAbsolute(homeDir)) throw new SeedError(String(homeDir), 'homeDir must be an absolute path');
  for (const [field, value] of [['uid', uid], ['gid', gid]] as const) {
    if (!Number.isInteger(value) || value <= 0 || value > 4_294_967_294) throw new SeedError(homeDir, `${field} ${value} must be an integer in 1..4294967294`);
  }
  const files = await prepare(options.files);
  const home = await lstatOrNull(homeDir);
  if (home === null || !home.isDirectory()) throw new SeedError(homeDir, 'the home must be an existing directory (symlinks are refused)');
  const written: string[] = [];
  const kept: string[] = [];
  const refused: SeedRefusal[] = [];
  for (const file of files) {
    const outcome = await seedOne(homeDir, file, uid, gid);
    if (outcome.kind === 'written') written.push(file.path);
    else if (outcome.kind === 'kept') kept.push(file.path);
    else refused.push({ path: file.path, reason: outcome.reason });
  }
  return { written, kept, refused };
}

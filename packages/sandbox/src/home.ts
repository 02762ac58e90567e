import { constants, readFileSync } from 'node:fs';
import { lstat, mkdir, open, readdir, realpath, rename, rm, rmdir, statfs, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { execa } from 'execa';
import { SandboxError, SandboxUnavailableError } from './errors.js';
import { findProgram, parseMountInfo, type MountEntry } from './host.js';
import { processesOfUid } from './procs.js';

/** Options of {@link ensureHomeImage}. */
export interface HomeImageOptions {
  /**
   * Host path of the image file (e.g. `<stateDir>/home-images/<agent>.ext4`). Its directory must be
   * a real directory owned by root and not writable by group or others: the agent must never be
   * able to touch the raw image.
   */
  readonly imagePath: string;
  /**
   * Size of the filesystem in bytes (the quota: data and metadata), at least 4 MiB. The file is
   * sparse: host disk is used only as the agent writes. Applied when the image is made; an existing
   * image keeps its size.
   */
  readonly sizeBytes: number;
  /**
   * The home directory on the host to mount the image on (the sandbox's `homeHostPath`). Must be a
   * canonical absolute path (no symlink anywhere) whose parent is owned by root and not writable by
   * group or others.
   */
  readonly mountPoint: string;
  /** Owner of the filesystem's root directory (the agent). Never 0. */
  readonly uid: number;
  readonly gid: number;
}

/** What {@link ensureHomeImage} did. */
export interface HomeImage {
  readonly imagePath: string;
  readonly mountPoint: string;
  /** True when the image was made by this call (and existing home contents moved into it). */
  readonly created: boolean;
  /** True when this call mounted it (false: it was already mounted from this image). */
  readonly mounted: boolean;
  /** The image file's size in bytes. */
  readonly sizeBytes: number;
}

/** Mount options of every home image: no setuid, no device files, no executing files from it. */
export const HOME_MOUNT_OPTIONS = 'loop,nosuid,nodev,noexec';

const MIN_IMAGE_BYTES = 4 * 1024 * 1024;
const GROUP_OTHER_WRITE = 0o022;

async function requireProgram(name: string, pkg: string): Promise<string> {
  const path = await findProgram(name, false);
  if (!path) throw new SandboxUnavailableError([name], `apt-get install -y ${pkg}`);
  return path;
}

/** Runs a host tool with an empty environment; throws a SandboxError with its stderr on failure. */
async function run(what: string, path: string, file: string, args: readonly string[]): Promise<void> {
  const result = await execa(file, args, { extendEnv: false, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, reject: false, stdin: 'ignore' });
  if (result.exitCode !== 0) {
    const detail = String(result.stderr || result.stdout || result.shortMessage).trim();
    throw new SandboxError(what, `${basename(file)} ${args.join(' ')} failed: ${detail}`, path);
  }
}

/** The parent of `path` must be a real directory owned by root, not writable by group or others. */
async function requireSafeParent(what: string, path: string): Promise<void> {
  const parent = dirname(path);
  let info;
  try {
    info = await lstat(parent);
  } catch (error) {
    throw new SandboxError(what, `${parent} cannot be read: ${(error as Error).message}`, parent, { cause: error });
  }
  if (!info.isDirectory()) throw new SandboxError(what, `${parent} is not a directory (symlinks are refused)`, parent);
  if (info.uid !== 0) throw new SandboxError(what, `${parent} is owned by uid ${info.uid}, not root`, parent);
  if ((info.mode & GROUP_OTHER_WRITE) !== 0) {
    throw new SandboxError(what, `${parent} is writable by group or others (mode ${(info.mode & 0o7777).toString(8)})`, parent);
  }
}

function mounts(): MountEntry[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

/** The image file behind loop device `source` (`/sys/block/loopN/loop/backing_file`), or null. */
function loopBackingFile(source: string): string | null {
  const match = /^\/dev\/(loop\d+)$/.exec(source);
  if (!match) return null;
  try {
    return readFileSync(`/sys/block/${match[1]}/loop/backing_file`, 'utf8').trim();
  } catch {
    return null;
  }
}

/** The topmost mount at exactly `path`, or undefined. */
function mountAt(path: string): MountEntry | undefined {
  return mounts()
    .filter((m) => m.mountPoint === path)
    .at(-1);
}

/** Makes the image: sparse file (O_EXCL|O_NOFOLLOW, mode 0600), then `mkfs.ext4` owned by uid:gid. */
async function makeImage(what: string, path: string, options: HomeImageOptions, mkfs: string): Promise<void> {
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await handle.truncate(options.sizeBytes);
  } finally {
    await handle.close();
  }
  try {
    // -m 0: no blocks reserved for root (the agent is never root); root_owner: the fs root dir is the agent's.
    await run(what, path, mkfs, ['-q', '-F', '-m', '0', '-E', `root_owner=${options.uid}:${options.gid}`, path]);
  } catch (error) {
    await unlink(path).catch(() => undefined);
    throw error;
  }
}

/** Opens the mounted root without following a symlink and sets owner uid:gid and mode 0700. */
async function ownRoot(mountPoint: string, uid: number, gid: number): Promise<void> {
  const handle = await open(mountPoint, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    await handle.chown(uid, gid);
    await handle.chmod(0o700);
  } finally {
    await handle.close();
  }
}

/**
 * Gives an agent a home with a hard size and inode quota: a loop-mounted ext4 image.
 *
 * Once (no image yet): makes a sparse file of `sizeBytes` at `imagePath` (never following a symlink;
 * mode 0600), formats it with `mkfs.ext4 -q -F -m 0 -E root_owner=uid:gid` (e2fsprogs), and, if the
 * home directory already has contents (e.g. the skeleton and credential of a new account), copies
 * them into the new filesystem with `cp -a` (no symlink followed, owners and modes kept; only while
 * no process of `uid` runs, so nothing changes them meanwhile) and then deletes the originals.
 * Every call: mounts the image at `mountPoint` with `-o loop,nosuid,nodev,noexec` unless it is
 * already mounted there, then makes the root owned by uid:gid with mode 0700.
 *
 * Call order: after the account (uid, home directory) exists and BEFORE `spawnSandbox` with
 * `homeHostPath === mountPoint`; {@link releaseHomeImage} after the sandbox has exited;
 * {@link removeStaleMounts} at supervisor start, before any agent starts.
 *
 * @throws {SandboxUnavailableError} if `mkfs.ext4` (apt-get install -y e2fsprogs) or `mount`
 *   (apt-get install -y mount) is missing.
 * @throws {SandboxError} if a path is unsafe (symlink, parent writable by others, non-canonical),
 *   something else is mounted at `mountPoint`, the image exists but the home directory under it is
 *   not empty (its contents would be hidden), processes of `uid` run while contents must be moved,
 *   or mkfs/mount/cp fails (the tool's message is included).
 */
export async function ensureHomeImage(options: HomeImageOptions): Promise<HomeImage> {
  const { imagePath, mountPoint, uid, gid, sizeBytes } = options;
  const what = `home ${mountPoint}`;
  for (const [field, value] of [['imagePath', imagePath], ['mountPoint', mountPoint]] as const) {
    if (typeof value !== 'string' || !isAbsolute(value) || value.includes('\0')) {
      throw new SandboxError(what, `${field} ${JSON.stringify(value)} must be an absolute path`, String(value));
    }
  }
  for (const [field, value] of [['uid', uid], ['gid', gid]] as const) {
    if (!Number.isInteger(value) || value <= 0 || value > 4_294_967_294) throw new SandboxError(what, `${field} ${value} must be an integer in 1..4294967294`);
  }
  if (!Number.isInteger(sizeBytes) || sizeBytes < MIN_IMAGE_BYTES) throw new SandboxError(what, `sizeBytes ${sizeBytes} must be an integer >= ${MIN_IMAGE_BYTES}`);
  const mkfs = await requireProgram('mkfs.ext4', 'e2fsprogs');
  const mountBin = await requireProgram('mount', 'mount');
  const umountBin = await requireProgram('umount', 'mount');
  const cp = await requireProgram('cp', 'coreutils');

  await requireSafeParent(what, imagePath);
  await requireSafeParent(what, mountPoint);
  await mkdir(mountPoint, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw new SandboxError(what, `cannot create ${mountPoint}: ${error.message}`, mountPoint, { cause: error });
  });
  const pointInfo = await lstat(mountPoint);
  if (!pointInfo.isDirectory()) throw new SandboxError(what, `${mountPoint} is not a directory (symlinks are refused)`, mountPoint);
  if ((await realpath(mountPoint)) !== mountPoint) throw new SandboxError(what, `${mountPoint} is not a canonical path`, mountPoint);

  const current = mountAt(mountPoint);
  if (current) {
    if (loopBackingFile(current.source) !== imagePath) {
      throw new SandboxError(what, `${mountPoint} already has ${current.source} (${current.fsType}) mounted, not ${imagePath}`, mountPoint);
    }
    await ownRoot(mountPoint, uid, gid);
    return { imagePath, mountPoint, created: false, mounted: false, sizeBytes: (await lstat(imagePath)).size };
  }

  let created = false;
  let image = await lstat(imagePath).catch(() => null);
  const existing = await readdir(mountPoint);
  if (image === null) {
    const fresh = `${imagePath}.new`;
    await rm(fresh, { force: true });
    await makeImage(what, fresh, options, mkfs);
    if (existing.length > 0) {
      const running = processesOfUid(uid);
      if (running.length > 0) {
        await unlink(fresh).catch(() => undefined);
        throw new SandboxError(what, `cannot move the home into its image while processes of uid ${uid} run (${running.join(', ')})`, mountPoint);
      }
      const staging = join(dirname(imagePath), `.${basename(imagePath)}.mnt`);
      await mkdir(staging, { mode: 0o700 }).catch(() => undefined);
      await run(what, fresh, mountBin, ['-t', 'ext4', '-o', HOME_MOUNT_OPTIONS, fresh, staging]);
      try {
        await run(what, mountPoint, cp, ['-a', '--no-dereference', '--', ...existing.map((name) => join(mountPoint, name)), `${staging}/`]);
      } finally {
        await run(what, staging, umountBin, [staging]);
        await rmdir(staging).catch(() => undefined);
      }
    }
    await rename(fresh, imagePath);
    for (const name of existing) await rm(join(mountPoint, name), { recursive: true, force: true });
    created = true;
    image = await lstat(imagePath);
  } else if (existing.length > 0) {
    throw new SandboxError(what, `${mountPoint} is not empty (${existing.slice(0, 5).join(', ')}…): mounting ${imagePath} would hide it`, mountPoint);
  }
  if (!image.isFile()) throw new SandboxError(what, `${imagePath} is not a regular file (symlinks are refused)`, imagePath);
  if (image.uid !== 0 || image.nlink !== 1) throw new SandboxError(what, `${imagePath} must be owned by root with one link`, imagePath);

  await run(what, mountPoint, mountBin, ['-t', 'ext4', '-o', HOME_MOUNT_OPTIONS, imagePath, mountPoint]);
  await ownRoot(mountPoint, uid, gid);
  return { imagePath, mountPoint, created, mounted: true, sizeBytes: image.size };
}

/** `umount path`, retrying ~2 s while busy (processes still exiting). */
async function unmount(what: string, path: string): Promise<void> {
  const umountBin = await requireProgram('umount', 'mount');
  for (let attempt = 0; ; attempt++) {
    try {
      await run(what, path, umountBin, [path]);
      return;
    } catch (error) {
      if (!mountAt(path)) return;
      if (attempt >= 40) throw error;
      await delay(50);
    }
  }
}

/**
 * Unmounts the home image mounted at `mountPoint` (the loop device is freed with it). Call after
 * the agent's sandbox has exited. @returns false when nothing was mounted there.
 * @throws {SandboxError} if it stays busy for ~2 s.
 */
export async function releaseHomeImage(mountPoint: string): Promise<boolean> {
  if (!mountAt(mountPoint)) return false;
  await unmount(`home ${mountPoint}`, mountPoint);
  return true;
}

/**
 * Unmounts every mount below `parentDir` (deepest first), e.g. the home images a killed supervisor
 * left under its homes directory. Call at start, before any agent starts.
 * @returns the unmounted mount points.
 * @throws {SandboxError} if one stays busy.
 */
export async function removeStaleMounts(parentDir: string): Promise<string[]> {
  const parent = await realpath(parentDir);
  const below = [...new Set(mounts().map((m) => m.mountPoint))]
    .filter((point) => point.startsWith(`${parent}/`))
    .sort((a, b) => b.split('/').length - a.split('/').length);
  const removed: string[] = [];
  for (const point of below) {
    for (let layer = 0; layer < 16 && mountAt(point); layer++) await unmount(`mount ${point}`, point);
    removed.push(point);
  }
  return removed;
}

/** Reads the filesystem usage of a mounted home (`statfs`): bytes and inodes used and total. */
export async function homeImageUsage(mountPoint: string): Promise<{ usedBytes: number; totalBytes: number; usedInodes: number; totalInodes: number }> {
  const s = await statfs(mountPoint);
  return {
    usedBytes: (s.blocks - s.bfree) * s.bsize,
    totalBytes: s.blocks * s.bsize,
    usedInodes: s.files - s.ffree,
    totalInodes: s.files,
  };
}

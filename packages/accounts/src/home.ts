import { constants } from 'node:fs';
import { chmod, copyFile, lchown, lstat, mkdir, open, readdir, readlink, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Permission bits kept when copying: rwx for user, group, other; setuid, setgid and sticky are dropped. */
const PERMISSION_BITS = 0o777;

/**
 * Copies the contents of directory `source` into the existing directory `target`, never following
 * symlinks: directories and regular files are copied with their permission bits (without
 * setuid/setgid/sticky), symlinks are re-created pointing where they pointed.
 * @throws {Error} on a device, FIFO or socket in `source` (`where` names it), or any I/O error.
 */
export async function copyTree(source: string, target: string): Promise<void> {
  for (const entry of await readdir(source, { withFileTypes: true })) {
    const from = join(source, entry.name);
    const to = join(target, entry.name);
    const stat = await lstat(from);
    if (stat.isDirectory()) {
      await mkdir(to, { mode: 0o700 });
      await copyTree(from, to);
      await chmod(to, stat.mode & PERMISSION_BITS);
    } else if (stat.isFile()) {
      await copyFile(from, to, constants.COPYFILE_EXCL);
      await chmod(to, stat.mode & PERMISSION_BITS);
    } else if (stat.isSymbolicLink()) {
      await symlink(await readlink(from), to);
    } else {
      throw new Error(`${from} is not a regular file, directory or symlink; a skeleton may not hold it`);
    }
  }
}

/** `chown -R uid:gid path` with lchown: symlinks themselves change owner, their targets never do. */
export async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  await lchown(path, uid, gid);
  const stat = await lstat(path);
  if (!stat.isDirectory()) return;
  for (const name of await readdir(path)) {
    await chownTree(join(path, name), uid, gid);
  }
}

/** `rm -rf path` without following symlinks (a symlink is unlinked, never its target). */
export async function removeTree(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/**
 * Makes `<home>/.warren` a real directory with mode 0700 (replacing anything else of that name, e.g.
 * a symlink from the skeleton) and writes `secret` to `<home>/.warren/credentials` with mode 0600,
 * (exactly the secret, no newline), creating the file exclusively and never through a symlink.
 */
export async function writeCredential(home: string, secret: string): Promise<void> {
  const dir = join(home, '.warren');
  const existing = await lstat(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (existing !== undefined && !existing.isDirectory()) await removeTree(dir);
  if (existing === undefined || !existing.isDirectory()) await mkdir(dir, { mode: 0o700 });
  await chmod(dir, 0o700);
  const file = join(dir, 'credentials');
  await removeTree(file);
  const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await handle.writeFile(secret);
    await handle.chmod(0o600);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

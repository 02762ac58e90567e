/**
 * A home built and removed with synchronous system calls run in slices: each call is cheaper on
 * the main thread than its promise form (no thread-pool hand-off, no promise), which matters when
 * a sandbox per task makes and removes a home for every task, and a slice ends (the event loop
 * runs) once it has taken {@link SLICE_MS}, so a large skeleton or a home full of work does not
 * hold the event loop for long. Symlinks are never followed.
 */
import { constants } from 'node:fs';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  fchmodSync,
  fsync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Dirent,
} from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/** The longest a run of synchronous calls goes before the event loop runs, in ms. */
export const SLICE_MS = 2;

/** Permission bits kept when copying: rwx for user, group, other; setuid, setgid and sticky are dropped. */
const PERMISSION_BITS = 0o777;

/** Times the slices of one job: {@link Slices.next} yields to the event loop once the current slice is over. */
export class Slices {
  private startedMs = performance.now();

  /** Resolves at once within the slice; after a turn of the event loop (`setImmediate`) once it is over. */
  next(): Promise<void> | undefined {
    if (performance.now() - this.startedMs < SLICE_MS) return undefined;
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        this.startedMs = performance.now();
        resolve();
      }),
    );
  }
}

const code = (error: unknown): string | undefined => (error as NodeJS.ErrnoException).code;

/**
 * Copies the contents of directory `source` into the existing directory `target`, never following
 * symlinks: directories and regular files with their permission bits less set-id and sticky,
 * symlinks made again pointing where they pointed. Each path made is appended to `made`.
 * @throws {Error} on a device, FIFO or socket in `source` (naming it), or any I/O error.
 */
export async function copyTreeSliced(source: string, target: string, made: string[], slices: Slices): Promise<void> {
  for (const entry of readdirSync(source)) {
    await slices.next();
    const from = join(source, entry);
    const to = join(target, entry);
    const stat = lstatSync(from);
    if (stat.isDirectory()) {
      mkdirSync(to, { mode: 0o700 });
      made.push(to);
      await copyTreeSliced(from, to, made, slices);
      chmodSync(to, stat.mode & PERMISSION_BITS);
    } else if (stat.isFile()) {
      copyFileSync(from, to, constants.COPYFILE_EXCL);
      made.push(to);
      chmodSync(to, stat.mode & PERMISSION_BITS);
    } else if (stat.isSymbolicLink()) {
      symlinkSync(readlinkSync(from), to);
      made.push(to);
    } else {
      throw new Error(`${from} is not a regular file, directory or symlink; a skeleton may not hold it`);
    }
  }
}

/** `lchown` of every path of `paths` (symlinks change owner, never their targets), in slices. */
export async function chownAll(paths: readonly string[], uid: number, gid: number, slices: Slices): Promise<void> {
  for (const path of paths) {
    await slices.next();
    lchownSync(path, uid, gid);
  }
}

/**
 * Makes `<home>/.warren` a
 * real directory with mode 0700 (replacing anything else of that name, e.g. a symlink from the
 * skeleton) and writes `secret` to a new `<home>/.warren/credentials` (O_EXCL | O_NOFOLLOW), mode
 * 0600 (exactly the secret, no newline), synced before it returns. @returns the two paths made (directory, file) for {@link chownAll}.
 */
export async function writeCredentialSliced(home: string, secret: string, slices: Slices): Promise<string[]> {
  const dir = join(home, '.warren');
  let existing;
  try {
    existing = lstatSync(dir);
  } catch (error) {
    if (code(error) !== 'ENOENT') throw error;
  }
  if (existing !== undefined && !existing.isDirectory()) await removeTreeSliced(dir, slices);
  if (existing === undefined || !existing.isDirectory()) mkdirSync(dir, { mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = join(dir, 'credentials');
  await removeTreeSliced(file, slices);
  const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    const bytes = Buffer.from(secret, 'utf8');
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
    fchmodSync(fd, 0o600);
    // The one call that waits on the disk: through the thread pool.
    await new Promise<void>((resolve, reject) => fsync(fd, (error) => (error ? reject(error) : resolve())));
  } finally {
    closeSync(fd);
  }
  return [dir, file];
}

/**
 * `rm -rf path` without following symlinks (a symlink is unlinked, never its target), in slices:
 * a directory's entries are listed with their types, files and links unlinked, directories
 * emptied and removed. A path that does not exist is fine. An entry made while the directory is
 * emptied is removed on a second pass.
 * @throws {Error} the first I/O error other than a vanished entry.
 */
export async function removeTreeSliced(path: string, slices: Slices = new Slices()): Promise<void> {
  let stat;
  try {
    stat = lstatSync(path);
  } catch (error) {
    if (code(error) === 'ENOENT') return;
    throw error;
  }
  if (!stat.isDirectory()) {
    unlinkQuietly(path);
    return;
  }
  await removeDirectory(path, slices);
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if (code(error) !== 'ENOENT') throw error;
  }
}

async function removeDirectory(dir: string, slices: Slices): Promise<void> {
  for (let pass = 1; ; pass++) {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (error) {
      if (code(error) === 'ENOENT') return;
      throw error;
    }
    for (const entry of entries) {
      await slices.next();
      const path = join(dir, entry.name);
      // A type the file system did not give (DT_UNKNOWN) is looked up; symlinks are never directories here.
      const isDirectory = entry.isDirectory() || (!entry.isFile() && !entry.isSymbolicLink() && lstatSync(path, { throwIfNoEntry: false })?.isDirectory() === true);
      if (isDirectory) await removeDirectory(path, slices);
      else unlinkQuietly(path);
    }
    try {
      rmdirSync(dir);
      return;
    } catch (error) {
      if (code(error) === 'ENOENT') return;
      // Something was made in it meanwhile: empty it again, a few times at most.
      if (code(error) !== 'ENOTEMPTY' || pass >= 3) throw error;
    }
  }
}

/**
 * The callback forms of open/fstat/read/write/fsync/close wrapped in promises: per file, about half
 * the main-thread CPU of a `FileHandle` (no handle object, no per-call promise machinery inside
 * Node). Used where the board reads and writes many small files.
 */
import {
  close as closeFd,
  constants as fsConstants,
  fchmod as fchmodFd,
  fchown as fchownFd,
  fstat as fstatFd,
  fsync as fsyncFd,
  open as openFd,
  read as readFd,
  rename as renameFile,
  write as writeFd,
  type Stats,
} from 'node:fs';
import { MAX_TASK_FILE_BYTES } from './text.js';

/** Opens `path` read-only with O_NOFOLLOW | O_NONBLOCK (a symlink fails with ELOOP, a FIFO does not block). @returns the descriptor. */
export function openNoFollow(path: string): Promise<number> {
  return new Promise((done, fail) => {
    openFd(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK, (error, fd) => (error ? fail(error) : done(fd)));
  });
}

/** Creates `path` for writing with O_CREAT | O_EXCL and `mode` (less the umask). @returns the descriptor. @throws EEXIST when it exists. */
export function createExclusive(path: string, mode: number): Promise<number> {
  return new Promise((done, fail) => {
    openFd(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode, (error, fd) => (error ? fail(error) : done(fd)));
  });
}

/** Opens the folder `path` read-only (O_DIRECTORY), to fsync it. @returns the descriptor. */
export function openDirectory(path: string): Promise<number> {
  return new Promise((done, fail) => {
    openFd(path, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY, (error, fd) => (error ? fail(error) : done(fd)));
  });
}

/** fstat(2) of `fd`. */
export function fstatOf(fd: number): Promise<Stats> {
  return new Promise((done, fail) => fstatFd(fd, (error, stats) => (error ? fail(error) : done(stats))));
}

/** close(2) of `fd`. */
export function closeOf(fd: number): Promise<void> {
  return new Promise((done, fail) => closeFd(fd, (error) => (error ? fail(error) : done())));
}

/** fsync(2) of `fd`. */
export function fsyncOf(fd: number): Promise<void> {
  return new Promise((done, fail) => fsyncFd(fd, (error) => (error ? fail(error) : done())));
}

/** fchmod(2) of `fd` to `mode`. */
export function fchmodOf(fd: number, mode: number): Promise<void> {
  return new Promise((done, fail) => fchmodFd(fd, mode, (error) => (error ? fail(error) : done())));
}

/** fchown(2) of `fd`. */
export function fchownOf(fd: number, uid: number, gid: number): Promise<void> {
  return new Promise((done, fail) => fchownFd(fd, uid, gid, (error) => (error ? fail(error) : done())));
}

/** rename(2) of `from` to `to`. */
export function renameOf(from: string, to: string): Promise<void> {
  return new Promise((done, fail) => renameFile(from, to, (error) => (error ? fail(error) : done())));
}

/** Writes all of `bytes` to `fd` from its current position (repeating short writes). */
export function writeAll(fd: number, bytes: Uint8Array): Promise<void> {
  return new Promise((done, fail) => {
    let offset = 0;
    const next = (): void => {
      if (offset >= bytes.length) return done();
      writeFd(fd, bytes, offset, bytes.length - offset, null, (error, written) => {
        if (error) return fail(error);
        offset += written;
        next();
      });
    };
    next();
  });
}

/** Reading in pieces of this size when the file reports size 0 (as files in /proc do). */
const UNKNOWN_SIZE_CHUNK_BYTES = 64 * 1024;

/**
 * Reads from `fd`'s current position as `FileHandle.readFile` does: `size` bytes (fewer when the
 * file ends first), or to the end in chunks when `size` is 0, failing past
 * {@link MAX_TASK_FILE_BYTES}.
 */
export function readToEnd(fd: number, size: number): Promise<Buffer> {
  return new Promise((done, fail) => {
    if (size === 0) {
      const chunks: Buffer[] = [];
      let total = 0;
      const nextChunk = (): void => {
        const chunk = Buffer.allocUnsafeSlow(UNKNOWN_SIZE_CHUNK_BYTES);
        readFd(fd, chunk, 0, chunk.length, -1, (error, bytesRead) => {
          if (error) return fail(error);
          if (bytesRead === 0) return done(Buffer.concat(chunks, total));
          total += bytesRead;
          if (total > MAX_TASK_FILE_BYTES) return fail(new Error(`it grew past ${MAX_TASK_FILE_BYTES} bytes (1 MiB) while being read`));
          chunks.push(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead));
          nextChunk();
        });
      };
      return nextChunk();
    }
    const buffer = Buffer.allocUnsafeSlow(size);
    let total = 0;
    const next = (): void => {
      readFd(fd, buffer, total, size - total, -1, (error, bytesRead) => {
        if (error) return fail(error);
        total += bytesRead;
        if (bytesRead === 0 || total === size) return done(total === size ? buffer : buffer.subarray(0, total));
        next();
      });
    };
    next();
  });
}

/** A regular file read through {@link readPlainFileAt}: its bytes and its fstat. */
export interface PlainFile {
  readonly bytes: Buffer;
  readonly info: Stats;
}

/**
 * Reads `path` if it is a regular file (not a symlink): open with O_NOFOLLOW | O_NONBLOCK, fstat,
 * read, close — four calls, no path resolution.
 * @returns the bytes and fstat, or `'not plain'` when the path is a symlink (ELOOP) or something
 *   other than a regular file (the caller takes its careful path).
 * @throws the system's error from open (ENOENT…) or read.
 */
export async function readPlainFileAt(path: string): Promise<PlainFile | 'not plain'> {
  let fd: number;
  try {
    fd = await openNoFollow(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') return 'not plain';
    throw error;
  }
  try {
    const info = await fstatOf(fd);
    if (!info.isFile()) return 'not plain';
    return { bytes: await readToEnd(fd, info.size), info };
  } finally {
    await closeOf(fd).catch(() => undefined);
  }
}

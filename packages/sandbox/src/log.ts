import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';

/** open(2) flags of a log file: append, create, never follow a symlink, never block on a FIFO. */
const LOG_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Opens `path` for appending without following a symlink planted at it (O_NOFOLLOW fails with
 * ELOOP) or blocking on a FIFO, and refuses anything but a regular file with one link (a hard link
 * to another file would make the supervisor write there).
 * @throws an Error naming the path when the file is not a plain regular file, or the fs error.
 */
async function openLogFile(path: string): Promise<{ handle: FileHandle; size: number }> {
  const handle = await open(path, LOG_FLAGS, 0o600);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new Error(`${path} is not a regular file`);
    if (info.nlink !== 1) throw new Error(`${path} has ${info.nlink} hard links`);
    return { handle, size: info.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * An append-only log file with a size cap. When a write would take the file past `maxBytes` it is
 * renamed to `<path>.1` (replacing the previous `.1`, whose bytes count as dropped) and a new file
 * is started; a single chunk larger than the cap keeps only its last `maxBytes` bytes. Writes are
 * serialized; memory use is bounded by the chunks in flight (sources are paused while writing):
 * output is handled as chunks, never gathered into lines, so a 100 MB line costs no more memory than
 * 100 MB of short ones. The file and its `.1` are opened and replaced without following symlinks.
 */
export class CappedLog {
  private size: number;
  private dropped = 0;
  private chain: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    readonly maxBytes: number,
    private handle: FileHandle,
    size: number,
  ) {
    this.size = size;
  }

  /**
   * Opens (appending to) `path`, creating its directory (mode 0700 when made).
   * @throws the fs error, or an Error if `path` is a symlink, FIFO, directory or hard link.
   */
  static async open(path: string, maxBytes: number): Promise<CappedLog> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const { handle, size } = await openLogFile(path);
    return new CappedLog(path, maxBytes, handle, size);
  }

  /** Bytes lost so far: overwritten `.1` files and the cut heads of oversize chunks. */
  get droppedBytes(): number {
    return this.dropped;
  }

  /**
   * Appends `chunk`; resolves once written. Errors are swallowed (logging must not kill the agent);
   * a chunk that could not be written counts as dropped.
   */
  write(chunk: Buffer): Promise<void> {
    const next = this.chain
      .then(() => this.writeNow(chunk))
      .catch(() => {
        this.dropped += chunk.length;
      });
    this.chain = next;
    return next;
  }

  private async writeNow(chunk: Buffer): Promise<void> {
    let data = chunk;
    if (data.length > this.maxBytes) {
      this.dropped += data.length - this.maxBytes;
      data = data.subarray(data.length - this.maxBytes);
    }
    if (this.size + data.length > this.maxBytes && this.size > 0) await this.rotate();
    await this.handle.write(data);
    this.size += data.length;
  }

  private async rotate(): Promise<void> {
    await this.handle.close();
    const old = `${this.path}.1`;
    try {
      // lstat: a symlink planted at .1 is replaced by the rename below, never followed.
      const info = await lstat(old);
      if (info.isFile()) this.dropped += info.size;
    } catch {
      // no previous rotation
    }
    await rename(this.path, old);
    this.handle = (await openLogFile(this.path)).handle;
    this.size = 0;
  }

  /**
   * Copies `stream` into the log, pausing it while each chunk is written; `onChunk` sees each chunk
   * first. Resolves when the stream ends or fails.
   */
  pump(stream: Readable, onChunk?: (chunk: Buffer) => void): Promise<void> {
    return new Promise((resolve) => {
      stream.on('data', (chunk: Buffer) => {
        onChunk?.(chunk);
        stream.pause();
        // write() never rejects; a source that cannot be resumed is ended, which ends the pump.
        this.write(chunk)
          .then(() => stream.resume())
          .catch((error: unknown) => stream.destroy(error instanceof Error ? error : new Error(String(error))));
      });
      stream.once('end', () => resolve());
      stream.once('close', () => resolve());
      stream.once('error', () => resolve());
    });
  }

  /** Waits for pending writes and closes the file. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.chain.then(() => this.handle.close()).catch(() => undefined);
    return this.closing;
  }
}

import { mkdir, open, rename, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';

/**
 * An append-only log file with a size cap. When a write would take the file past `maxBytes` it is
 * renamed to `<path>.1` (replacing the previous `.1`, whose bytes count as dropped) and a new file
 * is started; a single chunk larger than the cap keeps only its last `maxBytes` bytes. Writes are
 * serialized; memory use is bounded by the chunks in flight (sources are paused while writing).
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

  /** Opens (appending to) `path`, creating its directory. @throws the fs error if it cannot. */
  static async open(path: string, maxBytes: number): Promise<CappedLog> {
    await mkdir(dirname(path), { recursive: true });
    const handle = await open(path, 'a', 0o640);
    const { size } = await handle.stat();
    return new CappedLog(path, maxBytes, handle, size);
  }

  /** Bytes lost so far: overwritten `.1` files and the cut heads of oversize chunks. */
  get droppedBytes(): number {
    return this.dropped;
  }

  /** Appends `chunk`; resolves once written. Errors are swallowed (logging must not kill the agent). */
  write(chunk: Buffer): Promise<void> {
    const next = this.chain.then(() => this.writeNow(chunk)).catch(() => undefined);
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
      this.dropped += (await stat(old)).size;
    } catch {
      // no previous rotation
    }
    await rename(this.path, old);
    this.handle = await open(this.path, 'a', 0o640);
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
        void this.write(chunk).then(() => stream.resume());
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

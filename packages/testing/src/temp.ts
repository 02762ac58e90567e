import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A temporary directory that is removed (recursively) on close. */
export interface TempDir {
  /** Absolute path of the directory. */
  readonly path: string;
  /** Removes the directory and everything in it. Idempotent (the same promise every time). */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Makes a fresh directory under the OS temp dir (`$TMPDIR`, default /tmp) named
 * `<prefix><random 6 chars>` (mkdtemp(3)), mode 0700.
 * @param prefix start of the directory name, such as `warren-broker-`. Default `warren-`.
 */
export async function makeTempDir(prefix = 'warren-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= rm(path, { recursive: true, force: true, maxRetries: 3 });
    return closing;
  };
  return { path, close, [Symbol.asyncDispose]: close };
}

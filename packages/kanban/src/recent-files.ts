/**
 * The bytes of small board files as this process last read or wrote them, by path, with the mode
 * and owner their file had: a card write whose caller names the hash it read (`expectedHash`) takes
 * the bytes from here instead of reading the file first. That is safe because the write reads the
 * file again, whole, just before its rename and replaces nothing unless the bytes there still hash
 * to `expectedHash` (see `replaceAtomically`); a file changed meanwhile is a conflict as before.
 */
import { resolve } from 'node:path';
import { sha256Hex } from './text.js';

/** The mode (with its file type bits, as `stat` gives it) and owner a replaced file keeps. */
export interface FileOwner {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

/** A remembered file: its bytes and the mode and owner of the file they were read from or written to. */
export interface RecentFile {
  readonly bytes: Buffer;
  readonly owner: FileOwner;
}

/** At most this many files are remembered (least recently used first out). */
const MAX_FILES = 2048;
/** Files larger than this (bytes) are not remembered. */
const MAX_FILE_BYTES = 8192;

const files = new Map<string, RecentFile>();

/**
 * Remembers `bytes` as the content of the regular file (not a symlink) at `path`, with the mode
 * and owner of that file (from the fstat of its read, or those given to its write). A file over
 * {@link MAX_FILE_BYTES} is forgotten instead.
 */
export function rememberFile(path: string, bytes: Buffer, owner: FileOwner): void {
  const key = resolve(path);
  files.delete(key);
  if (bytes.length > MAX_FILE_BYTES) return;
  files.set(key, { bytes, owner: { mode: owner.mode, uid: owner.uid, gid: owner.gid } });
  if (files.size > MAX_FILES) files.delete(files.keys().next().value!);
}

/** The remembered file at `path` if its bytes hash to `hash` (sha256, hex); else undefined. */
export function recallFile(path: string, hash: string): RecentFile | undefined {
  const key = resolve(path);
  const file = files.get(key);
  if (file === undefined) return undefined;
  if (sha256Hex(file.bytes) !== hash) return undefined;
  files.delete(key);
  files.set(key, file);
  return file;
}

/** Forgets the file at `path`. */
export function forgetFile(path: string): void {
  files.delete(resolve(path));
}

/** Forgets every remembered file. */
export function forgetFiles(): void {
  files.clear();
}

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { LogChunk } from './ports.js';

/** True for a UTF-8 continuation byte (`10xxxxxx`): it never starts a character. */
const continuation = (byte: number | undefined): boolean => byte !== undefined && (byte & 0xc0) === 0x80;

/**
 * A byte range of the log file at `path`, as `GET /api/v1/agents/:name/log` serves it: from
 * `after` (a byte offset) at most `limit` bytes, or without `after` the last `limit` bytes. The
 * range is moved to whole UTF-8 characters (a character cut by the start is skipped, one cut by the
 * end is left for the next read), so `next` may be a few bytes short of `after + limit`. An
 * `after` beyond the end (the log was truncated or replaced) reads the tail again. A missing file
 * is empty.
 * @param range `limit` in bytes, a positive whole number (4 at least are read); `after` a byte offset ≥ 0.
 * @returns the text, the offset to ask for next, and the file's size in bytes.
 */
export function readLogRange(path: string, range: { readonly after?: number; readonly limit: number }): LogChunk {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return { text: '', next: 0, size: 0 };
  }
  try {
    const size = fstatSync(fd).size;
    const limit = Math.max(4, range.limit); // room for one whole character, so that a read always moves on
    const tail = range.after === undefined || range.after > size;
    const start = tail ? Math.max(0, size - limit) : range.after;
    const length = Math.min(size - start, limit);
    const buffer = Buffer.alloc(length);
    const read = readSync(fd, buffer, 0, length, start);
    let from = 0;
    if (tail || start > 0) while (from < read && from < 4 && continuation(buffer[from])) from += 1;
    let to = read;
    if (start + read < size) {
      // Leave a character the range cuts for the next read: back off to its lead byte.
      let lead = to - 1;
      while (lead > from && continuation(buffer[lead])) lead -= 1;
      const byte = buffer[lead]!;
      const width = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
      if (lead + width > to) to = lead;
    }
    return { text: buffer.subarray(from, to).toString('utf8'), next: start + to, size };
  } finally {
    closeSync(fd);
  }
}

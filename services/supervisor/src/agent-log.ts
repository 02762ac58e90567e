import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** Bytes read from the end of an agent's log to find its last lines. */
const TAIL_BYTES = 4096;

/**
 * The last `count` non-empty lines of an agent's log (its runner's and sandbox's stderr), joined
 * with ` | ` and cut to `maxChars`, or '' when the log is missing or empty. Only the last
 * {@link TAIL_BYTES} bytes are read, so a large log costs nothing more.
 * @param path the log file, e.g. `var/logs/shell-1.log`.
 */
export function lastLogLines(path: string, count = 3, maxChars = 600): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const lines = buffer.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '');
    // The first line may be cut by the tail; drop it unless it is all there is.
    if (size > length && lines.length > 1) lines.shift();
    const text = lines.slice(-count).join(' | ');
    return text.length > maxChars ? `…${text.slice(text.length - maxChars + 1)}` : text;
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}

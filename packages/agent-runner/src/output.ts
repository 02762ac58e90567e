import { closeSync, openSync, writeSync } from 'node:fs';

/** A `::progress::` report parsed from a task's stdout. `percent` is 0..100 when given. */
export interface ProgressLine {
  readonly message: string;
  readonly percent?: number;
}

const PROGRESS = /^::progress(?:\s+(\d{1,3}(?:\.\d+)?)\s*)?::\s?(.*)$/;

/**
 * Parses one stdout line of a task: `::progress:: text` or `::progress 40:: text` (percent 0..100,
 * larger values are clamped). @returns null for any other line.
 */
export function parseProgressLine(line: string): ProgressLine | null {
  const match = PROGRESS.exec(line.replace(/\r$/, ''));
  if (!match) return null;
  const message = (match[2] ?? '').trim();
  if (match[1] === undefined) return { message };
  return { message, percent: Math.min(100, Number(match[1])) };
}

/** A `::send <agent>::` request parsed from a task's stdout: deliver `body` to agent `to`. */
export interface SendLine {
  readonly to: string;
  /** The rest of the line parsed as JSON, or the text itself when it is not JSON. */
  readonly body: unknown;
}

const SEND = /^::send\s+([a-z][a-z0-9-]{0,31})\s*::\s?(.*)$/;

/**
 * Parses one stdout line of a task: `::send shell-2:: {"ready": true}` asks the runner to message
 * agent `shell-2` (the gateway checks the policy and puts the sender's name on it).
 * @returns null for any other line.
 */
export function parseSendLine(line: string): SendLine | null {
  const match = SEND.exec(line.replace(/\r$/, ''));
  if (!match) return null;
  const text = (match[2] ?? '').trim();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // plain text is a valid body
  }
  return { to: match[1]!, body };
}

/**
 * Where one execution's output goes: appended to a file up to `maxBytes` (the rest is counted in
 * `droppedBytes`, not written), the last `tailChars` characters kept in memory for the summary,
 * and stdout split into lines (each cut at `maxLineChars`) for progress reports.
 */
export class OutputCapture {
  private fd: number | null;
  private written = 0;
  private dropped = 0;
  private tailText = '';
  private partial = '';
  private overlong = false;

  /**
   * @param path the file, opened for appending; or a descriptor already open for writing, which
   *   this capture then owns (closes).
   * @throws the fs error if `path` cannot be opened for appending.
   */
  constructor(
    path: string | number,
    private readonly maxBytes: number,
    private readonly onStdoutLine: (line: string) => void,
    private readonly tailChars = 2000,
    private readonly maxLineChars = 4096,
  ) {
    this.fd = typeof path === 'number' ? path : openSync(path, 'a', 0o600);
  }

  /** Bytes not written to the file because of the cap. */
  get droppedBytes(): number {
    return this.dropped;
  }

  /** The last `tailChars` characters of stdout and stderr, interleaved as they came. */
  get tail(): string {
    return this.tailText;
  }

  /** Records a chunk of stdout (`stdout: true`) or stderr. */
  push(chunk: Buffer, stdout: boolean): void {
    this.append(chunk);
    const text = chunk.toString('utf8');
    this.tailText = (this.tailText + text).slice(-this.tailChars);
    if (stdout) this.splitLines(text);
  }

  private append(chunk: Buffer): void {
    if (this.fd === null) return;
    const room = Math.max(0, this.maxBytes - this.written);
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.dropped += chunk.length - part.length;
    if (part.length === 0) return;
    try {
      writeSync(this.fd, part);
      this.written += part.length;
    } catch {
      this.dropped += part.length;
    }
  }

  private splitLines(text: string): void {
    let rest = text;
    for (let newline = rest.indexOf('\n'); newline !== -1; newline = rest.indexOf('\n')) {
      const line = this.partial + rest.slice(0, newline);
      rest = rest.slice(newline + 1);
      if (!this.overlong) this.onStdoutLine(line.slice(0, this.maxLineChars));
      this.partial = '';
      this.overlong = false;
    }
    if (this.overlong) return;
    this.partial += rest;
    if (this.partial.length > this.maxLineChars) {
      // Report the cut line once, then skip to its end.
      this.onStdoutLine(this.partial.slice(0, this.maxLineChars));
      this.partial = '';
      this.overlong = true;
    }
  }

  /** Reports a last unterminated stdout line (a process ended without a newline); the next chunk starts a new line. */
  flushLine(): void {
    if (this.partial.length > 0 && !this.overlong) this.onStdoutLine(this.partial);
    this.partial = '';
    this.overlong = false;
  }

  /** Flushes a last unterminated stdout line and closes the file. Idempotent. */
  close(): void {
    this.flushLine();
    if (this.fd !== null) {
      const note = this.dropped > 0 ? Buffer.from(`\n[output cut: ${this.dropped} bytes over the ${this.maxBytes}-byte cap were dropped]\n`) : null;
      if (note) {
        try {
          writeSync(this.fd, note);
        } catch {
          // the note is best effort
        }
      }
      closeSync(this.fd);
      this.fd = null;
    }
  }
}

/**
 * The agent's computer as tools the model can call: `run_command`, `read_file`, `write_file` and
 * `list_directory`, all inside the sandbox the program runs in, the file tools confined to `$HOME`.
 */
import { spawn } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ToolError } from './errors.js';
import { resolveInHome } from './home-path.js';

/** What a tool call returns to the model. */
export interface ToolOutput {
  /** The text the model reads as the tool's result. */
  readonly output: string;
  /** The call failed (bad arguments, a refused path, a command that exited non-zero or timed out). */
  readonly isError: boolean;
}

/** One tool the model may call. */
export interface Tool {
  /** The function name the model uses: `^[a-zA-Z0-9_-]{1,64}$`. */
  readonly name: string;
  readonly description: string;
  /** The arguments' JSON Schema (an `object` schema). */
  readonly parameters: Readonly<Record<string, unknown>>;
  /**
   * Carries out one call.
   * @param input the parsed arguments, not yet checked.
   * @param signal aborted when the run stops (deadline or SIGTERM).
   * @throws {ToolError} or anything else: the loop turns it into an error result for the model.
   */
  run(input: unknown, signal: AbortSignal): Promise<ToolOutput>;
}

/** The most output a tool returns to the model, in bytes (64 KiB); longer output is cut with a note. */
export const MAX_TOOL_OUTPUT_BYTES = 64 * 1024;

/** `run_command`'s default timeout, in ms (2 min). */
export const DEFAULT_COMMAND_TIMEOUT_MS = 120_000;

/** How long a command gets after SIGTERM before SIGKILL, in ms. */
const KILL_GRACE_MS = 2_000;

/** How long to wait for output still in the pipes after the shell exited (a background child may hold them), in ms. */
const PIPE_DRAIN_MS = 500;

/** The most directory entries `list_directory` returns. */
const MAX_ENTRIES = 1_000;

/** What the computer tools need. */
export interface ComputerOptions {
  /** The agent's home, absolute: the file tools cannot leave it. */
  readonly home: string;
  /** The task's workspace: where commands run and relative paths start. */
  readonly cwd: string;
  /** The time left for the task, in ms: caps each command's timeout. */
  readonly remainingMs: () => number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringArg(tool: string, input: unknown, name: string, optional = false): string | undefined {
  if (!isRecord(input)) throw new ToolError(tool, 'the arguments must be a JSON object');
  const value = input[name];
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string') throw new ToolError(tool, `'${name}' must be a string`);
  return value;
}

/** Cuts `text` to {@link MAX_TOOL_OUTPUT_BYTES} bytes of UTF-8, saying so at the end. */
export function capOutput(text: string, totalBytes = Buffer.byteLength(text)): string {
  if (totalBytes <= MAX_TOOL_OUTPUT_BYTES && Buffer.byteLength(text) <= MAX_TOOL_OUTPUT_BYTES) return text;
  const head = Buffer.from(text).subarray(0, MAX_TOOL_OUTPUT_BYTES).toString('utf8').replace(/\uFFFD$/, '');
  return `${head}\n[output truncated: ${totalBytes} bytes, the first ${MAX_TOOL_OUTPUT_BYTES} shown]`;
}

/** Collects a stream's bytes up to a cap, counting (and dropping) the rest. */
class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  /** Bytes kept. */
  keptBytes = 0;
  /** Bytes seen. */
  total = 0;
  constructor(private readonly capBytes: number) {}
  push(chunk: Buffer): void {
    this.total += chunk.length;
    const room = this.capBytes - this.keptBytes;
    if (room <= 0) return;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(part);
    this.keptBytes += part.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

interface CommandResult {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly stdout: CappedBuffer;
  readonly stderr: CappedBuffer;
}

/**
 * Runs `/bin/sh -c command` in `cwd` with stdin closed, in a process group of its own so that a
 * timeout or an abort ends everything it started (SIGTERM to the group, SIGKILL after 2 s).
 */
function runShell(command: string, cwd: string, timeoutMs: number, signal: AbortSignal): Promise<CommandResult> {
  return new Promise((done, fail) => {
    const child = spawn('/bin/sh', ['-c', command], { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const stdout = new CappedBuffer(MAX_TOOL_OUTPUT_BYTES);
    const stderr = new CappedBuffer(MAX_TOOL_OUTPUT_BYTES);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    let timedOut = false;
    let exit: { code: number | null; signal: string | null } | undefined;
    const timers: NodeJS.Timeout[] = [];
    const killGroup = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // The group is gone already.
      }
    };
    const stop = (): void => {
      killGroup('SIGTERM');
      timers.push(setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS));
    };
    const onAbort = (): void => stop();
    signal.addEventListener('abort', onAbort, { once: true });
    // Aborted before the listener was added: the event will not come again.
    if (signal.aborted) stop();
    timers.push(
      setTimeout(() => {
        timedOut = true;
        stop();
      }, timeoutMs),
    );
    let settled = false;
    const finish = (): void => {
      if (settled || exit === undefined) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      signal.removeEventListener('abort', onAbort);
      child.stdout.destroy();
      child.stderr.destroy();
      done({ exitCode: exit.code, signal: exit.signal, timedOut, stdout, stderr });
    };
    child.on('error', (error) => {
      for (const t of timers) clearTimeout(t);
      signal.removeEventListener('abort', onAbort);
      fail(error);
    });
    child.on('exit', (code, sig) => {
      exit = { code, signal: sig };
      // What the shell left running in the background may hold the pipes open: wait a little for the rest.
      timers.push(setTimeout(finish, PIPE_DRAIN_MS));
    });
    child.on('close', finish);
  });
}

/** The first `maxBytes` bytes of `text` as UTF-8, without a broken last character. */
function headBytes(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text);
  return bytes.length <= maxBytes ? text : bytes.subarray(0, maxBytes).toString('utf8').replace(/\uFFFD$/, '');
}

/**
 * The result as the model reads it, at most about {@link MAX_TOOL_OUTPUT_BYTES}: stderr gets up to
 * a quarter of it when stdout needs the rest, and each cut stream says how long it was.
 */
function formatCommandResult(result: CommandResult, timeoutMs: number): string {
  const status = result.timedOut
    ? `timed out after ${timeoutMs} ms`
    : result.exitCode !== null
      ? `exit code ${result.exitCode}`
      : `ended by ${result.signal ?? 'a signal'}`;
  const room = MAX_TOOL_OUTPUT_BYTES - 256;
  const out = result.stdout.text().replace(/\n$/, '');
  const err = result.stderr.text().replace(/\n$/, '');
  const outBytes = Buffer.byteLength(out);
  const errBytes = Buffer.byteLength(err);
  const errBudget = outBytes + errBytes > room ? Math.min(errBytes, Math.floor(room / 4)) : errBytes;
  const parts = [`[${status}]`];
  const stream = (name: string, text: string, budget: number, buffer: CappedBuffer): void => {
    const shown = headBytes(text, budget);
    if (shown !== '') parts.push(shown);
    const shownBytes = Buffer.byteLength(shown);
    if (shown !== text || buffer.total > buffer.keptBytes) parts.push(`[${name} truncated: ${buffer.total} bytes, the first ${shownBytes} shown]`);
  };
  if (out !== '') stream('stdout', out, room - errBudget, result.stdout);
  if (err !== '') {
    parts.push('[stderr]');
    stream('stderr', err, errBudget, result.stderr);
  }
  return parts.join('\n');
}

/** Reads at most `maxBytes` of a file, and its size. */
function readHead(path: string, maxBytes: number): { text: string; sizeBytes: number } {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(maxBytes);
    const n = readSync(fd, buffer, 0, maxBytes, 0);
    return { text: buffer.subarray(0, n).toString('utf8'), sizeBytes: statSync(path).size };
  } finally {
    closeSync(fd);
  }
}

/**
 * The computer tools over `options.home` and `options.cwd`:
 * - `run_command { command, timeoutSeconds? }`: `/bin/sh -c` in the workspace, stdin closed,
 *   timeout default {@link DEFAULT_COMMAND_TIMEOUT_MS} capped by the task's remaining time; the
 *   result starts with `[exit code N]` then stdout, then `[stderr]` and stderr, each capped at
 *   {@link MAX_TOOL_OUTPUT_BYTES} with a truncation note; a non-zero exit or a timeout is an error result.
 * - `read_file { path }`: the file's text, its first {@link MAX_TOOL_OUTPUT_BYTES} bytes with a note when longer.
 * - `write_file { path, content }`: writes UTF-8 text, making parent directories.
 * - `list_directory { path? }`: one line per entry: `name/` for a directory, `name -> target` for a
 *   symlink, `name (N bytes)` for anything else; at most 1,000 entries.
 *
 * Paths are relative to the workspace or absolute, and must stay inside the home ({@link resolveInHome}).
 */
export function computerTools(options: ComputerOptions): Tool[] {
  const { home, cwd } = options;
  const inHome = (path: string): string => resolveInHome(home, cwd, path);
  return [
    {
      name: 'run_command',
      description:
        'Run a shell command (/bin/sh -c) in the task workspace and get its exit code, stdout and stderr. ' +
        'Stdin is closed; there is no network. Output is cut at 64 KiB.',
      parameters: {
        type: 'object',
        properties: {
          command: { type: 'string', description: 'The shell command line.' },
          timeoutSeconds: { type: 'number', description: 'Stop the command after this many seconds (default 120).' },
        },
        required: ['command'],
        additionalProperties: false,
      },
      async run(input, signal) {
        const command = stringArg('run_command', input, 'command')!;
        const asked = isRecord(input) ? input.timeoutSeconds : undefined;
        if (asked !== undefined && (typeof asked !== 'number' || !Number.isFinite(asked) || asked <= 0)) {
          throw new ToolError('run_command', "'timeoutSeconds' must be a positive number");
        }
        const remainingMs = options.remainingMs();
        if (remainingMs <= 0) throw new ToolError('run_command', "the task's time is up");
        const timeoutMs = Math.max(1, Math.min(asked === undefined ? DEFAULT_COMMAND_TIMEOUT_MS : Math.round(asked * 1000), remainingMs));
        const result = await runShell(command, cwd, timeoutMs, signal);
        return { output: formatCommandResult(result, timeoutMs), isError: result.timedOut || result.exitCode !== 0 };
      },
    },
    {
      name: 'read_file',
      description: 'Read a text file in your home (a path relative to the task workspace, or absolute). Cut at 64 KiB.',
      parameters: {
        type: 'object',
        properties: { path: { type: 'string', description: 'The file to read.' } },
        required: ['path'],
        additionalProperties: false,
      },
      async run(input) {
        const path = stringArg('read_file', input, 'path')!;
        const full = inHome(path);
        let stats;
        try {
          stats = statSync(full);
        } catch (error) {
          throw new ToolError('read_file', `cannot read '${path}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
        }
        if (!stats.isFile()) throw new ToolError('read_file', `'${path}' is not a file`);
        if (stats.size <= MAX_TOOL_OUTPUT_BYTES) return { output: readFileSync(full, 'utf8'), isError: false };
        const { text, sizeBytes } = readHead(full, MAX_TOOL_OUTPUT_BYTES);
        return { output: capOutput(text, sizeBytes), isError: false };
      },
    },
    {
      name: 'write_file',
      description: 'Write a text file in your home (a path relative to the task workspace, or absolute), replacing it; parent directories are made.',
      parameters: {
        type: 'object',
        properties: {
          path: { type: 'string', description: 'The file to write.' },
          content: { type: 'string', description: 'The whole new content, UTF-8.' },
        },
        required: ['path', 'content'],
        additionalProperties: false,
      },
      async run(input) {
        const path = stringArg('write_file', input, 'path')!;
        const content = stringArg('write_file', input, 'content')!;
        const full = inHome(path);
        try {
          mkdirSync(dirname(full), { recursive: true });
          writeFileSync(full, content);
        } catch (error) {
          throw new ToolError('write_file', `cannot write '${path}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
        }
        return { output: `wrote ${Buffer.byteLength(content)} bytes to ${path}`, isError: false };
      },
    },
    {
      name: 'list_directory',
      description: 'List a directory in your home (default: the task workspace): "name/" for directories, "name -> target" for symlinks, "name (N bytes)" for files.',
      parameters: {
        type: 'object',
        properties: { path: { type: 'string', description: 'The directory (default ".").' } },
        additionalProperties: false,
      },
      async run(input) {
        const path = stringArg('list_directory', input ?? {}, 'path', true) ?? '.';
        const full = inHome(path);
        let names: string[];
        try {
          names = readdirSync(full).sort();
        } catch (error) {
          throw new ToolError('list_directory', `cannot list '${path}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
        }
        const lines = names.slice(0, MAX_ENTRIES).map((name) => {
          const entry = `${full}/${name}`;
          try {
            const s = lstatSync(entry);
            if (s.isDirectory()) return `${name}/`;
            if (s.isSymbolicLink()) return `${name} -> ${readlinkSync(entry)}`;
            return `${name} (${s.size} bytes)`;
          } catch {
            return name;
          }
        });
        if (names.length > MAX_ENTRIES) lines.push(`[${names.length - MAX_ENTRIES} more entries not shown]`);
        return { output: lines.length > 0 ? lines.join('\n') : '(empty directory)', isError: false };
      },
    },
  ];
}

import { chown, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Writable } from 'node:stream';
import type { Account } from '@warren/accounts';
import { processExists, WarrenError, type Logger } from '@warren/core';
import { describeExit, homeInSandbox, type AgentExit, type AgentProcess, type AgentRuntime, type AgentSpec } from '@warren/runtime';
import { agentSpecOf } from '../agent-runtime.js';
import type { Authorizer } from '../authorize.js';
import type { WarrenEvent } from '../events.js';
import type { AgentTemplate } from '../templates.js';
import { COMPUTER_HELPER_SOURCE } from './computer-helper.js';

/** Output kept per stream of {@link AgentComputer.runCommand}, in bytes (1 MiB); the rest is read and dropped. */
export const OUTPUT_CAP_BYTES = 2 ** 20;
/** Default and largest `maxBytes` of {@link AgentComputer.readFile}, and the largest content of a write or stdin, in bytes (1 MiB). */
export const FILE_CAP_BYTES = 2 ** 20;
/** Default time limit of a command, in ms (30 s). */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** Largest time limit of a command, in ms (10 min). */
export const MAX_TIMEOUT_MS = 600_000;
/** Longest command text, in bytes (64 KiB; Linux refuses a single argument over 128 KiB). */
export const MAX_COMMAND_BYTES = 64 * 1024;
/** Most entries {@link AgentComputer.listDirectory} returns (by name order). */
export const MAX_ENTRIES = 10_000;
/** Longest path or cwd, in characters (Linux's PATH_MAX). */
export const MAX_PATH_LENGTH = 4096;
/** Time limit of a file operation, in ms. */
const FILE_OP_TIMEOUT_MS = 60_000;
/** Where the transfer directory (stdin, content to write) is bound read-only inside the sandbox. */
const TRANSFER_IN_SANDBOX = '/run/warren-computer';

/**
 * Why a call on an agent's computer was refused, as `code`:
 * - `WARREN_COMPUTER_PATH`: the path (or `cwd`) resolves outside the agent's home;
 * - `WARREN_COMPUTER_AGENT`: no such agent, its template is gone, its home is not attached (a
 *   home with a quota while the agent is not running), the sandbox could not start, or the computer is closed;
 * - `WARREN_COMPUTER_LIMIT`: an input is too large or out of range (command, stdin, content, timeout, maxBytes);
 * - `WARREN_COMPUTER_FILE`: the file operation failed inside the sandbox (not found, not a directory,
 *   not a regular file, the agent's file size limit); `errno` carries the system's code (`ENOENT`).
 * A policy denial is a `PolicyDeniedError` (`WARREN_POLICY_DENIED`) instead.
 */
export class ComputerError extends WarrenError {
  constructor(
    code: 'WARREN_COMPUTER_PATH' | 'WARREN_COMPUTER_AGENT' | 'WARREN_COMPUTER_LIMIT' | 'WARREN_COMPUTER_FILE',
    message: string,
    readonly errno: string | null = null,
  ) {
    super(code, message);
  }
}

/** What {@link AgentComputer.runCommand} returns. Sizes in bytes, times in ms. */
export interface CommandResult {
  /** The exit status, or null when it was killed by a signal or a limit. */
  readonly exitCode: number | null;
  /** The signal that killed it (`SIGKILL`), or null. */
  readonly signal: string | null;
  /** stdout and stderr decoded as UTF-8 (invalid sequences replaced), each at most {@link OUTPUT_CAP_BYTES}. */
  readonly stdout: string;
  readonly stderr: string;
  /** True when either stream had more than {@link OUTPUT_CAP_BYTES} (the rest was dropped; the command was not stopped for it). */
  readonly truncated: boolean;
  /** True when it was stopped at its time limit (SIGTERM to every process, SIGKILL to the whole tree after the grace). */
  readonly timedOut: boolean;
  /** How it ended when not by a plain exit or signal (out of memory, process limit), else null. */
  readonly reason: string | null;
  readonly durationMs: number;
}

/** What {@link AgentComputer.readFile} returns. */
export interface FileContent {
  /** The file's path relative to the home, symbolic links resolved. */
  readonly path: string;
  /** The bytes read: UTF-8 text when they are valid UTF-8, else base64. */
  readonly content: string;
  readonly encoding: 'utf8' | 'base64';
  /** The file's whole size in bytes. */
  readonly sizeBytes: number;
  /** True when only the first `maxBytes` were read. */
  readonly truncated: boolean;
}

/** One entry of {@link AgentComputer.listDirectory}; a symbolic link is reported as itself, not followed. */
export interface DirectoryEntry {
  readonly name: string;
  readonly type: 'file' | 'directory' | 'symlink' | 'other';
  readonly sizeBytes: number;
  /** Last modification, ms since the Unix epoch. */
  readonly modifiedMs: number;
}

/**
 * An agent's persistent, sandboxed computer: commands and file operations run inside the agent's
 * sandbox as its uid through the runtime's exec (what `warren exec` uses), so the kernel confines
 * them exactly as the agent's tasks are: only the home (and a private /tmp) writable, no network,
 * the agent's cgroup limits. Paths are relative to the home (or absolute under `/home/<name>`, the
 * home as the agent sees it) and are resolved inside the sandbox; one whose resolution leaves the
 * home is refused. Each call is decided by the policy as (`principal`, `agent:<name>`, `exec`) and
 * audited (`policy.decide`, then `agent.exec` and `agent.exec_exit` as `warren exec` writes them).
 * At most `maxConcurrent` calls run at once (each is a sandbox); others wait their turn.
 * Every method throws {@link ComputerError} or `PolicyDeniedError`.
 */
export interface AgentComputer {
  /** Runs `command` with /bin/sh -c as agent `agent`, cwd its home (or `cwd` inside it), stdin `stdin` (UTF-8) or empty; `timeoutMs` default 30 s, max 10 min. */
  runCommand(agent: string, input: { readonly command: string; readonly cwd?: string; readonly stdin?: string; readonly timeoutMs?: number }, principal: string): Promise<CommandResult>;
  /** Reads the first `maxBytes` (default and max 1 MiB) of a regular file inside the home. */
  readFile(agent: string, input: { readonly path: string; readonly maxBytes?: number }, principal: string): Promise<FileContent>;
  /** Creates or replaces (or with `append`, extends) a file inside the home, making missing parent directories; content at most 1 MiB once decoded. */
  writeFile(
    agent: string,
    input: { readonly path: string; readonly content: string; readonly encoding?: 'utf8' | 'base64'; readonly append?: boolean },
    principal: string,
  ): Promise<{ readonly path: string; readonly sizeBytes: number }>;
  /** Lists a directory inside the home (default the home), by name, at most {@link MAX_ENTRIES} entries (`truncated` past that). */
  listDirectory(agent: string, input: { readonly path?: string }, principal: string): Promise<{ readonly path: string; readonly entries: readonly DirectoryEntry[]; readonly truncated: boolean }>;
  /** Stops the running calls' sandboxes (their callers get the results so far) and refuses later and waiting calls. Idempotent. */
  close(): Promise<void>;
}

/** What {@link createAgentComputer} needs of the supervisor (members of its context, and the lifecycle's view of running agents). */
export interface AgentComputerOptions {
  /** Runs the sandboxes (`ctx.runtime`). */
  readonly runtime: Pick<AgentRuntime, 'exec'>;
  /** The agents' accounts (`ctx.accounts`). */
  readonly accounts: { get(name: string): Account | undefined };
  /** The templates by name (`ctx.templates`), or a function returning the current ones. */
  readonly templates: ReadonlyMap<string, AgentTemplate> | (() => ReadonlyMap<string, AgentTemplate>);
  /** Decides and audits each call (`ctx.authorizer`). */
  readonly authorizer: Pick<Authorizer, 'require'>;
  /** Records the `agent.exec` and `agent.exec_exit` events (`ctx.emit`). */
  readonly emit: (event: WarrenEvent) => void;
  /** Whether the agent has a running instance now (its quota'd home is attached only then). */
  readonly isRunning: (name: string) => boolean;
  /** Warren's state directory (absolute): transfer files go to `run/computer/<pid>/<n>`. */
  readonly stateDir: string;
  /** Most sandboxes running at once; later calls wait their turn. Default 4. */
  readonly maxConcurrent?: number;
  /** Grace between SIGTERM and SIGKILL when a command reaches its time limit, in ms. Default 2000. */
  readonly killGraceMs?: number;
  readonly logger: Logger;
}

/**
 * Makes the computer of every agent of a supervisor. Does no I/O until a call.
 * Wiring: `createAgentComputer({ runtime: ctx.runtime, accounts: ctx.accounts, templates: ctx.templates,
 * authorizer: ctx.authorizer, emit: (e) => ctx.emit(e), isRunning: (n) => lifecycle.handles.has(n),
 * stateDir: ctx.config.stateDir, logger: ctx.log })`.
 * @throws {RangeError} if `maxConcurrent` is not an integer ≥ 1.
 */
export function createAgentComputer(options: AgentComputerOptions): AgentComputer {
  return new Computer(options);
}

/** The end of one sandboxed program: its exit, output and whether its time ran out. */
interface Ended {
  readonly exit: AgentExit;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly truncated: boolean;
  readonly timedOut: boolean;
  readonly durationMs: number;
}

class Computer implements AgentComputer {
  private closed = false;
  /** Commands running now. */
  private readonly running = new Set<AgentProcess>();
  /** Calls waiting for a free place (at most `maxConcurrent` run at once). */
  private readonly waiting: (() => void)[] = [];
  private active = 0;
  private readonly maxConcurrent: number;
  private sequence = 0;
  private readonly log: Logger;

  constructor(private readonly options: AgentComputerOptions) {
    this.log = options.logger.child({ component: 'computer' });
    this.maxConcurrent = options.maxConcurrent ?? 4;
    if (!Number.isInteger(this.maxConcurrent) || this.maxConcurrent < 1) throw new RangeError(`maxConcurrent must be an integer ≥ 1, got ${this.maxConcurrent}`);
  }

  async runCommand(
    agent: string,
    input: { readonly command: string; readonly cwd?: string; readonly stdin?: string; readonly timeoutMs?: number },
    principal: string,
  ): Promise<CommandResult> {
    if (typeof input.command !== 'string' || input.command.length === 0) throw new ComputerError('WARREN_COMPUTER_LIMIT', 'command must be a non-empty string');
    if (Buffer.byteLength(input.command) > MAX_COMMAND_BYTES) throw new ComputerError('WARREN_COMPUTER_LIMIT', `command is ${Buffer.byteLength(input.command)} bytes, over ${MAX_COMMAND_BYTES}`);
    const timeoutMs = input.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS) {
      throw new ComputerError('WARREN_COMPUTER_LIMIT', `timeoutMs must be an integer from 1 to ${MAX_TIMEOUT_MS}, got ${String(input.timeoutMs)}`);
    }
    const stdin = input.stdin === undefined ? undefined : Buffer.from(input.stdin, 'utf8');
    if (stdin && stdin.length > FILE_CAP_BYTES) throw new ComputerError('WARREN_COMPUTER_LIMIT', `stdin is ${stdin.length} bytes, over ${FILE_CAP_BYTES}`);
    const home = homeInSandbox(agent);
    const cwd = inHome(home, input.cwd ?? '.', 'cwd');
    const script = 'cd -- "$1" || exit 126; exec /bin/sh -c "$2" sh <"$3"';
    const ended = await this.call(agent, principal, 'run_command', ['/bin/sh', '-c', input.command], stdin, (transfer) => ({
      argv: ['/bin/sh', '-c', script, 'warren-computer', cwd, input.command, transfer ? `${TRANSFER_IN_SANDBOX}/data` : '/dev/null'],
      timeoutMs,
      outputCap: OUTPUT_CAP_BYTES,
    }));
    const { exit } = ended;
    return {
      exitCode: exit.kind === 'succeeded' || exit.kind === 'failed' ? exit.exitCode : null,
      signal: exit.kind === 'signaled' ? exit.signal : null,
      stdout: ended.stdout.toString('utf8'),
      stderr: ended.stderr.toString('utf8'),
      truncated: ended.truncated,
      timedOut: ended.timedOut,
      reason: exit.kind === 'succeeded' || exit.kind === 'failed' || exit.kind === 'signaled' ? null : describeExit(exit),
      durationMs: ended.durationMs,
    };
  }

  async readFile(agent: string, input: { readonly path: string; readonly maxBytes?: number }, principal: string): Promise<FileContent> {
    const maxBytes = input.maxBytes ?? FILE_CAP_BYTES;
    if (!Number.isInteger(maxBytes) || maxBytes < 0 || maxBytes > FILE_CAP_BYTES) {
      throw new ComputerError('WARREN_COMPUTER_LIMIT', `maxBytes must be an integer from 0 to ${FILE_CAP_BYTES}, got ${String(input.maxBytes)}`);
    }
    const path = inHome(homeInSandbox(agent), input.path, 'path');
    const result = await this.fileOp<{ path: string; sizeBytes: number; truncated: boolean; data: string }>(agent, principal, 'read_file', { op: 'read', path, maxBytes });
    const bytes = Buffer.from(result.data, 'base64');
    const text = utf8(bytes);
    return {
      path: result.path,
      content: text ?? result.data,
      encoding: text === undefined ? 'base64' : 'utf8',
      sizeBytes: result.sizeBytes,
      truncated: result.truncated,
    };
  }

  async writeFile(
    agent: string,
    input: { readonly path: string; readonly content: string; readonly encoding?: 'utf8' | 'base64'; readonly append?: boolean },
    principal: string,
  ): Promise<{ readonly path: string; readonly sizeBytes: number }> {
    const encoding = input.encoding ?? 'utf8';
    if (encoding !== 'utf8' && encoding !== 'base64') throw new ComputerError('WARREN_COMPUTER_LIMIT', `encoding must be utf8 or base64, got ${JSON.stringify(encoding)}`);
    if (typeof input.content !== 'string') throw new ComputerError('WARREN_COMPUTER_LIMIT', 'content must be a string');
    if (encoding === 'base64' && !/^[A-Za-z0-9+/]*={0,2}$/.test(input.content.replace(/\s+/g, ''))) {
      throw new ComputerError('WARREN_COMPUTER_LIMIT', 'content is not valid base64');
    }
    // Checked before decoding: base64 of 1 MiB is 4/3 as long.
    if (input.content.length > FILE_CAP_BYTES * 2) throw new ComputerError('WARREN_COMPUTER_LIMIT', `content is over ${FILE_CAP_BYTES} bytes`);
    const bytes = Buffer.from(input.content, encoding);
    if (bytes.length > FILE_CAP_BYTES) throw new ComputerError('WARREN_COMPUTER_LIMIT', `content is ${bytes.length} bytes, over ${FILE_CAP_BYTES}`);
    const path = inHome(homeInSandbox(agent), input.path, 'path');
    return this.fileOp<{ path: string; sizeBytes: number }>(agent, principal, 'write_file', { op: 'write', path, contentPath: `${TRANSFER_IN_SANDBOX}/data`, append: input.append === true }, bytes);
  }

  async listDirectory(agent: string, input: { readonly path?: string }, principal: string): Promise<{ readonly path: string; readonly entries: readonly DirectoryEntry[]; readonly truncated: boolean }> {
    const path = inHome(homeInSandbox(agent), input.path ?? '.', 'path');
    return this.fileOp(agent, principal, 'list_directory', { op: 'list', path, maxEntries: MAX_ENTRIES });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const wake of this.waiting.splice(0)) wake();
    await Promise.all([...this.running].map((command) => command.stop(0)));
  }

  /** Runs the helper program for one file operation and returns its JSON answer. */
  private async fileOp<T>(agent: string, principal: string, operation: string, request: { readonly op: string; readonly path: string } & Record<string, unknown>, data?: Buffer): Promise<T> {
    const ended = await this.call(agent, principal, operation, [operation, request.path], data, () => ({
      argv: ['/usr/bin/node', '-e', COMPUTER_HELPER_SOURCE, JSON.stringify(request)],
      timeoutMs: FILE_OP_TIMEOUT_MS,
      // base64 of 1 MiB and its JSON, or 10,000 entries.
      outputCap: 4 * FILE_CAP_BYTES,
    }));
    const { exit } = ended;
    let answer: (T & { error?: undefined }) | { error: 'path' | 'file'; code?: string | null; message: string } | undefined;
    try {
      answer = JSON.parse(ended.stdout.toString('utf8')) as typeof answer;
    } catch {
      answer = undefined;
    }
    if (answer?.error === 'path') throw new ComputerError('WARREN_COMPUTER_PATH', `${operation} on ${agent}: ${answer.message}`);
    if (answer?.error === 'file') throw new ComputerError('WARREN_COMPUTER_FILE', `${operation} on ${agent}: ${answer.message}`, answer.code ?? null);
    if (exit.kind !== 'succeeded' || answer === undefined || ended.truncated) {
      const why = ended.timedOut ? `timed out after ${FILE_OP_TIMEOUT_MS} ms` : describeExit(exit);
      throw new ComputerError('WARREN_COMPUTER_FILE', `${operation} on ${agent} failed: ${why}${ended.stderr.length > 0 ? `: ${ended.stderr.toString('utf8').slice(0, 500)}` : ''}`);
    }
    return answer as T;
  }

  /**
   * Decides, audits and runs one program in the agent's sandbox, in turn with the other calls.
   * `data`, when given, is written to a transfer file owned by the agent and bound read-only at
   * {@link TRANSFER_IN_SANDBOX}`/data`.
   */
  private call(
    agent: string,
    principal: string,
    operation: string,
    auditArgv: readonly string[],
    data: Buffer | undefined,
    plan: (transfer: boolean) => { argv: readonly string[]; timeoutMs: number; outputCap: number },
  ): Promise<Ended> {
    if (this.closed) return Promise.reject(new ComputerError('WARREN_COMPUTER_AGENT', `the computer of ${agent} is closed (the supervisor is stopping)`));
    const { spec, home } = this.agentSpec(agent);
    const object = `agent:${agent}`;
    this.options.authorizer.require({ principal, object, action: 'exec', context: { operation } }, `policy denies ${principal} exec into ${agent}`);
    if (home === 'detached') {
      return Promise.reject(new ComputerError('WARREN_COMPUTER_AGENT', `${agent} is not running and its home (an image with a quota) is attached only while it runs: wake or start it first`));
    }
    return this.inTurn(() => this.runInSandbox(agent, spec, principal, object, auditArgv, data, plan));
  }

  /** Runs `fn` once fewer than `maxConcurrent` calls run. */
  private async inTurn<T>(fn: () => Promise<T>): Promise<T> {
    while (this.active >= this.maxConcurrent && !this.closed) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active += 1;
    try {
      return await fn();
    } finally {
      this.active -= 1;
      this.waiting.shift()?.();
    }
  }

  private async runInSandbox(
    agent: string,
    base: AgentSpec,
    principal: string,
    object: string,
    auditArgv: readonly string[],
    data: Buffer | undefined,
    plan: (transfer: boolean) => { argv: readonly string[]; timeoutMs: number; outputCap: number },
  ): Promise<Ended> {
    if (this.closed) throw new ComputerError('WARREN_COMPUTER_AGENT', `the computer of ${agent} is closed (the supervisor is stopping)`);
    const { argv, timeoutMs, outputCap } = plan(data !== undefined);
    const transferDir = data === undefined ? undefined : await this.makeTransfer(base, data);
    try {
      const spec: AgentSpec = transferDir === undefined ? base : { ...base, mounts: [...(base.mounts ?? []), { source: transferDir, target: TRANSFER_IN_SANDBOX }] };
      const stdout = new CappedSink(outputCap);
      const stderr = new CappedSink(outputCap);
      const started = performance.now();
      let command: AgentProcess;
      try {
        command = await this.options.runtime.exec(spec, argv, { stdout, stderr });
      } catch (error) {
        throw new ComputerError('WARREN_COMPUTER_AGENT', `cannot start a sandbox for ${agent}: ${(error as Error).message}`);
      }
      this.running.add(command);
      const shownArgv = auditArgv.map((arg) => (arg.length > 1000 ? `${arg.slice(0, 1000)}…` : arg));
      this.options.emit({ actor: principal, action: 'agent.exec', object, details: { argv: shownArgv, sandboxPid: command.pid } });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        command.stop(this.options.killGraceMs ?? 2000).catch((error: unknown) => this.log.warn({ err: error, agent }, 'cannot stop a command at its time limit'));
      }, timeoutMs);
      const exit = await command.exited;
      clearTimeout(timer);
      this.running.delete(command);
      const durationMs = Math.round(performance.now() - started);
      this.options.emit({ actor: principal, action: 'agent.exec_exit', object, details: { exit, argv: shownArgv } });
      if (exit.kind === 'setup_error') throw new ComputerError('WARREN_COMPUTER_AGENT', `cannot start a sandbox for ${agent}: ${exit.message}`);
      return { exit, stdout: stdout.bytes(), stderr: stderr.bytes(), truncated: stdout.truncated || stderr.truncated, timedOut, durationMs };
    } finally {
      if (transferDir !== undefined) await rm(transferDir, { recursive: true, force: true });
    }
  }

  /** The agent's spec, and whether its home can be used now. */
  private agentSpec(agent: string): { spec: AgentSpec; home: 'attached' | 'detached' } {
    const account = this.options.accounts.get(agent);
    if (!account) throw new ComputerError('WARREN_COMPUTER_AGENT', `no agent named ${JSON.stringify(agent)}`);
    const templates = typeof this.options.templates === 'function' ? this.options.templates() : this.options.templates;
    const template = templates.get(account.template);
    if (!template) throw new ComputerError('WARREN_COMPUTER_AGENT', `${agent}'s template ${account.template} is not loaded`);
    const detached = template.homeQuotaBytes !== null && !this.options.isRunning(agent);
    return { spec: agentSpecOf(account, template), home: detached ? 'detached' : 'attached' };
  }

  /**
   * Writes `data` to `<stateDir>/run/computer/<pid>/<n>/data`, directory and file owned by the
   * agent (modes 0700 and 0600), after removing what a killed supervisor left there.
   */
  private async makeTransfer(spec: AgentSpec, data: Buffer): Promise<string> {
    const root = join(this.options.stateDir, 'run', 'computer');
    await this.removeLeftovers(root);
    this.sequence += 1;
    const dir = join(root, String(process.pid), String(this.sequence));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      await writeFile(join(dir, 'data'), data, { mode: 0o600 });
      await chown(join(dir, 'data'), spec.uid, spec.gid);
      await chown(dir, spec.uid, spec.gid);
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
    return dir;
  }

  private async removeLeftovers(root: string): Promise<void> {
    let entries: string[];
    try {
      entries = await readdir(root);
    } catch {
      return;
    }
    for (const entry of entries) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid || processExists(Number(entry))) continue;
      await rm(join(root, entry), { recursive: true, force: true }).catch((error: unknown) => this.log.warn({ err: error, path: join(root, entry) }, 'cannot remove a leftover transfer directory'));
    }
  }
}

/**
 * `given` (relative to the home, or absolute) as an absolute path inside the sandbox.
 * @throws {ComputerError} `WARREN_COMPUTER_PATH` when it lies outside `home` before any symbolic link
 *   is followed (`../`, another absolute path); links are resolved inside the sandbox.
 */
function inHome(home: string, given: string, field: string): string {
  if (typeof given !== 'string' || given.length === 0) throw new ComputerError('WARREN_COMPUTER_PATH', `${field} must be a non-empty string`);
  if (given.includes('\0')) throw new ComputerError('WARREN_COMPUTER_PATH', `${field} holds a NUL byte`);
  if (given.length > MAX_PATH_LENGTH) throw new ComputerError('WARREN_COMPUTER_LIMIT', `${field} is ${given.length} characters long, over ${MAX_PATH_LENGTH}`);
  const resolved = posix.resolve(home, given);
  if (resolved !== home && !resolved.startsWith(`${home}/`)) throw new ComputerError('WARREN_COMPUTER_PATH', `${field} ${JSON.stringify(given)} is outside the home ${home}`);
  return resolved;
}

/** `bytes` as text when they are valid UTF-8, else undefined. */
function utf8(bytes: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** Keeps the first `cap` bytes written and drops the rest (never pushes back). */
class CappedSink extends Writable {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  truncated = false;

  constructor(private readonly cap: number) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const room = this.cap - this.kept;
    if (chunk.length > room) this.truncated = true;
    if (room > 0) {
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      this.chunks.push(part);
      this.kept += part.length;
    }
    callback();
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

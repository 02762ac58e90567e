import { spawn } from 'node:child_process';
import { closeSync, constants as fsConstants, existsSync, fchownSync, lchownSync, lstatSync, mkdirSync, openSync, readdirSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Readable } from 'node:stream';
import type { SpawnedProcess, SpawnProcessOptions } from '@warren/spawn';
import { agentInvocation, loadSession, saveSession, LLM_PORT_IN_SANDBOX, type AgentRuntime } from './agent-cli.js';
import { createLineMapper, describeAgentEvent, mapAgentLine, truncateAgentEvent, type AgentEvent } from './agent-events.js';
import { OutputCapture, parseProgressLine, parseSendLine } from './output.js';
import { formatGitWorkspaceSummary, gitIdentityEnv, prepareGitWorkspace, summarizeGitWorkspace, type GitWorkspace } from './workspace.js';
import { closeWriteEnds, openTaskPipes } from './pipes.js';
import { AGENT_SDK_BIN_IN_SANDBOX, BUS_SOCKET_PATH, TaskOutcome, type ResultFrame, type RunSpanFrame, type TaskFrame } from './protocol.js';
import { formatTraceparent, newSpanId, parseParentContext } from './trace-context.js';

/**
 * How tasks are run (the `WARREN_RUNTIME` variable, JSON):
 * - `{"kind":"shell"}`: the task's `command` with `/bin/sh -c`.
 * - `{"kind":"exec","command":["/usr/bin/node","/opt/warren/agents/bin/report.mjs"]}`: that argv
 *   for every task (it reads the task from `$WARREN_TASK_FILE`).
 * - `{"kind":"claude-code"|"codex"|"opencode",…}` and `{"kind":"llm",…}` ({@link AgentRuntime}):
 *   a coding-agent CLI, or Warren's own loop, run headless on the task's prompt; its JSON stream
 *   becomes {@link AgentEvent}s (see `agent-cli.ts`).
 */
export type Runtime = { readonly kind: 'shell' } | { readonly kind: 'exec'; readonly command: readonly string[] } | AgentRuntime;

/** Options of {@link startExecution}. */
export interface ExecutionOptions {
  readonly task: TaskFrame;
  readonly runtime: Runtime;
  /** The agent's home on this side (the workspace is `<home>/work/<taskId>`). */
  readonly home: string;
  /** The base environment of the task's process (WARREN_TASK_* are added). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Called for each `::send <agent>::` line of stdout. */
  readonly onSend?: (to: string, body: unknown) => void;
  /** Called for each `::progress::` line of stdout. */
  readonly onProgress: (message: string, percent: number | undefined) => void;
  /**
   * Agent runtimes: called for each event of the run's stream, cut to a frame's size, with its
   * one-line description; also for the runner's own notes (a resume that failed).
   */
  readonly onEvent?: (event: AgentEvent, message: string) => void;
  /** Agent runtimes: the LLM forwarder's URL, default `http://127.0.0.1:4141`. */
  readonly llmBaseUrl?: string;
  /**
   * The agent's name (from `welcome`): the author of git commits (`GIT_AUTHOR_*`/`GIT_COMMITTER_*`
   * for the task) and the middle of a git workspace's branch. A task with a `repository` needs it.
   */
  readonly agent?: string;
  /** Limit of each git command of a git workspace, in ms. Default 120 000. */
  readonly gitTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL of the process group on timeout or cancel, in ms. Default 2000. */
  readonly killGraceMs?: number;
  /** Cap of `output.log` in the workspace, in bytes. Default 8 MiB. */
  readonly outputMaxBytes?: number;
  /** The directory of the `warren-bus` command, put first on the task's PATH when it exists. Default {@link AGENT_SDK_BIN_IN_SANDBOX}. */
  readonly agentSdkBinDir?: string;
  /** Whether `agentSdkBinDir` exists where the task's process runs. Default: whether it exists here. */
  readonly agentSdkBinPresent?: boolean;
  /**
   * Starts the task's process instead of a child of this process (shell and exec runtimes only):
   * the host runs the execution while the process runs in its own sandbox. Default: `spawn` in a
   * new process group.
   */
  readonly spawnProcess?: SpawnTaskProcess;
  /** The home as the task's process sees it (its WARREN_WORKSPACE, WARREN_TASK_FILE and cwd). Default `home`. */
  readonly processHome?: string;
  /**
   * Set when this process is not the agent (root on the host): the workspace, `task.json` and
   * `output.log` are made without following a symlink the agent planted (`<home>/work` and the
   * workspace must be real directories; the files are created with O_CREAT | O_EXCL | O_NOFOLLOW
   * after removing what is there) and owned by `uid`/`gid`; `output.log` is written only through
   * the descriptor opened before the process starts; the outputs are listed only when the
   * workspace is still a real directory.
   */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

/** What {@link SpawnTaskProcess} is asked to start. */
export interface TaskProcessRequest {
  readonly argv: readonly string[];
  /** The whole environment of the process. */
  readonly env: Readonly<Record<string, string>>;
  /** Its working directory, as the process sees it. */
  readonly cwd: string;
  /** Receives every chunk of its stdout (`stdout: true`) and stderr, in order. */
  readonly onOutput: (chunk: Buffer, stdout: boolean) => void;
}

/** A task's process started by a {@link SpawnTaskProcess}. */
export interface TaskProcess {
  /** Settles once it and every process it started have ended and all its output was passed to `onOutput`; never rejects. */
  readonly ended: Promise<{ readonly code: number | null; readonly signal: string | null; readonly error?: Error }>;
  /** SIGTERM to every process of the task, SIGKILL to all after `graceMs`. */
  terminate(graceMs: number): void;
  /** SIGKILL to every process of the task at once (also during a `terminate`). */
  kill(): void;
}

/**
 * Starts a task's process elsewhere than as a child of this process (e.g. as the only process of a
 * sandbox). Resolves once it runs.
 * @throws when it cannot be started (the execution fails with `cannot start <program>: <message>`).
 */
export type SpawnTaskProcess = (request: TaskProcessRequest) => Promise<TaskProcess>;

/**
 * The task's bus variables: `WARREN_BUS_SOCKET` (the runner's own when set, else
 * {@link BUS_SOCKET_PATH}) and, when `sdkBinDir` exists, `PATH` with it first (so that
 * `warren-bus` runs the SDK's command).
 * @param env the task's environment so far (its PATH is kept after the SDK's directory; default `/usr/local/bin:/usr/bin:/bin`).
 */
export function busEnvironment(
  env: Readonly<Record<string, string | undefined>>,
  sdkBinDir: string = AGENT_SDK_BIN_IN_SANDBOX,
  sdkBinPresent: boolean = existsSync(sdkBinDir),
): Record<string, string> {
  const out: Record<string, string> = { WARREN_BUS_SOCKET: env.WARREN_BUS_SOCKET || BUS_SOCKET_PATH };
  if (sdkBinPresent) {
    const rest = (env.PATH || '/usr/local/bin:/usr/bin:/bin').split(':').filter((dir) => dir !== '' && dir !== sdkBinDir);
    out.PATH = [sdkBinDir, ...rest].join(':');
  }
  return out;
}

/** The most output files a result lists. */
export const MAX_OUTPUTS = 200;
/** The longest summary a result carries, in characters. */
export const MAX_SUMMARY_CHARS = 2000;
const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Whether `taskId` is safe as one path segment: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 128 chars. */
export function isSafeTaskId(taskId: unknown): taskId is string {
  return typeof taskId === 'string' && TASK_ID.test(taskId);
}

/** One running execution of a task; see {@link startExecution}. */
export interface Execution {
  readonly taskId: string;
  readonly attempt: number;
  /** Resolves with the result frame once the process and its group are gone. Never rejects. */
  readonly result: Promise<ResultFrame>;
  /** SIGTERM to the process group, SIGKILL after the grace; the outcome becomes `cancelled`. */
  cancel(reason: string): void;
  /** SIGKILL to the process group at once (the channel is gone); outcome `cancelled`. */
  kill(): void;
}

/** Lists files under `dir` (not following symlinks) relative to `home`, without `skip`, at most `max`. */
function listOutputs(dir: string, home: string, skip: string, max: number): string[] {
  const found: string[] = [];
  const visit = (current: string): void => {
    let entries;
    try {
      entries = readdirSync(current, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (found.length >= max) return;
      const path = join(current, entry.name);
      if (entry.isDirectory()) visit(path);
      else if (path !== skip) found.push(relative(home, path));
    }
  };
  visit(dir);
  return found;
}

function summarize(head: string, tail: string): string {
  const text = tail.trim();
  if (!text) return head.slice(0, MAX_SUMMARY_CHARS);
  if (!head) return text.slice(-MAX_SUMMARY_CHARS);
  const room = MAX_SUMMARY_CHARS - head.length - 1;
  return room > 0 ? `${head}\n${text.slice(-room)}` : head.slice(0, MAX_SUMMARY_CHARS);
}

/** The longest stdout line of an agent runtime that is parsed whole, in characters (longer: cut, then `raw`). */
const AGENT_LINE_CHARS = 1024 * 1024;

interface ProcessEnd {
  readonly code: number | null;
  readonly signal: string | null;
  readonly error?: Error;
}

function lastLine(text: string): string | undefined {
  const lines = text.trim().split('\n');
  const line = lines[lines.length - 1]?.trim();
  return line ? line.slice(0, 300) : undefined;
}

/** What one run of an agent program showed: its session, whether it acted, its final event, its last error, its last events. */
class AgentRun {
  sessionId: string | undefined;
  final: Extract<AgentEvent, { kind: 'final' }> | undefined;
  lastError: string | undefined;
  /** Whether the agent did anything (text, a tool call, an answer) rather than failing at once. */
  acted = false;
  private readonly recent: string[] = [];
  private readonly mapper;

  constructor(private readonly kind: AgentRuntime['kind']) {
    this.mapper = createLineMapper(kind);
  }

  /** Maps one stdout line and records what it shows. */
  take(line: string): AgentEvent[] {
    const events = mapAgentLine(this.kind, this.mapper, line);
    for (const event of events) {
      if (event.kind === 'session') this.sessionId = event.sessionId;
      else if (event.kind === 'error') this.lastError = event.message;
      else if (event.kind === 'final') {
        this.final = event;
        if (!event.isError) this.acted = true;
      } else if (event.kind === 'text' || event.kind === 'tool_call') this.acted = true;
      if (event.kind !== 'usage' && event.kind !== 'session') {
        this.recent.push(describeAgentEvent(event));
        if (this.recent.length > 8) this.recent.shift();
      }
    }
    return events;
  }

  /** A failure's summary: how it ended, the final text or last error, then the last events seen. */
  summary(how: string, fallback?: string): string {
    const parts = [how];
    const reason = this.final?.isError ? this.final.text : this.lastError;
    if (reason) parts.push(reason);
    else if (fallback && this.recent.length === 0) parts.push(fallback);
    if (this.recent.length > 0) parts.push(`last events:\n${this.recent.join('\n')}`);
    return parts.join('\n').slice(0, MAX_SUMMARY_CHARS);
  }
}

/** Whether `path` is a directory (not a symlink to one) owned by `owner.uid`. */
function isRealDir(path: string, owner: { readonly uid: number }): boolean {
  const info = lstatSync(path, { throwIfNoEntry: false });
  return info !== undefined && info.isDirectory() && info.uid === owner.uid;
}

/**
 * Makes directory `path` (mode 0700) owned by `owner` if missing; refuses one that is not a real
 * directory of `owner` (a symlink the agent planted is never followed).
 * @throws an Error naming the path.
 */
function makeOwnedDir(path: string, owner: { readonly uid: number; readonly gid: number }): void {
  try {
    mkdirSync(path, { mode: 0o700 });
    lchownSync(path, owner.uid, owner.gid);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  if (!isRealDir(path, owner)) throw new Error(`${path} is not a directory owned by uid ${owner.uid} (a symlink?)`);
}

/**
 * Creates `path` afresh (what is there is removed first, a symlink as a link) with
 * O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600, owned by `owner`. @returns its descriptor, open for appending.
 */
function openOwnedFile(path: string, owner: { readonly uid: number; readonly gid: number }): number {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  try {
    fchownSync(fd, owner.uid, owner.gid);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  return fd;
}

/** @warren/spawn, loaded once: null when it cannot be imported (see {@link spawnModule}). */
let spawnLoad: Promise<typeof import('@warren/spawn') | null> | undefined;

/**
 * @warren/spawn (posix_spawn without forking the runner), or null when it cannot be imported: the
 * bundle (`dist/runner.cjs`) has it inside, but `dist/main.js` started in a sandbox sees no
 * node_modules, and then the task's process is started with child_process as before.
 */
function spawnModule(): Promise<typeof import('@warren/spawn') | null> {
  spawnLoad ??= import('@warren/spawn').catch(() => null);
  return spawnLoad;
}

/** child_process.spawn with @warren/spawn's options (its fallback when @warren/spawn cannot be imported). */
function spawnWithChildProcess(file: string, args: readonly string[], options: SpawnProcessOptions): SpawnedProcess {
  return spawn(file, [...args], { env: { ...options.env }, cwd: options.cwd, detached: options.detached === true, stdio: [...(options.stdio ?? [])] }) as unknown as SpawnedProcess;
}

/** Writes `text` to `path` as {@link openOwnedFile} creates it. */
function writeOwnedFile(path: string, text: string, owner: { readonly uid: number; readonly gid: number }): void {
  const fd = openOwnedFile(path, owner);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

/**
 * Runs one execution of `task`: makes the workspace `<home>/work/<taskId>`, writes `task.json`
 * there (the task frame), starts the process in its own process group with cwd = workspace and
 * env + WARREN_TASK_ID, WARREN_TASK_ATTEMPT, WARREN_TASK_TITLE, WARREN_TASK_FILE, WARREN_WORKSPACE,
 * WARREN_TASK_COMMAND (if the task has one) and the bus ({@link busEnvironment}: WARREN_BUS_SOCKET,
 * and `warren-bus` first on PATH); when the task came with a valid `traceparent`,
 * also TRACEPARENT naming the run's own span (a child of the task's, id from `crypto.randomBytes`)
 * and TRACESTATE (if the task has one), and the result carries that span (`span`) for the
 * supervisor to export. stdout and stderr go to `output.log` there
 * (capped), and their last 2000 characters to the summary; they are kernel pipes, so `/dev/stdout`
 * and `/dev/stderr` can be opened. After `task.timeoutMs` the group gets
 * SIGTERM, then SIGKILL after the grace (outcome `timed_out`). When the process exits, whatever is
 * left of its group is killed. Outcome: exit 0 → `succeeded`, else `failed`. `outputs` lists the
 * workspace's files relative to `home` (without task.json, at most {@link MAX_OUTPUTS}).
 * A task with an unsafe id, or without a command under the shell runtime, fails at once.
 *
 * A task with a `repository` runs in a git worktree, `<home>/work/<taskId>` on branch
 * `warren/<agent>/<taskId>` (`prepareGitWorkspace` of `./workspace.ts`, before anything is written
 * there); when it ends, its work is committed on the branch and the summary ends with the branch
 * and the diff stat (`summarizeGitWorkspace`). The task's process gets the agent as git author and
 * committer, and `WARREN_GIT_BRANCH` and `WARREN_GIT_BASE` (the base commit).
 *
 * Agent runtimes (claude-code, codex, opencode, llm) run the program {@link agentInvocation}
 * builds; each stdout line goes through the kind's mapper (not JSON or unknown: a `raw` event)
 * to `onEvent`. The outcome is `succeeded` when the program exits 0 after a `final` event that is
 * not an error, its text the summary; else `failed`, the summary naming how it ended, the last
 * error and the last events seen. The session id the stream names is stored in
 * `<home>/.warren/sessions.json` and resumed by the next task of the same kind; when a resume
 * fails before the agent did anything, the task runs again in a new session, saying so in an
 * `error` event.
 */
export function startExecution(options: ExecutionOptions): Execution {
  const { task, runtime, home } = options;
  const startedMs = Date.now();
  // The run's span: a child of the span that published the assignment; the task's process gets
  // TRACEPARENT naming it, so a program in the agent can join the trace.
  const parent = parseParentContext(task.traceparent);
  const runSpanId = parent ? newSpanId() : undefined;
  const killGraceMs = options.killGraceMs ?? 2000;
  // The running process: how to stop it (SIGTERM then SIGKILL after the grace, or SIGKILL at once).
  let child: { stop(immediate: boolean): void } | undefined;
  let stopReason: { outcome: TaskOutcome; text: string } | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let exited = false;

  const finish = (outcome: TaskOutcome, summary: string, exitCode: number | null, signal: string | null, outputs: string[] = []): ResultFrame => {
    const endedMs = Date.now();
    const span: RunSpanFrame | undefined =
      parent && runSpanId
        ? {
            name: 'agent.run',
            traceId: parent.traceId,
            spanId: runSpanId,
            parentSpanId: parent.spanId,
            startMs: startedMs,
            endMs: endedMs,
            status: outcome === TaskOutcome.succeeded ? 'ok' : 'error',
            ...(outcome === TaskOutcome.succeeded ? {} : { message: (summary.split('\n')[0] ?? '').slice(0, 200) }),
          }
        : undefined;
    return {
      type: 'result',
      taskId: task.taskId,
      attempt: task.attempt,
      outcome,
      exitCode,
      signal,
      summary: summary.slice(0, MAX_SUMMARY_CHARS),
      outputs,
      durationMs: endedMs - startedMs,
      ...(span ? { span } : {}),
    };
  };

  // While a first run that resumed a session ends, a second may follow: a stop then applies to it.
  let mayRunAgain = false;
  const terminate = (outcome: TaskOutcome, text: string, immediate: boolean): void => {
    // Before the process exists (its git workspace is being made) or between two runs, the stop waits for it.
    if (!child || (exited && mayRunAgain)) stopReason ??= { outcome, text };
    if (exited || !child) return;
    stopReason ??= { outcome, text };
    child.stop(immediate);
  };

  const result = (async (): Promise<ResultFrame> => {
    if (!isSafeTaskId(task.taskId)) {
      return finish(TaskOutcome.failed, `invalid task id ${JSON.stringify(task.taskId)}: it must match ${TASK_ID.source}`, null, null);
    }
    const agent = runtime.kind === 'shell' || runtime.kind === 'exec' ? null : runtime;
    let argv: readonly string[];
    if (runtime.kind === 'shell') {
      if (typeof task.command !== 'string' || task.command.trim() === '') {
        return finish(TaskOutcome.failed, `task ${task.taskId} has no command: the shell runtime runs the task's \`command\` field`, null, null);
      }
      argv = ['/bin/sh', '-c', task.command];
    } else if (runtime.kind === 'exec') {
      argv = runtime.command;
    } else {
      argv = [];
    }
    const workspace = join(home, 'work', task.taskId);
    const taskFile = join(workspace, 'task.json');
    // The same places as the task's process sees them.
    const processWorkspace = join(options.processHome ?? home, 'work', task.taskId);
    const processTaskFile = join(processWorkspace, 'task.json');
    const { owner } = options;
    // A task on a git repository works in its own worktree (made before anything else is written there).
    let git: GitWorkspace | undefined;
    const repository = task.repository;
    if (repository !== undefined) {
      if (typeof repository?.mirror !== 'string' || options.agent === undefined) {
        return finish(TaskOutcome.failed, `cannot prepare the git workspace of ${task.taskId}: ${options.agent === undefined ? 'the agent has no name yet' : "'repository.mirror' must be a path"}`, null, null);
      }
      try {
        git = await prepareGitWorkspace({
          mirror: repository.mirror,
          home,
          agent: options.agent,
          taskId: task.taskId,
          ...(typeof repository.base === 'string' ? { base: repository.base } : {}),
          timeoutMs: options.gitTimeoutMs ?? 120_000,
        });
      } catch (error) {
        return finish(TaskOutcome.failed, `cannot prepare the git workspace of ${task.taskId}: ${(error as Error).message}`, null, null);
      }
    }
    let onLine: (line: string) => void = () => undefined;
    let output: OutputCapture;
    try {
      const taskText = `${JSON.stringify(task, null, 2)}\n`;
      let outputTarget: string | number = join(workspace, 'output.log');
      if (owner) {
        makeOwnedDir(join(home, 'work'), owner);
        makeOwnedDir(workspace, owner);
        writeOwnedFile(taskFile, taskText, owner);
        outputTarget = openOwnedFile(join(workspace, 'output.log'), owner);
      } else {
        mkdirSync(workspace, { recursive: true, mode: 0o700 });
        writeFileSync(taskFile, taskText, { mode: 0o600 });
      }
      // Agent streams carry long JSON lines (claude-code's first one lists every tool).
      output = new OutputCapture(outputTarget, options.outputMaxBytes ?? 8 * 1024 * 1024, (line) => onLine(line), 2000, agent ? AGENT_LINE_CHARS : 4096);
    } catch (error) {
      return finish(TaskOutcome.failed, `cannot prepare workspace ${workspace}: ${(error as Error).message}`, null, null);
    }
    const baseEnv: Record<string, string> = {};
    for (const [key, value] of Object.entries(options.env)) if (value !== undefined) baseEnv[key] = value;
    Object.assign(baseEnv, {
      WARREN_TASK_ID: task.taskId,
      WARREN_TASK_ATTEMPT: String(task.attempt),
      WARREN_TASK_TITLE: task.title,
      WARREN_TASK_FILE: processTaskFile,
      WARREN_WORKSPACE: processWorkspace,
      // The runner's own $PWD would name its start directory; programs that read it see their cwd.
      PWD: processWorkspace,
    });
    Object.assign(baseEnv, busEnvironment(baseEnv, options.agentSdkBinDir, options.agentSdkBinPresent));
    if (typeof task.command === 'string') baseEnv.WARREN_TASK_COMMAND = task.command;
    if (options.agent !== undefined) Object.assign(baseEnv, gitIdentityEnv(options.agent));
    if (git) Object.assign(baseEnv, { WARREN_GIT_BRANCH: git.branch, WARREN_GIT_BASE: git.baseCommit });
    // Only this execution's trace context: never one the runner itself inherited.
    delete baseEnv.TRACEPARENT;
    delete baseEnv.TRACESTATE;
    if (parent && runSpanId) {
      baseEnv.TRACEPARENT = formatTraceparent(parent.traceId, runSpanId, parent.flags);
      if (typeof task.tracestate === 'string' && task.tracestate.trim() !== '') baseEnv.TRACESTATE = task.tracestate;
    }

    const timeoutMs = task.timeoutMs;
    const timer =
      typeof timeoutMs === 'number' && timeoutMs > 0
        ? setTimeout(() => terminate(TaskOutcome.timedOut, `timed out after ${timeoutMs} ms`, false), Math.min(timeoutMs, 2 ** 31 - 1))
        : undefined;

    // Runs one process to its end (and its group's), feeding its stdout lines to onLine.
    const runProcess = async (runArgv: readonly string[], env: Record<string, string>, stdin?: string): Promise<ProcessEnd> => {
      if (options.spawnProcess) return runElsewhere(options.spawnProcess, runArgv, env);
      const [program, ...args] = runArgv;
      // Kernel pipes, not Node's socket pairs, so that the task can open /dev/stdout and /dev/stderr:
      // @warren/spawn makes them itself for 'pipe' (pipe2, owned by this uid, as the task is);
      // child_process (its fallback, and the spawn when @warren/spawn is not there) would make
      // sockets, so FIFOs are made for it. posix_spawn, not a fork of the runner: a fork copies the
      // runner's page tables for every task's process.
      const spawner = await spawnModule();
      const pipes = spawner?.spawnImplementation() === 'posix_spawn' ? null : openTaskPipes(2);
      let proc: SpawnedProcess;
      try {
        proc = (spawner?.spawnProcess ?? spawnWithChildProcess)(program!, args, {
          cwd: workspace,
          env,
          detached: true,
          stdio: [stdin === undefined ? 'ignore' : 'pipe', pipes?.[0]!.writeFd ?? 'pipe', pipes?.[1]!.writeFd ?? 'pipe'],
        });
      } finally {
        if (pipes) closeWriteEnds(pipes);
      }
      if (stdin !== undefined && proc.stdin) {
        // A program that exits without reading its input: EPIPE is not the task's failure.
        proc.stdin.on('error', () => undefined);
        proc.stdin.end(stdin);
      }
      exited = false;
      const pid = proc.pid;
      child = {
        stop: (immediate) => {
          if (!pid) return;
          if (immediate) {
            signalGroup(pid, 'SIGKILL');
            return;
          }
          signalGroup(pid, 'SIGTERM');
          killTimer ??= setTimeout(() => signalGroup(pid, 'SIGKILL'), killGraceMs);
        },
      };
      const streams: Readable[] = pipes ? pipes.map((pipe) => pipe.reader) : [proc.stdout!, proc.stderr!];
      const streamsClosed = Promise.all(
        streams.map(
          (stream, i) =>
            new Promise<void>((resolve) => {
              stream.on('data', (chunk: Buffer) => output.push(chunk, i === 0));
              stream.once('close', resolve);
            }),
        ),
      );
      const ended = new Promise<ProcessEnd>((resolve) => {
        proc.once('error', (error) => resolve({ code: null, signal: null, error }));
        proc.once('exit', (code, signal) => resolve({ code, signal }));
      });
      // A stop asked for before the process existed applies to it now.
      if (stopReason) terminate(stopReason.outcome, stopReason.text, false);
      const end = await ended;
      exited = true;
      clearTimeout(killTimer);
      killTimer = undefined;
      // Leftovers of the group (background jobs) end with the task.
      if (proc.pid) signalGroup(proc.pid, 'SIGKILL');
      // Processes that left the group may still hold the pipes: stop waiting for them after a moment.
      let waitTimer: NodeJS.Timeout | undefined;
      await Promise.race([streamsClosed, new Promise((resolve) => (waitTimer = setTimeout(resolve, 1000)))]);
      clearTimeout(waitTimer);
      for (const stream of streams) stream.destroy();
      output.flushLine();
      return end;
    };

    // The process started by options.spawnProcess: it ends with everything it started, its output all passed on.
    const runElsewhere = async (spawnTask: SpawnTaskProcess, runArgv: readonly string[], env: Record<string, string>): Promise<ProcessEnd> => {
      let proc: TaskProcess;
      try {
        proc = await spawnTask({ argv: runArgv, env, cwd: processWorkspace, onOutput: (chunk, stdout) => output.push(chunk, stdout) });
      } catch (error) {
        return { code: null, signal: null, error: error instanceof Error ? error : new Error(String(error)) };
      }
      exited = false;
      child = { stop: (immediate) => (immediate ? proc.kill() : proc.terminate(killGraceMs)) };
      if (stopReason) terminate(stopReason.outcome, stopReason.text, false);
      const end = await proc.ended;
      exited = true;
      output.flushLine();
      return end;
    };

    // The branch and what the task changed, committed so that the branch holds the result.
    const withGit = async (result: ResultFrame): Promise<ResultFrame> => {
      if (!git) return result;
      let note: string;
      try {
        const summary = await summarizeGitWorkspace({ path: git.path, baseCommit: git.baseCommit, agent: options.agent!, taskId: task.taskId, attempt: task.attempt, timeoutMs: options.gitTimeoutMs ?? 120_000 });
        note = formatGitWorkspaceSummary(summary);
      } catch (error) {
        note = `branch ${git.branch}: cannot summarise the workspace: ${(error as Error).message}`;
      }
      note = note.slice(0, Math.floor(MAX_SUMMARY_CHARS / 2));
      const room = MAX_SUMMARY_CHARS - note.length - 2;
      return { ...result, summary: `${result.summary.slice(0, Math.max(0, room))}\n\n${note}`, durationMs: Date.now() - startedMs };
    };

    if (!agent) {
      onLine = (line) => {
        const progress = parseProgressLine(line);
        if (progress) {
          options.onProgress(progress.message, progress.percent);
          return;
        }
        const message = parseSendLine(line);
        if (message) options.onSend?.(message.to, message.body);
      };
      const end = await runProcess(argv, baseEnv);
      clearTimeout(timer);
      output.close();
      const program = argv[0];
      if (end.error) {
        return withGit(finish(TaskOutcome.failed, summarize(`cannot start ${program}: ${end.error.message}`, output.tail), null, null));
      }
      const outputs = owner && !isRealDir(workspace, owner) ? [] : listOutputs(workspace, home, taskFile, MAX_OUTPUTS);
      if (stopReason) return withGit(finish(stopReason.outcome, summarize(stopReason.text, output.tail), end.code, end.signal, outputs));
      if (end.code === 0) return withGit(finish(TaskOutcome.succeeded, summarize('', output.tail) || 'done (no output)', 0, null, outputs));
      const how = end.signal ? `killed by ${end.signal}` : `exit code ${end.code}`;
      return withGit(finish(TaskOutcome.failed, summarize(how, output.tail), end.code, end.signal, outputs));
    }

    const emit = (event: AgentEvent): void => {
      const cut = truncateAgentEvent(event);
      options.onEvent?.(cut, describeAgentEvent(cut));
    };
    const llmBaseUrl = options.llmBaseUrl ?? `http://127.0.0.1:${LLM_PORT_IN_SANDBOX}`;
    const stored = loadSession(home, agent.kind);
    let resume = stored?.sessionId;
    // opencode 1.18 runs a resumed session in the directory it began in, and its `run` then waits
    // forever for events of the new directory: it resumes only in the same workspace.
    if (stored && agent.kind === 'opencode' && stored.directory !== workspace) {
      emit({ kind: 'raw', source: 'agent-runner', line: `opencode session ${stored.sessionId} began in ${stored.directory ?? 'another workspace'}; opencode resumes a session only there, so this task starts a new session` });
      resume = undefined;
    }
    for (;;) {
      const run = new AgentRun(agent.kind);
      onLine = (line) => {
        for (const event of run.take(line)) emit(event);
      };
      const invocation = agentInvocation(agent, { task, home, workspace, llmBaseUrl, ...(resume ? { resume } : {}) });
      mayRunAgain = resume !== undefined;
      let end: ProcessEnd;
      try {
        for (const dir of invocation.dirs) mkdirSync(dir, { recursive: true, mode: 0o700 });
        end = await runProcess(invocation.argv, { ...baseEnv, ...invocation.env }, invocation.stdin);
      } catch (error) {
        end = { code: null, signal: null, error: error as Error };
      }
      if (run.sessionId) {
        try {
          saveSession(home, agent.kind, { sessionId: run.sessionId, directory: workspace });
        } catch (error) {
          emit({ kind: 'error', message: `cannot store session ${run.sessionId} in ${home}/.warren/sessions.json: ${(error as Error).message}` });
        }
      }
      // A resume that failed before the agent did anything: the session is gone (another home,
      // pruned, autodeleted). Forget it and start afresh, once.
      if (resume && !stopReason && !end.error && end.code !== 0 && !run.acted) {
        const why = run.lastError ?? lastLine(output.tail) ?? `exit code ${end.code}`;
        emit({ kind: 'error', message: `cannot resume session ${resume} (${why}); starting a new session` });
        try {
          saveSession(home, agent.kind, undefined);
        } catch {
          // the next task tries again
        }
        resume = undefined;
        continue;
      }
      clearTimeout(timer);
      output.close();
      const outputs = end.error ? [] : listOutputs(workspace, home, taskFile, MAX_OUTPUTS);
      if (end.error) return withGit(finish(TaskOutcome.failed, run.summary(`cannot start ${invocation.argv[0]}: ${end.error.message}`), null, null));
      if (stopReason) return withGit(finish(stopReason.outcome, run.summary(stopReason.text), end.code, end.signal, outputs));
      const final = run.final;
      if (end.code === 0 && final && !final.isError) return withGit(finish(TaskOutcome.succeeded, final.text.trim() || 'done (no answer)', 0, null, outputs));
      const how = end.signal ? `killed by ${end.signal}` : end.code !== 0 ? `exit code ${end.code}` : final ? 'the agent reported a failure' : 'the agent stopped without a final answer';
      return withGit(finish(TaskOutcome.failed, run.summary(how, lastLine(output.tail)), end.code, end.signal, outputs));
    }
  })().catch((error: unknown) => finish(TaskOutcome.failed, `runner error: ${(error as Error).message}`, null, null));

  return {
    taskId: task.taskId,
    attempt: task.attempt,
    result,
    cancel: (reason) => terminate(TaskOutcome.cancelled, `cancelled: ${reason}`, false),
    kill: () => terminate(TaskOutcome.cancelled, 'cancelled: the agent channel closed', true),
  };
}

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { OutputCapture, parseProgressLine, parseSendLine } from './output.js';
import { closeWriteEnds, openTaskPipes } from './pipes.js';
import { TaskOutcome, type ResultFrame, type RunSpanFrame, type TaskFrame } from './protocol.js';
import { formatTraceparent, newSpanId, parseParentContext } from './trace-context.js';

/**
 * How tasks are run (the `WARREN_RUNTIME` variable, JSON):
 * - `{"kind":"shell"}`: the task's `command` with `/bin/sh -c`.
 * - `{"kind":"exec","command":["/usr/bin/node","/opt/warren/agents/bin/report.mjs"]}`: that argv
 *   for every task (it reads the task from `$WARREN_TASK_FILE`).
 */
export type Runtime = { readonly kind: 'shell' } | { readonly kind: 'exec'; readonly command: readonly string[] };

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
  /** Between SIGTERM and SIGKILL of the process group on timeout or cancel, in ms. Default 2000. */
  readonly killGraceMs?: number;
  /** Cap of `output.log` in the workspace, in bytes. Default 8 MiB. */
  readonly outputMaxBytes?: number;
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
 * env + WARREN_TASK_ID, WARREN_TASK_ATTEMPT, WARREN_TASK_TITLE, WARREN_TASK_FILE, WARREN_WORKSPACE
 * and WARREN_TASK_COMMAND (if the task has one); when the task came with a valid `traceparent`,
 * also TRACEPARENT naming the run's own span (a child of the task's, id from `crypto.randomBytes`)
 * and TRACESTATE (if the task has one), and the result carries that span (`span`) for the
 * supervisor to export. stdout and stderr go to `output.log` there
 * (capped), and their last 2000 characters to the summary; they are kernel pipes, so `/dev/stdout`
 * and `/dev/stderr` can be opened. After `task.timeoutMs` the group gets
 * SIGTERM, then SIGKILL after the grace (outcome `timed_out`). When the process exits, whatever is
 * left of its group is killed. Outcome: exit 0 → `succeeded`, else `failed`. `outputs` lists the
 * workspace's files relative to `home` (without task.json, at most {@link MAX_OUTPUTS}).
 * A task with an unsafe id, or without a command under the shell runtime, fails at once.
 */
export function startExecution(options: ExecutionOptions): Execution {
  const { task, runtime, home } = options;
  const startedMs = Date.now();
  // The run's span: a child of the span that published the assignment; the task's process gets
  // TRACEPARENT naming it, so a program in the agent can join the trace.
  const parent = parseParentContext(task.traceparent);
  const runSpanId = parent ? newSpanId() : undefined;
  const killGraceMs = options.killGraceMs ?? 2000;
  let child: ChildProcess | undefined;
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

  const terminate = (outcome: TaskOutcome, text: string, immediate: boolean): void => {
    if (exited || !child?.pid) return;
    stopReason ??= { outcome, text };
    const pid = child.pid;
    if (immediate) {
      signalGroup(pid, 'SIGKILL');
      return;
    }
    signalGroup(pid, 'SIGTERM');
    killTimer ??= setTimeout(() => signalGroup(pid, 'SIGKILL'), killGraceMs);
  };

  const result = (async (): Promise<ResultFrame> => {
    if (!isSafeTaskId(task.taskId)) {
      return finish(TaskOutcome.failed, `invalid task id ${JSON.stringify(task.taskId)}: it must match ${TASK_ID.source}`, null, null);
    }
    let argv: readonly string[];
    if (runtime.kind === 'shell') {
      if (typeof task.command !== 'string' || task.command.trim() === '') {
        return finish(TaskOutcome.failed, `task ${task.taskId} has no command: the shell runtime runs the task's \`command\` field`, null, null);
      }
      argv = ['/bin/sh', '-c', task.command];
    } else {
      argv = runtime.command;
    }
    const workspace = join(home, 'work', task.taskId);
    const taskFile = join(workspace, 'task.json');
    let output: OutputCapture;
    try {
      mkdirSync(workspace, { recursive: true, mode: 0o700 });
      writeFileSync(taskFile, `${JSON.stringify(task, null, 2)}\n`, { mode: 0o600 });
      output = new OutputCapture(join(workspace, 'output.log'), options.outputMaxBytes ?? 8 * 1024 * 1024, (line) => {
        const progress = parseProgressLine(line);
        if (progress) {
          options.onProgress(progress.message, progress.percent);
          return;
        }
        const message = parseSendLine(line);
        if (message) options.onSend?.(message.to, message.body);
      });
    } catch (error) {
      return finish(TaskOutcome.failed, `cannot prepare workspace ${workspace}: ${(error as Error).message}`, null, null);
    }
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(options.env)) if (value !== undefined) env[key] = value;
    Object.assign(env, {
      WARREN_TASK_ID: task.taskId,
      WARREN_TASK_ATTEMPT: String(task.attempt),
      WARREN_TASK_TITLE: task.title,
      WARREN_TASK_FILE: taskFile,
      WARREN_WORKSPACE: workspace,
    });
    if (typeof task.command === 'string') env.WARREN_TASK_COMMAND = task.command;
    // Only this execution's trace context: never one the runner itself inherited.
    delete env.TRACEPARENT;
    delete env.TRACESTATE;
    if (parent && runSpanId) {
      env.TRACEPARENT = formatTraceparent(parent.traceId, runSpanId, parent.flags);
      if (typeof task.tracestate === 'string' && task.tracestate.trim() !== '') env.TRACESTATE = task.tracestate;
    }

    const [program, ...args] = argv;
    // Kernel pipes, not Node's socket pairs, so that the task can open /dev/stdout and /dev/stderr.
    const pipes = openTaskPipes(2);
    let proc: ChildProcess;
    try {
      proc = spawn(program!, args, { cwd: workspace, env, detached: true, stdio: ['ignore', pipes?.[0]!.writeFd ?? 'pipe', pipes?.[1]!.writeFd ?? 'pipe'] });
    } finally {
      if (pipes) closeWriteEnds(pipes);
    }
    child = proc;
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
    const ended = new Promise<{ code: number | null; signal: string | null; error?: Error }>((resolve) => {
      proc.once('error', (error) => resolve({ code: null, signal: null, error }));
      proc.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const timeoutMs = task.timeoutMs;
    const timer =
      typeof timeoutMs === 'number' && timeoutMs > 0
        ? setTimeout(() => terminate(TaskOutcome.timedOut, `timed out after ${timeoutMs} ms`, false), Math.min(timeoutMs, 2 ** 31 - 1))
        : undefined;

    const end = await ended;
    exited = true;
    clearTimeout(timer);
    clearTimeout(killTimer);
    // Leftovers of the group (background jobs) end with the task.
    if (proc.pid) signalGroup(proc.pid, 'SIGKILL');
    // Processes that left the group may still hold the pipes: stop waiting for them after a moment.
    let waitTimer: NodeJS.Timeout | undefined;
    await Promise.race([streamsClosed, new Promise((resolve) => (waitTimer = setTimeout(resolve, 1000)))]);
    clearTimeout(waitTimer);
    for (const stream of streams) stream.destroy();
    output.close();

    if (end.error) {
      return finish(TaskOutcome.failed, summarize(`cannot start ${program}: ${end.error.message}`, output.tail), null, null);
    }
    const outputs = listOutputs(workspace, home, taskFile, MAX_OUTPUTS);
    if (stopReason) return finish(stopReason.outcome, summarize(stopReason.text, output.tail), end.code, end.signal, outputs);
    if (end.code === 0) return finish(TaskOutcome.succeeded, summarize('', output.tail) || 'done (no output)', 0, null, outputs);
    const how = end.signal ? `killed by ${end.signal}` : `exit code ${end.code}`;
    return finish(TaskOutcome.failed, summarize(how, output.tail), end.code, end.signal, outputs);
  })().catch((error: unknown) => finish(TaskOutcome.failed, `runner error: ${(error as Error).message}`, null, null));

  return {
    taskId: task.taskId,
    attempt: task.attempt,
    result,
    cancel: (reason) => terminate(TaskOutcome.cancelled, `cancelled: ${reason}`, false),
    kill: () => terminate(TaskOutcome.cancelled, 'cancelled: the agent channel closed', true),
  };
}

/**
 * Shared parts of the durability suite: temp layouts with their own agent template, an external
 * nats-server that can be SIGKILLed and restarted on the same port and store, and the invariant
 * check (the NATS chaos-test method: sets over self-identifying records, compared across the
 * board, Warren's state, the audit trail and the broker's consumers).
 */
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager, type ConsumerInfo } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { brokerNamespace, startNatsServer, type BrokerNamespace, type EmbeddedNatsServer } from '@warren/broker';
import { defaultBrokerInstance } from '@warren/supervisor';
import { expect } from 'vitest';
import { processesOfUids, repo, startWarren, waitFor, warren, type CliProcess, type CliResult } from '../support/cli.js';

/** Streams and the supervisor's results consumer, as the broker contract names them. */
export const ASSIGN_STREAM = 'WARREN_ASSIGN';
export const RESULTS_STREAM = 'WARREN_RESULTS';
export const RESULTS_CONSUMER = 'supervisor-results';

/**
 * The broker names (streams, consumers, subjects) of the supervisor of `layout`: its instance is
 * derived from its state dir, as `warren` does without `--instance`.
 */
export function namespaceOf(layout: { readonly stateDir: string }): BrokerNamespace {
  return brokerNamespace(defaultBrokerInstance(layout.stateDir));
}

/** A shell task file: `status: ready`, capability `shell`, the given `command`. */
export function shellTask(id: string, command: string): string {
  return `---\nid: ${id}\ntitle: Task ${id}\nstatus: ready\ncapabilities: [shell]\ncommand: ${JSON.stringify(command)}\n---\nBody of ${id}.\n`;
}

/** Options of {@link makeLayout}. */
export interface LayoutOptions {
  /** Task files by id (use {@link shellTask}). */
  readonly tasks: Readonly<Record<string, string>>;
  /** The external NATS server the supervisor uses (`--nats-url`). */
  readonly natsUrl: string;
  /** Agents of the template at once. Default 2. */
  readonly maxInstances?: number;
  /** Tasks per agent at once. Default 4. */
  readonly wipPerInstance?: number;
  /** The template's lifecycle (`autodelete`: a fresh agent per task). Default `persistent`. */
  readonly lifecycle?: 'persistent' | 'autodelete';
}

/** A temp directory holding one board, its policy, its agent template, homes and state. */
export interface Layout {
  readonly dir: string;
  readonly boardDir: string;
  readonly tasksDir: string;
  readonly stateDir: string;
  /**
   * The template's name: unique per layout (`d` and 8 random letters), so agent names and their
   * cgroups (`warren/<agent>`) never meet those of another test running at the same time.
   */
  readonly template: string;
  /** The ids of every task file written: the set E of tasks made ready. */
  readonly taskIds: readonly string[];
  /** `warren` arguments: `extra`, then the layout's paths (and `--nats-url` when `withNats`). */
  args(extra: readonly string[], withNats?: boolean): string[];
  readonly natsUrl: string;
  /** Removes the directory. */
  remove(): void;
}

function randomName(): string {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  return `d${[...randomBytes(8)].map((b) => letters[b % 26]).join('')}`;
}

/**
 * Makes a temp layout: a board (the demo board's columns without a WIP limit), the repository's
 * policies plus `g, template:<name>, role:worker`, an agents folder with one `shell` runtime
 * template of a unique name (capability `shell`, persistent unless `lifecycle` says otherwise) and empty homes and state.
 */
export function makeLayout(options: LayoutOptions): Layout {
  const dir = mkdtempSync(join(tmpdir(), 'warren-durability-'));
  const boardDir = join(dir, 'kanban');
  const tasksDir = join(boardDir, 'tasks');
  mkdirSync(tasksDir, { recursive: true });
  writeFileSync(
    join(boardDir, 'board.yaml'),
    [
      'name: Durability board',
      'columns:',
      '  - { id: ready, name: Ready }',
      '  - { id: in_progress, name: In progress }',
      '  - { id: done, name: Done }',
      '  - { id: failed, name: Failed }',
      'roles: { ready: ready, in_progress: in_progress, done: done, failed: failed }',
      'priorities: [low, normal, high]',
      'default_priority: normal',
      '',
    ].join('\n'),
  );
  cpSync(join(repo, 'policies'), join(dir, 'policies'), { recursive: true });
  const template = randomName();
  appendFileSync(join(dir, 'policies', 'policy.csv'), `\ng, template:${template}, role:worker\n`);
  mkdirSync(join(dir, 'agents', 'bin'), { recursive: true });
  writeFileSync(
    join(dir, 'agents', `${template}.yaml`),
    [
      `name: ${template}`,
      'description: Runs the shell command a task names (durability tests).',
      'capabilities: [shell]',
      'runtime:',
      '  kind: shell',
      '  timeout: 1m',
      'resources:',
      '  memory: 256MiB',
      '  pids: 128',
      '  cpu: 100',
      '  nofile: 1024',
      '  fileSize: 16MiB',
      '  tmp: 16MiB',
      `maxInstances: ${options.maxInstances ?? 2}`,
      `wipPerInstance: ${options.wipPerInstance ?? 4}`,
      `lifecycle: ${options.lifecycle ?? 'persistent'}`,
      '',
    ].join('\n'),
  );
  for (const [id, text] of Object.entries(options.tasks)) writeFileSync(join(tasksDir, `${id}.md`), text);
  const stateDir = join(dir, 'var');
  return {
    dir,
    boardDir,
    tasksDir,
    stateDir,
    template,
    taskIds: Object.keys(options.tasks),
    natsUrl: options.natsUrl,
    args: (extra, withNats = false) => [
      ...extra,
      ...(withNats ? ['--nats-url', options.natsUrl] : []),
      '--root', repo,
      '--board', boardDir,
      '--agents', join(dir, 'agents'),
      '--home', join(dir, 'home'),
      '--state-dir', stateDir,
      '--policies', join(dir, 'policies'),
    ],
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * Starts `warren run --until-idle --json` on `layout` against its external NATS server, with
 * `env` added to the environment (for example the fault-injection variables).
 */
export function startRun(layout: Layout, env: Readonly<Record<string, string>> = {}, extra: readonly string[] = []): CliProcess {
  const saved = new Map(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    // startWarren copies process.env synchronously when it spawns.
    return startWarren(layout.args(['run', '--until-idle', '--json', ...extra], true));
  } finally {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

/** How a supervisor run ended, with what it printed. */
export interface RunEnd extends CliResult {
  /** The summary it printed (`--json`), if it got that far. */
  readonly summary: { succeeded: string[]; failed: { taskId: string; reason: string }[]; ok: boolean } | undefined;
}

/**
 * Waits for a run to end; SIGKILLs it (by pid) and throws after `timeoutMs`, so a run that never
 * reaches its crash point or never goes idle fails the test instead of hanging it.
 */
export async function finish(run: CliProcess, timeoutMs: number): Promise<RunEnd> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (run.child.pid !== undefined) process.kill(run.child.pid, 'SIGKILL');
  }, timeoutMs);
  const result = await run.done.finally(() => clearTimeout(timer));
  if (timedOut) throw new Error(`the supervisor did not end within ${timeoutMs} ms\n${result.stderr.slice(-4000)}`);
  let summary: RunEnd['summary'];
  try {
    summary = result.stdout.trim() ? (JSON.parse(result.stdout) as RunEnd['summary']) : undefined;
  } catch {
    summary = undefined;
  }
  return { ...result, summary };
}

/** The fault-injection environment that makes the supervisor SIGKILL itself at `point`. */
export function crashEnv(point: string): Record<string, string> {
  return { WARREN_FAULT_INJECTION: '1', WARREN_CRASH_AT: point };
}

/**
 * Runs the supervisor on `layout` until it dies at fault-injection `point` (checks that it was
 * that SIGKILL), waits for its sandboxes to end (they run with --die-with-parent), then runs it
 * again until idle and checks that it exited 0 leaving no agent process.
 * @returns how each of the two runs ended.
 * @throws (an assertion) when the first run did not die at `point` or the second did not end well.
 */
export async function killAtAndRestart(layout: Layout, point: string): Promise<{ crashed: RunEnd; recovered: RunEnd }> {
  const crashed = await finish(startRun(layout, crashEnv(point)), 90_000);
  expect(crashed.signal, `the supervisor was to die at ${point}\n${crashed.stderr.slice(-3000)}`).toBe('SIGKILL');
  expect(crashed.stderr).toContain(`FAULT INJECTION: this supervisor will die at '${point}'`);
  const uids = await agentUids(layout);
  await waitFor(`the agents of the killed supervisor to end (uids ${[...uids].join(',')})`, () => agentProcesses(layout, uids).length === 0, 20_000);

  const recovered = await finish(startRun(layout), 120_000);
  expect(recovered.code, recovered.stderr.slice(-3000)).toBe(0);
  expect(agentProcesses(layout, await agentUids(layout))).toEqual([]);
  return { crashed, recovered };
}

/**
 * A nats-server with JetStream on a fixed 127.0.0.1 port and store that a test can SIGKILL and
 * start again on the same port and store (what an operator's restart does).
 */
export class RestartableNats {
  private server: EmbeddedNatsServer;
  private closing: Promise<void> | undefined;
  /** How many times it was killed. */
  kills = 0;

  private constructor(
    server: EmbeddedNatsServer,
    readonly storeDir: string,
  ) {
    this.server = server;
  }

  /** Starts a server on a free port, storing in a fresh temp directory. */
  static async start(): Promise<RestartableNats> {
    const storeDir = mkdtempSync(join(tmpdir(), 'warren-durability-nats-'));
    const server = await startNatsServer({ storeDir });
    return new RestartableNats(server, storeDir);
  }

  get url(): string {
    return this.server.url;
  }

  get pid(): number {
    return this.server.pid;
  }

  /** Whether the current server process is running. */
  get running(): boolean {
    return isAlive(this.server.pid);
  }

  /** SIGKILLs the server (by its pid) and waits until it is gone. */
  async kill(): Promise<void> {
    this.kills += 1;
    try {
      process.kill(this.server.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await this.server.exited;
  }

  /** Starts the server again on the same port and store. */
  async restart(): Promise<void> {
    if (this.running) throw new Error(`nats-server pid ${this.server.pid} is still running`);
    this.server = await startNatsServer({ storeDir: this.storeDir, port: this.server.port });
  }

  /** Stops the server (SIGTERM, then SIGKILL) and removes its store. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.server.close().finally(() => rmSync(this.storeDir, { recursive: true, force: true }));
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One row of `warren audit --json`. */
export interface AuditRow {
  readonly seq: number;
  readonly timeMs: number;
  readonly actor: string;
  readonly action: string;
  readonly object: string;
  readonly decision: 'allow' | 'deny' | null;
  readonly details: Record<string, unknown> | null;
}

/** One task of `warren tasks --json`: the board's status with Warren's state and attempt. */
export interface TaskRow {
  readonly id: string;
  readonly status: string;
  readonly state: string | null;
  readonly attempt: number;
  readonly result: string | null;
  readonly assignee: string | null;
}

async function json<T>(layout: Layout, args: readonly string[]): Promise<T> {
  const result = await warren(layout.args(args));
  if (result.code !== 0) throw new Error(`warren ${args.join(' ')} exited ${result.code}: ${result.stderr.slice(-2000)}`);
  return JSON.parse(result.stdout) as T;
}

/** Every audit row of the layout, oldest first (`warren audit --json`). */
export function readAudit(layout: Layout, action?: string): Promise<AuditRow[]> {
  return json<AuditRow[]>(layout, ['audit', '--json', '--limit', '100000000', ...(action ? ['--action', action] : [])]);
}

/** The board's tasks with Warren's view of them (`warren tasks --json`). */
export async function readTasks(layout: Layout): Promise<{ tasks: TaskRow[]; errors: { message: string }[] }> {
  return json(layout, ['tasks', '--json']);
}

/** The layout's agent accounts by name (`warren accounts --json`). */
export async function agentAccounts(layout: Layout): Promise<Map<string, number>> {
  const accounts = await json<{ name: string; uid: number }[]>(layout, ['accounts', '--json']);
  return new Map(accounts.map((a) => [a.name, a.uid]));
}

/** A task file's board status and assignee, read straight from the file. */
export function boardStatus(layout: Layout, id: string): { status: string | undefined; assignee: string | undefined } {
  let text = '';
  try {
    text = readFileSync(join(layout.tasksDir, `${id}.md`), 'utf8');
  } catch {
    // being replaced this instant
  }
  return { status: /^status: (.+)$/m.exec(text)?.[1]?.trim(), assignee: /^assignee: (.+)$/m.exec(text)?.[1]?.trim() };
}

/** How many of the layout's tasks the board shows in `status`. */
export function countStatus(layout: Layout, status: string): number {
  return layout.taskIds.filter((id) => boardStatus(layout, id).status === status).length;
}

/** The uids of the layout's agent accounts (`warren accounts --json`). */
export async function agentUids(layout: Layout): Promise<Set<number>> {
  if (!existsSync(join(layout.stateDir, 'warren.db'))) return new Set();
  const accounts = await json<{ uid: number }[]>(layout, ['accounts', '--json']);
  return new Set(accounts.map((a) => a.uid));
}

/**
 * Pids of processes running under one of `uids` inside a sandbox of this layout: uids are given
 * out per state database, so tests running at once share them; a sandbox of this layout has its
 * home (under the layout's directory) mounted, which its mountinfo shows.
 */
export function agentProcesses(layout: Layout, uids: ReadonlySet<number>): number[] {
  return processesOfUids(uids).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/mountinfo`, 'utf8').includes(layout.dir);
    } catch {
      return false;
    }
  });
}

/** Temporary files an interrupted atomic write left beside the task files. */
export function tempFiles(layout: Layout): string[] {
  return readdirSync(layout.tasksDir).filter((name) => name.endsWith('.tmp'));
}

/** A consumer's backlog as the server reports it. */
export interface ConsumerBacklog {
  readonly stream: string;
  readonly name: string;
  readonly numPending: number;
  readonly numAckPending: number;
}

/**
 * The backlogs of every consumer on the assignment and result streams of `namespace` (default:
 * WARREN_ASSIGN and WARREN_RESULTS) (nats.js `jetstreamManager`).
 */
export async function consumerBacklogs(natsUrl: string, namespace: BrokerNamespace = brokerNamespace()): Promise<ConsumerBacklog[]> {
  const nc = await connect({ servers: natsUrl, name: 'durability-check', reconnect: false });
  try {
    const jsm = await jetstreamManager(nc);
    const out: ConsumerBacklog[] = [];
    for (const stream of [namespace.assignStream, namespace.resultsStream]) {
      const infos: ConsumerInfo[] = await jsm.consumers.list(stream).next();
      for (const info of infos) {
        out.push({ stream, name: info.name, numPending: info.num_pending, numAckPending: info.num_ack_pending });
      }
    }
    return out;
  } finally {
    await nc.close();
  }
}

/**
 * What a stuck run looks like, for a failure message: the board's columns, the consumers'
 * backlogs (if the broker answers) and the supervisor's last warnings and errors.
 */
export async function diagnose(layout: Layout, run: CliProcess): Promise<string> {
  const columns = ['ready', 'in_progress', 'done', 'failed'].map((c) => `${c} ${countStatus(layout, c)}`).join(', ');
  let backlogs: string;
  try {
    backlogs = (await consumerBacklogs(layout.natsUrl, namespaceOf(layout))).map((b) => `${b.stream}/${b.name} pending ${b.numPending} ack_pending ${b.numAckPending}`).join('; ');
  } catch (error) {
    backlogs = `broker unreachable: ${(error as Error).message}`;
  }
  const warnings = run
    .stderr()
    .split('\n')
    .filter((l) => /"level":(40|50|60)/.test(l))
    .slice(-15)
    .map((l) => {
      try {
        const j = JSON.parse(l) as { msg?: string; err?: { message?: string }; component?: string };
        return `  ${j.component ?? ''} ${j.msg ?? ''} ${j.err?.message ?? ''}`;
      } catch {
        return `  ${l.slice(0, 300)}`;
      }
    });
  return `board: ${columns}\nconsumers: ${backlogs}\nlast warnings:\n${warnings.join('\n')}`;
}

/** Like `waitFor`, but a timeout fails with {@link diagnose}'s picture of the run. */
export async function waitForRun(layout: Layout, run: CliProcess, what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${await diagnose(layout, run)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** What {@link checkInvariants} found. */
export interface InvariantReport {
  /** Every broken invariant, one line each; empty when all hold. */
  readonly violations: string[];
  readonly succeeded: ReadonlySet<string>;
  readonly failed: ReadonlySet<string>;
  readonly cancelled: ReadonlySet<string>;
  readonly tasks: readonly TaskRow[];
  readonly audit: readonly AuditRow[];
}

function attemptOf(row: AuditRow): number | undefined {
  const a = row.details?.attempt;
  return typeof a === 'number' ? a : undefined;
}

/**
 * Checks, once the board is quiet and no supervisor runs, with E = `layout.taskIds`:
 * - every task of E is in exactly one of succeeded (board `done`, state `succeeded`), failed with
 *   a reason (board `failed`, state `failed`, a `result`) or cancelled (state `cancelled`), so
 *   |succeeded| + |failed| + |cancelled| == |E| and the sets are disjoint;
 * - each succeeded task has exactly one `task.complete` row (of its final attempt) and no
 *   `task.fail` row of that attempt; each failed task exactly one `task.fail` row and no
 *   `task.complete`; no (task, attempt) has two result rows (results applied once; executions,
 *   `task.start` rows, may repeat);
 * - each task of E has exactly one `board.write` row showing its final column;
 * - no execution is open (`warren status`);
 * - every consumer on the layout's assignment and result streams (`WARREN_<instance>_ASSIGN`,
 *   `WARREN_<instance>_RESULTS`), its results consumer among them, has
 *   num_pending and num_ack_pending 0;
 * - `warren audit --verify` is ok and the rows' seqs run 1..n without gaps.
 */
export async function checkInvariants(layout: Layout): Promise<InvariantReport> {
  const violations: string[] = [];
  const { tasks, errors } = await readTasks(layout);
  for (const e of errors) violations.push(`board error: ${e.message}`);
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const E = new Set(layout.taskIds);
  const succeeded = new Set<string>();
  const failed = new Set<string>();
  const cancelled = new Set<string>();
  for (const id of E) {
    const t = byId.get(id);
    if (!t) {
      violations.push(`task ${id} is missing from the board`);
      continue;
    }
    if (t.status === 'done' && t.state === 'succeeded') succeeded.add(id);
    if (t.status === 'failed' && t.state === 'failed' && (t.result ?? '').trim() !== '') failed.add(id);
    if (t.status === 'failed' && t.state === 'cancelled') cancelled.add(id);
    if (!succeeded.has(id) && !failed.has(id) && !cancelled.has(id)) {
      violations.push(`task ${id} is not terminal: board ${t.status}, state ${t.state}#${t.attempt}, result ${JSON.stringify(t.result)}`);
    }
  }
  for (const [a, b, name] of [[succeeded, failed, 'succeeded∩failed'], [succeeded, cancelled, 'succeeded∩cancelled'], [failed, cancelled, 'failed∩cancelled']] as const) {
    const both = [...a].filter((x) => b.has(x));
    if (both.length > 0) violations.push(`${name} not empty: ${both.join(', ')}`);
  }
  if (succeeded.size + failed.size + cancelled.size !== E.size) {
    violations.push(`|succeeded| ${succeeded.size} + |failed| ${failed.size} + |cancelled| ${cancelled.size} != |E| ${E.size}`);
  }

  const audit = await readAudit(layout);
  const rowsOf = new Map<string, AuditRow[]>();
  for (const row of audit) {
    if (!row.object.startsWith('task:')) continue;
    const id = row.object.slice('task:'.length);
    rowsOf.set(id, [...(rowsOf.get(id) ?? []), row]);
  }
  for (const id of E) {
    const rows = rowsOf.get(id) ?? [];
    const completes = rows.filter((r) => r.action === 'task.complete');
    const fails = rows.filter((r) => r.action === 'task.fail');
    const results = new Map<number, number>();
    for (const r of [...completes, ...fails]) results.set(attemptOf(r) ?? -1, (results.get(attemptOf(r) ?? -1) ?? 0) + 1);
    for (const [attempt, n] of results) if (n > 1) violations.push(`task ${id} attempt ${attempt} has ${n} result rows (applied more than once)`);
    const final = byId.get(id);
    if (succeeded.has(id)) {
      if (completes.length !== 1) violations.push(`succeeded task ${id} has ${completes.length} task.complete rows`);
      else if (attemptOf(completes[0]!) !== final?.attempt) violations.push(`task ${id} completed at attempt ${attemptOf(completes[0]!)} but its state is at attempt ${final?.attempt}`);
      if (fails.some((r) => attemptOf(r) === final?.attempt)) violations.push(`succeeded task ${id} also has a task.fail row for attempt ${final?.attempt}`);
    }
    if (failed.has(id)) {
      if (fails.length !== 1) violations.push(`failed task ${id} has ${fails.length} task.fail rows`);
      if (completes.length !== 0) violations.push(`failed task ${id} has ${completes.length} task.complete rows`);
    }
    if (cancelled.has(id) && completes.length !== 0) violations.push(`cancelled task ${id} has ${completes.length} task.complete rows`);
    const finalStatus = succeeded.has(id) ? 'done' : failed.has(id) || cancelled.has(id) ? 'failed' : undefined;
    if (finalStatus) {
      const writes = rows.filter((r) => r.action === 'board.write' && r.details?.status === finalStatus).length;
      if (writes !== 1) violations.push(`task ${id} has ${writes} board.write rows with status ${finalStatus}`);
    }
  }
  for (let i = 0; i < audit.length; i++) {
    if (audit[i]!.seq !== i + 1) {
      violations.push(`audit seq gap: row ${i + 1} has seq ${audit[i]!.seq}`);
      break;
    }
  }
  const verify = await warren(layout.args(['audit', '--verify', '--json']));
  const verdict = JSON.parse(verify.stdout || '{}') as { ok?: boolean; signed?: boolean; reason?: string; firstBadSeq?: number };
  if (verify.code !== 0 || verdict.ok !== true) violations.push(`audit --verify: ${verify.stdout.trim()} ${verify.stderr.slice(-500)}`);
  if (verdict.signed !== true) violations.push(`audit --verify: the trail has no signed checkpoint: ${verify.stdout.trim()}`);

  const status = await json<{ openExecutions: number; supervisor: string }>(layout, ['status', '--json']);
  if (status.openExecutions !== 0) violations.push(`${status.openExecutions} executions are still open`);
  if (status.supervisor !== 'stopped') violations.push(`a supervisor is still ${status.supervisor}`);

  const ns = namespaceOf(layout);
  const backlogs = await consumerBacklogs(layout.natsUrl, ns);
  if (!backlogs.some((b) => b.stream === ns.resultsStream && b.name === ns.resultsConsumer)) {
    violations.push(`consumer ${ns.resultsConsumer} on ${ns.resultsStream} does not exist`);
  }
  for (const b of backlogs) {
    if (b.numPending !== 0 || b.numAckPending !== 0) {
      violations.push(`consumer ${b.stream}/${b.name}: num_pending ${b.numPending}, num_ack_pending ${b.numAckPending}`);
    }
  }
  return { violations, succeeded, failed, cancelled, tasks, audit };
}

/** The `supervisor.recovered` rows of an audit, oldest first. */
export function recoveredRows(audit: readonly AuditRow[]): AuditRow[] {
  return audit.filter((r) => r.action === 'supervisor.recovered');
}

/** mulberry32: a small seeded PRNG (uniform in [0, 1)), so a chaos run can be replayed by its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

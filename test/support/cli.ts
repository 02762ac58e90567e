import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

/** The repository root. */
export const repo = join(import.meta.dirname, '..', '..');
/** The built `warren` command. */
export const cli = join(repo, 'services', 'supervisor', 'bin', 'warren.js');

/** Fails (never skips) with an install hint when the machine lacks what Warren needs. */
export function requireMachine(): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (run the tests as root)');
  const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin} || test -x /usr/sbin/${bin}`]).status === 0;
  if (!has('bwrap')) missing.push('bwrap (apt-get install -y bubblewrap)');
  if (!has('setpriv')) missing.push('setpriv (apt-get install -y util-linux)');
  if (!has('nats-server')) missing.push('nats-server (apt-get install -y nats-server)');
  if (!existsSync(join(repo, 'services', 'supervisor', 'dist', 'cli.js'))) missing.push('a build (npm run build)');
  if (missing.length > 0) throw new Error(`this machine lacks: ${missing.join('; ')}. Or run: bash scripts/setup.sh`);
}

/** What a finished `warren` command printed. */
export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A running `warren` command. */
export interface CliProcess {
  readonly child: ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  readonly done: Promise<CliResult>;
}

/**
 * Starts `warren <args>` with JSON logs and `env` added to the environment; the caller must await
 * `done` (or kill the child).
 */
export function startWarren(args: readonly string[], env: Readonly<Record<string, string>> = {}): CliProcess {
  const child = spawn(process.execPath, [cli, ...args], {
    cwd: repo,
    env: { ...process.env, WARREN_LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  const started = { child, stderr: () => stderr, done, args };
  recent.push(started);
  if (recent.length > RECENT_KEPT) recent.shift();
  return started;
}

/** How many of the last started `warren` processes a failed {@link waitFor} describes. */
const RECENT_KEPT = 3;
/** The last {@link RECENT_KEPT} processes {@link startWarren} started in this test file. */
const recent: (CliProcess & { readonly args: readonly string[] })[] = [];

/** Each recently started `warren` process: its arguments, whether it still runs, the end of its stderr. */
function recentProcesses(): string {
  return recent
    .map((p) => {
      const state = p.child.exitCode !== null || p.child.signalCode !== null ? `exited (code ${p.child.exitCode}, signal ${p.child.signalCode})` : 'running';
      return `\n--- warren ${p.args.join(' ')}: ${state}; its stderr, last 2000 characters:\n${p.stderr().slice(-2000)}`;
    })
    .join('');
}

/** Runs `warren <args>` to the end with `env` added to the environment; kills it and fails after `timeoutMs`. */
export async function warren(args: readonly string[], timeoutMs = 240_000, env: Readonly<Record<string, string>> = {}): Promise<CliResult> {
  const run = startWarren(args, env);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  const result = await run.done;
  clearTimeout(timer);
  if (result.signal === 'SIGKILL') {
    throw new Error(`warren ${args.join(' ')} did not finish in ${timeoutMs} ms\n${result.stderr.slice(-4000)}`);
  }
  return result;
}

/** Pids of host processes whose real uid is in `uids` (from /proc/<pid>/status). */
export function processesOfUids(uids: ReadonlySet<number>): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      if (uids.has(uid)) found.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/** Pids of live processes whose command line mentions `text` (to find children of a test's run). */
export function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) found.push(Number(entry));
    } catch {
      // ended while we looked
    }
  }
  return found;
}

/**
 * Polls `check` every 50 ms until it returns true; fails with `what` after `timeoutMs`. With
 * `watched`, it fails at once when that process has exited, and either failure carries the last
 * 4,000 characters of its stderr (what the supervisor said is what explains the wait). Without
 * it, a timeout describes the last three `warren` processes {@link startWarren} started here.
 */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 60_000, watched?: CliProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const said = (): string => (watched === undefined ? recentProcesses() : `\n--- its stderr, last 4000 characters:\n${watched.stderr().slice(-4000)}`);
  while (!check()) {
    if (watched !== undefined && (watched.child.exitCode !== null || watched.child.signalCode !== null)) {
      throw new Error(`the process exited (code ${watched.child.exitCode}, signal ${watched.child.signalCode}) while waiting for ${what}${said()}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${timeoutMs} ms)${said()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Runs a short read-only `warren` command synchronously (for polling in `waitFor`); returns stdout. */
export function warrenSync(args: readonly string[]): string {
  return execFileSync(process.execPath, [cli, ...args], { cwd: repo, encoding: 'utf8', env: { ...process.env, WARREN_LOG_FORMAT: 'json' } });
}

/**
 * A block of 10,000 agent uids inside Warren's reserved range for one test's supervisor, so that
 * its agents cannot be confused with another supervisor's running on the same host (uid checks
 * such as "no process runs as an agent uid" then speak of this test alone). Blocks start at
 * 1_900_010_000 and stop below 1_900_900_000.
 */
export function uniqueUidRange(): string {
  const base = 1_900_000_000 + 10_000 * (1 + Math.floor(Math.random() * 88));
  return `${base}-${base + 9_999}`;
}

/**
 * Copies the demo board as committed (`git archive HEAD kanban`) to `dest`, so that tests never
 * depend on the working tree's board, which a person or a demo run may have changed. Outside a git
 * checkout (a source tarball) the working tree's `kanban/` is copied instead.
 * @throws {Error} if `git archive` fails in a checkout, or `tar` is missing.
 */
export function copyTrackedBoard(dest: string): void {
  mkdirSync(dest, { recursive: true });
  if (!existsSync(join(repo, '.git'))) {
    cpSync(join(repo, 'kanban'), dest, { recursive: true });
    return;
  }
  const archive = execFileSync('git', ['-C', repo, 'archive', '--format=tar', 'HEAD', 'kanban'], { maxBuffer: 64 * 1024 * 1024 });
  execFileSync('tar', ['-x', '-C', dest, '--strip-components=1'], { input: archive });
}

/** A temporary repository layout for one test's supervisor; `remove()` deletes it. */
export interface TestLayout {
  readonly dir: string;
  /** `extra` followed by every path option (and a unique `--uid-range`) pointing into the layout. */
  readonly args: (...extra: string[]) => string[];
  /** The current text of task `id`'s file. */
  readonly file: (id: string) => string;
  readonly remove: () => void;
}

/**
 * Makes a layout in a temp dir: the demo board's `board.yaml` with the given task files (id →
 * text), copies of `policies/` and (with `copyAgents`) `agents/` that a test may edit, and a
 * 10,000-uid block of its own.
 */
export function makeTestLayout(tasks: Readonly<Record<string, string>>, options: { copyAgents?: boolean } = {}): TestLayout {
  const dir = mkdtempSync(join(tmpdir(), 'warren-e2e-'));
  mkdirSync(join(dir, 'kanban', 'tasks'), { recursive: true });
  cpSync(join(repo, 'kanban', 'board.yaml'), join(dir, 'kanban', 'board.yaml'));
  cpSync(join(repo, 'policies'), join(dir, 'policies'), { recursive: true });
  if (options.copyAgents) cpSync(join(repo, 'agents'), join(dir, 'agents'), { recursive: true });
  for (const [id, text] of Object.entries(tasks)) writeFileSync(join(dir, 'kanban', 'tasks', `${id}.md`), text);
  const uidRange = uniqueUidRange();
  return {
    dir,
    args: (...extra) => [
      ...extra,
      '--uid-range', uidRange,
      '--root', repo,
      '--board', join(dir, 'kanban'),
      ...(options.copyAgents ? ['--agents', join(dir, 'agents')] : []),
      '--home', join(dir, 'home'),
      '--state-dir', join(dir, 'var'),
      '--policies', join(dir, 'policies'),
    ],
    file: (id) => readFileSync(join(dir, 'kanban', 'tasks', `${id}.md`), 'utf8'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A ready shell task running `command`, with optional extra frontmatter lines. */
export function shellTask(id: string, command: string, extra = ''): string {
  return `---\nid: ${id}\ntitle: Task ${id}\nstatus: ready\ncapabilities: [shell]\n${extra}command: ${JSON.stringify(command)}\n---\nBody of ${id}.\n`;
}

/**
 * The layouts and supervisors a test file makes, registered with vitest's `afterEach`: after each
 * test every supervisor still running gets SIGTERM and is awaited, then every layout is removed.
 * Push what a test starts or makes onto the returned arrays.
 */
export function cleanUpAfterEach(): { layouts: TestLayout[]; running: CliProcess[] } {
  const layouts: TestLayout[] = [];
  const running: CliProcess[] = [];
  afterEach(async () => {
    for (const run of running.splice(0)) {
      run.child.kill('SIGTERM');
      await run.done;
    }
    for (const made of layouts.splice(0)) made.remove();
  });
  return { layouts, running };
}

/** One row of `warren audit --json`, as the tests read it. */
export interface AuditRow {
  seq: number;
  timeMs: number;
  action: string;
  object: string;
  details: Record<string, unknown>;
}

import { cpSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { spawnTracked, type TrackedChild } from './procs.js';

/** Options of {@link makeLayout}. */
export interface LayoutOptions {
  /** Agent template lifecycle: `autodelete` gives a fresh sandbox per task, `persistent` long-running agents. */
  readonly lifecycle: 'persistent' | 'autodelete';
  readonly maxInstances: number;
  /** Number of no-op tasks written ready (`command: "true"`); more can be added with {@link Layout.addTask}. */
  readonly tasks: number;
  /** The command of the generated tasks. Default `true`. */
  readonly command?: string;
  /** Agents kept started and idle ahead of demand (the template's `warmPool`). Default 0. */
  readonly warmPool?: number;
  /** Tasks one agent runs side by side (the template's `wipPerInstance`). Default 1. */
  readonly wipPerInstance?: number;
}

/** A temporary Warren repository layout: board, one agent template, the repo's policies, a home skeleton. */
export interface Layout {
  readonly root: string;
  readonly dbPath: string;
  /** Writes a ready task file atomically (temp file + rename, so a watcher never reads half a file). */
  addTask(id: string, command?: string): void;
}

const BOARD = `name: bench
columns:
  - { id: backlog, name: Backlog }
  - { id: ready, name: Ready }
  - { id: in_progress, name: In progress }
  - { id: done, name: Done }
  - { id: failed, name: Failed }
roles: { ready: ready, in_progress: in_progress, done: done, failed: failed }
priorities: [low, normal, high, urgent]
default_priority: normal
`;

/** Makes a layout under `dir` (which must not exist yet). */
export function makeLayout(dir: string, repoRoot: string, options: LayoutOptions): Layout {
  mkdirSync(join(dir, 'kanban', 'tasks'), { recursive: true });
  mkdirSync(join(dir, 'agents', 'bin'), { recursive: true });
  mkdirSync(join(dir, 'home'), { recursive: true });
  writeFileSync(join(dir, 'kanban', 'board.yaml'), BOARD);
  cpSync(join(repoRoot, 'policies'), join(dir, 'policies'), { recursive: true });
  cpSync(join(repoRoot, 'home', 'skel'), join(dir, 'home', 'skel'), { recursive: true });
  writeFileSync(
    join(dir, 'agents', 'shell.yaml'),
    `name: shell
description: Runs a task's shell command.
capabilities: [shell]
runtime: { kind: shell, timeout: 10m }
resources: { memory: 256MiB, pids: 64, cpu: 100, nofile: 1024, fileSize: 16MiB, tmp: 16MiB }
maxInstances: ${options.maxInstances}
wipPerInstance: ${options.wipPerInstance ?? 1}
lifecycle: ${options.lifecycle}
warmPool: ${options.warmPool ?? 0}
`,
  );
  const addTask = (id: string, command = options.command ?? 'true') => {
    const text = `---\nid: ${id}\ntitle: Task ${id}\nstatus: ready\ncapabilities: [shell]\ncommand: ${JSON.stringify(command)}\ncreated: 2026-11-20T09:00:00Z\n---\nA no-op task.\n`;
    const tmp = join(dir, 'kanban', `.${id}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, join(dir, 'kanban', 'tasks', `${id}.md`));
  };
  for (let i = 0; i < options.tasks; i++) addTask(`t-${String(i).padStart(5, '0')}`);
  return { root: dir, dbPath: join(dir, 'var', 'warren.db'), addTask };
}

/** Starts `warren <args>` from the built CLI with JSON logs on stderr; stderr is kept line by line. */
export function startWarren(repoRoot: string, args: readonly string[]): TrackedChild & { lines: string[]; waitForLine(re: RegExp, timeoutMs: number): Promise<void> } {
  const cli = join(repoRoot, 'services', 'supervisor', 'bin', 'warren.js');
  const child = spawnTracked(process.execPath, [cli, ...args], {
    cwd: repoRoot,
    env: { ...process.env, WARREN_LOG_FORMAT: 'json', WARREN_HTTP: process.env.WARREN_HTTP ?? 'off' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const watchers: { re: RegExp; resolve: () => void }[] = [];
  let partial = '';
  child.child.stdout?.resume();
  child.child.stderr?.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    let nl: number;
    while ((nl = partial.indexOf('\n')) !== -1) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (lines.length < 20_000) lines.push(line);
      for (const w of [...watchers]) {
        if (w.re.test(line)) {
          watchers.splice(watchers.indexOf(w), 1);
          w.resolve();
        }
      }
    }
  });
  const waitForLine = (re: RegExp, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      if (lines.some((l) => re.test(l))) return resolve();
      const timer = setTimeout(() => reject(new Error(`warren did not log ${re} within ${timeoutMs} ms; last lines:\n${lines.slice(-10).join('\n')}`)), timeoutMs);
      watchers.push({ re, resolve: () => (clearTimeout(timer), resolve()) });
      child.exited.then((exit) => {
        clearTimeout(timer);
        reject(new Error(`warren exited (${exit.code ?? exit.signal}) before logging ${re}; last lines:\n${lines.slice(-10).join('\n')}`));
      }, reject);
    });
  return { ...child, lines, waitForLine };
}

/** One audit row as the benchmark reads it. */
export interface AuditRow {
  readonly seq: number;
  readonly time_ms: number;
  readonly action: string;
  readonly object: string;
}

/** Reads audit rows of the layout's state database (read-only; the supervisor may be writing). */
export function auditRows(dbPath: string, afterSeq = 0): AuditRow[] {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT seq, time_ms, action, object FROM audit WHERE seq > ? ORDER BY seq').all(afterSeq) as AuditRow[];
  } finally {
    db.close();
  }
}

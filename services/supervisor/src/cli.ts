import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import pino from 'pino';
import pretty from 'pino-pretty';
import { openAccounts } from '@warren/accounts';
import { openAudit, type AuditRecord } from '@warren/audit';
import { parseDurationMs, processExists, WarrenError, type Logger } from '@warren/core';
import { BOARD_FORMATS, blockedTasks, checkBoard, formatBoardReport, importToWarrenBoard, loadBoard, normalizedTasks, type BoardFormatName, type BoardMapping } from '@warren/kanban';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import { resolveConfig, type SupervisorConfig, type SupervisorOptions } from './config.js';
import { loadTemplates } from './templates.js';
import { execInAgent } from './exec.js';
import { loadMappingFile } from './mapping.js';
import { StateStore, migrateState, queuePositions, type CommandKind, type TaskRow } from './state.js';
import { Supervisor, type RunMode, type RunSummary } from './supervisor.js';
import { lockBoard, type BoardLock } from './board-lock.js';
import { secureStateDir } from './state-dir.js';
import { addPolicyCommands } from './policy-command.js';

/** Exit codes of the CLI. */
export const ExitCode = { ok: 0, failed: 1, usage: 2 } as const;

const BOARD_FORMAT_NAMES = BOARD_FORMATS.map((f) => f.name);

interface PathFlags {
  root?: string;
  board?: string;
  agents?: string;
  home?: string;
  policies?: string;
  stateDir?: string;
  uidRange?: string;
  format?: BoardFormatName;
  mapping?: string;
}

const agentRunnerDir = dirname(dirname(fileURLToPath(import.meta.resolve('@warren/agent-runner'))));

function addPathOptions(command: Command): Command {
  return command
    .option('--root <dir>', 'repository root; the default base of every other path', '.')
    .option('--board <dir>', 'the kanban board folder (default: <root>/kanban)')
    .option('--agents <dir>', 'the agent templates folder (default: <root>/agents)')
    .option('--home <dir>', 'where agent homes are made (default: <root>/home)')
    .option('--policies <dir>', 'folder with model.conf and policy.csv (default: <root>/policies)')
    .option('--state-dir <dir>', 'runtime state: database, JetStream store, logs (default: <root>/var)')
    .option('--uid-range <min-max>', 'agent uids and gids come from this range', '1900000000-1900999999');
}

function configFrom(flags: PathFlags & Partial<SupervisorOptions>, env: NodeJS.ProcessEnv): SupervisorConfig {
  const options: SupervisorOptions = {
    root: flags.root ?? '.',
    ...(flags.board ? { board: flags.board } : {}),
    ...(flags.format ? { format: flags.format } : {}),
    ...(flags.mapping ? { mapping: flags.mapping } : {}),
    ...(flags.agents ? { agents: flags.agents } : {}),
    ...(flags.home ? { home: flags.home } : {}),
    ...(flags.policies ? { policies: flags.policies } : {}),
    ...(flags.stateDir ? { stateDir: flags.stateDir } : {}),
    ...(flags.uidRange ? { uidRange: flags.uidRange } : {}),
    ...(flags.natsUrl ?? env.NATS_URL ? { natsUrl: flags.natsUrl ?? env.NATS_URL } : {}),
    ...(flags.natsCreds ?? env.NATS_CREDS ? { natsCreds: flags.natsCreds ?? env.NATS_CREDS } : {}),
    ...(flags.natsUser ?? env.NATS_USER ? { natsUser: flags.natsUser ?? env.NATS_USER } : {}),
    ...(env.NATS_PASSWORD ? { natsPassword: env.NATS_PASSWORD } : {}),
    ...(flags.instance ? { instance: flags.instance } : {}),
    ...(flags.killGrace ? { killGrace: flags.killGrace } : {}),
    ...(flags.tickInterval ? { tickInterval: flags.tickInterval } : {}),
    ...(flags.heartbeatTimeout ? { heartbeatTimeout: flags.heartbeatTimeout } : {}),
    ...(flags.restartBackoff ? { restartBackoff: flags.restartBackoff } : {}),
    ...(flags.aging ? { aging: flags.aging } : {}),
    ...(flags.diskReserve ? { diskReserve: flags.diskReserve } : {}),
    ...(flags.maxAttempts !== undefined ? { maxAttempts: Number(flags.maxAttempts) } : {}),
    ...(env.WARREN_FAULT_INJECTION === '1' && env.WARREN_CRASH_AT ? { crashAt: env.WARREN_CRASH_AT as SupervisorOptions['crashAt'] } : {}),
    ...(flags.logLevel ?? env.WARREN_LOG_LEVEL ? { logLevel: (flags.logLevel ?? env.WARREN_LOG_LEVEL) as SupervisorOptions['logLevel'] } : {}),
  };
  return resolveConfig(options, agentRunnerDir);
}

function makeLogger(config: SupervisorConfig, env: NodeJS.ProcessEnv): Logger {
  const options = { level: config.logLevel, redact: ['*.credential', '*.secret', '*.token'] };
  if (env.WARREN_LOG_FORMAT === 'json') return pino(options, pino.destination({ fd: 2, sync: true }));
  return pino(
    options,
    pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true }),
  );
}

/** How long a supervisor that hit a fatal error may take to close, beyond the agents' kill grace, in ms. */
const FATAL_CLOSE_MARGIN_MS = 15_000;

/** Takes the state directory for one supervisor; a live one already there is an error. */
function lockStateDir(config: SupervisorConfig): () => void {
  const pidFile = join(config.stateDir, 'supervisor.pid');
  const other = runningSupervisorPid(config);
  if (other !== undefined) {
    throw new WarrenError('WARREN_BUSY', `another supervisor (pid ${other}) is using ${config.stateDir}`);
  }
  writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
  return () => rmSync(pidFile, { force: true });
}

function runningSupervisorPid(config: SupervisorConfig): number | undefined {
  const pidFile = join(config.stateDir, 'supervisor.pid');
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return processExists(pid) ? pid : undefined;
}

async function supervise(mode: RunMode, flags: PathFlags & Partial<SupervisorOptions>, json: boolean): Promise<number> {
  const config = configFrom(flags, process.env);
  if (config.crashAt) process.stderr.write(`warren: FAULT INJECTION: this supervisor will die at '${config.crashAt}'\n`);
  const log = makeLogger(config, process.env);
  const secured = await secureStateDir(config.stateDir);
  if (secured > 0) log.warn({ stateDir: config.stateDir, entries: secured }, 'state directory was readable by others; made it private (0700, files 0600)');
  const unlock = lockStateDir(config);
  let boardLock: BoardLock | undefined;
  try {
    boardLock = lockBoard(config.boardDir, config.stateDir, log);
    const supervisor = await Supervisor.create(config, {
      logger: log,
      mode,
      env: process.env,
      // A fatal error closes what the supervisor started, then the command exits non-zero; a close
      // that hangs is cut short after the agents' kill grace and a margin.
      onFatal: () => setTimeout(() => process.exit(ExitCode.failed), config.killGraceMs + FATAL_CLOSE_MARGIN_MS).unref(),
    });
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        log.info({ signal }, 'signal received; shutting down');
        // A shutdown that hangs is a failure: force the exit after the grace period and a margin.
        setTimeout(() => process.exit(ExitCode.failed), config.killGraceMs + 15_000).unref();
        supervisor.shutdown(signal);
      });
    }
    // `kill -USR2 <pid>`: log what the supervisor holds in memory (why nothing moves).
    const inspect = (): void => log.warn({ view: supervisor.inspect() }, 'supervisor view');
    process.on('SIGUSR2', inspect);
    log.info({ board: relative(process.cwd(), config.boardDir) || '.', stateDir: config.stateDir, mode }, 'supervisor running');
    const summary = await supervisor.run().finally(() => process.off('SIGUSR2', inspect));
    if (mode === 'until-idle') {
      printSummary(summary, json);
      return summary.ok ? ExitCode.ok : ExitCode.failed;
    }
    return ExitCode.ok;
  } finally {
    boardLock?.release();
    unlock();
  }
}

function printSummary(summary: RunSummary, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return;
  }
  const lines = [`${summary.succeeded.length} succeeded, ${summary.failed.length} failed, ${summary.held.length} held, ${summary.unplaced.length} not placed, ${summary.blocked.length} blocked`];
  for (const t of summary.succeeded) lines.push(`  done    ${t}`);
  for (const f of summary.failed) lines.push(`  failed  ${f.taskId}: ${f.reason}`);
  for (const h of summary.held) lines.push(`  held    ${h.message}`);
  for (const u of summary.unplaced) lines.push(`  waiting ${u.taskId}: ${u.reason}`);
  for (const b of summary.blocked) lines.push(`  blocked ${b.taskId}: ${b.reason}`);
  for (const e of summary.templateErrors) lines.push(`  template ${e}`);
  for (const b of summary.board) lines.push(`  board   ${b.taskId}: ${b.message}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** The board-loading options given on the command line (`--format`, `--mapping`). */
async function boardOptions(flags: { format?: BoardFormatName; mapping?: string }): Promise<{ format?: BoardFormatName; mapping?: BoardMapping }> {
  return {
    ...(flags.format ? { format: flags.format } : {}),
    ...(flags.mapping ? { mapping: await loadMappingFile(flags.mapping) } : {}),
  };
}

/** Opens the state database of `config` for a read command. */
function openState(config: SupervisorConfig): SqliteDatabase {
  const path = join(config.stateDir, 'warren.db');
  if (!existsSync(path)) {
    throw new WarrenError('WARREN_NO_STATE', `no state at ${path} yet: run 'warren up' or 'warren run --until-idle' first`);
  }
  const db = openDatabase(path);
  migrateState(db);
  return db;
}

function table(rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')}\n`;
}

function print(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : text());
}

const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : '-');

/** The options of the commands that run a supervisor (`up`, `run`), besides the paths. */
function addSuperviseOptions(command: Command): Command {
  return addPathOptions(command)
    .option('--nats-url <url>', 'use this NATS server instead of starting one (env NATS_URL; may carry user:password@)')
    .option('--nats-creds <file>', 'NATS credentials file for --nats-url (env NATS_CREDS)')
    .option('--nats-user <user>', 'NATS user for --nats-url (env NATS_USER; the password from env NATS_PASSWORD)')
    .option('--instance <name>', "this Warren's name on NATS: prefix of its subjects, streams and consumers (default: from the state dir)")
    .option('--kill-grace <duration>', 'time agents get between SIGTERM and SIGKILL', '5s')
    .option('--tick-interval <duration>', 'time between ticks of the world', '200ms')
    .addOption(new Option('--format <format>', 'the board format (default: detected)').choices(BOARD_FORMAT_NAMES))
    .option('--mapping <file>', "a YAML/JSON file mapping the board's statuses, priorities and tags onto Warren's")
    .option('--heartbeat-timeout <duration>', 'kill an agent silent this long and re-queue its tasks', '20s')
    .option('--restart-backoff <duration>', 'first wait before another agent of a template that failed to start (doubles)', '1s')
    .option('--aging <duration>', 'a waiting task gains one priority level per this much waiting', '5m')
    .option('--max-attempts <n>', 'executions of a task lost to crashes before it fails', '3')
    .option('--disk-reserve <size>', "free space kept on the state dir's filesystem; below it no new work starts ('256MiB', '5%', or both: the smaller)", '256MiB,5%')
    .addOption(new Option('--log-level <level>').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']));
}

/**
 * Builds the `warren` command line program (commander). `run` parses argv and executes; the
 * returned promise resolves with the process exit code.
 */
export function buildProgram(): Command {
  const program = new Command('warren')
    .description('Warren: an operating-system runtime for AI agents')
    .showHelpAfterError()
    .exitOverride();

  addSuperviseOptions(program.command('up').description('run the supervisor until SIGINT or SIGTERM'))
    .action(async (flags: PathFlags & Partial<SupervisorOptions>) => {
      process.exitCode = await supervise('up', flags, false);
    });

  addSuperviseOptions(program.command('run').description('work the board; with --until-idle, exit once nothing is ready or running'))
    .option('--until-idle', 'exit when nothing is ready or running (0 if all went well, 1 with a summary otherwise)')
    .option('--json', 'print the summary as JSON')
    .action(async (flags: PathFlags & Partial<SupervisorOptions> & { untilIdle?: boolean; json?: boolean }) => {
      process.exitCode = await supervise(flags.untilIdle ? 'until-idle' : 'up', flags, flags.json ?? false);
    });

  addPathOptions(program.command('status').description('is a supervisor running, and what does the state say'))
    .option('--json', 'print JSON')
    .action((flags: PathFlags & { json?: boolean }) => {
      const config = configFrom(flags, {});
      const pid = runningSupervisorPid(config);
      const db = openState(config);
      try {
        const state = new StateStore(db);
        const audit = openAudit(db);
        const count = <T extends string>(values: readonly T[]) =>
          values.reduce<Record<string, number>>((acc, v) => ({ ...acc, [v]: (acc[v] ?? 0) + 1 }), {});
        const status = {
          supervisor: pid === undefined ? 'stopped' : 'running',
          pid: pid ?? null,
          stateDir: config.stateDir,
          tasks: count(state.tasks().map((t) => t.state)),
          agents: count(state.agents().map((a) => a.state)),
          openExecutions: state.openAssignments().length,
          auditRows: audit.lastSeq(),
        };
        print(flags.json ?? false, status, () =>
          table([
            ['supervisor', `${status.supervisor}${pid ? ` (pid ${pid})` : ''}`],
            ['state dir', status.stateDir],
            ['tasks', Object.entries(status.tasks).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'],
            ['agents', Object.entries(status.agents).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'],
            ['open executions', String(status.openExecutions)],
            ['audit rows', String(status.auditRows)],
          ]),
        );
      } finally {
        db.close();
      }
    });

  addPathOptions(program.command('agents').description('list agent instances'))
    .option('--json', 'print JSON')
    .action(async (flags: PathFlags & { json?: boolean }) => {
      const config = configFrom(flags, {});
      const db = openState(config);
      try {
        const { templates } = await loadTemplates(config.agentsDir, config.root);
        const agents = new StateStore(db).agents().map((a) => ({ ...a, isolation: templates.get(a.template)?.isolation ?? 'full' }));
        print(flags.json ?? false, agents, () =>
          table([
            ['NAME', 'TEMPLATE', 'UID', 'STATE', 'PID', 'TASKS', 'STARTED', 'LAST EXIT'],
            ...agents.map((a) => [
              a.isolation === 'full' ? a.name : `${a.name} (UNSAFE: ${a.isolation})`,
              a.template, String(a.uid), a.state, a.pid ? String(a.pid) : '-', String(a.tasksDone), iso(a.startedMs), a.lastExit ?? '-',
            ]),
          ]),
        );
      } finally {
        db.close();
      }
    });

  addPathOptions(program.command('tasks').description("list the board's tasks with what Warren knows of them"))
    .option('--json', 'print JSON')
    .action(async (flags: PathFlags & { json?: boolean }) => {
      const config = configFrom(flags, {});
      const board = await loadBoard(config.boardDir);
      const rows = existsSync(join(config.stateDir, 'warren.db')) ? (() => {
        const db = openState(config);
        try {
          return new Map(new StateStore(db).tasks().map((t) => [t.id, t]));
        } finally {
          db.close();
        }
      })() : new Map<string, TaskRow>();
      const positions = queuePositions(rows.values());
      const blocked = new Map(blockedTasks(board.tasks, board.config).map((b) => [b.taskId, b.reason]));
      const tasks = board.tasks.map((t) => ({
        id: t.id,
        title: t.title,
        status: t.status,
        priority: t.priority,
        capabilities: t.capabilities,
        assignee: t.assignee,
        dependsOn: t.dependsOn,
        state: rows.get(t.id)?.state ?? null,
        attempt: rows.get(t.id)?.attempt ?? 0,
        queuePosition: positions.get(t.id) ?? null,
        queueReason: rows.get(t.id)?.queueReason ?? null,
        blocked: blocked.get(t.id) ?? null,
        result: t.result ?? null,
        path: t.relativePath,
      }));
      const errors = board.errors.map((e) => ({ path: e.path, line: e.line, field: e.field ?? null, message: e.message }));
      print(flags.json ?? false, { tasks, errors }, () =>
        table([
          ['ID', 'STATUS', 'PRIORITY', 'CAPABILITIES', 'ASSIGNEE', 'WARREN', 'TITLE'],
          ...tasks.map((t) => [t.id, t.status, t.priority, t.capabilities.join(',') || '-', t.assignee ?? '-', t.blocked !== null ? 'blocked' : t.state ? `${t.state}#${t.attempt}` : '-', t.title]),
        ]) +
          tasks
            .filter((t) => t.queuePosition !== null && t.state === 'ready')
            .map((t) => `waiting #${t.queuePosition} ${t.id}: ${t.queueReason}\n`)
            .join('') +
          tasks
            .filter((t) => t.blocked !== null)
            .map((t) => `blocked ${t.id}: ${t.blocked}\n`)
            .join('') +
          errors.map((e) => `error: ${e.message}\n`).join(''),
      );
    });

  addPathOptions(program.command('accounts').description('print agent accounts like getent passwd'))
    .option('--json', 'print JSON')
    .option('--group', 'print group entries instead (like getent group)')
    .action((flags: PathFlags & { json?: boolean; group?: boolean }) => {
      const config = configFrom(flags, {});
      const db = openState(config);
      try {
        const accounts = openAccounts(db, { homeRoot: config.homeRoot, uidMin: config.uidMin, uidMax: config.uidMax });
        const list = accounts.list();
        print(flags.json ?? false, list, () =>
          list.map((a) => `${flags.group ? accounts.groupLine(a) : accounts.passwdLine(a)}\n`).join(''),
        );
      } finally {
        db.close();
      }
    });

  addPathOptions(program.command('audit').description('list and filter the audit trail'))
    .option('--json', 'print JSON')
    .option('--actor <actor>', 'only rows by this actor (e.g. supervisor, agent:shell-1)')
    .option('--action <action>', "only this action, or a prefix ending in '.*' (e.g. task.*)")
    .option('--object <object>', 'only rows about this object (e.g. task:count-lines)')
    .addOption(new Option('--decision <decision>', 'only policy decisions with this outcome').choices(['allow', 'deny']))
    .option('--since <duration>', 'only rows newer than this (e.g. 10m, 2h)')
    .option('--limit <n>', 'at most this many rows, newest last', '1000')
    .option('--verify', 'check the hash chain instead of listing')
    .action((flags: PathFlags & { json?: boolean; actor?: string; action?: string; object?: string; decision?: 'allow' | 'deny'; since?: string; limit: string; verify?: boolean }) => {
      const config = configFrom(flags, {});
      const db = openState(config);
      try {
        const audit = openAudit(db);
        if (flags.verify) {
          const result = audit.verify();
          print(flags.json ?? false, result, () =>
            result.ok ? `ok: ${result.rows} rows, hash chain intact\n` : `BROKEN at seq ${result.firstBadSeq}: ${result.reason}\n`,
          );
          if (!result.ok) process.exitCode = ExitCode.failed;
          return;
        }
        const limit = Number(flags.limit);
        if (!Number.isInteger(limit) || limit <= 0) throw new WarrenError('WARREN_USAGE', `--limit must be a positive whole number, got ${flags.limit}`);
        const rows = audit.query({
          ...(flags.actor ? { actor: flags.actor } : {}),
          ...(flags.action ? { action: flags.action } : {}),
          ...(flags.object ? { object: flags.object } : {}),
          ...(flags.decision ? { decision: flags.decision } : {}),
          ...(flags.since ? { sinceMs: Date.now() - parseDurationMs(flags.since, 'option --since') } : {}),
          limit,
          order: 'desc',
        }).reverse();
        print(flags.json ?? false, rows, () =>
          table([
            ['SEQ', 'TIME', 'ACTOR', 'ACTION', 'OBJECT', 'DECISION', 'DETAILS'],
            ...rows.map((r: AuditRecord) => [String(r.seq), iso(r.timeMs), r.actor, r.action, r.object, r.decision ?? '-', JSON.stringify(r.details ?? {})]),
          ]),
        );
      } finally {
        db.close();
      }
    });

  const board = program.command('board').description('read boards in any supported format');
  addPathOptions(board.command('check').description('load a board and report every task, error, WIP violation and dependency problem'))
    .addOption(new Option('--format <format>', 'the board format (default: detected)').choices(BOARD_FORMAT_NAMES))
    .option('--mapping <file>', "a YAML/JSON file mapping the board's statuses, priorities and tags onto Warren's")
    .option('--json', 'print JSON')
    .action(async (flags: PathFlags & { format?: BoardFormatName; json?: boolean }) => {
      const config = configFrom(flags, {});
      const report = await checkBoard(config.boardDir, await boardOptions(flags));
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatBoardReport(report)}\n`);
      process.exitCode = report.ok ? ExitCode.ok : ExitCode.failed;
    });
  addPathOptions(board.command('import').description('print a board as normalized tasks, or write it as a Warren board with --out'))
    .addOption(new Option('--format <format>', 'the source format (default: detected)').choices(BOARD_FORMAT_NAMES))
    .option('--mapping <file>', "a YAML/JSON file mapping the board's statuses, priorities and tags onto Warren's")
    .option('--out <dir>', 'write a Warren board (board.yaml + tasks/) into this new folder')
    .action(async (flags: PathFlags & { format?: BoardFormatName; out?: string }) => {
      const config = configFrom(flags, {});
      const snapshot = await loadBoard(config.boardDir, await boardOptions(flags));
      if (!flags.out) {
        process.stdout.write(`${JSON.stringify(normalizedTasks(snapshot), null, 2)}\n`);
      } else {
        const written = await importToWarrenBoard(snapshot, flags.out);
        process.stdout.write(`${written.map((p) => `wrote ${p}`).join('\n')}\n${written.length} files written; ${snapshot.errors.length} files could not be read\n`);
      }
      for (const error of snapshot.errors) process.stderr.write(`warren: ${error.message}\n`);
      process.exitCode = snapshot.errors.length === 0 ? ExitCode.ok : ExitCode.failed;
    });

  const operator = `user:${userInfo().username}`;
  addPathOptions(
    program
      .command('exec')
      .argument('<agent>', 'the agent (e.g. shell-1)')
      .argument('<command...>', 'the command and its arguments (put -- before options meant for it)')
      .description("run a command inside an agent's sandbox, as its tasks run; prints its output, exits with its code"),
  ).action(async (agent: string, argv: string[], flags: PathFlags) => {
    const config = configFrom(flags, {});
    process.exitCode = await execInAgent(config, {
      agent,
      argv,
      user: operator,
      stdout: process.stdout,
      stderr: process.stderr,
      hostEnv: process.env,
      logger: makeLogger({ ...config, logLevel: 'warn' }, process.env),
    });
  });
  const agentCommand = program.command('agent').description('operate on an agent: start, stop, restart, sleep, wake, delete');
  for (const verb of ['start', 'stop', 'restart', 'sleep', 'wake', 'delete'] as const) {
    addPathOptions(agentCommand.command(verb).argument('<name>', 'the agent (e.g. shell-1)').description(`${verb} an agent`))
      .option('--json', 'print JSON')
      .option('--wait <duration>', 'how long to wait for a running supervisor to report the outcome', '10s')
      .action(async (name: string, flags: PathFlags & { json?: boolean; wait: string }) => {
        process.exitCode = await operate(`agent.${verb}` as CommandKind, name, operator, flags);
      });
  }
  const taskCommand = program.command('task').description('operate on a task: cancel, retry');
  for (const verb of ['cancel', 'retry'] as const) {
    addPathOptions(taskCommand.command(verb).argument('<id>', 'the task id').description(`${verb} a task`))
      .option('--json', 'print JSON')
      .option('--wait <duration>', 'how long to wait for a running supervisor to report the outcome', '10s')
      .action(async (id: string, flags: PathFlags & { json?: boolean; wait: string }) => {
        process.exitCode = await operate(`task.${verb}` as CommandKind, id, operator, flags);
      });
  }

  addPolicyCommands(program);

  return program;
}

/**
 * Queues an operator command in the state database (durable: it survives a supervisor restart) and
 * waits up to `--wait` for the running supervisor to execute it and record the outcome.
 * @returns 0 when done, 1 when it failed or nobody ran it in time (it stays queued).
 */
async function operate(
  kind: CommandKind,
  target: string,
  requestedBy: string,
  flags: PathFlags & { json?: boolean; wait: string },
): Promise<number> {
  const config = configFrom(flags, {});
  const waitMs = parseDurationMs(flags.wait, 'option --wait');
  const db = openState(config);
  try {
    const state = new StateStore(db);
    const id = state.enqueueCommand(kind, target, requestedBy, Date.now());
    const running = runningSupervisorPid(config) !== undefined;
    const deadline = Date.now() + waitMs;
    let command = state.command(id)!;
    while (running && command.state === 'queued' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      command = state.command(id)!;
    }
    print(flags.json ?? false, command, () =>
      command.state === 'queued'
        ? `queued as command ${id}; ${running ? 'the supervisor has not run it yet' : 'no supervisor is running: it runs when one starts'}\n`
        : `${command.state}: ${command.outcome}\n`,
    );
    return command.state === 'done' ? ExitCode.ok : ExitCode.failed;
  } finally {
    db.close();
  }
}

/**
 * Runs the CLI on `argv` (as `process.argv`). Errors Warren throws on purpose are printed as one
 * line with their code; anything else with its stack.
 * @returns the exit code.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return ExitCode.ok;
    if (typeof code === 'string' && code.startsWith('commander.')) return ExitCode.usage;
    if (error instanceof WarrenError) {
      process.stderr.write(`warren: ${error.message} [${error.code}]\n`);
      return ExitCode.failed;
    }
    process.stderr.write(`warren: ${(error as Error).stack ?? String(error)}\n`);
    return ExitCode.failed;
  }
}

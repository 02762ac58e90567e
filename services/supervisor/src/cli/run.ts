import { rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Option, type Command } from 'commander';
import { WarrenError } from '@warren/core';
import { dashboardDir } from '@warren/dashboard';
import { SUPERVISOR_PID_FILE } from '@warren/registry';
import type { SupervisorConfig, SupervisorOptions } from '../config.js';
import { Supervisor, type RunMode, type RunSummary } from '../supervisor.js';
import { lockBoard, type BoardLock } from '../board-lock.js';
import { compactionPolicyFromEnv, MemoryWatch } from '../memory.js';
import { secureStateDir } from '../state-dir.js';
import { addPathOptions, BOARD_FORMAT_NAMES, configFrom, ExitCode, makeLogger, runningSupervisorPid, type PathFlags } from './common.js';

/** Where `warren up` serves the HTTP API and dashboard unless `--http` (or `WARREN_HTTP`) says otherwise. */
const DEFAULT_HTTP = '127.0.0.1:7070';

/** How long a supervisor that hit a fatal error may take to close, beyond the agents' kill grace, in ms. */
const FATAL_CLOSE_MARGIN_MS = 15_000;

/** Takes the state directory for one supervisor; a live one already there is an error. */
function lockStateDir(config: SupervisorConfig): () => void {
  const pidFile = join(config.stateDir, SUPERVISOR_PID_FILE);
  const other = runningSupervisorPid(config);
  if (other !== undefined) {
    throw new WarrenError('WARREN_BUSY', `another supervisor (pid ${other}) is using ${config.stateDir}`);
  }
  writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
  return () => rmSync(pidFile, { force: true });
}

/** Runs a supervisor on the board of `flags` until it stops (`up`) or the board is idle (`until-idle`). @returns the exit code. */
async function supervise(mode: RunMode, flags: PathFlags & Partial<SupervisorOptions>, json: boolean): Promise<number> {
  // `up` serves the API and dashboard unless told otherwise; a run until idle does only when asked.
  const http = flags.http ?? process.env.WARREN_HTTP ?? (mode === 'up' ? DEFAULT_HTTP : 'off');
  const config = configFrom({ ...flags, http }, process.env);
  if (config.crashAt) process.stderr.write(`warren: FAULT INJECTION: this supervisor will die at '${config.crashAt}'\n`);
  const log = makeLogger(config, process.env);
  const compaction = compactionPolicyFromEnv(process.env);
  const secured = await secureStateDir(config.stateDir);
  if (secured > 0) log.warn({ stateDir: config.stateDir, entries: secured }, 'state directory was readable by others; made it private (0700, files 0600)');
  const unlock = lockStateDir(config);
  let boardLock: BoardLock | undefined;
  let memory: MemoryWatch | undefined;
  try {
    boardLock = lockBoard(config.boardDir, config.stateDir, log);
    const supervisor = await Supervisor.create(config, {
      logger: log,
      mode,
      env: process.env,
      // A fatal error closes what the supervisor started, then the command exits non-zero; a close
      // that hangs is cut short after the agents' kill grace and a margin.
      dashboardDir: dashboardDir(),
      onFatal: () => setTimeout(() => process.exit(ExitCode.failed), config.killGraceMs + FATAL_CLOSE_MARGIN_MS).unref(),
    });
    const api = supervisor.api;
    if (api) {
      // The link holds a token: it goes to the person at the terminal, never to the log.
      const hours = Math.round((api.signInExpiresMs - Date.now()) / 3_600_000);
      process.stderr.write(`\nWarren dashboard: ${api.url}/\nSign in (valid ${hours} h): ${api.signInUrl}\n\n`);
    }
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
    // The heap a burst of agent starts grew is given back once it has settled (see memory.ts).
    if (compaction) {
      memory = new MemoryWatch({ starting: () => supervisor.startingAgents(), log: log.child({ component: 'memory' }), policy: compaction });
      memory.start();
    }
    log.info({ board: relative(process.cwd(), config.boardDir) || '.', stateDir: config.stateDir, mode }, 'supervisor running');
    const summary = await supervisor.run().finally(() => process.off('SIGUSR2', inspect));
    if (mode === 'until-idle') {
      printSummary(summary, json);
      return summary.ok ? ExitCode.ok : ExitCode.failed;
    }
    return ExitCode.ok;
  } finally {
    memory?.stop();
    boardLock?.release();
    unlock();
  }
}

/** Prints the summary of a run until idle, as text or JSON. */
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


/** The options of the commands that run a supervisor (`up`, `run`), besides the paths. */
function addSuperviseOptions(command: Command): Command {
  return addPathOptions(command)
    .option('--nats-url <urls>', 'use this NATS server instead of starting one, or the servers of a NATS cluster separated by commas (env NATS_URL; may carry user:password@)')
    .option('--nats-replicas <n>', 'servers keeping each JetStream stream, 1 to 5 (default: 1; 3 with several --nats-url servers, at most their number)')
    .option('--nats-creds <file>', 'NATS credentials file for --nats-url (env NATS_CREDS)')
    .option('--nats-user <user>', 'NATS user for --nats-url (env NATS_USER; the password from env NATS_PASSWORD)')
    .option('--instance <name>', "this Warren's name on NATS: prefix of its subjects, streams and consumers (default: from the state dir)")
    .option('--kube-image <image>', 'the image of agent pods (warren-pod-agent and the runner): turns on templates with placement.target kubernetes (kubeconfig from KUBECONFIG, ~/.kube/config or in-cluster)')
    .option('--kube-namespace <name>', 'the Kubernetes namespace of agent pods (default: warren)')
    .option('--kube-context <name>', 'the kubeconfig context to use (default: the current one)')
    .option('--kube-runtime-class <name>', 'a RuntimeClass for agent pods (gvisor, kata)')
    .option('--kill-grace <duration>', 'time agents get between SIGTERM and SIGKILL', '5s')
    .option('--tick-interval <duration>', 'time between ticks of the world', '200ms')
    .addOption(new Option('--format <format>', 'the board format (default: detected)').choices(BOARD_FORMAT_NAMES))
    .option('--mapping <file>', "a YAML/JSON file mapping the board's statuses, priorities and tags onto Warren's")
    .option('--heartbeat-timeout <duration>', 'kill an agent silent this long and re-queue its tasks', '20s')
    .option('--restart-backoff <duration>', 'first wait before another agent of a template that failed to start (doubles)', '1s')
    .option('--aging <duration>', 'a waiting task gains one priority level per this much waiting', '5m')
    .option('--max-attempts <n>', 'executions of a task lost to crashes before it fails', '3')
    .option('--http <host:port>', "serve the HTTP API and dashboard here, or 'off' (env WARREN_HTTP; default: 127.0.0.1:7070 for up, off for run --until-idle)")
    .option('--audit-key <file>', 'the ed25519 key that signs audit checkpoints (default: <state-dir>/audit-signing.key)')
    .option('--disk-reserve <size>', "free space kept on the state dir's filesystem; below it no new work starts ('256MiB', '5%', or both: the smaller)", '256MiB,5%')
    .option('--node-name <name>', "this host's name as a node, where agents may be placed", 'local')
    .option('--node-labels <key=value,...>', "this host's node labels, matched by templates' placement.labels (such as zone=a,gpu=1)")
    .option('--node-max-agents <n>', 'agents this host runs at most (default: no limit)')
    .option('--node-memory <size>', "memory this host gives its agents, summed over their resources.memory (default: the host's total)")
    .option('--no-local-node', 'run no agent on this host, only on `warren node` hosts')
    .addOption(new Option('--log-level <level>').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']));
}


/** Adds `warren up` and `warren run [--until-idle]`: the commands that run a supervisor. */
export function registerRunCommands(program: Command): void {
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
}

import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { openAccounts } from '@warren/accounts';
import { parseDurationMs } from '@warren/core';
import { blockedTasks, loadBoard } from '@warren/kanban';
import type { CommandKind, TaskView } from '@warren/registry';
import { loadTemplates } from '../templates.js';
import { addPathOptions, configFrom, ExitCode, iso, openStateRegistry, print, runningSupervisorPid, table, withRegistry, type PathFlags } from './common.js';

/** Adds the read commands `warren status`, `agents`, `tasks` and `accounts`; they read the state through the registry's queries. */
export function registerReadCommands(program: Command): void {
  addPathOptions(program.command('status').description('is a supervisor running, and what does the state say'))
    .option('--json', 'print JSON')
    .action((flags: PathFlags & { json?: boolean }) => {
      const config = configFrom(flags, {});
      const status = withRegistry(config, (registry) => registry.status());
      const pid = status.pid;
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
    });

  addPathOptions(program.command('agents').description('list agent instances'))
    .option('--json', 'print JSON')
    .action(async (flags: PathFlags & { json?: boolean }) => {
      const config = configFrom(flags, {});
      const rows = withRegistry(config, (registry) => registry.agents());
      const { templates } = await loadTemplates(config.agentsDir, config.root);
      const agents = rows.map((a) => ({ ...a, isolation: templates.get(a.template)?.isolation ?? 'full' }));
      print(flags.json ?? false, agents, () =>
        table([
          ['NAME', 'TEMPLATE', 'UID', 'STATE', 'PID', 'TASKS', 'STARTED', 'LAST EXIT'],
          ...agents.map((a) => [
            a.isolation === 'full' ? a.name : `${a.name} (UNSAFE: ${a.isolation})`,
            a.template, String(a.uid), a.state, a.pid ? String(a.pid) : '-', String(a.tasksDone), iso(a.startedMs), a.lastExit ?? '-',
          ]),
        ]),
      );
    });

  addPathOptions(program.command('tasks').description("list the board's tasks with what Warren knows of them"))
    .option('--json', 'print JSON')
    .action(async (flags: PathFlags & { json?: boolean }) => {
      const config = configFrom(flags, {});
      const board = await loadBoard(config.boardDir);
      const rows = existsSync(join(config.stateDir, 'warren.db'))
        ? new Map(withRegistry(config, (registry) => registry.tasks()).map((t) => [t.id, t]))
        : new Map<string, TaskView>();
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
        queuePosition: rows.get(t.id)?.queuePosition ?? null,
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
      withRegistry(config, (registry) => {
        const accounts = openAccounts(registry.db, { homeRoot: config.homeRoot, uidMin: config.uidMin, uidMax: config.uidMax });
        const list = accounts.list();
        print(flags.json ?? false, list, () =>
          list.map((a) => `${flags.group ? accounts.groupLine(a) : accounts.passwdLine(a)}\n`).join(''),
        );
      });
    });
}

/** Adds the operator commands `warren agent <verb> <name>` and `warren task <verb> <id>`, queued for the supervisor. */
export function registerOperatorCommands(program: Command): void {
  const operator = `user:${userInfo().username}`;
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
  const registry = openStateRegistry(config);
  try {
    const id = registry.commands.enqueue(kind, target, requestedBy, Date.now());
    const running = runningSupervisorPid(config) !== undefined;
    const command = await registry.commands.waitForOutcome(id, { timeoutMs: running ? waitMs : 0 });
    print(flags.json ?? false, command, () =>
      command.state === 'queued'
        ? `queued as command ${id}; ${running ? 'the supervisor has not run it yet' : 'no supervisor is running: it runs when one starts'}\n`
        : `${command.state}: ${command.outcome}\n`,
    );
    return command.state === 'done' ? ExitCode.ok : ExitCode.failed;
  } finally {
    registry.db.close();
  }
}


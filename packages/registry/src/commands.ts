import type { SqliteDatabase } from '@warren/store';
import { RegistryError } from './errors.js';

/** Operator commands, executed by the running supervisor through the durable `commands` queue. */
export const CommandKind = {
  agentStart: 'agent.start',
  agentStop: 'agent.stop',
  agentRestart: 'agent.restart',
  agentSleep: 'agent.sleep',
  agentWake: 'agent.wake',
  agentDelete: 'agent.delete',
  taskCancel: 'task.cancel',
  taskRetry: 'task.retry',
  /** A manager starts a worker of a template (`target`: the template's name). */
  templateStart: 'template.start',
} as const;
export type CommandKind = (typeof CommandKind)[keyof typeof CommandKind];

const COMMAND_KINDS: ReadonlySet<string> = new Set(Object.values(CommandKind));

/** True when `kind` names a {@link CommandKind}. */
export function isCommandKind(kind: string): kind is CommandKind {
  return COMMAND_KINDS.has(kind);
}

/** Where a command stands: waiting in the queue, or executed with an outcome. */
export type CommandState = 'queued' | 'done' | 'failed';

/** A row of the `commands` table. */
export interface CommandRow {
  readonly id: number;
  readonly kind: CommandKind;
  /** The agent name (`agent.*`), task id (`task.*`) or template name (`template.*`) the command is about. */
  readonly target: string;
  /** The policy subject who asked, e.g. `user:alice`. */
  readonly requestedBy: string;
  /** When it was queued, ms since the epoch. */
  readonly requestedMs: number;
  readonly state: CommandState;
  /** What happened (`done`) or why not (`failed`); null while queued. */
  readonly outcome: string | null;
  /** When it was executed, ms since the epoch; null while queued. */
  readonly doneMs: number | null;
}

interface CommandRecord {
  id: number;
  kind: CommandKind;
  target: string;
  requested_by: string;
  requested_ms: number;
  state: CommandState;
  outcome: string | null;
  done_ms: number | null;
}

const commandRow = (r: CommandRecord): CommandRow => ({
  id: r.id,
  kind: r.kind,
  target: r.target,
  requestedBy: r.requested_by,
  requestedMs: r.requested_ms,
  state: r.state,
  outcome: r.outcome,
  doneMs: r.done_ms,
});

/**
 * The policy request a command makes: `sub` = who asked, `obj` = `agent:<name>` or `task:<id>`,
 * `act` = the verb (`agent.stop` → `stop`).
 */
export function commandRequest(command: Pick<CommandRow, 'kind' | 'target' | 'requestedBy'>): { sub: string; obj: string; act: string } {
  const dot = command.kind.indexOf('.');
  return { sub: command.requestedBy, obj: `${command.kind.slice(0, dot)}:${command.target}`, act: command.kind.slice(dot + 1) };
}

/** Options of {@link CommandQueue.waitForOutcome}. */
export interface WaitForOutcomeOptions {
  /** Give up after this long, in ms; the command then stays queued. */
  readonly timeoutMs: number;
  /** How often the row is read again, in ms. Default 50. */
  readonly pollMs?: number;
  /** Stops waiting early (the row as it stands is returned). */
  readonly signal?: AbortSignal;
}

/**
 * The durable operator-command queue: the `commands` table of the state database. Any process may
 * enqueue (the CLI, later the HTTP API); the running supervisor takes the queued commands on its
 * tick, executes each once and writes its outcome, which the requester reads back. A command queued
 * while no supervisor runs waits for the next start. The schema comes from {@link migrateState}.
 */
export class CommandQueue {
  private readonly stmts;

  /** Prepares the statements over `db` (migrated by {@link migrateState}). */
  constructor(readonly db: SqliteDatabase) {
    this.stmts = {
      insert: db.prepare<[string, string, string, number]>('INSERT INTO commands (kind, target, requested_by, requested_ms) VALUES (?, ?, ?, ?)'),
      queued: db.prepare<[], CommandRecord>("SELECT * FROM commands WHERE state = 'queued' ORDER BY id"),
      get: db.prepare<[number], CommandRecord>('SELECT * FROM commands WHERE id = ?'),
      finish: db.prepare<[CommandState, string, number, number]>('UPDATE commands SET state = ?, outcome = ?, done_ms = ? WHERE id = ?'),
    };
  }

  /**
   * Queues a command in its own transaction (or the caller's); the running supervisor executes it
   * on a tick.
   * @param requestedBy the policy subject asking, e.g. `user:alice`.
   * @param nowMs the request time, ms since the epoch.
   * @returns the command's id (increasing: the queue's order).
   * @throws {RegistryError} `WARREN_COMMAND_INVALID` if `kind` is not a {@link CommandKind} or
   *   `target` or `requestedBy` is empty.
   */
  enqueue(kind: CommandKind, target: string, requestedBy: string, nowMs: number): number {
    if (!isCommandKind(kind)) {
      throw new RegistryError('WARREN_COMMAND_INVALID', `command kind '${String(kind)}' is not one of ${[...COMMAND_KINDS].join(', ')}`);
    }
    if (typeof target !== 'string' || target.length === 0) throw new RegistryError('WARREN_COMMAND_INVALID', `command ${kind}: the target is empty`);
    if (typeof requestedBy !== 'string' || requestedBy.length === 0) {
      throw new RegistryError('WARREN_COMMAND_INVALID', `command ${kind} ${target}: 'requestedBy' is empty`);
    }
    return Number(this.stmts.insert.run(kind, target, requestedBy, nowMs).lastInsertRowid);
  }

  /** Commands not yet executed, oldest first. */
  queued(): CommandRow[] {
    return this.stmts.queued.all().map(commandRow);
  }

  /** The command `id`, or undefined when there is none. */
  get(id: number): CommandRow | undefined {
    const r = this.stmts.get.get(id);
    return r && commandRow(r);
  }

  /**
   * Records a command's outcome: `done` with what happened, or `failed` with why.
   * @param nowMs the execution time, ms since the epoch.
   */
  finish(id: number, state: 'done' | 'failed', outcome: string, nowMs: number): void {
    this.stmts.finish.run(state, outcome, nowMs, id);
  }

  /**
   * Waits until the command `id` is no longer queued, reading its row every `pollMs` (another
   * process executes it), or until `timeoutMs` has passed or `signal` aborts.
   * @returns the row as it stands then: `state` is still `queued` when nobody executed it in time.
   * @throws {RegistryError} `WARREN_COMMAND_UNKNOWN` if there is no command `id`.
   */
  async waitForOutcome(id: number, options: WaitForOutcomeOptions): Promise<CommandRow> {
    const pollMs = options.pollMs ?? 50;
    const deadline = Date.now() + options.timeoutMs;
    const read = (): CommandRow => this.get(id) ?? (() => {
      throw new RegistryError('WARREN_COMMAND_UNKNOWN', `no command ${id} in the queue`);
    })();
    let command = read();
    while (command.state === 'queued' && Date.now() < deadline && !options.signal?.aborted) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.min(pollMs, deadline - Date.now()))));
      command = read();
    }
    return command;
  }
}

/**
 * Executes one command kind: returns the outcome text (the command is then `done`) or throws (it is
 * then `failed` with the error's message). Runs once per command.
 * @param nowMs the tick's time, ms since the epoch.
 */
export type CommandHandler = (command: CommandRow, nowMs: number) => string;

/** One handler per {@link CommandKind}: what the supervisor does for each operator command. */
export type CommandHandlers = { readonly [K in CommandKind]: CommandHandler };

/** What {@link runCommands} calls around each command, so its caller can decide and audit. */
export interface CommandHooks {
  /**
   * Decides whether the command may run, before its handler. False fails it with `policy denies
   * <sub> <act> on <obj>` (see {@link commandRequest}); a throw fails it with the error's message.
   * Default: every command may run.
   */
  readonly authorize?: (command: CommandRow) => boolean;
  /**
   * Called inside the transaction that writes the outcome, so an audit row written here commits
   * with it. A throw rolls the outcome back and propagates.
   */
  readonly onDone?: (command: CommandRow, state: 'done' | 'failed', outcome: string) => void;
  /** Runs `fn` in one transaction. Default: `db.transaction(fn)()` of the queue's database. */
  readonly transaction?: (fn: () => void) => void;
}

/** What {@link runCommands} did with one command. */
export interface CommandRun {
  readonly command: CommandRow;
  readonly state: 'done' | 'failed';
  readonly outcome: string;
}

/**
 * Executes the queued commands oldest first, each once: `hooks.authorize` decides, the handler of
 * its kind runs, and the outcome is written with `hooks.onDone` in one transaction. A command of a
 * kind with no handler (written by a newer CLI) fails with a message naming the kind; the others
 * still run.
 * @param nowMs the tick's time, ms since the epoch (passed to handlers, written as `doneMs`).
 * @returns what happened to each command, in the order executed (for the caller's log).
 * @throws what `hooks.onDone` or the transaction throws; commands after it stay queued.
 */
export function runCommands(queue: CommandQueue, handlers: CommandHandlers, hooks: CommandHooks, nowMs: number): CommandRun[] {
  const transaction = hooks.transaction ?? ((fn: () => void) => queue.db.transaction(fn)());
  const runs: CommandRun[] = [];
  for (const command of queue.queued()) {
    let state: 'done' | 'failed' = 'done';
    let outcome: string;
    try {
      const handler: CommandHandler | undefined = isCommandKind(command.kind) ? handlers[command.kind] : undefined;
      if (handler === undefined) throw new RegistryError('WARREN_COMMAND_INVALID', `unknown command kind '${command.kind}'`);
      if (hooks.authorize && !hooks.authorize(command)) {
        const { sub, obj, act } = commandRequest(command);
        throw new RegistryError('WARREN_POLICY_DENIED', `policy denies ${sub} ${act} on ${obj}`);
      }
      outcome = handler(command, nowMs);
    } catch (error) {
      state = 'failed';
      outcome = error instanceof Error ? error.message : String(error);
    }
    transaction(() => {
      queue.finish(command.id, state, outcome, nowMs);
      hooks.onDone?.(command, state, outcome);
    });
    runs.push({ command, state, outcome });
  }
  return runs;
}

import type { HttpPorts } from '@warren/http';
import type { Decision } from '@warren/policy';

/**
 * What Warren's MCP server needs from the process that serves it. The supervisor implements it over
 * its context (most members are the same as {@link HttpPorts}'); tests build it over a real registry,
 * policy and audit trail. Plain JSON: times in ms since the Unix epoch, sizes in bytes.
 */

/** Who calls: the token's or session's policy subject and role. */
export interface McpCaller {
  /** The policy subject, e.g. `user:alice`. */
  readonly principal: string;
  /** The token's role: `viewer` or `operator`. */
  readonly role: string;
}

/** The policy as the MCP server asks it: the supervisor's `Authorizer`. */
export interface McpAuthorizer {
  /**
   * Decides `principal` doing `action` on `object`, appending one `policy.decide` audit row whose
   * details carry `context` (the tool and the SHA-256 of its arguments).
   */
  authorize(request: {
    readonly principal: string;
    readonly object: string;
    readonly action: string;
    readonly context?: Readonly<Record<string, string | number | boolean | null>>;
  }): Decision;
}

/**
 * An agent's persistent, sandboxed computer (the supervisor implements it over the runtime's exec):
 * every call runs inside the agent's sandbox as its uid, confined to its home, decided by the policy as
 * `(principal, agent:<name>, exec)` and audited.
 *
 * Errors: `WarrenError` with code `WARREN_COMPUTER_PATH` (a path outside the home),
 * `WARREN_COMPUTER_AGENT` (no such agent, or it cannot be started), `WARREN_COMPUTER_LIMIT` (too
 * large), or the policy's denial.
 */
export interface AgentComputer {
  /** Runs `command` with `/bin/sh -c` in the agent's home (or `cwd` inside it). `timeoutMs` default 30 s, at most 10 min; stdout and stderr capped at 1 MiB each. */
  runCommand(
    agent: string,
    input: { readonly command: string; readonly cwd?: string; readonly stdin?: string; readonly timeoutMs?: number },
    principal: string,
  ): Promise<{
    readonly exitCode: number | null;
    readonly signal: string | null;
    readonly stdout: string;
    readonly stderr: string;
    readonly truncated: boolean;
    readonly timedOut: boolean;
    /** Why the kernel ended it (out of memory, the process limit), or null. */
    readonly reason?: string | null;
    readonly durationMs: number;
  }>;
  /** Reads a file inside the home (a path relative to it, or absolute under it); `maxBytes` default and at most 1 MiB. */
  readFile(
    agent: string,
    input: { readonly path: string; readonly maxBytes?: number },
    principal: string,
  ): Promise<{ readonly path: string; readonly content: string; readonly encoding: 'utf8' | 'base64'; readonly sizeBytes: number; readonly truncated: boolean }>;
  /** Creates or replaces (`append`: adds to) a file inside the home, as the agent's uid. */
  writeFile(
    agent: string,
    input: { readonly path: string; readonly content: string; readonly encoding?: 'utf8' | 'base64'; readonly append?: boolean },
    principal: string,
  ): Promise<{ readonly path: string; readonly sizeBytes: number }>;
  /** Lists a directory inside the home (default the home itself). */
  listDirectory(
    agent: string,
    input: { readonly path?: string },
    principal: string,
  ): Promise<{
    readonly path: string;
    readonly entries: readonly { readonly name: string; readonly type: 'file' | 'directory' | 'symlink' | 'other'; readonly sizeBytes: number; readonly modifiedMs: number }[];
    /** More than the listing holds (10,000 entries). */
    readonly truncated?: boolean;
  }>;
}

/** A subtask as a manager's tools show it. */
export interface SubtaskView {
  readonly id: string;
  readonly title: string;
  /** The task's state in Warren (`ready`, `running`, `succeeded`, …), or `new` before Warren read its card. */
  readonly state: string;
  readonly agent: string | null;
  /** Its last execution's result (the agent's final answer, then its branch), or why it waits or failed; null before any. */
  readonly result: string | null;
}

/**
 * What a manager agent's MCP tools do (the supervisor implements it). Every method is called after
 * the policy allowed `(principal, mcp:<tool>, call)`; each checks ownership and the manager's quotas
 * itself and throws a `WarrenError` whose message says which rule or quota refused, with the counts:
 * `WARREN_MANAGER_NOT_MANAGER` (the caller's template is not a manager), `WARREN_MANAGER_QUOTA`,
 * `WARREN_MANAGER_NOT_OWNER` (another manager's worker or subtask, a task it is not working on),
 * `WARREN_MANAGER_TEMPLATE` (a template outside its `manager.templates`), `WARREN_TASK_NOT_FOUND`.
 */
export interface ManagerPorts {
  /**
   * Writes a subtask card under `parent` in the board's own format with its parent field set (Warren
   * `parent`, Backlog.md `parent_task_id`); `parent` must be a task `principal` is working on now,
   * or a subtask it created under one. Counts against `maxSubtasks` (its open subtasks).
   */
  createSubtask(
    principal: string,
    input: { readonly parent: string; readonly title: string; readonly body?: string | undefined; readonly capabilities?: readonly string[] | undefined; readonly priority?: string | undefined },
  ): Promise<{ readonly id: string; readonly parent: string; readonly path: string }>;
  /**
   * Starts a worker of `template` (one of its `manager.templates`) under `maxWorkers` (its live
   * workers), waiting up to `waitMs` for the supervisor to carry it out.
   * @returns the worker's name, or null when the command is still queued.
   */
  startWorker(principal: string, template: string, waitMs: number): Promise<{ readonly worker: string | null; readonly command: number; readonly state: string; readonly outcome: string | null }>;
  /** Its workers: state (`starting`, `running`, `stopped`, …), live or not, current task and last result. */
  listWorkers(principal: string): { readonly workers: readonly { readonly name: string; readonly template: string; readonly state: string; readonly live: boolean; readonly currentTask: string | null; readonly lastResult: string | null }[] };
  /** Stops one of its own workers (a durable `agent.stop` command as `principal`). */
  stopWorker(principal: string, name: string): Promise<{ readonly command: number; readonly state: string; readonly outcome: string | null }>;
  /** Cancels one of its own subtasks (a durable `task.cancel` command as `principal`). */
  cancelSubtask(principal: string, id: string): Promise<{ readonly command: number; readonly state: string; readonly outcome: string | null }>;
  /** Each subtask of `parent` (a task it works or worked on, or one with its subtasks): state and result. */
  subtaskResults(principal: string, parent: string): { readonly parent: string; readonly subtasks: readonly SubtaskView[] };
}

/** The ports of {@link createMcpServer}: the HTTP API's reads plus what only MCP asks. */
export interface McpPorts
  extends Pick<HttpPorts, 'registry' | 'version' | 'agents' | 'templates' | 'board' | 'taskExtras' | 'createTask' | 'subscribe' | 'requestTick'> {
  /** Decides and audits each tool call (`mcp:<tool>`, `call`). */
  readonly authorizer: McpAuthorizer;
  /**
   * Whether the policy lets `principal` call `tool` (`(principal, mcp:<tool>, call)`), without an
   * audit row: used to build the tool list each caller sees.
   */
  mayCall(principal: string, tool: string): boolean;
  /** The policy's explanation of `(principal, object, action)` without an audit row: the deciding rule, or null when none matched. */
  explain(principal: string, object: string, action: string): { readonly allowed: boolean; readonly rule: string | null };
  /**
   * Sends `body` to agent `to` as `principal` (through the broker, decided and audited as a message).
   * @returns the message's id.
   * @throws {WarrenError} `WARREN_AGENT_NOT_FOUND` when there is no agent `to`.
   */
  sendMessage(principal: string, to: string, body: string): Promise<{ readonly id: string }>;
  /**
   * Moves task `id`'s card to `column` (an id, value or name) in the board's own format, as
   * `principal`: the board's process rules apply and Warren treats it as a person's move.
   * @returns the task, the column ids it moved from and to, and its file relative to the board.
   * @throws {WarrenError} `WARREN_TASK_NOT_FOUND` for a task not on the board; `WARREN_TASK_UPDATE`
   *   (field `status`) for an unknown column; `WARREN_TASK_MOVE_REFUSED` when the process forbids
   *   the move; `WARREN_TASK_CONFLICT` when the file changed meanwhile.
   */
  moveTask(id: string, column: string, principal: string): Promise<{ readonly id: string; readonly from: string; readonly to: string; readonly path: string }>;
  /** The agents' computers; absent where the runtime cannot exec (the computer tools are then left out). */
  readonly computer?: AgentComputer;
  /** What managers' tools do; absent: the manager tools are left out. */
  readonly managers?: ManagerPorts;
  /** The supervisor's message service, for the messaging tools (`messaging-tools.ts`); absent: those tools are left out. */
  readonly messaging?: McpMessaging;
}

/**
 * What the messaging tools need of the supervisor's message service (its `MessagingPort`): every
 * call names the caller as `self`. Errors: `WarrenError` `WARREN_POLICY_DENIED`,
 * `WARREN_AGENT_NOT_FOUND`, `WARREN_MESSAGE_INVALID`, `WARREN_MESSAGE_TIMEOUT`, `WARREN_BROKER`.
 */
export interface McpMessaging {
  receive(self: string, input: { readonly max?: number; readonly waitMs?: number }): Promise<readonly { readonly id: string; readonly from: string; readonly body: unknown; readonly sentAtMs: number; readonly request: boolean; readonly deliveries: number }[]>;
  ack(self: string, ids: readonly string[]): Promise<number>;
  request(self: string, input: { readonly to: string; readonly body: unknown; readonly timeoutMs?: number }): Promise<{ readonly id: string; readonly from: string; readonly inReplyTo: string; readonly body: unknown; readonly sentAtMs: number }>;
  reply(self: string, input: { readonly to: string; readonly inReplyTo: string; readonly body: unknown }): Promise<{ readonly id: string }>;
  publish(self: string, input: { readonly topic: string; readonly body: unknown }): Promise<{ readonly id: string }>;
  presence(self: string): Promise<readonly { readonly name: string; readonly template: string; readonly state: string; readonly status: 'idle' | 'busy' | null; readonly lastSeenMs: number | null }[]>;
}

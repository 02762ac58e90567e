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

import { createHash } from 'node:crypto';
import { McpServer, ProtocolError, ResourceTemplate, type ToolAnnotations } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { WarrenError } from '@warren/core';
import { CommandKind, TaskState } from '@warren/registry';
import { MANAGER_TOOLS, registerManagerTools } from './manager-tools.js';
import type { McpCaller, McpPorts } from './ports.js';
import { registerMessagingTools } from './messaging-tools.js';

/** The JSON-RPC error code of a call the policy refuses (in the implementation-defined server range, JSON-RPC 2.0 §5.1). */
export const MCP_FORBIDDEN = -32001;

/** Audit rows `describe_task` returns at most. */
const TASK_AUDIT_ROWS = 100;
/** Executions `describe_agent` returns at most. */
const AGENT_EXECUTIONS = 20;

/** Which tools exist, by group: reads (viewers), operate and computer (operators, by the shipped policy); managers' tools are in manager-tools.ts. */
export const READ_TOOLS = ['list_agents', 'describe_agent', 'list_tasks', 'describe_task', 'get_board', 'list_templates', 'search_audit'] as const;
export const OPERATE_TOOLS = ['create_task', 'move_task', 'cancel_task', 'retry_task', 'start_agent', 'stop_agent', 'sleep_agent', 'wake_agent', 'send_message'] as const;
export const COMPUTER_TOOLS = ['run_command', 'read_file', 'write_file', 'list_directory'] as const;
/** Every tool name of Warren's MCP server. */
export const MCP_TOOLS: readonly string[] = [...READ_TOOLS, ...OPERATE_TOOLS, ...COMPUTER_TOOLS, ...MANAGER_TOOLS];

/**
 * The SHA-256 (hex) of `value` serialized as JSON with object keys sorted at every depth, so equal
 * arguments give equal digests whatever their key order (the shape of RFC 8785's canonical JSON
 * for the values MCP arguments hold).
 */
export function argsDigest(value: unknown): string {
  const canonical = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(canonical);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
    }
    return v;
  };
  return createHash('sha256').update(JSON.stringify(canonical(value ?? {})) ?? 'null').digest('hex');
}

/**
 * Decides and audits one call of `tool` by `caller` (`(principal, mcp:<tool>, call)`, context
 * `{ tool, argsSha256 }`: one audit row).
 * @throws {ProtocolError} code {@link MCP_FORBIDDEN} naming the deciding rule when denied.
 */
export function authorizeCall(ports: McpPorts, caller: McpCaller, tool: string, args: unknown): void {
  const decision = ports.authorizer.authorize({ principal: caller.principal, object: `mcp:${tool}`, action: 'call', context: { tool, argsSha256: argsDigest(args) } });
  if (!decision.allowed) {
    throw new ProtocolError(MCP_FORBIDDEN, `policy denies ${caller.principal} calling tool '${tool}' (${decision.rule ?? 'no rule allows it'})`, { tool, rule: decision.rule });
  }
}

const READ: ToolAnnotations = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };
const WRITE: ToolAnnotations = { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false };
const DESTRUCTIVE: ToolAnnotations = { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false };

const Agent = z.looseObject({ name: z.string(), template: z.string(), state: z.string(), capabilities: z.array(z.string()) });
const Task = z.looseObject({ id: z.string(), state: z.string(), agent: z.string().nullable(), queuePosition: z.number().nullable(), queueReason: z.string().nullable() });
const AuditRow = z.looseObject({ seq: z.number(), actor: z.string(), action: z.string(), object: z.string() });
const Accepted = z.object({ command: z.number().int(), state: z.string(), outcome: z.string().nullable() });
const AgentName = z.string().min(1).max(200).describe('The agent instance, e.g. shell-1');
const TaskId = z.string().min(1).max(200).describe("The task's id");

/** A tool result: the JSON as text for clients that read text, and as structured content. */
function result<T extends Record<string, unknown>>(value: T): { content: { type: 'text'; text: string }[]; structuredContent: T } {
  return { content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value };
}

function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** Options of {@link createMcpServer}. */
export interface McpServerOptions {
  /** How long an operate tool waits for its command's outcome, ms; 0: answer `queued` at once. Default 0. */
  readonly commandWaitMs?: number;
}

/**
 * Builds Warren's MCP server for one caller: an SDK `McpServer` holding only the tools
 * `ports.mayCall(caller.principal, tool)` allows (a list-time filter, not audited), the resources
 * `warren://agents/{name}`, `warren://tasks/{id}`, `warren://board` and the prompts `triage_board`
 * and `why_not_assigned`. Every tool call is decided and audited by {@link authorizeCall} before it
 * runs (one audit row). Operate tools queue durable commands (`registry.commands`) the supervisor
 * runs and authorizes again on its tick.
 */
export function createMcpServer(ports: McpPorts, caller: McpCaller, options: McpServerOptions = {}): McpServer {
  const server = new McpServer(
    { name: 'warren', version: ports.version, title: 'Warren' },
    {
      capabilities: { tools: { listChanged: true }, resources: { subscribe: true, listChanged: true }, prompts: {} },
      instructions: "Warren runs AI agents as sandboxed Unix accounts and assigns them tasks from a kanban board. Read with list_agents, list_tasks, get_board; act with create_task and the agent tools; use an agent's computer with run_command and the file tools.",
    },
  );
  const { principal } = caller;
  const tool = <I extends z.ZodObject, O extends z.ZodObject>(
    name: string,
    config: { title: string; description: string; input: I; output: O; annotations: ToolAnnotations },
    /** Answers the structured content; the SDK checks it against `output`. */
    run: (args: z.infer<I>) => unknown,
  ): void => {
    if (!ports.mayCall(principal, name)) return;
    server.registerTool(name, { title: config.title, description: config.description, inputSchema: config.input, outputSchema: config.output, annotations: config.annotations }, (async (args: z.infer<I>) => {
      authorizeCall(ports, caller, name, args);
      return result(plain((await run(args)) as Record<string, unknown>));
    }) as never);
  };

  const command = async (kind: CommandKind, target: string): Promise<z.infer<typeof Accepted>> => {
    const id = ports.registry.commands.enqueue(kind, target, principal, Date.now());
    ports.requestTick();
    const wait = options.commandWaitMs ?? 0;
    if (wait > 0) {
      try {
        const row = await ports.registry.commands.waitForOutcome(id, { timeoutMs: wait });
        return { command: id, state: row.state, outcome: row.outcome };
      } catch {
        // Still queued when the wait ends: the caller reads it later.
      }
    }
    const row = ports.registry.commands.get(id);
    return { command: id, state: row?.state ?? 'queued', outcome: row?.outcome ?? null };
  };
  const knownAgent = (name: string): void => {
    if (!ports.agents().some((a) => a.name === name)) throw new WarrenError('WARREN_AGENT_NOT_FOUND', `no agent '${name}'`);
  };
  const knownTask = (id: string): void => {
    if (!ports.registry.task(id)) throw new WarrenError('WARREN_TASK_NOT_FOUND', `no task '${id}'`);
  };

  // Reads.
  tool(
    'list_agents',
    {
      title: 'List agents',
      description: 'Agent instances with template, state, capabilities, load and resource usage; filter by capability, template or state.',
      input: z.object({ capability: z.string().optional(), template: z.string().optional(), state: z.string().optional().describe('running, sleeping, stopped, or a live status: idle, busy') }),
      output: z.object({ agents: z.array(Agent) }),
      annotations: READ,
    },
    ({ capability, template, state }) => ({
      agents: ports
        .agents()
        .filter((a) => (template === undefined || a.template === template) && (state === undefined || a.state === state || a.live?.status === state))
        .filter((a) => capability === undefined || a.capabilities.includes(capability)),
    }),
  );
  const describeAgent = (name: string) => {
    const agent = ports.agents().find((a) => a.name === name);
    if (!agent) throw new WarrenError('WARREN_AGENT_NOT_FOUND', `no agent '${name}'`);
    const recentTasks = ports.registry.executions({ agent: name, order: 'desc', limit: AGENT_EXECUTIONS });
    return { ...agent, template: agent.template, limits: ports.templates().find((t) => t.name === agent.template)?.resources ?? {}, recentTasks };
  };
  tool(
    'describe_agent',
    {
      title: 'Describe an agent',
      description: 'One agent: account (uid, home), limits, load, usage and its recent executions.',
      input: z.object({ name: AgentName }),
      output: Agent.extend({ limits: z.record(z.string(), z.unknown()), recentTasks: z.array(z.looseObject({})) }),
      annotations: READ,
    },
    ({ name }) => describeAgent(name),
  );
  const States = z.enum(Object.values(TaskState) as [TaskState, ...TaskState[]]);
  tool(
    'list_tasks',
    {
      title: 'List tasks',
      description: 'Tasks with state, assignee, queue position and the reason each waits; filter by status, capability or assignee.',
      input: z.object({ status: States.optional(), capability: z.string().optional(), assignee: z.string().optional() }),
      output: z.object({ tasks: z.array(Task) }),
      annotations: READ,
    },
    async ({ status, capability, assignee }) => {
      const cards = new Map((await ports.board()).cards.map((c) => [c.id, c]));
      const tasks = ports.registry
        .tasks({ ...(status !== undefined ? { state: status } : {}), ...(assignee !== undefined ? { agent: assignee } : {}) })
        .map((t) => ({ ...t, title: cards.get(t.id)?.title ?? null, capabilities: cards.get(t.id)?.capabilities ?? [] }))
        .filter((t) => capability === undefined || t.capabilities.includes(capability));
      return { tasks };
    },
  );
  const describeTask = (id: string) => {
    const task = ports.registry.task(id);
    if (!task) throw new WarrenError('WARREN_TASK_NOT_FOUND', `no task '${id}'`);
    const audit = ports.registry.auditPage({ filter: { object: `task:${id}` }, limit: TASK_AUDIT_ROWS, newest: true }).rows;
    return { ...task, ...ports.taskExtras(id), audit };
  };
  tool(
    'describe_task',
    {
      title: 'Describe a task',
      description: 'One task: its attempts (executions), result (output tail and reason), trace id and audit rows.',
      input: z.object({ id: TaskId }),
      output: Task.extend({ executions: z.array(z.looseObject({})), output: z.string(), audit: z.array(AuditRow) }),
      annotations: READ,
    },
    ({ id }) => describeTask(id),
  );
  tool(
    'get_board',
    {
      title: 'The board',
      description: "The kanban board as Warren reads it: columns with counts and WIP limits, held files, and cards joined with task states.",
      input: z.object({}),
      output: z.looseObject({ name: z.string().optional(), columns: z.array(z.looseObject({})), cards: z.array(z.looseObject({ id: z.string() })), held: z.array(z.looseObject({})) }),
      annotations: READ,
    },
    () => ports.board(),
  );
  tool(
    'list_templates',
    {
      title: 'List templates',
      description: "Agent templates: capabilities, WIP, instance bounds, lifecycle, isolation, limits, role (manager or worker) with a manager's quotas, and why a file does not load.",
      input: z.object({}),
      output: z.object({ templates: z.array(z.looseObject({ name: z.string(), capabilities: z.array(z.string()) })) }),
      annotations: READ,
    },
    () => ({ templates: ports.templates() }),
  );
  tool(
    'search_audit',
    {
      title: 'Search the audit trail',
      description: "A page of Warren's hash-chained audit trail, filtered by actor, action (exact or a prefix like task.*), object, decision and time.",
      input: z.object({
        actor: z.string().optional(),
        action: z.string().optional(),
        object: z.string().optional(),
        decision: z.enum(['allow', 'deny']).optional(),
        sinceMs: z.number().int().nonnegative().optional(),
        untilMs: z.number().int().nonnegative().optional(),
        limit: z.number().int().min(1).max(1000).optional().describe('Rows, default 100'),
        newest: z.boolean().optional().describe('The newest rows first page (default true)'),
      }),
      output: z.object({ rows: z.array(AuditRow), next: z.number(), more: z.boolean() }),
      annotations: READ,
    },
    (q) =>
      ports.registry.auditPage({
        filter: {
          ...(q.actor !== undefined ? { actor: q.actor } : {}),
          ...(q.action !== undefined ? { action: q.action } : {}),
          ...(q.object !== undefined ? { object: q.object } : {}),
          ...(q.decision !== undefined ? { decision: q.decision } : {}),
          ...(q.sinceMs !== undefined ? { sinceMs: q.sinceMs } : {}),
          ...(q.untilMs !== undefined ? { untilMs: q.untilMs } : {}),
        },
        limit: q.limit ?? 100,
        newest: q.newest ?? true,
      }),
  );

  // Operate.
  tool(
    'create_task',
    {
      title: 'Create a task',
      description: "Writes a new card on the board in the board's own format; the supervisor assigns it to an agent with the capabilities.",
      input: z.object({
        title: z.string().min(1).max(200),
        body: z.string().max(65_536).optional(),
        capabilities: z.array(z.string().min(1).max(100)).max(20).optional(),
        priority: z.string().min(1).max(50).optional().describe("One of the board's priorities"),
        column: z.string().max(100).optional(),
        dependsOn: z.array(z.string().min(1).max(200)).max(50).optional(),
        parent: z.string().min(1).max(200).optional().describe('The parent task (a task on the board): the new task is its subtask'),
        command: z.string().min(1).max(65_536).optional().describe("The shell command the task runs (Warren boards: the task's command field)"),
      }),
      output: z.object({ id: z.string(), path: z.string() }),
      annotations: WRITE,
    },
    async (draft) => {
      const created = await ports.createTask(draft, principal);
      ports.requestTick();
      return created;
    },
  );
  tool(
    'move_task',
    {
      title: 'Move a task to another column',
      description:
        "Moves a card to another column of the board, written in the board's own format, as a person would: the board's process rules apply, and Warren reacts as to a person's move (a running task moved out of in-progress is cancelled).",
      input: z.object({ id: TaskId, column: z.string().min(1).max(100).describe('The column: its id, its value in the board files, or its name') }),
      output: z.object({ id: z.string(), from: z.string(), to: z.string(), path: z.string() }),
      annotations: WRITE,
    },
    async ({ id, column }) => {
      const moved = await ports.moveTask(id, column, principal);
      ports.requestTick();
      return moved;
    },
  );
  const commandTool = (name: string, title: string, kind: CommandKind, target: 'agent' | 'task' | 'template', annotations: ToolAnnotations): void => {
    const input = target === 'task' ? z.object({ id: TaskId }) : z.object({ name: target === 'template' ? z.string().min(1).max(200).describe('The template to start an instance of') : AgentName });
    tool(name, { title, description: `${title}: queues a durable command the supervisor decides and runs on its next tick; answers its id and state.`, input, output: Accepted, annotations }, (args) => {
      const a = args as { id?: string; name?: string };
      if (target === 'task') knownTask(a.id!);
      else if (target === 'agent') knownAgent(a.name!);
      else if (!ports.templates().some((t) => t.name === a.name)) throw new WarrenError('WARREN_TEMPLATE_NOT_FOUND', `no template '${a.name}'`);
      return command(kind, (a.id ?? a.name)!);
    });
  };
  commandTool('cancel_task', 'Cancel a task', CommandKind.taskCancel, 'task', DESTRUCTIVE);
  commandTool('retry_task', 'Retry a task', CommandKind.taskRetry, 'task', WRITE);
  commandTool('start_agent', 'Start an agent', CommandKind.agentStart, 'template', WRITE);
  commandTool('stop_agent', 'Stop an agent', CommandKind.agentStop, 'agent', DESTRUCTIVE);
  commandTool('sleep_agent', 'Put an agent to sleep', CommandKind.agentSleep, 'agent', DESTRUCTIVE);
  commandTool('wake_agent', 'Wake an agent', CommandKind.agentWake, 'agent', WRITE);
  tool(
    'send_message',
    {
      title: 'Send a message to an agent',
      description: 'Sends a text message to an agent over the broker, as you.',
      input: z.object({ to: AgentName, body: z.string().min(1).max(65_536) }),
      output: z.object({ id: z.string() }),
      annotations: WRITE,
    },
    async ({ to, body }) => {
      knownAgent(to);
      return ports.sendMessage(principal, to, body);
    },
  );
  registerMessagingTools(tool, ports.messaging, principal);

  // An agent's computer.
  const computer = ports.computer;
  if (computer) {
    tool(
      'run_command',
      {
        title: "Run a command on an agent's computer",
        description: "Runs a shell command (/bin/sh -c) inside the agent's sandbox as its Unix account, in its home; files it writes persist. Output capped at 1 MiB each, time-limited (default 30 s, at most 10 min).",
        input: z.object({ agent: AgentName, command: z.string().min(1).max(65_536), cwd: z.string().max(4096).optional(), stdin: z.string().max(1_048_576).optional(), timeoutMs: z.number().int().min(1).max(600_000).optional() }),
        output: z.object({ exitCode: z.number().nullable(), signal: z.string().nullable(), stdout: z.string(), stderr: z.string(), truncated: z.boolean(), timedOut: z.boolean(), durationMs: z.number() }),
        annotations: { ...DESTRUCTIVE, openWorldHint: true },
      },
      ({ agent, ...input }) => computer.runCommand(agent, input, principal),
    );
    tool(
      'read_file',
      {
        title: "Read a file on an agent's computer",
        description: "Reads a file inside the agent's home (a path relative to it); text as utf8, anything else as base64; at most 1 MiB.",
        input: z.object({ agent: AgentName, path: z.string().min(1).max(4096), maxBytes: z.number().int().min(1).max(1_048_576).optional() }),
        output: z.object({ path: z.string(), content: z.string(), encoding: z.enum(['utf8', 'base64']), sizeBytes: z.number(), truncated: z.boolean() }),
        annotations: READ,
      },
      ({ agent, ...input }) => computer.readFile(agent, input, principal),
    );
    tool(
      'write_file',
      {
        title: "Write a file on an agent's computer",
        description: "Creates or replaces (append: adds to) a file inside the agent's home, as its Unix account.",
        input: z.object({ agent: AgentName, path: z.string().min(1).max(4096), content: z.string().max(1_048_576), encoding: z.enum(['utf8', 'base64']).optional(), append: z.boolean().optional() }),
        output: z.object({ path: z.string(), sizeBytes: z.number() }),
        annotations: DESTRUCTIVE,
      },
      ({ agent, ...input }) => computer.writeFile(agent, input, principal),
    );
    tool(
      'list_directory',
      {
        title: "List a directory on an agent's computer",
        description: "Lists a directory inside the agent's home (default the home).",
        input: z.object({ agent: AgentName, path: z.string().max(4096).optional() }),
        output: z.object({ path: z.string(), entries: z.array(z.object({ name: z.string(), type: z.enum(['file', 'directory', 'symlink', 'other']), sizeBytes: z.number(), modifiedMs: z.number() })) }),
        annotations: READ,
      },
      ({ agent, ...input }) => computer.listDirectory(agent, input, principal),
    );
  }

  if (ports.managers) registerManagerTools(tool, ports.managers, principal);

  // Resources: the reads, addressable. Reading one is decided as the read tool it mirrors.
  const json = (uri: string, value: unknown) => ({ contents: [{ uri, mimeType: 'application/json', text: JSON.stringify(value) }] });
  if (ports.mayCall(principal, 'describe_agent')) {
    server.registerResource(
      'agent',
      new ResourceTemplate('warren://agents/{name}', { list: () => ({ resources: ports.registry.agents().map((a) => ({ uri: `warren://agents/${a.name}`, name: a.name, mimeType: 'application/json' })) }) }),
      { title: 'An agent', description: 'One agent as describe_agent answers it', mimeType: 'application/json' },
      (uri, variables) => {
        const name = String(variables['name']);
        authorizeCall(ports, caller, 'describe_agent', { name });
        return json(uri.href, describeAgent(name));
      },
    );
  }
  if (ports.mayCall(principal, 'describe_task')) {
    server.registerResource(
      'task',
      new ResourceTemplate('warren://tasks/{id}', { list: () => ({ resources: ports.registry.tasks().map((t) => ({ uri: `warren://tasks/${t.id}`, name: t.id, mimeType: 'application/json' })) }) }),
      { title: 'A task', description: 'One task as describe_task answers it', mimeType: 'application/json' },
      (uri, variables) => {
        const id = String(variables['id']);
        authorizeCall(ports, caller, 'describe_task', { id });
        return json(uri.href, describeTask(id));
      },
    );
  }
  if (ports.mayCall(principal, 'get_board')) {
    server.registerResource('board', 'warren://board', { title: 'The board', description: 'The board with its cards and the agent templates', mimeType: 'application/json' }, async (uri) => {
      authorizeCall(ports, caller, 'get_board', {});
      return json(uri.href, { ...(await ports.board()), templates: ports.templates() });
    });
  }

  // Prompts.
  if (ports.mayCall(principal, 'get_board')) {
    server.registerPrompt('triage_board', { title: 'Triage the board', description: 'Look at the board and say what is stuck, what waits and why, and what to do next.' }, async () => {
      authorizeCall(ports, caller, 'get_board', {});
      const board = await ports.board();
      return {
        description: 'Triage of the Warren board',
        messages: [
          {
            role: 'user',
            content: {
              type: 'text',
              text:
                'Triage this Warren board. For each waiting or failed task say why it is not moving (queue reason, missing capability, dependencies, WIP limits) and what an operator should do; then list the next three actions.\n\n' +
                JSON.stringify({ columns: board.columns, held: board.held, cards: board.cards, templates: ports.templates().map((t) => ({ name: t.name, capabilities: t.capabilities, instances: t.instances, maxInstances: t.maxInstances })) }),
            },
          },
        ],
      };
    });
  }
  if (ports.mayCall(principal, 'describe_task')) {
    server.registerPrompt(
      'why_not_assigned',
      { title: 'Why is a task not assigned', description: "The task's queue reason and the policy's explanation, to reason about why no agent took it.", argsSchema: z.object({ task: z.string().min(1).max(200).describe("The task's id") }) },
      ({ task }) => {
        authorizeCall(ports, caller, 'describe_task', { id: task });
        const view = ports.registry.task(task);
        if (!view) throw new WarrenError('WARREN_TASK_NOT_FOUND', `no task '${task}'`);
        const agents = ports.agents().map((a) => {
          const e = ports.explain(a.name, `task:${task}`, 'assign');
          return { agent: a.name, template: a.template, state: a.state, load: a.live?.load ?? null, wip: a.wip, capabilities: a.capabilities, policyAllows: e.allowed, rule: e.rule };
        });
        return {
          description: `Why task ${task} is not assigned`,
          messages: [
            {
              role: 'user',
              content: {
                type: 'text',
                text:
                  `Explain why Warren has not assigned task '${task}' and what would let it run. Its state is '${view.state}', queue position ${String(view.queuePosition)}, queue reason: ${view.queueReason ?? 'none'}. ` +
                  `For each agent, whether the policy allows assigning the task to it (policy rule) and its load:\n\n${JSON.stringify(agents)}`,
              },
            },
          ],
        };
      },
    );
  }
  return server;
}

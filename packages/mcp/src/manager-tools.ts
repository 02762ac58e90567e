/**
 * The tools of manager agents (templates with `role: manager`): split a task into subtasks on the
 * board, start workers from the templates their policy and `manager.templates` allow, watch them,
 * stop them, cancel subtasks and read the subtasks' results. Each call is decided and audited as
 * `(principal, mcp:<tool>, call)` by the server before it runs; the supervisor's {@link ManagerPorts}
 * then checks ownership and the quotas. A caller that may not call a tool does not see it; calling
 * it anyway is decided (denied) and audited by the HTTP endpoint.
 */
import type { ToolAnnotations } from '@modelcontextprotocol/server';
import { z } from 'zod';
import type { ManagerPorts } from './ports.js';

/** The manager tools, in the order they are registered. */
export const MANAGER_TOOLS = ['create_subtask', 'start_worker', 'list_workers', 'stop_worker', 'cancel_subtask', 'subtask_results'] as const;

/**
 * How long `start_worker` waits for the supervisor to start the worker, in ms: the next tick takes
 * the command, which on a loaded host can be seconds away. Below the MCP clients' usual 60 s
 * request timeout, so the caller reads `queued` rather than a timeout.
 */
export const START_WORKER_WAIT_MS = 45_000;

/**
 * Registers one tool on the caller's server when the policy lets the caller see it (the server's
 * own helper: it filters by `mayCall`, authorizes and audits each call, and answers the result as
 * text and structured content).
 */
export type ToolRegistrar = <I extends z.ZodObject, O extends z.ZodObject>(
  name: string,
  config: { title: string; description: string; input: I; output: O; annotations: ToolAnnotations },
  run: (args: z.infer<I>) => unknown,
) => void;

const READ: ToolAnnotations = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };
const WRITE: ToolAnnotations = { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false };
const DESTRUCTIVE: ToolAnnotations = { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false };

const TaskId = z.string().min(1).max(200);
const Command = z.object({ command: z.number().int(), state: z.string(), outcome: z.string().nullable() });
const Subtask = z.object({ id: z.string(), title: z.string(), state: z.string(), agent: z.string().nullable(), result: z.string().nullable() });

/**
 * Registers the manager tools for `principal` through `tool` (see {@link ToolRegistrar}), each
 * carried out by `managers`.
 */
export function registerManagerTools(tool: ToolRegistrar, managers: ManagerPorts, principal: string): void {
  tool(
    'create_subtask',
    {
      title: 'Create a subtask',
      description:
        "Writes a subtask card on the board under a parent task you are working on (or a subtask of one), in the board's own format with its parent set; an agent with its capabilities takes it. Your parent task completes when all its subtasks are done. Counts against your maxSubtasks quota.",
      input: z.object({
        parent: TaskId.describe('The task you are working on (or one of your subtasks)'),
        title: z.string().min(1).max(200),
        body: z.string().max(65_536).optional(),
        capabilities: z.array(z.string().min(1).max(100)).max(20).optional().describe('Capabilities the worker must offer, e.g. cap:code'),
        priority: z.string().min(1).max(50).optional(),
      }),
      output: z.object({ id: z.string(), parent: z.string(), path: z.string() }),
      annotations: WRITE,
    },
    (input) => managers.createSubtask(principal, input),
  );
  tool(
    'start_worker',
    {
      title: 'Start a worker',
      description: 'Starts an agent of a template your manager.templates allows, as your worker; refused beyond your maxWorkers quota (live workers). Answers the worker\'s name.',
      input: z.object({ template: z.string().min(1).max(200).describe('The worker template') }),
      output: Command.extend({ worker: z.string().nullable() }),
      annotations: WRITE,
    },
    ({ template }) => managers.startWorker(principal, template, START_WORKER_WAIT_MS),
  );
  tool(
    'list_workers',
    {
      title: 'List your workers',
      description: 'The workers you started: state, whether live, current task and last result.',
      input: z.object({}),
      output: z.object({ workers: z.array(z.object({ name: z.string(), template: z.string(), state: z.string(), live: z.boolean(), currentTask: z.string().nullable(), lastResult: z.string().nullable() })) }),
      annotations: READ,
    },
    () => managers.listWorkers(principal),
  );
  tool(
    'stop_worker',
    {
      title: 'Stop a worker',
      description: 'Stops one of your own workers (a durable command the supervisor runs on its next tick).',
      input: z.object({ name: z.string().min(1).max(200).describe('The worker, e.g. coder-1') }),
      output: Command,
      annotations: DESTRUCTIVE,
    },
    ({ name }) => managers.stopWorker(principal, name),
  );
  tool(
    'cancel_subtask',
    {
      title: 'Cancel a subtask',
      description: 'Cancels one of your own subtasks (a durable command the supervisor runs on its next tick).',
      input: z.object({ id: TaskId }),
      output: Command,
      annotations: DESTRUCTIVE,
    },
    ({ id }) => managers.cancelSubtask(principal, id),
  );
  tool(
    'subtask_results',
    {
      title: 'Results of subtasks',
      description: "Each subtask of a parent task: its state, agent and result (the worker's final answer and branch).",
      input: z.object({ parent: TaskId }),
      output: z.object({ parent: z.string(), subtasks: z.array(Subtask) }),
      annotations: READ,
    },
    ({ parent }) => managers.subtaskResults(principal, parent),
  );
}

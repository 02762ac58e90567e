/**
 * A manager's subtasks on the other board formats: on an Obsidian Kanban board and on a
 * JSON-config (Promethean) board, a manager (the built-in loop against a scripted fake LLM) splits
 * its task into two subtasks through Warren's MCP tools; each subtask is written with its parent in
 * the format's own place (a note's `parent`, a file's `parent`), a worker it started does them, and
 * the parent ends done once both are, with `task.parent_done` recorded once.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadBoard } from '@warren/kanban';
import type { FakeLlmRequest, FakeTurn } from '@warren/testing';
import { requireMachine, startWarren } from '../support/cli.js';
import { makeAgentsLayout, type AgentsLayout } from '../agents/support.js';

const layouts: AgentsLayout[] = [];
afterEach(async () => {
  for (const layout of layouts.splice(0)) await layout.remove();
});

beforeAll(() => {
  requireMachine();
});

const llm = 'runtime: { kind: llm, provider: openai, model: gpt-5.2, maxTurns: 6, timeout: 60s }';
const TEMPLATES = {
  'lead.yaml': `name: lead\ncapabilities: [cap:plan]\n${llm}\nrole: manager\nmanager: { maxWorkers: 1, maxSubtasks: 4, templates: [coder] }\nmaxInstances: 1\n`,
  'coder.yaml': `name: coder\ncapabilities: [cap:code]\n${llm}\nmaxInstances: 1\n`,
};
const PARTS = ['A', 'B'] as const;

/** The manager starts a worker and creates two subtasks of TASK-1; the worker answers each subtask. */
function script(request: FakeLlmRequest): FakeTurn {
  const text = JSON.stringify(request.body);
  const messages = (request.body as { messages?: { role?: string }[] }).messages ?? [];
  const results = messages.slice(messages.map((m) => m.role).lastIndexOf('user')).filter((m) => m.role === 'tool').length;
  const usage = { inputTokens: 100, outputTokens: 20 };
  if (text.includes('Build the parts')) {
    if (results === 0) return { toolCalls: [{ name: 'warren_start_worker', arguments: { template: 'coder' } }], usage };
    if (results === 1) {
      return {
        toolCalls: PARTS.map((p) => ({ name: 'warren_create_subtask', arguments: { parent: 'TASK-1', title: `Write part ${p}`, body: `Write part ${p}, then say so.`, capabilities: ['cap:code'] } })),
        usage,
      };
    }
    return { text: 'Split into two subtasks.', usage };
  }
  const part = [...PARTS].filter((p) => text.includes(`Write part ${p}`)).sort((a, b) => text.lastIndexOf(`Write part ${a}`) - text.lastIndexOf(`Write part ${b}`)).pop();
  return { text: part ? `Part ${part} written.` : 'nothing to do', usage };
}

interface BoardCase {
  readonly name: string;
  /** Writes the board with TASK-1 (capability cap:plan) in its ready column under `dir`; returns the board folder. */
  readonly make: (dir: string) => string;
  /** Where a subtask's parent is written: the file's text must hold this. */
  readonly parentText: string;
}

const CASES: readonly BoardCase[] = [
  {
    name: 'Obsidian Kanban',
    make: (dir) => {
      const board = join(dir, 'vault');
      mkdirSync(join(board, 'notes'), { recursive: true });
      writeFileSync(join(board, 'notes', 'Build the parts.md'), '---\nid: TASK-1\ncapabilities: [cap:plan]\n---\nSplit the work into two parts for a worker.\n');
      writeFileSync(
        join(board, 'kanban.md'),
        ['---', '', 'kanban-plugin: board', '', '---', '', '## Todo', '', '- [ ] [Build the parts](notes/Build%20the%20parts.md) prio:P1', '', '', '## In Progress', '', '', '', '## Done', '', '', ''].join('\n'),
      );
      return board;
    },
    parentText: '\nparent: "TASK-1"\n',
  },
  {
    name: 'JSON-config (Promethean)',
    make: (dir) => {
      const board = join(dir, 'json');
      mkdirSync(join(board, 'tasks'), { recursive: true });
      writeFileSync(join(board, 'board.kanban.json'), JSON.stringify({ tasksDir: 'tasks', requiredFields: ['title', 'status'], statusValues: ['todo', 'in_progress', 'done'] }, null, 2));
      writeFileSync(
        join(board, 'tasks', 'Build the parts.md'),
        '---\nuuid: "TASK-1"\ntitle: "Build the parts"\nstatus: "todo"\npriority: "P1"\ncapabilities: ["cap:plan"]\n---\nSplit the work into two parts for a worker.\n',
      );
      return board;
    },
    parentText: '\nparent: "TASK-1"\n',
  },
];

describe.each(CASES)('a manager on a $name board', (c) => {
  it('writes its subtasks with their parent in the format’s own field; the worker does them and the parent ends done once', async () => {
    const layout = await makeAgentsLayout(script, { templates: TEMPLATES });
    layouts.push(layout);
    const board = c.make(layout.dir);
    const args = layout.args('run', '--until-idle', '--kill-grace', '1s', '--http', '127.0.0.1:0');
    args[args.indexOf('--board') + 1] = board;
    const run = startWarren(args);
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 200_000);
    const result = await run.done;
    clearTimeout(timer);
    expect(result.signal, result.stderr.slice(-4000)).toBeNull();
    expect(result.code, result.stderr.slice(-4000)).toBe(0);

    const snapshot = await loadBoard(board);
    expect(snapshot.errors).toEqual([]);
    const subtasks = snapshot.tasks.filter((t) => t.id !== 'TASK-1');
    expect(subtasks.map((t) => t.title).sort()).toEqual(['Write part A', 'Write part B']);
    for (const subtask of subtasks) {
      expect(subtask.parentTaskId).toBe('TASK-1');
      expect(subtask.status).toBe(snapshot.config.roles.done);
      expect(readFileSync(subtask.path, 'utf8')).toContain(c.parentText);
    }
    expect(snapshot.tasks.find((t) => t.id === 'TASK-1')?.status).toBe(snapshot.config.roles.done);

    const ids = subtasks.map((t) => t.id).sort();
    expect(layout.query<{ subtask: string; parent: string }>('SELECT subtask, parent FROM manager_subtasks ORDER BY subtask')).toEqual(ids.map((subtask) => ({ subtask, parent: 'TASK-1' })));
    const rows = new Map(layout.query<{ id: string; state: string; reason: string | null }>('SELECT id, state, reason FROM tasks').map((t) => [t.id, t]));
    for (const id of ids) expect(rows.get(id)?.state).toBe('succeeded');
    expect(rows.get('TASK-1')?.state).toBe('succeeded');
    expect(rows.get('TASK-1')?.reason).toMatch(/^all 2 subtasks done:/);
    const parentDone = layout.query<{ details: string }>("SELECT details FROM audit WHERE action = 'task.parent_done'");
    expect(parentDone.map((r) => (JSON.parse(r.details) as { subtasks: string[] }).subtasks.sort())).toEqual([ids]);
    expect(readdirSync(board).filter((name) => name.startsWith('.warren-create'))).toEqual([]);
  }, 240_000);
});

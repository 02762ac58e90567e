/**
 * Managers and workers, end to end: a manager agent (Warren's built-in loop against a scripted fake
 * LLM, in its bubblewrap sandbox) splits a task on a Backlog.md board into three subtasks through
 * Warren's MCP tools and starts two workers; its quota refuses a third. The workers (the built-in
 * loop too) do the subtasks, each in its own git worktree; one of them tries to start agents and is
 * denied, in the audit trail. The parent waits in progress for its subtasks and ends done with the
 * three sub-results on its card. Then a subtask that fails keeps its parent waiting with the reason,
 * and the manager's tools refuse what is not its own and what its quota does not allow.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
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

/** A `tools/call` of Warren's MCP server from inside a sandbox (through the agent's gateway, which adds its token), printing `<label> <status> <body>`. */
function mcpCall(label: string, tool: string, args: Record<string, unknown>): string {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: args } });
  return `node -e "fetch('http://127.0.0.1:4141/mcp',{method:'POST',headers:{'content-type':'application/json',accept:'application/json, text/event-stream','mcp-protocol-version':'2025-06-18'},body:process.argv[1]}).then(async r=>console.log('${label}', r.status, (await r.text()).slice(0,400)), e=>console.log('${label}', e.message))" '${body}'`;
}

const llm = 'runtime: { kind: llm, provider: openai, model: gpt-5.2, maxTurns: 12, timeout: 120s }';
const TEMPLATES = {
  'lead.yaml': `name: lead\ncapabilities: [cap:plan]\n${llm}\nrole: manager\nmanager: { maxWorkers: 2, maxSubtasks: 5, templates: [coder] }\nmaxInstances: 1\n`,
  'coder.yaml': `name: coder\ncapabilities: [cap:code]\n${llm}\nrepository: { source: ../app }\nmaxInstances: 3\n`,
};
const PARENT = `---\nid: TASK-1\ntitle: Build the parts\nstatus: To Do\nassignee: []\ncreated_date: '2026-12-01'\nlabels:\n  - cap:plan\npriority: high\n---\n\n## Description\n\nSplit the work into three parts and have workers write them.\n`;
const PARTS = ['A', 'B', 'C'] as const;

/** What each agent's model does, by the task in its prompt and the tool results so far. */
function script(request: FakeLlmRequest): FakeTurn {
  const text = JSON.stringify(request.body);
  // Tool results since the task's prompt (the last user message; a worker's history may hold earlier tasks).
  const messages = (request.body as { messages?: { role?: string }[] }).messages ?? [];
  const results = messages.slice(messages.map((m) => m.role).lastIndexOf('user')).filter((m) => m.role === 'tool').length;
  const usage = { inputTokens: 500, outputTokens: 50 };
  if (text.includes('Build the parts')) {
    // The manager: two workers, a third the quota refuses, then three subtasks, then its answer.
    if (results < 3) return { toolCalls: [{ name: 'warren_start_worker', arguments: { template: 'coder' } }], usage };
    if (results === 3) {
      return {
        toolCalls: PARTS.map((p) => ({ name: 'warren_create_subtask', arguments: { parent: 'TASK-1', title: `Write part ${p}`, body: `Write part-${p.toLowerCase()}.txt.`, capabilities: ['cap:code'] } })),
        usage,
      };
    }
    return { text: 'Split the work into three subtasks for two workers.', usage };
  }
  // A worker's history may hold its earlier tasks: the task at hand is the one named last.
  const part = [...PARTS].filter((p) => text.includes(`Write part ${p}`)).sort((a, b) => text.lastIndexOf(`Write part ${a}`) - text.lastIndexOf(`Write part ${b}`)).pop();
  if (part && results === 0) {
    const write = `printf 'part ${part}\\n' > part-${part.toLowerCase()}.txt`;
    // A worker is no manager: starting agents is refused, whichever tool it tries.
    const attempts = part === 'C' ? `; ${mcpCall('start_agent', 'start_agent', { name: 'coder' })}; ${mcpCall('start_worker', 'start_worker', { template: 'coder' })}` : '';
    return { toolCalls: [{ name: 'run_command', arguments: { command: `${write}${attempts}` } }], usage };
  }
  return { text: part ? `Wrote part-${part.toLowerCase()}.txt with part ${part}.` : 'nothing to do', usage };
}

describe('managers and workers', () => {
  it('a manager splits a task into three subtasks done by the two workers it started in their worktrees; the quota refuses a third worker; a worker starting an agent is denied and audited; the parent ends done with the sub-results', async () => {
    const layout = await makeAgentsLayout(script, { templates: TEMPLATES, tasks: { 'task-1 - Build-the-parts.md': PARENT } });
    layouts.push(layout);
    const run = startWarren(layout.args('run', '--until-idle', '--mapping', join(layout.dir, 'mapping.yaml'), '--kill-grace', '1s', '--http', '127.0.0.1:0'));
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 240_000);
    const result = await run.done;
    clearTimeout(timer);
    expect(result.signal, result.stderr.slice(-4000)).toBeNull();
    expect(result.code, result.stderr.slice(-4000)).toBe(0);

    // The manager ran the parent; the subtasks went to its two workers only (the planner starts no
    // agent of a template a manager lists), each on its own branch of the repository.
    const executions = layout.query<{ task_id: string; agent: string; outcome: string; summary: string }>('SELECT task_id, agent, outcome, summary FROM assignments ORDER BY task_id');
    expect(executions.map((e) => [e.task_id, e.outcome])).toEqual([
      ['TASK-1', 'succeeded'],
      ['TASK-2', 'succeeded'],
      ['TASK-3', 'succeeded'],
      ['TASK-4', 'succeeded'],
    ]);
    expect(executions[0]!.agent).toBe('lead-1');
    const workers = new Set(executions.slice(1).map((e) => e.agent));
    expect([...workers].every((w) => w === 'coder-1' || w === 'coder-2')).toBe(true);
    for (const e of executions.slice(1)) expect(e.summary).toMatch(new RegExp(`branch warren/${e.agent}/${e.task_id}: 1 commit, 1 file changed`));
    expect(layout.query<{ worker: string; manager: string }>('SELECT worker, manager FROM manager_workers ORDER BY worker')).toEqual([
      { worker: 'coder-1', manager: 'lead-1' },
      { worker: 'coder-2', manager: 'lead-1' },
    ]);
    expect(layout.query<{ name: string }>('SELECT name FROM agents ORDER BY name').map((a) => a.name)).toEqual(['coder-1', 'coder-2', 'lead-1']);

    // The third start_worker was refused by the quota, with the counts, and the model read why.
    const refusal = layout.fake.requests.find((r) => JSON.stringify(r.body).includes('quota maxWorkers'));
    // On a loaded host the second start may still wait for its tick (start_worker answers `queued`
    // after its wait): the refusal then counts it as queued, which is the same quota.
    expect(JSON.stringify(refusal?.body)).toMatch(/quota maxWorkers refuses another worker: lead-1 has (2 live workers|1 live workers and 1 queued to start) of at most 2 \((coder-1, coder-2|coder-1)\)/);
    const starts = layout.query<{ decision: string; details: string }>("SELECT decision, details FROM audit WHERE action = 'command.template.start' ORDER BY seq");
    expect(starts.map((s) => (JSON.parse(s.details) as { state: string }).state)).toEqual(['done', 'done']);

    // The subtasks are cards of the board with their parent set, in Backlog.md's own field.
    const cards = readdirSync(join(layout.dir, 'backlog', 'tasks')).filter((f) => f !== 'task-1 - Build-the-parts.md');
    expect(cards).toHaveLength(3);
    for (const card of cards) {
      const text = readFileSync(join(layout.dir, 'backlog', 'tasks', card), 'utf8');
      expect(text).toMatch(/^parent_task_id: TASK-1$/m);
      expect(text).toMatch(/^status: Done$/m);
    }

    // The parent waited for its subtasks, then ended done with each sub-result on its card.
    const parent = layout.query<{ state: string; reason: string }>("SELECT state, reason FROM tasks WHERE id = 'TASK-1'")[0]!;
    expect(parent.state).toBe('succeeded');
    const card = readFileSync(join(layout.dir, 'backlog', 'tasks', 'task-1 - Build-the-parts.md'), 'utf8');
    expect(card).toMatch(/^status: Done$/m);
    expect(card).toContain('all 3 subtasks done:');
    for (const [i, p] of PARTS.entries()) {
      const id = `TASK-${i + 2}`;
      const agent = executions.find((e) => e.task_id === id)!.agent;
      expect(card).toContain(`- ${id} "Write part ${p}" by ${agent}: Wrote part-${p.toLowerCase()}.txt with part ${p}.`);
    }
    // It waited: the manager's execution ended before its subtasks did, and the parent was done only after the last one.
    const seqOf = (action: string, object: string) => layout.query<{ seq: number }>('SELECT seq FROM audit WHERE action = ? AND object = ? ORDER BY seq DESC LIMIT 1', action, object)[0]?.seq ?? Number.NaN;
    const subtaskEnds = ['TASK-2', 'TASK-3', 'TASK-4'].map((id) => seqOf('task.complete', `task:${id}`));
    expect(seqOf('task.complete', 'task:TASK-1')).toBeLessThan(Math.max(...subtaskEnds));
    expect(seqOf('task.parent_done', 'task:TASK-1')).toBeGreaterThan(Math.max(...subtaskEnds));
    const parentDone = layout.query<{ details: string }>("SELECT details FROM audit WHERE action = 'task.parent_done' AND object = 'task:TASK-1'");
    expect(parentDone.map((r) => (JSON.parse(r.details) as { subtasks: string[] }).subtasks)).toEqual([['TASK-2', 'TASK-3', 'TASK-4']]);
    const waited = layout.query<{ n: number }>("SELECT COUNT(*) AS n FROM audit WHERE action = 'task.parent_done'")[0]!.n;
    expect(waited).toBe(1);

    // The worker's attempts to start agents: refused, and each denial is in the audit trail.
    const tried = executions.find((e) => e.task_id === 'TASK-4')!.agent;
    const output = layout
      .query<{ details: string }>("SELECT details FROM audit WHERE action = 'task.progress' AND object = 'task:TASK-4'")
      .map((r) => (JSON.parse(r.details) as { event: { kind: string; output?: string } }).event)
      .find((e) => e.kind === 'tool_result')?.output;
    expect(output).toMatch(new RegExp(`start_agent (200|403) .*policy denies ${tried} calling tool 'start_agent'`));
    expect(output).toMatch(new RegExp(`start_worker (200|403) .*policy denies ${tried} calling tool 'start_worker'`));
    const denied = layout.query<{ actor: string; object: string }>("SELECT actor, object FROM audit WHERE action = 'policy.decide' AND decision = 'deny' AND object IN ('mcp:start_agent', 'mcp:start_worker') ORDER BY object");
    expect(denied).toEqual([
      { actor: tried, object: 'mcp:start_agent' },
      { actor: tried, object: 'mcp:start_worker' },
    ]);
    // The manager's own calls were allowed and audited.
    const allowed = layout.query<{ n: number }>("SELECT COUNT(*) AS n FROM audit WHERE action = 'policy.decide' AND decision = 'allow' AND actor = 'lead-1' AND object = 'mcp:create_subtask'")[0]!.n;
    expect(allowed).toBe(3);
  }, 300_000);

  it('keeps the parent waiting, with the reason, when a subtask fails; refuses another manager\'s task, a subtask over the quota and a worker that is not its own', async () => {
    const templates = {
      'lead.yaml': `name: lead\ncapabilities: [cap:plan]\n${llm}\nrole: manager\nmanager: { maxWorkers: 1, maxSubtasks: 1, templates: [coder] }\nmaxInstances: 1\n`,
      'coder.yaml': `name: coder\ncapabilities: [cap:code]\nruntime: { kind: llm, provider: openai, model: gpt-5.2, maxTurns: 2, timeout: 60s }\nmaxInstances: 1\n`,
    };
    const other = PARENT.replace('TASK-1', 'TASK-2').replace('Build the parts', 'Someone else').replace('cap:plan', 'cap:nobody');
    /** One tool call a turn: the manager's moves, in order. */
    const moves: [string, Record<string, unknown>][] = [
      ['warren_start_worker', { template: 'coder' }],
      ['warren_create_subtask', { parent: 'TASK-1', title: 'Break the build', capabilities: ['cap:code'] }],
      ['warren_create_subtask', { parent: 'TASK-1', title: 'One too many', capabilities: ['cap:code'] }],
      ['warren_create_subtask', { parent: 'TASK-2', title: 'Not mine', capabilities: ['cap:code'] }],
      ['warren_stop_worker', { name: 'lead-1' }],
      ['warren_cancel_subtask', { id: 'TASK-2' }],
      ['warren_list_workers', {}],
      ['warren_subtask_results', { parent: 'TASK-1' }],
    ];
    const failing = (request: FakeLlmRequest): FakeTurn => {
      const text = JSON.stringify(request.body);
      const messages = (request.body as { messages?: { role?: string }[] }).messages ?? [];
      const results = messages.slice(messages.map((m) => m.role).lastIndexOf('user')).filter((m) => m.role === 'tool').length;
      const usage = { inputTokens: 500, outputTokens: 50 };
      if (text.includes('Build the parts')) {
        const move = moves[results];
        return move ? { toolCalls: [{ name: move[0], arguments: move[1] }], usage } : { text: 'Planned.', usage };
      }
      // The worker never answers: its turn limit fails the subtask.
      return { toolCalls: [{ name: 'run_command', arguments: { command: 'echo trying' } }], usage };
    };
    const layout = await makeAgentsLayout(failing, { templates, tasks: { 'task-1 - Build-the-parts.md': PARENT, 'task-2 - Someone-else.md': other } });
    layouts.push(layout);
    const run = startWarren(layout.args('run', '--until-idle', '--mapping', join(layout.dir, 'mapping.yaml'), '--kill-grace', '1s', '--http', '127.0.0.1:0'));
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 240_000);
    const result = await run.done;
    clearTimeout(timer);
    expect(result.signal, result.stderr.slice(-4000)).toBeNull();

    const outputs = layout
      .query<{ details: string }>("SELECT details FROM audit WHERE action = 'task.progress' AND object = 'task:TASK-1' ORDER BY seq")
      .map((r) => (JSON.parse(r.details) as { event: { kind: string; output?: string; isError?: boolean } }).event)
      .filter((e) => e.kind === 'tool_result');
    expect(outputs).toHaveLength(moves.length);
    expect(outputs[1]).toMatchObject({ isError: false, output: expect.stringContaining('"id":"TASK-3"') });
    expect(outputs[2]).toMatchObject({ isError: true, output: 'quota maxSubtasks refuses another subtask: lead-1 has 1 open subtasks of at most 1' });
    expect(outputs[3]).toMatchObject({ isError: true, output: expect.stringContaining("lead-1 is not working on task 'TASK-2'") });
    expect(outputs[4]).toMatchObject({ isError: true, output: 'lead-1 is not a worker of lead-1' });
    expect(outputs[5]).toMatchObject({ isError: true, output: "task 'TASK-2' is not a subtask of lead-1" });
    expect(JSON.parse(outputs[6]!.output!)).toMatchObject({ workers: [{ name: 'coder-1', template: 'coder' }] });
    expect(JSON.parse(outputs[7]!.output!)).toMatchObject({ parent: 'TASK-1', subtasks: [{ id: 'TASK-3', title: 'Break the build' }] });

    // The subtask failed on its turn limit; the parent's execution succeeded, and it waits in
    // progress with the failed subtask and its reason.
    const tasks = new Map(layout.query<{ id: string; state: string; reason: string | null }>('SELECT id, state, reason FROM tasks').map((t) => [t.id, t]));
    expect(tasks.get('TASK-3')).toMatchObject({ state: 'failed' });
    expect(tasks.get('TASK-1')!.state).toBe('running');
    expect(tasks.get('TASK-1')!.reason).toMatch(/^waiting for subtasks: TASK-3 failed \(.*turn limit/);
    expect(layout.query<{ outcome: string }>("SELECT outcome FROM assignments WHERE task_id = 'TASK-1'").map((a) => a.outcome)).toEqual(['succeeded']);
    const card = readFileSync(join(layout.dir, 'backlog', 'tasks', 'task-1 - Build-the-parts.md'), 'utf8');
    expect(card).toMatch(/^status: In Progress$/m);
    expect(layout.query<{ n: number }>("SELECT COUNT(*) AS n FROM audit WHERE action = 'task.parent_done'")[0]!.n).toBe(0);
    expect(readdirSync(join(layout.dir, 'backlog', 'tasks'))).toHaveLength(3);
  }, 300_000);
});


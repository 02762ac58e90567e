/**
 * A parent waiting on its subtasks across a restart of `warren up`: a manager (the built-in loop
 * against a scripted fake LLM) splits TASK-1 of a Backlog.md board into two subtasks and ends its
 * execution; its worker does the first, and while the second is still open (the worker's model
 * has not answered yet) the supervisor is stopped with SIGTERM. Started again, the second subtask
 * is done and the parent completes: the manager's execution is not run again, the sub-results are
 * gathered on the card once, `task.parent_done` is recorded once and the audit chain verifies.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FakeLlmRequest, FakeTurn } from '@warren/testing';
import { requireMachine, startWarren, waitFor, warren, type CliProcess } from '../support/cli.js';
import { makeAgentsLayout, type AgentsLayout } from '../agents/support.js';

const layouts: AgentsLayout[] = [];
const running: CliProcess[] = [];
afterEach(async () => {
  for (const run of running.splice(0)) {
    if (run.child.exitCode === null && run.child.signalCode === null) {
      run.child.kill('SIGKILL');
      await run.done;
    }
  }
  for (const layout of layouts.splice(0)) await layout.remove();
});

beforeAll(() => {
  requireMachine();
});

const llm = 'runtime: { kind: llm, provider: openai, model: gpt-5.2, maxTurns: 6, timeout: 120s }';
const TEMPLATES = {
  'lead.yaml': `name: lead\ncapabilities: [cap:plan]\n${llm}\nrole: manager\nmanager: { maxWorkers: 1, maxSubtasks: 4, templates: [coder] }\nmaxInstances: 1\n`,
  'coder.yaml': `name: coder\ncapabilities: [cap:code]\n${llm}\nmaxInstances: 1\n`,
};
const PARENT = `---\nid: TASK-1\ntitle: Build the parts\nstatus: To Do\nassignee: []\ncreated_date: '2026-12-01'\nlabels:\n  - cap:plan\npriority: high\n---\n\n## Description\n\nSplit the work into two parts for a worker.\n`;
const CARD = join('backlog', 'tasks', 'task-1 - Build-the-parts.md');

describe('a parent waiting on its subtasks', () => {
  it('survives a SIGTERM of warren up while a subtask is open: started again, the parent completes once with both sub-results', async () => {
    /** Part B's first answer waits for this (the worker is mid-task when the supervisor stops). */
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let partBAsked = 0;
    const script = async (request: FakeLlmRequest): Promise<FakeTurn> => {
      const text = JSON.stringify(request.body);
      const messages = (request.body as { messages?: { role?: string }[] }).messages ?? [];
      const results = messages.slice(messages.map((m) => m.role).lastIndexOf('user')).filter((m) => m.role === 'tool').length;
      const usage = { inputTokens: 100, outputTokens: 20 };
      if (text.includes('Build the parts')) {
        if (results === 0) return { toolCalls: [{ name: 'warren_start_worker', arguments: { template: 'coder' } }], usage };
        if (results === 1) {
          return {
            toolCalls: ['A', 'B'].map((p) => ({ name: 'warren_create_subtask', arguments: { parent: 'TASK-1', title: `Write part ${p}`, body: `Write part ${p}.`, capabilities: ['cap:code'] } })),
            usage,
          };
        }
        return { text: 'Split into two subtasks.', usage };
      }
      const last = Math.max(text.lastIndexOf('Write part A'), text.lastIndexOf('Write part B'));
      const part = last === -1 ? undefined : text.slice(last + 'Write part '.length, last + 'Write part '.length + 1);
      if (part === 'B') {
        partBAsked += 1;
        await released;
      }
      return { text: part ? `Part ${part} written.` : 'nothing to do', usage };
    };
    const layout = await makeAgentsLayout(script, { templates: TEMPLATES, tasks: { 'task-1 - Build-the-parts.md': PARENT } });
    layouts.push(layout);
    const up = () => {
      const run = startWarren(layout.args('up', '--mapping', join(layout.dir, 'mapping.yaml'), '--kill-grace', '1s', '--http', '127.0.0.1:0'));
      running.push(run);
      return run;
    };
    const stop = async (run: CliProcess) => {
      run.child.kill('SIGTERM');
      const result = await run.done;
      expect(result.signal, result.stderr.slice(-4000)).toBeNull();
      expect(result.code, result.stderr.slice(-4000)).toBe(0);
    };
    const state = (id: string) => layout.query<{ state: string }>('SELECT state FROM tasks WHERE id = ?', id)[0]?.state;
    const waiting = () => layout.query<{ parent: string }>('SELECT parent FROM manager_waiting_parents').map((r) => r.parent);

    // First run: the manager's execution ends with its parent waiting; part A is done; part B is open.
    const first = up();
    await waitFor('the parent waiting, part A done and part B asked', () => {
      try {
        return waiting().includes('TASK-1') && state('TASK-2') === 'succeeded' && partBAsked > 0;
      } catch {
        return false; // the database is not made yet
      }
    }, 150_000);
    await stop(first);
    expect(state('TASK-1')).toBe('running');
    expect(state('TASK-3')).not.toBe('succeeded');
    expect(readFileSync(join(layout.dir, CARD), 'utf8')).not.toContain('subtasks done');

    // Second run: part B is answered; the parent completes.
    release();
    const second = up();
    await waitFor('the parent done on its card', () => state('TASK-1') === 'succeeded' && /^status: Done$/m.test(readFileSync(join(layout.dir, CARD), 'utf8')), 150_000);
    await stop(second);

    const card = readFileSync(join(layout.dir, CARD), 'utf8');
    expect(card.match(/all 2 subtasks done:/g)).toHaveLength(1);
    for (const [id, part] of [['TASK-2', 'A'], ['TASK-3', 'B']] as const) {
      expect(card.match(new RegExp(`- ${id} "Write part ${part}" by coder-1: Part ${part} written\\.`, 'g')), card).toHaveLength(1);
    }
    expect(layout.query<{ n: number }>("SELECT COUNT(*) AS n FROM audit WHERE action = 'task.parent_done' AND object = 'task:TASK-1'")[0]!.n).toBe(1);
    // The manager ran its task once; the subtasks were created once.
    expect(layout.query<{ outcome: string }>("SELECT outcome FROM assignments WHERE task_id = 'TASK-1'").map((a) => a.outcome)).toEqual(['succeeded']);
    expect(layout.query<{ subtask: string }>('SELECT subtask FROM manager_subtasks ORDER BY subtask').map((r) => r.subtask)).toEqual(['TASK-2', 'TASK-3']);
    expect(waiting()).toEqual([]);
    const verify = await warren(layout.args('audit', 'verify', '--json'));
    expect(verify.code, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
  }, 360_000);
});

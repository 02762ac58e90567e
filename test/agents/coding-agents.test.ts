/**
 * Real coding agents, end to end: the example's Backlog.md board worked by the real claude-code,
 * codex and opencode CLIs and Warren's own loop, each in its bubblewrap sandbox with no network,
 * talking to a fake provider only through the LLM gateway, each task in its own git worktree.
 * Then the attacks: the provider key looked for in every agent process and file; a budget run
 * out; a provider outside the allow-list and a direct connection; another agent's secret; a
 * provider that fails.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FakeLlmRequest, FakeTurn } from '@warren/testing';
import { exampleSession } from '../../examples/coding-agents/session.mjs';
import { repo, requireMachine, startWarren } from '../support/cli.js';
import { filesHolding, makeAgentsLayout, processCount, processesHolding, type AgentsLayout } from './support.js';

const layouts: AgentsLayout[] = [];
afterEach(async () => {
  for (const layout of layouts.splice(0)) await layout.remove();
});

beforeAll(() => {
  requireMachine();
  const check = spawnSync('bash', [join(repo, 'scripts', 'agent-clis.sh'), 'check']);
  if (check.status !== 0) throw new Error('the agent CLIs are not installed: run bash scripts/agent-clis.sh install (scripts/setup.sh does)');
});

/** Runs `warren run --until-idle` on the layout to its end, with `env` added. */
async function runUntilIdle(layout: AgentsLayout, timeoutMs = 300_000, env: Record<string, string> = {}, extra: string[] = []): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const run = startWarren(layout.args('run', '--until-idle', '--mapping', join(layout.dir, 'mapping.yaml'), '--kill-grace', '1s', ...extra), env);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  const result = await run.done;
  clearTimeout(timer);
  if (result.signal === 'SIGKILL') throw new Error(`warren did not finish in ${timeoutMs} ms\n${result.stderr.slice(-4000)}`);
  return { code: result.code, stderr: result.stderr, stdout: result.stdout };
}

interface Execution {
  task_id: string;
  agent: string;
  outcome: string;
  summary: string;
}

describe('coding agents through the gateway', () => {
  it('works the Backlog.md board with claude-code, codex, opencode and the built-in loop: no key in any agent process or file, every call counted, each task on its branch', async () => {
    const holder: { layout?: AgentsLayout; leaks: string[]; scans: number } = { leaks: [], scans: 0 };
    // At each model call the calling CLI is alive in its sandbox: look for the key in every
    // process of the agents' uids (environment and command line) right then.
    const layout = await makeAgentsLayout((request: FakeLlmRequest) => {
      if (holder.layout && processCount(holder.layout.uidRange) > 0) {
        holder.scans += 1;
        for (const leak of processesHolding(holder.layout.uidRange, holder.layout.key)) holder.leaks.push(`pid ${leak.pid} ${leak.where}`);
      }
      return exampleSession(request);
    });
    holder.layout = layout;
    layouts.push(layout);

    const run = await runUntilIdle(layout);
    expect(run.code, run.stderr.slice(-3000)).toBe(0);

    const executions = layout.query<Execution>('SELECT task_id, agent, outcome, summary FROM assignments ORDER BY task_id');
    expect(executions.map((e) => [e.task_id, e.agent, e.outcome])).toEqual([
      ['TASK-1', 'claude-1', 'succeeded'],
      ['TASK-2', 'codex-1', 'succeeded'],
      ['TASK-3', 'opencode-1', 'succeeded'],
      ['TASK-4', 'thinker-1', 'succeeded'],
    ]);
    const files = { 'TASK-1': 'greet.mjs', 'TASK-2': 'LINES.md', 'TASK-3': 'CHANGELOG.md', 'TASK-4': 'SUMMARY.md' } as const;
    for (const e of executions) {
      // The final answer, then the branch of the worktree and its diff.
      expect(e.summary).toMatch(new RegExp(`branch warren/${e.agent}/${e.task_id}: 1 commit, 1 file changed`));
      expect(e.summary).toContain(files[e.task_id as keyof typeof files]);
    }
    // The Backlog.md card says so in its Implementation Notes (Backlog.md has no result field).
    const card = readFileSync(join(layout.dir, 'backlog', 'tasks', 'task-1 - Add-a-greeting-module.md'), 'utf8');
    expect(card).toMatch(/^status: Done$/m);
    expect(card).toMatch(/<!-- SECTION:NOTES:BEGIN -->\n<!-- WARREN:RESULT:BEGIN -->\nWarren: [^\n]*greet[\s\S]*branch warren\/claude-1\/TASK-1: 1 commit, 1 file changed[\s\S]*<!-- WARREN:RESULT:END -->/);

    // The key reached the provider on every call, added by the gateway; no agent ever held it.
    const calls = layout.fake.requests.filter((r) => r.wire !== 'other');
    expect(calls.length).toBeGreaterThanOrEqual(8);
    for (const r of calls) {
      expect(r.headers['x-api-key'] === layout.key || r.headers.authorization === `Bearer ${layout.key}`).toBe(true);
      expect(JSON.stringify(r.body)).not.toContain(layout.key);
    }
    expect(holder.scans).toBeGreaterThanOrEqual(8);
    expect(holder.leaks).toEqual([]);
    expect(filesHolding(join(layout.dir, 'home'), layout.key)).toEqual([]);

    // Every call is a ledger row and an llm.call event; every runtime's stream is in the audit.
    const usage = layout.query<{ agent: string; calls: number; input: number; status: number }>('SELECT agent, COUNT(*) AS calls, SUM(input_tokens) AS input, MAX(status) AS status FROM llm_usage GROUP BY agent ORDER BY agent');
    expect(usage.map((u) => u.agent)).toEqual(['claude-1', 'codex-1', 'opencode-1', 'thinker-1']);
    for (const u of usage) {
      expect(u.status).toBe(200);
      expect(u.input).toBeGreaterThanOrEqual(900);
    }
    const [{ n: callEvents }] = layout.query<{ n: number }>("SELECT COUNT(*) AS n FROM audit WHERE action = 'llm.call'");
    expect(callEvents).toBe(usage.reduce((sum, u) => sum + u.calls, 0));
    const finals = layout.query<{ object: string }>("SELECT DISTINCT object FROM audit WHERE action = 'task.progress' AND json_extract(details, '$.event.kind') = 'final' ORDER BY object");
    expect(finals.map((f) => f.object)).toEqual(['task:TASK-1', 'task:TASK-2', 'task:TASK-3', 'task:TASK-4']);
    const toolCalls = layout.query<{ n: number }>("SELECT COUNT(*) AS n FROM audit WHERE action = 'task.progress' AND json_extract(details, '$.event.kind') = 'tool_call'");
    expect(toolCalls[0]!.n).toBeGreaterThanOrEqual(4);
  });

  it('refuses what agents must not do, and says why on the card: a budget used up, a provider outside the allow-list, a direct connection, a neighbour\'s secret; a failing provider is retried', async () => {
    const thinker = (name: string, capability: string, extra = ''): string =>
      `name: ${name}\ncapabilities: [${capability}]\nruntime: { kind: llm, provider: openai, model: gpt-5.2, maxTurns: 10, timeout: 60s }\nmaxInstances: 1\n${extra}`;
    const card = (id: number, title: string, capability: string): string =>
      `---\nid: TASK-${id}\ntitle: ${title}\nstatus: To Do\nassignee: []\ncreated_date: '2026-12-01'\nlabels:\n  - cap:${capability}\npriority: medium\n---\n\n## Description\n\n${title}.\n`;
    const holder: { fakeUrl?: string } = {};
    /** One command, then an answer, by the card's title. */
    const commands: Record<string, () => string> = {
      'Keep a note': () => 'wc -c < ~/.warren/secrets/KEEPER_NOTE; stat -c %a ~/.warren/secrets/KEEPER_NOTE',
      'Probe the walls': () =>
        [
          `node -e "fetch('http://127.0.0.1:4141/p/anthropic/v1/messages',{method:'POST',headers:{'content-type':'application/json'},body:'{}'}).then(r=>console.log('foreign provider', r.status), e=>console.log('foreign provider', e.message))"`,
          `node -e "fetch('${holder.fakeUrl}/v1/models').then(r=>console.log('direct', r.status), e=>console.log('direct', e.cause?.code ?? e.message))"`,
          'echo "homes: $(ls /home | tr "\\n" " ")"; cat /home/keeper-1/.warren/secrets/KEEPER_NOTE 2>&1 || true',
          // Through Warren's MCP tools, as itself (its gateway adds its own token): it may read the
          // registry, but the keeper's computer is not its to read.
          `node -e "fetch('http://127.0.0.1:4141/mcp',{method:'POST',headers:{'content-type':'application/json',accept:'application/json, text/event-stream','mcp-protocol-version':'2025-06-18'},body:JSON.stringify({jsonrpc:'2.0',id:1,method:'tools/call',params:{name:'list_agents',arguments:{}}})}).then(async r=>console.log('registry', r.status, /prober-1/.test(await r.text())), e=>console.log('registry', e.message))"`,
          `node -e "fetch('http://127.0.0.1:4141/mcp',{method:'POST',headers:{'content-type':'application/json',accept:'application/json, text/event-stream','mcp-protocol-version':'2025-06-18'},body:JSON.stringify({jsonrpc:'2.0',id:1,method:'tools/call',params:{name:'read_file',arguments:{agent:'keeper-1',path:'.warren/secrets/KEEPER_NOTE'}}})}).then(async r=>console.log('mcp', r.status, (await r.text()).slice(0,400)), e=>console.log('mcp', e.message))"`,
        ].join('; '),
    };
    let flakyCalls = 0;
    const script = (request: FakeLlmRequest): FakeTurn => {
      const text = JSON.stringify(request.body);
      const results = ((request.body as { messages?: { role?: string }[] }).messages ?? []).filter((m) => m.role === 'tool').length;
      const usage = { inputTokens: 900, outputTokens: 60 };
      if (text.includes('Spend tokens')) return { toolCalls: [{ name: 'run_command', arguments: { command: `echo turn ${results}` } }], usage };
      if (text.includes('Provider down')) return { status: 503, message: 'overloaded' };
      if (text.includes('Flaky provider')) {
        flakyCalls += 1;
        if (flakyCalls <= 2) return { status: 500, message: 'upstream trouble' };
        return { text: 'answered after the provider recovered', usage };
      }
      const title = Object.keys(commands).find((t) => text.includes(t));
      if (title && results === 0) return { toolCalls: [{ name: 'run_command', arguments: { command: commands[title]!() } }], usage };
      return { text: `done: ${title ?? 'nothing'}`, usage };
    };
    const layout = await makeAgentsLayout(script, {
      templates: {
        'spender.yaml': thinker('spender', 'cap:spend', 'llm:\n  budget:\n    task: { tokens: 1500 }\n'),
        'keeper.yaml': thinker('keeper', 'cap:keep'),
        'prober.yaml': thinker('prober', 'cap:probe'),
        'flaky.yaml': thinker('flaky', 'cap:flaky'),
        'down.yaml': thinker('down', 'cap:down').replace('timeout: 60s', 'timeout: 15s'),
      },
      tasks: {
        'task-1 - Spend.md': card(1, 'Spend tokens', 'spend'),
        'task-2 - Keep.md': card(2, 'Keep a note', 'keep'),
        'task-3 - Probe.md': card(3, 'Probe the walls', 'probe'),
        'task-4 - Flaky.md': card(4, 'Flaky provider', 'flaky'),
        'task-5 - Down.md': card(5, 'Provider down', 'down'),
      },
    });
    layouts.push(layout);
    holder.fakeUrl = layout.fake.url;
    const note = 'note-for-keeper-only-4f1c9a';
    const set = spawnSync(process.execPath, [join(repo, 'services', 'supervisor', 'bin', 'warren.js'), 'secret', 'set', 'keeper', 'KEEPER_NOTE', '--state-dir', join(layout.dir, 'var')], { input: note, encoding: 'utf8' });
    expect(set.status, set.stderr).toBe(0);

    // The API is served, so agents reach Warren's MCP tools through their gateway with their own token.
    const run = await runUntilIdle(layout, 300_000, {}, ['--http', '127.0.0.1:0']);
    const executions = new Map(layout.query<Execution>('SELECT task_id, agent, outcome, summary FROM assignments').map((e) => [e.task_id, e]));
    const reasons = new Map(layout.query<{ id: string; reason: string | null; state: string }>('SELECT id, reason, state FROM tasks').map((t) => [t.id, t]));
    expect(run.code, run.stderr.slice(-3000)).toBe(1);
    const audit = (action: string) => layout.query<{ object: string; details: string }>('SELECT object, details FROM audit WHERE action = ?', action);

    // The budget: 960 tokens a call against 1500 a task; the third call is refused and the task stops with the sentence.
    expect(reasons.get('TASK-1')).toMatchObject({ state: 'failed' });
    expect(reasons.get('TASK-1')!.reason).toMatch(/over its LLM budget: task token budget of 1500 reached: 1920 used/);
    expect(audit('task.over_budget').map((r) => r.object)).toEqual(['task:TASK-1']);
    expect(audit('llm.refused').some((r) => r.object === 'task:TASK-1' && (JSON.parse(r.details) as { reason: string }).reason === 'budget_exceeded')).toBe(true);
    expect(layout.query<{ n: number }>("SELECT COUNT(*) AS n FROM llm_usage WHERE task_id = 'TASK-1'")[0]!.n).toBe(2);

    // Its own secret reached the keeper as a file only its uid reads.
    expect(executions.get('TASK-2')).toMatchObject({ outcome: 'succeeded' });
    const kept = audit('task.progress').map((r) => JSON.parse(r.details) as { event: { kind: string; output?: string } }).find((d) => d.event.kind === 'tool_result' && d.event.output?.includes('400'));
    expect(kept?.event.output).toMatch(new RegExp(`\\b${note.length}\\n400\\b`));
    const noteFile = statSync(join(layout.dir, 'home', 'keeper', 'keeper-1', '.warren', 'secrets', 'KEEPER_NOTE'));
    expect(noteFile.mode & 0o777).toBe(0o400);

    // The prober: a provider outside its allow-list is refused (403, audited); a direct connection
    // goes nowhere (no network); the keeper's home and secret are not there to read.
    expect(executions.get('TASK-3')).toMatchObject({ outcome: 'succeeded' });
    const probe = audit('task.progress').map((r) => ({ object: r.object, event: (JSON.parse(r.details) as { event: { kind: string; output?: string } }).event })).find((d) => d.object === 'task:TASK-3' && d.event.kind === 'tool_result')!;
    expect(probe.event.output).toMatch(/foreign provider 403/);
    expect(probe.event.output).toMatch(/direct (ECONNREFUSED|ENETUNREACH|fetch failed)/);
    expect(probe.event.output).toMatch(/homes: prober-1 \n/);
    expect(probe.event.output).toMatch(/No such file or directory/);
    expect(probe.event.output).not.toContain(note);
    expect(probe.event.output).toMatch(/registry 200 true/);
    expect(probe.event.output).toMatch(/mcp (200|403) .*policy denies prober-1 calling tool 'read_file'/);
    const allowed = layout.query<{ actor: string }>("SELECT actor FROM audit WHERE action = 'policy.decide' AND object = 'mcp:list_agents' AND decision = 'allow' AND actor = 'prober-1'");
    expect(allowed.length).toBeGreaterThanOrEqual(1);
    const denied = layout.query<{ actor: string }>("SELECT actor FROM audit WHERE action = 'policy.decide' AND object = 'mcp:read_file' AND decision = 'deny'");
    expect(denied.map((d) => d.actor)).toEqual(['prober-1']);
    expect(audit('llm.refused').some((r) => r.object === 'task:TASK-3' && (JSON.parse(r.details) as { reason: string }).reason === 'provider_not_allowed')).toBe(true);
    expect(layout.fake.requests.some((r) => r.path === '/v1/models')).toBe(false);
    for (const r of layout.fake.requests) expect(JSON.stringify(r.body)).not.toContain(note);

    // A provider failing twice with 500: the gateway retried with backoff and the task succeeded.
    expect(executions.get('TASK-4')).toMatchObject({ outcome: 'succeeded' });
    expect(executions.get('TASK-4')!.summary).toContain('answered after the provider recovered');
    expect(flakyCalls).toBe(3);
    expect(layout.query<{ status: number }>("SELECT status FROM llm_usage WHERE task_id = 'TASK-4'").map((r) => r.status)).toEqual([200]);

    // A provider that keeps failing: retried with backoff until the task's timeout leaves no room,
    // then the card says so in the gateway's words.
    expect(reasons.get('TASK-5')).toMatchObject({ state: 'failed' });
    expect(reasons.get('TASK-5')!.reason).toMatch(/LLM provider unavailable: provider openai: 503 .*after [2-9] attempts in \d+(\.\d)? s/);
    expect(layout.fake.requests.filter((r) => JSON.stringify(r.body).includes('Provider down')).length).toBeGreaterThanOrEqual(2);
  });

  it('holds the tasks of a template whose CLI is missing, with the reason, instead of failing them one by one', async () => {
    const layout = await makeAgentsLayout(() => ({ text: 'unused' }));
    layouts.push(layout);
    const run = await runUntilIdle(layout, 300_000, { WARREN_AGENT_CLIS: join(layout.dir, 'no-clis') });
    expect(run.code).toBe(1);
    const tasks = new Map(layout.query<{ id: string; state: string; queue_reason: string | null }>('SELECT id, state, queue_reason FROM tasks').map((t) => [t.id, t]));
    for (const [id, template, kind] of [['TASK-1', 'claude', 'claude-code'], ['TASK-2', 'codex', 'codex'], ['TASK-3', 'opencode', 'opencode']] as const) {
      expect(tasks.get(id)).toMatchObject({ state: 'ready' });
      expect(tasks.get(id)!.queue_reason).toMatch(new RegExp(`^template ${template} cannot run: ${kind} is not installed in .*no-clis`));
    }
    // The built-in loop needs no CLI: its card is done.
    expect(tasks.get('TASK-4')).toMatchObject({ state: 'succeeded' });
    const unhealthy = layout.query<{ object: string }>("SELECT object FROM audit WHERE action = 'runtime.unhealthy' ORDER BY object");
    expect(unhealthy.map((r) => r.object)).toEqual(['template:claude', 'template:codex', 'template:opencode']);
    expect(layout.query<{ n: number }>('SELECT COUNT(*) AS n FROM assignments WHERE task_id != ?', 'TASK-4')[0]!.n).toBe(0);
  });
});

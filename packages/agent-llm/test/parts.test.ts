import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { describe, expect, it, onTestFinished } from 'vitest';
import { makeTempDir } from '@warren/testing';
import { agentEventProblem } from '@warren/agent-runner';
import { loadConfig, readTaskFile } from '../src/config.js';
import { HISTORY_PATH, loadHistory, saveHistory, trimHistory } from '../src/history.js';
import { resolveInHome } from '../src/home-path.js';
import { MAX_TOOL_OUTPUT_BYTES, computerTools, type Tool } from '../src/tools.js';

async function tempHome(): Promise<string> {
  const dir = await makeTempDir('warren-agent-llm-');
  onTestFinished(() => dir.close());
  const home = join(dir.path, 'home');
  mkdirSync(join(home, 'work'), { recursive: true });
  return home;
}

function tool(tools: Tool[], name: string): Tool {
  const found = tools.find((t) => t.name === name);
  if (!found) throw new Error(`no tool ${name}`);
  return found;
}

const never = new AbortController().signal;

describe('agent events', () => {
  it("the loop's events are the runner's one AgentEvent format: every kind accepted, a bad field named", () => {
    const good = [
      { kind: 'session', sessionId: 's-1', model: 'm' },
      { kind: 'text', text: 'hi' },
      { kind: 'tool_call', id: 'c1', name: 'run_command', input: { command: 'ls' } },
      { kind: 'tool_result', id: 'c1', output: 'x', isError: false },
      { kind: 'usage', inputTokens: 3, outputTokens: 4, costUsd: 0.01, model: 'm' },
      { kind: 'error', message: 'boom' },
      { kind: 'final', text: 'done', isError: false },
      { kind: 'raw', source: 'agent-llm', line: { notice: 'x' } },
    ];
    for (const event of good) expect(agentEventProblem(event), JSON.stringify(event)).toBeNull();
    expect(agentEventProblem({ kind: 'usage', inputTokens: -1, outputTokens: 0 })).toMatch(/'inputTokens'/);
    expect(agentEventProblem({ kind: 'final', text: 'x' })).toMatch(/'isError'/);
    expect(agentEventProblem({ kind: 'tool_call', id: 'c', name: 'x' })).toMatch(/'input'/);
    expect(agentEventProblem({ kind: 'nope' })).toMatch(/unknown event kind/);
    expect(agentEventProblem([])).not.toBeNull();
  });
});

describe('configuration', () => {
  it('reads the environment contract with its defaults, and names the variable or field that is wrong', async () => {
    const home = await tempHome();
    const taskFile = join(home, 'task.json');
    writeFileSync(taskFile, JSON.stringify({ type: 'task', taskId: 'fix-login', attempt: 2, title: 'Fix login', body: 'b', fields: { priority: 'high' }, timeoutMs: 60_000 }));
    const env = { WARREN_TASK_FILE: taskFile, OPENAI_BASE_URL: 'http://127.0.0.1:4141/p/openai/', WARREN_LLM_MODEL: 'gpt-x', HOME: home };
    const config = loadConfig(env, join(home, 'work'));
    expect(config).toMatchObject({ baseUrl: 'http://127.0.0.1:4141/p/openai', apiKey: 'warren-gateway', model: 'gpt-x', maxTurns: 20, home, cwd: join(home, 'work') });
    expect(config.mcpUrl).toBeUndefined();
    expect(config.task).toEqual({ taskId: 'fix-login', attempt: 2, title: 'Fix login', body: 'b', fields: { priority: 'high' }, timeoutMs: 60_000 });
    expect(loadConfig({ ...env, WARREN_LLM_MAX_TURNS: '3', WARREN_MCP_URL: 'http://127.0.0.1:4141/mcp' }, home)).toMatchObject({ maxTurns: 3, mcpUrl: 'http://127.0.0.1:4141/mcp' });

    expect(() => loadConfig({ ...env, WARREN_LLM_MODEL: '' }, home)).toThrow('WARREN_LLM_MODEL: is not set');
    expect(() => loadConfig({ ...env, WARREN_LLM_MAX_TURNS: '0' }, home)).toThrow("WARREN_LLM_MAX_TURNS: must be a positive integer, got '0'");
    expect(() => loadConfig({ ...env, OPENAI_BASE_URL: 'ftp://x' }, home)).toThrow("OPENAI_BASE_URL: 'ftp://x' must be an http(s) URL");
    expect(() => loadConfig({ ...env, HOME: 'rel' }, home)).toThrow("HOME: must be an absolute path, got 'rel'");
    writeFileSync(taskFile, JSON.stringify({ taskId: 'x', title: 'y', timeoutMs: -1 }));
    expect(() => readTaskFile(taskFile)).toThrow(`WARREN_TASK_FILE ${taskFile}: 'timeoutMs' must be a positive number of ms`);
    writeFileSync(taskFile, '{');
    expect(() => readTaskFile(taskFile)).toThrow(/cannot read the task/);
  });
});

describe('paths confined to the home', () => {
  it('resolves relative and absolute paths inside the home and refuses .. escapes, links out and dangling links', async () => {
    const home = await tempHome();
    const cwd = join(home, 'work');
    const outside = join(home, '..', 'outside');
    mkdirSync(outside);
    symlinkSync(outside, join(cwd, 'out-link'));
    symlinkSync(join(cwd, 'nowhere'), join(cwd, 'dangling'));
    symlinkSync(join(home, 'notes'), join(cwd, 'in-link'));
    mkdirSync(join(home, 'notes'));

    expect(resolveInHome(home, cwd, 'a/b.txt')).toBe(join(home, 'work', 'a', 'b.txt'));
    expect(resolveInHome(home, cwd, '../notes/x')).toBe(join(home, 'notes', 'x'));
    expect(resolveInHome(home, cwd, join(home, 'work'))).toBe(join(home, 'work'));
    expect(resolveInHome(home, cwd, 'in-link/y')).toBe(join(home, 'notes', 'y'));
    for (const bad of ['../../outside/x', '/etc/passwd', 'out-link/x', 'out-link', 'dangling']) {
      expect(() => resolveInHome(home, cwd, bad), bad).toThrow(`path '${bad}' leaves the home ${home}`);
    }
  });
});

describe('history', () => {
  const exchange = (n: number, withTool = false): ChatCompletionMessageParam[] => [
    { role: 'user', content: `task ${n}` },
    ...(withTool
      ? ([
          { role: 'assistant', content: null, tool_calls: [{ id: `c${n}`, type: 'function', function: { name: 'run_command', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: `c${n}`, content: 'ok' },
        ] as ChatCompletionMessageParam[])
      : []),
    { role: 'assistant', content: `answer ${n}` },
  ];

  it('is trimmed by whole exchanges from the front, never parting a tool call from its result', () => {
    const messages = [...exchange(1, true), ...exchange(2), ...exchange(3, true)];
    expect(trimHistory(messages, { maxMessages: 100 })).toEqual(messages);
    const trimmed = trimHistory(messages, { maxMessages: 5 });
    expect(trimmed).toEqual(exchange(3, true).slice(0));
    expect(trimmed.length).toBe(4);
    expect(trimHistory(messages, { maxMessages: 6 })).toEqual([...exchange(2), ...exchange(3, true)]);
    const big = [...exchange(1), { role: 'user', content: 'x'.repeat(10_000) } as const, { role: 'assistant', content: 'y'.repeat(10_000) } as const];
    const bounded = trimHistory(big, { maxBytes: 4_000 });
    expect(bounded.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(Buffer.byteLength(JSON.stringify(bounded))).toBeLessThanOrEqual(4_000);
    expect(bounded[0]!.content).toMatch(/\[cut to keep the history bounded\]$/);
  });

  it('is saved atomically, loaded again with its session id, and set aside when corrupt', async () => {
    const home = await tempHome();
    const first = loadHistory(home);
    expect(first.state).toBe('fresh');
    saveHistory(home, { sessionId: first.history.sessionId, messages: exchange(1) });
    expect(readdirSync(join(home, '.warren', 'llm'))).toEqual(['history.json']);
    const again = loadHistory(home);
    expect(again).toEqual({ state: 'resumed', history: { sessionId: first.history.sessionId, messages: exchange(1) } });

    writeFileSync(join(home, HISTORY_PATH), '{"version":1,"sessionId":"s","messages":[{"role":"tool","content":"x"}]}');
    const corrupt = loadHistory(home, {}, 1234);
    expect(corrupt).toMatchObject({ state: 'set-aside', reason: 'messages[0] is a tool result without tool_call_id', setAsidePath: `${join(home, HISTORY_PATH)}.corrupt-1234` });
    expect(corrupt.history.messages).toEqual([]);
    expect(corrupt.history.sessionId).not.toBe(first.history.sessionId);
    expect(existsSync(join(home, HISTORY_PATH))).toBe(false);
    writeFileSync(join(home, HISTORY_PATH), 'not json');
    expect(loadHistory(home, {}, 5678)).toMatchObject({ state: 'set-aside', reason: expect.stringMatching(/^not JSON/) });
  });
});

describe('the computer tools', () => {
  it('write, read and list files in the home and refuse paths that leave it', async () => {
    const home = await tempHome();
    const tools = computerTools({ home, cwd: join(home, 'work'), remainingMs: () => 60_000 });
    expect(await tool(tools, 'write_file').run({ path: 'src/a.txt', content: 'héllo\n' }, never)).toEqual({ output: 'wrote 7 bytes to src/a.txt', isError: false });
    expect(readFileSync(join(home, 'work', 'src', 'a.txt'), 'utf8')).toBe('héllo\n');
    expect(await tool(tools, 'read_file').run({ path: 'src/a.txt' }, never)).toEqual({ output: 'héllo\n', isError: false });
    expect((await tool(tools, 'list_directory').run({}, never)).output).toBe('src/');
    expect((await tool(tools, 'list_directory').run({ path: 'src' }, never)).output).toBe('a.txt (7 bytes)');
    await expect(tool(tools, 'write_file').run({ path: '../../x.txt', content: '' }, never)).rejects.toThrow(/leaves the home/);
    await expect(tool(tools, 'read_file').run({ path: 'missing.txt' }, never)).rejects.toThrow("read_file: cannot read 'missing.txt': ENOENT");
    await expect(tool(tools, 'read_file').run({ path: 'src' }, never)).rejects.toThrow("read_file: 'src' is not a file");
    await expect(tool(tools, 'write_file').run({ path: 'x' }, never)).rejects.toThrow("write_file: 'content' must be a string");
    writeFileSync(join(home, 'work', 'big.txt'), 'z'.repeat(MAX_TOOL_OUTPUT_BYTES + 10));
    const big = await tool(tools, 'read_file').run({ path: 'big.txt' }, never);
    expect(big.output.endsWith(`\n[output truncated: ${MAX_TOOL_OUTPUT_BYTES + 10} bytes, the first ${MAX_TOOL_OUTPUT_BYTES} shown]`), big.output.slice(-200)).toBe(true);
  });

  it('runs commands in the workspace with stdin closed, reports the exit code, caps output and stops at the timeout', async () => {
    const home = await tempHome();
    const tools = computerTools({ home, cwd: join(home, 'work'), remainingMs: () => 60_000 });
    const run = tool(tools, 'run_command');
    expect(await run.run({ command: 'pwd; cat; echo oops >&2' }, never)).toEqual({ output: `[exit code 0]\n${join(home, 'work')}\n[stderr]\noops`, isError: false });
    expect(await run.run({ command: 'exit 3' }, never)).toEqual({ output: '[exit code 3]', isError: true });
    const loud = await run.run({ command: `head -c ${MAX_TOOL_OUTPUT_BYTES * 2} /dev/zero | tr '\\0' a` }, never);
    expect(loud.output.endsWith(`[stdout truncated: ${MAX_TOOL_OUTPUT_BYTES * 2} bytes, the first ${MAX_TOOL_OUTPUT_BYTES - 256} shown]`), loud.output.slice(-200)).toBe(true);
    expect(Buffer.byteLength(loud.output)).toBeLessThan(MAX_TOOL_OUTPUT_BYTES + 200);
    const slow = await run.run({ command: 'echo started; sleep 30 & wait', timeoutSeconds: 3 }, never);
    expect(slow).toEqual({ output: '[timed out after 3000 ms]\nstarted', isError: true });
    const capped = computerTools({ home, cwd: join(home, 'work'), remainingMs: () => 300 });
    expect((await tool(capped, 'run_command').run({ command: 'sleep 30' }, never)).output).toBe('[timed out after 300 ms]');
    await expect(run.run({ command: 'true', timeoutSeconds: -1 }, never)).rejects.toThrow("run_command: 'timeoutSeconds' must be a positive number");
  });
});

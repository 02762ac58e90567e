import { builtinModules } from 'node:module';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startFakeLlm, type FakeLlm, type FakeTurn, type StartFakeLlmOptions } from '@warren/testing';
import { HISTORY_PATH } from '../src/history.js';
import { agentHome, buildBundle, messagesOf, runTask, toolNamesOf, type BuiltBundle } from './support.js';

let bundle: BuiltBundle;
beforeAll(async () => {
  bundle = await buildBundle();
});
afterAll(() => bundle?.close());

async function fakeLlm(options: StartFakeLlmOptions): Promise<FakeLlm> {
  const fake = await startFakeLlm(options);
  onTestFinished(() => fake.close());
  return fake;
}

const chatRequests = (fake: FakeLlm) => fake.requests.filter((r) => r.path === '/v1/chat/completions');

describe('the agent-llm bundle', () => {
  it('imports nothing but Node built-ins', () => {
    const text = readFileSync(bundle.path, 'utf8');
    const specifiers = [...text.matchAll(/^\s*import\s[^;]*?\sfrom\s*["']([^"']+)["']/gm), ...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!);
    expect(specifiers.length).toBeGreaterThan(0);
    const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    expect(specifiers.filter((s) => !builtins.has(s))).toEqual([]);
  });

  it('does a scripted coding task: writes a file, runs cat on it, answers; every line an event, in order', async () => {
    const fake = await fakeLlm({
      script: [
        { toolCalls: [{ id: 'call_write', name: 'write_file', arguments: { path: 'hello.txt', content: 'hello from the model\n' } }], usage: { inputTokens: 100, outputTokens: 20 } },
        { text: 'Checking the file.', toolCalls: [{ id: 'call_cat', name: 'run_command', arguments: { command: 'cat hello.txt' } }], usage: { inputTokens: 150, outputTokens: 10 } },
        { text: 'hello.txt says: hello from the model', usage: { inputTokens: 200, outputTokens: 12 } },
      ],
    });
    const agent = await agentHome();
    const run = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1` });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(readFileSync(join(agent.workspace, 'hello.txt'), 'utf8')).toBe('hello from the model\n');

    expect(run.events.map((e) => e.kind)).toEqual(['session', 'usage', 'tool_call', 'tool_result', 'usage', 'text', 'tool_call', 'tool_result', 'usage', 'text', 'final']);
    const [session, usage1, write, written, , checking, cat, catted, , answer, final] = run.events;
    expect(session).toMatchObject({ kind: 'session', model: 'fake-model' });
    expect(usage1).toEqual({ kind: 'usage', inputTokens: 100, outputTokens: 20, model: 'fake-model' });
    expect(write).toEqual({ kind: 'tool_call', id: 'call_write', name: 'write_file', input: { path: 'hello.txt', content: 'hello from the model\n' } });
    expect(written).toEqual({ kind: 'tool_result', id: 'call_write', output: 'wrote 21 bytes to hello.txt', isError: false });
    expect(checking).toEqual({ kind: 'text', text: 'Checking the file.' });
    expect(cat).toEqual({ kind: 'tool_call', id: 'call_cat', name: 'run_command', input: { command: 'cat hello.txt' } });
    expect(catted).toEqual({ kind: 'tool_result', id: 'call_cat', output: '[exit code 0]\nhello from the model', isError: false });
    expect(answer).toEqual({ kind: 'text', text: 'hello.txt says: hello from the model' });
    expect(final).toEqual({ kind: 'final', text: 'hello.txt says: hello from the model', isError: false });

    const requests = chatRequests(fake);
    expect(requests).toHaveLength(3);
    for (const request of requests) {
      expect(request.headers.authorization).toBe('Bearer warren-gateway');
      expect(request.body).toMatchObject({ model: 'fake-model', stream: true, stream_options: { include_usage: true } });
      expect(toolNamesOf(request.body)).toEqual(['run_command', 'read_file', 'write_file', 'list_directory']);
    }
    const first = messagesOf(requests[0]!.body);
    expect(first.map((m) => m.role)).toEqual(['system', 'user']);
    expect(first[1]!.content).toBe('Task make-hello: Make hello.txt\n\nWrite hello.txt and show it.');
    const last = messagesOf(requests[2]!.body);
    expect(last.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'assistant', 'tool']);
    expect(last[5]).toEqual({ role: 'tool', tool_call_id: 'call_cat', content: '[exit code 0]\nhello from the model' });
  });

  it('stops at the turn limit: exit 1, an error event saying so, and no further request', async () => {
    const fake = await fakeLlm({ script: () => ({ toolCalls: [{ name: 'run_command', arguments: { command: 'echo again' } }] }) });
    const agent = await agentHome();
    const run = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1`, env: { WARREN_LLM_MAX_TURNS: '3' } });
    expect(run.exitCode).toBe(1);
    expect(chatRequests(fake)).toHaveLength(3);
    expect(run.events.filter((e) => e.kind === 'tool_result')).toHaveLength(3);
    const reason = 'the turn limit of 3 model responses was reached without an answer';
    expect(run.events.slice(-2)).toEqual([
      { kind: 'error', message: reason },
      { kind: 'final', text: reason, isError: true },
    ]);
    // The saved conversation ends with the last call's result, so the next task can go on from it.
    const saved = JSON.parse(readFileSync(join(agent.home, HISTORY_PATH), 'utf8')) as { messages: { role: string }[] };
    expect(saved.messages.at(-1)?.role).toBe('tool');
  });

  it('hands tool errors back to the model as results and goes on: a missing file, a path out of the home, bad JSON, an unknown tool, a failing command', async () => {
    const fake = await fakeLlm({
      script: [
        {
          toolCalls: [
            { id: 'c1', name: 'read_file', arguments: { path: 'missing.txt' } },
            { id: 'c2', name: 'read_file', arguments: { path: '../../../../etc/hostname' } },
            { id: 'c3', name: 'write_file', arguments: '{"path": "x.txt", "content": ' },
            { id: 'c4', name: 'launch_rocket', arguments: {} },
            { id: 'c5', name: 'run_command', arguments: { command: 'echo nope >&2; exit 2' } },
          ],
        },
        { text: 'Nothing worked, as expected.' },
      ],
    });
    const agent = await agentHome();
    const run = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1` });
    expect(run.exitCode, run.stderr).toBe(0);
    const results = run.events.filter((e) => e.kind === 'tool_result');
    expect(results.map((r) => [r.id, r.isError])).toEqual([
      ['c1', true],
      ['c2', true],
      ['c3', true],
      ['c4', true],
      ['c5', true],
    ]);
    expect(run.events.find((e) => e.kind === 'tool_call' && e.id === 'c3')).toMatchObject({ input: '{"path": "x.txt", "content": ' });
    const tools = messagesOf(chatRequests(fake)[1]!.body).filter((m) => m.role === 'tool');
    expect(tools.map((m) => m.tool_call_id)).toEqual(['c1', 'c2', 'c3', 'c4', 'c5']);
    expect(tools[0]!.content).toBe("read_file: cannot read 'missing.txt': ENOENT");
    expect(tools[1]!.content).toBe(`path '../../../../etc/hostname' leaves the home ${agent.home}`);
    expect(tools[2]!.content).toMatch(/^write_file: the arguments are not valid JSON/);
    expect(tools[3]!.content).toBe("there is no tool named 'launch_rocket'; the tools are run_command, read_file, write_file, list_directory");
    expect(tools[4]!.content).toBe('[exit code 2]\n[stderr]\nnope');
    expect(existsSync(join(agent.workspace, 'x.txt'))).toBe(false);
    expect(run.events.at(-1)).toEqual({ kind: 'final', text: 'Nothing worked, as expected.', isError: false });
  });

  it('keeps the conversation in the home: the second task resumes the first one, in the same session', async () => {
    const fake = await fakeLlm({ script: [{ text: 'The answer to the first task is 42.' }, { text: 'As I said before: 42.' }] });
    const agent = await agentHome();
    const first = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1`, taskId: 'first', title: 'What is the answer?', body: '' });
    expect(first.exitCode, first.stderr).toBe(0);
    const second = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1`, taskId: 'second', title: 'Repeat your answer', body: '' });
    expect(second.exitCode, second.stderr).toBe(0);

    const sessionOf = (events: typeof first.events) => events.find((e) => e.kind === 'session');
    expect(sessionOf(second.events)).toEqual(sessionOf(first.events));
    const messages = messagesOf(chatRequests(fake)[1]!.body);
    expect(messages.map((m) => [m.role, m.role === 'system' ? '' : m.content])).toEqual([
      ['system', ''],
      ['user', 'Task first: What is the answer?'],
      ['assistant', 'The answer to the first task is 42.'],
      ['user', 'Task second: Repeat your answer'],
    ]);
    const saved = JSON.parse(readFileSync(join(agent.home, HISTORY_PATH), 'utf8')) as { version: number; messages: unknown[] };
    expect(saved.version).toBe(1);
    expect(saved.messages).toHaveLength(4);
  });

  it('sets a corrupt history aside, says so in a raw event, and starts afresh', async () => {
    const fake = await fakeLlm({ script: [{ text: 'Fresh start.' }] });
    const agent = await agentHome();
    mkdirSync(join(agent.home, '.warren', 'llm'), { recursive: true });
    writeFileSync(join(agent.home, HISTORY_PATH), '{"version":1,"sessionId":"s","messages":[{"role":"user","content":"cut off');
    const run = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1` });
    expect(run.exitCode, run.stderr).toBe(0);
    const raw = run.events.find((e) => e.kind === 'raw');
    expect(raw).toMatchObject({ kind: 'raw', source: 'agent-llm', line: { notice: 'history set aside, starting a fresh conversation', reason: expect.stringMatching(/^not JSON/) } });
    const setAside = readdirSync(join(agent.home, '.warren', 'llm')).filter((f) => f.startsWith('history.json.corrupt-'));
    expect(setAside).toHaveLength(1);
    expect(readFileSync(join(agent.home, '.warren', 'llm', setAside[0]!), 'utf8')).toContain('cut off');
    expect(messagesOf(chatRequests(fake)[0]!.body).map((m) => m.role)).toEqual(['system', 'user']);
    expect((JSON.parse(readFileSync(join(agent.home, HISTORY_PATH), 'utf8')) as { messages: unknown[] }).messages).toHaveLength(2);
  });

  const failures: { name: string; turn: FakeTurn; message: RegExp }[] = [
    { name: 'answers 500', turn: { status: 500, message: 'the provider broke' }, message: /^the model call failed with HTTP 500 \(server_error\): the provider broke$/ },
    // The gateway retries; the loop does not, whatever retry-after says.
    { name: 'answers 429 with retry-after', turn: { status: 429, retryAfterS: 1, message: 'slow down' }, message: /^the model call failed with HTTP 429 \(rate_limit_exceeded\): slow down$/ },
    { name: 'cuts the stream off', turn: { fault: 'cut', afterChunks: 2, how: 'end', text: 'a long answer that never ends' }, message: /^the model stream ended before the response was complete/ },
    { name: 'resets the connection mid-stream', turn: { fault: 'cut', afterChunks: 2, how: 'reset', text: 'a long answer that never ends' }, message: /^the model call failed/ },
  ];
  for (const { name, turn, message } of failures) {
    it(`exits 1 with an error event when the provider ${name}`, async () => {
      const fake = await fakeLlm({ script: [turn] });
      const agent = await agentHome();
      const run = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1` });
      expect(run.exitCode).toBe(1);
      expect(chatRequests(fake)).toHaveLength(1);
      const error = run.events.find((e) => e.kind === 'error');
      expect(error?.kind === 'error' ? error.message : '').toMatch(message);
      expect(run.events.at(-1)).toMatchObject({ kind: 'final', isError: true });
      expect(run.events.filter((e) => e.kind === 'text')).toEqual([]);
    });
  }

  it('stops at the task deadline: the running command is cut short, the next model call is abandoned, exit 1 naming the timeout', async () => {
    // `sleep 300` outlives runTask's 50 s guard: the run ending at all shows the command was cut short.
    const fake = await fakeLlm({ script: [{ toolCalls: [{ id: 'c1', name: 'run_command', arguments: { command: 'sleep 300' } }] }, { fault: 'hang', times: 5 }] });
    const agent = await agentHome();
    const run = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1`, timeoutMs: 5_000 });
    expect(run.exitCode).toBe(1);
    // Whether the deadline came during the command or during the next (hanging) model call.
    for (const result of run.events.filter((e) => e.kind === 'tool_result')) expect(result).toMatchObject({ id: 'c1', isError: true });
    const error = run.events.find((e) => e.kind === 'error');
    expect(error?.kind === 'error' ? error.message : '').toMatch(/the task's timeout of 5000 ms ran out$/);
    expect(run.events.at(-1)).toMatchObject({ kind: 'final', isError: true });
  });

  it('stops on SIGTERM from the runner: the command is ended, exit 1, and the conversation saved whole', async () => {
    const fake = await fakeLlm({ script: [{ toolCalls: [{ id: 'c1', name: 'run_command', arguments: { command: 'echo started; sleep 60' } }] }, { text: 'never asked' }] });
    const agent = await agentHome();
    const run = await runTask({
      bundle: bundle.path,
      agent,
      baseUrl: `${fake.url}/v1`,
      onLine: (line, child) => {
        if (line.includes('"kind":"tool_call"')) child.kill('SIGTERM');
      },
    });
    expect(run.exitCode).toBe(1);
    expect(chatRequests(fake)).toHaveLength(1);
    expect(run.events.find((e) => e.kind === 'tool_result')).toMatchObject({ id: 'c1', isError: true });
    expect(run.events.slice(-2)).toEqual([
      { kind: 'error', message: 'stopped: the runner sent SIGTERM' },
      { kind: 'final', text: 'stopped: the runner sent SIGTERM', isError: true },
    ]);
    const saved = JSON.parse(readFileSync(join(agent.home, HISTORY_PATH), 'utf8')) as { messages: { role: string }[] };
    expect(saved.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool']);
  });

  it('exits 1 naming the variable when the configuration is bad', async () => {
    const agent = await agentHome();
    const run = await runTask({ bundle: bundle.path, agent, baseUrl: 'not a url' });
    expect(run.exitCode).toBe(1);
    expect(run.events).toEqual([
      { kind: 'error', message: "OPENAI_BASE_URL: 'not a url' is not a URL" },
      { kind: 'final', text: "OPENAI_BASE_URL: 'not a url' is not a URL", isError: true },
    ]);
  });
});

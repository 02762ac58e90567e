/**
 * The real claude-code, codex and opencode binaries (from scripts/agent-clis.sh) run by the runner
 * (a child process, outside a sandbox) against the fake LLM server, through the runner's LLM
 * forwarder and a stand-in for the gateway's socket: a scripted coding task in, progress events
 * out, the answer as the summary, the session resumed by the next task, a lost session replaced.
 *
 * With WARREN_RECORD_AGENT_STREAMS=1 the first task's raw stdout of each CLI is also written to
 * test/fixtures/agent-streams/<cli>-<version>.jsonl (the fixtures of agent-events.test.ts).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startFakeLlm, type FakeLlm } from '@warren/testing';
import { PLACEHOLDER_API_KEY, type AgentEvent, type AgentFrame, type TaskFrame } from '@warren/agent-runner';
import { ANSWER, CLI_KINDS, CLI_VERSIONS, HELLO, STREAMS_DIR, cliBinary, codingScript, providerOf, startLlmSocketProxy, toolNamesIn, toolResultsIn, type CliKind } from './agent-clis.js';
import { mcpTestServer } from '../../mcp/test/support.js';
import { buildRunner, startRunner, tempDir, TestGateway } from './gateway.js';

beforeAll(() => buildRunner(), 180_000);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

type Progress = Extract<AgentFrame, { type: 'progress' }>;

function eventsOf(gateway: TestGateway, taskId: string, attempt = 1): AgentEvent[] {
  return gateway
    .ofType('progress', taskId)
    .filter((f: Progress) => f.attempt === attempt)
    .map((f: Progress) => f.event)
    .filter((e): e is AgentEvent => e !== undefined);
}

function task(taskId: string, title: string, body = ''): TaskFrame {
  return { type: 'task', taskId, attempt: 1, title, body, fields: {}, timeoutMs: 120_000 };
}

const RECORD = process.env.WARREN_RECORD_AGENT_STREAMS === '1';

async function setup(kind: CliKind): Promise<{ gateway: TestGateway; home: string; llm: FakeLlm; workspace: { id: string }; recording: string }> {
  const { dir, remove } = tempDir();
  cleanups.push(remove);
  // Recording: the CLI's stdout, and only it, is also appended to a file.
  const recording = join(dir, 'stdout.jsonl');
  let binary = cliBinary(kind);
  if (RECORD) {
    const wrapper = join(dir, `record-${kind}.sh`);
    writeFileSync(wrapper, `#!/bin/bash\nset -o pipefail\n${JSON.stringify(binary)} "$@" | tee -a ${JSON.stringify(recording)}\n`, { mode: 0o755 });
    binary = wrapper;
  }
  const home = join(dir, 'home');
  mkdirSync(home);
  const workspace = { id: 't1' };
  const llm = await startFakeLlm({ script: codingScript(kind, () => join(home, 'work', workspace.id)) });
  cleanups.push(() => llm.close());
  const { provider, model } = providerOf(kind);
  const proxy = await startLlmSocketProxy(dir, { [provider]: kind === 'claude-code' ? llm.url : `${llm.url}/v1` });
  cleanups.push(() => proxy.close());
  const gateway = await TestGateway.start(dir);
  cleanups.push(() => gateway.close());
  const runner = startRunner({
    WARREN_AGENT_SOCKET: gateway.socketPath,
    HOME: home,
    WARREN_RUNTIME: JSON.stringify({ kind, binary, provider, model, maxTurns: 10 }),
    WARREN_LLM_SOCKET: proxy.socketPath,
    WARREN_LLM_PORT: '0',
  });
  cleanups.push(async () => {
    if (runner.child.exitCode === null && runner.child.signalCode === null) {
      gateway.send({ type: 'shutdown', reason: 'test over' });
      const exited = await Promise.race([runner.exited, new Promise((resolve) => setTimeout(() => resolve(null), 10_000))]);
      if (exited === null) {
        runner.child.kill('SIGKILL');
        await runner.exited;
      }
    }
  });
  await gateway.accept();
  await gateway.next((f): f is AgentFrame => f.type === 'hello', 'hello');
  gateway.send({ type: 'welcome', agent: { name: 'a1', template: kind, uid: 1, gid: 1, home, capabilities: [] } });
  return { gateway, home, llm, workspace, recording };
}

describe.each(CLI_KINDS)('the %s runtime with the real CLI', (kind) => {
  it(
    'works a scripted coding task: events as progress, the answer as summary; the next task resumes the session; a lost session is replaced',
    async () => {
      const { gateway, home, llm, workspace, recording } = await setup(kind);

      // 1. The coding task: write hello.txt, count its bytes, answer.
      gateway.send(task('t1', 'Write hello.txt', 'Write "hello from the agent" to hello.txt, then count its bytes.'));
      const first = await gateway.next((f): f is Extract<AgentFrame, { type: 'result' }> => f.type === 'result' && f.taskId === 't1', 'result of t1', 120_000);
      expect(first, JSON.stringify(first)).toMatchObject({ outcome: 'succeeded', exitCode: 0, summary: ANSWER });
      expect(readFileSync(join(home, 'work', 't1', HELLO.name), 'utf8')).toBe(HELLO.content);
      const events = eventsOf(gateway, 't1');
      const kinds = events.map((e) => e.kind);
      expect(kinds[0]).toBe('session');
      expect(kinds.filter((k) => k === 'tool_call')).toHaveLength(2);
      expect(kinds.filter((k) => k === 'tool_result')).toHaveLength(2);
      expect(events.filter((e) => e.kind === 'raw')).toEqual([]);
      const bytes = events.find((e): e is Extract<AgentEvent, { kind: 'tool_result' }> => e.kind === 'tool_result' && e.output.includes('21 hello.txt'));
      expect(bytes?.isError).toBe(false);
      expect(events.at(-1)).toEqual({ kind: 'final', text: ANSWER, isError: false });
      expect(events.some((e) => e.kind === 'usage' && e.inputTokens > 0)).toBe(true);
      expect(gateway.ofType('progress', 't1').every((f) => typeof f.message === 'string' && f.message.length > 0)).toBe(true);
      // The prompt is the title, a blank line, the body; the key is the placeholder, never a real one.
      const modelRequests = llm.requests.filter((r) => r.wire !== 'other');
      expect(JSON.stringify(modelRequests[modelRequests.length - 1]!.body)).toContain('Write hello.txt\\n\\nWrite \\"hello from the agent\\" to hello.txt');
      for (const request of modelRequests) {
        const key = request.headers['x-api-key'] ?? String(request.headers.authorization ?? '').replace(/^Bearer /, '');
        expect(key).toBe(PLACEHOLDER_API_KEY);
      }
      const session = events[0] as Extract<AgentEvent, { kind: 'session' }>;
      const stored = JSON.parse(readFileSync(join(home, '.warren', 'sessions.json'), 'utf8')) as Record<string, { sessionId: string }>;
      expect(stored[kind]?.sessionId).toBe(session.sessionId);
      if (RECORD) {
        mkdirSync(STREAMS_DIR, { recursive: true });
        writeFileSync(join(STREAMS_DIR, `${kind}-${CLI_VERSIONS[kind]}.jsonl`), readFileSync(recording));
      }

      // 2. The next task resumes the conversation: the model sees the first task's prompt. opencode
      // resumes only in the session's own workspace: there, the task's next attempt.
      const next = kind === 'opencode' ? { ...task('t1', 'Say what you did'), attempt: 2 } : task('t2', 'Say what you did');
      workspace.id = next.taskId;
      const before = llm.requests.length;
      gateway.send(next);
      const second = await gateway.next(
        (f): f is Extract<AgentFrame, { type: 'result' }> => f.type === 'result' && f.taskId === next.taskId && f.attempt === next.attempt,
        `result of ${next.taskId}#${next.attempt}`,
        120_000,
      );
      expect(second, JSON.stringify(second)).toMatchObject({ outcome: 'succeeded', summary: ANSWER });
      const resumed = llm.requests.slice(before).filter((r) => r.wire !== 'other' && JSON.stringify(r.body).includes('Say what you did'));
      expect(resumed.length).toBeGreaterThan(0);
      expect(JSON.stringify(resumed[0]!.body)).toContain('Write hello.txt');
      const secondEvents = gateway.ofType('progress', next.taskId).filter((f) => f.attempt === next.attempt).map((f) => f.event);
      expect(secondEvents.find((e) => e?.kind === 'session')).toMatchObject({ sessionId: session.sessionId });

      // 3. A session the CLI does not know: the task starts afresh and says so.
      const lost = kind === 'claude-code' ? '11111111-2222-4333-8444-555555555555' : kind === 'codex' ? '01a24ce4-0000-7c82-8897-8926bde26550' : 'ses_0000000000000000000000000';
      writeFileSync(join(home, '.warren', 'sessions.json'), JSON.stringify({ [kind]: { sessionId: lost, directory: join(home, 'work', 't3'), updatedAtMs: 1 } }));
      workspace.id = 't3';
      gateway.send(task('t3', 'Write hello.txt again'));
      const third = await gateway.next((f): f is Extract<AgentFrame, { type: 'result' }> => f.type === 'result' && f.taskId === 't3', 'result of t3', 120_000);
      expect(third, JSON.stringify(third)).toMatchObject({ outcome: 'succeeded', summary: ANSWER });
      const notes = eventsOf(gateway, 't3').filter((e) => e.kind === 'error' && e.message.includes(`cannot resume session ${lost}`));
      expect(notes).toHaveLength(1);
      expect(existsSync(join(home, 'work', 't3', HELLO.name))).toBe(true);
      const fresh = JSON.parse(readFileSync(join(home, '.warren', 'sessions.json'), 'utf8')) as Record<string, { sessionId: string }>;
      expect(fresh[kind]?.sessionId).not.toBe(lost);
      expect(gateway.protocolErrors).toEqual([]);
    },
    180_000,
  );
});

describe.each(CLI_KINDS)('the %s runtime with Warren\'s MCP server', (kind) => {
  it(
    'lists Warren\'s MCP tools to the model and calls one through the forwarder (codex: lists them)',
    async () => {
      const mcp = await mcpTestServer();
      // Registered after the MCP server's own hook, so run before it: the CLI and the proxy let go of /mcp first.
      const local: (() => Promise<void> | void)[] = [];
      onTestFinished(async () => {
        for (const fn of local.splice(0).reverse()) await fn();
      });
      const cleanups = local;
      const { dir, remove } = tempDir();
      cleanups.push(remove);
      const home = join(dir, 'home');
      mkdirSync(home);
      const offered: string[][] = [];
      const llm = await startFakeLlm({
        script: (request) => {
          // codex offers an MCP server's tools as one Responses `namespace` tool (`mcp__warren`).
          const names = toolNamesIn(request).flatMap((name, i) => {
            const tool = ((request.body as { tools?: { type?: string; tools?: { name?: string }[] }[] }).tools ?? [])[i];
            return tool?.type === 'namespace' ? (tool.tools ?? []).map((t) => `${name}/${String(t.name)}`) : [name];
          });
          if (names.length === 0) return { text: 'Scripted title' };
          offered.push(names);
          const listAgents = names.find((name) => name.endsWith('list_agents'));
          if (!listAgents) return { text: `no list_agents among ${names.join(', ')}` };
          // A call into a namespace names it in a field the fake server does not write: codex only lists here.
          if (kind === 'codex') return { text: 'listed the agents' };
          return toolResultsIn(request) === 0 ? { toolCalls: [{ name: listAgents, arguments: {} }] } : { text: 'listed the agents' };
        },
      });
      cleanups.push(() => llm.close());
      const { provider, model } = providerOf(kind);
      const proxy = await startLlmSocketProxy(dir, { [provider]: kind === 'claude-code' ? llm.url : `${llm.url}/v1` }, { url: mcp.url.href, token: mcp.operatorToken });
      cleanups.push(() => proxy.close());
      const gateway = await TestGateway.start(dir);
      cleanups.push(() => gateway.close());
      const runner = startRunner({
        WARREN_AGENT_SOCKET: gateway.socketPath,
        HOME: home,
        WARREN_RUNTIME: JSON.stringify({ kind, binary: cliBinary(kind), provider, model, mcp: true }),
        WARREN_LLM_SOCKET: proxy.socketPath,
        WARREN_LLM_PORT: '0',
      });
      cleanups.push(async () => {
        if (runner.child.exitCode === null && runner.child.signalCode === null) {
          runner.child.kill('SIGKILL');
          await runner.exited;
        }
      });
      await gateway.accept();
      await gateway.next((f): f is AgentFrame => f.type === 'hello', 'hello');
      gateway.send({ type: 'welcome', agent: { name: 'a1', template: kind, uid: 1, gid: 1, home, capabilities: [] } });
      gateway.send(task('m1', 'List the agents'));
      const result = await gateway.next((f): f is Extract<AgentFrame, { type: 'result' }> => f.type === 'result' && f.taskId === 'm1', 'result of m1', 120_000);
      expect(result, `${JSON.stringify(result)} ${JSON.stringify(offered)}`).toMatchObject({ outcome: 'succeeded', summary: 'listed the agents' });
      expect(offered[0]).toContain(kind === 'claude-code' ? 'mcp__warren__list_agents' : kind === 'codex' ? 'mcp__warren/list_agents' : 'warren_list_agents');
      const results = eventsOf(gateway, 'm1').filter((e): e is Extract<AgentEvent, { kind: 'tool_result' }> => e.kind === 'tool_result');
      if (kind !== 'codex') {
        expect(results).toHaveLength(1);
        expect(results[0]!.output).toContain('shell-1');
      }
      expect(proxy.paths.some((path) => path.startsWith('/mcp'))).toBe(true);
      gateway.send({ type: 'shutdown', reason: 'test over' });
      await runner.exited;
    },
    180_000,
  );
});

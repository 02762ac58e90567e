import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  agentEventProblem,
  agentInvocation,
  createLineMapper,
  describeAgentEvent,
  mapAgentLine,
  PLACEHOLDER_API_KEY,
  taskPrompt,
  truncateAgentEvent,
  type AgentEvent,
  type AgentKind,
} from '@warren/agent-runner';
import { ANSWER, CLI_VERSIONS, STREAMS_DIR, type CliKind } from './agent-clis.js';

function fixture(kind: CliKind): string[] {
  return readFileSync(join(STREAMS_DIR, `${kind}-${CLI_VERSIONS[kind]}.jsonl`), 'utf8')
    .split('\n')
    .filter((line) => line !== '');
}

function mapAll(kind: AgentKind, lines: readonly string[]): AgentEvent[] {
  const mapper = createLineMapper(kind);
  return lines.flatMap((line) => mapAgentLine(kind, mapper, line));
}

const kindsOf = (events: readonly AgentEvent[]): string[] => events.map((e) => e.kind);

describe('the mappers on recorded streams', () => {
  it('claude-code: session, two tool calls with their results, the answer, usage and cost', () => {
    const events = mapAll('claude-code', fixture('claude-code'));
    expect(kindsOf(events)).toEqual(['session', 'tool_call', 'tool_result', 'tool_call', 'tool_result', 'text', 'usage', 'final']);
    expect(events[0]).toMatchObject({ kind: 'session', model: 'claude-sonnet-4-5' });
    expect(events[1]).toMatchObject({ kind: 'tool_call', name: 'Write', input: { content: 'hello from the agent\n' } });
    expect(events[3]).toMatchObject({ kind: 'tool_call', name: 'Bash', input: { command: 'wc -c hello.txt' } });
    expect((events[1] as { id: string }).id).toBe((events[2] as { id: string }).id);
    expect(events[4]).toMatchObject({ kind: 'tool_result', output: '21 hello.txt', isError: false });
    expect(events[6]).toMatchObject({ kind: 'usage', inputTokens: 360, outputTokens: 90, model: 'claude-sonnet-4-5' });
    expect((events[6] as { costUsd?: number }).costUsd).toBeGreaterThan(0);
    expect(events[7]).toEqual({ kind: 'final', text: ANSWER, isError: false });
  });

  it('codex: thread, shell calls with their output, the warning as an error event, the answer and usage', () => {
    const events = mapAll('codex', fixture('codex'));
    const kinds = kindsOf(events);
    expect(kinds[0]).toBe('session');
    expect(kinds.filter((k) => k === 'tool_call')).toHaveLength(2);
    expect(events.filter((e) => e.kind === 'tool_call').every((e) => (e as { name: string }).name === 'shell')).toBe(true);
    expect(events.find((e) => e.kind === 'tool_result' && e.output === '21 hello.txt\n')).toMatchObject({ isError: false });
    expect(events.slice(-3)).toEqual([
      { kind: 'text', text: ANSWER },
      { kind: 'usage', inputTokens: 360, outputTokens: 90 },
      { kind: 'final', text: ANSWER, isError: false },
    ]);
    expect(kinds).not.toContain('raw');
  });

  it('opencode: session once, each finished tool call as call and result, usage per step, the last step text as the answer', () => {
    const events = mapAll('opencode', fixture('opencode'));
    expect(kindsOf(events)).toEqual(['session', 'tool_call', 'tool_result', 'usage', 'tool_call', 'tool_result', 'usage', 'text', 'usage', 'final']);
    expect(events[1]).toMatchObject({ kind: 'tool_call', name: 'write', input: { content: 'hello from the agent\n' } });
    expect(events[5]).toMatchObject({ kind: 'tool_result', output: '21 hello.txt\n', isError: false });
    expect(events[3]).toMatchObject({ kind: 'usage', inputTokens: 120, outputTokens: 30, costUsd: 0 });
    expect(events.at(-1)).toEqual({ kind: 'final', text: ANSWER, isError: false });
  });

  it('every mapped event is valid, and survives the frame checks', () => {
    for (const kind of ['claude-code', 'codex', 'opencode'] as const) {
      for (const event of mapAll(kind, fixture(kind))) expect(agentEventProblem(event), JSON.stringify(event)).toBeNull();
    }
  });
});

describe('lines a mapper does not know', () => {
  it('a truncated line of each recorded stream becomes raw, and a later whole line still maps', () => {
    for (const kind of ['claude-code', 'codex', 'opencode'] as const) {
      const lines = fixture(kind);
      const mapper = createLineMapper(kind);
      const cut = lines[1]!.slice(0, Math.floor(lines[1]!.length / 2));
      expect(mapAgentLine(kind, mapper, cut)).toEqual([{ kind: 'raw', source: kind, line: cut }]);
      const last = mapAgentLine(kind, mapper, lines[lines.length - 1]!);
      expect(last.length).toBeGreaterThan(0);
      expect(last.some((e) => e.kind === 'raw')).toBe(false);
    }
  });

  it('garbage, unknown types and non-objects become raw; blank lines nothing; no mapper throws', () => {
    for (const kind of ['claude-code', 'codex', 'opencode', 'llm'] as const) {
      const mapper = createLineMapper(kind);
      expect(mapAgentLine(kind, mapper, 'Segmentation fault (core dumped)')).toEqual([{ kind: 'raw', source: kind, line: 'Segmentation fault (core dumped)' }]);
      expect(mapAgentLine(kind, mapper, '{"type":"telemetry.flush","n":3}')).toEqual([{ kind: 'raw', source: kind, line: { type: 'telemetry.flush', n: 3 } }]);
      expect(mapAgentLine(kind, mapper, '[1,2]')).toEqual([{ kind: 'raw', source: kind, line: [1, 2] }]);
      expect(mapAgentLine(kind, mapper, 'null')).toEqual([{ kind: 'raw', source: kind, line: null }]);
      expect(mapAgentLine(kind, mapper, '   ')).toEqual([]);
      for (const odd of ['{"type":"assistant","message":{"content":[null,7]}}', '{"type":"item.completed","item":null}', '{"type":"tool_use","part":{"state":3}}', '{"type":"result","usage":"x"}']) {
        expect(() => mapAgentLine(kind, mapper, odd)).not.toThrow();
      }
    }
  });

  it('claude-code: an error result is an error and a failed final', () => {
    const line = JSON.stringify({ type: 'result', subtype: 'error_during_execution', is_error: true, errors: ['No conversation found with session ID: x'], usage: {} });
    expect(mapAll('claude-code', [line])).toEqual([
      { kind: 'usage', inputTokens: 0, outputTokens: 0 },
      { kind: 'error', message: 'No conversation found with session ID: x' },
      { kind: 'final', text: 'No conversation found with session ID: x', isError: true },
    ]);
  });

  it('codex: a failed turn is an error and a failed final; opencode: an error line is an error', () => {
    expect(mapAll('codex', ['{"type":"turn.failed","error":{"message":"stream disconnected before completion"}}'])).toEqual([
      { kind: 'error', message: 'stream disconnected before completion' },
      { kind: 'final', text: 'stream disconnected before completion', isError: true },
    ]);
    expect(mapAll('opencode', ['{"type":"error","sessionID":"ses_1","error":{"name":"APIError","data":{"message":"Too Many Requests"}}}'])).toEqual([
      { kind: 'session', sessionId: 'ses_1' },
      { kind: 'error', message: 'Too Many Requests' },
    ]);
  });

  it('llm: valid events pass through as they are; invalid ones are raw', () => {
    const good: AgentEvent[] = [
      { kind: 'session', sessionId: 's1', model: 'm' },
      { kind: 'tool_call', id: 'c1', name: 'run_command', input: { command: 'ls' } },
      { kind: 'tool_result', id: 'c1', output: 'a\n', isError: false },
      { kind: 'usage', inputTokens: 10, outputTokens: 2, costUsd: 0.001 },
      { kind: 'final', text: 'done', isError: false },
    ];
    expect(mapAll('llm', good.map((e) => JSON.stringify(e)))).toEqual(good);
    const bad = ['{"kind":"usage","inputTokens":"10","outputTokens":2}', '{"kind":"final","text":"x"}', '{"kind":"shout","text":"x"}'];
    expect(mapAll('llm', bad).map((e) => e.kind)).toEqual(['raw', 'raw', 'raw']);
  });
});

describe('events in frames', () => {
  it('cuts long texts, outputs and inputs so a frame stays small, and describes each event on one line', () => {
    const long = 'x'.repeat(100_000);
    const text = truncateAgentEvent({ kind: 'text', text: long }) as { text: string };
    expect(text.text.length).toBeLessThan(17_000);
    expect(text.text).toContain('more characters]');
    const call = truncateAgentEvent({ kind: 'tool_call', id: 'c', name: 'Write', input: { content: long } }) as { input: { truncated: string } };
    expect(call.input.truncated.length).toBeLessThan(17_000);
    expect(truncateAgentEvent({ kind: 'tool_result', id: 'c', output: long, isError: false }, 100)).toMatchObject({ output: expect.stringMatching(/^x{100}… \[99900 more/) });
    const small: AgentEvent = { kind: 'tool_call', id: 'c', name: 'Bash', input: { command: 'ls' } };
    expect(truncateAgentEvent(small)).toEqual(small);
    expect(describeAgentEvent(small)).toBe('Bash {"command":"ls"}');
    expect(describeAgentEvent({ kind: 'text', text: `line one\nline two ${long}` }).length).toBeLessThanOrEqual(200);
    expect(describeAgentEvent({ kind: 'usage', inputTokens: 3, outputTokens: 4, costUsd: 0.5 })).toBe('usage: 3 input tokens, 4 output tokens, $0.500000');
  });
});

describe('agentInvocation', () => {
  const options = { task: { title: 'Fix the build', body: 'The linker fails.\n' }, home: '/home/a1', llmBaseUrl: 'http://127.0.0.1:4141' };

  it('runs each CLI headless, pointed at the forwarder with the placeholder key, and resumes a session', () => {
    expect(taskPrompt(options.task)).toBe('Fix the build\n\nThe linker fails.');
    expect(taskPrompt({ title: 'Only a title', body: '' })).toBe('Only a title');

    const claude = agentInvocation({ kind: 'claude-code', binary: '/opt/warren/clis/claude', provider: 'anthropic', model: 'claude-sonnet-4-5', maxTurns: 5 }, { ...options, resume: 'u-1' });
    expect(claude.argv).toEqual([
      '/opt/warren/clis/claude', '-p', '--output-format', 'stream-json', '--verbose', '--dangerously-skip-permissions',
      '--model', 'claude-sonnet-4-5', '--max-turns', '5', '--resume', 'u-1', '--', 'Fix the build\n\nThe linker fails.',
    ]);
    expect(claude.env).toMatchObject({ ANTHROPIC_BASE_URL: 'http://127.0.0.1:4141/p/anthropic', ANTHROPIC_API_KEY: PLACEHOLDER_API_KEY, DISABLE_TELEMETRY: '1', DISABLE_AUTOUPDATER: '1', CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' });

    const codex = agentInvocation({ kind: 'codex', binary: '/opt/warren/clis/codex', provider: 'openai', model: 'gpt-5.2' }, { ...options, resume: 't-1' });
    expect(codex.argv.slice(0, 5)).toEqual(['/opt/warren/clis/codex', 'exec', '--json', '--skip-git-repo-check', '--dangerously-bypass-approvals-and-sandbox']);
    expect(codex.argv).toContain('model_providers.warren={name="warren",base_url="http://127.0.0.1:4141/p/openai",env_key="OPENAI_API_KEY",wire_api="responses"}');
    expect(codex.argv).toContain('analytics.enabled=false');
    expect(codex.argv.slice(-5)).toEqual(['gpt-5.2', 'resume', 't-1', '--', 'Fix the build\n\nThe linker fails.']);
    expect(codex.env).toEqual({ CODEX_HOME: '/home/a1/.codex', OPENAI_BASE_URL: 'http://127.0.0.1:4141/p/openai', OPENAI_API_KEY: PLACEHOLDER_API_KEY });

    const opencode = agentInvocation({ kind: 'opencode', binary: '/opt/warren/clis/opencode', provider: 'local', model: 'qwen3-coder', maxTurns: 7 }, options);
    expect(opencode.argv).toEqual(['/opt/warren/clis/opencode', 'run', '--format', 'json', '-m', 'warren/qwen3-coder']);
    expect(opencode.stdin).toBe('Fix the build\n\nThe linker fails.');
    const config = JSON.parse(opencode.env.OPENCODE_CONFIG_CONTENT!) as Record<string, unknown>;
    expect(config).toMatchObject({ autoupdate: false, share: 'disabled', agent: { build: { steps: 7 } }, provider: { warren: { options: { baseURL: 'http://127.0.0.1:4141/p/local', apiKey: PLACEHOLDER_API_KEY } } } });
    expect(opencode.env).toMatchObject({ OPENCODE_DISABLE_AUTOUPDATE: '1', OPENCODE_DISABLE_MODELS_FETCH: '1', OPENCODE_DISABLE_PROJECT_CONFIG: '1' });

    const withMcp = (kind: 'claude-code' | 'codex' | 'opencode'): readonly string[] =>
      agentInvocation({ kind, binary: '/b', provider: 'p', model: 'm', mcp: true }, options).argv;
    expect(withMcp('claude-code')).toContain('{"mcpServers":{"warren":{"type":"http","url":"http://127.0.0.1:4141/mcp"}}}');
    expect(withMcp('codex')).toContain('mcp_servers.warren={url="http://127.0.0.1:4141/mcp"}');
    const mcpConfig = agentInvocation({ kind: 'opencode', binary: '/b', provider: 'p', model: 'm', mcp: true }, options).env.OPENCODE_CONFIG_CONTENT!;
    expect(JSON.parse(mcpConfig)).toMatchObject({ mcp: { warren: { type: 'remote', url: 'http://127.0.0.1:4141/mcp', enabled: true } } });
    expect(claude.argv.join(' ')).not.toContain('mcp');

    const llm = agentInvocation({ kind: 'llm', program: ['/usr/bin/node', '/opt/warren/agent-llm/agent-llm.mjs'], provider: 'openai', model: 'gpt-5', maxTurns: 20, mcp: true }, options);
    expect(llm).toEqual({
      argv: ['/usr/bin/node', '/opt/warren/agent-llm/agent-llm.mjs'],
      env: { OPENAI_BASE_URL: 'http://127.0.0.1:4141/p/openai', OPENAI_API_KEY: PLACEHOLDER_API_KEY, WARREN_LLM_MODEL: 'gpt-5', WARREN_LLM_MAX_TURNS: '20', WARREN_MCP_URL: 'http://127.0.0.1:4141/mcp' },
      dirs: [],
    });
    // Without Warren's MCP tools (the API is not served) the loop is not told of an endpoint.
    const bare = agentInvocation({ kind: 'llm', program: ['/usr/bin/node', '/opt/warren/agent-llm/agent-llm.mjs'], provider: 'openai', model: 'gpt-5', maxTurns: 20 }, options);
    expect(bare.env).not.toHaveProperty('WARREN_MCP_URL');
    // opencode takes its project directory from --dir: the task's workspace, never the home.
    const inWorktree = agentInvocation({ kind: 'opencode', binary: '/opt/warren/clis/opencode', provider: 'local', model: 'qwen3-coder' }, { ...options, workspace: '/home/a1/work/t-1' });
    expect(inWorktree.argv.slice(-2)).toEqual(['--dir', '/home/a1/work/t-1']);
  });
});

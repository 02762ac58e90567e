import { describe, expect, it } from 'vitest';
import {
  decodeAgentFrame,
  decodeGatewayFrame,
  encodeFrame,
  FrameError,
  LineSplitter,
  MAX_FRAME_BYTES,
  parseProgressLine,
  parseRuntime,
  runnerConfigFromEnv,
  RunnerConfigError,
  type AgentFrame,
} from '@warren/agent-runner';

describe('encodeFrame / decode', () => {
  it('round-trips agent and gateway frames as one NDJSON line', () => {
    const frames: AgentFrame[] = [
      { type: 'hello', version: 1, pid: 42 },
      { type: 'ack', taskId: 't1', attempt: 1 },
      { type: 'progress', taskId: 't1', attempt: 1, message: 'half – ½', percent: 50 },
      { type: 'progress', taskId: 't1', attempt: 1, message: 'Bash {"command":"ls"}', event: { kind: 'tool_call', id: 'c1', name: 'Bash', input: { command: 'ls' } } },
      { type: 'progress', taskId: 't1', attempt: 1, message: 'answer: done', event: { kind: 'final', text: 'done', isError: false } },
      { type: 'result', taskId: 't1', attempt: 1, outcome: 'succeeded', exitCode: 0, signal: null, summary: 'ok\nline', outputs: ['work/t1/a'], durationMs: 5 },
      { type: 'send', ref: 'r1', to: 'b', body: { x: [1] } },
      { type: 'heartbeat' },
    ];
    for (const frame of frames) {
      const line = encodeFrame(frame);
      expect(line.endsWith('\n')).toBe(true);
      expect(line.indexOf('\n')).toBe(line.length - 1);
      expect(decodeAgentFrame(line.slice(0, -1))).toEqual(frame);
    }
    expect(decodeGatewayFrame(encodeFrame({ type: 'shutdown', reason: 'idle' }).trim())).toEqual({ type: 'shutdown', reason: 'idle' });
  });

  it('names the type and field at fault', () => {
    const cases: [string, string][] = [
      ['nope', 'not JSON'],
      ['[1]', 'not a JSON object'],
      ['{"type":"launch"}', 'unknown frame type "launch"'],
      ['{"type":"ack","taskId":"t"}', "'ack' frame needs 'attempt' to be a number"],
      ['{"type":"result","taskId":"t","attempt":1,"summary":"","durationMs":1,"outcome":"won","outputs":[]}', 'unknown outcome "won"'],
      ['{"type":"result","taskId":"t","attempt":1,"summary":"","durationMs":1,"outcome":"failed","outputs":[3]}', "'outputs' to be a list of strings"],
      ['{"type":"progress","taskId":"t","attempt":1,"message":"m","event":{"kind":"usage","inputTokens":-1,"outputTokens":0}}', "invalid 'event': 'usage' event needs 'inputTokens'"],
      ['{"type":"progress","taskId":"t","attempt":1,"message":"m","event":{"kind":"thought"}}', 'unknown event kind "thought"'],
      ['{"type":"progress","taskId":"t","attempt":1,"message":"m","event":"text"}', 'an event must be a JSON object'],
    ];
    for (const [line, reason] of cases) {
      let caught: unknown;
      try {
        decodeAgentFrame(line);
      } catch (error) {
        caught = error;
      }
      expect(caught, line).toBeInstanceOf(FrameError);
      expect((caught as FrameError).reason).toContain(reason);
      expect((caught as FrameError).code).toBe('WARREN_PROTOCOL');
    }
    expect(() => decodeGatewayFrame('{"no":"type"}')).toThrow(FrameError);
  });

  it('refuses to encode a frame over MAX_FRAME_BYTES', () => {
    const summary = 'x'.repeat(MAX_FRAME_BYTES);
    expect(() =>
      encodeFrame({ type: 'result', taskId: 't', attempt: 1, outcome: 'failed', exitCode: 1, signal: null, summary, outputs: [], durationMs: 1 }),
    ).toThrow(FrameError);
  });
});

describe('LineSplitter', () => {
  it('joins lines split across chunks, including inside a multi-byte character, and skips empty lines', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((l) => lines.push(l));
    const bytes = Buffer.from('{"a":"é"}\n\n{"b":2}\n{"c":');
    const cut = bytes.indexOf(0xa9); // second byte of é
    splitter.push(bytes.subarray(0, cut));
    splitter.push(bytes.subarray(cut));
    expect(lines).toEqual(['{"a":"é"}', '{"b":2}']);
    splitter.push(Buffer.from('3}\n'));
    expect(lines).toEqual(['{"a":"é"}', '{"b":2}', '{"c":3}']);
  });

  it('accepts a line of exactly the limit and refuses one byte more, even when it arrives in pieces', () => {
    const lines: string[] = [];
    new LineSplitter((l) => lines.push(l), 8).push(Buffer.from('12345678\n'));
    expect(lines).toEqual(['12345678']);
    const splitter = new LineSplitter(() => undefined, 8);
    splitter.push(Buffer.from('12345'));
    expect(() => splitter.push(Buffer.from('6789'))).toThrow(FrameError);
    expect(() => new LineSplitter(() => undefined, 8).push(Buffer.from('123456789\n'))).toThrow(/longer than 8 bytes/);
  });
});

describe('parseProgressLine', () => {
  it('reads ::progress:: and ::progress N:: lines only', () => {
    expect(parseProgressLine('::progress:: compiling')).toEqual({ message: 'compiling' });
    expect(parseProgressLine('::progress 40:: tests')).toEqual({ message: 'tests', percent: 40 });
    expect(parseProgressLine('::progress 250:: over')).toEqual({ message: 'over', percent: 100 });
    expect(parseProgressLine('progress 40 tests')).toBeNull();
    expect(parseProgressLine(' ::progress:: indented')).toBeNull();
  });
});

describe('runner configuration', () => {
  it('applies defaults and parses the runtime', () => {
    expect(runnerConfigFromEnv({ HOME: '/home/a' })).toEqual({
      socketPath: '/run/warren/agent.sock',
      runtime: { kind: 'shell' },
      maxConcurrent: 1,
      heartbeatMs: 5000,
      idleHeartbeatMs: 5000,
      home: '/home/a',
      llmSocketPath: '/run/warren/llm.sock',
      llmPort: 4141,
    });
    expect(parseRuntime('{"kind":"exec","command":["/usr/bin/node","/x.mjs"]}')).toEqual({ kind: 'exec', command: ['/usr/bin/node', '/x.mjs'] });
    expect(parseRuntime('{"kind":"claude-code","binary":"/opt/warren/clis/claude","provider":"anthropic","model":"claude-sonnet-4-5","maxTurns":8}')).toEqual({
      kind: 'claude-code',
      binary: '/opt/warren/clis/claude',
      provider: 'anthropic',
      model: 'claude-sonnet-4-5',
      maxTurns: 8,
    });
    expect(parseRuntime('{"kind":"codex","binary":"/opt/warren/clis/codex","provider":"openai"}')).toEqual({ kind: 'codex', binary: '/opt/warren/clis/codex', provider: 'openai' });
    expect(parseRuntime('{"kind":"opencode","binary":"/o","provider":"openai","model":"m","mcp":true}')).toEqual({ kind: 'opencode', binary: '/o', provider: 'openai', model: 'm', mcp: true });
    expect(parseRuntime('{"kind":"llm","program":["/usr/bin/node","/opt/warren/agent-llm/agent-llm.mjs"],"provider":"openai","model":"gpt-5","maxTurns":20}')).toEqual({
      kind: 'llm',
      program: ['/usr/bin/node', '/opt/warren/agent-llm/agent-llm.mjs'],
      provider: 'openai',
      model: 'gpt-5',
      maxTurns: 20,
    });
    expect(runnerConfigFromEnv({ HOME: '/h', WARREN_LLM_SOCKET: '/tmp/llm.sock', WARREN_LLM_PORT: '0' })).toMatchObject({ llmSocketPath: '/tmp/llm.sock', llmPort: 0 });
    expect(runnerConfigFromEnv({ WARREN_HEARTBEAT_MS: '2500' })).toMatchObject({ heartbeatMs: 2500, idleHeartbeatMs: 2500 });
    expect(runnerConfigFromEnv({ WARREN_HEARTBEAT_MS: '2500', WARREN_IDLE_HEARTBEAT_MS: '5000' })).toMatchObject({ heartbeatMs: 2500, idleHeartbeatMs: 5000 });
  });

  it('names the variable at fault', () => {
    const bad: [Record<string, string>, string][] = [
      [{ WARREN_RUNTIME: '{' }, 'WARREN_RUNTIME: not JSON'],
      [{ WARREN_RUNTIME: '{"kind":"exec","command":[]}' }, 'non-empty list'],
      [{ WARREN_RUNTIME: '{"kind":"exec","command":["node"]}' }, 'absolute path'],
      [{ WARREN_MAX_CONCURRENT: '0' }, 'WARREN_MAX_CONCURRENT'],
      [{ WARREN_HEARTBEAT_MS: 'soon' }, 'WARREN_HEARTBEAT_MS'],
      [{ WARREN_HEARTBEAT_MS: '2500', WARREN_IDLE_HEARTBEAT_MS: '1000' }, 'WARREN_IDLE_HEARTBEAT_MS: "1000" must be an integer >= 2500'],
      [{ WARREN_LLM_PORT: '70000' }, 'WARREN_LLM_PORT'],
      [{ WARREN_RUNTIME: '{"kind":"claude-code","binary":"claude","provider":"anthropic"}' }, "'binary' of a claude-code runtime must be an absolute path"],
      [{ WARREN_RUNTIME: '{"kind":"codex","binary":"/opt/codex","provider":"Open AI"}' }, "'provider' of a codex runtime"],
      [{ WARREN_RUNTIME: '{"kind":"opencode","binary":"/opt/opencode","provider":"openai"}' }, "'model' of a opencode runtime"],
      [{ WARREN_RUNTIME: '{"kind":"claude-code","binary":"/opt/claude","provider":"anthropic","maxTurns":0}' }, "'maxTurns' of a claude-code runtime"],
      [{ WARREN_RUNTIME: '{"kind":"llm","program":["/usr/bin/node"],"provider":"openai","model":"m"}' }, "'maxTurns' of a llm runtime"],
      [{ WARREN_RUNTIME: '{"kind":"gemini"}' }, `'kind' must be one of`],
      [{ WARREN_RUNTIME: '{"kind":"codex","binary":"/opt/codex","provider":"openai","mcp":"yes"}' }, "'mcp' of a codex runtime must be true or false"],
    ];
    for (const [env, text] of bad) {
      expect(() => runnerConfigFromEnv(env)).toThrow(RunnerConfigError);
      expect(() => runnerConfigFromEnv(env)).toThrow(text);
    }
  });
});

describe('parseSendLine', () => {
  it('reads the target agent and a JSON body, or keeps plain text', async () => {
    const { parseSendLine } = await import('@warren/agent-runner');
    expect(parseSendLine('::send shell-2:: {"ready":true}')).toEqual({ to: 'shell-2', body: { ready: true } });
    expect(parseSendLine('::send reporter-1:: hello there\r')).toEqual({ to: 'reporter-1', body: 'hello there' });
    expect(parseSendLine('::send Shell:: x')).toBeNull();
    expect(parseSendLine('send shell-2:: x')).toBeNull();
  });
});

/**
 * The agent runtimes' failure paths with a stand-in CLI (a shell script replaying a recorded
 * stream, then dying, failing or printing garbage), the LLM forwarder, the sessions file and the
 * CLI health probe.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest, createServer } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_CLIS_MODULES_DIR, agentCliBinary, loadSession, probeAgentCli, saveSession, startLlmForwarder, type AgentEvent, type AgentFrame, type TaskFrame } from '@warren/agent-runner';
import { ANSWER, CLI_VERSIONS, REPO_DIR, STREAMS_DIR, cliBinary } from './agent-clis.js';
import { buildRunner, startRunner, tempDir, TestGateway } from './gateway.js';

beforeAll(() => buildRunner(), 180_000);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function temp(): string {
  const { dir, remove } = tempDir();
  cleanups.push(remove);
  return dir;
}

/** A claude-code stand-in: replays the recorded stream, or parts of it, by the word in its prompt (its last argument). */
function fakeClaude(dir: string): string {
  const stream = join(STREAMS_DIR, `claude-code-${CLI_VERSIONS['claude-code']}.jsonl`);
  const script = join(dir, 'claude');
  writeFileSync(
    script,
    [
      '#!/bin/bash',
      'prompt="${@: -1}"',
      'case "$prompt" in',
      `  *die*) head -n 2 ${JSON.stringify(stream)}; echo 'Segmentation fault'; printf '{"type":"assistant","message":{"content":[{"type":"te'; kill -9 $$ ;;`,
      `  *fail*) head -n 1 ${JSON.stringify(stream)}; echo '{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["API Error: 500 upstream exploded"],"usage":{}}'; exit 1 ;;`,
      `  *garbage*) echo 'not json at all'; echo '{"type":"mystery"}'; exit 0 ;;`,
      `  *hang*) head -n 2 ${JSON.stringify(stream)}; exec sleep 60 ;;`,
      `  *) sleep 0.2; cat ${JSON.stringify(stream)} ;;`,
      'esac',
      '',
    ].join('\n'),
  );
  chmodSync(script, 0o755);
  return script;
}

function task(taskId: string, title: string): TaskFrame {
  return { type: 'task', taskId, attempt: 1, title, body: '', fields: {}, timeoutMs: 60_000 };
}


describe('an agent CLI that dies, fails or prints garbage', () => {
  it('fails that task with what was seen; the runner and the other tasks go on', async () => {
    const dir = temp();
    const home = join(dir, 'home');
    mkdirSync(home);
    const gateway = await TestGateway.start(dir);
    cleanups.push(() => gateway.close());
    const runner = startRunner({
      WARREN_AGENT_SOCKET: gateway.socketPath,
      HOME: home,
      WARREN_RUNTIME: JSON.stringify({ kind: 'claude-code', binary: fakeClaude(dir), provider: 'anthropic' }),
      WARREN_LLM_SOCKET: join(dir, 'llm.sock'),
      WARREN_LLM_PORT: '0',
      WARREN_MAX_CONCURRENT: '2',
    });
    cleanups.push(async () => {
      if (runner.child.exitCode === null && runner.child.signalCode === null) {
        runner.child.kill('SIGKILL');
        await runner.exited;
      }
    });
    await gateway.accept();
    await gateway.next((f): f is AgentFrame => f.type === 'hello', 'hello');
    gateway.send({ type: 'welcome', agent: { name: 'a1', template: 'claude', uid: 1, gid: 1, home, capabilities: [] } });

    gateway.send(task('die', 'Please die mid-stream'));
    gateway.send(task('ok1', 'Do the work'));
    const [died, ok1] = await Promise.all([gateway.result('die'), gateway.result('ok1')]);
    expect(died.outcome).toBe('failed');
    expect(died.signal).toBe('SIGKILL');
    expect(died.summary).toMatch(/^killed by SIGKILL\n/);
    expect(died.summary).toContain('last events:');
    expect(died.summary).toContain('Write {"file_path"');
    expect(died.summary).toContain('unrecognised claude-code output: Segmentation fault');
    const diedEvents = gateway.ofType('progress', 'die').map((f) => f.event as AgentEvent);
    expect(diedEvents.map((e) => e.kind)).toEqual(['session', 'tool_call', 'raw', 'raw']);
    expect(diedEvents[3]).toEqual({ kind: 'raw', source: 'claude-code', line: '{"type":"assistant","message":{"content":[{"type":"te' });
    expect(ok1).toMatchObject({ outcome: 'succeeded', summary: ANSWER });

    gateway.send(task('fail', 'Please fail'));
    const failed = await gateway.result('fail');
    expect(failed).toMatchObject({ outcome: 'failed', exitCode: 1 });
    expect(failed.summary).toMatch(/^exit code 1\nAPI Error: 500 upstream exploded\n/);

    gateway.send(task('junk', 'Print garbage'));
    const junk = await gateway.result('junk');
    expect(junk).toMatchObject({ outcome: 'failed', exitCode: 0 });
    expect(junk.summary).toMatch(/^the agent stopped without a final answer\n/);
    expect(gateway.ofType('progress', 'junk').map((f) => f.event)).toEqual([
      { kind: 'raw', source: 'claude-code', line: 'not json at all' },
      { kind: 'raw', source: 'claude-code', line: { type: 'mystery' } },
    ]);

    gateway.send(task('hang', 'Please hang'));
    await gateway.next((f): f is Extract<AgentFrame, { type: 'progress' }> => f.type === 'progress' && f.taskId === 'hang' && f.event?.kind === 'tool_call', 'tool_call of hang');
    gateway.send({ type: 'cancel', taskId: 'hang', attempt: 1, reason: 'stuck' });
    const hung = await gateway.result('hang');
    expect(hung.outcome).toBe('cancelled');
    expect(hung.summary).toMatch(/^cancelled: stuck\nlast events:\n/);
    expect(hung.summary).toContain('Write {"file_path"');

    gateway.send(task('ok2', 'Do the work again'));
    expect(await gateway.result('ok2')).toMatchObject({ outcome: 'succeeded', summary: ANSWER });
    expect(gateway.protocolErrors).toEqual([]);
    // Sessions: the last run that named one is stored; the resumed run of ok2 asked for it.
    expect(loadSession(home, 'claude-code')?.sessionId).toBe((gateway.ofType('progress', 'ok1').find((f) => f.event?.kind === 'session')?.event as { sessionId: string }).sessionId);
    gateway.send({ type: 'shutdown', reason: 'test over' });
    expect(await runner.exited).toEqual({ code: 0, signal: null });
  }, 120_000);
});

describe('the llm runtime', () => {
  it('runs the loop program with the forwarder URL, the model and the turn limit; its valid event lines pass through', async () => {
    const dir = temp();
    const home = join(dir, 'home');
    mkdirSync(home);
    const program = join(dir, 'agent-llm.sh');
    writeFileSync(
      program,
      [
        '#!/bin/sh',
        `printf '{"kind":"session","sessionId":"s-1","model":"%s"}\\n' "$WARREN_LLM_MODEL"`,
        `printf '{"kind":"text","text":"%s %s %s %s"}\\n' "$OPENAI_BASE_URL" "$OPENAI_API_KEY" "$WARREN_LLM_MAX_TURNS" "$WARREN_MCP_URL"`,
        `echo '{"kind":"usage","inputTokens":"many"}'`,
        `echo '{"kind":"final","text":"all done","isError":false}'`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const gateway = await TestGateway.start(dir);
    cleanups.push(() => gateway.close());
    const runner = startRunner({
      WARREN_AGENT_SOCKET: gateway.socketPath,
      HOME: home,
      WARREN_RUNTIME: JSON.stringify({ kind: 'llm', program: [program], provider: 'openai', model: 'gpt-5', maxTurns: 7, mcp: true }),
      WARREN_LLM_SOCKET: join(dir, 'llm.sock'),
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
    gateway.send({ type: 'welcome', agent: { name: 'a1', template: 'llm', uid: 1, gid: 1, home, capabilities: [] } });
    gateway.send(task('l1', 'Think'));
    expect(await gateway.result('l1')).toMatchObject({ outcome: 'succeeded', summary: 'all done' });
    const events = gateway.ofType('progress', 'l1').map((f) => f.event as AgentEvent);
    expect(events.map((e) => e.kind)).toEqual(['session', 'text', 'raw', 'final']);
    expect(events[0]).toEqual({ kind: 'session', sessionId: 's-1', model: 'gpt-5' });
    const [base, key, turns, mcp] = (events[1] as { text: string }).text.split(' ');
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/p\/openai$/);
    expect(base).not.toBe('http://127.0.0.1:0/p/openai');
    expect([key, turns, mcp]).toEqual(['warren-gateway', '7', base!.replace('/p/openai', '/mcp')]);
    gateway.send({ type: 'shutdown', reason: 'test over' });
    expect(await runner.exited).toEqual({ code: 0, signal: null });
  }, 60_000);
});

describe('a task on a git repository', () => {
  it('runs in a worktree on warren/<agent>/<task>; its work is committed there and the summary names the branch and the diff', async () => {
    const dir = temp();
    const home = join(dir, 'home');
    mkdirSync(home);
    const source = join(dir, 'source');
    const git = (cwd: string, ...args: string[]): string =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args], { cwd, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: dir } });
    mkdirSync(source);
    git(source, 'init', '-q', '-b', 'main');
    writeFileSync(join(source, 'README.md'), 'hello\n');
    git(source, 'add', 'README.md');
    git(source, 'commit', '-q', '-m', 'first');
    const mirror = join(dir, 'repos', '0123456789abcdef.git');
    git(dir, 'clone', '-q', '--mirror', source, mirror);

    const gateway = await TestGateway.start(dir);
    cleanups.push(() => gateway.close());
    const runner = startRunner({ WARREN_AGENT_SOCKET: gateway.socketPath, HOME: home, WARREN_RUNTIME: '{"kind":"shell"}' });
    cleanups.push(async () => {
      if (runner.child.exitCode === null && runner.child.signalCode === null) {
        runner.child.kill('SIGKILL');
        await runner.exited;
      }
    });
    await gateway.accept();
    await gateway.next((f): f is AgentFrame => f.type === 'hello', 'hello');
    gateway.send({ type: 'welcome', agent: { name: 'a1', template: 'shell', uid: 1, gid: 1, home, capabilities: [] } });
    gateway.send({ ...task('g1', 'Add a file'), command: 'printf "new\\n" > new.txt; cat README.md; echo "on $WARREN_GIT_BRANCH as $GIT_AUTHOR_NAME"', repository: { mirror } });
    const result = await gateway.result('g1');
    expect(result, result.summary).toMatchObject({ outcome: 'succeeded' });
    expect(result.summary).toMatch(/^hello\non warren\/a1\/g1 as a1\n\nbranch warren\/a1\/g1: 1 commit, 1 file changed, 1 insertion\(\+\), 0 deletions\(-\)\n new\.txt/);
    const clone = join(home, 'repos', '0123456789abcdef');
    expect(git(clone, 'log', '-1', '--format=%an %s', 'warren/a1/g1').trim()).toBe('a1 warren: g1 attempt 1');
    expect(git(clone, 'show', 'warren/a1/g1:new.txt')).toBe('new\n');

    gateway.send({ ...task('g2', 'Bad base'), command: 'true', repository: { mirror, base: 'no-such-branch' } });
    const bad = await gateway.result('g2');
    expect(bad.outcome).toBe('failed');
    expect(bad.summary).toMatch(/^cannot prepare the git workspace of g2: /);
    gateway.send({ type: 'shutdown', reason: 'test over' });
    expect(await runner.exited).toEqual({ code: 0, signal: null });
  }, 60_000);
});

describe('the LLM forwarder', () => {
  it('pipes each loopback connection to the gateway socket; a missing socket closes that connection only; close is idempotent', async () => {
    const dir = temp();
    const socketPath = join(dir, 'llm.sock');
    const upstream = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url: req.url, key: req.headers['x-api-key'] ?? null }));
    });
    await new Promise<void>((resolve) => upstream.listen(socketPath, resolve));
    cleanups.push(() => new Promise<void>((resolve) => upstream.close(() => resolve())));
    const forwarder = await startLlmForwarder({ socketPath, port: 0 });
    cleanups.push(() => forwarder.close());
    expect(forwarder.url).toBe(`http://127.0.0.1:${forwarder.port}`);
    const answer = await fetch(`${forwarder.url}/p/anthropic/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'warren-gateway' }, body: '{}' });
    expect(await answer.json()).toEqual({ method: 'POST', url: '/p/anthropic/v1/messages', key: 'warren-gateway' });

    const missing = await startLlmForwarder({ socketPath: join(dir, 'absent.sock'), port: 0 });
    cleanups.push(() => missing.close());
    await expect(fetch(`${missing.url}/p/x/v1/models`)).rejects.toThrow();
    const again = await fetch(`${forwarder.url}/p/openai/v1/models`);
    expect(again.status).toBe(200);

    // A connection open at close time is ended.
    const hanging = new Promise<string>((resolve) => {
      const req = httpRequest(`${forwarder.url}/slow`, { method: 'POST' }, () => resolve('answered'));
      req.on('error', (error) => resolve(`error: ${error.message}`));
      req.write('partial');
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await forwarder.close();
    await forwarder.close();
    expect(await hanging).toMatch(/^(error|answered)/);
    await expect(startLlmForwarder({ socketPath, port: missing.port })).rejects.toThrow(/EADDRINUSE/);
  });
});

describe('sessions.json', () => {
  it('stores, reads and forgets a session per runtime kind; a corrupt file reads as none', () => {
    const home = temp();
    expect(loadSession(home, 'codex')).toBeUndefined();
    saveSession(home, 'codex', { sessionId: 't-1', directory: '/w/1' });
    saveSession(home, 'claude-code', { sessionId: 'c-1' });
    expect(loadSession(home, 'codex')).toMatchObject({ sessionId: 't-1', directory: '/w/1' });
    expect(loadSession(home, 'claude-code')).toMatchObject({ sessionId: 'c-1' });
    saveSession(home, 'codex', undefined);
    expect(loadSession(home, 'codex')).toBeUndefined();
    expect(loadSession(home, 'claude-code')?.sessionId).toBe('c-1');
    writeFileSync(join(home, '.warren', 'sessions.json'), '{"claude-code": {"sessionId": ');
    expect(loadSession(home, 'claude-code')).toBeUndefined();
    saveSession(home, 'opencode', { sessionId: 'ses_1', directory: '/w/2' });
    expect(JSON.parse(readFileSync(join(home, '.warren', 'sessions.json'), 'utf8'))).toEqual({ opencode: expect.objectContaining({ sessionId: 'ses_1' }) });
  });
});

describe('probeAgentCli', () => {
  it('finds each CLI binary where scripts/agent-clis.sh installed it', () => {
    for (const kind of ['claude-code', 'codex', 'opencode'] as const) {
      expect(join(REPO_DIR, AGENT_CLIS_MODULES_DIR, agentCliBinary(kind))).toBe(cliBinary(kind));
    }
    expect(agentCliBinary('opencode', 'x64', false)).toBe('opencode-linux-x64-baseline/bin/opencode');
    expect(agentCliBinary('codex', 'arm64')).toBe('@openai/codex-linux-arm64/vendor/aarch64-unknown-linux-musl/bin/codex');
    expect(() => agentCliBinary('claude-code', 'riscv64')).toThrow('no native binary for architecture riscv64');
  });

  it('reports the version of each installed CLI', async () => {
    expect(await probeAgentCli('claude-code', cliBinary('claude-code'))).toEqual({ ok: true, version: `${CLI_VERSIONS['claude-code']} (Claude Code)` });
    expect(await probeAgentCli('codex', cliBinary('codex'))).toEqual({ ok: true, version: `codex-cli ${CLI_VERSIONS.codex}` });
    expect(await probeAgentCli('opencode', cliBinary('opencode'))).toEqual({ ok: true, version: CLI_VERSIONS.opencode });
  }, 60_000);

  it('says why a CLI is unhealthy: missing, not executable, failing, silent or hanging', async () => {
    const dir = temp();
    expect(await probeAgentCli('codex', join(dir, 'codex'))).toEqual({ ok: false, reason: `codex: ${join(dir, 'codex')} does not exist` });
    expect(await probeAgentCli('codex', dir)).toEqual({ ok: false, reason: `codex: ${dir} is not a regular file` });
    const plain = join(dir, 'plain');
    writeFileSync(plain, 'data');
    expect(await probeAgentCli('opencode', plain)).toEqual({ ok: false, reason: `opencode: ${plain} is not executable` });
    const script = (name: string, body: string): string => {
      const path = join(dir, name);
      writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
      return path;
    };
    expect(await probeAgentCli('claude-code', script('broken', 'echo "cannot load libfoo.so" >&2; exit 127'))).toEqual({
      ok: false,
      reason: `claude-code: ${join(dir, 'broken')} --version exited with 127: cannot load libfoo.so`,
    });
    expect(await probeAgentCli('claude-code', script('silent', 'exit 0'))).toMatchObject({ ok: false, reason: expect.stringContaining('printed no version') });
    expect(await probeAgentCli('claude-code', script('hang', 'sleep 30'), { timeoutMs: 300 })).toEqual({
      ok: false,
      reason: `claude-code: ${join(dir, 'hang')} --version did not answer within 300 ms`,
    });
  }, 60_000);
});

import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { silentLogger } from '@warren/core';
import { LLM_SOCKET_NAME, LlmGateway, type LlmBudget, type LlmRefusal } from '@warren/llm-gateway';
import { UsageLedger, type LlmUsageRow } from '@warren/registry';
import { spawnSandbox, type SandboxExit } from '@warren/sandbox';
import { openDatabase } from '@warren/store';
import { startFakeLlm, type FakeLlm, type FakeLlmScript } from '@warren/testing';
import { agentEventProblem, type AgentEvent } from '@warren/agent-runner';
import { mcpTestServer } from '../../mcp/test/support.js';
import { cleanup, makeSpec, readLog, requireSandboxHost, tempDir, track } from '../../sandbox/test/helpers.js';
import { buildBundle, type BuiltBundle } from './support.js';

/** The provider's key: the gateway holds it, the fake provider refuses any other. */
const PROVIDER_KEY = 'sk-provider-0123456789-never-in-a-sandbox';

/**
 * Stands in for the runner inside the sandbox: listens on 127.0.0.1:4141 of the sandbox's own
 * loopback, pipes each connection to /run/warren/llm.sock, runs the loop and keeps its stdout in
 * $HOME/events.ndjson.
 */
const RUNNER = `
import { connect, createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
const server = createServer((client) => {
  const upstream = connect('/run/warren/llm.sock');
  client.pipe(upstream).pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
server.listen(4141, '127.0.0.1', () => {
  const child = spawn('/usr/bin/node', ['/opt/warren/agent-llm/agent-llm.mjs'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const out = createWriteStream(process.env.HOME + '/events.ndjson');
  child.stdout.pipe(out);
  child.on('close', (code) => out.end(() => process.exit(code ?? 1)));
});
`;

let bundle: BuiltBundle;
beforeAll(async () => {
  await requireSandboxHost();
  bundle = await buildBundle();
});
afterAll(() => bundle?.close());
afterEach(cleanup);

interface SandboxRun {
  readonly exit: SandboxExit;
  readonly log: string;
  readonly events: AgentEvent[];
  readonly uid: number;
  /** The agent's home on the host. */
  readonly home: string;
  readonly fake: FakeLlm;
  /** Rows the gateway put in the ledger, and its refusals. */
  readonly calls: LlmUsageRow[];
  readonly refusals: LlmRefusal[];
}

/**
 * Runs one task of agent coder-1 (template coder) in a real sandbox, its LLM calls going through a
 * real gateway on the agent's socket (owned by its uid, bound at /run/warren) to the fake provider.
 */
async function runInSandbox(script: FakeLlmScript, options: { budget?: LlmBudget; mcp?: { url: string; token: string } } = {}): Promise<SandboxRun> {
  const budget = options.budget ?? {};
  const fake = await startFakeLlm({ apiKey: PROVIDER_KEY, script });
  onTestFinished(() => fake.close());
  const state = tempDir('warren-agent-llm-state-');
  const db = openDatabase(join(state, 'warren.db'));
  onTestFinished(() => db.close());
  const calls: LlmUsageRow[] = [];
  const refusals: LlmRefusal[] = [];
  const gateway = LlmGateway.create({
    providers: [
      { name: 'openai', baseUrl: `${fake.url}/v1`, wireApi: 'openai-chat', apiKey: PROVIDER_KEY, models: { small: 'fake-small-2026' }, prices: { 'fake-small-2026': { input: 2, output: 10 } } },
    ],
    ledger: new UsageLedger(db),
    reports: { call: (row) => calls.push(row), refused: (refusal) => refusals.push(refusal) },
    logger: silentLogger,
    ...(options.mcp ? { mcpUrl: options.mcp.url } : {}),
  });
  onTestFinished(() => gateway.close());

  const spec = makeSpec(['/usr/bin/node', '/opt/warren/agent-llm/runner.mjs']);
  const home = spec.homeHostPath;
  mkdirSync(join(home, 'work'));
  chownSync(join(home, 'work'), spec.uid, spec.gid);
  writeFileSync(join(home, 'task.json'), JSON.stringify({ type: 'task', taskId: 'hello', attempt: 1, title: 'Say hello', body: 'Write hello.txt.', fields: {}, timeoutMs: 60_000 }), { mode: 0o644 });
  const opt = tempDir('warren-agent-llm-opt-');
  chmodSync(opt, 0o755);
  copyFileSync(bundle.path, join(opt, 'agent-llm.mjs'));
  chmodSync(join(opt, 'agent-llm.mjs'), 0o644);
  writeFileSync(join(opt, 'runner.mjs'), RUNNER, { mode: 0o644 });
  const sockets = tempDir('warren-agent-llm-run-');
  chmodSync(sockets, 0o755);
  const socket = await gateway.serve(
    { agent: 'coder-1', template: 'coder', providers: ['openai'], budgets: { template: budget, agent: {} }, currentTask: () => ({ taskId: 'hello', attempt: 1, deadlineMs: Date.now() + 60_000 }),
      ...(options.mcp ? { mcpToken: options.mcp.token } : {}),
    },
    join(sockets, LLM_SOCKET_NAME),
    { owner: { uid: spec.uid, gid: spec.gid } },
  );
  onTestFinished(() => socket.close());

  const sandbox = track(
    await spawnSandbox({
      ...spec,
      cwd: `${spec.homePath}/work`,
      env: {
        ...spec.env,
        WARREN_TASK_FILE: `${spec.homePath}/task.json`,
        OPENAI_BASE_URL: 'http://127.0.0.1:4141/p/openai',
        OPENAI_API_KEY: 'warren-gateway',
        WARREN_LLM_MODEL: 'small',
        ...(options.mcp ? { WARREN_MCP_URL: 'http://127.0.0.1:4141/mcp' } : {}),
      },
      readOnlyBinds: [
        { source: opt, target: '/opt/warren/agent-llm' },
        { source: sockets, target: '/run/warren' },
      ],
      limits: { ...spec.limits, pidsMax: 256, memoryMaxBytes: 1024 * 1024 * 1024 },
    }),
  );
  const exit = await sandbox.exited;
  const events = readFileSync(join(home, 'events.ndjson'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as AgentEvent);
  for (const event of events) expect(agentEventProblem(event), JSON.stringify(event)).toBeNull();
  return { exit, log: readLog(spec), events, uid: spec.uid, home, fake, calls, refusals };
}

/** Every file under `dir` whose bytes contain `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    if (readFileSync(path).includes(needle)) found.push(path);
  }
  return found;
}

describe('the loop inside a Warren sandbox, through the LLM gateway', () => {
  it('runs as the agent uid with no network but 127.0.0.1:4141, edits its workspace and answers; the key stays outside, every call is counted', async () => {
    const run = await runInSandbox((request) => {
      const messages = (request.body as { messages: { role: string }[] }).messages;
      if (messages.at(-1)?.role === 'tool') return { text: 'Wrote hello.txt; the host is out of reach.', usage: { inputTokens: 300, outputTokens: 20 } };
      // The fake's own address on the host, which the sandbox must not reach.
      const hostPort = String(request.headers.host).split(':')[1];
      return {
        usage: { inputTokens: 200, outputTokens: 50 },
        toolCalls: [
          { id: 'c1', name: 'write_file', arguments: { path: 'hello.txt', content: 'hello from the sandbox\n' } },
          { id: 'c2', name: 'run_command', arguments: { command: 'id -u; cat hello.txt; env | grep -c sk-provider; true' } },
          {
            id: 'c3',
            name: 'run_command',
            arguments: { command: `/usr/bin/node -e "require('net').connect(${hostPort}, '127.0.0.1').on('connect', () => console.log('reached the host')).on('error', (e) => console.log('no route: ' + e.code))"` },
          },
        ],
      };
    });
    expect(run.exit, run.log).toEqual({ kind: 'succeeded', exitCode: 0 });

    const results = Object.fromEntries(run.events.flatMap((e) => (e.kind === 'tool_result' ? [[e.id, e.output]] : [])));
    expect(results.c2).toBe(`[exit code 0]\n${run.uid}\nhello from the sandbox\n0`);
    expect(results.c3).toMatch(/^\[exit code 0\]\nno route: ECONNREFUSED$/);
    expect(run.events.at(-1)).toEqual({ kind: 'final', text: 'Wrote hello.txt; the host is out of reach.', isError: false });
    expect(statSync(join(run.home, 'work', 'hello.txt')).uid).toBe(run.uid);

    // The provider saw its own key and the mapped model; the agent sent only the placeholder.
    const requests = run.fake.requests.filter((r) => r.path === '/v1/chat/completions');
    expect(requests).toHaveLength(2);
    for (const request of requests) {
      expect(request.headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`);
      expect(request.body).toMatchObject({ model: 'fake-small-2026', stream: true });
    }
    expect(filesContaining(run.home, PROVIDER_KEY)).toEqual([]);
    expect(run.events.filter((e) => e.kind === 'usage')).toEqual([
      { kind: 'usage', inputTokens: 200, outputTokens: 50, model: 'fake-small-2026' },
      { kind: 'usage', inputTokens: 300, outputTokens: 20, model: 'fake-small-2026' },
    ]);
    expect(run.calls.map((c) => [c.agent, c.taskId, c.model, c.inputTokens, c.outputTokens, c.status])).toEqual([
      ['coder-1', 'hello', 'fake-small-2026', 200, 50, 200],
      ['coder-1', 'hello', 'fake-small-2026', 300, 20, 200],
    ]);
  });

  it('ends the task with the budget as its reason when the gateway refuses the next call', async () => {
    const run = await runInSandbox(
      [
        { usage: { inputTokens: 400, outputTokens: 200 }, toolCalls: [{ id: 'c1', name: 'run_command', arguments: { command: 'echo working' } }] },
        { text: 'never sent: the budget is used up' },
      ],
      { budget: { taskTokens: 500 } },
    );
    expect(run.exit, run.log).toEqual({ kind: 'failed', exitCode: 1 });
    expect(run.fake.requests.filter((r) => r.path === '/v1/chat/completions')).toHaveLength(1);
    const error = run.events.find((e) => e.kind === 'error');
    expect(error?.kind === 'error' ? error.message : '').toMatch(/^the model call failed with HTTP 429 \(budget_exceeded\): task token budget of 500 reached/);
    expect(run.events.at(-1)).toMatchObject({ kind: 'final', isError: true });
    expect(run.refusals.map((r) => [r.agent, r.reason])).toEqual([['coder-1', 'budget_exceeded']]);
  });

  it("calls Warren's MCP tools through the gateway's /mcp, which adds the token the agent never holds", async () => {
    const t = await mcpTestServer();
    const run = await runInSandbox(
      (request) => {
        const messages = (request.body as { messages: { role: string }[] }).messages;
        if (messages.at(-1)?.role === 'tool') return { text: 'shell-1 is there.' };
        return { toolCalls: [{ id: 'c1', name: 'warren_list_agents', arguments: {} }] };
      },
      { mcp: { url: t.url.href, token: t.viewerToken } },
    );
    expect(run.exit, run.log).toEqual({ kind: 'succeeded', exitCode: 0 });
    expect(run.events.find((e) => e.kind === 'tool_result')).toMatchObject({ id: 'c1', isError: false, output: expect.stringContaining('"shell-1"') });
    expect(run.events.at(-1)).toEqual({ kind: 'final', text: 'shell-1 is there.', isError: false });
    expect(filesContaining(run.home, t.viewerToken)).toEqual([]);
  });
});

import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { spawnSandbox } from '@warren/sandbox';
import { startFakeLlm } from '@warren/testing';
import { agentEventProblem, type AgentEvent } from '../src/agent-events.js';
import { cleanup, makeSpec, readLog, requireSandboxHost, tempDir, track } from '../../sandbox/test/helpers.js';
import { buildBundle, type BuiltBundle } from './support.js';

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

/** The host end of the agent's channel for LLM calls: a Unix socket piped to the provider's TCP port. */
async function llmSocket(path: string, port: number): Promise<Server> {
  const server = createServer((agent) => {
    const provider = connect(port, '127.0.0.1');
    agent.pipe(provider).pipe(agent);
    agent.on('error', () => provider.destroy());
    provider.on('error', () => agent.destroy());
  });
  await new Promise<void>((done) => server.listen(path, done));
  chmodSync(path, 0o666);
  onTestFinished(
    () =>
      new Promise<void>((done) => {
        server.close(() => done());
      }),
  );
  return server;
}

describe('the loop inside a Warren sandbox', () => {
  it('runs as the agent uid with no network but the forwarder on 127.0.0.1:4141, edits its workspace and answers', async () => {
    // The fake's TCP port on the host, which the sandbox must not reach.
    let hostPort = 0;
    const fake = await startFakeLlm({
      script: (request) => {
        const messages = (request.body as { messages: { role: string }[] }).messages;
        if (messages.at(-1)?.role === 'tool') return { text: 'Wrote hello.txt; the host is out of reach.' };
        return {
          toolCalls: [
            { id: 'c1', name: 'write_file', arguments: { path: 'hello.txt', content: 'hello from the sandbox\n' } },
            { id: 'c2', name: 'run_command', arguments: { command: 'id -u; cat hello.txt' } },
            {
              id: 'c3',
              name: 'run_command',
              arguments: { command: `/usr/bin/node -e "require('net').connect(${hostPort}, '127.0.0.1').on('connect', () => console.log('reached the host')).on('error', (e) => console.log('no route: ' + e.code))"` },
            },
          ],
        };
      },
    });
    hostPort = Number(new URL(fake.url).port);
    onTestFinished(() => fake.close());

    const spec = makeSpec(['/usr/bin/node', '/opt/warren/agent-llm/runner.mjs']);
    const home = spec.homeHostPath;
    const workspace = join(home, 'work');
    mkdirSync(workspace);
    chownSync(workspace, spec.uid, spec.gid);
    writeFileSync(join(home, 'task.json'), JSON.stringify({ type: 'task', taskId: 'hello', attempt: 1, title: 'Say hello', body: 'Write hello.txt.', fields: {}, timeoutMs: 60_000 }), { mode: 0o644 });
    const opt = tempDir('warren-agent-llm-opt-');
    chmodSync(opt, 0o755);
    copyFileSync(bundle.path, join(opt, 'agent-llm.mjs'));
    writeFileSync(join(opt, 'runner.mjs'), RUNNER, { mode: 0o644 });
    chmodSync(join(opt, 'agent-llm.mjs'), 0o644);
    const sockets = tempDir('warren-agent-llm-run-');
    chmodSync(sockets, 0o755);
    await llmSocket(join(sockets, 'llm.sock'), hostPort);

    const sandbox = track(
      await spawnSandbox({
        ...spec,
        cwd: `${spec.homePath}/work`,
        env: {
          ...spec.env,
          WARREN_TASK_FILE: `${spec.homePath}/task.json`,
          OPENAI_BASE_URL: 'http://127.0.0.1:4141/v1',
          OPENAI_API_KEY: 'warren-gateway',
          WARREN_LLM_MODEL: 'fake-model',
        },
        readOnlyBinds: [
          { source: opt, target: '/opt/warren/agent-llm' },
          { source: sockets, target: '/run/warren' },
        ],
        limits: { ...spec.limits, pidsMax: 256, memoryMaxBytes: 1024 * 1024 * 1024 },
      }),
    );
    const exit = await sandbox.exited;
    const log = readLog(spec);
    expect(exit, log).toEqual({ kind: 'succeeded', exitCode: 0 });

    const events = readFileSync(join(home, 'events.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as AgentEvent);
    for (const event of events) expect(agentEventProblem(event), JSON.stringify(event)).toBeUndefined();
    const results = Object.fromEntries(events.flatMap((e) => (e.kind === 'tool_result' ? [[e.id, e.output]] : [])));
    expect(results.c2).toBe(`[exit code 0]\n${spec.uid}\nhello from the sandbox`);
    expect(results.c3).toBe('[exit code 0]\nno route: ECONNREFUSED');
    expect(events.at(-1)).toEqual({ kind: 'final', text: 'Wrote hello.txt; the host is out of reach.', isError: false });
    expect(statSync(join(workspace, 'hello.txt')).uid).toBe(spec.uid);
    expect(fake.requests.filter((r) => r.path === '/v1/chat/completions')).toHaveLength(2);
  });
});

/**
 * MCP against a real `warren up` (built CLI, nats-server, bubblewrap agents, SQLite): the SDK's
 * client over Streamable HTTP creates a task that an agent does and reads its result; it uses an
 * agent's computer and finds the file it wrote there after the agent was stopped; `warren mcp`
 * bridges a stdio client to the same server as the local operator. Every call is one audit row.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { cleanUpAfterEach, cli, makeTestLayout, requireMachine, startWarren, waitFor, warren, type CliProcess } from '../support/cli.js';

const { layouts, running } = cleanUpAfterEach();

beforeAll(() => requireMachine());

/** The API address and the sign-in token `warren up` printed. */
async function signInOf(up: CliProcess): Promise<{ url: string; token: string }> {
  await waitFor('the sign-in link', () => /Sign in \(valid \d+ h\): \S+/.test(up.stderr()));
  const parsed = new URL(/Sign in \(valid \d+ h\): (\S+)/.exec(up.stderr())![1]!);
  return { url: parsed.origin, token: parsed.searchParams.get('token')! };
}

/** Polls `check` every 100 ms until it gives a value; fails naming `what` after `timeoutMs`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('MCP against a running supervisor', () => {
  it('creates a task an agent does, reads its result, and keeps files in an agent computer across a stop', async () => {
    const made = makeTestLayout({}, { copyAgents: true });
    layouts.push(made);
    const up = startWarren(made.args('up', '--kill-grace', '1s', '--http', '127.0.0.1:0'));
    running.push(up);
    const { url, token } = await signInOf(up);
    const client = new Client({ name: 'warren-e2e', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    onTestFinished(() => client.close());
    const call = async <T>(name: string, args: Record<string, unknown>): Promise<T> => {
      const result = await client.callTool({ name, arguments: args });
      expect(result.isError, `${name}: ${JSON.stringify(result.content)}`).toBeFalsy();
      return result.structuredContent as T;
    };

    // Work on the board: a card in Warren's own format, done by a shell agent.
    // Made in the backlog, where nothing runs; moved to Ready (by the column's name) as a person would.
    const created = await call<{ id: string }>('create_task', { title: 'Greet from MCP', column: 'backlog', command: 'echo "hello from $(id -un)"', capabilities: ['shell'] });
    const column = await until('the card on the board', async () => (await call<{ cards: { id: string; column: string }[] }>('get_board', {})).cards.find((c) => c.id === created.id)?.column);
    expect(column).toBe('backlog');
    expect(await call('move_task', { id: created.id, column: 'Ready' })).toMatchObject({ id: created.id, from: 'backlog', to: 'ready' });
    const done = await until('the task to finish', async () => {
      // Warren knows the task once it has seen it ready: until then describe_task says so.
      const result = await client.callTool({ name: 'describe_task', arguments: { id: created.id } });
      const task = result.structuredContent as { state: string; agent: string | null; executions: { outcome: string | null; summary: string | null }[] } | undefined;
      return result.isError !== true && task?.state === 'succeeded' ? task : undefined;
    });
    expect(done.agent).toMatch(/^shell-\d+$/);
    expect(done.executions.at(-1)!.summary).toContain(`hello from ${done.agent}`);

    // The agent's computer: a file written there is there after the agent stopped.
    const agent = done.agent!;
    const wrote = await call<{ exitCode: number; stdout: string }>('run_command', { agent, command: 'echo kept > notes.txt && id -u && pwd' });
    expect(wrote.exitCode).toBe(0);
    const [uid, home] = wrote.stdout.trim().split('\n');
    expect(Number(uid)).toBeGreaterThanOrEqual(1_900_000_000);
    expect(home).toBe(`/home/${agent}`); // the home as the sandbox mounts it
    await call('stop_agent', { name: agent });
    await until('the agent to stop', async () => {
      const { agents } = await call<{ agents: { name: string; state: string }[] }>('list_agents', {});
      return agents.find((a) => a.name === agent)?.state === 'stopped' ? true : undefined;
    });
    const read = await call<{ content: string }>('read_file', { agent, path: 'notes.txt' });
    expect(read.content).toBe('kept\n');
    const escaped = await client.callTool({ name: 'read_file', arguments: { agent, path: '../../../etc/shadow' } });
    expect(escaped.isError).toBe(true);

    // The same server over stdio, as the local operator.
    const stdio = new Client({ name: 'warren-e2e-stdio', version: '1.0.0' });
    await stdio.connect(new StdioClientTransport({ command: process.execPath, args: [cli, 'mcp', ...made.args()], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, stderr: 'pipe' }));
    onTestFinished(() => stdio.close());
    const viaStdio = await stdio.callTool({ name: 'list_agents', arguments: {} });
    expect((viaStdio.structuredContent as { agents: { name: string }[] }).agents.map((a) => a.name)).toContain(agent);
    // warren mcp has a token of its own: the sign-in link's (the browser's) still works.
    expect((await call<{ agents: unknown[] }>('list_agents', {})).agents.length).toBeGreaterThan(0);

    // One audit row per call, with the tool and a digest of its arguments.
    const rows = JSON.parse((await warren(['audit', '--json', '--action', 'policy.decide', '--limit', '100000', ...made.args()])).stdout) as { actor: string; object: string; decision: string; details: { tool?: string; argsSha256?: string } }[];
    const calls = rows.filter((r) => r.object.startsWith('mcp:'));
    expect(calls.some((r) => r.actor === 'user:local-mcp' && r.object === 'mcp:list_agents')).toBe(true);
    expect(calls.filter((r) => r.object === 'mcp:create_task')).toHaveLength(1);
    expect(calls.find((r) => r.object === 'mcp:create_task')).toMatchObject({ actor: 'user:local-operator', decision: 'allow', details: { tool: 'create_task' } });
    expect(calls.find((r) => r.object === 'mcp:create_task')!.details.argsSha256).toMatch(/^[0-9a-f]{64}$/);
    // The computer's own decision: exec on the agent, as the caller.
    expect(rows.some((r) => r.actor === 'user:local-operator' && r.object === `agent:${agent}` && r.decision === 'allow')).toBe(true);
  });
});

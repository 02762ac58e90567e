import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { startFakeLlm, makeTempDir, type FakeLlm, type StartFakeLlmOptions, type TempDir } from '@warren/testing';
import { connectBus } from '@warren/agent-sdk';
import { serveBusSocket, type ServedBus } from '../../../services/supervisor/src/messaging/bus-channel.js';
import { MemoryMessaging } from '../../../services/supervisor/test/messaging-memory.js';
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
const BUS_TOOLS = ['send_message', 'receive_messages', 'request_agent', 'reply_message', 'publish_topic', 'list_presence'];

let dir: TempDir;
let port: MemoryMessaging;
let served: ServedBus[];

beforeEach(async () => {
  dir = await makeTempDir('warren-agent-llm-bus-');
  port = new MemoryMessaging().addAgent('manager-1', 'manager').addAgent('worker-1').addAgent('worker-2');
  port.allow('manager-1', 'worker-1').allow('worker-1', 'manager-1');
  served = [
    await serveBusSocket({ port, agent: 'manager-1', socketPath: join(dir.path, 'manager.sock') }),
    await serveBusSocket({ port, agent: 'worker-1', socketPath: join(dir.path, 'worker.sock') }),
  ];
});

afterEach(async () => {
  for (const s of served) await s.close();
  await dir.close();
});

describe('the loop talks to other agents through its bus socket', () => {
  it('offers the messaging tools and sends, lists presence, receives and replies, and reports refusals as tool errors', async () => {
    // worker-1 asked manager-1 something before the task began.
    const worker = connectBus({ socketPath: join(dir.path, 'worker.sock') });
    const asked = worker.request('manager-1', { question: 'which file?' }, { timeoutMs: 45_000 });
    await expect.poll(() => port.inbox('manager-1').length, { timeout: 10_000 }).toBe(1);
    const requestId = port.inbox('manager-1')[0]!.id;

    const fake = await fakeLlm({
      script: [
        {
          toolCalls: [
            { id: 'c1', name: 'list_presence', arguments: {} },
            { id: 'c2', name: 'send_message', arguments: { to: 'worker-1', body: { step: 'lint', files: ['a.ts'] } } },
            { id: 'c3', name: 'receive_messages', arguments: { max: 5 } },
          ],
        },
        {
          toolCalls: [
            { id: 'c4', name: 'reply_message', arguments: { to: 'worker-1', inReplyTo: requestId, body: 'src/a.ts' } },
            { id: 'c5', name: 'send_message', arguments: { to: 'worker-2', body: 'hello' } },
            { id: 'c6', name: 'publish_topic', arguments: { topic: 'builds', body: 'done' } },
            { id: 'c7', name: 'send_message', arguments: { to: 'worker-1' } },
          ],
        },
        { text: 'Told worker-1 what to lint and answered its question.' },
      ],
    });
    const agent = await agentHome();
    const run = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1`, env: { WARREN_BUS_SOCKET: join(dir.path, 'manager.sock') } });
    expect(run.exitCode, run.stderr).toBe(0);

    const names = toolNamesOf(chatRequests(fake)[0]!.body);
    expect(names).toEqual(['run_command', 'read_file', 'write_file', 'list_directory', ...BUS_TOOLS]);

    const results = new Map(run.events.flatMap((e) => (e.kind === 'tool_result' ? [[e.id, e] as const] : [])));
    expect(results.get('c1')).toMatchObject({ isError: false, output: expect.stringContaining('"name":"worker-1"') });
    expect(results.get('c2')).toMatchObject({ isError: false, output: expect.stringContaining('"id"') });
    expect(results.get('c3')).toMatchObject({ isError: false, output: expect.stringContaining(`"id":"${requestId}"`) });
    expect(results.get('c3')?.kind === 'tool_result' ? results.get('c3')!.output : '').toContain('"request":true');
    expect(results.get('c4')).toMatchObject({ isError: false });
    expect(results.get('c5')).toMatchObject({ isError: true, output: expect.stringContaining('WARREN_POLICY_DENIED') });
    expect(results.get('c6')).toMatchObject({ isError: true, output: expect.stringContaining('WARREN_POLICY_DENIED') });
    expect(results.get('c7')).toMatchObject({ isError: true, output: expect.stringContaining("'body' is required") });
    expect(run.events.at(-1)).toEqual({ kind: 'final', text: 'Told worker-1 what to lint and answered its question.', isError: false });

    // What the other side saw: the message from manager-1, the answer to its request; the inbox emptied.
    expect(port.inbox('worker-1')).toEqual([expect.objectContaining({ from: 'manager-1', body: { step: 'lint', files: ['a.ts'] } })]);
    expect(await asked).toMatchObject({ from: 'manager-1', inReplyTo: requestId, body: 'src/a.ts' });
    expect(port.inbox('manager-1')).toEqual([]);
    expect(port.calls.every((c) => c.self === 'manager-1' || c.self === 'worker-1')).toBe(true);
    // The model read the refusals as tool results.
    const lastAsk = messagesOf(chatRequests(fake).at(-1)!.body);
    expect(lastAsk.filter((m) => m.role === 'tool')).toHaveLength(7);
  });

  it('asks another agent and waits for its reply', async () => {
    const worker = connectBus({ socketPath: join(dir.path, 'worker.sock') });
    // worker-1 answers the first request it gets.
    const answering = (async () => {
      const deadline = Date.now() + 45_000;
      while (Date.now() < deadline) {
        const [m] = await worker.receive({ waitMs: 1000 });
        if (m?.request) return worker.reply(m, { answer: 42 });
      }
      throw new Error('no request came to worker-1 within 45 s');
    })();
    const fake = await fakeLlm({
      script: [{ toolCalls: [{ id: 'q1', name: 'request_agent', arguments: { to: 'worker-1', body: 'the answer?', timeoutSeconds: 30 } }] }, { text: 'It is 42.' }],
    });
    const agent = await agentHome();
    const run = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1`, env: { WARREN_BUS_SOCKET: join(dir.path, 'manager.sock') } });
    expect(run.exitCode, run.stderr).toBe(0);
    await answering;
    const result = run.events.find((e) => e.kind === 'tool_result');
    expect(result).toMatchObject({ id: 'q1', isError: false, output: expect.stringContaining('"answer": 42') });
  });

  it('offers no messaging tool when there is no bus socket', async () => {
    const fake = await fakeLlm({ script: [{ text: 'Done.' }] });
    const agent = await agentHome();
    const run = await runTask({ bundle: bundle.path, agent, baseUrl: `${fake.url}/v1`, env: { WARREN_BUS_SOCKET: join(dir.path, 'none.sock') } });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(toolNamesOf(chatRequests(fake)[0]!.body)).toEqual(['run_command', 'read_file', 'write_file', 'list_directory']);
  });
});

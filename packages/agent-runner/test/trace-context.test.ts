import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseParentContext, type AgentFrame, type TaskFrame } from '@warren/agent-runner';
import { buildRunner, startRunner, tempDir, TestGateway } from './gateway.js';

beforeAll(() => buildRunner());

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';
const PRINT = 'echo "parent=${TRACEPARENT-unset} state=${TRACESTATE-unset}"';

/** A runner child whose own environment already holds a stale TRACEPARENT, welcomed by a test gateway. */
async function setup(): Promise<TestGateway> {
  const { dir, remove } = tempDir();
  cleanups.push(remove);
  const home = join(dir, 'home');
  mkdirSync(home);
  const gateway = await TestGateway.start(dir);
  cleanups.push(() => gateway.close());
  const runner = startRunner({
    WARREN_AGENT_SOCKET: gateway.socketPath,
    HOME: home,
    WARREN_RUNTIME: '{"kind":"shell"}',
    TRACEPARENT: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`,
    TRACESTATE: 'stale=1',
  });
  cleanups.push(async () => {
    if (runner.child.exitCode === null && runner.child.signalCode === null) {
      runner.child.kill('SIGKILL');
      await runner.exited;
    }
  });
  await gateway.accept();
  await gateway.next((f): f is Extract<AgentFrame, { type: 'hello' }> => f.type === 'hello', 'hello');
  gateway.send({ type: 'welcome', agent: { name: 'a1', template: 'shell', uid: 1, gid: 1, home, capabilities: ['shell'] } });
  return gateway;
}

function task(taskId: string, fields: Partial<TaskFrame> = {}): TaskFrame {
  return { type: 'task', taskId, attempt: 1, title: taskId, body: '', fields: {}, timeoutMs: 60_000, command: PRINT, ...fields };
}

describe("the runner's span of a traced task", () => {
  it("puts TRACEPARENT (the runner's span, child of the task's) and TRACESTATE in the task's environment, and reports the span", async () => {
    const gateway = await setup();
    gateway.send(task('traced', { traceparent: `00-${TRACE_ID}-${PARENT}-01`, tracestate: 'congo=t61rcWkgMzE' }));
    const result = await gateway.result('traced');
    const [, traceparent, tracestate] = /^parent=(\S+) state=(\S+)$/.exec(result.summary) ?? [];
    expect(tracestate).toBe('congo=t61rcWkgMzE');
    const seen = parseParentContext(traceparent);
    expect(seen).toMatchObject({ traceId: TRACE_ID, flags: '01' });
    expect(seen!.spanId).not.toBe(PARENT);
    expect(result.span).toEqual({
      name: 'agent.run',
      traceId: TRACE_ID,
      spanId: seen!.spanId,
      parentSpanId: PARENT,
      startMs: result.span!.startMs,
      endMs: result.span!.endMs,
      status: 'ok',
    });
    expect(result.span!.endMs - result.span!.startMs).toBe(result.durationMs);
  });

  it('reports a failed run as an error span with the first line of the summary', async () => {
    const gateway = await setup();
    gateway.send(task('failing', { traceparent: `00-${TRACE_ID}-${PARENT}-01`, command: 'echo oops >&2; exit 4' }));
    const result = await gateway.result('failing');
    expect(result.outcome).toBe('failed');
    expect(result.span).toMatchObject({ status: 'error', message: 'exit code 4', parentSpanId: PARENT });
  });

  it('gives a task without trace context, or with an invalid one, no TRACEPARENT (not even the runner\'s own) and no span', async () => {
    const gateway = await setup();
    gateway.send(task('plain'));
    gateway.send(task('zero', { traceparent: `00-${'0'.repeat(32)}-${PARENT}-01`, tracestate: 'congo=x' }));
    gateway.send(task('ff', { traceparent: `ff-${TRACE_ID}-${PARENT}-01` }));
    for (const id of ['plain', 'zero', 'ff']) {
      const result = await gateway.result(id);
      expect(result.summary, id).toBe('parent=unset state=unset');
      expect(result.span, id).toBeUndefined();
    }
  });
});

describe('parseParentContext', () => {
  it('reads version 00 and future versions, and refuses what W3C trace context calls invalid', () => {
    expect(parseParentContext(`00-${TRACE_ID}-${PARENT}-01`)).toEqual({ traceId: TRACE_ID, spanId: PARENT, flags: '01' });
    expect(parseParentContext(`01-${TRACE_ID}-${PARENT}-00-more`)).toEqual({ traceId: TRACE_ID, spanId: PARENT, flags: '00' });
    for (const bad of [undefined, 42, '', `00-${TRACE_ID}-${PARENT}-01-more`, `ff-${TRACE_ID}-${PARENT}-01`, `00-${TRACE_ID.toUpperCase()}-${PARENT}-01`, `00-${TRACE_ID}-${'0'.repeat(16)}-01`]) {
      expect(parseParentContext(bad), String(bad)).toBeUndefined();
    }
  });
});

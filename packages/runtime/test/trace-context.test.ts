// The trace's path through the agent channel, on the bubblewrap driver: an assignment's
// traceparent reaches the task's process in the sandbox as TRACEPARENT, naming the runner's own
// span, which comes back with the result.
import type { ResultMessage } from '@warren/broker';
import { parseTraceparent } from '@warren/telemetry';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AgentInstance } from '../src/index.js';
import { bubblewrapFixture, type BubblewrapFixture } from './support/bubblewrap.js';
import { RecordingEvents, waitFor } from './support/events.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PUBLISH_SPAN_ID = '00f067aa0ba902b7';

describe('trace context through the agent channel (bubblewrap)', () => {
  let fixture: BubblewrapFixture;
  const started: AgentInstance[] = [];

  beforeAll(async () => {
    fixture = await bubblewrapFixture();
  });
  afterEach(async () => {
    for (const instance of started.splice(0)) await instance.close();
  });
  afterAll(async () => {
    await fixture?.close();
  });

  it("gives the task's process TRACEPARENT and TRACESTATE naming the runner's span, which the result carries", async () => {
    const spec = await fixture.agent('trace-a');
    const events = new RecordingEvents();
    const instance = await fixture.runtime.start(spec, events);
    started.push(instance);
    await waitFor('the runner to say hello', () => events.hellos.length > 0);

    const results: ResultMessage[] = [];
    const consumer = await fixture.broker.consumeResults(async (delivery) => {
      results.push(delivery.data);
      delivery.ack();
    });
    const assign = (taskId: string, options?: { traceparent: string; tracestate?: string }) =>
      fixture.broker.publishAssignment(
        {
          taskId,
          attempt: 1,
          agent: spec.name,
          title: taskId,
          body: '',
          command: 'echo "parent=${TRACEPARENT-unset} state=${TRACESTATE-unset}"',
          fields: {},
          timeoutMs: 60_000,
          assignedAtMs: Date.now(),
        },
        options,
      );
    try {
      await assign('traced', { traceparent: `00-${TRACE_ID}-${PUBLISH_SPAN_ID}-01`, tracestate: 'warren=1' });
      await waitFor('the result of traced', () => results.some((r) => r.taskId === 'traced'));
      await assign('untraced');
      await waitFor('the result of untraced', () => results.some((r) => r.taskId === 'untraced'));
    } finally {
      await consumer.stop();
    }

    const traced = results.find((r) => r.taskId === 'traced')!;
    const match = /^parent=(\S+) state=(\S+)$/.exec(traced.summary);
    expect(match, traced.summary).not.toBeNull();
    const seen = parseTraceparent(match![1]!);
    expect(match![2]).toBe('warren=1');
    expect(seen.traceId).toBe(TRACE_ID);
    expect(seen.traceFlags).toBe(1);
    expect(seen.spanId).not.toBe(PUBLISH_SPAN_ID);
    expect(traced.span).toMatchObject({ name: 'agent.run', traceId: TRACE_ID, spanId: seen.spanId, parentSpanId: PUBLISH_SPAN_ID, status: 'ok' });
    expect(traced.span!.endMs).toBeGreaterThanOrEqual(traced.span!.startMs);

    const untraced = results.find((r) => r.taskId === 'untraced')!;
    expect(untraced.summary).toBe('parent=unset state=unset');
    expect(untraced.span).toBeUndefined();
  });
});

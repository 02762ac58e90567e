import { AckPolicy, DeliverPolicy, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { connectBroker, type Broker, type Subscription } from '@warren/broker';
import { startTestNats } from '@warren/testing';
import type { BenchContext, Scenario } from '../lib/context.js';
import { inRounds, latencyFigure, roundsFigure, type Figure } from '../lib/figure.js';
import { msSince } from '../lib/stats.js';

const LANES = 16;

/** Something that sends one message down a path and resolves when its far end has taken (and acked) it. */
interface Path {
  send(id: string, lane: number): Promise<void>;
  close(): Promise<void>;
}

/** Completion latches keyed by message id. */
class Latches {
  private readonly waiting = new Map<string, { resolve: () => void; reject: (error: Error) => void }>();
  private failure: Error | undefined;
  /** Resolves when `id` is released; rejects once {@link fail} was called. */
  wait(id: string): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.failure) reject(this.failure);
      else this.waiting.set(id, { resolve, reject });
    });
  }
  release(id: string): void {
    const latch = this.waiting.get(id);
    this.waiting.delete(id);
    latch?.resolve();
  }
  /** A consume loop ended with `error`: every latch waiting now or later rejects with it. */
  fail(error: unknown): void {
    this.failure ??= error instanceof Error ? error : new Error(String(error));
    for (const latch of this.waiting.values()) latch.reject(this.failure);
    this.waiting.clear();
  }
}

/**
 * Baseline (b): nats.js directly. Work-queue file streams `BENCH_A` (`bench.a.<lane>`, one durable
 * pull consumer per lane, max 1 unacked, like an agent's assignment consumer) and `BENCH_B`
 * (`bench.b.>`, one consumer, 16 unacked, like the supervisor's results consumer).
 * One leg: publish on A (await the PubAck) → consume → ack. Two legs: the A handler acks and
 * publishes on B → consume → ack.
 */
async function rawPath(url: string, legs: 1 | 2, tag: string): Promise<Path> {
  const nc = await connect({ servers: url, name: `bench-raw-${tag}` });
  const jsm = await jetstreamManager(nc);
  const js = jsm.jetstream();
  const a = `BENCH_A_${tag}`;
  const b = `BENCH_B_${tag}`;
  await jsm.streams.add({ name: a, subjects: [`bench.${tag}.a.>`], storage: StorageType.File, retention: RetentionPolicy.Workqueue, num_replicas: 1 });
  await jsm.streams.add({ name: b, subjects: [`bench.${tag}.b.>`], storage: StorageType.File, retention: RetentionPolicy.Workqueue, num_replicas: 1 });
  const latches = new Latches();
  const loops: ConsumerMessages[] = [];
  const pump = async (messages: ConsumerMessages, onMessage: (data: string) => Promise<void>) => {
    for await (const m of messages) {
      m.ack();
      await onMessage(m.string());
    }
  };
  for (let lane = 0; lane < LANES; lane++) {
    await jsm.consumers.add(a, { durable_name: `a${lane}`, filter_subject: `bench.${tag}.a.${lane}`, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: 1 });
    const messages = await (await js.consumers.get(a, `a${lane}`)).consume({ max_messages: 3 });
    loops.push(messages);
    pump(messages, async (id) => {
      if (legs === 1) latches.release(id);
      else await js.publish(`bench.${tag}.b.${lane}`, id);
    }).catch((error: unknown) => latches.fail(error));
  }
  await jsm.consumers.add(b, { durable_name: 'b', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: 16 });
  const results = await (await js.consumers.get(b, 'b')).consume({ max_messages: 16 });
  loops.push(results);
  pump(results, async (id) => latches.release(id)).catch((error: unknown) => latches.fail(error));
  return {
    async send(id, lane) {
      // Both awaited together, so a latch failed while the publish waits is never left unhandled.
      await Promise.all([latches.wait(id), js.publish(`bench.${tag}.a.${lane}`, id, { msgID: id })]);
    },
    async close() {
      for (const l of loops) await l.close();
      await nc.drain();
    },
  };
}

/**
 * Warren's path through `@warren/broker`: `publishAssignment` → the agent's `consumeAssignments`
 * handler acks it (one leg); for two legs the handler also `publishResult`s and the supervisor's
 * `consumeResults` handler acks that. Schemas are checked on both ends as in production.
 */
async function warrenPath(url: string, legs: 1 | 2): Promise<Path> {
  const supervisor: Broker = await connectBroker({ servers: url, name: 'bench-supervisor' });
  const agents: Broker = await connectBroker({ servers: url, name: 'bench-agents' });
  await supervisor.ensureStreams();
  const latches = new Latches();
  const subs: Subscription[] = [];
  for (let lane = 0; lane < LANES; lane++) {
    const agent = `bench${legs}-${lane}`;
    subs.push(
      await agents.consumeAssignments(agent, async (d) => {
        d.ack();
        if (legs === 1) {
          latches.release(`${d.data.taskId}`);
          return;
        }
        await agents.publishResult({
          taskId: d.data.taskId,
          attempt: d.data.attempt,
          agent,
          outcome: 'succeeded',
          exitCode: 0,
          signal: null,
          summary: 'ok',
          outputs: [],
          durationMs: 0,
          finishedAtMs: Date.now(),
        });
      }),
    );
  }
  if (legs === 2) {
    subs.push(
      await supervisor.consumeResults(async (d) => {
        d.ack();
        latches.release(d.data.taskId);
      }),
    );
  }
  return {
    async send(id, lane) {
      const done = latches.wait(id);
      await supervisor.publishAssignment({
        taskId: id,
        attempt: 1,
        agent: `bench${legs}-${lane}`,
        title: `Task ${id}`,
        body: 'A no-op task.',
        fields: { priority: 'normal' },
        timeoutMs: 60_000,
        assignedAtMs: Date.now(),
      });
      await done;
    },
    async close() {
      for (const s of subs) await s.stop();
      await agents.close();
      await supervisor.close();
    },
  };
}

/**
 * Broker (issue 6 scenarios 3 context): JetStream publish → consume → ack through
 * `@warren/broker` against baseline (b) on the same nats-server: one message at a time (latency
 * p50/p99) and 16 lanes in flight (throughput), for one leg (assignment) and two legs (assignment,
 * then result back to the supervisor).
 */
export const brokerScenario: Scenario = {
  id: 'broker',
  title: 'Broker round trip',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const figures: Figure[] = [];
    const sequentialCount = ctx.quick ? 200 : 1_000;
    const perLane = ctx.quick ? 40 : 200;
    await using nats = await startTestNats();
    let unique = 0;
    for (const legs of [1, 2] as const) {
      const kinds = [
        { key: 'raw', name: legs === 1 ? 'baseline (b): raw JetStream publish → consume → ack' : 'raw JetStream, two legs (a → b)', open: () => rawPath(nats.url, legs, `l${legs}`) },
        {
          key: 'warren',
          name: legs === 1 ? '@warren/broker publishAssignment → consumeAssignments → ack' : '@warren/broker assignment → result round trip',
          open: () => warrenPath(nats.url, legs),
        },
      ];
      for (const kind of kinds) {
        ctx.progress(`broker: ${kind.name}`);
        const path = await kind.open();
        try {
          const latency = await inRounds(ctx.rounds, ctx.warmup, async () => {
            const samples: number[] = [];
            for (let i = 0; i < sequentialCount; i++) {
              const start = process.hrtime.bigint();
              await path.send(`m-${kind.key}-${legs}-${unique++}`, 0);
              samples.push(msSince(start));
            }
            return samples;
          });
          const rate = await inRounds(ctx.rounds, ctx.warmup, async () => {
            const start = process.hrtime.bigint();
            await Promise.all(
              Array.from({ length: LANES }, async (_, lane) => {
                for (let i = 0; i < perLane; i++) await path.send(`m-${kind.key}-${legs}-${unique++}`, lane);
              }),
            );
            return (LANES * perLane) / (msSince(start) / 1000);
          });
          const base = kind.key === 'warren' ? `broker.latency.raw.${legs}` : undefined;
          figures.push(
            latencyFigure(
              {
                id: `broker.latency.${kind.key}.${legs}`,
                scenario: 'Broker round trip',
                name: `${kind.name}, one at a time`,
                unit: 'ms',
                better: 'lower',
                ...(base ? { baseline: base } : {}),
                note: `${sequentialCount} messages per round`,
              },
              latency,
            ),
          );
          figures.push(
            roundsFigure(
              {
                id: `broker.rate.${kind.key}.${legs}`,
                scenario: 'Broker round trip',
                name: `${kind.name}, 16 lanes`,
                unit: 'msgs/s',
                better: 'higher',
                ...(kind.key === 'warren' ? { baseline: `broker.rate.raw.${legs}` } : {}),
                note: `${LANES} lanes × ${perLane} per round, one unacked per lane`,
              },
              rate,
            ),
          );
        } finally {
          await path.close();
        }
      }
    }
    return figures;
  },
};

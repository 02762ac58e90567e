/**
 * The broker's streams and durable consumers made, brought up to date, repaired (stranded and
 * phantom deliveries), counted and deleted. Each function takes the broker it runs on as `host`
 * (`broker.ts` delegates to them).
 */
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { Logger } from '@warren/core';
import { BrokerError } from './errors.js';
import { findPhantoms, findStranded, remakeConsumer } from './stranded.js';
import { DUPLICATE_WINDOW_MS, assertAgentName, type BrokerNamespace } from './subjects.js';
import { errorText, isApiError } from './broker-support.js';
import type { ConsumeLoop, ConsumerSpec } from './consume-loop.js';
import type { AgentPending, DeleteAgentConsumersOptions, StrandedRepair } from './broker-types.js';

/** What the stream and consumer functions use of the broker they run on. */
export interface AdminHost {
  readonly namespace: BrokerNamespace;
  readonly log: Logger;
  readonly jsm: JetStreamManager;
  /** The broker's running consume loops. */
  readonly loops: ReadonlySet<ConsumeLoop<unknown>>;
  /** Inbox consumers `fetchMessages` made or checked on this connection. */
  readonly ensuredInboxes: Map<string, string>;
  /** @throws {BrokerError} once the broker is closing or closed. */
  assertOpen(operation: string, target: string): void;
  /** Runs `fn` again while it fails with an election in progress, up to the broker's `electionRetryMs`. */
  rideElection<T>(operation: string, target: string, fn: () => Promise<T>): Promise<T>;
}

/** Creates one stream or brings its subjects, duplicate window and replicas up to date. */
export async function ensureStream(host: AdminHost, spec: BrokerNamespace['streams'][number], replicas: number): Promise<void> {
  const wanted = {
    subjects: [...spec.subjects],
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
  };
  let info;
  try {
    info = await host.jsm.streams.info(spec.name);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
  }
  if (!info) {
    await host.jsm.streams.add({
      name: spec.name,
      ...wanted,
      storage: StorageType.File,
      retention: RetentionPolicy.Workqueue,
      num_replicas: replicas,
    });
    host.log.info({ stream: spec.name, replicas }, 'stream created');
    return;
  }
  const cfg = info.config;
  if (cfg.retention !== RetentionPolicy.Workqueue || cfg.storage !== StorageType.File) {
    throw new BrokerError(
      'ensureStreams',
      spec.name,
      `the stream exists with retention ${cfg.retention} and storage ${cfg.storage}; Warren needs workqueue and file (delete the stream to recreate it)`,
    );
  }
  const sameSubjects = JSON.stringify([...(cfg.subjects ?? [])].sort()) === JSON.stringify([...wanted.subjects].sort());
  // Raising num_replicas in place is allowed from nats-server 2.9; lowering is left to an operator.
  const raise = (cfg.num_replicas ?? 1) < replicas;
  if (!sameSubjects || cfg.duplicate_window !== wanted.duplicate_window || raise) {
    await host.jsm.streams.update(spec.name, raise ? { ...wanted, num_replicas: replicas } : wanted);
    host.log.info({ stream: spec.name, ...(raise ? { replicas, from: cfg.num_replicas ?? 1 } : {}) }, 'stream updated');
  }
}

/**
 * Creates the durable consumer of `spec` or brings its ack wait, max deliver and max ack pending up
 * to date: the consumer is read, then created, updated or made again as it needs.
 * @returns the consumer's info as the server last answered (for `openMessages`, which then needs
 *   no read of its own).
 * @throws {BrokerError} `consume` naming `<stream>/<durable>` when the server cannot make it.
 */
export async function ensureConsumer(host: AdminHost, spec: ConsumerSpec<unknown>): Promise<ConsumerInfo> {
  const wanted = {
    ack_wait: nanos(spec.ackWaitMs),
    max_deliver: spec.maxDeliver,
    max_ack_pending: spec.maxInFlight,
  };
  const config: Partial<ConsumerConfig> = {
    durable_name: spec.durable,
    filter_subject: spec.filter,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ...wanted,
  };
  try {
    return await host.rideElection('consume', `${spec.stream}/${spec.durable}`, () => ensureConsumerOnce(host, spec, config, wanted));
  } catch (error) {
    throw new BrokerError('consume', `${spec.stream}/${spec.durable}`, errorText(error), { cause: error });
  }
}

async function ensureConsumerOnce(
  host: AdminHost,
  spec: ConsumerSpec<unknown>,
  config: Partial<ConsumerConfig>,
  wanted: { ack_wait: number; max_deliver: number; max_ack_pending: number },
): Promise<ConsumerInfo> {
  const { consumers } = host.jsm;
  let info;
  try {
    info = await consumers.info(spec.stream, spec.durable);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
  }
  if (!info) {
    const created = await consumers.add(spec.stream, config);
    host.log.info({ stream: spec.stream, consumer: spec.durable }, 'consumer created');
    return created;
  }
  const cfg = info.config;
  if (cfg.filter_subject !== spec.filter || cfg.ack_policy !== AckPolicy.Explicit) {
    // Neither can be changed in place on every server version; messages stay in the stream.
    await consumers.delete(spec.stream, spec.durable);
    const created = await consumers.add(spec.stream, config);
    host.log.info({ stream: spec.stream, consumer: spec.durable }, 'consumer recreated');
    return created;
  }
  if (
    cfg.ack_wait !== wanted.ack_wait ||
    cfg.max_deliver !== wanted.max_deliver ||
    cfg.max_ack_pending !== wanted.max_ack_pending
  ) {
    const updated = await consumers.update(spec.stream, spec.durable, wanted);
    host.log.info({ stream: spec.stream, consumer: spec.durable, ...wanted }, 'consumer updated');
    return updated;
  }
  return info;
}

/** `NatsBroker.deleteAgentConsumers` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export async function deleteAgentConsumers(host: AdminHost, agent: string, options?: DeleteAgentConsumersOptions): Promise<void> {
  const ns = host.namespace;
  const targets = [
    { stream: ns.assignStream, durable: ns.assignConsumerName(agent), subject: ns.assignSubject(agent) },
    { stream: ns.messagesStream, durable: ns.messageConsumerName(agent), subject: ns.messageFilter(agent) },
  ];
  host.assertOpen('deleteAgentConsumers', agent);
  host.ensuredInboxes.delete(ns.messageConsumerName(agent));
  await Promise.all([...host.loops].filter((l) => l.spec.agent === agent).map((l) => l.stop()));
  // The assignment and the inbox consumer are independent: both go at once.
  await Promise.all(
    targets.map(async (t) => {
      try {
        await host.jsm.consumers.delete(t.stream, t.durable);
        host.log.info({ stream: t.stream, consumer: t.durable }, 'consumer deleted');
      } catch (error) {
        if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound) && !isApiError(error, JetStreamApiCodes.StreamNotFound)) {
          throw new BrokerError('deleteAgentConsumers', `${t.stream}/${t.durable}`, errorText(error), { cause: error });
        }
      }
      if (options?.purgePending === false) return;
      try {
        const purged = await host.jsm.streams.purge(t.stream, { filter: t.subject });
        if (purged.purged > 0) host.log.info({ stream: t.stream, subject: t.subject, purged: purged.purged }, 'pending messages purged');
      } catch (error) {
        if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) {
          throw new BrokerError('deleteAgentConsumers', `${t.stream} ${t.subject}`, `cannot purge: ${errorText(error)}`, { cause: error });
        }
      }
    }),
  );
}

/** `NatsBroker.resetResultsConsumer` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export async function resetResultsConsumer(host: AdminHost): Promise<void> {
  const { resultsStream, resultsConsumer } = host.namespace;
  host.assertOpen('resetResultsConsumer', resultsConsumer);
  try {
    await host.jsm.consumers.delete(resultsStream, resultsConsumer);
  } catch (error) {
    if (isApiError(error, JetStreamApiCodes.ConsumerNotFound)) return;
    throw new BrokerError('resetResultsConsumer', `${resultsStream}/${resultsConsumer}`, errorText(error), { cause: error });
  }
}

/** `NatsBroker.resultsBacklog` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export async function resultsBacklog(host: AdminHost): Promise<number> {
  const { resultsStream, resultsConsumer } = host.namespace;
  host.assertOpen('resultsBacklog', resultsConsumer);
  try {
    const info = await host.rideElection('resultsBacklog', resultsConsumer, () => host.jsm.consumers.info(resultsStream, resultsConsumer));
    return info.num_pending + info.num_ack_pending;
  } catch (error) {
    if (isApiError(error, JetStreamApiCodes.ConsumerNotFound)) return 0;
    throw new BrokerError('resultsBacklog', `${resultsStream}/${resultsConsumer}`, errorText(error), { cause: error });
  }
}

/** `NatsBroker.purgeAssignments` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export async function purgeAssignments(host: AdminHost, agent: string): Promise<number> {
  host.assertOpen('purgeAssignments', agent);
  assertAgentName(agent);
  const { assignStream } = host.namespace;
  const subject = host.namespace.assignSubject(agent);
  try {
    const purged = await host.rideElection('purgeAssignments', subject, () => host.jsm.streams.purge(assignStream, { filter: subject }));
    return purged.purged;
  } catch (error) {
    throw new BrokerError('purgeAssignments', `${assignStream} ${subject}`, errorText(error), { cause: error });
  }
}

/** The stream and durable consumer name of the supervisor's results or of one agent's assignments, in this namespace. */
function consumerOf(host: AdminHost, target: { readonly agent: string } | 'results'): [stream: string, durable: string] {
  const ns = host.namespace;
  return target === 'results' ? [ns.resultsStream, ns.resultsConsumer] : [ns.assignStream, ns.assignConsumerName(target.agent)];
}

/** `NatsBroker.repairStranded` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export async function repairStranded(host: AdminHost, target: { readonly agent: string } | 'results', options?: { readonly confirmAfterMs?: number }): Promise<StrandedRepair> {
  const [stream, durable] = consumerOf(host, target);
  host.assertOpen('repairStranded', `${stream}/${durable}`);
  try {
    const first = await findStranded(host.jsm, stream, durable);
    if (first.stranded === 0) return { stranded: 0, reason: '' };
    await new Promise((resolve) => setTimeout(resolve, options?.confirmAfterMs ?? 250));
    const second = await findStranded(host.jsm, stream, durable);
    // A consumer that delivered or settled anything meanwhile is moving: what looked stranded was in flight.
    if (second.stranded === 0 || !second.config || second.progress !== first.progress) return { stranded: 0, reason: '' };
    await remakeConsumer(host.jsm, stream, second.config);
    host.log.warn({ stream, consumer: durable, stranded: second.stranded, reason: second.reason }, 'consumer made again: it would never have delivered stored messages');
    for (const loop of host.loops) if (loop.spec.stream === stream && loop.spec.durable === durable) loop.reopenNow();
    return { stranded: second.stranded, reason: second.reason };
  } catch (error) {
    throw new BrokerError('repairStranded', `${stream}/${durable}`, errorText(error), { cause: error });
  }
}

/** `NatsBroker.clearPhantoms` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export async function clearPhantoms(host: AdminHost, target: { readonly agent: string } | 'results'): Promise<number> {
  const [stream, durable] = consumerOf(host, target);
  host.assertOpen('clearPhantoms', `${stream}/${durable}`);
  try {
    const { phantoms, config } = await findPhantoms(host.jsm, stream, durable);
    if (phantoms === 0 || !config) return 0;
    await remakeConsumer(host.jsm, stream, config);
    host.log.info({ stream, consumer: durable, phantoms }, 'consumer made again: it counted deliveries of messages no longer stored');
    return phantoms;
  } catch (error) {
    throw new BrokerError('clearPhantoms', `${stream}/${durable}`, errorText(error), { cause: error });
  }
}

/** `NatsBroker.pendingFor` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export async function pendingFor(host: AdminHost, agent: string): Promise<AgentPending> {
  const count = async (stream: string, durable: string, subject: string): Promise<number> => {
    try {
      try {
        const info = await host.rideElection('pendingFor', durable, () => host.jsm.consumers.info(stream, durable));
        return info.num_pending + info.num_ack_pending;
      } catch (error) {
        if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
      }
      const info = await host.rideElection('pendingFor', stream, () => host.jsm.streams.info(stream, { subjects_filter: subject }));
      return Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
    } catch (error) {
      throw new BrokerError('pendingFor', `${stream}/${durable}`, errorText(error), { cause: error });
    }
  };
  host.assertOpen('pendingFor', agent);
  const ns = host.namespace;
  const [assignments, messages] = await Promise.all([
    count(ns.assignStream, ns.assignConsumerName(agent), ns.assignSubject(agent)),
    count(ns.messagesStream, ns.messageConsumerName(agent), ns.messageFilter(agent)),
  ]);
  return { assignments, messages };
}

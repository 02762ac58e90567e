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
import type { AgentLedger } from './agent-ledger.js';

/** What the stream and consumer functions use of the broker they run on. */
export interface AdminHost {
  readonly namespace: BrokerNamespace;
  readonly log: Logger;
  readonly jsm: JetStreamManager;
  /** The broker's running consume loops. */
  readonly loops: ReadonlySet<ConsumeLoop<unknown>>;
  /** Inbox consumers `fetchMessages` made or checked on this connection. */
  readonly ensuredInboxes: Map<string, string>;
  /** What this connection knows of each agent's assignments and consumers on the server. */
  readonly ledger: AgentLedger;
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
  const ns = host.namespace;
  if (spec.agent !== undefined && spec.stream === ns.messagesStream) host.ledger.inboxMade(spec.agent);
  // A consumer kept for this agent before the connection was lost is made afresh (see AgentLedger.takeKept).
  const stale = spec.agent !== undefined && spec.stream === ns.assignStream && host.ledger.takeKept(spec.agent) === 'stale';
  try {
    if (stale) await deleteConsumer(host, spec.stream, spec.durable);
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

/** Deletes durable consumer `durable` of `stream`; one that (or whose stream) does not exist is fine. @throws {BrokerError} `deleteAgentConsumers` otherwise. */
async function deleteConsumer(host: AdminHost, stream: string, durable: string): Promise<void> {
  try {
    await host.jsm.consumers.delete(stream, durable);
    host.log.info({ stream, consumer: durable }, 'consumer deleted');
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound) && !isApiError(error, JetStreamApiCodes.StreamNotFound)) {
      throw new BrokerError('deleteAgentConsumers', `${stream}/${durable}`, errorText(error), { cause: error });
    }
  }
}

/** Purges what `stream` holds on `subject` (a missing stream holds nothing). @throws {BrokerError} `deleteAgentConsumers` otherwise. */
async function purgeSubject(host: AdminHost, stream: string, subject: string): Promise<void> {
  try {
    const purged = await host.jsm.streams.purge(stream, { filter: subject });
    if (purged.purged > 0) host.log.info({ stream, subject, purged: purged.purged }, 'pending messages purged');
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) {
      throw new BrokerError('deleteAgentConsumers', `${stream} ${subject}`, `cannot purge: ${errorText(error)}`, { cause: error });
    }
  }
}

/** Deletes `agent`'s inbox consumer unless this connection knows it is gone, then (with `purge`) purges its messages. */
async function dropInbox(host: AdminHost, agent: string, purge: boolean): Promise<void> {
  const ns = host.namespace;
  if (!host.ledger.inboxKnownGone(agent)) {
    const mark = host.ledger.inboxMark(agent);
    await deleteConsumer(host, ns.messagesStream, ns.messageConsumerName(agent));
    host.ledger.inboxDeleted(agent, mark);
  }
  if (purge) await purgeSubject(host, ns.messagesStream, ns.messageFilter(agent));
}

/** Stops this broker's consume loops of `agent`'s consumers (they end before their consumers change). */
async function stopAgentLoops(host: AdminHost, agent: string): Promise<void> {
  host.ensuredInboxes.delete(host.namespace.messageConsumerName(agent));
  await Promise.all([...host.loops].filter((l) => l.spec.agent === agent).map((l) => l.stop()));
}

/** `NatsBroker.deleteAgentConsumers` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export async function deleteAgentConsumers(host: AdminHost, agent: string, options?: DeleteAgentConsumersOptions): Promise<void> {
  const ns = host.namespace;
  host.assertOpen('deleteAgentConsumers', agent);
  await stopAgentLoops(host, agent);
  host.ledger.takeKept(agent);
  const purge = options?.purgePending !== false;
  // The assignment and the inbox consumer are independent: both go at once.
  await Promise.all([
    (async () => {
      const mark = host.ledger.mark(agent);
      await deleteConsumer(host, ns.assignStream, ns.assignConsumerName(agent));
      if (!purge) return;
      await purgeSubject(host, ns.assignStream, ns.assignSubject(agent));
      host.ledger.sawEmpty(agent, mark);
    })(),
    dropInbox(host, agent, purge),
  ]);
}

/** `NatsBroker.releaseAgentConsumers` on `host` (the shapes, errors and guarantees are in the `Broker` interface's docstring of the same name). */
export async function releaseAgentConsumers(host: AdminHost, agent: string): Promise<void> {
  const ns = host.namespace;
  host.assertOpen('releaseAgentConsumers', agent);
  assertAgentName(agent);
  await stopAgentLoops(host, agent);
  host.ledger.takeKept(agent);
  const stream = ns.assignStream;
  const durable = ns.assignConsumerName(agent);
  const subject = ns.assignSubject(agent);
  await Promise.all([
    (async () => {
      // Taken before the read: a publish to the agent after it makes the consumer not idle.
      const mark = host.ledger.mark(agent);
      let idle = false;
      try {
        const info = await host.jsm.consumers.info(stream, durable);
        idle =
          info.num_pending === 0 &&
          info.num_ack_pending === 0 &&
          info.num_waiting === 0 &&
          info.config.filter_subject === subject &&
          info.config.ack_policy === AckPolicy.Explicit;
      } catch (error) {
        if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound) && !isApiError(error, JetStreamApiCodes.StreamNotFound)) {
          throw new BrokerError('releaseAgentConsumers', `${stream}/${durable}`, errorText(error), { cause: error });
        }
      }
      if (!idle) await deleteConsumer(host, stream, durable);
      // Stranded messages (behind the consumer's delivered sequence) are not counted as pending: purge anyway.
      await purgeSubject(host, stream, subject);
      // Kept only when nothing was published to the agent meanwhile (what was is purged, but the
      // consumer may have delivered it already).
      if (idle && mark !== undefined && host.ledger.mark(agent) === mark) {
        host.ledger.keep(agent);
        host.ledger.sawEmpty(agent, mark);
        host.log.debug({ stream, consumer: durable }, 'consumer kept for the next agent of its name');
      } else if (idle) {
        await deleteConsumer(host, stream, durable);
      } else {
        host.ledger.sawEmpty(agent, mark);
      }
    })(),
    dropInbox(host, agent, true),
  ]);
}

/**
 * Deletes the assignment consumers {@link releaseAgentConsumers} kept and no agent took back, as
 * the connection closes (none is left behind for a name that may not come back). Failures are
 * logged: a consumer left behind is idle and taken on by the next agent of its name.
 */
export async function dropKeptConsumers(host: AdminHost): Promise<void> {
  const ns = host.namespace;
  const results = await Promise.allSettled(host.ledger.takeAllKept().map((agent) => deleteConsumer(host, ns.assignStream, ns.assignConsumerName(agent))));
  for (const r of results) if (r.status === 'rejected') host.log.warn({ err: r.reason as unknown }, 'cannot delete a kept assignment consumer');
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
  // Seen empty by this connection, and nothing published to the agent since: nothing to purge.
  if (host.ledger.knownEmpty(agent)) return 0;
  const mark = host.ledger.mark(agent);
  try {
    const purged = await host.rideElection('purgeAssignments', subject, () => host.jsm.streams.purge(assignStream, { filter: subject }));
    host.ledger.sawEmpty(agent, mark);
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

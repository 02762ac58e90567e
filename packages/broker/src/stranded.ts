/**
 * Stranded messages: messages stored in a work-queue stream that its durable consumer will never
 * deliver, because the consumer's delivered sequence is past them.
 *
 * nats-server 2.9 keeps a stream's sequence and its consumers' state in separate files and syncs
 * neither on every write. A server killed with SIGKILL can come back with a stream whose last
 * sequence went back (its tail, or the whole sequence of an empty work queue, was lost) while a
 * consumer kept a delivered sequence from before the kill. The stream then gives new messages
 * sequences the consumer has already passed: they are stored, counted nowhere as pending, and
 * never delivered; a re-publish with the same message id is dropped as a duplicate. Only a new
 * consumer (deliver all) delivers them.
 */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type ConsumerConfig, type ConsumerInfo, type JetStreamManager } from '@nats-io/jetstream';

/** What {@link findStranded} saw on one look. */
export interface StrandedCheck {
  /** Messages on the filter the consumer will never deliver (0 when none). */
  readonly stranded: number;
  /** Why, in words (empty when nothing is stranded). */
  readonly reason: string;
  /** The consumer's configuration, to make it again; undefined when the consumer does not exist. */
  readonly config: ConsumerConfig | undefined;
  /** The consumer's delivered stream sequence and unacknowledged count at this look (a consumer that moves between two looks is not stuck). */
  readonly progress: string;
}

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

/**
 * Looks once at `durable` on `stream` (a work queue, where a message acknowledged is removed):
 * every message stored on its filter subject must be either still to deliver (`num_pending`) or
 * delivered and unacknowledged (`num_ack_pending`); the rest are stranded. Also stranded: anything
 * stored when the consumer's delivered sequence is past the stream's last sequence (the stream
 * went back). The consumer is read before the stream, so a message published or acknowledged
 * between the two reads can look stranded for one look: callers confirm with a second look that
 * finds the consumer where it was (`progress`).
 * @throws the client's error when the server does not answer (a timeout) or refuses.
 */
export async function findStranded(jsm: JetStreamManager, stream: string, durable: string): Promise<StrandedCheck> {
  let consumer: ConsumerInfo;
  try {
    consumer = await jsm.consumers.info(stream, durable);
  } catch (error) {
    if (isApiError(error, JetStreamApiCodes.ConsumerNotFound) || isApiError(error, JetStreamApiCodes.StreamNotFound)) {
      return { stranded: 0, reason: '', config: undefined, progress: '' };
    }
    throw error;
  }
  const filter = consumer.config.filter_subject ?? '>';
  const info = await jsm.streams.info(stream, { subjects_filter: filter });
  const stored = Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
  const accounted = consumer.num_pending + consumer.num_ack_pending;
  const delivered = consumer.delivered.stream_seq;
  const progress = `${delivered}/${consumer.num_ack_pending}`;
  if (stored > 0 && delivered > info.state.last_seq) {
    return {
      stranded: stored,
      reason: `the stream's last sequence ${info.state.last_seq} is behind the consumer's delivered sequence ${delivered}`,
      config: consumer.config,
      progress,
    };
  }
  if (stored > accounted) {
    return {
      stranded: stored - accounted,
      reason: `${stored} messages stored on ${filter} but the consumer has ${consumer.num_pending} to deliver and ${consumer.num_ack_pending} unacknowledged`,
      config: consumer.config,
      progress,
    };
  }
  return { stranded: 0, reason: '', config: consumer.config, progress };
}

/**
 * Makes `durable` again with the same filter, ack wait, max deliver and max ack pending and
 * delivery from the start: in a work queue that is every message still stored. A pull
 * subscription open on the old consumer ends (the consumer was deleted) and is reopened by its
 * consume loop. @throws the client's error when the server does not answer or refuses.
 */
export async function remakeConsumer(jsm: JetStreamManager, stream: string, config: ConsumerConfig): Promise<void> {
  const durable = config.durable_name!;
  try {
    await jsm.consumers.delete(stream, durable);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
  }
  await jsm.consumers.add(stream, {
    durable_name: durable,
    ...(config.filter_subject === undefined ? {} : { filter_subject: config.filter_subject }),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: config.ack_wait,
    max_deliver: config.max_deliver,
    max_ack_pending: config.max_ack_pending,
  });
}

/**
 * Unacknowledged deliveries a consumer counts for messages its work queue no longer stores:
 * a nats-server killed right after acknowledgements can come back with the consumer's ack floor
 * from before them while the stream had already removed the messages. A consumer that pulls
 * drops them by itself; a stopped one shows them until it is made again.
 * @returns how many deliveries are phantoms (0 when none), and the consumer's configuration.
 * @throws the client's error when the server does not answer or refuses.
 */
export async function findPhantoms(jsm: JetStreamManager, stream: string, durable: string): Promise<{ phantoms: number; config: ConsumerConfig | undefined }> {
  let consumer: ConsumerInfo;
  try {
    consumer = await jsm.consumers.info(stream, durable);
  } catch (error) {
    if (isApiError(error, JetStreamApiCodes.ConsumerNotFound) || isApiError(error, JetStreamApiCodes.StreamNotFound)) return { phantoms: 0, config: undefined };
    throw error;
  }
  if (consumer.num_ack_pending === 0) return { phantoms: 0, config: consumer.config };
  const info = await jsm.streams.info(stream, { subjects_filter: consumer.config.filter_subject ?? '>' });
  const stored = Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
  // Only when nothing is stored is every unacknowledged delivery surely a phantom.
  return { phantoms: stored === 0 ? consumer.num_ack_pending : 0, config: consumer.config };
}

/**
 * @warren/testing: helpers for Warren's own tests — a real nats-server in a temp store,
 * temporary directories that clean up after themselves, and an OTLP/HTTP trace receiver.
 *
 * ```ts
 * import { startTestNats, makeTempDir, startOtlpReceiver } from '@warren/testing';
 * import { connectBroker } from '@warren/broker';
 *
 * await using nats = await startTestNats();
 * await using dir = await makeTempDir('warren-store-');
 * await using broker = await connectBroker({ servers: nats.url, name: 'test' });
 * await broker.ensureStreams();
 *
 * await using otlp = await startOtlpReceiver(); // OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url
 * await otlp.waitFor((spans) => spans.length >= 3, { what: 'three spans' });
 * ```
 */
export { startTestNats } from './nats.js';
export type { StartTestNatsOptions } from './nats.js';
export { makeTempDir } from './temp.js';
export type { TempDir } from './temp.js';
export { startOtlpReceiver } from './otlp.js';
export type { OtlpReceiver, ReceivedSpan, OtlpValue, StartOtlpReceiverOptions } from './otlp.js';

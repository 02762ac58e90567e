/**
 * @warren/testing: helpers for Warren's own tests — a real nats-server in a temp store, and
 * temporary directories that clean up after themselves.
 *
 * ```ts
 * import { startTestNats, makeTempDir } from '@warren/testing';
 * import { connectBroker } from '@warren/broker';
 *
 * await using nats = await startTestNats();
 * await using dir = await makeTempDir('warren-store-');
 * await using broker = await connectBroker({ servers: nats.url, name: 'test' });
 * await broker.ensureStreams();
 * ```
 */
export { startTestNats } from './nats.js';
export type { StartTestNatsOptions } from './nats.js';
export { makeTempDir } from './temp.js';
export type { TempDir } from './temp.js';

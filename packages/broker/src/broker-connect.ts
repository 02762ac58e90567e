/**
 * `connectBroker`: the NATS connection (servers, credentials, reconnects) and its first JetStream
 * check, riding a cluster's leader election, made into a {@link Broker} (`broker.ts`).
 */
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import {
  credsAuthenticator,
  nkeyAuthenticator,
  usernamePasswordAuthenticator,
  type Authenticator,
  type NatsConnection,
} from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { ConfigError, silentLogger } from '@warren/core';
import { NatsBroker } from './broker.js';
import { ELECTION_RETRY_FIRST_MS, ELECTION_RETRY_MAX_MS, errorText, isElectionError, positiveInteger } from './broker-support.js';
import type { Broker, BrokerCredentials, ConnectBrokerOptions } from './broker-types.js';
import { BrokerError } from './errors.js';
import { assertAgentName, brokerNamespace } from './subjects.js';

/**
 * Connects to NATS and returns a {@link Broker}. Reconnects forever (every `reconnectTimeWaitMs`
 * with jitter, to any of `servers` and the servers the cluster announces) after the connection is
 * lost; consumers resume by themselves after a reconnect. JetStream calls ride leader elections
 * (see `electionRetryMs`), and so does this first JetStream check.
 * @throws {BrokerError} (`WARREN_BROKER`) if the first connection fails or the server has no JetStream.
 * @throws {ConfigError} for invalid numeric options.
 */
export async function connectBroker(options: ConnectBrokerOptions): Promise<Broker> {
  const logger = options.logger ?? silentLogger;
  const timeoutMs = positiveInteger(options.timeoutMs, 5_000, 'connectBroker timeoutMs');
  const reconnectTimeWait = positiveInteger(options.reconnectTimeWaitMs, 1_000, 'connectBroker reconnectTimeWaitMs');
  const electionRetryMs = options.electionRetryMs ?? 15_000;
  if (!Number.isInteger(electionRetryMs) || electionRetryMs < 0) {
    throw new ConfigError('connectBroker electionRetryMs', `must be a non-negative integer, got ${String(electionRetryMs)}`);
  }
  const servers = Array.isArray(options.servers) ? options.servers : [options.servers];
  const namespace = brokerNamespace(options.instance);
  if (options.agentKey) {
    if (options.signingKey) throw new ConfigError('connectBroker agentKey', 'excludes signingKey (an agent broker holds only its own key)');
    assertAgentName(options.agentKey.agent);
  }
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name: options.name,
      ...(options.credentials ? { authenticator: authenticatorOf(options.credentials) } : {}),
      ...(options.inboxPrefix === undefined ? {} : { inboxPrefix: options.inboxPrefix }),
      timeout: timeoutMs,
      maxReconnectAttempts: -1,
      reconnectTimeWait,
      reconnectJitter: Math.round(reconnectTimeWait / 2),
      waitOnFirstConnect: false,
      // Without it nats.js captures a stack (a RequestError) for every request and JetStream
      // publish, in case it times out: ~2 % of the supervisor's busy time on a long-running run.
      // Warren's own errors name the operation and subject (BrokerError).
      noAsyncTraces: true,
    });
  } catch (error) {
    throw new BrokerError('connect', servers.join(','), errorText(error), { cause: error });
  }
  let jsm: JetStreamManager;
  try {
    // A cluster electing its JetStream meta leader answers 503 for a while: ride it out too.
    const startMs = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        // An agent's connection may not read the account's JetStream info ($JS.API.INFO).
        jsm = await jetstreamManager(nc, { timeout: timeoutMs, ...(options.agentKey ? { checkAPI: false } : {}) });
        break;
      } catch (error) {
        if (!isElectionError(error) || Date.now() - startMs >= electionRetryMs) throw error;
        logger.info({ attempt, reason: errorText(error) }, 'JetStream unavailable (no leader?); retrying');
        await new Promise((resolve) => setTimeout(resolve, Math.min(ELECTION_RETRY_FIRST_MS * 2 ** (attempt - 1), ELECTION_RETRY_MAX_MS)));
      }
    }
  } catch (error) {
    await nc.close().catch(() => undefined);
    throw new BrokerError('connect', servers.join(','), `JetStream is not available: ${errorText(error)}`, { cause: error });
  }
  logger.info({ servers, server: nc.getServer(), version: nc.info?.version }, 'connected to NATS');
  return new NatsBroker(nc, jsm, logger, options, timeoutMs, namespace);
}

function authenticatorOf(credentials: BrokerCredentials): Authenticator {
  if (credentials.kind === 'nkey') return nkeyAuthenticator(new TextEncoder().encode(credentials.seed));
  return credentials.kind === 'creds'
    ? credsAuthenticator(credentials.creds)
    : usernamePasswordAuthenticator(credentials.user, credentials.password);
}

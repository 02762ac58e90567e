import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  connectBroker,
  readOrCreateSecret,
  startNatsServer,
  type Broker,
  type BrokerCredentials,
  type EmbeddedNatsServer,
  type InvalidMessageError,
} from '@warren/broker';
import { ConfigError, type Logger } from '@warren/core';
import { instanceTag } from '@warren/runtime';
import type { EventDetails, WarrenEvent } from './events.js';
import type { SupervisorConfig } from './config.js';
import { withPrivateUmask } from './state-dir.js';
import { AssignmentState, type StateStore } from '@warren/registry';

/**
 * How the supervisor reaches its broker, and who may drive it.
 *
 * - The embedded nats-server takes one user, `warren`, whose random password is kept in
 *   `<state>/nats/auth/password` (mode 0600, directory 0700) and reused across restarts; the
 *   generated `nats-server.conf` holding it is 0600 too. Any other connection is refused.
 * - An external NATS (`natsUrl`) is reached with a credentials file, a user and password, or the
 *   `user:password@` of the URL.
 * - Subjects, streams and consumers carry the instance name (`--instance`, default the state
 *   directory's tag `w<6 hex>`), so supervisors sharing one NATS never touch each other's.
 * - Assignments, results and agent messages are signed with the instance's key, kept in
 *   `<state>/broker/signing-key` (0600); a message without a valid signature is refused and audited.
 */

/** The user of the embedded nats-server. */
export const EMBEDDED_NATS_USER = 'warren';

/** The audit action of a broker message Warren refused. */
export const BROKER_REJECTED = 'broker.rejected' as const;

/** The instance name on NATS: `--instance`, or derived from the state directory. */
export function brokerInstance(config: SupervisorConfig): string {
  return config.instance ?? defaultBrokerInstance(config.stateDir);
}

/**
 * The instance name a supervisor on `stateDir` uses without `--instance`: `w` and 6 hex digits of
 * the SHA-256 of the absolute path (the tag its sandboxes carry too).
 */
export function defaultBrokerInstance(stateDir: string): string {
  return instanceTag(resolve(stateDir));
}

/** Paths of the secrets kept in the state directory. */
export function brokerSecretPaths(stateDir: string): { natsPassword: string; signingKey: string } {
  return {
    natsPassword: join(stateDir, 'nats', 'auth', 'password'),
    signingKey: join(stateDir, 'broker', 'signing-key'),
  };
}

/**
 * The servers and credentials for an external NATS (one server, or the several of a cluster):
 * `user:password@` is taken out of the URLs (it is never logged; URLs that carry one must all
 * carry the same), and `natsCredsFile` or `natsUser`/`natsPassword` are used if given.
 * @returns `servers`: the URLs without credentials, in the order given.
 * @throws {ConfigError} naming the option when more than one kind of credentials is given, the
 *   URLs carry different users or passwords, a password comes without a user, or the credentials
 *   file cannot be read.
 */
export async function externalNatsAccess(
  config: SupervisorConfig,
): Promise<{ servers: string[]; credentials: BrokerCredentials | undefined }> {
  const urls = (config.natsUrls.length > 0 ? config.natsUrls : [config.natsUrl!]).map((text) => new URL(text));
  const carried = urls.filter((u) => u.username !== '' || u.password !== '');
  if (new Set(carried.map((u) => `${u.username}:${u.password}`)).size > 1) {
    throw new ConfigError("option 'nats-url'", 'the URLs carry different users or passwords; give one (in every URL, or once with NATS_USER)');
  }
  const urlUser = decodeURIComponent(carried[0]?.username ?? '');
  const urlPassword = decodeURIComponent(carried[0]?.password ?? '');
  const servers = urls.map((url) => {
    url.username = '';
    url.password = '';
    return url.toString().replace(/\/$/, '');
  });
  const kinds = [urlUser ? 'the user in NATS_URL' : '', config.natsUser ? 'NATS_USER / --nats-user' : '', config.natsCredsFile ? 'NATS_CREDS / --nats-creds' : ''].filter(Boolean);
  if (kinds.length > 1) throw new ConfigError("option 'nats-url'", `give one kind of NATS credentials, not ${kinds.join(' and ')}`);
  if (config.natsCredsFile) {
    let creds: Buffer;
    try {
      creds = await readFile(config.natsCredsFile);
    } catch (error) {
      throw new ConfigError(config.natsCredsFile, `cannot read the NATS credentials file: ${(error as Error).message}`, { cause: error });
    }
    if (!creds.toString('utf8').includes('-----BEGIN NATS USER JWT-----')) {
      throw new ConfigError(config.natsCredsFile, 'is not a NATS credentials file (no "BEGIN NATS USER JWT" block)');
    }
    return { servers, credentials: { kind: 'creds', creds, source: config.natsCredsFile } };
  }
  const user = config.natsUser ?? urlUser;
  const password = config.natsUser ? config.natsPassword : urlPassword || config.natsPassword;
  if (!user) {
    if (config.natsPassword) throw new ConfigError('NATS_PASSWORD', 'is set but no NATS user is given (NATS_USER or --nats-user)');
    return { servers, credentials: undefined };
  }
  return { servers, credentials: { kind: 'user-password', user, password: password ?? '' } };
}

/** What {@link openBroker} started. Close the broker first, then the server. */
export interface BrokerAccess {
  readonly nats: EmbeddedNatsServer | undefined;
  readonly broker: Broker;
  readonly instance: string;
}

/**
 * Starts the embedded nats-server with its generated password (or resolves the external NATS's
 * credentials), loads or makes the instance's signing key and connects the supervisor's broker
 * client in the instance's namespace. Invalid and unsigned messages go to `onInvalid`.
 * @throws {ConfigError} for bad credentials options, {@link NatsServerError} / BrokerError when
 *   the server does not start or the connection fails (what was started is closed again).
 */
export async function openBroker(
  config: SupervisorConfig,
  log: Logger,
  onInvalid: (subject: string, error: InvalidMessageError) => void,
): Promise<BrokerAccess> {
  const paths = brokerSecretPaths(config.stateDir);
  const instance = brokerInstance(config);
  const signingKey = Buffer.from(await readOrCreateSecret(paths.signingKey), 'utf8');
  let nats: EmbeddedNatsServer | undefined;
  let servers: string | string[];
  let credentials: BrokerCredentials | undefined;
  if (config.natsUrl) {
    ({ servers, credentials } = await externalNatsAccess(config));
  } else {
    const password = await readOrCreateSecret(paths.natsPassword);
    // Under umask 077, so that the JetStream store the server writes is private to root.
    nats = await withPrivateUmask(() =>
      startNatsServer({
        storeDir: join(config.stateDir, 'nats'),
        logger: log.child({ component: 'nats' }),
        authorization: { user: EMBEDDED_NATS_USER, password },
      }),
    );
    servers = nats.url;
    credentials = { kind: 'user-password', user: EMBEDDED_NATS_USER, password };
  }
  try {
    const broker = await connectBroker({
      servers,
      name: `warren-supervisor-${instance}`,
      instance,
      signingKey,
      ...(credentials ? { credentials } : {}),
      // Only replicated streams elect leaders: with one replica a JetStream call that fails, fails at
      // once and the tick's own retry (the outbox, the next tick) takes it from there.
      electionRetryMs: config.natsReplicas > 1 ? 15_000 : 0,
      logger: log.child({ component: 'broker' }),
      onInvalid,
    });
    return { nats, broker, instance };
  } catch (error) {
    await nats?.close();
    throw error;
  }
}

/**
 * The `broker.rejected` event (audit row and warning) of a broker message Warren refused (bad signature, malformed, or an
 * assignment naming no execution of its agent): action `broker.rejected`, object
 * `broker:<subject>`, details `{ subject, field, reason }` plus what the caller adds.
 */
export function rejectionEntry(
  subject: string,
  field: string,
  reason: string,
  extra: Pick<EventDetails['broker.rejected'], 'agent' | 'taskId' | 'attempt'> = {},
): WarrenEvent<'broker.rejected'> {
  return { actor: 'supervisor', action: BROKER_REJECTED, object: `broker:${subject}`, details: { subject, field, reason, ...extra } };
}

/**
 * Why an assignment for `agent` must not run, or null when it names an execution committed in
 * SQLite for that agent that no runner has taken yet.
 */
export function assignmentRefusal(state: StateStore, agent: string, taskId: string, attempt: number): string | null {
  const row = state.assignment(taskId, attempt);
  if (!row) return `no execution ${taskId}:${attempt} was committed`;
  if (row.agent !== agent) return `execution ${taskId}:${attempt} belongs to agent ${row.agent}`;
  if (row.state !== AssignmentState.pending && row.state !== AssignmentState.published) {
    return `execution ${taskId}:${attempt} is already ${row.state}`;
  }
  return null;
}

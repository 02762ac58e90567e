/**
 * `node-join.json`: what this supervisor gives a joining `warren node` host (`nodeJoinOf`) and where
 * it is written (`writeNodeJoinFile`, through `@warren/node` `writeNodeJoin`).
 */
import { join } from 'node:path';
import { writeNodeJoin, type NodeJoin } from '@warren/node';
import { readOrCreateSecret, type BrokerNamespace } from '@warren/broker';
import type { SupervisorConfig } from '../config.js';
import { brokerSecretPaths, EMBEDDED_NATS_USER } from '../broker-access.js';

/** The file `warren node --join <file>` reads, under the state directory. */
export const NODE_JOIN_FILE = 'node-join.json';

/**
 * What a `warren node` host needs to join this supervisor (the contents of `node-join.json`, as
 * `@warren/node` `nodeJoinSchema` says): the NATS servers and the supervisor's user and password on
 * them (nodes are infrastructure, as kubelets are), the broker's signing key in hex, the
 * namespace's instance (null for the default namespace) and its subject prefix.
 */
export type { NodeJoin };

/**
 * What `config`'s supervisor gives joining nodes: the embedded server's URL with user `warren` and
 * its password, or the `--nats-url` servers with `--nats-user` and its password (a URL's own
 * `user:password@` stays in the URL; a credentials file is not shipped: null user).
 * @param natsUrl the embedded server's URL, undefined with an external NATS.
 * @throws what reading the password or the signing key throws (they exist once the broker is open).
 */
export async function nodeJoinOf(config: SupervisorConfig, ns: BrokerNamespace, natsUrl: string | undefined): Promise<NodeJoin> {
  const paths = brokerSecretPaths(config.stateDir);
  // The secrets as the broker reads them (trimmed): the key's bytes are its text's UTF-8 bytes.
  const signingKey = Buffer.from(await readOrCreateSecret(paths.signingKey), 'utf8').toString('hex');
  if (natsUrl !== undefined) {
    const password = await readOrCreateSecret(paths.natsPassword);
    return { servers: [natsUrl], user: EMBEDDED_NATS_USER, password, signingKey, instance: ns.instance ?? null, subjectPrefix: ns.subjectPrefix };
  }
  return { servers: [...config.natsUrls], user: config.natsUser ?? null, password: config.natsUser === undefined ? null : (config.natsPassword ?? null), signingKey, instance: ns.instance ?? null, subjectPrefix: ns.subjectPrefix };
}

/**
 * Writes `join` to `<stateDir>/node-join.json` with `@warren/node` `writeNodeJoin` (mode 0600, a
 * temporary file synced and renamed over the old one; rewritten at each `warren up`: the password
 * or servers may have changed).
 * @returns the file's path. @throws {WarrenError} `WARREN_NODE_JOIN` naming the path when it cannot be written.
 */
export async function writeNodeJoinFile(stateDir: string, join_: NodeJoin): Promise<string> {
  const path = join(stateDir, NODE_JOIN_FILE);
  await writeNodeJoin(path, join_);
  return path;
}

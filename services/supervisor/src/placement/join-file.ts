import { constants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { WarrenError } from '@warren/core';
import { readOrCreateSecret, type BrokerNamespace } from '@warren/broker';
import type { SupervisorConfig } from '../config.js';
import { brokerSecretPaths, EMBEDDED_NATS_USER } from '../broker-access.js';

/** The file `warren node --join <file>` reads, under the state directory. */
export const NODE_JOIN_FILE = 'node-join.json';

/**
 * What a `warren node` host needs to join this supervisor (the contents of `node-join.json`):
 * the NATS servers and the supervisor's user and password on them (nodes are infrastructure, as
 * kubelets are), the broker's signing key in hex (a node checks assignments and signs results as
 * the local gateway does), the namespace's instance (null for the default namespace) and its
 * subject prefix.
 */
export interface NodeJoin {
  readonly servers: readonly string[];
  readonly user: string | null;
  readonly password: string | null;
  readonly signingKey: string;
  readonly instance: string | null;
  readonly subjectPrefix: string;
}

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
 * Writes `join` to `<stateDir>/node-join.json`, mode 0600, through a temporary file renamed over
 * the old one (rewritten at each `warren up`: the password or servers may have changed).
 * @returns the file's path. @throws {WarrenError} `WARREN_NODE_JOIN` naming the path when it cannot be written.
 */
export async function writeNodeJoinFile(stateDir: string, join_: NodeJoin): Promise<string> {
  const path = join(stateDir, NODE_JOIN_FILE);
  const temp = `${path}.${randomBytes(6).toString('hex')}`;
  try {
    const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(`${JSON.stringify(join_, null, 2)}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw new WarrenError('WARREN_NODE_JOIN', `${path}: cannot be written: ${(error as Error).message}`, { cause: error });
  }
  return path;
}

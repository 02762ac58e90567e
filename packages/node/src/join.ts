import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { brokerNamespace } from '@warren/broker';
import { ConfigError, WarrenError } from '@warren/core';
import { z } from 'zod';

/**
 * What a `warren node` host needs to join a Warren: `<stateDir>/node-join.json`, written by
 * `warren up` (mode 0600). Nodes are infrastructure, like kubelets: they connect with the
 * supervisor's NATS credentials and hold the instance's signing key (they verify assignments and
 * sign results as the supervisor's own gateways do), so the file is a secret.
 * - `servers`: the NATS URLs (several for a cluster).
 * - `user`, `password`: the supervisor's NATS user (null for a server without authorization).
 * - `signingKey`: the instance's signing key, hex.
 * - `instance`: the broker namespace's instance name, or null for the default namespace.
 * - `subjectPrefix`: that namespace's subject prefix (`warren` or `warren.<instance>`), checked on read.
 */
export const nodeJoinSchema = z.object({
  servers: z.array(z.string().min(1)).min(1),
  user: z.string().min(1).nullable(),
  password: z.string().min(1).nullable(),
  signingKey: z.string().regex(/^(?:[0-9a-f]{2})+$/, 'the signing key is hex'),
  instance: z.string().min(1).nullable(),
  subjectPrefix: z.string().min(1),
});
export type NodeJoin = z.infer<typeof nodeJoinSchema>;

/**
 * Reads and checks a join file.
 * @throws {ConfigError} naming the file when it cannot be read, is not JSON, fails the schema, or
 *   its `subjectPrefix` is not its instance's.
 */
export async function readNodeJoin(path: string): Promise<NodeJoin> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(path, `cannot read the join file: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const parsed = nodeJoinSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(path, `${issue.path.join('.') || '(file)'}: ${issue.message}`);
  }
  const expected = brokerNamespace(parsed.data.instance ?? undefined).subjectPrefix;
  if (parsed.data.subjectPrefix !== expected) {
    throw new ConfigError(path, `subjectPrefix ${parsed.data.subjectPrefix} is not instance ${parsed.data.instance ?? '(default)'}'s (${expected})`);
  }
  return parsed.data;
}

/**
 * Writes a join file with mode 0600: checked against {@link nodeJoinSchema}, written to a new
 * temporary file beside `path` (created exclusively, no symbolic link followed), synced, and renamed
 * over the old file, so a reader sees the old file or the whole new one.
 * @throws {WarrenError} `WARREN_NODE_JOIN` naming `path` when it cannot be written (the temporary
 *   file is removed); zod's error when `join` fails the schema.
 */
export async function writeNodeJoin(path: string, join: NodeJoin): Promise<void> {
  const body = `${JSON.stringify(nodeJoinSchema.parse(join), null, 2)}\n`;
  const temporary = `${path}.${randomBytes(6).toString('hex')}`;
  try {
    const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      // The mode given to open is masked by the umask; the file holds secrets.
      await handle.chmod(0o600);
      await handle.writeFile(body, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw new WarrenError('WARREN_NODE_JOIN', `${path}: cannot be written: ${(error as Error).message}`, { cause: error });
  }
}

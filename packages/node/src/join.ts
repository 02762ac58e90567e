import { readFile, writeFile, rename } from 'node:fs/promises';
import { brokerNamespace } from '@warren/broker';
import { ConfigError } from '@warren/core';
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

/** Writes a join file with mode 0600 (through a temporary file renamed over the old one). */
export async function writeNodeJoin(path: string, join: NodeJoin): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}`;
  await writeFile(temporary, `${JSON.stringify(nodeJoinSchema.parse(join), null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, path);
}

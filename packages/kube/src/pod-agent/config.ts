/**
 * The settings of `warren-pod-agent`, read from the agent's home: `~/.warren/nats.json` (broker
 * credentials, `natsCredentialsJson`) and `~/.warren/agent.json` ({@link PodAgentConfig}, written
 * by `KubernetesRuntime` into the agent's Secret). Both are checked with zod; a bad file is an
 * error naming the file and the field.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '@warren/core';

const natsSchema = z.object({
  servers: z.array(z.string().min(1)).min(1),
  nkeySeed: z.string().regex(/^SU[A-Z2-7]{56}$/, 'must be an NKey user seed'),
  inboxPrefix: z.string().min(1),
});

/** The contents of `~/.warren/nats.json`. */
export type PodNatsConfig = z.infer<typeof natsSchema>;

const agentSchema = z.strictObject({
  /** The agent's name. */
  agent: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be an agent name'),
  /** The id the supervisor gave this start (16 hex digits): events of other instances are dropped. */
  instance: z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 lowercase hex digits'),
  template: z.string().min(1),
  /** The Warren instance whose broker namespace is used (`brokerNamespace(instance)`), or null for the default one. */
  brokerInstance: z.string().min(1).nullable(),
  capabilities: z.array(z.string()),
  /** The runner's settings: `WARREN_RUNTIME` (JSON), `WARREN_MAX_CONCURRENT`, `WARREN_HEARTBEAT_MS`. */
  runner: z.object({ runtime: z.unknown(), maxConcurrent: z.number().int().positive(), heartbeatIntervalMs: z.number().int().positive() }),
  /** The agent's own signing key (`agentSigningKey(master, agent)`), 64 hex digits; null when the broker is unsigned. */
  signingKey: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits').nullable(),
  /** How long the runner has to ack a task, in ms; default the gateway's. */
  ackTimeoutMs: z.number().int().positive().optional(),
  /**
   * Files written into the home before the runner starts (template seed files, secret files): a
   * relative path without `..`, the content, permission bits; without `overwrite` a file already
   * there (the agent changed it, or an earlier start wrote it) is kept.
   */
  homeFiles: z
    .array(
      z.strictObject({
        path: z.string().min(1).refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), 'must be relative, without ".."'),
        contentBase64: z.string(),
        mode: z.number().int().min(0).max(0o777),
        overwrite: z.boolean().optional(),
      }),
    )
    .default([]),
});

/** The contents of `~/.warren/agent.json`. */
export type PodAgentConfig = z.infer<typeof agentSchema>;

async function readJson<T>(path: string, schema: z.ZodType<T>): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, `cannot be read: ${(error as Error).message}`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(path, `is not JSON: ${(error as Error).message}`, { cause: error });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`${path} ${issue?.path.join('.') ?? ''}`.trim(), issue?.message ?? 'is invalid');
  }
  return parsed.data;
}

/**
 * Reads both files under `<home>/.warren/`.
 * @throws {ConfigError} naming the file (and field) that is missing or invalid.
 */
export async function readPodAgentConfig(home: string): Promise<{ nats: PodNatsConfig; agent: PodAgentConfig }> {
  const dir = join(home, '.warren');
  return { nats: await readJson(join(dir, 'nats.json'), natsSchema), agent: await readJson(join(dir, 'agent.json'), agentSchema) };
}

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '@warren/core';

/**
 * Message authenticity for the broker's JetStream messages (assignments, results, agent
 * messages). The publisher puts the HMAC-SHA256 of `subject`, a newline and the payload bytes
 * under the instance's signing key in the `Warren-Signature` header (lowercase hex); the consumer
 * recomputes it and refuses a message whose header is missing or differs. A message signed for
 * one subject does not verify on another.
 */

const SIGNATURE = /^[0-9a-f]{64}$/;

/** The HMAC-SHA256 (64 lowercase hex digits) of `subject` + `\n` + `payload` under `key`. */
export function signMessage(key: Uint8Array, subject: string, payload: Uint8Array | string): string {
  return createHmac('sha256', key).update(subject).update('\n').update(payload).digest('hex');
}

/**
 * Checks a `Warren-Signature` header value against `subject` and `payload`, in constant time.
 * @returns undefined when it verifies, else why not (`missing`, `malformed`, `does not match`).
 */
export function verifySignature(
  key: Uint8Array,
  subject: string,
  payload: Uint8Array,
  signature: string | undefined,
): string | undefined {
  if (signature === undefined) return 'the signature header is missing';
  if (!SIGNATURE.test(signature)) return 'the signature header is malformed';
  const expected = Buffer.from(signMessage(key, subject, payload), 'hex');
  return timingSafeEqual(expected, Buffer.from(signature, 'hex')) ? undefined : 'the signature does not match';
}

/**
 * The signing key of agent `agent` derived from the instance's master signing key:
 * HMAC-SHA256(master, `warren-agent:<agent>`) (32 bytes). Assignments to agent A and A's results
 * are signed with A's key, so a process holding only A's key (a pod's broker) can verify its own
 * assignments and sign its own results, and nothing of another agent.
 */
export function agentSigningKey(master: Uint8Array, agent: string): Uint8Array {
  return createHmac('sha256', master).update(`warren-agent:${agent}`).digest();
}

/**
 * A message id that only the holder of `key` can compute for (`subject`, `id`):
 * `<id>:<16 hex of HMAC>`. JetStream de-duplicates by message id, so a message published by
 * someone without the key cannot take the id of a real one (and make the broker drop it).
 */
export function keyedMessageId(key: Uint8Array, subject: string, id: string): string {
  return `${id}:${createHmac('sha256', key).update('msg-id\n').update(subject).update('\n').update(id).digest('hex').slice(0, 16)}`;
}

/**
 * Reads the secret kept in `path` or, when the file does not exist, makes one: `bytes` random
 * bytes written as base64url (no padding) to a new file of mode 0600, in a directory created with
 * mode 0700. An existing file is set to mode 0600 and must hold at least 16 characters.
 * @returns the secret as written in the file (base64url text, trimmed).
 * @throws {ConfigError} naming `path` if the file is not a regular file or holds too short a secret.
 */
export async function readOrCreateSecret(path: string, bytes = 32): Promise<string> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    const handle = await open(path, 'wx', 0o600);
    const secret = randomBytes(bytes).toString('base64url');
    try {
      await handle.writeFile(`${secret}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return secret;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const info = await stat(path);
  if (!info.isFile()) throw new ConfigError(path, 'must be a regular file holding a secret');
  if ((info.mode & 0o077) !== 0) await chmod(path, 0o600);
  const secret = (await readFile(path, 'utf8')).trim();
  if (secret.length < 16) throw new ConfigError(path, 'holds no secret (at least 16 characters expected); delete it to make a new one');
  return secret;
}

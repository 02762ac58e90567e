import { createHmac, randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, fsyncSync, linkSync, mkdirSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SecretKeyError } from './errors.js';

/** The key file's name in the state directory when `WARREN_SECRETS_KEY_FILE` does not name one. */
export const SECRETS_KEY_FILE = 'secrets.key';
/** The size of the key file: one AES-256 key, 32 bytes. */
export const KEY_BYTES = 32;

/**
 * Where the secrets key lives: `env.WARREN_SECRETS_KEY_FILE` when set and not empty, else
 * `<stateDir>/secrets.key`. Pass the process environment from a service (packages read none).
 */
export function secretsKeyPath(stateDir: string, env: Readonly<Record<string, string | undefined>> = {}): string {
  const fromEnv = env.WARREN_SECRETS_KEY_FILE;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(stateDir, SECRETS_KEY_FILE);
}

/** The AES-256 key and its id (16 hex digits of an HMAC-SHA256 of a fixed label: it tells keys apart, it does not reveal one). */
export interface SecretsKey {
  readonly key: Buffer;
  readonly keyId: string;
}

function keyOf(key: Buffer): SecretsKey {
  return { key, keyId: createHmac('sha256', key).update('warren secrets key id v1').digest('hex').slice(0, 16) };
}

/**
 * Reads the key file at `path`, or returns undefined when there is none.
 * The file must be a regular file owned by this process's user, with no permission for group or
 * others, and exactly {@link KEY_BYTES} long; checks are made on the open file (fstat).
 * @throws {SecretKeyError} naming the path and what is wrong.
 */
export function readKeyFile(path: string): SecretsKey | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOCTTY);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SecretKeyError(path, `cannot be opened: ${(error as Error).message}`, { cause: error });
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw new SecretKeyError(path, 'is not a regular file');
    const uid = process.getuid?.();
    if (uid !== undefined && info.uid !== uid) throw new SecretKeyError(path, `is owned by uid ${info.uid}, not by this user (uid ${uid})`);
    if ((info.mode & 0o077) !== 0) {
      throw new SecretKeyError(path, `has mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}: group or others may read it; make it private (chmod 600 ${path})`);
    }
    if (info.size !== KEY_BYTES) throw new SecretKeyError(path, `has ${info.size} bytes; a key file holds exactly ${KEY_BYTES}`);
    const key = Buffer.alloc(KEY_BYTES);
    let read = 0;
    while (read < KEY_BYTES) {
      const n = readSync(fd, key, read, KEY_BYTES - read, read);
      if (n === 0) throw new SecretKeyError(path, `ended after ${read} bytes; a key file holds exactly ${KEY_BYTES}`);
      read += n;
    }
    return keyOf(key);
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes a new key file at `path` (32 random bytes, mode 0600, its directory made 0700 if missing)
 * unless one appears meanwhile, and returns the key the file then holds. The file is written under
 * a temporary name and linked into place, so no reader ever sees it partly written, and of two
 * processes creating it at once both end with the same key.
 * @throws {SecretKeyError} if the file cannot be written, or the one found fails {@link readKeyFile}'s checks.
 */
export function createKeyFile(path: string): SecretsKey {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, randomBytes(KEY_BYTES));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(temp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    syncDirectory(dirname(path));
  } catch (error) {
    throw new SecretKeyError(path, `cannot be created: ${(error as Error).message}`, { cause: error });
  } finally {
    try {
      unlinkSync(temp);
    } catch {
      // never made, or already gone
    }
  }
  const made = readKeyFile(path);
  if (made === undefined) throw new SecretKeyError(path, 'vanished right after it was created');
  return made;
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

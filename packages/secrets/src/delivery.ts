import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { SecretDeliveryError, SecretError } from './errors.js';
import { ENV_NAME, SECRET_NAME, checkSecretName } from './names.js';

/** Where an agent's secret files are, relative to its home: `<home>/.warren/secrets/<NAME>`. */
export const SECRETS_DIR = join('.warren', 'secrets');
/** Mode of each secret file: read-only for its owner, the agent. */
export const SECRET_FILE_MODE = 0o400;
/** Mode of `.warren/secrets`: list and read for its owner, the agent. */
export const SECRETS_DIR_MODE = 0o500;

/** A secret to deliver: its name and value; one marked `gateway` is refused. */
export interface DeliverableSecret {
  readonly name: string;
  readonly value: string;
  readonly gateway?: boolean;
}

/** Options of {@link deliverSecretFiles}. */
export interface DeliverSecretFilesOptions {
  /** The agent's home directory (made by Warren; the agent owns it). */
  readonly homeDir: string;
  /** The agent's uid and gid: the owner of the files and of `.warren/secrets`. */
  readonly uid: number;
  readonly gid: number;
  /** The agent's secrets (`secretsFor(...).agent`): exactly these files remain afterwards. */
  readonly secrets: readonly DeliverableSecret[];
}

/** What {@link deliverSecretFiles} did. */
export interface SecretDelivery {
  /** `<home>/.warren/secrets`. */
  readonly dir: string;
  /** Names of the files written, sorted. */
  readonly written: readonly string[];
  /** Names of the files removed because their secret is gone, sorted. */
  readonly removed: readonly string[];
}

/** The path of an already open directory's entry `name`, resolved from the descriptor (as openat(2) would). */
const at = (dirFd: number, name: string): string => `/proc/self/fd/${dirFd}/${name}`;

const errno = (error: unknown): string | undefined => (error as NodeJS.ErrnoException).code;

/**
 * Opens the directory `name` inside the open directory `parentFd` without following a symlink,
 * creating it with `mode` when missing and `create` is set.
 * @returns the descriptor and whether it was created, or undefined when missing and not created.
 */
function openDirectoryAt(parentFd: number, name: string, shown: string, create: boolean, mode: number): { fd: number; created: boolean } | undefined {
  const path = at(parentFd, name);
  let created = false;
  for (;;) {
    try {
      const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      return { fd, created };
    } catch (error) {
      const code = errno(error);
      if (code === 'ENOENT' && create && !created) {
        try {
          mkdirSync(path, { mode });
          created = true;
        } catch (made) {
          if (errno(made) !== 'EEXIST') throw new SecretDeliveryError(shown, `cannot be made: ${(made as Error).message}`, { cause: made });
        }
        continue;
      }
      if (code === 'ENOENT') return undefined;
      if (code === 'ELOOP' || code === 'ENOTDIR') {
        const kind = kindOf(path);
        throw new SecretDeliveryError(shown, `is ${kind}, not a directory: refused (only a real directory is used)`, { cause: error });
      }
      throw new SecretDeliveryError(shown, `cannot be opened: ${(error as Error).message}`, { cause: error });
    }
  }
}

function kindOf(path: string): string {
  try {
    const info = lstatSync(path);
    if (info.isSymbolicLink()) return 'a symlink';
    if (info.isFile()) return 'a regular file';
    return 'a special file';
  } catch {
    return 'gone';
  }
}

/**
 * Writes an agent's secrets as files `<home>/.warren/secrets/<NAME>` (mode 0400, owned by
 * `uid:gid`) in the directory `.warren/secrets` (mode 0500, owned by `uid:gid`), and removes the
 * files of secrets no longer given. Run it as root before the agent's runner starts, and again when
 * its secrets change.
 *
 * The agent owns its home and could plant symlinks there, so every step is made from an open
 * directory descriptor (paths through `/proc/self/fd/<fd>/`, the openat(2) pattern): `.warren` and
 * `secrets` are opened with O_NOFOLLOW|O_DIRECTORY and refused when they are symlinks or not
 * directories; each file is created with O_CREAT|O_EXCL|O_NOFOLLOW under a random temporary name
 * with mode 0400 from the start (never readable by anyone else), given to the agent with fchown,
 * written, fsynced, then renamed over its final name (atomic: a reader sees the old or the new value).
 * `.warren` is made (0700, owned by the agent) when missing; with no secrets and no
 * `.warren/secrets`, nothing is made.
 * @throws {SecretError} `WARREN_SECRET_INVALID` for a secret marked gateway-only or a bad name,
 *   before anything is written.
 * @throws {SecretDeliveryError} naming the path when the home, `.warren` or `secrets` is unusable
 *   (a symlink, not a directory) or a file operation fails.
 */
export function deliverSecretFiles(options: DeliverSecretFilesOptions): SecretDelivery {
  const { homeDir, uid, gid, secrets } = options;
  for (const secret of secrets) {
    checkSecretName(secret.name);
    if (secret.gateway === true) {
      throw new SecretError('WARREN_SECRET_INVALID', `secret ${secret.name} is for the gateway only; it is never delivered to an agent`);
    }
  }
  const names = new Set(secrets.map((s) => s.name));
  if (names.size !== secrets.length) throw new SecretError('WARREN_SECRET_INVALID', 'the same secret name is given twice');
  const warrenShown = join(homeDir, '.warren');
  const dir = join(homeDir, SECRETS_DIR);

  let homeFd: number;
  try {
    homeFd = openSync(homeDir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (error) {
    throw new SecretDeliveryError(homeDir, `the agent's home cannot be opened as a directory: ${(error as Error).message}`, { cause: error });
  }
  const open: number[] = [homeFd];
  try {
    const create = secrets.length > 0;
    const warren = openDirectoryAt(homeFd, '.warren', warrenShown, create, 0o700);
    if (warren === undefined) return { dir, written: [], removed: [] };
    open.push(warren.fd);
    if (warren.created) {
      fchownSync(warren.fd, uid, gid);
      fchmodSync(warren.fd, 0o700);
    } else {
      const owner = fstatSync(warren.fd).uid;
      if (owner !== uid && owner !== 0) throw new SecretDeliveryError(warrenShown, `is owned by uid ${owner}, neither the agent (uid ${uid}) nor root: refused`);
    }
    const secretsDir = openDirectoryAt(warren.fd, 'secrets', dir, create, 0o700);
    if (secretsDir === undefined) return { dir, written: [], removed: [] };
    open.push(secretsDir.fd);
    const dirFd = secretsDir.fd;

    const written: string[] = [];
    for (const secret of [...secrets].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      writeSecretFile(dirFd, dir, secret, uid, gid);
      written.push(secret.name);
    }

    const removed: string[] = [];
    let entries;
    try {
      entries = readdirSync(at(dirFd, '.'), { withFileTypes: true });
    } catch (error) {
      throw new SecretDeliveryError(dir, `cannot be listed: ${(error as Error).message}`, { cause: error });
    }
    for (const entry of entries) {
      const ours = SECRET_NAME.test(entry.name) || entry.name.startsWith(TEMP_PREFIX);
      if (!ours || names.has(entry.name) || entry.isDirectory()) continue;
      try {
        unlinkSync(at(dirFd, entry.name));
        if (!entry.name.startsWith(TEMP_PREFIX)) removed.push(entry.name);
      } catch (error) {
        if (errno(error) !== 'ENOENT') throw new SecretDeliveryError(join(dir, entry.name), `cannot be removed: ${(error as Error).message}`, { cause: error });
      }
    }
    removed.sort();

    fchownSync(dirFd, uid, gid);
    fchmodSync(dirFd, SECRETS_DIR_MODE);
    fsyncSync(dirFd);
    return { dir, written, removed };
  } finally {
    for (const fd of open.reverse()) closeSync(fd);
  }
}

/** The prefix of a file being written; such files left by a crash are removed by the next delivery. */
const TEMP_PREFIX = '.tmp-';

function writeSecretFile(dirFd: number, dir: string, secret: DeliverableSecret, uid: number, gid: number): void {
  const shown = join(dir, secret.name);
  const temp = `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`;
  let fd: number;
  try {
    fd = openSync(at(dirFd, temp), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, SECRET_FILE_MODE);
  } catch (error) {
    throw new SecretDeliveryError(shown, `cannot be created: ${(error as Error).message}`, { cause: error });
  }
  try {
    try {
      fchmodSync(fd, SECRET_FILE_MODE);
      fchownSync(fd, uid, gid);
      const bytes = Buffer.from(secret.value, 'utf8');
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
      bytes.fill(0);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(at(dirFd, temp), at(dirFd, secret.name));
  } catch (error) {
    try {
      unlinkSync(at(dirFd, temp));
    } catch {
      // renamed already, or never made
    }
    throw new SecretDeliveryError(shown, `cannot be written: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * The environment variables a template names for secrets: `names` maps a variable to a secret's
 * name (`{ GITHUB_TOKEN: 'GH_TOKEN' }`); each is looked up among the agent's secrets
 * (`secretsFor(...).agent`).
 * @returns `{ variable: value }`, one entry per variable of `names`.
 * @throws {SecretError} `WARREN_SECRET_INVALID` for a bad variable or secret name, a gateway-only
 *   secret, or a value holding a NUL byte (which no environment can carry); `WARREN_SECRET_MISSING`
 *   naming the variable and the secret when the agent has no such secret.
 */
export function secretEnv(secrets: readonly DeliverableSecret[], names: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [variable, secretName] of Object.entries(names)) {
    if (!ENV_NAME.test(variable)) throw new SecretError('WARREN_SECRET_INVALID', `environment variable name ${JSON.stringify(variable)} is not a valid name ([A-Za-z_][A-Za-z0-9_]*)`);
    checkSecretName(secretName);
    const secret = secrets.find((s) => s.name === secretName);
    if (secret === undefined) {
      throw new SecretError('WARREN_SECRET_MISSING', `environment variable ${variable} names secret ${secretName}, which is not set for this agent or its template (warren secret set)`);
    }
    if (secret.gateway === true) throw new SecretError('WARREN_SECRET_INVALID', `environment variable ${variable} names secret ${secretName}, which is for the gateway only`);
    if (secret.value.includes('\0')) throw new SecretError('WARREN_SECRET_INVALID', `secret ${secretName} holds a NUL byte and cannot be the environment variable ${variable}`);
    env[variable] = secret.value;
  }
  return env;
}

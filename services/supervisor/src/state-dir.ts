import { chmod, lstat, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Mode of the state directory and of every directory Warren makes in it. */
export const PRIVATE_DIR_MODE = 0o700;
/** Mode of every file Warren writes in the state directory. */
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Entries of the state directory whose modes are left alone, because they are bound into
 * sandboxes and the agents' uids must read them: `run/` (each agent's `passwd`, `group` and
 * channel sockets; emptied at every start) and `repos/` (the repositories' bare mirrors, root-owned
 * and read-only to everyone else; see `@warren/workspace`).
 */
const KEPT_AS_IS = new Set(['run', 'repos']);

/**
 * Makes `stateDir` private to root: creates it (and its parents) if missing, sets it to 0700 even
 * when it already existed, and sets what is already in it (the database and its `-wal`/`-shm`,
 * logs, the nats-server store and config, home images, pid files) to 0600 for files and 0700 for
 * directories, recursively, without following symlinks. `run/` is left as it is (see above).
 * @returns how many entries had their mode changed.
 * @throws the fs error (with its path) if the directory cannot be made or changed.
 */
export async function secureStateDir(stateDir: string): Promise<number> {
  await mkdir(stateDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  let changed = 0;
  const fix = async (path: string, mode: number, current: number): Promise<void> => {
    if ((current & 0o7777) === mode) return;
    await chmod(path, mode);
    changed += 1;
  };
  const walk = async (dir: string, top: boolean): Promise<void> => {
    const info = await lstat(dir);
    await fix(dir, PRIVATE_DIR_MODE, info.mode);
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (top && KEPT_AS_IS.has(entry.name)) continue;
      const path = join(dir, entry.name);
      try {
        if (entry.isDirectory()) await walk(path, false);
        else if (entry.isFile()) await fix(path, PRIVATE_FILE_MODE, (await lstat(path)).mode);
      } catch (error) {
        // Gone since the directory was listed: another reader of the database closing its last
        // connection removes `-wal` and `-shm` (`warren audit`, a dashboard's query, a test).
        if (!isGone(error)) throw error;
      }
    }
  };
  await walk(stateDir, true);
  return changed;
}

/** Whether `error` says the path is no longer there (ENOENT, or ENOTDIR for a parent replaced meanwhile). */
function isGone(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Runs `fn` with the process umask set to 077, so that files and directories created meanwhile
 * (by this process, or by a child started meanwhile, which keeps that umask) are private; the
 * previous umask is restored when `fn` settles. Where the umask cannot be changed (a worker
 * thread), `fn` runs unchanged.
 */
export async function withPrivateUmask<T>(fn: () => Promise<T>): Promise<T> {
  let previous: number | undefined;
  try {
    previous = process.umask(0o077);
  } catch {
    previous = undefined;
  }
  try {
    return await fn();
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
}

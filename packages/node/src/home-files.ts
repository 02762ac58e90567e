import { randomBytes } from 'node:crypto';
import { chown, lstat, mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { seedHome, type SeedRefusal } from '@warren/workspace';
import type { HomeFile } from './protocol.js';

/**
 * Makes an agent's home on a node when it is absent: parents 0755 (root's), the home itself 0700
 * owned by `uid:gid`. An existing home must be a real directory (not a symlink).
 * @throws {Error} naming the path when something else is in the way.
 */
export async function ensureHome(homeDir: string, uid: number, gid: number): Promise<void> {
  await mkdir(dirname(homeDir), { recursive: true, mode: 0o755 });
  try {
    await mkdir(homeDir, { mode: 0o700 });
    await chown(homeDir, uid, gid);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const stat = await lstat(homeDir);
  if (!stat.isDirectory()) throw new Error(`${homeDir}: the agent's home is not a directory (a symlink or a file is in the way)`);
}

/**
 * Writes `files` into the home as `uid:gid`, never following a symlink (`seedHome` of
 * `@warren/workspace`: parents checked with lstat, files made with O_EXCL | O_NOFOLLOW). A file
 * already there is kept (a seed file the agent changed), unless its entry says `overwrite`: then
 * it is written beside under a temporary name and renamed over the old one (a symlink planted
 * there is replaced, not followed).
 * @returns the files not written because a symlink or a non-directory is in the way.
 * @throws {SeedError} for an invalid entry, before anything is written.
 */
export async function writeHomeFiles(homeDir: string, uid: number, gid: number, files: readonly HomeFile[]): Promise<SeedRefusal[]> {
  const refused: SeedRefusal[] = [];
  const seeds = files.filter((file) => !file.overwrite);
  if (seeds.length > 0) {
    const result = await seedHome({ homeDir, uid, gid, files: seeds.map((file) => ({ path: file.path, content: Buffer.from(file.contentBase64, 'base64'), mode: file.mode })) });
    refused.push(...result.refused);
  }
  for (const file of files.filter((f) => f.overwrite)) {
    const temporary = `${file.path}.warren-${randomBytes(6).toString('hex')}`;
    const result = await seedHome({ homeDir, uid, gid, files: [{ path: temporary, content: Buffer.from(file.contentBase64, 'base64'), mode: file.mode }] });
    if (result.refused.length > 0) {
      refused.push({ path: file.path, reason: result.refused[0]!.reason });
      continue;
    }
    try {
      await rename(join(homeDir, temporary), join(homeDir, file.path));
    } catch (error) {
      await rm(join(homeDir, temporary), { force: true });
      refused.push({ path: file.path, reason: `cannot replace it: ${(error as Error).message}` });
    }
  }
  return refused;
}

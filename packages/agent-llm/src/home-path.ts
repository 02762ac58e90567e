/**
 * Confines the file tools' paths to the agent's home.
 */
import { lstatSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { PathOutsideHomeError } from './errors.js';

/** Whether `path` is `root` or lies below it (both absolute and normalised). */
function isWithin(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * Resolves `path` (absolute, or relative to `cwd`) to the real path it names, and refuses it unless
 * that lies inside `home`. Symlinks are followed: the nearest part of the path that exists is
 * resolved with `realpath`, and the parts that do not exist yet are appended, so `..` and a link
 * leading out are both caught; a dangling link is refused (writing through it could leave the home).
 * @param home the agent's home, absolute.
 * @param cwd the directory relative paths start from, absolute.
 * @returns the real absolute path (its last parts may not exist yet).
 * @throws {PathOutsideHomeError} when the path leaves the home or passes a dangling symlink.
 */
export function resolveInHome(home: string, cwd: string, path: string): string {
  const realHome = realpathSync(home);
  const full = resolve(cwd, path);
  const missing: string[] = [];
  let existing = full;
  for (;;) {
    let exists = true;
    try {
      lstatSync(existing);
    } catch {
      exists = false;
    }
    if (exists) break;
    const parent = dirname(existing);
    if (parent === existing) break;
    missing.unshift(basename(existing));
    existing = parent;
  }
  let real: string;
  try {
    real = realpathSync(existing);
  } catch {
    // A symlink whose target does not exist (or a loop): where it leads cannot be checked.
    throw new PathOutsideHomeError(path, home);
  }
  const target = missing.length > 0 ? join(real, ...missing) : real;
  if (!isWithin(realHome, target)) throw new PathOutsideHomeError(path, home);
  return target;
}

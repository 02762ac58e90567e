import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';

/** The uid and gid of `nobody`, standing for any other user of the host (an agent uid included). */
export const OTHER_UID = 65534;

/**
 * Runs `argv` as uid/gid 65534 with no supplementary groups (`setpriv`), as an agent or any other
 * local user would.
 * @returns its exit status and stderr.
 */
export function asOtherUser(argv: readonly string[]): { status: number | null; stderr: string } {
  const result = spawnSync('setpriv', [`--reuid=${OTHER_UID}`, `--regid=${OTHER_UID}`, '--clear-groups', ...argv], { encoding: 'utf8' });
  return { status: result.status, stderr: result.stderr };
}

/** A tmpfs mounted by a test; `unmount()` is idempotent (lazy unmount if still busy). */
export interface TestTmpfs {
  readonly dir: string;
  unmount(): void;
}

/** Mounts a tmpfs of `size` (e.g. '300m') on `dir` (created if missing). */
export function mountTmpfs(dir: string, size: string): TestTmpfs {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  let mounted = true;
  return {
    dir,
    unmount: () => {
      if (!mounted) return;
      mounted = false;
      if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
    },
  };
}

/** Mount points under `dir` (from /proc/self/mounts). */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .map((path) => path.replace(/\\040/g, ' '))
    .filter((path) => path === dir || path.startsWith(`${dir}/`));
}

/** Fills the filesystem holding `dir` with the file `path` (dd until ENOSPC), as root. */
export function fillDisk(path: string): void {
  spawnSync('dd', ['if=/dev/zero', `of=${path}`, 'bs=64k'], { stdio: 'ignore' });
}

import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

/** Copies a fixture board into a fresh temp folder (fixtures are read-only); `cleanup` removes it. */
export async function copyFixture(source: string, name: string): Promise<{ dir: string; root: string; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'warren-boards-'));
  const dir = join(root, name);
  await cp(source, dir, { recursive: true });
  return { dir, root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** Every file under `dir` with its bytes, keyed by path relative to `dir`. */
export async function snapshotFiles(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (at: string): Promise<void> => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) await walk(path);
      else out.set(relative(dir, path), await readFile(path));
    }
  };
  await walk(dir);
  return out;
}

/** The shared real-project boards: `../shared/fixtures/boards` beside the checkout, or `$WARREN_SHARED_FIXTURES/boards` (a checkout elsewhere, such as a worktree). */
export const FIXTURES = join(process.env.WARREN_SHARED_FIXTURES ?? join(import.meta.dirname, '..', '..', '..', '..', 'shared', 'fixtures'), 'boards');
export const OWN_FIXTURES = new URL('./fixtures/', import.meta.url).pathname;

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { directoryReads, homeUsage, LISTING_MAX_AGE_MS, LISTING_SETTLED_MS } from '../src/disk.js';

const dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A home with `workspaces` task workspaces of two small files each. */
function home(workspaces: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'warren-home-'));
  dirs.push(dir);
  for (let i = 0; i < workspaces; i += 1) {
    mkdirSync(join(dir, 'work', `t-${i}`), { recursive: true });
    writeFileSync(join(dir, 'work', `t-${i}`, 'task.json'), '{}');
    writeFileSync(join(dir, 'work', `t-${i}`, 'output.log'), 'ok\n');
  }
  return dir;
}

/** Directories one walk of `dir` reads, and what it finds. */
async function walk(dir: string): Promise<{ reads: number; bytes: number }> {
  const before = directoryReads();
  const { bytes } = await homeUsage(dir);
  return { reads: directoryReads() - before, bytes };
}

describe('homeUsage, directories that did not change', () => {
  it('are not read again once settled, while what they hold is measured on every walk', async () => {
    const dir = home(20);
    // Directories changed just now are read on every walk: a change in the same tick of the clock would not show.
    expect((await walk(dir)).reads).toBe(22);
    expect((await walk(dir)).reads).toBe(22);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + LISTING_SETTLED_MS + 1);
    const settled = await walk(dir);
    expect(settled.reads).toBe(22);
    expect(await walk(dir)).toEqual({ reads: 0, bytes: settled.bytes });
    // A file that grew is counted though its directory was not read.
    writeFileSync(join(dir, 'work', 't-3', 'output.log'), Buffer.alloc(512 * 1024, 1));
    const grown = await walk(dir);
    expect(grown.reads).toBe(0);
    expect(grown.bytes).toBeGreaterThanOrEqual(settled.bytes + 500 * 1024);
    // A new entry changes its directory's mtime and ctime: that directory is read again, the others not.
    // The entry's ctime comes from the kernel's coarse clock (up to a tick behind the real time):
    // the real time must be well past the standing clock's settle threshold first, or an entry
    // made within a tick of setting the clock would already look settled.
    const settleThreshold = Date.now() - LISTING_SETTLED_MS;
    while (vi.getRealSystemTime() < settleThreshold + 50) await new Promise((resolve) => setTimeout(resolve, 10));
    writeFileSync(join(dir, 'work', 't-7', 'big'), Buffer.alloc(256 * 1024, 1));
    const added = await walk(dir);
    expect(added.reads).toBe(1);
    expect(added.bytes).toBeGreaterThanOrEqual(grown.bytes + 256 * 1024);
    // Its change is less than LISTING_SETTLED_MS old (the clock stands still here): it is read again.
    expect((await walk(dir)).reads).toBe(1);
    // So is a directory put in the place of another (a new inode), with what it holds.
    rmSync(join(dir, 'work', 't-9'), { recursive: true });
    mkdirSync(join(dir, 'work', 't-9'));
    writeFileSync(join(dir, 'work', 't-9', 'big'), Buffer.alloc(128 * 1024, 1));
    const replaced = await walk(dir);
    expect(replaced.reads).toBe(3);
    expect(replaced.bytes).toBeGreaterThanOrEqual(added.bytes + 128 * 1024 - 8 * 1024);
  });

  it('are read again after LISTING_MAX_AGE_MS however unchanged they look', async () => {
    const dir = home(3);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + LISTING_SETTLED_MS + 1);
    expect((await walk(dir)).reads).toBe(5);
    expect((await walk(dir)).reads).toBe(0);
    vi.setSystemTime(Date.now() + LISTING_MAX_AGE_MS + 1);
    expect((await walk(dir)).reads).toBe(5);
  });
});

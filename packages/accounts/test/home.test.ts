import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SLICE_MS, Slices, copyTreeSliced, removeTreeSliced } from '../src/home.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warren-home-'));
  dirs.push(dir);
  return dir;
}

/** Spins the CPU for at least `ms` (a slice taken by other work). */
function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}

describe('Slices', () => {
  it('goes on at once within a slice and yields to the event loop once the slice is over', async () => {
    const slices = new Slices();
    expect(slices.next()).toBeUndefined();
    spin(SLICE_MS + 1);
    let ran = false;
    setImmediate(() => (ran = true));
    const wait = slices.next();
    expect(wait).toBeInstanceOf(Promise);
    await wait;
    expect(ran).toBe(true);
    // A new slice starts after the yield.
    expect(slices.next()).toBeUndefined();
  });
});

describe('removeTreeSliced', () => {
  it('removes a large tree while the event loop keeps running between slices', async () => {
    const root = join(tempDir(), 'home');
    for (let d = 0; d < 40; d++) {
      mkdirSync(join(root, 'work', `d${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 50; f++) writeFileSync(join(root, 'work', `d${d}`, f % 2 ? 'sub' : '.', `f${f}`), 'x');
    }
    let turns = 0;
    const ticker = setInterval(() => (turns += 1), 0);
    try {
      await removeTreeSliced(root);
    } finally {
      clearInterval(ticker);
    }
    expect(existsSync(root)).toBe(false);
    // 2,000 files and 120 directories take more than one slice: timers ran in between.
    expect(turns).toBeGreaterThan(0);
  });

  it('unlinks symlinks, FIFOs and sockets without following them, and accepts a missing path', async () => {
    const dir = tempDir();
    const root = join(dir, 'home');
    const outside = join(dir, 'outside');
    mkdirSync(join(outside, 'inner'), { recursive: true });
    writeFileSync(join(outside, 'inner', 'keep'), 'keep me');
    mkdirSync(join(root, 'a'), { recursive: true });
    symlinkSync(outside, join(root, 'a', 'dir-link'));
    symlinkSync(join(outside, 'inner', 'keep'), join(root, 'file-link'));
    symlinkSync(join(dir, 'nowhere'), join(root, 'dangling'));
    expect(spawnSync('mkfifo', [join(root, 'a', 'pipe')]).status, 'mkfifo (coreutils) is needed').toBe(0);
    await removeTreeSliced(root);
    expect(existsSync(root)).toBe(false);
    expect(readFileSync(join(outside, 'inner', 'keep'), 'utf8')).toBe('keep me');
    await removeTreeSliced(root);
    // A single file, and a symlink to a directory given as the path itself.
    writeFileSync(join(dir, 'one'), 'x');
    await removeTreeSliced(join(dir, 'one'));
    expect(existsSync(join(dir, 'one'))).toBe(false);
    symlinkSync(outside, join(dir, 'link'));
    await removeTreeSliced(join(dir, 'link'));
    expect(lstatSync(outside).isDirectory()).toBe(true);
    expect(readFileSync(join(outside, 'inner', 'keep'), 'utf8')).toBe('keep me');
  });
});

describe('copyTreeSliced', () => {
  it('lists every path it made, depth first, for the hand-over to the account', async () => {
    const dir = tempDir();
    const skel = join(dir, 'skel');
    mkdirSync(join(skel, 'bin'), { recursive: true });
    writeFileSync(join(skel, 'README.md'), 'hi');
    writeFileSync(join(skel, 'bin', 'tool'), '#!/bin/sh\n', { mode: 0o4755 });
    symlinkSync('README.md', join(skel, 'readme'));
    const target = join(dir, 'target');
    mkdirSync(target);
    const made: string[] = [];
    await copyTreeSliced(skel, target, made, new Slices());
    expect(made.sort()).toEqual([join(target, 'README.md'), join(target, 'bin'), join(target, 'bin', 'tool'), join(target, 'readme')].sort());
    expect(lstatSync(join(target, 'bin', 'tool')).mode & 0o7777).toBe(0o755);
    expect(lstatSync(join(target, 'readme')).isSymbolicLink()).toBe(true);
  });
});

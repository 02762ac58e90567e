import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { secureStateDir } from '../src/state-dir.js';

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warren-state-dir-'));
  made.push(dir);
  return dir;
}

describe('secureStateDir', () => {
  it('makes every file 0600 and every directory 0700, and leaves run/ as it is', async () => {
    const dir = stateDir();
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'warren.db'), '', { mode: 0o644 });
    mkdirSync(join(dir, 'nats', 'jetstream'), { recursive: true, mode: 0o755 });
    writeFileSync(join(dir, 'nats', 'jetstream', 'meta.inf'), '', { mode: 0o644 });
    mkdirSync(join(dir, 'run'), { mode: 0o755 });
    writeFileSync(join(dir, 'run', 'passwd'), '', { mode: 0o644 });
    expect(await secureStateDir(dir)).toBe(5);
    const mode = (path: string): number => lstatSync(join(dir, path)).mode & 0o7777;
    expect([mode(''), mode('warren.db'), mode('nats'), mode('nats/jetstream'), mode('nats/jetstream/meta.inf')]).toEqual([0o700, 0o600, 0o700, 0o700, 0o600]);
    expect([mode('run'), mode('run/passwd')]).toEqual([0o755, 0o644]);
    expect(await secureStateDir(dir)).toBe(0);
  });

  it('goes on past files and folders removed while it walks (a database reader closing removes -wal and -shm)', async () => {
    const dir = stateDir();
    for (let i = 0; i < 150; i += 1) writeFileSync(join(dir, `f${i}`), '', { mode: 0o644 });
    for (let i = 0; i < 20; i += 1) {
      mkdirSync(join(dir, `d${i}`), { mode: 0o755 });
      writeFileSync(join(dir, `d${i}`, 'x'), '', { mode: 0o644 });
    }
    // Once the walk has listed the folder (its first entry is private), remove a few of the
    // entries it has not reached yet between each of its awaits.
    const names = readdirSync(dir);
    const reached = (): boolean => names.some((name) => (lstatSync(join(dir, name)).mode & 0o777) !== 0o644 && (lstatSync(join(dir, name)).mode & 0o777) !== 0o755);
    let removed = 0;
    let walking = true;
    const churn = (): void => {
      if (removed > 0 || reached()) {
        const left = names.filter((name) => (lstatSync(join(dir, name), { throwIfNoEntry: false })?.mode ?? 0) & 0o044);
        for (const name of left.slice(-3)) {
          rmSync(join(dir, name), { recursive: true, force: true });
          removed += 1;
        }
      }
      if (walking) setImmediate(churn);
    };
    setImmediate(churn);
    const changed = secureStateDir(dir);
    await expect(changed).resolves.toBeGreaterThan(0);
    walking = false;
    expect(removed).toBeGreaterThan(0);
    for (const name of readdirSync(dir)) expect(lstatSync(join(dir, name)).mode & 0o777, name).toBe(name.startsWith('d') ? 0o700 : 0o600);
  });
});

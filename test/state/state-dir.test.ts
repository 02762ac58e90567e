import { chmodSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cleanUpAfterEach, makeTestLayout, requireMachine, shellTask, warren, type TestLayout } from '../support/cli.js';
import { asOtherUser } from './support.js';

const { layouts } = cleanUpAfterEach();

function layout(tasks: Record<string, string>): TestLayout {
  const made = makeTestLayout(tasks);
  layouts.push(made);
  // The layout is a 0700 temp dir: open it, so only the state directory's own modes protect it.
  chmodSync(made.dir, 0o755);
  return made;
}

beforeAll(() => requireMachine());

/** Every entry under `dir` except `run/` (bound into sandboxes), with its mode and kind. */
function modes(dir: string): { path: string; mode: number; dir: boolean }[] {
  const found: { path: string; mode: number; dir: boolean }[] = [];
  const walk = (current: string, top: boolean) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      // run/ and repos/ are bound into sandboxes (read-only for repos/): their modes are theirs; the
      // state directory itself (0700) keeps other users out of both on the host.
      if (top && (entry.name === 'run' || entry.name === 'repos')) continue;
      const path = join(current, entry.name);
      const info = lstatSync(path);
      if (entry.isDirectory()) {
        found.push({ path, mode: info.mode & 0o7777, dir: true });
        walk(path, false);
      } else if (entry.isFile()) {
        found.push({ path, mode: info.mode & 0o7777, dir: false });
      }
    }
  };
  walk(dir, true);
  return found;
}

/** Asserts that another uid can read nothing of the state dir, and that Warren's modes are private. */
function expectPrivate(stateDir: string): void {
  expect(lstatSync(stateDir).mode & 0o7777).toBe(0o700);
  const entries = modes(stateDir);
  expect(entries.map((e) => e.path)).toEqual(expect.arrayContaining([join(stateDir, 'warren.db'), join(stateDir, 'nats', 'nats-server.conf')]));
  for (const e of entries) expect({ path: e.path, mode: e.mode.toString(8) }).toEqual({ path: e.path, mode: e.dir ? '700' : '600' });
  expect(asOtherUser(['ls', stateDir]).status).not.toBe(0);
  for (const file of ['warren.db', 'warren.db-wal', 'nats/nats-server.conf']) {
    const read = asOtherUser(['cat', join(stateDir, file)]);
    expect(read.status, `${file} must not be readable`).not.toBe(0);
    expect(read.stderr).toMatch(/Permission denied/);
  }
}

describe('state directory permissions (attack case 70)', () => {
  it('keeps a new state directory private: 0700, every file Warren wrote 0600', async () => {
    const { args } = layout({ t1: shellTask('t1', 'echo ok') });
    const run = await warren(args('run', '--until-idle'));
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    const stateDir = args()[args().indexOf('--state-dir') + 1]!;
    expectPrivate(stateDir);
    // The log of the agent that ran t1 is there, and private too.
    expect(readdirSync(join(stateDir, 'logs')).length).toBeGreaterThan(0);
  });

  it('makes a state directory that existed with 0755 and 0644 files private at the next start', async () => {
    const { args } = layout({ t1: shellTask('t1', 'echo ok'), t2: shellTask('t2', 'echo ok') });
    const stateDir = args()[args().indexOf('--state-dir') + 1]!;
    const first = await warren(args('run', '--until-idle'));
    expect(first.code, first.stderr.slice(-3000)).toBe(0);
    // As an older Warren left it: world-readable.
    for (const e of modes(stateDir)) chmodSync(e.path, e.dir ? 0o755 : 0o644);
    chmodSync(stateDir, 0o755);
    expect(asOtherUser(['cat', join(stateDir, 'warren.db')]).status).toBe(0);
    const second = await warren(args('run', '--until-idle'));
    expect(second.code, second.stderr.slice(-3000)).toBe(0);
    expect(second.stderr).toMatch(/made it private/);
    expectPrivate(stateDir);
  });
});

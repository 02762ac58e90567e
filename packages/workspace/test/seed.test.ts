import { chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, type TempDir } from '@warren/testing';
import { seedHome, SeedError } from '@warren/workspace';

// An unused uid, as an agent's: the files must end up owned by it.
const uid = 60_000 + (process.pid % 1000);
const gid = uid;

const temps: TempDir[] = [];
afterEach(async () => {
  for (const temp of temps.splice(0)) await temp.close();
});

/** A temp dir with `home/` owned by the agent uid (0700) and `outside/` beside it. */
async function layout(): Promise<{ dir: string; home: string; outside: string }> {
  const temp = await makeTempDir('warren-seed-');
  temps.push(temp);
  const home = join(temp.path, 'home');
  const outside = join(temp.path, 'outside');
  mkdirSync(home, { mode: 0o700 });
  chownSync(home, uid, gid);
  mkdirSync(outside);
  return { dir: temp.path, home, outside };
}

describe('seedHome', () => {
  it('writes absent files and their directories owned by the agent, from content or a source file', async () => {
    const { dir, home } = await layout();
    const persona = join(dir, 'persona.md');
    writeFileSync(persona, 'You are careful.\n');
    const result = await seedHome({
      homeDir: home,
      uid,
      gid,
      files: [
        { path: 'AGENTS.md', content: '# Rules\n' },
        { path: 'persona/me.md', sourcePath: persona },
        { path: '.config/tool/bin/run.sh', content: new TextEncoder().encode('#!/bin/sh\n'), mode: 0o700 },
      ],
    });
    expect(result).toEqual({ written: ['AGENTS.md', 'persona/me.md', '.config/tool/bin/run.sh'], kept: [], refused: [] });
    expect(readFileSync(join(home, 'AGENTS.md'), 'utf8')).toBe('# Rules\n');
    expect(readFileSync(join(home, 'persona/me.md'), 'utf8')).toBe('You are careful.\n');
    const owners = ['AGENTS.md', 'persona', 'persona/me.md', '.config', '.config/tool', '.config/tool/bin', '.config/tool/bin/run.sh'].map((p) => {
      const info = lstatSync(join(home, p));
      return [p, info.uid, info.gid, (info.mode & 0o777).toString(8)];
    });
    expect(owners).toEqual([
      ['AGENTS.md', uid, gid, '600'],
      ['persona', uid, gid, '700'],
      ['persona/me.md', uid, gid, '600'],
      ['.config', uid, gid, '700'],
      ['.config/tool', uid, gid, '700'],
      ['.config/tool/bin', uid, gid, '700'],
      ['.config/tool/bin/run.sh', uid, gid, '700'],
    ]);
  });

  it('keeps a file the agent changed when seeding again, and writes a file added to the list', async () => {
    const { home } = await layout();
    const files = [
      { path: 'AGENTS.md', content: '# Rules\n' },
      { path: 'CLAUDE.md', content: '# Claude\n' },
    ];
    await seedHome({ homeDir: home, uid, gid, files });
    writeFileSync(join(home, 'AGENTS.md'), '# My own rules\n');
    const again = await seedHome({ homeDir: home, uid, gid, files: [...files, { path: 'notes/new.md', content: 'new\n' }] });
    expect(again).toEqual({ written: ['notes/new.md'], kept: ['AGENTS.md', 'CLAUDE.md'], refused: [] });
    expect(readFileSync(join(home, 'AGENTS.md'), 'utf8')).toBe('# My own rules\n');
  });

  it('refuses a file behind a symlink the agent planted, in a parent or at the file itself, and seeds the rest', async () => {
    const { home, outside } = await layout();
    symlinkSync(outside, join(home, '.config'));
    symlinkSync(join(outside, 'target.md'), join(home, 'AGENTS.md'));
    writeFileSync(join(home, 'persona'), 'a file where a directory should be\n');
    const result = await seedHome({
      homeDir: home,
      uid,
      gid,
      files: [
        { path: 'AGENTS.md', content: 'overwrite?\n' },
        { path: '.config/tool.json', content: '{}\n' },
        { path: 'persona/me.md', content: 'me\n' },
        { path: 'CLAUDE.md', content: '# Claude\n' },
      ],
    });
    expect(result).toEqual({
      written: ['CLAUDE.md'],
      kept: [],
      refused: [
        { path: 'AGENTS.md', reason: 'AGENTS.md is a symlink' },
        { path: '.config/tool.json', reason: '.config is a symlink' },
        { path: 'persona/me.md', reason: 'persona is not a directory' },
      ],
    });
    expect(readdirSync(outside)).toEqual([]);
    expect(lstatSync(join(home, 'AGENTS.md')).isSymbolicLink()).toBe(true);
  });

  it('refuses paths that leave the home, before writing anything', async () => {
    const { home } = await layout();
    for (const path of ['../escape.md', '/etc/passwd', 'a/../../b', 'a//b', './a', '']) {
      const error = await seedHome({ homeDir: home, uid, gid, files: [{ path: 'ok.md', content: 'ok\n' }, { path, content: 'x' }] }).catch((e: unknown) => e);
      expect(error, path).toBeInstanceOf(SeedError);
      expect(error, path).toMatchObject({ code: 'WARREN_SEED_INVALID' });
    }
    expect(existsSync(join(home, 'ok.md'))).toBe(false);
    await expect(seedHome({ homeDir: home, uid, gid, files: [{ path: 'a.md' }] })).rejects.toThrow('a.md: needs exactly one of content and sourcePath');
    await expect(seedHome({ homeDir: home, uid, gid, files: [{ path: 'a.md', sourcePath: join(home, 'nope') }] })).rejects.toThrow(/^a\.md: cannot read sourcePath/);
    await expect(seedHome({ homeDir: home, uid: 0, gid, files: [] })).rejects.toThrow('uid 0 must be an integer in 1..4294967294');
  });

  it('refuses a home that is a symlink', async () => {
    const { dir, outside } = await layout();
    const link = join(dir, 'link-home');
    symlinkSync(outside, link);
    await expect(seedHome({ homeDir: link, uid, gid, files: [{ path: 'AGENTS.md', content: 'x' }] })).rejects.toMatchObject({
      code: 'WARREN_SEED_INVALID',
      message: `${link}: the home must be an existing directory (symlinks are refused)`,
    });
    expect(readdirSync(outside)).toEqual([]);
  });
});

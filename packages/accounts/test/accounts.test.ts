import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '@warren/store';
import type { SqliteDatabase } from '@warren/store';
import { AccountError, AccountExistsError, AccountRangeError, openAccounts } from '@warren/accounts';
import type { OpenAccountsOptions } from '@warren/accounts';

const UID_MIN = 1_900_000_000;
const dirs: string[] = [];
const dbs: SqliteDatabase[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Env {
  dir: string;
  dbPath: string;
  homeRoot: string;
  hostFiles: Pick<OpenAccountsOptions, 'hostPasswd' | 'hostGroup' | 'hostSubuid' | 'hostSubgid'>;
}

/** A temp dir (traversable by other uids) with a state db path, a homes root and fake host id files. */
function env(): Env {
  const dir = mkdtempSync(join(tmpdir(), 'warren-accounts-'));
  dirs.push(dir);
  chmodSync(dir, 0o755);
  const hostPasswd = join(dir, 'passwd');
  const hostGroup = join(dir, 'group');
  const hostSubuid = join(dir, 'subuid');
  const hostSubgid = join(dir, 'subgid');
  writeFileSync(hostPasswd, 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  writeFileSync(hostGroup, 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(hostSubuid, 'alice:100000:65536\n');
  writeFileSync(hostSubgid, 'alice:100000:65536\n');
  return { dir, dbPath: join(dir, 'state.db'), homeRoot: join(dir, 'home'), hostFiles: { hostPasswd, hostGroup, hostSubuid, hostSubgid } };
}

function open(e: Env, options: Partial<OpenAccountsOptions> = {}) {
  const db = openDatabase(e.dbPath);
  dbs.push(db);
  return { db, accounts: openAccounts(db, { homeRoot: e.homeRoot, ...e.hostFiles, ...options }) };
}

function requireSetpriv(): void {
  if (!existsSync('/usr/bin/setpriv')) {
    throw new Error('setpriv is missing: install util-linux (apt-get install util-linux)');
  }
}
/** Runs `cat path` as uid:gid with no supplementary groups and no capabilities. */
function catAs(uid: number, path: string) {
  return spawnSync('/usr/bin/setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '/bin/cat', path], {
    encoding: 'utf8',
  });
}

describe('allocation', () => {
  it('hands out the lowest free uids with gid = uid and homes under homeRoot/template/name', async () => {
    const e = env();
    const { accounts } = open(e, { clock: () => 1234 });
    const a = await accounts.create({ name: 'shell-1', template: 'shell' });
    const b = await accounts.create({ name: 'shell-2', template: 'shell', groups: ['warren'] });
    const c = await accounts.create({ name: 'reporter-1', template: 'reporter' });
    expect(a).toEqual({
      name: 'shell-1',
      template: 'shell',
      uid: UID_MIN,
      gid: UID_MIN,
      groups: [],
      home: join(e.homeRoot, 'shell', 'shell-1'),
      createdMs: 1234,
      shell: '/bin/sh',
    });
    expect([b.uid, b.gid, b.groups]).toEqual([UID_MIN + 1, UID_MIN + 1, ['warren']]);
    expect(c.home).toBe(join(e.homeRoot, 'reporter', 'reporter-1'));
    expect(accounts.list().map((x) => [x.name, x.uid])).toEqual([
      ['shell-1', UID_MIN],
      ['shell-2', UID_MIN + 1],
      ['reporter-1', UID_MIN + 2],
    ]);
    expect(accounts.get('shell-2')).toEqual(b);
    expect(accounts.get('nobody')).toBeUndefined();
    expect(accounts.passwdLine(a)).toBe(`shell-1:x:${UID_MIN}:${UID_MIN}:Warren agent (shell):${a.home}:/bin/sh`);
    expect(accounts.passwdLine(a, { home: '/home/shell-1' })).toBe(
      `shell-1:x:${UID_MIN}:${UID_MIN}:Warren agent (shell):/home/shell-1:/bin/sh`,
    );
    expect(() => accounts.passwdLine(a, { home: '/a:b' })).toThrow(AccountError);
    expect(accounts.groupLine(a)).toBe(`shell-1:x:${UID_MIN}:`);
  });

  it('is idempotent by name with the same template and refuses another template', async () => {
    const { accounts } = open(env());
    const first = await accounts.create({ name: 'shell-1', template: 'shell' });
    expect(await accounts.create({ name: 'shell-1', template: 'shell' })).toEqual(first);
    const error = await accounts.create({ name: 'shell-1', template: 'reporter' }).catch((x: unknown) => x);
    expect(error).toBeInstanceOf(AccountExistsError);
    expect(error).toMatchObject({ code: 'WARREN_ACCOUNT', account: 'shell-1', existingTemplate: 'shell' });
    expect(accounts.list()).toHaveLength(1);
  });

  it('gives distinct uids to concurrent creates', async () => {
    const { accounts } = open(env());
    const made = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((n) => accounts.create({ name: `w-${n}`, template: 'shell' })));
    expect(new Set(made.map((a) => a.uid)).size).toBe(5);
    expect(Math.max(...made.map((a) => a.uid))).toBe(UID_MIN + 4);
  });

  it('rejects invalid user, template and group names, naming them', async () => {
    const { accounts } = open(env());
    const cases = [
      { name: 'Shell-1', template: 'shell' },
      { name: '1shell', template: 'shell' },
      { name: 'a'.repeat(33), template: 'shell' },
      { name: '../etc', template: 'shell' },
      { name: '', template: 'shell' },
      { name: 'ok', template: '..' },
      { name: 'ok', template: 'shell', groups: ['wheel:x'] },
    ];
    for (const input of cases) {
      const error = await accounts.create(input).catch((x: unknown) => x);
      expect(error).toBeInstanceOf(AccountError);
      expect((error as AccountError).message).toMatch(/^invalid (account|template|group) name/);
    }
    expect(await accounts.create({ name: `a${'b'.repeat(31)}`, template: 'shell' })).toMatchObject({ uid: UID_MIN });
    expect(accounts.list()).toHaveLength(1);
  });

  it('gives the names of every account, sorted and joined, as one key', async () => {
    const { accounts } = open(env());
    expect(accounts.namesKey()).toBe('');
    await accounts.create({ name: 'shell-2', template: 'shell' });
    await accounts.create({ name: 'browser-1', template: 'browser' });
    expect(accounts.namesKey()).toBe('browser-1,shell-2');
    await accounts.remove('shell-2');
    expect(accounts.namesKey()).toBe('browser-1');
  });

  it('reuses the uid of a removed account', async () => {
    const { accounts } = open(env());
    for (const n of [1, 2, 3]) await accounts.create({ name: `shell-${n}`, template: 'shell' });
    await accounts.remove('shell-2');
    await accounts.remove('shell-2'); // a second remove is a no-op
    expect(accounts.get('shell-2')).toBeUndefined();
    expect((await accounts.create({ name: 'shell-4', template: 'shell' })).uid).toBe(UID_MIN + 1);
    expect((await accounts.create({ name: 'shell-5', template: 'shell' })).uid).toBe(UID_MIN + 3);
  });

  it('reports an exhausted range and leaves nothing behind', async () => {
    const e = env();
    const { accounts } = open(e, { uidMin: UID_MIN, uidMax: UID_MIN + 1 });
    await accounts.create({ name: 'a', template: 't' });
    await accounts.create({ name: 'b', template: 't' });
    await expect(accounts.create({ name: 'c', template: 't' })).rejects.toThrow(/no free uid left in the agent id range/);
    expect(readdirSync(join(e.homeRoot, 't')).sort()).toEqual(['a', 'b']);
  });
});

describe('range checks at open', () => {
  const openWith = (e: Env, options: Partial<OpenAccountsOptions>) => () => open(e, options);

  it('names a host user whose uid or gid is in the range', () => {
    const e = env();
    writeFileSync(e.hostFiles.hostPasswd!, `root:x:0:0::/root:/bin/sh\n\n# comment\nintruder:x:${UID_MIN + 5}:100::/x:/bin/sh\n`);
    expect(openWith(e, {})).toThrow(AccountRangeError);
    expect(openWith(e, {})).toThrow(
      `${e.hostFiles.hostPasswd}:4: user 'intruder' has uid ${UID_MIN + 5}, inside the agent id range ${UID_MIN}-1900999999`,
    );
    const error = (() => {
      try {
        open(e);
      } catch (x) {
        return x;
      }
      return undefined;
    })();
    expect(error).toMatchObject({ code: 'WARREN_ACCOUNT', file: e.hostFiles.hostPasswd, line: 4, entry: 'intruder' });
    // a range that avoids the user opens
    expect(() => open(e, { uidMin: UID_MIN + 6 })).not.toThrow();
    writeFileSync(e.hostFiles.hostPasswd!, `odd:x:100:${UID_MIN}::/x:/bin/sh\n`);
    expect(openWith(e, {})).toThrow(/user 'odd' has gid 1900000000/);
  });

  it('names a host group whose gid is in the range', () => {
    const e = env();
    writeFileSync(e.hostFiles.hostGroup!, `root:x:0:\nagents:x:${UID_MIN + 999_999}:bob\n`);
    expect(openWith(e, {})).toThrow(`${e.hostFiles.hostGroup}:2: group 'agents' has gid 1900999999`);
  });

  it('names subordinate uid and gid ranges that overlap', () => {
    const e = env();
    writeFileSync(e.hostFiles.hostSubuid!, `alice:100000:65536\nbob:${UID_MIN - 10}:11\n`);
    expect(openWith(e, {})).toThrow(
      `${e.hostFiles.hostSubuid}:2: subordinate ids of 'bob' (1899999990-1900000000) overlap the agent id range`,
    );
    writeFileSync(e.hostFiles.hostSubuid!, `bob:${UID_MIN - 10}:10\n`); // ends just below: fine
    expect(() => open(e)).not.toThrow();
    writeFileSync(e.hostFiles.hostSubgid!, `carol:1800000000:200000000\n`); // covers the whole range
    expect(openWith(e, {})).toThrow(/subgid:1: subordinate ids of 'carol'/);
  });

  it('accepts missing subuid/subgid files and checks the real host files by default', () => {
    const e = env();
    rmSync(e.hostFiles.hostSubuid!);
    rmSync(e.hostFiles.hostSubgid!);
    expect(() => open(e)).not.toThrow();
    const db = openDatabase(join(e.dir, 'host.db'));
    dbs.push(db);
    expect(() => openAccounts(db, { homeRoot: e.homeRoot })).not.toThrow();
  });

  it('refuses an invalid range', () => {
    const e = env();
    expect(openWith(e, { uidMin: 0 })).toThrow(AccountRangeError);
    expect(openWith(e, { uidMin: 10, uidMax: 9 })).toThrow(/invalid agent id range/);
    expect(openWith(e, { uidMax: 2 ** 31 })).toThrow(/invalid agent id range/);
  });
});

describe('homes and credentials', () => {
  it('makes the home owned by the account, mode 0700, with a 0600 credential whose hash only is stored', async () => {
    const e = env();
    const { db, accounts } = open(e);
    const a = await accounts.create({ name: 'shell-1', template: 'shell' });
    const home = statSync(a.home);
    expect([home.uid, home.gid, home.mode & 0o7777]).toEqual([a.uid, a.gid, 0o700]);
    const dot = lstatSync(join(a.home, '.warren'));
    expect([dot.isDirectory(), dot.uid, dot.gid, dot.mode & 0o7777]).toEqual([true, a.uid, a.gid, 0o700]);
    const credPath = join(a.home, '.warren', 'credentials');
    const cred = lstatSync(credPath);
    expect([cred.isFile(), cred.uid, cred.gid, cred.mode & 0o7777]).toEqual([true, a.uid, a.gid, 0o600]);
    const secret = readFileSync(credPath, 'utf8');
    expect(secret).toMatch(/^[0-9a-f]{64}$/);
    expect(accounts.verifyCredential('shell-1', secret)).toBe(true);
    expect(accounts.verifyCredential('shell-1', secret.replace(/.$/, (c) => (c === '0' ? '1' : '0')))).toBe(false);
    expect(accounts.verifyCredential('shell-1', '')).toBe(false);
    expect(accounts.verifyCredential('shell-2', secret)).toBe(false);
    const row = db.prepare('SELECT * FROM accounts WHERE name = ?').get('shell-1') as Record<string, unknown>;
    expect(row.credential_sha256).toBe(createHash('sha256').update(secret).digest('hex'));
    expect(Object.values(row).some((v) => String(v).includes(secret))).toBe(false);
    // The template directory stays root's, readable but not writable by agents.
    const templateDir = statSync(join(e.homeRoot, 'shell'));
    expect([templateDir.uid, templateDir.mode & 0o777]).toEqual([0, 0o755]);
  });

  it('lets the owner read the credential and no other uid', async () => {
    requireSetpriv();
    const { accounts } = open(env());
    const a = await accounts.create({ name: 'shell-1', template: 'shell' });
    const b = await accounts.create({ name: 'shell-2', template: 'shell' });
    const credPath = join(a.home, '.warren', 'credentials');
    const owner = catAs(a.uid, credPath);
    expect(owner.status, owner.stderr).toBe(0);
    expect(owner.stdout).toBe(readFileSync(credPath, 'utf8'));
    const other = catAs(b.uid, credPath);
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/Permission denied/);
    const nobody = catAs(65534, credPath);
    expect(nobody.status).not.toBe(0);
  });

  it('copies the skeleton, owned by the account, without set-id bits and keeping symlinks', async () => {
    const e = env();
    const skel = join(e.dir, 'skel');
    mkdirSync(join(skel, 'work', 'deep'), { recursive: true });
    writeFileSync(join(skel, '.profile'), 'export PS1=agent\n');
    writeFileSync(join(skel, 'work', 'deep', 'notes.md'), '# notes\n');
    writeFileSync(join(skel, 'tool'), '#!/bin/sh\n');
    chmodSync(join(skel, 'tool'), 0o4755);
    symlinkSync('/etc/hostname', join(skel, 'hostname-link'));
    chmodSync(join(skel, 'work'), 0o750);
    const { accounts } = open(e, { skeletonDir: skel });
    const a = await accounts.create({ name: 'shell-1', template: 'shell' });
    expect(readdirSync(a.home).sort()).toEqual(['.profile', '.warren', 'hostname-link', 'tool', 'work']);
    expect(readFileSync(join(a.home, '.profile'), 'utf8')).toBe('export PS1=agent\n');
    expect(readFileSync(join(a.home, 'work', 'deep', 'notes.md'), 'utf8')).toBe('# notes\n');
    expect(statSync(join(a.home, 'tool')).mode & 0o7777).toBe(0o755);
    expect(statSync(join(a.home, 'work')).mode & 0o7777).toBe(0o750);
    expect(readlinkSync(join(a.home, 'hostname-link'))).toBe('/etc/hostname');
    for (const path of ['.profile', 'work', 'work/deep', 'work/deep/notes.md', 'tool', 'hostname-link']) {
      const st = lstatSync(join(a.home, path));
      expect([path, st.uid, st.gid]).toEqual([path, a.uid, a.gid]);
    }
    // lchown changed the link, not the file it points to
    expect(statSync('/etc/hostname').uid).toBe(0);
  });

  it('never writes the credential through a .warren symlink in the skeleton', async () => {
    const e = env();
    const skel = join(e.dir, 'skel');
    const outside = join(e.dir, 'outside');
    mkdirSync(skel);
    mkdirSync(outside);
    symlinkSync(outside, join(skel, '.warren'));
    const { accounts } = open(e, { skeletonDir: skel });
    const a = await accounts.create({ name: 'shell-1', template: 'shell' });
    expect(lstatSync(join(a.home, '.warren')).isDirectory()).toBe(true);
    expect(readdirSync(outside)).toEqual([]);
    expect(statSync(outside).uid).toBe(0);
  });

  it('keeps no row and no home when the home cannot be made', async () => {
    const e = env();
    const skel = join(e.dir, 'skel');
    mkdirSync(skel);
    writeFileSync(join(skel, 'ok'), 'x');
    const fifo = spawnSync('mkfifo', [join(skel, 'pipe')]);
    expect(fifo.status, 'mkfifo (coreutils) is needed').toBe(0);
    const { accounts } = open(e, { skeletonDir: skel });
    const error = await accounts.create({ name: 'shell-1', template: 'shell' }).catch((x: unknown) => x);
    expect(error).toBeInstanceOf(AccountError);
    expect((error as Error).message).toMatch(/cannot create account 'shell-1' \(uid 1900000000.*pipe is not a regular file/);
    expect(accounts.get('shell-1')).toBeUndefined();
    expect(readdirSync(join(e.homeRoot, 'shell'))).toEqual([]);
    rmSync(join(skel, 'pipe'));
    expect((await accounts.create({ name: 'shell-1', template: 'shell' })).uid).toBe(UID_MIN);
  });

  it('replaces a stale directory left at the home path', async () => {
    const e = env();
    mkdirSync(join(e.homeRoot, 'shell', 'shell-1', 'old'), { recursive: true });
    writeFileSync(join(e.homeRoot, 'shell', 'shell-1', 'old', 'junk'), 'x');
    const { accounts } = open(e);
    const a = await accounts.create({ name: 'shell-1', template: 'shell' });
    expect(readdirSync(a.home)).toEqual(['.warren']);
  });
});

describe('remove', () => {
  it('deletes the home without following symlinks planted in it', async () => {
    const e = env();
    const { accounts } = open(e);
    const a = await accounts.create({ name: 'shell-1', template: 'shell' });
    const outsideFile = join(e.dir, 'precious.txt');
    const outsideDir = join(e.dir, 'precious-dir');
    writeFileSync(outsideFile, 'keep me');
    mkdirSync(outsideDir);
    writeFileSync(join(outsideDir, 'inner.txt'), 'keep me too');
    mkdirSync(join(a.home, 'work'));
    symlinkSync(outsideFile, join(a.home, 'link-to-file'));
    symlinkSync(outsideDir, join(a.home, 'work', 'link-to-dir'));
    await accounts.remove('shell-1');
    expect(existsSync(a.home)).toBe(false);
    expect(accounts.get('shell-1')).toBeUndefined();
    expect(readFileSync(outsideFile, 'utf8')).toBe('keep me');
    expect(readFileSync(join(outsideDir, 'inner.txt'), 'utf8')).toBe('keep me too');
  });

  it("with commitWith, deletes the row inside the caller's transaction, with the caller's rows, once the home is gone", async () => {
    const e = env();
    const { db, accounts } = open(e);
    db.exec('CREATE TABLE gone (name TEXT NOT NULL) STRICT');
    const a = await accounts.create({ name: 'shell-1', template: 'shell' });
    // A second connection sees only what is committed.
    const reader = openDatabase(e.dbPath, { readonly: true });
    dbs.push(reader);
    const seenByReader = () => reader.prepare('SELECT name FROM accounts').all().length;
    let calls = 0;
    let homeLeftAtCommit = true;
    let readerSawAccountInside = -1;
    await accounts.remove('shell-1', {
      commitWith: (deleteRow) => {
        calls += 1;
        homeLeftAtCommit = existsSync(a.home);
        db.transaction(() => {
          deleteRow();
          db.prepare('INSERT INTO gone (name) VALUES (?)').run('shell-1');
          expect(accounts.get('shell-1')).toBeUndefined();
          readerSawAccountInside = seenByReader();
        })();
      },
    });
    expect(calls).toBe(1);
    expect(homeLeftAtCommit).toBe(false);
    // Inside the caller's transaction the deletion was not yet committed: one commit for both rows.
    expect(readerSawAccountInside).toBe(1);
    expect(seenByReader()).toBe(0);
    expect(reader.prepare('SELECT name FROM gone').all()).toEqual([{ name: 'shell-1' }]);
  });

  it('with commitWith, keeps the row when the caller\'s transaction fails, and calls it for a name that does not exist', async () => {
    const { db, accounts } = open(env());
    await accounts.create({ name: 'shell-1', template: 'shell' });
    const failing = accounts.remove('shell-1', {
      commitWith: (deleteRow) =>
        db.transaction(() => {
          deleteRow();
          throw new Error('the caller failed');
        })(),
    });
    await expect(failing).rejects.toThrow('the caller failed');
    expect(accounts.get('shell-1')?.name).toBe('shell-1');
    let called = 0;
    await accounts.remove('nobody', { commitWith: (deleteRow) => (deleteRow(), (called += 1)) });
    expect(called).toBe(1);
  });
});

describe('persistence', () => {
  it('keeps accounts and credentials across reopening the database', async () => {
    const e = env();
    let { db, accounts } = open(e);
    const a = await accounts.create({ name: 'shell-1', template: 'shell', groups: ['warren'] });
    await accounts.create({ name: 'shell-2', template: 'shell' });
    db.close();
    ({ db, accounts } = open(e));
    expect(accounts.get('shell-1')).toEqual(a);
    expect(accounts.list().map((x) => x.name)).toEqual(['shell-1', 'shell-2']);
    const secret = readFileSync(join(a.home, '.warren', 'credentials'), 'utf8');
    expect(accounts.verifyCredential('shell-1', secret)).toBe(true);
    expect((await accounts.create({ name: 'shell-3', template: 'shell' })).uid).toBe(UID_MIN + 2);
  });
});

describe('commit level', () => {
  /**
   * Records every `synchronous` level the store sets on `db` (0 to 3; NORMAL is 1, FULL 2), through
   * `db.pragma` or a prepared `PRAGMA synchronous = N` statement.
   */
  function levels(db: SqliteDatabase): number[] {
    const seen: number[] = [];
    const named: Record<string, number> = { OFF: 0, NORMAL: 1, FULL: 2, EXTRA: 3 };
    const record = (value: string) => seen.push(named[value.toUpperCase()] ?? Number(value));
    const pragma = db.pragma.bind(db);
    db.pragma = ((source: string, options?: { simple?: boolean }) => {
      const set = /^synchronous\s*=\s*(\w+)/i.exec(source);
      if (set) record(set[1]!);
      return pragma(source, options);
    });
    const prepare = db.prepare.bind(db);
    db.prepare = ((source: string) => {
      const statement = prepare(source);
      const set = /^PRAGMA\s+synchronous\s*=\s*(\w+)/i.exec(source);
      if (!set) return statement;
      const run = statement.run.bind(statement);
      statement.run = ((...args: unknown[]) => (record(set[1]!), run(...args)));
      return statement;
    }) as typeof db.prepare;
    return seen;
  }

  it('commits creation and removal at the connection level by default', async () => {
    const { db, accounts } = open(env());
    const seen = levels(db);
    await accounts.create({ name: 'shell-1', template: 'shell' });
    await accounts.remove('shell-1');
    expect(seen).toEqual([]);
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
  });

  it('with durableCommits false, commits creation and removal at NORMAL and restores FULL', async () => {
    const { db, accounts } = open(env(), { durableCommits: false });
    const seen = levels(db);
    const a = await accounts.create({ name: 'shell-1', template: 'shell' });
    expect(accounts.get('shell-1')?.uid).toBe(a.uid);
    expect(existsSync(a.home)).toBe(true);
    expect(seen).toEqual([1, 2]);
    await accounts.remove('shell-1');
    expect(accounts.get('shell-1')).toBeUndefined();
    expect(existsSync(a.home)).toBe(false);
    expect(seen).toEqual([1, 2, 1, 2]);
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
  });
});

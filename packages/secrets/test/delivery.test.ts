import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTempDir, type TempDir } from '@warren/testing';
import { deliverSecretFiles, secretEnv, SecretDeliveryError, SecretError } from '@warren/secrets';

// Two uids no account holds: file ownership needs no account, and setpriv switches to a bare uid.
const A = { uid: 61501, gid: 61501 };
const B = { uid: 61502, gid: 61502 };

/** A root others may traverse (0755) with a home for each of A and B, 0700 and owned by it, as Warren makes homes. */
async function homes(): Promise<{ dir: TempDir; homeA: string; homeB: string; outside: string }> {
  const dir = await makeTempDir('warren-secret-files-');
  chmodSync(dir.path, 0o755);
  const make = (name: string, who: { uid: number; gid: number }) => {
    const home = join(dir.path, name);
    mkdirSync(home, { mode: 0o700 });
    chownSync(home, who.uid, who.gid);
    return home;
  };
  const outside = join(dir.path, 'outside');
  mkdirSync(outside, { mode: 0o755 });
  return { dir, homeA: make('a', A), homeB: make('b', B), outside };
}

/** `cat path` as `who` (no supplementary groups). */
function catAs(who: { uid: number; gid: number }, path: string) {
  const run = spawnSync('setpriv', ['--reuid', String(who.uid), '--regid', String(who.gid), '--clear-groups', 'cat', path], { encoding: 'utf8', timeout: 30_000 });
  if (run.error) throw run.error;
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

function thrown<T extends Error>(fn: () => unknown, type: new (...args: never[]) => T): T {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(type);
    return error as T;
  }
  throw new Error('expected an error');
}

describe('deliverSecretFiles', () => {
  it('writes files only their agent reads: 0400 in a 0500 directory it owns; another uid gets EACCES', async () => {
    const { dir, homeA, homeB } = await homes();
    await using _ = dir;
    const delivery = deliverSecretFiles({ homeDir: homeA, ...A, secrets: [{ name: 'GH_TOKEN', value: 'ghp-a-value' }, { name: 'NPM_TOKEN', value: 'npm-a\nline 2' }] });
    expect(delivery).toEqual({ dir: join(homeA, '.warren', 'secrets'), written: ['GH_TOKEN', 'NPM_TOKEN'], removed: [] });
    deliverSecretFiles({ homeDir: homeB, ...B, secrets: [{ name: 'GH_TOKEN', value: 'ghp-b-value' }] });

    const file = join(homeA, '.warren', 'secrets', 'GH_TOKEN');
    const stat = (p: string) => {
      const s = lstatSync(p);
      return { uid: s.uid, gid: s.gid, mode: s.mode & 0o7777, dir: s.isDirectory() };
    };
    expect(stat(join(homeA, '.warren'))).toEqual({ ...A, mode: 0o700, dir: true });
    expect(stat(join(homeA, '.warren', 'secrets'))).toEqual({ ...A, mode: 0o500, dir: true });
    expect(stat(file)).toEqual({ ...A, mode: 0o400, dir: false });
    expect(readdirSync(join(homeA, '.warren', 'secrets')).sort()).toEqual(['GH_TOKEN', 'NPM_TOKEN']);

    expect(catAs(A, file)).toMatchObject({ status: 0, stdout: 'ghp-a-value' });
    expect(catAs(A, join(homeA, '.warren', 'secrets', 'NPM_TOKEN')).stdout).toBe('npm-a\nline 2');
    const other = catAs(B, file);
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/Permission denied/);
    expect(other.stdout).toBe('');
    expect(catAs(B, join(homeB, '.warren', 'secrets', 'GH_TOKEN')).stdout).toBe('ghp-b-value');

    // Even were A's home open to all, the file's own mode keeps B out.
    chmodSync(homeA, 0o755);
    chmodSync(join(homeA, '.warren'), 0o755);
    chmodSync(join(homeA, '.warren', 'secrets'), 0o755);
    expect(catAs(B, file).stderr).toMatch(/Permission denied/);
  });

  it('a second delivery replaces values, removes files of secrets gone and leftover temp files, and keeps other files of the agent', async () => {
    const { dir, homeA } = await homes();
    await using _ = dir;
    deliverSecretFiles({ homeDir: homeA, ...A, secrets: [{ name: 'ONE', value: '1' }, { name: 'TWO', value: '2' }] });
    const secretsDir = join(homeA, '.warren', 'secrets');
    chmodSync(secretsDir, 0o700);
    writeFileSync(join(secretsDir, '.tmp-0123456789abcdef'), 'left by a crash');
    writeFileSync(join(secretsDir, 'notes.txt'), 'the agent keeps this');
    const again = deliverSecretFiles({ homeDir: homeA, ...A, secrets: [{ name: 'TWO', value: '2b' }, { name: 'THREE', value: '3' }] });
    expect(again).toMatchObject({ written: ['THREE', 'TWO'], removed: ['ONE'] });
    expect(readdirSync(secretsDir).sort()).toEqual(['THREE', 'TWO', 'notes.txt']);
    expect(readFileSync(join(secretsDir, 'TWO'), 'utf8')).toBe('2b');
    expect(statSync(secretsDir).mode & 0o777).toBe(0o500);

    expect(deliverSecretFiles({ homeDir: homeA, ...A, secrets: [] })).toMatchObject({ written: [], removed: ['THREE', 'TWO'] });
    expect(readdirSync(secretsDir)).toEqual(['notes.txt']);
  });

  it('with no secrets and no .warren/secrets, makes nothing', async () => {
    const { dir, homeA } = await homes();
    await using _ = dir;
    expect(deliverSecretFiles({ homeDir: homeA, ...A, secrets: [] })).toMatchObject({ written: [], removed: [] });
    expect(existsSync(join(homeA, '.warren'))).toBe(false);
  });

  it('refuses a symlinked .warren, writing nothing where it points', async () => {
    const { dir, homeA, outside } = await homes();
    await using _ = dir;
    symlinkSync(outside, join(homeA, '.warren'));
    const error = thrown(() => deliverSecretFiles({ homeDir: homeA, ...A, secrets: [{ name: 'K', value: 'v' }] }), SecretDeliveryError);
    expect(error.code).toBe('WARREN_SECRET_DELIVERY');
    expect(error.message).toBe(`${join(homeA, '.warren')}: is a symlink, not a directory: refused (only a real directory is used)`);
    expect(readdirSync(outside)).toEqual([]);
  });

  it('refuses a symlinked .warren/secrets, writing nothing where it points', async () => {
    const { dir, homeA, outside } = await homes();
    await using _ = dir;
    mkdirSync(join(homeA, '.warren'), { mode: 0o700 });
    chownSync(join(homeA, '.warren'), A.uid, A.gid);
    symlinkSync(outside, join(homeA, '.warren', 'secrets'));
    const error = thrown(() => deliverSecretFiles({ homeDir: homeA, ...A, secrets: [{ name: 'K', value: 'v' }] }), SecretDeliveryError);
    expect(error.message).toMatch(/\.warren\/secrets: is a symlink, not a directory: refused/);
    expect(readdirSync(outside)).toEqual([]);
    expect(statSync(outside).uid).toBe(0);
  });

  it('a symlink planted at a secret file name is replaced, its target untouched', async () => {
    const { dir, homeA, outside } = await homes();
    await using _ = dir;
    deliverSecretFiles({ homeDir: homeA, ...A, secrets: [{ name: 'K', value: 'first' }] });
    const victim = join(outside, 'passwd');
    writeFileSync(victim, 'root:x:0:0\n', { mode: 0o644 });
    const secretsDir = join(homeA, '.warren', 'secrets');
    chmodSync(secretsDir, 0o700);
    symlinkSync(victim, join(secretsDir, 'NEW'));
    deliverSecretFiles({ homeDir: homeA, ...A, secrets: [{ name: 'K', value: 'first' }, { name: 'NEW', value: 'second' }] });
    expect(readFileSync(victim, 'utf8')).toBe('root:x:0:0\n');
    expect(lstatSync(victim)).toMatchObject({ uid: 0, mode: 0o100644 });
    expect(lstatSync(join(secretsDir, 'NEW')).isFile()).toBe(true);
    expect(readFileSync(join(secretsDir, 'NEW'), 'utf8')).toBe('second');
  });

  it('refuses a gateway-only secret before writing anything', async () => {
    const { dir, homeA } = await homes();
    await using _ = dir;
    const error = thrown(
      () => deliverSecretFiles({ homeDir: homeA, ...A, secrets: [{ name: 'OK', value: 'v' }, { name: 'OPENAI_API_KEY', value: 'sk', gateway: true }] }),
      SecretError,
    );
    expect(error.message).toBe('secret OPENAI_API_KEY is for the gateway only; it is never delivered to an agent');
    expect(existsSync(join(homeA, '.warren'))).toBe(false);
  });
});

describe('secretEnv', () => {
  const secrets = [
    { name: 'GH_TOKEN', value: 'ghp' },
    { name: 'OPENAI_API_KEY', value: 'sk', gateway: true },
  ];

  it('maps the variables a template names to the agent secrets', () => {
    expect(secretEnv(secrets, { GITHUB_TOKEN: 'GH_TOKEN', GH_TOKEN: 'GH_TOKEN' })).toEqual({ GITHUB_TOKEN: 'ghp', GH_TOKEN: 'ghp' });
    expect(secretEnv(secrets, {})).toEqual({});
  });

  it('refuses a missing secret, a gateway-only one and bad names', () => {
    expect(thrown(() => secretEnv(secrets, { X: 'NOPE' }), SecretError)).toMatchObject({
      code: 'WARREN_SECRET_MISSING',
      message: 'environment variable X names secret NOPE, which is not set for this agent or its template (warren secret set)',
    });
    expect(thrown(() => secretEnv(secrets, { OPENAI_API_KEY: 'OPENAI_API_KEY' }), SecretError).message).toMatch(/for the gateway only/);
    expect(thrown(() => secretEnv(secrets, { 'BAD-NAME': 'GH_TOKEN' }), SecretError).code).toBe('WARREN_SECRET_INVALID');
    expect(thrown(() => secretEnv(secrets, { X: 'gh_token' }), SecretError).code).toBe('WARREN_SECRET_INVALID');
  });
});

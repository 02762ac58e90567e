import { chmodSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import { makeTempDir } from '@warren/testing';
import * as secrets from '@warren/secrets';
import { openSecretStore, parseSecretTarget, secretsKeyPath, SecretDecryptError, SecretError, SecretKeyError, type SecretStore } from '@warren/secrets';

/** A value no other bytes of a database would hold by chance. */
const marker = () => `sk-test-${randomBytes(12).toString('hex')}`;

/** Runs `fn` with a store on a fresh database file and its key file in a temp dir. */
async function withStore(fn: (s: { store: SecretStore; db: SqliteDatabase; dir: string; keyPath: string; dbPath: string }) => void | Promise<void>): Promise<void> {
  await using dir = await makeTempDir('warren-secrets-');
  const dbPath = `${dir.path}/warren.db`;
  const keyPath = `${dir.path}/secrets.key`;
  const db = openDatabase(dbPath);
  try {
    await fn({ store: openSecretStore(db, { keyPath }), db, dir: dir.path, keyPath, dbPath });
  } finally {
    db.close();
  }
}

/** Expects `fn` to throw an error of class `type` and returns it. */
function thrown<T extends Error>(fn: () => unknown, type: new (...args: never[]) => T): T {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(type);
    return error as T;
  }
  throw new Error('expected an error');
}

describe('targets and names', () => {
  it('parses a template and an agent, and refuses anything else', () => {
    expect(parseSecretTarget('coder')).toEqual({ kind: 'template', name: 'coder' });
    expect(parseSecretTarget('coder-2')).toEqual({ kind: 'agent', name: 'coder-2' });
    for (const bad of ['', 'Coder', 'coder-0', 'coder-', '-2', '2coder', 'a'.repeat(17), 'coder-2-3', '../x']) {
      expect(thrown(() => parseSecretTarget(bad), SecretError).code).toBe('WARREN_SECRET_INVALID');
    }
  });

  it('the key path comes from WARREN_SECRETS_KEY_FILE, else the state directory', () => {
    expect(secretsKeyPath('/var/w')).toBe('/var/w/secrets.key');
    expect(secretsKeyPath('/var/w', { WARREN_SECRETS_KEY_FILE: '' })).toBe('/var/w/secrets.key');
    expect(secretsKeyPath('/var/w', { WARREN_SECRETS_KEY_FILE: '/etc/warren/k' })).toBe('/etc/warren/k');
  });
});

describe('openSecretStore', () => {
  it('round trip: agent secrets over template secrets, gateway-only ones apart', () =>
    withStore(({ store }) => {
      const values = { tplKey: marker(), tplShared: marker(), agentShared: marker(), agentOnly: marker(), other: marker() };
      expect(store.set('coder', 'OPENAI_API_KEY', values.tplKey, { gateway: true }).created).toBe(true);
      store.set('coder', 'SHARED', values.tplShared);
      store.set('coder-2', 'SHARED', values.agentShared);
      const given = Buffer.from(values.agentOnly);
      store.set('coder-2', 'GH_TOKEN', given);
      expect(given.toString()).toBe(values.agentOnly); // the caller's bytes are left as they were
      store.set('coder-3', 'GH_TOKEN', values.other);
      store.set('writer', 'OPENAI_API_KEY', values.other, { gateway: true });

      const two = store.secretsFor('coder-2', 'coder');
      expect(two.agent).toEqual([
        { name: 'GH_TOKEN', value: values.agentOnly, gateway: false, from: 'coder-2' },
        { name: 'SHARED', value: values.agentShared, gateway: false, from: 'coder-2' },
      ]);
      expect(two.gateway).toEqual([{ name: 'OPENAI_API_KEY', value: values.tplKey, gateway: true, from: 'coder' }]);

      const one = store.secretsFor('coder-1', 'coder');
      expect(one.agent).toEqual([{ name: 'SHARED', value: values.tplShared, gateway: false, from: 'coder' }]);
      expect(one.gateway.map((s) => s.name)).toEqual(['OPENAI_API_KEY']);

      // An agent-scoped secret of the same name wins even over a gateway-only one, and is delivered.
      store.set('coder-1', 'OPENAI_API_KEY', values.other);
      expect(store.secretsFor('coder-1', 'coder')).toMatchObject({ agent: [{ name: 'OPENAI_API_KEY', from: 'coder-1' }, { name: 'SHARED' }], gateway: [] });

      expect(thrown(() => store.secretsFor('coder-2', 'writer'), SecretError).message).toMatch(/coder-2 is not an agent of template writer/);
    }));

  it('set replaces a value and keeps its created time; list never shows values; delete removes', async () => {
    await using dir = await makeTempDir('warren-secrets-');
    const db = openDatabase(`${dir.path}/w.db`);
    let now = 1_000;
    const store = openSecretStore(db, { keyPath: `${dir.path}/k`, clock: () => now });
    const first = marker();
    const second = marker();
    store.set('coder', 'TOKEN', first);
    now = 2_000;
    const replaced = store.set('coder', 'TOKEN', second, { gateway: true });
    expect(replaced).toEqual({ created: false, info: { target: 'coder', kind: 'template', name: 'TOKEN', gateway: true, createdMs: 1_000, updatedMs: 2_000 } });
    store.set('coder-1', 'A', first);
    expect(store.list().map((s) => `${s.target}/${s.name}`)).toEqual(['coder/TOKEN', 'coder-1/A']);
    expect(store.list('coder-1').map((s) => s.name)).toEqual(['A']);
    expect(JSON.stringify(store.list())).not.toContain(first);
    expect(JSON.stringify(store.list())).not.toContain(second);
    expect(store.secretsFor('coder-1', 'coder').gateway[0]?.value).toBe(second);
    expect(store.delete('coder', 'TOKEN')).toMatchObject({ target: 'coder', name: 'TOKEN' });
    expect(store.delete('coder', 'TOKEN')).toBeUndefined();
    expect(store.list().map((s) => s.name)).toEqual(['A']);
    db.close();
  });

  it('refuses bad names and values, naming the secret but never the value', () =>
    withStore(({ store }) => {
      for (const name of ['lower', '1ABC', 'A-B', '', 'A'.repeat(65)]) {
        expect(thrown(() => store.set('coder', name, 'v'), SecretError).code).toBe('WARREN_SECRET_INVALID');
      }
      expect(thrown(() => store.set('coder', 'X', ''), SecretError).message).toMatch(/secret X of coder: the value is empty/);
      store.set('coder', 'BIG', 'x'.repeat(64 * 1024));
      const tooBig = thrown(() => store.set('coder', 'BIG', 'y'.repeat(64 * 1024 + 1)), SecretError);
      expect(tooBig.message).toMatch(/65537 bytes, more than the 65536 allowed/);
      expect(tooBig.message).not.toContain('yyyy');
      expect(thrown(() => store.set('coder', 'BIN', Buffer.from([0xff, 0xfe, 0x00])), SecretError).message).toMatch(/not UTF-8 text/);
      expect(thrown(() => store.set('Coder', 'X', 'v'), SecretError).message).toMatch(/target "Coder"/);
      expect(thrown(() => store.set({ kind: 'agent', name: 'coder' }, 'X', 'v'), SecretError).message).toMatch(/not a agent name/);
    }));

  it('the database file and its WAL never hold a value', () =>
    withStore(({ store, db, dbPath }) => {
      const value = marker();
      store.set('coder', 'OPENAI_API_KEY', value, { gateway: true });
      store.set('coder-1', 'GH_TOKEN', `${value}-agent`);
      store.set('coder', 'OPENAI_API_KEY', `${value}-replaced`, { gateway: true });
      const needle = Buffer.from(value.slice(0, 20));
      const wal = readFileSync(`${dbPath}-wal`);
      expect(wal.length).toBeGreaterThan(0);
      expect(wal.includes(needle)).toBe(false);
      expect(readFileSync(dbPath).includes(needle)).toBe(false);
      db.pragma('wal_checkpoint(TRUNCATE)');
      expect(readFileSync(dbPath).includes(needle)).toBe(false);
      expect(store.secretsFor('coder-1', 'coder').agent[0]?.value).toBe(`${value}-agent`);
    }));

  describe('a tampered row does not decrypt, and the error names target and secret, not the value', () => {
    /** Flips the lowest bit of the first byte of blob column `column` of every row. */
    const flip = (column: 'ciphertext' | 'nonce' | 'tag') => (db: SqliteDatabase) => {
      for (const row of db.prepare<[], { rowid: number; blob: Buffer }>(`SELECT rowid, ${column} AS blob FROM secrets`).all()) {
        row.blob[0] = row.blob[0]! ^ 1;
        db.prepare(`UPDATE secrets SET ${column} = ? WHERE rowid = ?`).run(row.blob, row.rowid);
      }
    };
    const sql = (statement: string) => (db: SqliteDatabase) => void db.exec(statement);
    const cases: [string, (db: SqliteDatabase) => void][] = [
      ['ciphertext', flip('ciphertext')],
      ['nonce', flip('nonce')],
      ['auth tag', flip('tag')],
      ['scope', sql(`UPDATE secrets SET scope_name = 'coder-1', scope_kind = 'agent'`)],
      ['name', sql(`UPDATE secrets SET name = 'SHARED'`)],
      ['gateway flag', sql(`UPDATE secrets SET gateway = 0`)],
    ];
    for (const [what, tamper] of cases) {
      it(what, () =>
        withStore(({ store, db }) => {
          const value = marker();
          store.set('coder', 'OPENAI_API_KEY', value, { gateway: true });
          tamper(db);
          const error = thrown(() => store.secretsFor('coder-1', 'coder'), SecretDecryptError);
          expect(error.code).toBe('WARREN_SECRET_DECRYPT');
          expect(error.wrongKey).toBe(false);
          expect(error.message).toMatch(/its stored row was altered/);
          expect(error.message).toMatch(/^secret (OPENAI_API_KEY|SHARED) of (coder|coder-1) does not decrypt/);
          expect(`${error.message}${String(error.stack)}`).not.toContain(value);
        }),
      );
    }
  });

  it('a different key file: every secret fails to decrypt, named, and said to be another key', () =>
    withStore(({ store, db, keyPath }) => {
      store.set('coder', 'A', marker());
      writeFileSync(keyPath, randomBytes(32), { mode: 0o600 });
      const reopened = openSecretStore(db, { keyPath });
      const error = thrown(() => reopened.secretsFor('coder-1', 'coder'), SecretDecryptError);
      expect([error.target, error.secretName, error.wrongKey]).toEqual(['coder', 'A', true]);
      expect(error.message).toBe('secret A of coder does not decrypt: it was written with another key file');
    }));
});

describe('the key file', () => {
  it('is made on first use, 32 bytes, mode 0600; list and delete do not need it', () =>
    withStore(({ store, keyPath }) => {
      expect(store.list()).toEqual([]);
      expect(() => statSync(keyPath)).toThrow(/ENOENT/);
      store.set('coder', 'A', 'v');
      const info = statSync(keyPath);
      expect([info.size, info.mode & 0o777]).toEqual([32, 0o600]);
      expect(openSecretStore(openDatabase(':memory:'), { keyPath }).keyId()).toBe(store.keyId());
    }));

  for (const mode of [0o644, 0o640, 0o604]) {
    it(`readable by group or others (mode ${mode.toString(8)}): refused with a clear error`, () =>
      withStore(({ store, keyPath }) => {
        store.set('coder', 'A', 'v');
        chmodSync(keyPath, mode);
        const error = thrown(() => openSecretStore(openDatabase(':memory:'), { keyPath }).keyId(), SecretKeyError);
        expect(error.code).toBe('WARREN_SECRET_KEY');
        expect(error.message).toContain(`secrets key file ${keyPath}: has mode 0${mode.toString(8)}: group or others may read it`);
      }));
  }

  it('of the wrong size: refused', () =>
    withStore(({ db, keyPath }) => {
      writeFileSync(keyPath, randomBytes(31), { mode: 0o600 });
      expect(thrown(() => openSecretStore(db, { keyPath }).set('coder', 'A', 'v'), SecretKeyError).message).toMatch(/has 31 bytes; a key file holds exactly 32/);
    }));

  it('missing while secrets are stored: refused, not replaced; rm still works', () =>
    withStore(({ store, db, keyPath }) => {
      store.set('coder', 'A', 'v');
      store.set('coder', 'B', 'w');
      unlinkSync(keyPath);
      const reopened = openSecretStore(db, { keyPath });
      expect(thrown(() => reopened.set('coder', 'C', 'x'), SecretKeyError).message).toMatch(/is missing, and 2 stored secrets need it/);
      expect(() => statSync(keyPath)).toThrow(/ENOENT/);
      expect(reopened.delete('coder', 'A')?.name).toBe('A');
      expect(reopened.list().map((s) => s.name)).toEqual(['B']);
    }));
});

describe('the public surface', () => {
  it('exports these values, and no others', () => {
    expect(Object.keys(secrets).sort()).toEqual([
      'AGENT_NAME', 'ENV_NAME', 'KEY_BYTES', 'MAX_SECRET_BYTES', 'SECRETS_DIR', 'SECRETS_DIR_MODE', 'SECRETS_KEY_FILE', 'SECRET_FILE_MODE', 'SECRET_NAME',
      'ScopeKind', 'SecretDecryptError', 'SecretDeliveryError', 'SecretError', 'SecretKeyError', 'TEMPLATE_NAME', 'checkSecretName', 'createKeyFile',
      'deliverSecretFiles', 'openSecretStore', 'parseSecretTarget', 'readKeyFile', 'secretBytes', 'secretEnv', 'secretsKeyPath', 'templateOfAgent',
    ]);
  });
});

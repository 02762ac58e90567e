import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { migrate, type SqliteDatabase } from '@warren/store';
import { SecretDecryptError, SecretError, SecretKeyError } from './errors.js';
import { createKeyFile, readKeyFile, type SecretsKey } from './key.js';
import { checkSecretName, parseSecretTarget, secretBytes, templateOfAgent, ScopeKind, TEMPLATE_NAME, type SecretTarget } from './names.js';

/** Options of {@link openSecretStore}. */
export interface SecretStoreOptions {
  /** The key file (see `secretsKeyPath`); made with a new random key on first use when no secret is stored yet. */
  readonly keyPath: string;
  /** The time source for created/updated times, ms since the Unix epoch. Default `Date.now`. */
  readonly clock?: () => number;
}

/** What {@link SecretStore.list} shows of a secret: never its value. */
export interface SecretInfo {
  /** The target as written on the command line: the template's or the agent's name. */
  readonly target: string;
  readonly kind: ScopeKind;
  /** The secret's name (`OPENAI_API_KEY`). */
  readonly name: string;
  /** True when only the LLM gateway receives it (provider keys); false when the agent does. */
  readonly gateway: boolean;
  /** ms since the Unix epoch. */
  readonly createdMs: number;
  /** ms since the Unix epoch: the last `set`. */
  readonly updatedMs: number;
}

/** A decrypted secret, as {@link SecretStore.secretsFor} resolves it for one agent. */
export interface ResolvedSecret {
  readonly name: string;
  /** The value, UTF-8 text. */
  readonly value: string;
  readonly gateway: boolean;
  /** Where it came from: the template's name or the agent's. */
  readonly from: string;
}

/** An agent's secrets split by who receives them; each list sorted by name. */
export interface AgentSecrets {
  /** Delivered to the agent (files in its home, environment variables its template names). */
  readonly agent: readonly ResolvedSecret[];
  /** Given only to the agent's LLM gateway (provider keys); never to the agent. */
  readonly gateway: readonly ResolvedSecret[];
}

/**
 * The encrypted secrets of templates and agents in the `secrets` table of the state database.
 * Each value is sealed with AES-256-GCM (NIST SP 800-38D) under the key file's key, with a fresh
 * random 96-bit nonce per write; the additional authenticated data binds the row's scope, name and
 * gateway flag, so a row copied to another target or name, or flipped from gateway-only to
 * agent-delivered, fails to decrypt.
 */
export interface SecretStore {
  /**
   * Stores (or replaces) a secret. `options.gateway` marks it gateway-only. The key file is made
   * on the first write when missing and no secret is stored yet.
   * @returns what is now stored, and whether it is new.
   * @throws {SecretError} `WARREN_SECRET_INVALID` for a bad target, name or value (see `secretBytes`).
   * @throws {SecretKeyError} when the key file cannot be used.
   */
  set(target: SecretTarget | string, name: string, value: string | Uint8Array, options?: { readonly gateway?: boolean }): { readonly info: SecretInfo; readonly created: boolean };
  /** Removes a secret (no key needed). @returns what was removed, or undefined when there was none. @throws {SecretError} for a bad target or name. */
  delete(target: SecretTarget | string, name: string): SecretInfo | undefined;
  /** The stored secrets, of one target or all, by target then name; never values (no key needed). */
  list(target?: SecretTarget | string): SecretInfo[];
  /**
   * The secrets of agent `agent` of template `template`: the agent's own over the template's (the
   * agent's wins on a name clash), split into what the agent receives and what only its gateway does.
   * @throws {SecretError} `WARREN_SECRET_INVALID` if the names are bad or `agent` is not of `template`.
   * @throws {SecretKeyError} when the key file cannot be used.
   * @throws {SecretDecryptError} naming target and secret when a row does not decrypt.
   */
  secretsFor(agent: string, template: string): AgentSecrets;
  /**
   * Loads the key (creating the key file when no secret is stored yet) and returns its id, so that
   * a service finds a bad key file at start rather than at an agent's start.
   * @throws {SecretKeyError} when the key file cannot be used.
   */
  keyId(): string;
}

const MIGRATIONS = [
  {
    version: 1,
    sql: `
      CREATE TABLE secrets (
        scope_kind TEXT NOT NULL CHECK (scope_kind IN ('template', 'agent')),
        scope_name TEXT NOT NULL,
        name TEXT NOT NULL,
        gateway INTEGER NOT NULL CHECK (gateway IN (0, 1)),
        key_id TEXT NOT NULL,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        tag BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (scope_kind, scope_name, name)
      ) STRICT;
    `,
  },
];

interface SecretRow {
  scope_kind: ScopeKind;
  scope_name: string;
  name: string;
  gateway: 0 | 1;
  key_id: string;
  nonce: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
  created_ms: number;
  updated_ms: number;
}

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** The additional authenticated data of a row: a version label, its scope, name and gateway flag, NUL-separated. */
function aadOf(kind: ScopeKind, scopeName: string, name: string, gateway: boolean): Buffer {
  return Buffer.from(`warren-secret/v1\0${kind}\0${scopeName}\0${name}\0${gateway ? 1 : 0}`, 'utf8');
}

function infoOf(row: SecretRow): SecretInfo {
  return {
    target: row.scope_name,
    kind: row.scope_kind,
    name: row.name,
    gateway: row.gateway === 1,
    createdMs: row.created_ms,
    updatedMs: row.updated_ms,
  };
}

function targetOf(target: SecretTarget | string): SecretTarget {
  if (typeof target === 'string') return parseSecretTarget(target);
  const parsed = parseSecretTarget(target.name);
  if (parsed.kind !== target.kind) throw new SecretError('WARREN_SECRET_INVALID', `${JSON.stringify(target.name)} is not a ${target.kind} name`);
  return parsed;
}

/**
 * Opens the secret store kept in `db` (migration component `secrets`). The key file is read on
 * first need (`set`, `secretsFor`, `keyId`), not here; `list` and `delete` never need it.
 * Closing `db` is the caller's.
 * @throws {StoreError} if the table cannot be created.
 */
export function openSecretStore(db: SqliteDatabase, options: SecretStoreOptions): SecretStore {
  migrate(db, 'secrets', MIGRATIONS);
  const clock = options.clock ?? Date.now;
  const keyPath = options.keyPath;
  const count = db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM secrets');
  const one = db.prepare<[string, string, string], SecretRow>('SELECT * FROM secrets WHERE scope_kind = ? AND scope_name = ? AND name = ?');
  const upsert = db.prepare(
    `INSERT INTO secrets (scope_kind, scope_name, name, gateway, key_id, nonce, ciphertext, tag, created_ms, updated_ms)
     VALUES (@scope_kind, @scope_name, @name, @gateway, @key_id, @nonce, @ciphertext, @tag, @created_ms, @updated_ms)
     ON CONFLICT (scope_kind, scope_name, name) DO UPDATE SET gateway = excluded.gateway, key_id = excluded.key_id,
       nonce = excluded.nonce, ciphertext = excluded.ciphertext, tag = excluded.tag, updated_ms = excluded.updated_ms`,
  );
  const remove = db.prepare<[string, string, string]>('DELETE FROM secrets WHERE scope_kind = ? AND scope_name = ? AND name = ?');
  const all = db.prepare<[], SecretRow>('SELECT * FROM secrets ORDER BY scope_name, name');
  const ofTarget = db.prepare<[string, string], SecretRow>('SELECT * FROM secrets WHERE scope_kind = ? AND scope_name = ? ORDER BY name');
  const ofAgent = db.prepare<[string, string], SecretRow>(
    `SELECT * FROM secrets WHERE (scope_kind = 'template' AND scope_name = ?) OR (scope_kind = 'agent' AND scope_name = ?) ORDER BY name`,
  );

  let loaded: SecretsKey | undefined;
  const key = (): SecretsKey => {
    if (loaded !== undefined) return loaded;
    const found = readKeyFile(keyPath);
    if (found !== undefined) return (loaded = found);
    const stored = count.get()?.n ?? 0;
    if (stored > 0) {
      throw new SecretKeyError(
        keyPath,
        `is missing, and ${stored} stored secret${stored === 1 ? ' needs' : 's need'} it: restore the file, or remove them (warren secret list, warren secret rm) and set them again`,
      );
    }
    return (loaded = createKeyFile(keyPath));
  };

  const decrypt = (row: SecretRow): string => {
    const { key: aesKey, keyId } = key();
    try {
      if (row.nonce.length !== NONCE_BYTES || row.tag.length !== TAG_BYTES) throw new Error('nonce or tag has the wrong length');
      const decipher = createDecipheriv('aes-256-gcm', aesKey, row.nonce, { authTagLength: TAG_BYTES });
      decipher.setAAD(aadOf(row.scope_kind, row.scope_name, row.name, row.gateway === 1));
      decipher.setAuthTag(row.tag);
      const plain = Buffer.concat([decipher.update(row.ciphertext), decipher.final()]);
      return plain.toString('utf8');
    } catch (error) {
      throw new SecretDecryptError(row.scope_name, row.name, row.key_id !== keyId, { cause: error });
    }
  };

  const setTx = db.transaction((row: SecretRow): boolean => {
    const existing = one.get(row.scope_kind, row.scope_name, row.name);
    upsert.run({ ...row, created_ms: existing?.created_ms ?? row.created_ms });
    return existing === undefined;
  });

  const deleteTx = db.transaction((scope: SecretTarget, name: string): SecretInfo | undefined => {
    const existing = one.get(scope.kind, scope.name, name);
    if (existing === undefined) return undefined;
    remove.run(scope.kind, scope.name, name);
    return infoOf(existing);
  });

  return {
    set(target, name, value, setOptions = {}) {
      const scope = targetOf(target);
      checkSecretName(name);
      const plain = secretBytes(scope, name, value);
      const gateway = setOptions.gateway ?? false;
      const { key: aesKey, keyId } = key();
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', aesKey, nonce, { authTagLength: TAG_BYTES });
      cipher.setAAD(aadOf(scope.kind, scope.name, name, gateway));
      const ciphertext = Buffer.concat([cipher.update(plain), cipher.final()]);
      plain.fill(0);
      const nowMs = clock();
      const row: SecretRow = {
        scope_kind: scope.kind,
        scope_name: scope.name,
        name,
        gateway: gateway ? 1 : 0,
        key_id: keyId,
        nonce,
        ciphertext,
        tag: cipher.getAuthTag(),
        created_ms: nowMs,
        updated_ms: nowMs,
      };
      const created = setTx.immediate(row);
      const stored = one.get(scope.kind, scope.name, name);
      if (stored === undefined) throw new SecretError('WARREN_SECRET_INVALID', `secret ${name} of ${scope.name} vanished right after it was stored`);
      return { info: infoOf(stored), created };
    },
    delete(target, name) {
      const scope = targetOf(target);
      checkSecretName(name);
      return deleteTx.immediate(scope, name);
    },
    list(target) {
      if (target === undefined) return all.all().map(infoOf);
      const scope = targetOf(target);
      return ofTarget.all(scope.kind, scope.name).map(infoOf);
    },
    secretsFor(agent, template) {
      if (!TEMPLATE_NAME.test(template)) throw new SecretError('WARREN_SECRET_INVALID', `template ${JSON.stringify(template)} is no template name`);
      if (templateOfAgent(agent) !== template) throw new SecretError('WARREN_SECRET_INVALID', `agent ${agent} is not an agent of template ${template}`);
      const byName = new Map<string, SecretRow>();
      for (const row of ofAgent.all(template, agent)) {
        // The agent's own secret wins over the template's of the same name.
        if (row.scope_kind === ScopeKind.agent || !byName.has(row.name)) byName.set(row.name, row);
      }
      const agentList: ResolvedSecret[] = [];
      const gatewayList: ResolvedSecret[] = [];
      for (const row of [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
        const resolved: ResolvedSecret = { name: row.name, value: decrypt(row), gateway: row.gateway === 1, from: row.scope_name };
        (resolved.gateway ? gatewayList : agentList).push(resolved);
      }
      return { agent: agentList, gateway: gatewayList };
    },
    keyId() {
      return key().keyId;
    },
  };
}

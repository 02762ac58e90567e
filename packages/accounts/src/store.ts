import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { commitWithoutSync, migrate } from '@warren/store';
import type { SqliteDatabase } from '@warren/store';
import { AccountError, AccountExistsError, AccountRangeError } from './errors.js';
import { checkHostIds } from './host-ids.js';
import { Slices, chownAll, copyTreeSliced, removeTreeSliced, writeCredentialSliced } from './home.js';

/** An agent instance's account, like a passwd(5) entry plus where it came from. */
export interface Account {
  /** The user name, `[a-z][a-z0-9-]{0,31}`, e.g. `shell-1`. Also the name of its private group. */
  readonly name: string;
  /** The agent template it was made for, e.g. `shell`. */
  readonly template: string;
  readonly uid: number;
  /** The user private group's gid: always equal to `uid`. */
  readonly gid: number;
  /** Supplementary group names. */
  readonly groups: string[];
  /** The home directory on the host: `<homeRoot>/<template>/<name>` (absolute). */
  readonly home: string;
  /** When it was created, ms since the Unix epoch. */
  readonly createdMs: number;
  /** The login shell written to passwd lines, e.g. `/bin/sh`. */
  readonly shell: string;
}

/** What {@link AccountStore.create} needs. */
export interface CreateAccountInput {
  /** `[a-z][a-z0-9-]{0,31}` */
  readonly name: string;
  /** The template name, same syntax as a user name (it becomes a directory under homeRoot). */
  readonly template: string;
  /** Supplementary group names, each `[a-z][a-z0-9-]{0,31}`. Default none. */
  readonly groups?: readonly string[];
}

/** Options of {@link passwdLine}. */
export interface PasswdLineOptions {
  /** The home to write instead of the host path, e.g. the path the sandbox mounts it at. */
  readonly home?: string;
}

/** Options of {@link AccountStore.remove}. */
export interface RemoveAccountOptions {
  /**
   * Commits the row's deletion instead of the store: called once, synchronously, after the home is
   * gone, with `deleteRow` (the `DELETE` of the row, a statement on the store's database). It must
   * run `deleteRow` inside a transaction of its own making on that database, together with the
   * caller's writes of the same removal (its other rows for the account, the audit row saying so),
   * and commit it before it returns; one commit instead of two. Default: the store commits the
   * deletion alone (durably or not, as `durableCommits` says).
   */
  readonly commitWith?: (deleteRow: () => void) => void;
}

/** Unix-user-like accounts for agent instances, kept in the `accounts` table. */
export interface AccountStore {
  /**
   * Makes an account: the lowest free uid of the range, gid = uid, a home copied from the skeleton,
   * owned by uid:gid (lchown, symlinks never followed), mode 0700, and a credential (32 random bytes
   * as 64 hex characters) in `<home>/.warren/credentials`, mode 0600 in a 0700 directory, of which
   * only the SHA-256 is stored. The home is built aside and renamed into place in the transaction
   * that inserts the row, so a failure leaves neither row nor home. A directory left at the home's
   * path by an earlier crash is replaced. Calls on one store run one after the other.
   * Creating a name that exists with the same template returns the existing account unchanged.
   * @throws {AccountError} on an invalid name, template or group, an exhausted range, or when the
   *   home cannot be made (cause: the I/O error).
   * @throws {AccountExistsError} if the name exists with another template.
   */
  create(input: CreateAccountInput): Promise<Account>;
  /** The account of that name, or undefined. */
  get(name: string): Account | undefined;
  /** Every account, by uid. */
  list(): Account[];
  /**
   * Every account's name, sorted (SQLite's binary collation) and joined by commas, in one string
   * built by SQLite: a cheap fingerprint of the set of accounts, changes by other processes sharing
   * the database included, for a caller that polls it ('' when there is none).
   */
  namesKey(): string;
  /**
   * Deletes the home (recursively, unlinking symlinks, never following them) and then the row.
   * Removing a name that does not exist does nothing (but `options.commitWith`, when given, is
   * still called, with a deletion that deletes nothing).
   * @throws {AccountError} if the home cannot be deleted; the row is then kept and
   *   `options.commitWith` is not called.
   * @throws what `options.commitWith` throws (the row is then kept, unless it committed the deletion).
   */
  remove(name: string, options?: RemoveAccountOptions): Promise<void>;
  /** Whether `secret` is the account's credential (SHA-256 compared in constant time). False for unknown names. */
  verifyCredential(name: string, secret: string): boolean;
  /**
   * The account as a passwd(5) line: `name:x:uid:gid:Warren agent (template):home:shell`.
   * @throws {AccountError} if the home holds `:` or a newline.
   */
  passwdLine(account: Account, options?: PasswdLineOptions): string;
  /** The account's private group as a group(5) line: `name:x:gid:`. */
  groupLine(account: Account): string;
}

/** Options of {@link openAccounts}. */
export interface OpenAccountsOptions {
  /** Where homes go: `<homeRoot>/<template>/<name>`. Made if missing. */
  readonly homeRoot: string;
  /** A directory copied into each new home (e.g. `home/skel`). Default: homes start empty. */
  readonly skeletonDir?: string;
  /** Lowest uid/gid to hand out. Default 1_900_000_000 (above systemd's container ranges, which end at 1_879_048_191). */
  readonly uidMin?: number;
  /** Highest uid/gid to hand out, below 2^31. Default 1_900_999_999. */
  readonly uidMax?: number;
  /** Host users, checked against the range at open. Default `/etc/passwd`. */
  readonly hostPasswd?: string;
  /** Host groups, checked against the range at open. Default `/etc/group`. */
  readonly hostGroup?: string;
  /** Host subordinate uid ranges, checked against the range at open. Default `/etc/subuid`. */
  readonly hostSubuid?: string;
  /** Host subordinate gid ranges, checked against the range at open. Default `/etc/subgid`. */
  readonly hostSubgid?: string;
  /** The login shell of new accounts. Default `/bin/sh`. */
  readonly shell?: string;
  /** The time source for `createdMs`, ms since the Unix epoch. Default `Date.now`. */
  readonly clock?: () => number;
  /**
   * Whether each account's creation and removal commits durably (at the connection's level,
   * `synchronous = FULL` for a database of `openDatabase`). Default true. With false they commit
   * at `synchronous = NORMAL` (`commitWithoutSync` of `@warren/store`): a killed process loses
   * nothing, a power loss may lose them, and the caller must make them durable (a later `FULL`
   * commit or `syncWal` on the same connection) before anyone hears of the account. A lost
   * creation leaves a home with no row, which the next creation of that name removes; a lost
   * removal leaves a row whose home is gone, as a removal that failed between the two does.
   */
  readonly durableCommits?: boolean;
}

/** Valid user, group and template names: a lowercase letter, then up to 31 of `a-z`, `0-9`, `-`. */
export const ACCOUNT_NAME_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

const DEFAULT_UID_MIN = 1_900_000_000;
const DEFAULT_UID_MAX = 1_900_999_999;
const UID_LIMIT = 2 ** 31;

const MIGRATIONS = [
  {
    version: 1,
    sql: `CREATE TABLE accounts (
      name TEXT PRIMARY KEY,
      template TEXT NOT NULL,
      uid INTEGER NOT NULL UNIQUE,
      gid INTEGER NOT NULL,
      groups TEXT NOT NULL,
      home TEXT NOT NULL,
      shell TEXT NOT NULL,
      credential_sha256 TEXT NOT NULL,
      created_ms INTEGER NOT NULL
    ) STRICT`,
  },
];

interface AccountRow {
  name: string;
  template: string;
  uid: number;
  gid: number;
  groups: string;
  home: string;
  shell: string;
  credential_sha256: string;
  created_ms: number;
}

function toAccount(row: AccountRow): Account {
  return {
    name: row.name,
    template: row.template,
    uid: row.uid,
    gid: row.gid,
    groups: JSON.parse(row.groups) as string[],
    home: row.home,
    createdMs: row.created_ms,
    shell: row.shell,
  };
}

function checkName(kind: string, name: unknown): string {
  if (typeof name !== 'string' || !ACCOUNT_NAME_PATTERN.test(name)) {
    throw new AccountError(
      typeof name === 'string' ? name : undefined,
      `invalid ${kind} name ${JSON.stringify(name)}: it must match ${ACCOUNT_NAME_PATTERN.source}`,
    );
  }
  return name;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * Opens the account store in `db` (creating the `accounts` table on first use) after checking the
 * uid range: whole numbers with 0 < uidMin <= uidMax < 2^31, and no id of the host's users, groups
 * or subordinate id ranges inside it (see `checkHostIds`).
 * @throws {AccountRangeError} if the range is invalid or collides with a host entry (named with
 *   file and line).
 * @throws {StoreError} if the table cannot be created.
 */
export function openAccounts(db: SqliteDatabase, options: OpenAccountsOptions): AccountStore {
  const uidMin = options.uidMin ?? DEFAULT_UID_MIN;
  const uidMax = options.uidMax ?? DEFAULT_UID_MAX;
  if (!Number.isSafeInteger(uidMin) || !Number.isSafeInteger(uidMax) || uidMin < 1 || uidMax < uidMin || uidMax >= UID_LIMIT) {
    throw new AccountRangeError(`invalid agent id range ${uidMin}-${uidMax}: need whole numbers with 0 < uidMin <= uidMax < 2^31`);
  }
  checkHostIds(
    {
      passwd: options.hostPasswd ?? '/etc/passwd',
      group: options.hostGroup ?? '/etc/group',
      subuid: options.hostSubuid ?? '/etc/subuid',
      subgid: options.hostSubgid ?? '/etc/subgid',
    },
    uidMin,
    uidMax,
  );
  migrate(db, 'accounts', MIGRATIONS);

  const homeRoot = resolve(options.homeRoot);
  const skeletonDir = options.skeletonDir === undefined ? undefined : resolve(options.skeletonDir);
  const shell = options.shell ?? '/bin/sh';
  const clock = options.clock ?? Date.now;
  const commit = options.durableCommits === false ? <T>(work: () => T): T => commitWithoutSync(db, work) : <T>(work: () => T): T => work();

  const selectOne = db.prepare<[string], AccountRow>('SELECT * FROM accounts WHERE name = ?');
  const selectAll = db.prepare<[], AccountRow>('SELECT * FROM accounts ORDER BY uid');
  const selectNames = db.prepare<[], { names: string | null }>("SELECT group_concat(name, ',') AS names FROM (SELECT name FROM accounts ORDER BY name)");
  const insert = db.prepare(
    `INSERT INTO accounts (name, template, uid, gid, groups, home, shell, credential_sha256, created_ms)
     VALUES (@name, @template, @uid, @gid, @groups, @home, @shell, @credential_sha256, @created_ms)`,
  );
  const deleteOne = db.prepare('DELETE FROM accounts WHERE name = ?');
  // The lowest uid in [min, max] that no row holds: min itself, or one above a held uid.
  const lowestFree = db.prepare<{ min: number; max: number }, { uid: number | null }>(
    `SELECT CASE
       WHEN NOT EXISTS (SELECT 1 FROM accounts WHERE uid = @min) THEN @min
       ELSE (SELECT a.uid + 1 FROM accounts a
             WHERE a.uid >= @min AND a.uid < @max
               AND NOT EXISTS (SELECT 1 FROM accounts b WHERE b.uid = a.uid + 1)
             ORDER BY a.uid LIMIT 1)
     END AS uid`,
  );

  let queue: Promise<unknown> = Promise.resolve();
  const serialize = <T>(task: () => Promise<T>): Promise<T> => {
    const run = queue.then(task, task);
    queue = run.catch(() => undefined);
    return run;
  };

  const get = (name: string): Account | undefined => {
    const row = selectOne.get(name);
    return row === undefined ? undefined : toAccount(row);
  };

  const createNow = async (name: string, template: string, groups: string[]): Promise<Account> => {
    const existing = get(name);
    if (existing !== undefined) {
      if (existing.template !== template) throw new AccountExistsError(name, existing.template, template);
      return existing;
    }
    const uid = lowestFree.get({ min: uidMin, max: uidMax })?.uid ?? null;
    if (uid === null) {
      throw new AccountError(name, `no free uid left in the agent id range ${uidMin}-${uidMax} for '${name}'`);
    }
    const templateDir = join(homeRoot, template);
    const home = join(templateDir, name);
    const staging = join(templateDir, `.${name}.creating-${randomBytes(6).toString('hex')}`);
    const secret = randomBytes(32).toString('hex');
    const account: Account = { name, template, uid, gid: uid, groups, home, createdMs: clock(), shell };
    let placed = false;
    const slices = new Slices();
    try {
      mkdirSync(templateDir, { recursive: true, mode: 0o755 });
      mkdirSync(staging, { mode: 0o700 });
      // Built as the supervisor's user, owned by the account only once complete: the paths made
      // are listed as they are made, so the hand-over needs no walk of the tree.
      const made = [staging];
      if (skeletonDir !== undefined) await copyTreeSliced(skeletonDir, staging, made, slices);
      made.push(...(await writeCredentialSliced(staging, secret, slices)));
      await chownAll(made, uid, uid, slices);
      chmodSync(staging, 0o700);
      await removeTreeSliced(home, slices); // left by a crash between rename and commit, or a failed remove
      commit(() => db.transaction(() => {
        insert.run({
          name,
          template,
          uid,
          gid: uid,
          groups: JSON.stringify(groups),
          home,
          shell,
          credential_sha256: sha256(secret).toString('hex'),
          created_ms: account.createdMs,
        });
        renameSync(staging, home);
        placed = true;
      }).immediate());
      return account;
    } catch (error) {
      await removeTreeSliced(staging).catch(() => undefined);
      if (placed && get(name) === undefined) await removeTreeSliced(home).catch(() => undefined);
      if (error instanceof AccountError) throw error;
      throw new AccountError(name, `cannot create account '${name}' (uid ${uid}, home ${home}): ${(error as Error).message}`, {
        cause: error,
      });
    }
  };

  return {
    // async: a name refused by checkName rejects the returned promise rather than throwing.
    async create(input) {
      const name = checkName('account', input.name);
      const template = checkName('template', input.template);
      const groups = [...(input.groups ?? [])].map((g) => checkName('group', g));
      return serialize(() => createNow(name, template, groups));
    },
    get,
    list() {
      return selectAll.all().map(toAccount);
    },
    namesKey() {
      return selectNames.get()?.names ?? '';
    },
    remove(name, removeOptions = {}) {
      return serialize(async () => {
        const { commitWith } = removeOptions;
        const row = selectOne.get(name);
        if (row === undefined) {
          commitWith?.(() => undefined);
          return;
        }
        try {
          await removeTreeSliced(row.home);
        } catch (error) {
          throw new AccountError(name, `cannot remove the home ${row.home} of '${name}': ${(error as Error).message}`, {
            cause: error,
          });
        }
        const deleteRow = (): void => void deleteOne.run(name);
        if (commitWith) commitWith(deleteRow);
        else commit(deleteRow);
      });
    },
    verifyCredential(name, secret) {
      const row = selectOne.get(name);
      const given = sha256(typeof secret === 'string' ? secret : '');
      // Compare against a stored hash or, for unknown names, against a hash no secret has.
      const stored = row === undefined ? Buffer.alloc(32) : Buffer.from(row.credential_sha256, 'hex');
      const same = stored.length === given.length && timingSafeEqual(stored, given);
      return row !== undefined && typeof secret === 'string' && same;
    },
    passwdLine(account, lineOptions = {}) {
      const home = lineOptions.home ?? account.home;
      for (const [field, value] of [
        ['home', home],
        ['shell', account.shell],
        ['template', account.template],
      ] as const) {
        if (/[:\n]/.test(value)) {
          throw new AccountError(account.name, `cannot write a passwd line for '${account.name}': ${field} ${JSON.stringify(value)} holds ':' or a newline`);
        }
      }
      return `${account.name}:x:${account.uid}:${account.gid}:Warren agent (${account.template}):${home}:${account.shell}`;
    },
    groupLine(account) {
      return `${account.name}:x:${account.gid}:`;
    },
  };
}

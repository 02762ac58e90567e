/**
 * @warren/accounts: Unix-user-like accounts for agent instances. Each gets a uid and gid from a
 * reserved range checked against the host's users, groups and subordinate ids, a home copied from a
 * skeleton and owned by it (mode 0700), and a credential whose SHA-256 only is kept.
 *
 * ```ts
 * import { openDatabase } from '@warren/store';
 * import { openAccounts } from '@warren/accounts';
 * const db = openDatabase('var/warren.db');
 * const accounts = openAccounts(db, { homeRoot: 'home', skeletonDir: 'home/skel' });
 * const shell1 = await accounts.create({ name: 'shell-1', template: 'shell' });
 * // { uid: 1900000000, gid: 1900000000, home: '/…/home/shell/shell-1', shell: '/bin/sh', … }
 * accounts.passwdLine(shell1, { home: '/home/shell-1' });
 * // 'shell-1:x:1900000000:1900000000:Warren agent (shell):/home/shell-1:/bin/sh'
 * await accounts.remove('shell-1');
 * db.close();
 * ```
 */
export { openAccounts, ACCOUNT_NAME_PATTERN } from './store.js';
export type { Account, AccountStore, CreateAccountInput, OpenAccountsOptions, PasswdLineOptions, RemoveAccountOptions } from './store.js';
export { AccountError, AccountRangeError, AccountExistsError } from './errors.js';
export { checkHostIds } from './host-ids.js';
export type { HostIdFiles } from './host-ids.js';

/**
 * @warren/store: the embedded SQLite state database (better-sqlite3, WAL, `synchronous=FULL`) and
 * per-component schema migrations. Packages that keep state take an open `SqliteDatabase`.
 *
 * ```ts
 * import { openDatabase, migrate } from '@warren/store';
 * const db = openDatabase('var/warren.db');
 * migrate(db, 'accounts', [{ version: 1, sql: 'CREATE TABLE accounts (...) STRICT' }]);
 * db.close();
 * ```
 */
export { openDatabase, migrate, StoreError } from './database.js';
export type { SqliteDatabase, OpenDatabaseOptions, Migration } from './database.js';
export { commitWithoutSync, syncWal } from './deferred.js';

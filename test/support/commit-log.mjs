/**
 * A test hook for the warren CLI (`NODE_OPTIONS=--import <this file>`, `WARREN_COMMIT_LOG=<file>`):
 * logs every commit the process makes on a file database of better-sqlite3, one JSON line each, at
 * the commit: `{ writes, audit }`, where `writes` are the write statements run in it (their first
 * words and table, e.g. `DELETE FROM accounts`) and `audit` the audit rows it appended
 * (`<action> <object>`). A commit is a transaction opened with `db.transaction` at the outermost
 * level, or a write statement run outside any transaction (autocommit). Tests read the file to
 * count the commits of one agent's life; nothing of it is in Warren's own code.
 */
import { appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const out = process.env.WARREN_COMMIT_LOG;
if (out) {
  const require = createRequire(`${process.cwd()}/package.json`);
  const Database = require('better-sqlite3');
  const probe = new Database(':memory:');
  const Statement = Object.getPrototypeOf(probe.prepare('SELECT 1'));
  probe.close();
  /** Per connection: the commit being gathered (writes, audit seq before), or undefined outside one. */
  const open = new WeakMap();
  const tableOf = (sql) => {
    const m = /^\s*(INSERT(?:\s+OR\s+\w+)?\s+INTO|UPDATE|DELETE\s+FROM|REPLACE\s+INTO)\s+["`]?(\w+)/i.exec(sql);
    return m ? `${m[1].toUpperCase().replace(/\s+/g, ' ')} ${m[2]}` : undefined;
  };
  const lastSeq = (db) => {
    try {
      return db.prepare('SELECT COALESCE(MAX(seq), 0) AS n FROM audit').get().n;
    } catch {
      return 0;
    }
  };
  const finish = (db, gathered) => {
    let audit = [];
    try {
      audit = db.prepare('SELECT action, object FROM audit WHERE seq > ? ORDER BY seq').all(gathered.seq).map((r) => `${r.action} ${r.object}`);
    } catch {
      // no audit table yet
    }
    if (gathered.writes.length > 0 || audit.length > 0) appendFileSync(out, `${JSON.stringify({ writes: gathered.writes, audit })}\n`);
  };
  const fileDb = (db) => !db.memory && !db.readonly;
  /** `made` (a function of `db.transaction`) and its variants, logging when they run outermost. */
  const logged = (db, made) => {
    const wrap = (variant) =>
      function run(...args) {
        if (db.inTransaction || !fileDb(db)) return variant.apply(this, args);
        const gathered = { writes: [], seq: lastSeq(db) };
        open.set(db, gathered);
        try {
          const result = variant.apply(this, args);
          open.delete(db);
          finish(db, gathered);
          return result;
        } finally {
          open.delete(db);
        }
      };
    const wrapped = wrap(made);
    for (const kind of ['deferred', 'immediate', 'exclusive']) wrapped[kind] = wrap(made[kind]);
    return wrapped;
  };
  const originalTransaction = Object.getOwnPropertyDescriptor(Database.prototype, 'transaction').value;
  Database.prototype.transaction = function transaction(fn) {
    return logged(this, originalTransaction.call(this, fn));
  };
  const originalRun = Statement.run;
  Statement.run = function run(...args) {
    const db = this.database;
    const table = this.reader ? undefined : tableOf(this.source);
    if (table === undefined || !fileDb(db)) return originalRun.apply(this, args);
    const gathered = open.get(db);
    if (gathered) {
      gathered.writes.push(table);
      return originalRun.apply(this, args);
    }
    if (db.inTransaction) return originalRun.apply(this, args);
    const alone = { writes: [table], seq: lastSeq(db) };
    const result = originalRun.apply(this, args);
    finish(db, alone);
    return result;
  };
}

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { openDatabase, type SqliteDatabase } from '@warren/store';
import { TaskState, type TaskRow } from '@warren/registry';

const dirs: string[] = [];
const dbs: SqliteDatabase[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp directory, removed after the test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warren-registry-'));
  dirs.push(dir);
  return dir;
}

/** Opens (creating) the SQLite file `path`; closed after the test. */
export function open(path: string): SqliteDatabase {
  const db = openDatabase(path);
  dbs.push(db);
  return db;
}

/** A task row with the given fields over a ready task's defaults. */
export function taskRow(id: string, fields: Partial<TaskRow> = {}): TaskRow {
  return {
    id,
    path: `tasks/${id}.md`,
    state: TaskState.ready,
    attempt: 0,
    agent: null,
    reason: null,
    boardHash: null,
    boardSync: 'clean',
    updatedMs: 1_000,
    notBeforeMs: null,
    readySinceMs: 1_000,
    queuePosition: null,
    queueReason: null,
    ...fields,
  };
}

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openAudit, type AuditEntry } from '@warren/audit';
import { openDatabase } from '@warren/store';
import type { BenchContext, Scenario } from '../lib/context.js';
import { inRounds, roundsFigure, type Figure } from '../lib/figure.js';
import { msSince } from '../lib/stats.js';

/** Entries shaped like a supervisor tick's: assignments, decisions, board writes, completions. */
function entries(count: number, offset: number): AuditEntry[] {
  const out: AuditEntry[] = [];
  for (let i = 0; i < count; i++) {
    const n = offset + i;
    switch (n % 4) {
      case 0:
        out.push({ actor: 'supervisor', action: 'policy.decide', object: `task:t-${n}`, decision: 'allow', details: { sub: `shell-${n % 16}`, act: 'assign' } });
        break;
      case 1:
        out.push({ actor: 'supervisor', action: 'task.assign', object: `task:t-${n}`, details: { agent: `shell-${n % 16}`, attempt: 1 } });
        break;
      case 2:
        out.push({ actor: 'supervisor', action: 'board.write', object: `task:t-${n}`, details: { status: 'in_progress', assignee: `shell-${n % 16}`, updated: '2026-11-22T01:00:00.000Z' } });
        break;
      default:
        out.push({ actor: `agent:shell-${n % 16}`, action: 'task.complete', object: `task:t-${n}`, details: { attempt: 1, outcome: 'succeeded', exitCode: 0, durationMs: 12, outputs: [] } });
    }
  }
  return out;
}

/**
 * Baseline (c): the raw mechanism, better-sqlite3 in WAL mode at `synchronous=FULL`, inserting
 * rows of the audit table's columns (precomputed values, no hashing, no indexes, no triggers) in
 * transactions of `batch` rows. Returns rows per second.
 */
function rawInsert(path: string, rows: number, batch: number): number {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(`CREATE TABLE raw (seq INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
      object TEXT NOT NULL, decision TEXT, details TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL) STRICT`);
    const insert = db.prepare('INSERT INTO raw VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const hash = 'ab'.repeat(32);
    const details = '{"agent":"shell-1","attempt":1}';
    const write = db.transaction((from: number, to: number) => {
      for (let seq = from; seq < to; seq++) insert.run(seq, Date.now(), 'supervisor', 'task.assign', `task:t-${seq}`, null, details, hash, hash);
    });
    const start = process.hrtime.bigint();
    for (let from = 1; from <= rows; from += batch) write(from, Math.min(from + batch, rows + 1));
    return rows / (msSince(start) / 1000);
  } finally {
    db.close();
  }
}

/** Warren's trail: `appendMany` (hash-chained, indexed, one durable transaction per batch). Rows per second. */
function warrenAppend(path: string, rows: number, batch: number): number {
  const db = openDatabase(path);
  try {
    const audit = openAudit(db);
    const batches: AuditEntry[][] = [];
    for (let from = 0; from < rows; from += batch) batches.push(entries(Math.min(batch, rows - from), from));
    const start = process.hrtime.bigint();
    if (batch === 1) for (const b of batches) audit.append(b[0]!);
    else for (const b of batches) audit.appendMany(b);
    return rows / (msSince(start) / 1000);
  } finally {
    db.close();
  }
}

function removeDb(path: string): void {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
}

/**
 * Audit append (issue 6 scenario 5): hash-chained rows per second, durable (`synchronous=FULL`,
 * group commit of 100 and 1,000 rows), against baseline (c) at the same batch size (targets:
 * ≥ 50,000 rows/s and ≥ 0.4 × baseline); one row per transaction against the raw equivalent (what
 * an unbatched `append` costs); and `verify()` time per million rows.
 */
export const auditScenario: Scenario = {
  id: 'audit',
  title: 'Audit append',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const figures: Figure[] = [];
    const rows = ctx.quick ? 20_000 : 100_000;
    const singleRows = ctx.quick ? 1_000 : 4_000;
    let file = 0;
    const fresh = () => join(ctx.scratchDir, `audit-${file++}.db`);
    const measure = async (fn: (path: string) => number) =>
      inRounds(ctx.rounds, ctx.warmup, () => {
        const path = fresh();
        try {
          return fn(path);
        } finally {
          removeDb(path);
        }
      });
    for (const batch of [100, 1_000, 1]) {
      const n = batch === 1 ? singleRows : rows;
      ctx.progress(`audit: batches of ${batch}`);
      const raw = await measure((p) => rawInsert(p, n, batch));
      const ours = await measure((p) => warrenAppend(p, n, batch));
      const label = batch === 1 ? 'one row per transaction' : `batches of ${batch.toLocaleString('en')}`;
      figures.push(
        roundsFigure(
          {
            id: `audit.raw.b${batch}`,
            scenario: 'Audit append',
            name: `baseline (c): raw SQLite insert, ${label}, synchronous=FULL`,
            unit: 'rows/s',
            better: 'higher',
            note: `${n.toLocaleString('en')} rows per round, WAL, no hash, no index`,
          },
          raw,
        ),
      );
      figures.push(
        roundsFigure(
          {
            id: `audit.append.b${batch}`,
            scenario: 'Audit append',
            name: batch === 1 ? 'audit.append(), one row per transaction' : `audit.appendMany(), ${label}`,
            unit: 'rows/s',
            better: 'higher',
            baseline: `audit.raw.b${batch}`,
            ...(batch === 100
              ? {
                  targets: [
                    { stat: 'median', op: '>=', value: 50_000 } as const,
                    { stat: 'ratio', op: '>=', value: 0.4 } as const,
                  ],
                }
              : {}),
            note: `${n.toLocaleString('en')} rows per round, sha256 chain, 1 index (object), synchronous=FULL`,
          },
          ours,
        ),
      );
    }

    const verifyRows = ctx.quick ? 100_000 : 1_000_000;
    ctx.progress(`audit: verify over ${verifyRows.toLocaleString('en')} rows`);
    const path = fresh();
    try {
      const db = openDatabase(path);
      try {
        const audit = openAudit(db);
        for (let from = 0; from < verifyRows; from += 1_000) audit.appendMany(entries(1_000, from));
        const perMillion = await inRounds(ctx.rounds, ctx.warmup, () => {
          const start = process.hrtime.bigint();
          const result = audit.verify();
          const ms = msSince(start);
          if (!result.ok || result.rows !== verifyRows) throw new Error(`verify failed: ${JSON.stringify(result)}`);
          return (ms / 1000) * (1_000_000 / verifyRows);
        });
        figures.push(
          roundsFigure(
            {
              id: 'audit.verify',
              scenario: 'Audit append',
              name: 'audit.verify() (warren audit --verify), time per million rows',
              unit: 's',
              better: 'lower',
              note: `measured over ${verifyRows.toLocaleString('en')} rows, scaled to 1,000,000`,
            },
            perMillion,
          ),
        );
      } finally {
        db.close();
      }
    } finally {
      removeDb(path);
    }
    return figures;
  },
};

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { auditSigningPaths, openAudit, openAuditSigner, rowHash, type AuditTrail, type SignedVerification } from '@warren/audit';
import { openDatabase, type SqliteDatabase } from '@warren/store';

const repo = join(import.meta.dirname, '..', '..', '..');
const cli = join(repo, 'services', 'supervisor', 'bin', 'warren.js');

beforeAll(() => {
  if (!existsSync(join(repo, 'services', 'supervisor', 'dist', 'cli.js'))) throw new Error('these tests run the built CLI: run npm run build first');
});

const dirs: string[] = [];
const dbs: SqliteDatabase[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `warren <args>` in `cwd` to its end (killed and failed after 120 s). */
function warren(cwd: string, args: readonly string[], nodeOptions: readonly string[] = []): Promise<Run> {
  const child = spawn(process.execPath, [...nodeOptions, cli, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal) reject(new Error(`warren ${args.join(' ')} ended by ${signal}\n${stderr}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

interface StateDir {
  /** The repository root the CLI runs in; its state directory is `var/`. */
  readonly root: string;
  readonly stateDir: string;
  readonly db: SqliteDatabase;
  readonly audit: AuditTrail;
}

/** A root with `var/warren.db` holding an audit trail (no rows yet). */
function stateDir(): StateDir {
  const root = mkdtempSync(join(tmpdir(), 'warren-audit-cli-'));
  dirs.push(root);
  const state = join(root, 'var');
  mkdirSync(state, { mode: 0o700 });
  const db = openDatabase(join(state, 'warren.db'));
  dbs.push(db);
  return { root, stateDir: state, db, audit: openAudit(db) };
}

function append(audit: AuditTrail, count: number, details?: (seq: number) => Record<string, unknown>): void {
  const from = audit.lastSeq();
  audit.appendMany(
    Array.from({ length: count }, (_, i) => ({
      actor: 'supervisor',
      action: (from + i) % 2 === 0 ? 'task.assign' : 'agent.start',
      object: `task:t${from + i + 1}`,
      ...(details ? { details: details(from + i + 1) } : {}),
    })),
  );
}

/** 22 rows, checkpoints at seqs 5, 10, 15 and 20 written by a signer that is then closed (as a supervisor at exit). */
async function signedState(): Promise<StateDir> {
  const s = stateDir();
  const signer = await openAuditSigner({ db: s.db, audit: s.audit, ...auditSigningPaths(s.stateDir) });
  for (let i = 1; i <= 4; i++) {
    append(s.audit, 5);
    await signer.checkpoint(1_900_000_000_000 + i * 1000);
  }
  await signer.close();
  append(s.audit, 2);
  s.db.exec('DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; DROP TRIGGER audit_checkpoints_no_delete');
  return s;
}

describe('warren audit verify', () => {
  it('passes on a signed trail and prints what vouches for it', async () => {
    const s = await signedState();
    const text = await warren(s.root, ['audit', 'verify']);
    expect(text).toMatchObject({ code: 0, stderr: '' });
    expect(text.stdout).toMatch(/^ok: 22 rows, hash chain intact, 4 signed checkpoints \(newest: seq 20 at .*\); 2 newer rows protected by the chain only; key [0-9a-f]{64}\n$/);
    const json = await warren(s.root, ['audit', 'verify', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, rows: 22, signed: true, checkpoints: { count: 4, lastSeq: 20 }, unsignedRows: 2 });
  });

  it('exits 1 naming the first bad row of an edit hidden by a recomputed chain; --verify says the same', async () => {
    const s = await signedState();
    s.db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 7").run();
    const rows = s.db.prepare('SELECT * FROM audit WHERE seq >= 7 ORDER BY seq').all() as { seq: number; time_ms: number; actor: string; action: string; object: string; decision: null; details: string | null }[];
    let prevHash = (s.db.prepare('SELECT hash FROM audit WHERE seq = 6').get() as { hash: string }).hash;
    for (const r of rows) {
      const hash = rowHash({ seq: r.seq, timeMs: r.time_ms, actor: r.actor, action: r.action, object: r.object, decision: r.decision, detailsJson: r.details, prevHash });
      s.db.prepare('UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?').run(prevHash, hash, r.seq);
      prevHash = hash;
    }
    const verify = await warren(s.root, ['audit', 'verify']);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/^BROKEN at seq 6: rows 6 to 10 were rewritten: row 10 has hash/);
    const alias = await warren(s.root, ['audit', '--verify']);
    expect(alias).toMatchObject({ code: 1, stdout: verify.stdout });
    const json = await warren(s.root, ['audit', '--verify', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, firstBadSeq: 6 });
  });

  it('exits 1 when the tail was cut with its checkpoints', async () => {
    const s = await signedState();
    s.db.exec('DELETE FROM audit WHERE seq > 15; DELETE FROM audit_checkpoints WHERE seq > 15');
    const verify = await warren(s.root, ['audit', 'verify', '--json']);
    expect(verify.code).toBe(1);
    expect(JSON.parse(verify.stdout) as SignedVerification).toMatchObject({ ok: false, rows: 15, firstBadSeq: 16, reason: expect.stringMatching(/the tail was cut/) as unknown });
  });

  it('checks against a public key kept elsewhere (warren audit key), which finds a replaced key and a re-signed trail', async () => {
    const s = await signedState();
    const key = await warren(s.root, ['audit', 'key']);
    expect(key.code).toBe(0);
    const kept = join(s.root, 'kept.pub');
    writeFileSync(kept, key.stdout);
    expect((await warren(s.root, ['audit', 'verify', '--key', kept])).code).toBe(0);

    // A new key in place of the old, and the trail's checkpoints and head file signed again with it.
    const { keyPath } = auditSigningPaths(s.stateDir);
    unlinkSync(keyPath);
    s.db.exec('DELETE FROM audit_checkpoints');
    unlinkSync(auditSigningPaths(s.stateDir).headPath);
    const resigner = await openAuditSigner({ db: s.db, audit: s.audit, ...auditSigningPaths(s.stateDir) });
    await resigner.checkpoint(2_000_000_000_000);
    await resigner.close();
    expect((await warren(s.root, ['audit', 'verify'])).code).toBe(0);
    const pinned = await warren(s.root, ['audit', 'verify', '--key', kept]);
    expect(pinned.code).toBe(1);
    expect(pinned.stdout).toMatch(/^BROKEN at seq 1: checkpoint 1 \(seq 22\) was signed by key [0-9a-f]{16}…, not by the key at hand .*: the signing key was replaced/);
  });

  it('verifies an older state directory, without key or checkpoints, as unsigned', async () => {
    const s = stateDir();
    append(s.audit, 3);
    const verify = await warren(s.root, ['audit', 'verify']);
    expect(verify).toMatchObject({ code: 0 });
    expect(verify.stdout).toMatch(/^ok: 3 rows, hash chain intact; unsigned \(no signing key at .*audit-signing.key\): cutting the newest rows cannot be detected\n$/);
    expect(existsSync(auditSigningPaths(s.stateDir).keyPath)).toBe(false); // verifying makes no key
  });

  it('refuses a --key that does not exist', async () => {
    const s = stateDir();
    const verify = await warren(s.root, ['audit', 'verify', '--key', join(s.root, 'nope.pem')]);
    expect(verify.code).toBe(1);
    expect(verify.stderr).toMatch(/--key .*nope.pem: no such file \[WARREN_USAGE\]/);
  });
});

describe('warren audit export', () => {
  it('streams 100,000 rows as JSON Lines, every line a row, the chain re-verifiable from them', async () => {
    const s = stateDir();
    // Rows of about 1.3 KB: the export (130 MB) is larger than the heap the command is given.
    const padding = 'x'.repeat(1200);
    for (let i = 0; i < 10; i++) append(s.audit, 10_000, (seq) => ({ seq, padding }));
    s.db.close();

    const child = spawn(process.execPath, ['--max-old-space-size=64', cli, 'audit', 'export', '--format', 'jsonl'], { cwd: s.root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    let lines = 0;
    let prevHash = '0'.repeat(64);
    let chained = true;
    for await (const line of createInterface({ input: child.stdout, crlfDelay: Infinity })) {
      lines += 1;
      const row = JSON.parse(line) as { seq: number; timeMs: number; actor: string; action: string; object: string; decision: null; details: { seq: number }; prevHash: string; hash: string };
      if (row.seq !== lines || row.details.seq !== lines || row.prevHash !== prevHash) chained = false;
      const hash = rowHash({ ...row, detailsJson: JSON.stringify({ padding, seq: row.seq }) });
      if (hash !== row.hash) chained = false;
      prevHash = row.hash;
    }
    const code = await closed;
    clearTimeout(timer);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lines).toBe(100_000);
    expect(chained).toBe(true);
  });

  it('exports only the rows the filters match', async () => {
    const s = stateDir();
    append(s.audit, 2500);
    const run = await warren(s.root, ['audit', 'export', '--action', 'task.*', '--since', '2000-01-01T00:00:00Z']);
    expect(run.code).toBe(0);
    const rows = run.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { seq: number; action: string });
    expect(rows.length).toBe(1250);
    expect(rows.every((r) => r.action === 'task.assign')).toBe(true);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 1250 }, (_, i) => 2 * i + 1));
    const future = await warren(s.root, ['audit', 'export', '--since', '2999-01-01T00:00:00Z']);
    expect(future).toMatchObject({ code: 0, stdout: '' });
    const bad = await warren(s.root, ['audit', 'export', '--since', 'yesterday']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--since yesterday: not a duration/);
    const format = await warren(s.root, ['audit', 'export', '--format', 'csv']);
    expect(format.code).toBe(2);
    expect(format.stderr).toMatch(/Allowed choices are jsonl/);
  });
});

describe('warren audit', () => {
  it('still lists the newest matching rows, as a table or JSON', async () => {
    const s = stateDir();
    append(s.audit, 10);
    const json = await warren(s.root, ['audit', '--action', 'task.*', '--limit', '3', '--json']);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as { seq: number }[]).map((r) => r.seq)).toEqual([5, 7, 9]);
    const text = await warren(s.root, ['audit', '--limit', '2']);
    expect(text.code).toBe(0);
    expect(text.stdout.split('\n').slice(0, 3).map((l) => l.split(/\s+/)[0])).toEqual(['SEQ', '9', '10']);
  });
});

import * as crypto from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '@warren/store';
import type { SqliteDatabase } from '@warren/store';
import {
  AuditKeyError,
  AuditTamperError,
  auditSigningPaths,
  checkpointMessage,
  keyFingerprint,
  openAudit,
  openAuditSigner,
  rowHash,
  verifyAuditTrail,
  verifyAuditTrailAsync,
  type AuditSigner,
  type AuditTrail,
  type Checkpoint,
} from '@warren/audit';

const dirs: string[] = [];
const dbs: SqliteDatabase[] = [];
const signers: AuditSigner[] = [];
afterEach(async () => {
  for (const s of signers.splice(0)) await s.close().catch(() => undefined);
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Trail {
  readonly dir: string;
  /** The state directory: key and head file live here. */
  readonly stateDir: string;
  readonly keyPath: string;
  readonly headPath: string;
  readonly db: SqliteDatabase;
  readonly audit: AuditTrail;
  signer(intervalMs?: number): Promise<AuditSigner>;
  verify(publicKey?: crypto.KeyObject): ReturnType<typeof verifyAuditTrail>;
}

/** A fresh trail in a temp dir whose state directory (`state/`, not made yet) will hold key and head file. */
function trail(): Trail {
  const dir = mkdtempSync(join(tmpdir(), 'warren-audit-sign-'));
  dirs.push(dir);
  const stateDir = join(dir, 'state');
  const db = openDatabase(join(dir, 'warren.db'));
  dbs.push(db);
  let now = 1_800_000_000_000;
  const audit = openAudit(db, { clock: () => now++ });
  const paths = auditSigningPaths(stateDir);
  return {
    dir,
    stateDir,
    ...paths,
    db,
    audit,
    async signer(intervalMs = 1000) {
      const s = await openAuditSigner({ db, audit, ...paths, intervalMs });
      signers.push(s);
      return s;
    },
    verify(publicKey) {
      return verifyAuditTrail(db, publicKey ? { publicKey, headPath: paths.headPath } : paths);
    },
  };
}

function append(audit: AuditTrail, count: number): void {
  const from = audit.lastSeq();
  audit.appendMany(Array.from({ length: count }, (_, i) => ({ actor: 'supervisor', action: 'task.assign', object: `task:t${from + i + 1}`, details: { n: from + i + 1 } })));
}

/**
 * 22 rows with checkpoints 1 to 4 at seqs 5, 10, 15 and 20; rows 21 and 22 are newer than the
 * newest checkpoint. The triggers that refuse UPDATE and DELETE are dropped, as a person with write
 * access to the database file could.
 */
async function signedTrail(): Promise<Trail & { s: AuditSigner; publicKey: crypto.KeyObject }> {
  const t = trail();
  const s = await t.signer();
  let nowMs = 2_000_000_000_000;
  for (let i = 0; i < 4; i++) {
    append(t.audit, 5);
    expect(await s.checkpoint((nowMs += 1000))).toMatchObject({ id: i + 1, seq: 5 * (i + 1), count: 5 });
  }
  append(t.audit, 2);
  expect(t.verify()).toMatchObject({ ok: true, rows: 22, signed: true, checkpoints: { count: 4, lastSeq: 20 }, unsignedRows: 2 });
  t.db.exec(`DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;
    DROP TRIGGER audit_checkpoints_no_update; DROP TRIGGER audit_checkpoints_no_delete`);
  return { ...t, s, publicKey: crypto.createPublicKey(s.publicKeyPem) };
}

/** Recomputes the hash and link of every row from `fromSeq` on, as someone hiding an edit would. */
function rechain(db: SqliteDatabase, fromSeq: number): void {
  const rows = db.prepare('SELECT * FROM audit WHERE seq >= ? ORDER BY seq').all(fromSeq) as {
    seq: number;
    time_ms: number;
    actor: string;
    action: string;
    object: string;
    decision: 'allow' | 'deny' | null;
    details: string | null;
  }[];
  let prevHash = (db.prepare('SELECT hash FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT 1').get(fromSeq) as { hash: string } | undefined)?.hash ?? '0'.repeat(64);
  const update = db.prepare('UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?');
  for (const r of rows) {
    const hash = rowHash({ seq: r.seq, timeMs: r.time_ms, actor: r.actor, action: r.action, object: r.object, decision: r.decision, detailsJson: r.details, prevHash });
    update.run(prevHash, hash, r.seq);
    prevHash = hash;
  }
}

function hashOf(db: SqliteDatabase, seq: number): string {
  return (db.prepare('SELECT hash FROM audit WHERE seq = ?').get(seq) as { hash: string }).hash;
}

function headFile(t: Trail): Checkpoint & { format: string } {
  return JSON.parse(readFileSync(t.headPath, 'utf8')) as Checkpoint & { format: string };
}

/** Signs `fields` as the signer does, with `privateKey`. */
function sign(fields: Omit<Checkpoint, 'id' | 'signature'>, privateKey: crypto.KeyObject): string {
  return crypto.sign(null, checkpointMessage(fields), privateKey).toString('base64');
}

describe('signing checkpoints', () => {
  it('makes a 0600 Ed25519 key in a 0700 folder, signs the newest row and writes the head file', async () => {
    const t = trail();
    append(t.audit, 3);
    const s = await t.signer();
    expect(statSync(t.stateDir).mode & 0o777).toBe(0o700);
    expect(statSync(t.keyPath).mode & 0o777).toBe(0o600);
    const key = crypto.createPrivateKey(readFileSync(t.keyPath));
    expect(key.asymmetricKeyType).toBe('ed25519');
    expect(s.keyId).toBe(keyFingerprint(crypto.createPublicKey(key)));

    const cp = (await s.checkpoint(5000))!;
    expect(cp).toMatchObject({ id: 1, seq: 3, hash: hashOf(t.db, 3), timeMs: 5000, count: 3, keyId: s.keyId });
    expect(crypto.verify(null, checkpointMessage(cp), crypto.createPublicKey(s.publicKeyPem), Buffer.from(cp.signature, 'base64'))).toBe(true);
    expect(statSync(t.headPath).mode & 0o777).toBe(0o600);
    expect(headFile(t)).toEqual({ format: 'warren-audit-head/1', ...cp });
    expect(s.newest()).toEqual(cp);
    expect(s.verify()).toEqual({
      ok: true,
      rows: 3,
      signed: true,
      keyId: s.keyId,
      checkpoints: { count: 1, lastSeq: 3, lastMs: 5000 },
      unsignedRows: 0,
    });
  });

  it('signs nothing without new rows, at most once per interval unless forced, and once more at close', async () => {
    const t = trail();
    const s = await t.signer(1000);
    expect(await s.checkpoint(10_000)).toBeUndefined(); // an empty trail
    append(t.audit, 1);
    expect(await s.checkpoint(10_000)).toMatchObject({ id: 1, seq: 1 });
    expect(await s.checkpoint(10_500)).toBeUndefined(); // no new row
    append(t.audit, 1);
    expect(await s.checkpoint(10_900)).toBeUndefined(); // within the interval
    expect(await s.checkpoint(11_000)).toMatchObject({ id: 2, seq: 2, count: 1 });
    append(t.audit, 2);
    expect(await s.checkpoint(11_001, { force: true })).toMatchObject({ id: 3, seq: 4, count: 2 });
    append(t.audit, 1);
    await s.close();
    await s.close();
    expect(s.newest()).toMatchObject({ id: 4, seq: 5 });
    expect(headFile(t)).toMatchObject({ id: 4, seq: 5 });
    append(t.audit, 1);
    expect(await s.checkpoint(99_000, { force: true })).toBeUndefined(); // closed
    expect(t.verify()).toMatchObject({ ok: true, rows: 6, checkpoints: { count: 4, lastSeq: 5 }, unsignedRows: 1 });
  });

  it('reopens with the same key and goes on from the newest checkpoint', async () => {
    const t = trail();
    append(t.audit, 2);
    const first = await t.signer();
    await first.checkpoint(1000);
    append(t.audit, 2);
    const second = await t.signer();
    expect(second.keyId).toBe(first.keyId);
    expect(await second.checkpoint(2000)).toMatchObject({ id: 2, seq: 4, count: 2 });
    expect(t.verify()).toMatchObject({ ok: true, checkpoints: { count: 2, lastSeq: 4 } });
  });

  it('refuses a key file that group or others may read, and a key that is not Ed25519', async () => {
    const t = trail();
    await t.signer();
    chmodSync(t.keyPath, 0o640);
    await expect(t.signer()).rejects.toThrow(AuditKeyError);
    await expect(t.signer()).rejects.toThrow(/mode 0640: group or others may read or replace it; make it 0600/);
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(t.keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    chmodSync(t.keyPath, 0o600);
    await expect(t.signer()).rejects.toThrow(/is an ec key; it must be Ed25519/);
    writeFileSync(t.keyPath, 'not a key');
    await expect(t.signer()).rejects.toThrow(/is not a PEM private key/);
  });

  it('makes no new key when the trail has checkpoints and the key is gone; verifying without it fails', async () => {
    const t = await signedTrail();
    unlinkSync(t.keyPath);
    await expect(t.signer()).rejects.toThrow(AuditKeyError);
    await expect(t.signer()).rejects.toThrow(/is missing, but the trail has checkpoints signed by key .*: restore the key file/);
    expect(t.verify()).toMatchObject({ ok: false, signed: false, rows: 22, reason: expect.stringMatching(/no key to check them with/) as unknown });
    // With the public key kept elsewhere, the trail still verifies.
    expect(t.verify(t.publicKey)).toMatchObject({ ok: true, signed: true, checkpoints: { count: 4 } });
  });

  it('verifies a trail without key, head file or checkpoints (an older state directory) as unsigned', async () => {
    const t = trail();
    append(t.audit, 7);
    expect(t.verify()).toEqual({ ok: true, rows: 7, signed: false, checkpoints: { count: 0, lastSeq: null, lastMs: null }, unsignedRows: 7 });
    // And the first signer of such a trail covers all its rows.
    expect(await (await t.signer()).checkpoint(1)).toMatchObject({ id: 1, seq: 7, count: 7 });
  });

  it('verifies a head file one checkpoint behind (a crash between the two writes) and brings it up to date on open', async () => {
    const t = await signedTrail();
    const head = readFileSync(t.headPath, 'utf8');
    append(t.audit, 1);
    await t.s.checkpoint(3_000_000_000_000);
    writeFileSync(t.headPath, head);
    expect(t.verify()).toMatchObject({ ok: true, checkpoints: { count: 5, lastSeq: 23 } });
    await t.signer();
    expect(headFile(t)).toMatchObject({ id: 5, seq: 23 });
  });
});

describe('checkpoint 0: a head file from the moment there is a key', () => {
  it('writes a head file of checkpoint 0 (seq 0) before making the key', async () => {
    const t = trail();
    const s = await t.signer();
    expect(headFile(t)).toMatchObject({ format: 'warren-audit-head/1', id: 0, seq: 0, hash: '0'.repeat(64), count: 0, keyId: s.keyId });
    expect(t.verify()).toEqual({ ok: true, rows: 0, signed: true, keyId: s.keyId, checkpoints: { count: 0, lastSeq: null, lastMs: null }, unsignedRows: 0 });
    append(t.audit, 2);
    expect(t.verify()).toMatchObject({ ok: true, rows: 2, unsignedRows: 2 });
  });

  it('a crash after the first checkpoint is stored, before its head file: checkpoint 0 still verifies, and the next signer brings the head file up to date', async () => {
    const t = trail();
    const s = await t.signer();
    const genesis = readFileSync(t.headPath, 'utf8');
    append(t.audit, 3);
    await s.checkpoint(1000);
    writeFileSync(t.headPath, genesis);
    expect(t.verify()).toMatchObject({ ok: true, checkpoints: { count: 1, lastSeq: 3 } });
    await t.signer();
    expect(headFile(t)).toMatchObject({ id: 1, seq: 3 });
  });

  it('a crash between the head file of checkpoint 0 and the key: nothing was signed, so a new key is made', async () => {
    const t = trail();
    await t.signer();
    unlinkSync(t.keyPath);
    append(t.audit, 2);
    expect(t.verify()).toMatchObject({ ok: true, signed: false });
    const s = await t.signer();
    expect(headFile(t)).toMatchObject({ id: 0, keyId: s.keyId });
    expect(await s.checkpoint(1000)).toMatchObject({ id: 1, seq: 2 });
    expect(t.verify()).toMatchObject({ ok: true, signed: true, checkpoints: { count: 1 } });
  });
});

describe('tampering is found, naming the first bad row', () => {
  it('an edited row', async () => {
    const t = await signedTrail();
    t.db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 12").run();
    expect(t.verify()).toMatchObject({ ok: false, rows: 12, firstBadSeq: 12, reason: expect.stringMatching(/seq 12: stored hash .* does not match/) as unknown });
  });

  it('an edited row with the chain recomputed from there on: the checkpoint after it signed another hash', async () => {
    const t = await signedTrail();
    t.db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 12").run();
    rechain(t.db, 12);
    expect(t.audit.verify()).toEqual({ ok: true, rows: 22 }); // the chain alone cannot tell
    const result = t.verify();
    expect(result).toMatchObject({ ok: false, rows: 15, firstBadSeq: 11, checkpoints: { count: 2, lastSeq: 10 } });
    expect(result.reason).toMatch(/rows 11 to 15 were rewritten: row 15 has hash [0-9a-f]{64}, checkpoint 3 \(seq 15\) signed [0-9a-f]{64}/);
    await expect(t.signer()).rejects.toThrow(AuditTamperError);
  });

  it('an edited row in the unsigned tail, with the chain recomputed, is found by the next checkpoint only', async () => {
    const t = await signedTrail();
    t.db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 21").run();
    rechain(t.db, 21);
    expect(t.verify()).toMatchObject({ ok: true, unsignedRows: 2 });
  });

  it('a deleted row', async () => {
    const t = await signedTrail();
    t.db.prepare('DELETE FROM audit WHERE seq = 12').run();
    expect(t.verify()).toMatchObject({ ok: false, firstBadSeq: 13, reason: expect.stringMatching(/seq 13 follows seq 11: rows are missing/) as unknown });
  });

  it('a deleted row with the later rows renumbered and re-linked', async () => {
    const t = await signedTrail();
    t.db.prepare('DELETE FROM audit WHERE seq = 12').run();
    t.db.prepare('UPDATE audit SET seq = seq - 1 WHERE seq > 12').run();
    rechain(t.db, 12);
    expect(t.audit.verify()).toEqual({ ok: true, rows: 21 });
    expect(t.verify()).toMatchObject({ ok: false, firstBadSeq: 11, reason: expect.stringMatching(/rows 11 to 15 were rewritten/) as unknown });
  });

  it('a cut tail, rows and checkpoint rows deleted together: the head file names the missing rows', async () => {
    const t = await signedTrail();
    t.db.prepare('DELETE FROM audit WHERE seq > 15').run();
    t.db.prepare('DELETE FROM audit_checkpoints WHERE seq > 15').run();
    expect(t.audit.verify()).toEqual({ ok: true, rows: 15 });
    expect(t.verify()).toMatchObject({
      ok: false,
      rows: 15,
      firstBadSeq: 16,
      reason: expect.stringMatching(/rows after seq 15 are missing: the head file's checkpoint 4 covers seq 20: the tail was cut/) as unknown,
    });
    await expect(t.signer()).rejects.toThrow(/covers seq 20, but the trail ends at seq 15: the tail was cut/);
  });

  it('a cut tail with the checkpoints kept', async () => {
    const t = await signedTrail();
    t.db.prepare('DELETE FROM audit WHERE seq > 13').run();
    expect(t.verify()).toMatchObject({ ok: false, firstBadSeq: 14, reason: expect.stringMatching(/rows after seq 13 are missing: checkpoint 3 covers seq 15/) as unknown });
  });

  it('a cut tail with the head file removed as well', async () => {
    const t = await signedTrail();
    t.db.prepare('DELETE FROM audit WHERE seq > 15').run();
    t.db.prepare('DELETE FROM audit_checkpoints WHERE seq > 15').run();
    unlinkSync(t.headPath);
    expect(t.verify()).toMatchObject({ ok: false, reason: expect.stringMatching(/3 signed checkpoints but no head file/) as unknown });
    await expect(t.signer()).rejects.toThrow(/no head file .*: it was removed/);
  });

  it('every checkpoint and the head file removed, and the chain recomputed: a key without a head file', async () => {
    const t = await signedTrail();
    t.db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 2").run();
    rechain(t.db, 2);
    t.db.prepare('DELETE FROM audit_checkpoints').run();
    unlinkSync(t.headPath);
    expect(t.verify()).toMatchObject({ ok: false, reason: expect.stringMatching(/^there is a signing key but no head file: it was removed/) as unknown });
    await expect(t.signer()).rejects.toThrow(/there is a signing key but no head file .*: it was removed/);
  });

  it('a deleted checkpoint in the middle', async () => {
    const t = await signedTrail();
    t.db.prepare('DELETE FROM audit_checkpoints WHERE id = 2').run();
    expect(t.verify()).toMatchObject({ ok: false, firstBadSeq: 6, reason: 'checkpoint ids jump from 1 to 3: checkpoints were deleted' });
  });

  it('forged checkpoints: rows rewritten, checkpoints and head file given the new hashes without the key', async () => {
    const t = await signedTrail();
    t.db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 12").run();
    rechain(t.db, 12);
    for (const seq of [15, 20]) t.db.prepare('UPDATE audit_checkpoints SET hash = ? WHERE seq = ?').run(hashOf(t.db, seq), seq);
    writeFileSync(t.headPath, JSON.stringify({ ...headFile(t), hash: hashOf(t.db, 20) }));
    const result = t.verify();
    expect(result).toMatchObject({ ok: false, firstBadSeq: 11, checkpoints: { count: 2, lastSeq: 10 } });
    expect(result.reason).toBe('checkpoint 3 (seq 15): the signature does not verify: the checkpoint was forged or altered');
    await expect(t.signer()).rejects.toThrow(/the signature does not verify/);
  });

  it('a checkpoint added with a made-up signature', async () => {
    const t = await signedTrail();
    const fields = { seq: 22, hash: hashOf(t.db, 22), timeMs: 1, count: 2, keyId: t.s.keyId };
    t.db.prepare('INSERT INTO audit_checkpoints (id, seq, hash, time_ms, count, key_id, signature) VALUES (5, 22, ?, 1, 2, ?, ?)').run(fields.hash, fields.keyId, crypto.randomBytes(64).toString('base64'));
    expect(t.verify()).toMatchObject({ ok: false, firstBadSeq: 21, reason: expect.stringMatching(/checkpoint 5 \(seq 22\): the signature does not verify/) as unknown });
  });

  it('a replaced key file: the checkpoints were signed by another key', async () => {
    const t = await signedTrail();
    const { privateKey } = crypto.generateKeyPairSync('ed25519');
    writeFileSync(t.keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    expect(t.verify()).toMatchObject({ ok: false, rows: 5, firstBadSeq: 1, reason: expect.stringMatching(/checkpoint 1 \(seq 5\) was signed by key [0-9a-f]{16}…, not by the key at hand .*: the signing key was replaced/) as unknown });
    await expect(t.signer()).rejects.toThrow(AuditKeyError);
    await expect(t.signer()).rejects.toThrow(/the key was replaced/);
  });

  it('a trail rewritten and signed again with a new key is found with the public key kept elsewhere', async () => {
    const t = await signedTrail();
    // The rewrite: an edit, the chain recomputed, every checkpoint and the head file re-signed with a new key in place of the old.
    t.db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 3").run();
    rechain(t.db, 3);
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
    const keyId = keyFingerprint(publicKey);
    const checkpoints = t.db.prepare('SELECT id, seq, time_ms AS timeMs, count FROM audit_checkpoints ORDER BY id').all() as { id: number; seq: number; timeMs: number; count: number }[];
    let newest: Checkpoint | undefined;
    for (const cp of checkpoints) {
      const fields = { seq: cp.seq, hash: hashOf(t.db, cp.seq), timeMs: cp.timeMs, count: cp.count, keyId };
      const signature = sign(fields, privateKey);
      t.db.prepare('UPDATE audit_checkpoints SET hash = ?, key_id = ?, signature = ? WHERE id = ?').run(fields.hash, keyId, signature, cp.id);
      newest = { id: cp.id, ...fields, signature };
    }
    writeFileSync(t.keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(t.headPath, JSON.stringify({ format: 'warren-audit-head/1', ...newest }));
    // The files in the state directory now agree with each other ...
    expect(t.verify()).toMatchObject({ ok: true });
    // ... but not with the public key the operator kept.
    expect(t.verify(t.publicKey)).toMatchObject({ ok: false, firstBadSeq: 1, reason: expect.stringMatching(/the signing key was replaced/) as unknown });
  });

  it('a head file that is not a checkpoint', async () => {
    const t = await signedTrail();
    writeFileSync(t.headPath, '{"format":"warren-audit-head/1","seq":"20"}');
    expect(t.verify()).toMatchObject({ ok: false, reason: expect.stringMatching(/the head file .*: 'id' must be a whole number/) as unknown });
    writeFileSync(t.headPath, '{trunc');
    expect(t.verify()).toMatchObject({ ok: false, reason: expect.stringMatching(/is not JSON/) as unknown });
    await expect(t.signer()).rejects.toThrow(AuditTamperError);
  });
});

describe('large trails', () => {
  it('verifies 25,000 rows with 25 checkpoints, reading them a page at a time', async () => {
    const t = trail();
    const s = await t.signer(0);
    for (let i = 0; i < 25; i++) {
      append(t.audit, 1000);
      await s.checkpoint(1000 + i);
    }
    expect(t.verify()).toMatchObject({ ok: true, rows: 25_000, checkpoints: { count: 25, lastSeq: 25_000 } });
    t.db.exec('DROP TRIGGER audit_no_update');
    t.db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 14567").run();
    rechain(t.db, 14567);
    expect(t.verify()).toMatchObject({ ok: false, firstBadSeq: 14_001, rows: 15_000 });
  });
});

describe('verifying on a connection of its own, while the trail grows', () => {
  it('gives the event loop back between pages and reports one snapshot while rows and a checkpoint are added', async () => {
    const t = trail();
    const s = await t.signer(0);
    for (let i = 0; i < 25; i++) {
      append(t.audit, 1000);
      await s.checkpoint(1000 + i);
    }
    let turns = 0;
    let done = false;
    const spin = () => {
      turns += 1;
      if (!done) setImmediate(spin);
    };
    let growing: Promise<unknown> | undefined;
    // Runs at the first page boundary: the verifying connection's snapshot is already taken.
    setImmediate(() => {
      append(t.audit, 500);
      growing = s.checkpoint(5000);
    });
    setImmediate(spin);
    const result = await verifyAuditTrailAsync(join(t.dir, 'warren.db'), auditSigningPaths(t.stateDir));
    done = true;
    expect(growing).toBeDefined(); // the rows were added while it verified
    expect(result).toMatchObject({ ok: true, rows: 25_000, signed: true, checkpoints: { count: 25, lastSeq: 25_000, lastMs: 1024 }, unsignedRows: 0 });
    expect(turns).toBeGreaterThan(1);
    await growing;
    expect(t.verify()).toMatchObject({ ok: true, rows: 25_500, checkpoints: { count: 26, lastSeq: 25_500 } });
  });

  it('finds the same first bad row as verifyAuditTrail', async () => {
    const t = await signedTrail();
    t.db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 12").run();
    rechain(t.db, 12);
    expect(await verifyAuditTrailAsync(join(t.dir, 'warren.db'), auditSigningPaths(t.stateDir))).toEqual(t.verify());
    await expect(verifyAuditTrailAsync(join(t.dir, 'nope.db'))).rejects.toThrow(/no such file/);
  });
});
